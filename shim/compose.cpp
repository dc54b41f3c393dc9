// compose.cpp - the backgrounds of a composite (the photo blurred, a picture scaled
// to cover the frame, the photo tinted) and, on a GPU, the blend of the subject over
// them, as tensor ops. lib/background.c owns the choices (the blur kernel, the crop
// rectangle, the tint table) and blends on the host for a CPU context, where one
// fused C loop beats a chain of whole-image tensor passes; this file only runs the
// plan it is given. The host and the device give the same bytes for the same
// backdrop: the blend is in whole numbers on both.
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

// [h, w, >= 3] bytes -> [h, w, 3] float in 0..255, contiguous. The pixels stay
// interleaved throughout: no pass transposes a full-size image.
at::Tensor to_float_rgb(const at::Tensor &hwc) {
    return hwc.narrow(2, 0, 3).to(at::kFloat, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous);
}

// [h, w, 3] (contiguous) <-> [1, 3, h, w] in channels-last order: the same memory,
// the layout that resizing and pooling take.
at::Tensor as_nchw(const at::Tensor &hwc) { return hwc.permute({2, 0, 1}).unsqueeze(0); }
at::Tensor as_hwc(const at::Tensor &nchw) {
    return nchw.contiguous(at::MemoryFormat::ChannelsLast).squeeze(0).permute({1, 2, 0});
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

// The photo ([h, w, 3] float) blurred, [h, w, 3].
at::Tensor blurred(const at::Tensor &photo, const pm_backdrop &b) {
    const int64_t h = photo.size(0), w = photo.size(1);
    const bool reduced = b.blur_height != h || b.blur_width != w;
    at::Tensor x = as_nchw(photo);
    // A wide Gaussian at full size costs its width per pixel: averaging areas first
    // makes it a narrow one (lib/background.c picks the size and the kernel).
    if (reduced) x = at::adaptive_avg_pool2d(x, {b.blur_height, b.blur_width});
    x = x.contiguous();
    const at::Tensor kernel =
        at::from_blob(const_cast<float *>(b.kernel), {b.taps}, at::kFloat).to(photo.device(), false, /*copy=*/true);
    x = blur_axis(blur_axis(x, kernel, 3), kernel, 2);
    if (reduced) x = resized_bilinear(x.contiguous(at::MemoryFormat::ChannelsLast), h, w);
    return as_hwc(x);
}

at::Tensor covered(const c10::Device &device, const pm_backdrop &b, int width, int height) {
    const at::Tensor image =
        upload_pixels(device, b.image, b.image_width, b.image_height, b.image_channels, b.image_stride);
    const at::Tensor crop =
        to_float_rgb(image.narrow(0, b.crop_y, b.crop_height).narrow(1, b.crop_x, b.crop_width));
    if (b.crop_width == width && b.crop_height == height) return crop;
    // Resized as the model's input is (antialiased where it shrinks, as PIL does); the
    // antialiased kernels are given the plain NCHW layout the model's input has.
    const bool shrinking = b.crop_width > width || b.crop_height > height;
    const at::Tensor x = shrinking ? as_nchw(crop).contiguous() : as_nchw(crop);
    return as_hwc(resized_bilinear(x, height, width));
}

// The photo's bytes ([h, w, >= 3]) through the table, [h, w, 3] float.
at::Tensor tinted(const at::Tensor &photo_hwc, const pm_backdrop &b) {
    const at::Tensor table = at::from_blob(const_cast<uint8_t *>(b.tint_table), {3 * 256}, at::kByte)
                                 .to(photo_hwc.device(), false, /*copy=*/true);
    const at::Tensor offsets =
        at::tensor(std::vector<int64_t>{0, 256, 512}, at::kLong).to(photo_hwc.device());
    const at::Tensor index = photo_hwc.narrow(2, 0, 3).to(at::kLong).add_(offsets);
    return table.take(index).to(at::kFloat);
}

// The backdrop, [h, w, 3] float: its 8-bit values plus a half (0.5..255.5), so that a
// conversion to bytes (which truncates) gives them.
at::Tensor backdrop(const c10::Device &device, const at::Tensor &photo_hwc, const at::Tensor &photo_rgb, int width,
                    int height, const pm_backdrop &b) {
    at::Tensor back;
    switch (b.kind) {
    case PM_BACKDROP_BLUR: back = blurred(photo_rgb.defined() ? photo_rgb : to_float_rgb(photo_hwc), b); break;
    case PM_BACKDROP_IMAGE: back = covered(device, b, width, height); break;
    default: return tinted(photo_hwc, b).add_(0.5); // whole numbers, as the others
    }
    // Clamped (bilinear filtering overshoots), plus a half: truncating to bytes then
    // rounds half up, as the host does.
    return back.clamp_(0, 255).add_(0.5);
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
        if (!b.tint_table) fail(PM_ERR_INVALID_ARGUMENT, "background: a tint needs its table");
        return;
    default:
        fail(PM_ERR_INVALID_ARGUMENT, "background: unknown kind %d", b.kind);
    }
}

void make_backdrop(const c10::Device &device, const uint8_t *photo, size_t stride, int channels, int width,
                   int height, const pm_backdrop &b, uint8_t *bg_out) {
    const at::Tensor photo_hwc = upload_pixels(device, photo, width, height, channels, stride);
    const at::Tensor back = backdrop(device, photo_hwc, at::Tensor(), width, height, b);
    at::from_blob(bg_out, {height, width, 3}, at::kByte).copy_(back);
}

void compose(const c10::Device &device, const uint8_t *photo, size_t stride, int channels, const uint8_t *fg,
             const uint8_t *alpha, int width, int height, const pm_backdrop &b, uint8_t *rgb_out) {
    const at::Tensor photo_hwc = upload_pixels(device, photo, width, height, channels, stride);
    // The photo as floats, when the blur or the subject needs it.
    at::Tensor photo_rgb;
    if (b.kind == PM_BACKDROP_BLUR || !fg) photo_rgb = to_float_rgb(photo_hwc);
    const at::Tensor back = backdrop(device, photo_hwc, photo_rgb, width, height, b).floor_();
    const at::Tensor subject =
        fg ? to_float_rgb(upload_pixels(device, fg, width, height, 3, size_t(width) * 3)) : photo_rgb;
    photo_rgb = at::Tensor();
    const at::Tensor a = upload_pixels(device, alpha, width, height, 1, size_t(width)).to(at::kFloat);
    // (a*F + (255-a)*B + 127) / 255 rounded down, as a*(F-B) + 255*B + 127: whole
    // numbers below 2^24, exact in float, and a true division before the floor, so
    // the bytes are the host's integer blend on every device.
    at::Tensor sum = subject.sub(back).mul_(a);
    sum.add_(back, 255.0).add_(127.0).div_(255.0).floor_();
    at::from_blob(rgb_out, {height, width, 3}, at::kByte).copy_(sum);
}

} // namespace petmatte
