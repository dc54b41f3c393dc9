// pipeline.cpp - one inference: host pixels -> model input -> forward -> matte ->
// host bytes. Pure tensor work; shim.cpp owns the C boundary and error mapping.
//
// Everything runs on the model's device; the host sees one upload of the caller's
// bytes and one download of the finished 8-bit matte.
#include "shim_internal.hpp"

#include <cstdio>
#include <string>
#include <vector>

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/cuda.h>
#include <torch/nn/functional/upsampling.h>

namespace petmatte {
namespace {

namespace F = torch::nn::functional;

// Host pixels -> [1, 3, H, W] float32 in [0, 1] on the model's device.
at::Tensor upload_rgb(const pm_shim_model &model, const uint8_t *pixels, int width, int height,
                      size_t stride, int channels) {
    // Only the bytes the caller promised are read: the last row may end right after
    // its last pixel, so the host tensor covers (height-1)*stride + width*channels
    // bytes, not height*stride. That span goes to the device in one copy (none on CPU,
    // where .to() returns the same tensor) and the row stride is applied there by
    // as_strided, so the host never repacks the image.
    const int64_t row_bytes = int64_t(width) * channels;
    const int64_t span = int64_t(height - 1) * int64_t(stride) + row_bytes;
    at::Tensor host = torch::from_blob(const_cast<uint8_t *>(pixels), {span},
                                       at::TensorOptions().dtype(at::kByte));
    at::Tensor bytes = host.to(model.device);
    at::Tensor hwc = bytes.as_strided({height, width, channels}, {int64_t(stride), channels, 1});
    // RGB only (alpha is ignored here), NCHW, contiguous float.
    at::Tensor nchw = hwc.narrow(2, 0, 3).permute({2, 0, 1}).unsqueeze(0);
    return nchw.to(at::kFloat, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous)
        .div_(255.0);
}

// [1, 3, H, W] in [0, 1] -> what the model takes: input size, normalised, its dtype.
at::Tensor to_model_input(const pm_shim_model &model, at::Tensor rgb) {
    const pm_model_config &cfg = model.config;
    const int64_t h = rgb.size(2), w = rgb.size(3);
    // Same size: no resampling at all, so the model sees the exact pixel values.
    if (h != cfg.input_height || w != cfg.input_width) {
        // Antialiasing (a box-like prefilter) only matters when shrinking; it matches
        // PIL's resize, which is how such models are usually fed in training.
        const bool shrinking = h > cfg.input_height || w > cfg.input_width;
        rgb = F::interpolate(rgb, F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{cfg.input_height, cfg.input_width})
                                      .mode(torch::kBilinear)
                                      .align_corners(false)
                                      .antialias(shrinking));
    }
    // Normalise in float32, then convert: fp16/bf16 happen only at the model boundary.
    at::Tensor x = rgb.sub_(model.norm_mean).div_(model.norm_std).to(model.dtype);
    // The same memory order as the weights (NHWC when channels_last), and always the
    // same strides: a captured CUDA graph expects exactly the layout it saw.
    return x.contiguous(model.opts.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}

// Picks the prediction out of whatever forward() returned (docs/manifest.md).
at::Tensor pick_prediction(const c10::IValue &out) {
    c10::IValue pred;
    if (out.isTensor()) {
        return out.toTensor();
    } else if (out.isTuple()) {
        const auto &elements = out.toTuple()->elements();
        if (elements.size() == 0) fail(PM_ERR_MODEL, "model returned an empty tuple, expected a tensor [1,1,H,W]");
        pred = elements[0];
    } else if (out.isList()) {
        c10::List<c10::IValue> list = out.toList();
        if (list.size() == 0) fail(PM_ERR_MODEL, "model returned an empty list, expected a tensor [1,1,H,W]");
        pred = list.get(0);
    } else if (out.isGenericDict()) {
        c10::Dict<c10::IValue, c10::IValue> dict = out.toGenericDict();
        if (dict.size() == 0) fail(PM_ERR_MODEL, "model returned an empty dict, expected a tensor [1,1,H,W]");
        pred = dict.begin()->value(); // insertion order: the first value, unless "pred" exists
        for (const auto &entry : dict) {
            if (entry.key().isString() && entry.key().toStringRef() == "pred") {
                pred = entry.value();
                break;
            }
        }
    } else {
        fail(PM_ERR_MODEL, "model returned a %s, expected a tensor [1,1,H,W] (or a tuple, list or dict holding one)",
             out.tagKind().c_str());
    }
    if (!pred.isTensor())
        fail(PM_ERR_MODEL, "model output holds a %s where a tensor [1,1,H,W] was expected", pred.tagKind().c_str());
    return pred.toTensor();
}

// Checks the prediction's shape and returns it as [1, 1, h, w].
at::Tensor check_shape(const at::Tensor &pred) {
    const auto sizes = pred.sizes();
    const bool ok4 = sizes.size() == 4 && sizes[0] == 1 && sizes[1] == 1 && sizes[2] >= 1 && sizes[3] >= 1;
    const bool ok3 = sizes.size() == 3 && sizes[0] == 1 && sizes[1] >= 1 && sizes[2] >= 1;
    if (!ok4 && !ok3)
        fail(PM_ERR_MODEL, "model output has shape %s, expected [1,1,H,W] or [1,H,W]", shape_string(sizes).c_str());
    if (pred.is_complex() || pred.scalar_type() == at::kBool)
        fail(PM_ERR_MODEL, "model output has dtype %s, expected a real-valued tensor", c10::toString(pred.scalar_type()));
    return ok3 ? pred.unsqueeze(1) : pred;
}

// Model output -> [1, 1, height, width] uint8 matte on the model's device.
at::Tensor to_matte(const pm_shim_model &model, const at::Tensor &raw, int height, int width) {
    const pm_model_config &cfg = model.config;
    // Out-of-place first: the output may alias a tensor the model keeps.
    at::Tensor p = raw.to(at::kFloat);
    if (!at::isfinite(p).all().item<bool>()) fail(PM_ERR_MODEL, "model output contains NaN or Inf");
    if (cfg.activation == PM_ACTIVATION_LOGIT) p = p.sigmoid();
    if (cfg.minmax_normalize) {
        const at::Tensor lo = p.min(), hi = p.max();
        p = (p - lo) / (hi - lo + 1e-8);
    }
    if (p.size(2) != height || p.size(3) != width) {
        // No antialias here on purpose: this is the reference rule (InSPyReNet's
        // F.interpolate(..., 'bilinear', align_corners)) the manifest describes.
        p = F::interpolate(p, F::InterpolateFuncOptions()
                                  .size(std::vector<int64_t>{height, width})
                                  .mode(torch::kBilinear)
                                  .align_corners(cfg.align_corners != 0));
    }
    return p.clamp(0.0, 1.0).mul_(255.0).round_().to(at::kByte);
}

// Sets TorchScript's (thread-local) "optimise the graph" switch for one call and
// puts the caller's value back: the host's own TorchScript use keeps its setting.
class ExecutorOptimizeGuard {
public:
    explicit ExecutorOptimizeGuard(bool optimize) : saved_(torch::jit::getGraphExecutorOptimize()) {
        torch::jit::setGraphExecutorOptimize(optimize);
    }
    ~ExecutorOptimizeGuard() { torch::jit::setGraphExecutorOptimize(saved_); }
    ExecutorOptimizeGuard(const ExecutorOptimizeGuard &) = delete;
    ExecutorOptimizeGuard &operator=(const ExecutorOptimizeGuard &) = delete;

private:
    bool saved_;
};

} // namespace

std::string shape_string(at::IntArrayRef sizes) {
    std::string s = "[";
    for (size_t i = 0; i < sizes.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(sizes[i]);
    }
    return s + "]";
}

void prepare_config(pm_shim_model &model, const pm_model_config &config) {
    model.config = config;
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    // clone(): from_blob only borrows config's floats.
    model.norm_mean = torch::from_blob(model.config.mean, {1, 3, 1, 1}, f32).clone().to(model.device);
    model.norm_std = torch::from_blob(model.config.std, {1, 3, 1, 1}, f32).clone().to(model.device);

    // Warm-up input: a fixed smooth pattern (gradients, not zeros or noise) so kernels
    // see realistic values and every warm-up run does identical work.
    const int w = config.input_width, h = config.input_height;
    model.warm_pixels.assign(size_t(w) * size_t(h) * 3, 0);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            uint8_t *px = &model.warm_pixels[(size_t(y) * size_t(w) + size_t(x)) * 3];
            px[0] = uint8_t(w > 1 ? 255 * x / (w - 1) : 128);
            px[1] = uint8_t(h > 1 ? 255 * y / (h - 1) : 128);
            px[2] = uint8_t(w + h > 2 ? 255 * (x + y) / (w + h - 2) : 128);
        }
    }
}

at::Tensor preprocess(const pm_shim_model &model, const uint8_t *pixels, int width, int height, size_t stride,
                      int channels) {
    return to_model_input(model, upload_rgb(model, pixels, width, height, stride, channels));
}

at::Tensor eager_forward(pm_shim_model &model, const at::Tensor &input) {
    ExecutorOptimizeGuard optimize(model.opts.jit_optimize != 0);
    // A copy of the Module handle (shared, refcounted): forward() is not const.
    torch::jit::Module module = model.module;
    std::vector<c10::IValue> inputs{input};
    c10::IValue out = module.forward(std::move(inputs));
    return check_shape(pick_prediction(out));
}

void postprocess(const pm_shim_model &model, const at::Tensor &prediction, int width, int height,
                 uint8_t *alpha_out) {
    at::Tensor matte = to_matte(model, prediction, height, width);
    // Straight into the caller's buffer (a synchronous device->host copy on CUDA).
    torch::from_blob(alpha_out, {height, width}, at::TensorOptions().dtype(at::kByte))
        .copy_(matte.reshape({height, width}));
}

void run_pipeline(pm_shim_model &model, const uint8_t *pixels, int width, int height, size_t stride,
                  int channels, uint8_t *alpha_out) {
    // No autograd bookkeeping. (c10::InferenceMode would be a little cheaper, but
    // TorchScript modules have hit inference-tensor errors with it in some versions.)
    torch::NoGradGuard no_grad;
#ifdef PETMATTE_WITH_CUDA
    if (model.device.is_cuda()) {
        run_pipeline_cuda(model, pixels, width, height, stride, channels, alpha_out);
        return;
    }
#endif
    at::Tensor input = preprocess(model, pixels, width, height, stride, channels);
    at::Tensor prediction;
    {
        std::lock_guard<std::mutex> lock(model.forward_mu);
        prediction = eager_forward(model, input);
    }
    postprocess(model, prediction, width, height, alpha_out);
}

void synchronize(const c10::Device &device) {
#ifdef PETMATTE_WITH_CUDA
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
#else
    (void)device;
#endif
}

} // namespace petmatte
