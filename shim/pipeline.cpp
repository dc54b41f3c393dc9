// pipeline.cpp - one inference: host pixels -> model input -> forward -> matte ->
// host bytes. Pure tensor work; shim.cpp owns the C boundary and error mapping.
//
// Everything runs on the model's device; the host sees one upload of the caller's
// bytes and one download of the finished 8-bit matte.
#include "shim_internal.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/nn/functional/upsampling.h>

namespace petmatte {
namespace {
namespace F = torch::nn::functional;

// CUDA's antialiased bilinear kernel keeps each output pixel's filter weights in
// shared memory, and their count grows with the shrink factor: past about a hundred
// it refuses the call. Area averaging has no such limit, so a larger shrink takes two
// steps, on the CPU too, so that both devices resample alike.
constexpr int64_t kMaxAntialiasShrink = 32;
constexpr int64_t kAreaStepShrink = 8;

} // namespace

at::Tensor resized_bilinear(at::Tensor nchw, int64_t height, int64_t width) {
    const int64_t h = nchw.size(2), w = nchw.size(3);
    // Antialiasing (a box-like prefilter) only matters when shrinking; it matches
    // PIL's resize, which is how such models are usually fed in training.
    const bool shrinking = h > height || w > width;
    if (h > height * kMaxAntialiasShrink || w > width * kMaxAntialiasShrink)
        nchw = at::adaptive_avg_pool2d(
            nchw, {std::min(h, height * kAreaStepShrink), std::min(w, width * kAreaStepShrink)});
    return F::interpolate(nchw, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{height, width})
                                    .mode(torch::kBilinear)
                                    .align_corners(false)
                                    .antialias(shrinking));
}

namespace {

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
    const at::Tensor bytes = model.runner->upload(model, pixels, span);
    at::Tensor hwc = bytes.as_strided({height, width, channels}, {int64_t(stride), channels, 1});
    // RGB only (alpha is ignored here), NCHW, contiguous float.
    at::Tensor nchw = hwc.narrow(2, 0, 3).permute({2, 0, 1}).unsqueeze(0);
    return nchw.to(at::kFloat, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous)
        .div_(255.0);
}

// [1, 3, H, W] in [0, 1] -> what the model takes: input size, normalised, its dtype.
at::Tensor to_model_input(const pm_shim_model &model, at::Tensor rgb) {
    const pm_model_config &cfg = model.config;
    // Same size: no resampling at all, so the model sees the exact pixel values.
    if (rgb.size(2) != cfg.input_height || rgb.size(3) != cfg.input_width)
        rgb = resized_bilinear(rgb, cfg.input_height, cfg.input_width);
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

// Checks the prediction's shape for an input of n images and returns it as [n, 1, h, w].
at::Tensor check_shape(const at::Tensor &pred, int64_t n) {
    const auto sizes = pred.sizes();
    const bool ok4 = sizes.size() == 4 && sizes[0] == n && sizes[1] == 1 && sizes[2] >= 1 && sizes[3] >= 1;
    const bool ok3 = sizes.size() == 3 && sizes[0] == n && sizes[1] >= 1 && sizes[2] >= 1;
    if (!ok4 && !ok3)
        fail(PM_ERR_MODEL, "model output has shape %s, expected [%lld,1,H,W] or [%lld,H,W]", shape_string(sizes).c_str(),
             (long long)n, (long long)n);
    if (pred.is_complex() || pred.scalar_type() == at::kBool)
        fail(PM_ERR_MODEL, "model output has dtype %s, expected a real-valued tensor", c10::toString(pred.scalar_type()));
    return ok3 ? pred.unsqueeze(1) : pred;
}

// Model output -> [1, 1, height, width] uint8 matte on the model's device. *finite
// is set to a 0-dim flag for the runner to check once the matte is back: reading it
// here would make a GPU's host wait for the forward pass before queueing the rest,
// and then again for the download.
at::Tensor to_matte(const pm_shim_model &model, const at::Tensor &raw, int height, int width, at::Tensor *finite) {
    const pm_model_config &cfg = model.config;
    // Out-of-place first: the output may alias a tensor the model keeps.
    at::Tensor p = raw.to(at::kFloat);
    *finite = at::isfinite(p).all();
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
    return check_shape(pick_prediction(out), input.size(0));
}

at::Tensor stack_inputs(const pm_shim_model &model, const std::vector<BatchRequest *> &batch) {
    if (batch.size() == 1) return batch[0]->input;
    std::vector<at::Tensor> inputs;
    inputs.reserve(batch.size());
    for (const BatchRequest *r : batch) inputs.push_back(r->input);
    return at::cat(inputs, 0).contiguous(model.opts.channels_last ? at::MemoryFormat::ChannelsLast
                                                                  : at::MemoryFormat::Contiguous);
}

namespace {

void run_batch(pm_shim_model &model, const std::vector<BatchRequest *> &batch) {
    model.runner->run_batch(model, batch);
}

// Submits req to the model's batcher and returns its prediction ([1, 1, h, w]), or
// rethrows the error of the pass it ran in.
at::Tensor forward_gathered(pm_shim_model &model, BatchRequest &req) {
    model.batcher.submit(req, model.max_batch, model.opts.batch_wait_us, [&](const std::vector<BatchRequest *> &batch) {
        if (batch.size() == 1) {
            run_batch(model, batch);
            return;
        }
        try {
            run_batch(model, batch);
        } catch (...) {
            // Batching is ours, not the callers': when a batched pass fails (one
            // image the model throws on, or memory for n images), each image runs
            // alone, so every caller gets its own image's result or error.
            for (BatchRequest *r : batch) {
                try {
                    run_batch(model, {r});
                } catch (...) {
                    r->error = std::current_exception();
                }
            }
        }
    });
    if (req.error) std::rethrow_exception(req.error);
    return req.prediction;
}

// A left-right mirror of the warm-up image: a second, different input of the same
// statistics for the batch check.
std::vector<uint8_t> mirrored(const std::vector<uint8_t> &rgb, int w, int h) {
    std::vector<uint8_t> out(rgb.size());
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c)
                out[(size_t(y) * w + x) * 3 + c] = rgb[(size_t(y) * w + (w - 1 - x)) * 3 + c];
    return out;
}

// One forward pass over inputs right now (no gathering), from the calling thread.
std::vector<at::Tensor> forward_now(pm_shim_model &model, const std::vector<at::Tensor> &inputs) {
    const std::shared_ptr<void> sync = model.runner->caller_sync(model); // the inputs were made on this stream
    std::vector<BatchRequest> reqs(inputs.size());
    std::vector<BatchRequest *> batch;
    for (size_t i = 0; i < inputs.size(); ++i) {
        reqs[i].input = inputs[i];
        reqs[i].device_sync = sync.get();
        batch.push_back(&reqs[i]);
    }
    run_batch(model, batch);
    std::vector<at::Tensor> out;
    for (const BatchRequest &r : reqs) out.push_back(r.prediction);
    return out;
}

// Largest difference between an image's prediction alone and inside a batch, as a
// fraction of the prediction's range (at least 1): float rounding and another
// kernel choice give a few thousandths at most; a model that mixes the images of
// a batch (batch statistics, a batch-wide normalisation) gives far more.
double batch_deviation(const at::Tensor &alone, const at::Tensor &in_batch) {
    const at::Tensor a = alone.to(at::kFloat), b = in_batch.to(at::kFloat);
    const double scale = std::max(1.0, a.abs().max().item<double>());
    return (a - b).abs().max().item<double>() / scale;
}

} // namespace

void prepare_batches(pm_shim_model &model) {
    torch::NoGradGuard no_grad;
    const int requested = model.opts.max_batch;
    const int w = model.config.input_width, h = model.config.input_height;
    const std::vector<uint8_t> other = mirrored(model.warm_pixels, w, h);
    const at::Tensor a = preprocess(model, model.warm_pixels.data(), w, h, size_t(w) * 3, 3);
    const at::Tensor b = preprocess(model, other.data(), w, h, size_t(w) * 3, 3);
    const at::Tensor pa = forward_now(model, {a})[0], pb = forward_now(model, {b})[0];
    const std::vector<at::Tensor> pab = forward_now(model, {a, b});
    const double deviation = std::max(batch_deviation(pa, pab[0]), batch_deviation(pb, pab[1]));
    if (!(deviation <= 0.02))
        fail(PM_ERR_UNSUPPORTED,
             "max_batch %d: this model does not treat the images of a batch independently (an image's "
             "prediction changed by %.3g of its range inside a batch of two); use max_batch 1",
             requested, deviation);
    for (int n : batch_sizes(requested))
        if (n > 1) model.runner->prepare_batch_size(model, a, n);
    model.max_batch = requested;
}

namespace {

// Prediction -> activation / min-max -> width x height -> 8-bit, into alpha_out.
// Throws ShimError (kNotFinite) when the prediction holds NaN or Inf.
void postprocess(const pm_shim_model &model, const at::Tensor &prediction, int width, int height,
                 uint8_t *alpha_out) {
    at::Tensor finite;
    const at::Tensor matte = to_matte(model, prediction, height, width, &finite).reshape({height, width});
    model.runner->download_matte(matte, finite, alpha_out);
}

} // namespace

void run_pipeline(pm_shim_model &model, const uint8_t *pixels, int width, int height, size_t stride,
                  int channels, uint8_t *alpha_out, bool warm_up) {
    // No autograd bookkeeping. (c10::InferenceMode would be a little cheaper, but
    // TorchScript modules have hit inference-tensor errors with it in some versions.)
    torch::NoGradGuard no_grad;
    model.runner->with_call_stream(model, int64_t(width) * height, warm_up, [&] {
        BatchRequest req;
        req.input = preprocess(model, pixels, width, height, stride, channels);
        req.counted = !warm_up;
        const std::shared_ptr<void> sync = model.runner->caller_sync(model); // after the input's work
        req.device_sync = sync.get();
        const at::Tensor prediction = forward_gathered(model, req);
        postprocess(model, prediction, width, height, alpha_out);
    });
}

} // namespace petmatte
