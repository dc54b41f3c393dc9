// cpu_runner.cpp - how a model runs on the CPU: eager forward passes, one at a time
// (two would fight over the same intra-op threads), on the caller's memory where
// it can be read in place.
#include "shim_internal.hpp"

#include <torch/torch.h>

namespace petmatte {
namespace {

class CpuRunner final : public Runner {
public:
    // The first forward pass does all the one-time work (thread pool, oneDNN
    // primitives, allocator); the profiling executor adds its profiling runs and
    // the re-optimisation.
    int warmup_runs(const pm_shim_model &model) const override { return model.opts.jit_optimize ? 3 : 1; }

    void with_call_stream(pm_shim_model &, int64_t, bool, const std::function<void()> &body) override { body(); }

    std::shared_ptr<void> caller_sync(const pm_shim_model &) override { return nullptr; }

    void run_batch(pm_shim_model &model, const std::vector<BatchRequest *> &batch) override {
        at::Tensor prediction;
        {
            std::lock_guard<std::mutex> lock(model.forward_mu);
            prediction = eager_forward(model, stack_inputs(model, batch));
        }
        for (size_t i = 0; i < batch.size(); ++i) batch[i]->prediction = prediction.narrow(0, int64_t(i), 1);
    }

    // Nothing to capture or autotune: a batch of any size runs as it comes.
    void prepare_batch_size(pm_shim_model &, const at::Tensor &, int) override {}

    at::Tensor upload(const pm_shim_model &, const uint8_t *bytes, int64_t count) override {
        return torch::from_blob(const_cast<uint8_t *>(bytes), {count}, at::TensorOptions().dtype(at::kByte));
    }

    void download_matte(const at::Tensor &matte, const at::Tensor &finite, uint8_t *alpha_out) override {
        if (!finite.item<bool>()) fail(PM_ERR_MODEL, kNotFinite);
        torch::from_blob(alpha_out, matte.sizes(), at::TensorOptions().dtype(at::kByte)).copy_(matte);
    }

    std::string description() const override { return "cpu"; }
};

} // namespace

std::unique_ptr<Runner> make_cpu_runner() { return std::make_unique<CpuRunner>(); }

} // namespace petmatte
