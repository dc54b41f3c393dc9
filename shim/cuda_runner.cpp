// cuda_runner.cpp - how a model runs on a CUDA device (compiled only when Torch
// has CUDA).
//
// Each call does its resizing, normalising and matte work on a stream of its own
// from Torch's pool, so concurrent callers overlap; the forward pass runs on the
// model's stream, one at a time. After a few eager passes (cuDNN has chosen its
// algorithms, the executor has settled) the forward pass is captured once as a
// CUDA graph and replayed from then on: one launch instead of thousands, and no
// TorchScript interpreter on the host at all.
//
// Ordering between a caller's stream and the model's stream is by CUDA events
// (never a host-side wait), and every tensor that crosses streams is allocated
// on the stream that frees it, so the caching allocator never hands out memory
// another stream may still read.
#include "shim_internal.hpp"

#include <atomic>
#include <memory>
#include <vector>
#include <mutex>
#include <string>

#include <ATen/Context.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

namespace petmatte {

struct CudaRunner {
    explicit CudaRunner(const c10::Device &device)
        : stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index())) {
        for (int i = 0; i < kIoStreams; ++i)
            io_streams.push_back(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()));
    }

    // Callers' resizing, normalising and matte work runs on a small ring of streams
    // beside the forward pass: concurrent callers overlap and rarely share a stream,
    // and warm-up touches each one, so their allocator caches are warm before the
    // first real call (a fresh pool stream per call would pay cudaMalloc at first).
    static constexpr int kIoStreams = 4;
    c10::cuda::CUDAStream stream; // the model's stream: every forward pass and replay
    std::vector<c10::cuda::CUDAStream> io_streams;
    std::atomic<unsigned> next_io{0};
    int eager_runs = 0;           // eager forward passes so far
    bool capture_tried = false;
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    at::Tensor graph_in, graph_out; // the captured graph's fixed input and output
};

namespace {

// Eager passes before capture: the first runs cuDNN's autotuner and, with the
// profiling executor, a profiling pass and the re-optimisation; capture must see
// the settled graph, which then never changes.
int eager_runs_before_capture(const pm_shim_model &model) { return model.opts.jit_optimize ? 3 : 2; }

// Captures model.forward on r.stream (the current stream) for inputs shaped like
// `example`. On failure with cuda_graph == -1 ("try") the model stays eager.
void capture(pm_shim_model &model, CudaRunner &r, const at::Tensor &example) {
    r.capture_tried = true;
    r.graph_in = example.clone(at::MemoryFormat::Preserve);
    r.stream.synchronize();
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    try {
        // Thread-local mode: other host threads may keep using CUDA (allocations,
        // copies) while this one captures.
        graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
        at::Tensor out;
        try {
            out = eager_forward(model, r.graph_in);
        } catch (...) {
            try {
                graph->capture_end();
            } catch (...) {
            }
            throw;
        }
        graph->capture_end();
        r.graph_out = out;
        r.graph = std::move(graph);
        // The eager passes' activations sit in the allocator's cache; the graph keeps
        // its own pool, so hand the rest back to the driver.
        r.stream.synchronize();
        c10::cuda::CUDACachingAllocator::emptyCache();
    } catch (const ShimError &) {
        throw; // the model's output is wrong: that is the model's error, graph or not
    } catch (const std::exception &e) {
        r.graph_in = at::Tensor();
        (void)cudaGetLastError(); // a failed capture leaves a sticky "last error"
        if (model.opts.cuda_graph == 1)
            fail(PM_ERR_UNSUPPORTED, "cannot capture the model as a CUDA graph (pass cuda_graph=0 or -1): %s",
                 short_message(e).c_str());
        // cuda_graph == -1: keep running eagerly; pm_status shows no graph.
    }
}

// The forward pass on the model's stream, ordered after the caller's stream's
// work and before its next. Returns the prediction as a tensor the caller's
// stream owns.
at::Tensor forward_on_model_stream(pm_shim_model &model, const at::Tensor &input) {
    CudaRunner &r = *model.cuda;
    const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(model.device.index());

    std::lock_guard<std::mutex> lock(model.forward_mu);
    at::cuda::CUDAEvent input_ready;
    input_ready.record(caller);
    input_ready.block(r.stream);

    at::Tensor prediction;
    if (r.graph) {
        // Allocated while the caller's stream is current: it belongs to that stream.
        prediction = at::empty_like(r.graph_out);
        c10::cuda::CUDAStreamGuard on_model(r.stream);
        r.graph_in.copy_(input);
        r.graph->replay();
        prediction.copy_(r.graph_out); // the static output is overwritten by the next replay
    } else {
        c10::cuda::CUDAStreamGuard on_model(r.stream);
        const bool want_graph = model.opts.cuda_graph != 0;
        if (want_graph && !r.capture_tried && r.eager_runs >= eager_runs_before_capture(model)) {
            capture(model, r, input);
        }
        if (r.graph) {
            r.graph_in.copy_(input);
            r.graph->replay();
            prediction = r.graph_out.clone();
        } else {
            prediction = eager_forward(model, input);
            r.eager_runs++;
        }
        // Made on the model's stream, used and freed on the caller's.
        prediction.record_stream(caller);
    }
    at::cuda::CUDAEvent done;
    done.record(r.stream);
    done.block(caller);
    return prediction;
}

} // namespace

std::shared_ptr<CudaRunner> make_cuda_runner(const c10::Device &device) {
    // The input shape never changes, so cuDNN's autotuner pays once (in warm-up) and
    // then uses the fastest kernels. Process-wide in Torch; see README ("CUDA").
    at::globalContext().setBenchmarkCuDNN(true);
    return std::make_shared<CudaRunner>(device);
}

bool cuda_runner_has_graph(const CudaRunner &runner) { return runner.graph != nullptr; }

void with_io_stream(pm_shim_model &model, const std::function<void()> &body) {
    CudaRunner &r = *model.cuda;
    const unsigned turn = r.next_io.fetch_add(1, std::memory_order_relaxed);
    c10::cuda::CUDAGuard device_guard(model.device);
    c10::cuda::CUDAStreamGuard stream_guard(r.io_streams[turn % CudaRunner::kIoStreams]);
    body();
}

void run_pipeline_cuda(pm_shim_model &model, const uint8_t *pixels, int width, int height, size_t stride,
                       int channels, uint8_t *alpha_out) {
    with_io_stream(model, [&] {
        at::Tensor input = preprocess(model, pixels, width, height, stride, channels);
        at::Tensor prediction = forward_on_model_stream(model, input);
        postprocess(model, prediction, width, height, alpha_out);
    });
}

} // namespace petmatte
