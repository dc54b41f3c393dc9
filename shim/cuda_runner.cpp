// cuda_runner.cpp - how a model runs on a CUDA device: the Runner of runner.hpp
// for CUDA (compiled only when Torch has CUDA; no_cuda.cpp stands in elsewhere).
//
// Each call does its resizing, normalising and matte work on a stream of its own
// from Torch's pool, so concurrent callers overlap; the forward pass runs on the
// model's stream, one at a time, for a batch of callers gathered by the model's
// Batcher (batcher.hpp). After a few eager passes (cuDNN has chosen its
// algorithms, the executor has settled) the forward pass is captured once per
// batch size as a CUDA graph and replayed from then on: one launch instead of
// thousands, and no TorchScript interpreter on the host at all.
//
// Ordering between a caller's stream and the model's stream is by CUDA events
// (never a host-side wait), and every tensor that crosses streams is allocated
// on the stream that frees it, so the caching allocator never hands out memory
// another stream may still read.
#include "shim_internal.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>
#include <mutex>
#include <string>
#include <system_error>

#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#if __has_include(<c10/cuda/CUDAAllocatorConfig.h>) // Torch 2.x: runtime allocator settings
#  include <c10/cuda/CUDAAllocatorConfig.h>
#  define PM_HAVE_ALLOCATOR_SETTINGS 1
#endif
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/cuda.h>

namespace petmatte {

// One captured forward pass for a fixed batch size: its static input and output.
struct GraphSlot {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    at::Tensor in, out;
};

// A further stream for one-image passes (pm_shim_options.forward_streams): a small
// model leaves much of a GPU idle at batch 1, and passes on several streams fill it
// without batching's wait for company or its autotuning of new shapes. The lane's
// graph is captured from the same input shape into a memory pool of its own, since
// its replays overlap the other streams'; its lock orders the callers queueing on it.
struct Lane {
    explicit Lane(const c10::cuda::CUDAStream &s) : stream(s) {}
    c10::cuda::CUDAStream stream;
    GraphSlot slot;
    std::mutex mu;
};

// The device state behind CudaRunner: streams, graphs, lanes, the warm footprint.
struct CudaState {
    explicit CudaState(const c10::Device &device)
        : stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index())) {
        for (int i = 0; i < kIoStreams; ++i)
            io_streams.push_back(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()));
    }

    // Callers' resizing, normalising and matte work runs on a small ring of streams
    // beside the forward pass: concurrent callers overlap and rarely share a stream,
    // and warm-up touches each one, so their allocator caches are warm before the
    // first real call (a fresh pool stream per call would pay cudaMalloc at first).
    // Stream 0 serves every call larger than the model's input, and only those: the
    // allocator keeps a freed block for the stream that freed it, so 12 MP work spread
    // over the ring would cache one full-resolution working set per stream; on one
    // stream the next large call reuses the last one's.
    static constexpr int kIoStreams = 4;
    c10::cuda::CUDAStream stream; // the model's stream: every forward pass and replay
    std::vector<c10::cuda::CUDAStream> io_streams;
    std::atomic<unsigned> next_io{0};
    int eager_runs = 0;           // eager batch-1 forward passes so far
    bool capture_tried = false;   // batch 1 (larger sizes are captured in warm-up)
    // Graphs by batch size. They share one memory pool: replays never overlap (one
    // stream) and each replay's output is copied out before the next replay, so one
    // graph's scratch memory may be another's.
    std::map<int, GraphSlot> graphs;
    bool have_pool = false;
    decltype(at::cuda::graph_pool_handle()) pool{};
    // Lanes 1.. of forward_streams (lane 0 is `stream` with graphs[1]); filled when the
    // batch-1 graph is captured, read-only after warm-up. Calls take them in turn.
    std::vector<std::unique_ptr<Lane>> lanes;
    std::atomic<unsigned> next_lane{0};
    // The allocator's reserved bytes on this device after warm-up (the largest seen
    // at the end of a warm-up step): the footprint device_cache_mb is counted from.
    std::atomic<int64_t> warm_reserved{0};

    // The graph that runs a batch of n: the smallest captured size >= n, or null.
    GraphSlot *graph_for(int n) {
        auto it = graphs.lower_bound(n);
        return it == graphs.end() ? nullptr : &it->second;
    }
};

// What a caller hands the model's stream: its own stream, and an event marking the
// point on it where its input is ready (recorded when made).
struct CallerSync {
    explicit CallerSync(const c10::cuda::CUDAStream &caller) : stream(caller) { input_ready.record(caller); }
    c10::cuda::CUDAStream stream;
    at::cuda::CUDAEvent input_ready;
};

// The state of the model's CudaRunner (defined below).
CudaState &state_of(const pm_shim_model &model);

namespace {

// Eager passes before capture: the first runs cuDNN's autotuner and, with the
// profiling executor, a profiling pass and the re-optimisation; capture must see
// the settled graph, which then never changes.
int eager_runs_before_capture(const pm_shim_model &model) { return model.opts.jit_optimize ? 3 : 2; }

// One more batch-1 graph on a stream of its own for each further forward stream
// asked for, after the first graph's capture (so cuDNN has chosen every algorithm).
// A lane that cannot be captured (device memory, say) is left out: the model runs on
// fewer streams, as pm_status reports; the first graph stands.
void capture_lanes(pm_shim_model &model, CudaState &r, const at::Tensor &example) {
    while (int(r.lanes.size()) + 1 < model.opts.forward_streams) {
        auto lane = std::make_unique<Lane>(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, model.device.index()));
        try {
            at::cuda::CUDAEvent ready;
            ready.record(r.stream);
            ready.block(lane->stream);
            c10::cuda::CUDAStreamGuard on_lane(lane->stream);
            lane->slot.in = example.clone(at::MemoryFormat::Preserve);
            lane->stream.synchronize();
            auto graph = std::make_unique<at::cuda::CUDAGraph>();
            graph->capture_begin(at::cuda::graph_pool_handle(), cudaStreamCaptureModeThreadLocal);
            try {
                lane->slot.out = eager_forward(model, lane->slot.in);
            } catch (...) {
                try {
                    graph->capture_end();
                } catch (...) {
                }
                throw;
            }
            graph->capture_end();
            lane->slot.graph = std::move(graph);
            // Capture only records: the first replay of a graph also uploads it to the
            // device, which would otherwise slow a caller's first pass on this stream.
            lane->slot.graph->replay();
            lane->stream.synchronize();
        } catch (const std::exception &) {
            (void)cudaGetLastError(); // a failed capture leaves a sticky "last error"
            return;
        }
        r.lanes.push_back(std::move(lane));
    }
}

// Captures model.forward on r.stream (the current stream) for inputs shaped like
// `example` (its batch size names the graph). On failure with cuda_graph == -1
// ("try") that batch size stays eager.
void capture(pm_shim_model &model, CudaState &r, const at::Tensor &example) {
    const int n = int(example.size(0));
    if (n == 1) r.capture_tried = true;
    GraphSlot slot;
    slot.in = example.clone(at::MemoryFormat::Preserve);
    r.stream.synchronize();
    if (!r.have_pool) {
        r.pool = at::cuda::graph_pool_handle();
        r.have_pool = true;
    }
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    try {
        // Thread-local mode: other host threads may keep using CUDA (allocations,
        // copies) while this one captures.
        graph->capture_begin(r.pool, cudaStreamCaptureModeThreadLocal);
        at::Tensor out;
        try {
            out = eager_forward(model, slot.in);
        } catch (...) {
            try {
                graph->capture_end();
            } catch (...) {
            }
            throw;
        }
        graph->capture_end();
        slot.out = out;
        slot.graph = std::move(graph);
        r.graphs[n] = std::move(slot);
        if (n == 1) capture_lanes(model, r, example);
        // The eager passes' activations sit in the allocator's cache; the graph keeps
        // its own pool, so hand the rest back to the driver.
        r.stream.synchronize();
        c10::cuda::CUDACachingAllocator::emptyCache();
    } catch (const ShimError &) {
        throw; // the model's output is wrong: that is the model's error, graph or not
    } catch (const std::exception &e) {
        (void)cudaGetLastError(); // a failed capture leaves a sticky "last error"
        if (model.opts.graph == PM_GRAPH_REQUIRE)
            fail(PM_ERR_UNSUPPORTED,
                 "cannot capture the model as a CUDA graph at batch size %d (tune cuda_graph to 0 or -1): %s", n,
                 short_message(e).c_str());
        // PM_GRAPH_TRY: keep running eagerly; pm_status shows no graph.
    }
}

int64_t reserved_bytes(const c10::Device &device) {
    return c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).reserved_bytes[0].current;
}

void note_warm_footprint(const pm_shim_model &model) {
    CudaState &r = state_of(model);
    const int64_t now = reserved_bytes(model.device);
    int64_t seen = r.warm_reserved.load();
    while (now > seen && !r.warm_reserved.compare_exchange_weak(seen, now)) {
    }
}

// After a call that resized or composed more pixels than the model's input: such
// calls leave full-resolution blocks cached (concurrent ones each their own). Past
// the warm footprint + device_cache_mb, the unused blocks go back to the driver.
// emptyCache frees only blocks no tensor holds, and its cudaFree waits for the
// device, so work in flight on other streams is safe (and briefly waited for).
void release_cache_over_budget(const pm_shim_model &model) {
    const int64_t limit = state_of(model).warm_reserved.load() + int64_t(model.opts.device_cache_mb) * (1 << 20);
    if (reserved_bytes(model.device) > limit) c10::cuda::CUDACachingAllocator::emptyCache();
}

CallerSync &sync_of(const BatchRequest *req) { return *static_cast<CallerSync *>(req->device_sync); }

// Runs the batch on the model's stream (the current stream) and sets each
// prediction; it is ready when r.stream reaches the point after this call.
void run_on_model_stream(pm_shim_model &model, CudaState &r, const std::vector<BatchRequest *> &batch) {
    const int n = int(batch.size());
    if (GraphSlot *g = r.graph_for(n)) {
        // A smaller batch than the graph's: the spare rows keep old inputs, and their
        // outputs are never read.
        for (int i = 0; i < n; ++i) g->in.narrow(0, i, 1).copy_(batch[size_t(i)]->input);
        g->graph->replay();
        for (int i = 0; i < n; ++i) {
            // The static output is overwritten by the next replay. The copy is made
            // and written on the model's stream, then handed to the caller's: memory
            // taken from the caller's stream instead could still be in use there by
            // another call that shares that stream and has just freed it.
            at::Tensor prediction = g->out.narrow(0, i, 1).clone();
            prediction.record_stream(sync_of(batch[size_t(i)]).stream);
            batch[size_t(i)]->prediction = prediction;
        }
        return;
    }
    at::Tensor prediction;
    if (n == 1) {
        const bool want_graph = model.opts.graph != PM_GRAPH_OFF;
        if (want_graph && !r.capture_tried && r.eager_runs >= eager_runs_before_capture(model))
            capture(model, r, batch[0]->input);
        if (GraphSlot *g = r.graph_for(1)) {
            g->in.copy_(batch[0]->input);
            g->graph->replay();
            prediction = g->out.clone();
        } else {
            prediction = eager_forward(model, batch[0]->input);
            r.eager_runs++;
        }
    } else {
        prediction = eager_forward(model, stack_inputs(model, batch));
    }
    for (int i = 0; i < n; ++i) {
        // Made on the model's stream, used and freed on the caller's.
        prediction.record_stream(sync_of(batch[size_t(i)]).stream);
        batch[size_t(i)]->prediction = prediction.narrow(0, i, 1);
    }
}

// One image on a further stream: the same steps as the first stream's graph replay,
// under the lane's own lock, so its replays overlap the other streams'.
void run_on_lane(Lane &lane, BatchRequest &req) {
    CallerSync &s = sync_of(&req);
    at::cuda::CUDAEvent done;
    at::Tensor prediction;
    {
        std::lock_guard<std::mutex> lock(lane.mu);
        s.input_ready.block(lane.stream);
        c10::cuda::CUDAStreamGuard on_lane(lane.stream);
        lane.slot.in.copy_(req.input);
        lane.slot.graph->replay();
        prediction = lane.slot.out.clone(); // the static output is overwritten by the next replay
        done.record(lane.stream);
    }
    // Made on the lane's stream, used and freed on the caller's.
    prediction.record_stream(s.stream);
    done.block(s.stream);
    req.prediction = prediction;
}

void run_batch_cuda(pm_shim_model &model, const std::vector<BatchRequest *> &batch) {
    CudaState &r = state_of(model);
    if (batch.size() == 1 && !r.lanes.empty()) {
        // Lanes exist only once the batch-1 graph does. Lane 0 is the path below.
        const unsigned k = r.next_lane.fetch_add(1, std::memory_order_relaxed) % unsigned(r.lanes.size() + 1);
        if (k > 0) {
            run_on_lane(*r.lanes[k - 1], *batch[0]);
            return;
        }
    }
    at::cuda::CUDAEvent done;
    {
        std::lock_guard<std::mutex> lock(model.forward_mu);
        for (const BatchRequest *req : batch) sync_of(req).input_ready.block(r.stream);
        {
            c10::cuda::CUDAStreamGuard on_model(r.stream);
            run_on_model_stream(model, r, batch);
        }
        done.record(r.stream);
        for (const BatchRequest *req : batch) done.block(sync_of(req).stream);
    }
    // With batching on, the pass counts as running until the GPU has finished it:
    // the host only queues work, so without this wait the batcher would see every
    // pass end at once and callers queued behind the GPU would almost never share a
    // pass. Callers that arrive meanwhile
    // form the next batch. One image a pass keeps the fully asynchronous queueing.
    if (model.max_batch > 1) done.synchronize();
}

void prepare_cuda_batch_size(pm_shim_model &model, const at::Tensor &example_one, int n) {
    CudaState &r = state_of(model);
    const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(model.device.index());
    std::vector<at::Tensor> copies(size_t(n), example_one);
    const at::Tensor example = at::cat(copies, 0).contiguous(
        model.opts.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    at::cuda::CUDAEvent ready;
    ready.record(caller);
    std::lock_guard<std::mutex> lock(model.forward_mu);
    ready.block(r.stream);
    c10::cuda::CUDAStreamGuard on_model(r.stream);
    for (int i = 0; i < eager_runs_before_capture(model); ++i) (void)eager_forward(model, example);
    if (model.opts.graph != PM_GRAPH_OFF) capture(model, r, example);
    r.stream.synchronize(); // `example` was made on the caller's stream and dies with this call
    note_warm_footprint(model);
}

// Why expandable segments: a context's memory is mostly the CUDA graph's private
// pool, whose fixed-size segments are left part-used by the forward pass's many
// differently sized activations; segments that grow in place hold the same work in
// less memory at the same latency. The setting is process-wide in Torch, so a host
// that configured the allocator itself keeps its own choice.
void configure_cuda_allocator() {
    static std::once_flag once;
    std::call_once(once, [] {
#ifdef PM_HAVE_ALLOCATOR_SETTINGS
        if (std::getenv("PYTORCH_CUDA_ALLOC_CONF") || std::getenv("PYTORCH_ALLOC_CONF")) return;
        c10::cuda::CUDACachingAllocator::setAllocatorSettings("expandable_segments:True");
#endif
    });
}

// Creates the device's CUDA context and loads cuDNN (a tiny convolution in dtype)
// while the caller reads the model file: a cold start would otherwise pay for both
// after the load, and the file read needs the CPU, not them. Only cuDNN: warming
// cuBLAS too would hold its workspace for this thread's stream, and a conv net never
// calls it. Failures are left for the load and the inferences to report.
std::thread start_library_warmer(const c10::Device &device, at::ScalarType dtype) {
    try {
        return std::thread([device, dtype] {
            try {
                c10::cuda::CUDAGuard guard(device);
                const auto opts = at::TensorOptions().device(device).dtype(dtype);
                const at::Tensor x = at::zeros({1, 8, 16, 16}, opts).contiguous(at::MemoryFormat::ChannelsLast);
                const at::Tensor w = at::zeros({8, 8, 3, 3}, opts).contiguous(at::MemoryFormat::ChannelsLast);
                (void)at::conv2d(x, w);
                c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
            } catch (...) {
            }
        });
    } catch (const std::system_error &) { // no thread to spare: the load then does this work itself
        return std::thread();
    }
}

// Why pinned staging: a copy from pageable memory is staged by the driver through
// its own pinned buffers and blocks the host for its whole length; a memcpy into a
// pinned block and an asynchronous copy are quicker, and on the way back the matte,
// the finiteness flag and the end of the forward pass cost one wait instead of two.
// Torch's caching host allocator keeps the blocks (rounded up to a power of two)
// and reuses one only after the copies queued on it have run. Larger copies (a
// 12 MP photo's 36 MB) stay pageable, so that no call pins more than this.
constexpr int64_t kPinnedStagingMax = int64_t(16) << 20;

at::Tensor pinned_bytes(at::IntArrayRef sizes, at::ScalarType dtype = at::kByte) {
    return at::empty(sizes, at::TensorOptions().dtype(dtype).pinned_memory(true));
}

class CudaRunner final : public Runner {
public:
    explicit CudaRunner(const c10::Device &device) : device_(device), state_(device) {
        // The input shape never changes, so cuDNN's autotuner pays once (in warm-up)
        // and then uses the fastest kernels. Process-wide in Torch; see README ("CUDA").
        at::globalContext().setBenchmarkCuDNN(true);
    }
    ~CudaRunner() override { finish_load(); }

    CudaState &state() { return state_; }

    void begin_load(at::ScalarType dtype) override {
        configure_cuda_allocator(); // before the weights' first segment
        warmer_ = start_library_warmer(device_, dtype);
    }

    void finish_load() override {
        if (warmer_.joinable()) warmer_.join();
    }

    // The eager runs the capture waits for, then the capture run itself; at least
    // three, so that warm-up judges stability over three runs.
    int warmup_runs(const pm_shim_model &model) const override {
        const int capture = model.opts.graph != PM_GRAPH_OFF ? 1 : 0;
        return std::max(3, eager_runs_before_capture(model) + capture);
    }

    // Each call's resizing, normalising and matte work runs on a stream of the ring;
    // calls larger than the model input on the ring's first stream only, after which
    // cached memory past the budget goes back to the driver.
    void with_call_stream(pm_shim_model &model, int64_t pixels, bool warm_up,
                          const std::function<void()> &body) override {
        CudaState &r = state_;
        const bool large = pixels > int64_t(model.config.input_width) * model.config.input_height;
        const unsigned index =
            large ? 0 : 1 + r.next_io.fetch_add(1, std::memory_order_relaxed) % (CudaState::kIoStreams - 1);
        {
            c10::cuda::CUDAGuard device_guard(device_);
            c10::cuda::CUDAStreamGuard stream_guard(r.io_streams[index]);
            body();
        }
        if (large) release_cache_over_budget(model);
        if (warm_up) note_warm_footprint(model);
    }

    std::shared_ptr<void> caller_sync(const pm_shim_model &) override {
        return std::make_shared<CallerSync>(c10::cuda::getCurrentCUDAStream(device_.index()));
    }

    void run_batch(pm_shim_model &model, const std::vector<BatchRequest *> &batch) override {
        run_batch_cuda(model, batch);
    }

    void prepare_batch_size(pm_shim_model &model, const at::Tensor &example_one, int n) override {
        prepare_cuda_batch_size(model, example_one, n);
    }

    at::Tensor upload(const pm_shim_model &, const uint8_t *bytes, int64_t count) override {
        if (count <= kPinnedStagingMax) {
            at::Tensor staging = pinned_bytes({count});
            std::memcpy(staging.data_ptr(), bytes, size_t(count));
            return staging.to(device_, /*non_blocking=*/true);
        }
        return torch::from_blob(const_cast<uint8_t *>(bytes), {count}, at::TensorOptions().dtype(at::kByte))
            .to(device_);
    }

    void download_matte(const at::Tensor &matte, const at::Tensor &finite, uint8_t *alpha_out) override {
        if (matte.numel() > kPinnedStagingMax) {
            // Straight into the caller's buffer: a synchronous copy, after which the
            // flag is there to read.
            torch::from_blob(alpha_out, matte.sizes(), at::TensorOptions().dtype(at::kByte)).copy_(matte);
            if (!finite.item<bool>()) fail(PM_ERR_MODEL, kNotFinite);
            return;
        }
        at::Tensor flag = pinned_bytes({}, at::kBool);
        flag.copy_(finite, /*non_blocking=*/true);
        at::Tensor staging = pinned_bytes(matte.sizes());
        staging.copy_(matte, /*non_blocking=*/true);
        c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
        if (!flag.item<bool>()) fail(PM_ERR_MODEL, kNotFinite);
        std::memcpy(alpha_out, staging.data_ptr(), size_t(staging.numel()));
    }

    bool has_graph() const override { return !state_.graphs.empty(); }
    int streams() const override { return 1 + int(state_.lanes.size()); }

    uint64_t device_memory() const override {
        const int64_t reserved = reserved_bytes(device_);
        return reserved > 0 ? uint64_t(reserved) : 0;
    }

    uint64_t device_memory_peak() const override {
        const int64_t peak =
            c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index()).reserved_bytes[0].peak;
        return peak > 0 ? uint64_t(peak) : 0;
    }

    std::string description() const override {
        return "cuda:" + std::to_string(int(device_.index())) + " " +
               at::cuda::getDeviceProperties(device_.index())->name;
    }

    void synchronize() override { torch::cuda::synchronize(device_.index()); }

    void release_cached_memory() noexcept override {
        try {
            c10::cuda::CUDACachingAllocator::emptyCache();
        } catch (...) {
        }
    }

private:
    c10::Device device_;
    CudaState state_;
    std::thread warmer_;
};

} // namespace

CudaState &state_of(const pm_shim_model &model) { return static_cast<CudaRunner &>(*model.runner).state(); }

std::unique_ptr<Runner> make_cuda_runner(const c10::Device &device) { return std::make_unique<CudaRunner>(device); }

int cuda_device_count() { return int(torch::cuda::device_count()); }

} // namespace petmatte
