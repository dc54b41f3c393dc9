// shim_internal.hpp - what the shim's C++ files share. Never included by lib/.
#ifndef PETMATTE_SHIM_INTERNAL_HPP
#define PETMATTE_SHIM_INTERNAL_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/script.h>

#include "batcher.hpp"
#include "runner.hpp"
#include "shim.h"

// The opaque handle behind pm_shim_model. After pm_shim_configure returns, only
// the members guarded by forward_mu (and the runner's own locks) change, so
// concurrent pm_shim_infer calls share it safely; every other per-call tensor
// lives on the calling thread's stack.
struct pm_shim_model {
    torch::jit::Module module;
    c10::Device device{c10::kCPU};
    at::ScalarType dtype{at::kFloat}; // what the weights were converted to
    pm_shim_options opts{};
    bool graph_safe{false}; // pm_shim_graph_safe: found when loaded

    bool configured{false};
    bool frozen{false}; // torch::jit::freeze'd in pm_shim_configure
    pm_model_config config{};
    at::Tensor norm_mean; // [1,3,1,1] float32 on `device`, from config.mean
    at::Tensor norm_std;  // [1,3,1,1] float32 on `device`, from config.std
    std::vector<uint8_t> warm_pixels; // RGB, input_width x input_height, for warm-up

    // One forward pass (or graph replay) at a time: on the CPU two would fight over
    // the same intra-op threads; on a GPU the captured graph has one set of buffers.
    std::mutex forward_mu;
    // Concurrent callers' inputs gathered into one forward pass, up to max_batch
    // (1 until pm_shim_prepare_batches has checked that the model can batch).
    petmatte::Batcher batcher;
    int max_batch{1};
    std::unique_ptr<petmatte::Runner> runner; // how the model runs on its device
};

namespace petmatte {

// An error the shim detected itself: carries the pm_code to return. Torch's own
// exceptions are classified where they are caught (shim.cpp).
class ShimError : public std::runtime_error {
public:
    ShimError(pm_code code, const std::string &message) : std::runtime_error(message), code_(code) {}
    pm_code code() const noexcept { return code_; }

private:
    pm_code code_;
};

// Throws ShimError(code, printf-style message).
[[noreturn]] void fail(pm_code code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// "[1, 3, 32, 32]".
std::string shape_string(at::IntArrayRef sizes);

// The last step before a tensor op error reaches the caller: torch's message without
// its C++ backtrace, reduced to the line that says what went wrong (for TorchScript
// interpreter errors, the original error at the bottom of the TorchScript traceback).
std::string short_message(const std::exception &e);

// graph_check.cpp: whether any branch, loop, raise or host read of a tensor's value
// in the module's forward pass depends on tensor data rather than on shapes and
// constants (see pm_shim_graph_safe).
bool forward_is_graph_safe(const torch::jit::Module &module);

// Fills model.norm_mean/norm_std/warm_pixels from config (already validated).
void prepare_config(pm_shim_model &model, const pm_model_config &config);

// [1, C, h, w] float -> [1, C, height, width], bilinear (half-pixel centres). Where
// it shrinks, antialiased as PIL's resize is; shrinks past kMaxAntialiasShrink on an
// axis first average areas down to kAreaStepShrink times the target, on every device.
at::Tensor resized_bilinear(at::Tensor nchw, int64_t height, int64_t width);

// Host pixels -> the model's input tensor on its device: [1, 3, H, W] at the
// model's input size, normalised, in the model's dtype and memory format.
at::Tensor preprocess(const pm_shim_model &model, const uint8_t *pixels, int width, int height, size_t stride,
                      int channels);

// forward() as loaded (caller holds forward_mu) on an [N, C, H, W] input: the
// prediction, checked, as [N, 1, h, w]. Throws ShimError for an output of the
// wrong kind or shape.
at::Tensor eager_forward(pm_shim_model &model, const at::Tensor &input);

// The batch sizes a model with this limit runs at: 1, 2, 4, ... below max, and max.
// A batch of another size is padded up to the next one on CUDA (one graph each).
inline std::vector<int> batch_sizes(int max) {
    std::vector<int> sizes;
    for (int n = 1; n < max; n *= 2) sizes.push_back(n);
    sizes.push_back(max);
    return sizes;
}

// Inputs of one batch as one [N, C, H, W] tensor in the model's memory format.
at::Tensor stack_inputs(const pm_shim_model &model, const std::vector<BatchRequest *> &batch);

// The warm-up step of pm_shim_prepare_batches: checks that the model treats the
// images of a batch independently and readies every batch size up to opts.max_batch.
void prepare_batches(pm_shim_model &model);

// The error message for a prediction holding NaN or Inf (PM_ERR_MODEL).
constexpr const char *kNotFinite = "model output contains NaN or Inf";

// The whole inference: host pixels in, one byte a pixel out (see pm_shim_infer).
// Throws ShimError for bad model output; torch exceptions pass through.
// warm_up: a warm-up pass (not counted in the passes pm_status reports).
void run_pipeline(pm_shim_model &model, const uint8_t *pixels, int width, int height, size_t stride,
                  int channels, uint8_t *alpha_out, bool warm_up);

// foreground.cpp: the plan's levels on `device`, the current device and stream (see
// pm_shim_estimate_foreground; pointers and image size already checked, the plan is
// checked here). Throws ShimError for a bad plan; torch exceptions pass through.
void estimate_foreground(const c10::Device &device, const uint8_t *rgba, const uint8_t *alpha, int width,
                         int height, const pm_fg_plan &plan, uint8_t *rgb_out);

// compose.cpp: checks a backdrop's values (throws ShimError(PM_ERR_INVALID_ARGUMENT));
// builds it (make_backdrop), or builds it and blends the subject over it (compose),
// on `device`, the current device and stream (see pm_shim_backdrop and
// pm_shim_compose; pointers and sizes already checked).
void check_backdrop(const pm_backdrop &backdrop);
void make_backdrop(const c10::Device &device, const uint8_t *photo, size_t stride, int channels, int width,
                   int height, const pm_backdrop &backdrop, uint8_t *bg_out);
void compose(const c10::Device &device, const uint8_t *photo, size_t stride, int channels, const uint8_t *fg,
             const uint8_t *alpha, int width, int height, const pm_backdrop &backdrop, uint8_t *rgb_out);

} // namespace petmatte

#endif
