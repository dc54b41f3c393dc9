// runner.hpp - how a model runs on its kind of device: one interface, a CPU
// implementation (cpu_runner.cpp) and a CUDA one (cuda_runner.cpp, built only where
// Torch has CUDA; no_cuda.cpp stands in elsewhere). The device-independent tensor
// work (pipeline.cpp) and the C boundary (shim.cpp) call only this interface.
#ifndef PETMATTE_RUNNER_HPP
#define PETMATTE_RUNNER_HPP

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "batcher.hpp"

struct pm_shim_model;

namespace petmatte {

class Runner {
public:
    virtual ~Runner() = default;

    // Around the model file's load: set up what the device needs first and start
    // slow library loads beside the file read; finish_load joins them. Defaults: none.
    virtual void begin_load(at::ScalarType /*dtype*/) {}
    virtual void finish_load() {}

    // Inferences before a call runs at warm latency, for the configured options.
    virtual int warmup_runs(const pm_shim_model &model) const = 0;

    // Runs body with the device's stream for a call of `pixels` pixels current, and
    // afterwards keeps the device's cache within its budget. warm_up: a warm-up call.
    virtual void with_call_stream(pm_shim_model &model, int64_t pixels, bool warm_up,
                                  const std::function<void()> &body) = 0;

    // Per-caller ordering data for a BatchRequest made on the current stream; valid
    // while the returned pointer lives.
    virtual std::shared_ptr<void> caller_sync(const pm_shim_model &model) = 0;

    // One forward pass over a batch of requests, setting each one's prediction.
    // Throws like eager_forward.
    virtual void run_batch(pm_shim_model &model, const std::vector<BatchRequest *> &batch) = 0;

    // Readies batch size n > 1 in warm-up (one example image, repeated n times).
    virtual void prepare_batch_size(pm_shim_model &model, const at::Tensor &example_one, int n) = 0;

    // Host bytes -> a byte tensor of `count` elements on the device, queued on the
    // current stream. The CPU borrows the caller's memory (no copy).
    virtual at::Tensor upload(const pm_shim_model &model, const uint8_t *bytes, int64_t count) = 0;

    // The finished [h, w] 8-bit matte and its "prediction was finite" flag (0-dim
    // bool on the device) into alpha_out; throws ShimError(kNotFinite) when the flag
    // is false, and alpha_out then holds unspecified bytes.
    virtual void download_matte(const at::Tensor &matte, const at::Tensor &finite, uint8_t *alpha_out) = 0;

    virtual bool has_graph() const { return false; }      // forward passes replay a CUDA graph
    virtual int streams() const { return 1; }             // streams forward passes run on at once
    virtual uint64_t device_memory() const { return 0; }  // bytes the allocator holds on the device
    virtual uint64_t device_memory_peak() const { return 0; } // the most it has held at once
    virtual std::string description() const = 0;         // "cpu", "cuda:0 NVIDIA H100 80GB HBM3"
    virtual void synchronize() {}                         // waits for queued device work
    virtual void release_cached_memory() noexcept {}      // unused cached blocks back to the driver
};

std::unique_ptr<Runner> make_cpu_runner();
// A CUDA runner for a visible device; throws ShimError(PM_ERR_DEVICE) in a build
// without CUDA.
std::unique_ptr<Runner> make_cuda_runner(const c10::Device &device);
// CUDA devices visible to this build; -1 when the build has no CUDA support.
int cuda_device_count();

} // namespace petmatte

#endif
