// shim_internal.hpp - what shim.cpp (the C boundary) and pipeline.cpp (the tensor
// work) share. C++ only; never included by lib/.
#ifndef PETMATTE_SHIM_INTERNAL_HPP
#define PETMATTE_SHIM_INTERNAL_HPP

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <torch/script.h>

#include "batcher.hpp"
#include "shim.h"

namespace petmatte {
struct CudaRunner; // cuda_runner.cpp: the model's stream, CUDA graph and static buffers
}

// The opaque handle behind pm_shim_model. After pm_shim_configure returns, only
// the members guarded by forward_mu change, so concurrent pm_shim_infer calls
// share it safely; every other per-call tensor lives on the calling thread's stack.
struct pm_shim_model {
    torch::jit::Module module;
    c10::Device device{c10::kCPU};
    at::ScalarType dtype{at::kFloat}; // what the weights were converted to
    pm_shim_options opts{};

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
    std::shared_ptr<petmatte::CudaRunner> cuda; // CUDA builds, CUDA models only
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

// Fills model.norm_mean/norm_std/warm_pixels from config (already validated).
void prepare_config(pm_shim_model &model, const pm_model_config &config);

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

// Submits req to the model's batcher and returns its prediction ([1, 1, h, w]), or
// rethrows the error of the pass it ran in.
at::Tensor forward_gathered(pm_shim_model &model, BatchRequest &req);

// Inputs of one batch as one [N, C, H, W] tensor in the model's memory format.
at::Tensor stack_inputs(const pm_shim_model &model, const std::vector<BatchRequest *> &batch);

// One forward pass over a batch of requests, setting each one's prediction (CPU:
// eagerly; CUDA: run_batch_cuda). Throws like eager_forward.
void run_batch(pm_shim_model &model, const std::vector<BatchRequest *> &batch);

// The warm-up step of pm_shim_prepare_batches: checks that the model treats the
// images of a batch independently and readies every batch size up to the limit.
void prepare_batches(pm_shim_model &model, int requested, bool explicit_request);

// The error message for a prediction holding NaN or Inf (PM_ERR_MODEL).
constexpr const char *kNotFinite = "model output contains NaN or Inf";

// Prediction -> activation / min-max -> width x height -> 8-bit, into alpha_out.
// Throws ShimError (kNotFinite) when the prediction holds NaN or Inf.
void postprocess(const pm_shim_model &model, const at::Tensor &prediction, int width, int height,
                 uint8_t *alpha_out);

// The whole inference: host pixels in, one byte a pixel out (see pm_shim_infer).
// Throws ShimError for bad model output; torch exceptions pass through.
// warm_up: a warm-up pass (not counted in the passes pm_status reports).
void run_pipeline(pm_shim_model &model, const uint8_t *pixels, int width, int height, size_t stride,
                  int channels, uint8_t *alpha_out, bool warm_up);

#ifdef PETMATTE_WITH_CUDA
// cuda_runner.cpp. Sets up the model's stream (and cuDNN autotuning) at load.
std::shared_ptr<CudaRunner> make_cuda_runner(const c10::Device &device);
// Once per process, before the first CUDA model loads: expandable segments for Torch's
// caching allocator unless the host configured it (PYTORCH_CUDA_ALLOC_CONF or
// PYTORCH_ALLOC_CONF set). See the definition for why.
void configure_cuda_allocator();
// Starts a thread that creates the device's CUDA context and loads cuDNN (a tiny
// convolution in dtype) while the caller reads the model file; the first inference
// would otherwise pay for them after the load.
// Failures are left for the load and the inferences to report. Join before use.
class CudaLibraryWarmer {
public:
    CudaLibraryWarmer(const c10::Device &device, at::ScalarType dtype);
    ~CudaLibraryWarmer(); // joins
    CudaLibraryWarmer(const CudaLibraryWarmer &) = delete;
    CudaLibraryWarmer &operator=(const CudaLibraryWarmer &) = delete;

private:
    std::thread thread_;
};
// pm_shim_warmup_runs for a CUDA model.
int cuda_warmup_runs(const pm_shim_model &model);
// run_pipeline for a CUDA model: its own pool stream for pre/post-processing, the
// forward pass on the model's stream, replayed from a CUDA graph once captured.
void run_pipeline_cuda(pm_shim_model &model, const uint8_t *pixels, int width, int height, size_t stride,
                       int channels, uint8_t *alpha_out, bool warm_up);
bool cuda_runner_has_graph(const CudaRunner &runner);
// 1 + the extra batch-1 graphs captured for pm_shim_options.forward_streams.
int cuda_runner_streams(const CudaRunner &runner);
// run_batch on CUDA: the inputs are ordered after their callers' streams (via
// BatchRequest::device_sync), each prediction is handed back to its caller's stream.
void run_batch_cuda(pm_shim_model &model, const std::vector<BatchRequest *> &batch);
// Readies batch size n: eager passes for cuDNN's autotuner, then a CUDA graph of
// its own (when the model uses graphs). Runs on the current (I/O) stream's thread.
void prepare_cuda_batch_size(pm_shim_model &model, const at::Tensor &example_one, int n);
// A BatchRequest::device_sync for work queued so far on the calling thread's current
// stream (the inputs it made); valid while the returned pointer lives.
std::shared_ptr<void> caller_sync_cuda(const pm_shim_model &model);
// Host bytes -> a byte tensor on the model's device, queued on the current stream
// through a pinned staging buffer (see kPinnedStagingMax in cuda_runner.cpp).
at::Tensor upload_pinned(const pm_shim_model &model, const uint8_t *bytes, int64_t count);
// The finished [h, w] 8-bit matte and its "prediction was finite" flag (0-dim bool)
// back to the host in one wait for the current stream; throws ShimError, after the
// wait, when the flag is false. alpha_out then holds unspecified bytes.
void download_matte(const at::Tensor &matte, const at::Tensor &finite, uint8_t *alpha_out);
// Whether a copy of this many bytes between host and device goes through a pinned
// staging buffer (upload_pinned, download_matte) rather than pageable memory.
bool stage_in_pinned(const pm_shim_model &model, int64_t bytes);
// Runs body with one of the model's I/O streams current (see cuda_runner.cpp).
// pixels: the call's image size (width * height). Larger than the model input: the
// large-work stream, then cached memory past the budget is released
// (pm_shim_options.device_cache_mb).
void with_io_stream(pm_shim_model &model, int64_t pixels, const std::function<void()> &body);
#endif

// foreground.cpp: clean-edges foreground colours on `device` (see
// pm_shim_estimate_foreground; arguments already checked). Torch exceptions pass through.
void estimate_foreground(const c10::Device &device, const uint8_t *rgba, const uint8_t *alpha, int width,
                         int height, uint8_t *rgb_out);

// Waits for the device's queued work (no-op on CPU).
void synchronize(const c10::Device &device);

} // namespace petmatte

#endif
