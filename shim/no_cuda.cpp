// no_cuda.cpp - the CUDA entry points of runner.hpp in a build whose Torch has no
// CUDA (cuda_runner.cpp replaces this file where it has).
#include "shim_internal.hpp"

namespace petmatte {

std::unique_ptr<Runner> make_cuda_runner(const c10::Device &device) {
    fail(PM_ERR_DEVICE, "cuda:%d requested, but this build of libpetmatte has no CUDA support", int(device.index()));
}

int cuda_device_count() { return -1; }

} // namespace petmatte
