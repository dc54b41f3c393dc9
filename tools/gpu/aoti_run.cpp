// aoti_run.cpp - an AOTInductor package (.pt2) run from C++ the way libpetmatte would
// run it: load, first call, warm calls until stable, then the same call inside a CUDA
// graph. Prints process start -> main(), the load, the first call, time to a stable
// latency, warm medians (plain and graph replay) and device memory. Not part of the
// library: a measurement of whether AOTInductor is worth a second model format.
//
// Why C++: loading a package inside a Python process segfaults in the package's own
// std::regex code (parse_device_str) on the device's torch 2.11.0+cu130; the same
// package loads and runs from a C++ process (docs/benchmarks.md, tenth session).
//
// Build (torch 2.6+ with CUDA; TD = the torch package directory, CL = the directory of
// the libcudart it ships, $TD/../nvidia/cu13/lib for the cu130 wheel):
//   g++ -std=c++17 -O2 -D_GLIBCXX_USE_CXX11_ABI=1 -I$TD/include \
//     -I$TD/include/torch/csrc/api/include -I$CUDA_HOME/include tools/gpu/aoti_run.cpp \
//     -L$TD/lib -L$CL -Wl,-rpath,$TD/lib -Wl,-rpath,$CL -ltorch -ltorch_cpu -ltorch_cuda \
//     -lc10 -lc10_cuda -l:libcudart.so.13 -o aoti_run
// Run: aoti_run PACKAGE.pt2 BATCH [RUNS]   (input: BATCH x 3 x 1024 x 1024 fp16 NHWC)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "timing.h"

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double reserved_mib() {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
    return double(stats.reserved_bytes[0].current) / (1 << 20);
}

// One timed call: the host waits for the stream, as a library call does.
template <typename F> double timed(F &&call, const c10::cuda::CUDAStream &stream) {
    const double t = now_ms();
    call();
    stream.synchronize();
    return now_ms() - t;
}

} // namespace

int main(int argc, char **argv) {
    const double at_main = since_process_start_ms();
    const double t0 = now_ms();
    if (argc < 3) {
        std::fprintf(stderr, "usage: aoti_run PACKAGE.pt2 BATCH [RUNS]\n");
        return 2;
    }
    const int64_t batch = std::atoll(argv[2]);
    const int runs = argc > 3 ? std::atoi(argv[3]) : 100;
    try {
        torch::NoGradGuard no_grad;
        // run_single_threaded: the container's run without its pool of model instances
        // and their events, whose event synchronisation a CUDA graph capture rejects
        // ("operation not permitted when stream is capturing", then a terminate from a
        // destructor).
        torch::inductor::AOTIModelPackageLoader loader(argv[1], "model", /*run_single_threaded=*/true);
        const double t_load = now_ms() - t0;
        const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, 0);
        c10::cuda::CUDAStreamGuard on_stream(stream);
        const auto x = torch::rand({batch, 3, 1024, 1024}, torch::dtype(torch::kHalf).device(torch::kCUDA))
                           .contiguous(at::MemoryFormat::ChannelsLast);
        std::vector<at::Tensor> out;
        auto call = [&] { out = loader.run({x}, stream.stream()); };
        const double t_first = timed(call, stream);
        // Stable: three calls in a row at most 10 % above their median (the library's
        // warm-up asks 15 % either side by default: pm_params.warmup_tolerance).
        std::vector<double> recent;
        int to_stable = 0;
        for (; to_stable < 50; ++to_stable) {
            recent.push_back(timed(call, stream));
            if (recent.size() > 3) recent.erase(recent.begin());
            const double m = recent.size() == 3 ? median(recent) : 0;
            if (m > 0 && std::all_of(recent.begin(), recent.end(), [m](double v) { return v <= 1.1 * m; })) break;
        }
        const double ready = now_ms() - t0 + at_main;
        std::vector<double> warm;
        for (int i = 0; i < runs; ++i) warm.push_back(timed(call, stream));
        std::printf("process start -> main() %.0f ms, load %.0f ms, first call %.0f ms, %d more calls to "
                    "stable, start -> stable %.0f ms\n",
                    at_main, t_load, t_first, to_stable + 1, ready);
        std::printf("warm calls (host waits each): median %.2f ms [%.2f-%.2f], %.2f ms/img; reserved %.0f MiB\n",
                    median(warm), *std::min_element(warm.begin(), warm.end()),
                    *std::max_element(warm.begin(), warm.end()), median(warm) / double(batch), reserved_mib());
        try {
            at::cuda::CUDAGraph graph;
            graph.capture_begin();
            call();
            graph.capture_end();
            std::vector<double> replays;
            for (int i = 0; i < runs; ++i) replays.push_back(timed([&] { graph.replay(); }, stream));
            std::printf("graph replays: median %.2f ms [%.2f-%.2f], %.2f ms/img; reserved %.0f MiB\n",
                        median(replays), *std::min_element(replays.begin(), replays.end()),
                        *std::max_element(replays.begin(), replays.end()), median(replays) / double(batch),
                        reserved_mib());
        } catch (const std::exception &e) {
            std::printf("graph capture failed: %.200s\n", e.what());
        }
    } catch (const std::exception &e) {
        std::printf("error: %.400s\n", e.what());
        return 1;
    }
    return 0;
}
