// compose.cpp - the backgrounds of a composite (the photo blurred, a picture scaled
// to cover the frame, the photo tinted) and the blend of the subject over them, as
// tensor ops on the model's device, or on the CPU. lib/background.c owns the
// choices (the blur kernel, the crop rectangle, the tint); this file only runs the
// plan it is given, so that one code path serves every device.
//
// Transfers: the photo (and the picture, or the clean-edge colours) go up once as
// 8-bit bytes with their row strides, the matte as bytes; only the finished RGB
// bytes come back. The caller makes the device and stream current.
#include "shim_internal.hpp"

#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/upsampling.h>

namespace petmatte {
namespace {

namespace F = torch::nn::functional;

// Host rows of width*channels bytes, stride apart -> [height, width, channels] bytes
// on the device. Only the bytes the caller promised are read: the last row may end
// right after its last pixel. On the CPU the caller's memory is read in place.
at::Tensor upload_pixels(const c10::Device &device, const uint8_t *pixels, int width, int height, int channels,
                         size_t stride) {
    const int64_t span = int64_t(height - 1) * int64_t(stride) + int64_t(width) * channels;
    const at::Tensor bytes = at::from_blob(const_cast<uint8_t *>(pixels), {span}, at::kByte).to(device);
    return bytes.as_strided({height, width, channels}, {int64_t(stride), channels, 1});
}

// [h, w, >= 3] bytes -> [1, 3, h, w] float in 0..255.
at::Tensor to_planes(const at::Tensor &hwc) {
    return hwc.narrow(2, 0, 3).permute({2, 0, 1}).unsqueeze(0).to(at::kFloat, /*non_blocking=*/false,
                                                                     /*copy=*/false, at::MemoryFormat::Contiguous);
}

// A depthwise pass of the kernel along one axis (3 = rows, 2 = columns) of [1, 3, h, w],
// the border pixels repeated outwards.
at::Tensor blur_axis(const at::Tensor &x, const at::Tensor &kernel, int axis) {
    const int64_t taps = kernel.size(0), r = taps / 2;
    const bool rows = axis == 3;
    const at::Tensor padded =
        F::pad(x, F::PadFuncOptions(rows ? std::vector<int64_t>{r, r, 0, 0} : std::vector<int64_t>{0, 0, r, r})
                      .mode(torch::kReplicate));
    const at::Tensor weight = rows ? kernel.view({1, 1, 1, taps}) : kernel.view({1, 1, taps, 1});
    const at::Tensor weights = weight.expand({3, 1, rows ? 1 : taps, rows ? taps : 1}).contiguous();
    const std::vector<int64_t> ones{1, 1}, zeros{0, 0};
    return at::conv2d(padded, weights, c10::optional<at::Tensor>(), at::IntArrayRef(ones) /*stride*/,
                      at::IntArrayRef(zeros) /*padding*/, at::IntArrayRef(ones) /*dilation*/, /*groups=*/3);
}

at::Tensor blurred(const at::Tensor &photo, const pm_backdrop &b) {
    const at::Tensor kernel =
        at::from_blob(const_cast<float *>(b.kernel), {b.taps}, at::kFloat).to(photo.device(), false, /*copy=*/true);
    return blur_axis(blur_axis(photo, kernel, 3), kernel, 2);
}

at::Tensor covered(const c10::Device &device, const pm_backdrop &b, int width, int height) {
    const at::Tensor image =
        upload_pixels(device, b.image, b.image_width, b.image_height, b.image_channels, b.image_stride);
    at::Tensor x = to_planes(image.narrow(0, b.crop_y, b.crop_height).narrow(1, b.crop_x, b.crop_width));
    if (b.crop_width == width && b.crop_height == height) return x;
    // Antialiasing (a box-like prefilter) only where the picture shrinks, as PIL does.
    const bool shrinking = b.crop_width > width || b.crop_height > height;
    return F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{height, width})
                                 .mode(torch::kBilinear)
                                 .align_corners(false)
                                 .antialias(shrinking));
}

at::Tensor tinted(const at::Tensor &photo, const pm_backdrop &b) {
    const double o = b.opacity;
    const at::Tensor tint =
        at::tensor(std::vector<float>{float(b.tint[0]), float(b.tint[1]), float(b.tint[2])}, at::kFloat)
            .to(photo.device())
            .view({1, 3, 1, 1});
    return photo.mul(1.0 - o).add_(tint.mul(o));
}

} // namespace

void check_backdrop(const pm_backdrop &b) {
    switch (b.kind) {
    case PM_BACKDROP_BLUR:
        if (!b.kernel || b.taps < 1 || b.taps > PM_BACKDROP_MAX_TAPS || b.taps % 2 == 0)
            fail(PM_ERR_INVALID_ARGUMENT, "background: a blur needs an odd kernel of 1..%d taps, not %d",
                 PM_BACKDROP_MAX_TAPS, b.taps);
        return;
    case PM_BACKDROP_IMAGE:
        if (!b.image || b.image_width < 1 || b.image_height < 1 || (b.image_channels != 3 && b.image_channels != 4) ||
            b.image_stride < size_t(b.image_width) * size_t(b.image_channels))
            fail(PM_ERR_INVALID_ARGUMENT, "background: bad picture (%dx%d, %d channels, stride %zu)", b.image_width,
                 b.image_height, b.image_channels, b.image_stride);
        if (b.crop_x < 0 || b.crop_y < 0 || b.crop_width < 1 || b.crop_height < 1 ||
            b.crop_width > b.image_width - b.crop_x || b.crop_height > b.image_height - b.crop_y)
            fail(PM_ERR_INVALID_ARGUMENT, "background: crop %dx%d at (%d, %d) is outside the %dx%d picture",
                 b.crop_width, b.crop_height, b.crop_x, b.crop_y, b.image_width, b.image_height);
        return;
    case PM_BACKDROP_TINT:
        if (!(b.opacity >= 0.0f && b.opacity <= 1.0f))
            fail(PM_ERR_INVALID_ARGUMENT, "background: tint opacity %g is outside 0..1", double(b.opacity));
        return;
    default:
        fail(PM_ERR_INVALID_ARGUMENT, "background: unknown kind %d", b.kind);
    }
}

void compose(const c10::Device &device, const uint8_t *photo, size_t stride, int channels, const uint8_t *fg,
             const uint8_t *alpha, int width, int height, const pm_backdrop &b, uint8_t *rgb_out) {
    const at::Tensor photo_hwc = upload_pixels(device, photo, width, height, channels, stride);
    at::Tensor back; // [1, 3, h, w] float, 0..255
    switch (b.kind) {
    case PM_BACKDROP_BLUR: back = blurred(to_planes(photo_hwc), b); break;
    case PM_BACKDROP_IMAGE: back = covered(device, b, width, height); break;
    default: back = tinted(to_planes(photo_hwc), b); break;
    }
    // 8 bits, then the blend in integers: the same rounding as the host's solid colour.
    const at::Tensor bg = back.squeeze(0).round_().clamp_(0, 255).to(at::kInt);
    back = at::Tensor();
    const at::Tensor subject = fg ? upload_pixels(device, fg, width, height, 3, size_t(width) * 3) : photo_hwc;
    const at::Tensor f = subject.narrow(2, 0, 3).permute({2, 0, 1}).to(at::kInt);
    const at::Tensor a = upload_pixels(device, alpha, width, height, 1, size_t(width)).permute({2, 0, 1}).to(at::kInt);
    at::Tensor sum = a * f;
    sum.addcmul_(a.neg().add_(255), bg).add_(127);
    const at::Tensor out = at::div(sum, 255, "trunc").to(at::kByte).permute({1, 2, 0}).contiguous();
    at::from_blob(rgb_out, {height, width, 3}, at::kByte).copy_(out);
}

} // namespace petmatte
