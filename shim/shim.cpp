// shim.cpp - the C entry points of shim.h over libtorch: device choice, loading,
// and the one place where C++ exceptions become a pm_code and a message.
//
// Every entry point runs its body inside guarded(), so no exception reaches C.
// The tensor work of an inference lives in pipeline.cpp; what differs between
// devices lives behind the Runner interface (runner.hpp).
//
// Written against the libtorch APIs common to 1.13 and 2.x.
#include "shim_internal.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include <ATen/Parallel.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/version.h>

namespace petmatte {

void fail(pm_code code, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    throw ShimError(code, buf);
}

namespace {

constexpr const char *kManifestName = "petmatte.json";
constexpr size_t kMaxDetail = 300; // torch text quoted in one message, at most

std::string first_line(const std::string &s) {
    size_t start = s.find_first_not_of(" \t\r\n");
    if (start == std::string::npos) return std::string();
    size_t end = s.find('\n', start);
    std::string line = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    return line;
}

// "RuntimeError: ...", "torch.jit.Error: ..." and the like: the line in a TorchScript
// traceback that carries the original error.
bool is_error_line(const std::string &line) {
    size_t colon = line.find(": ");
    if (colon == std::string::npos || colon == 0) return false;
    std::string head = line.substr(0, colon);
    if (head.find(' ') != std::string::npos) return false;
    return head.size() >= 5 && (head.compare(head.size() - 5, 5, "Error") == 0 ||
                                (head.size() >= 9 && head.compare(head.size() - 9, 9, "Exception") == 0));
}

std::string lowercase(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

// The full text torch gave, minus the C++ backtrace where torch keeps them apart.
std::string full_message(const std::exception &e) {
    if (const auto *ce = dynamic_cast<const c10::Error *>(&e)) return ce->what_without_backtrace();
    return e.what();
}

// Out-of-memory, however torch reported it: c10::OutOfMemoryError from the CUDA
// allocator, or (once the TorchScript interpreter has re-thrown it, or from the CPU
// allocator) only the words in the message.
bool is_out_of_memory(const std::exception &e) {
    if (dynamic_cast<const c10::OutOfMemoryError *>(&e)) return true;
    const std::string m = lowercase(full_message(e));
    return m.find("out of memory") != std::string::npos || m.find("not enough memory") != std::string::npos ||
           m.find("can't allocate memory") != std::string::npos ||
           m.find("alloc_failed") != std::string::npos; // cuDNN/cuBLAS: *_STATUS_ALLOC_FAILED
}

void write_message(char *err, size_t errcap, const std::string &msg) {
    if (err && errcap > 0) std::snprintf(err, errcap, "%s", msg.c_str());
}

std::string device_name(const c10::Device &device) {
    return device.is_cuda() ? "cuda:" + std::to_string(device.index()) : std::string("cpu");
}

// Runs body(); turns every exception into a pm_code and a message "<doing>: <why>".
// `fallback` is the code for torch errors that are not out-of-memory. *model, when
// set, names the device in OOM messages and gets its cache emptied, so that a later
// call (or another process) can get the memory.
template <class Body>
pm_code guarded(char *err, size_t errcap, pm_code fallback, const char *doing, pm_shim_model *const *model,
                Body &&body) noexcept {
    try {
        try {
            body();
            return PM_OK;
        } catch (const ShimError &e) {
            write_message(err, errcap, e.what());
            return e.code();
        } catch (const std::bad_alloc &) {
            write_message(err, errcap, std::string(doing) + ": out of host memory");
            return PM_ERR_NO_MEMORY;
        } catch (const std::exception &e) { // c10::Error and the interpreter's std::runtime_error
            std::string why = short_message(e);
            if (is_out_of_memory(e)) {
                const pm_shim_model *m = model ? *model : nullptr;
                if (m && m->runner) m->runner->release_cached_memory();
                std::string where = m ? device_name(m->device) : std::string("device");
                write_message(err, errcap, std::string(doing) + ": " + where + " out of memory: " + why);
                return PM_ERR_DEVICE_OUT_OF_MEMORY;
            }
            write_message(err, errcap, std::string(doing) + ": " + why);
            return fallback;
        } catch (...) {
            write_message(err, errcap, std::string(doing) + ": unknown C++ exception");
            return PM_ERR_INTERNAL;
        }
    } catch (...) { // building a message threw (std::bad_alloc): say as much as we can
        write_message(err, errcap, "out of host memory while reporting an error");
        return PM_ERR_NO_MEMORY;
    }
}

at::ScalarType dtype_of(pm_precision precision) {
    switch (precision) {
    case PM_PRECISION_FP32: return at::kFloat;
    case PM_PRECISION_FP16: return at::kHalf;
    case PM_PRECISION_BF16: return at::kBFloat16;
    default: fail(PM_ERR_INVALID_ARGUMENT, "precision %d is not fp32, fp16 or bf16 (resolve auto first)", int(precision));
    }
}

// The device to load onto and its runner, or a PM_ERR_DEVICE naming what is
// visible. Never another device than the one asked for.
void choose_device(pm_shim_model &model, pm_device_kind kind, int index) {
    if (kind == PM_DEVICE_CPU) {
        model.device = c10::Device(c10::kCPU);
        model.runner = make_cpu_runner();
        return;
    }
    if (kind != PM_DEVICE_CUDA) fail(PM_ERR_INVALID_ARGUMENT, "unknown device kind %d", int(kind));
    const int n = cuda_device_count();
    if (n < 0) fail(PM_ERR_DEVICE, "cuda:%d requested, but this build of libpetmatte has no CUDA support", index);
    if (n == 0) fail(PM_ERR_DEVICE, "cuda:%d requested, but no CUDA device is visible", index);
    if (index < 0 || index >= n)
        fail(PM_ERR_DEVICE, "cuda:%d requested, but only %d CUDA device%s visible (cuda:0..cuda:%d)", index, n,
             n == 1 ? " is" : "s are", n - 1);
    model.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
    model.runner = make_cuda_runner(model.device);
}

// Missing or unreadable is an I/O error; anything torch then rejects is the model's.
void check_readable(const char *path) {
    std::FILE *f = std::fopen(path, "rb");
    if (!f) fail(PM_ERR_IO, "cannot open model file %s: %s", path, std::strerror(errno));
    errno = 0;
    const int c = std::fgetc(f); // a directory opens, but fails here (EISDIR)
    const int read_errno = errno;
    const bool read_error = std::ferror(f) != 0;
    std::fclose(f);
    if (read_error) fail(PM_ERR_IO, "cannot read model file %s: %s", path, std::strerror(read_errno));
    if (c == EOF) fail(PM_ERR_MODEL, "not a TorchScript archive: %s: the file is empty", path);
}

torch::jit::Module load_module(const char *path, const c10::Device &device, std::string &manifest) {
    // Asking for the extra file by name makes torch copy it out if it exists; the
    // value stays "" otherwise. Loading with `device` maps the weights straight there.
    torch::jit::ExtraFilesMap extra{{kManifestName, ""}};
    torch::jit::Module module;
    try {
        module = torch::jit::load(path, device, extra);
    } catch (const std::exception &e) {
        if (is_out_of_memory(e)) throw;
        const std::string m = full_message(e);
        // Errors from the zip reader mean the file is not (a whole) TorchScript archive;
        // others (e.g. an operator this libtorch does not know) mean it cannot run here.
        if (m.find("PytorchStreamReader") != std::string::npos || m.find("zip archive") != std::string::npos ||
            m.find("file not found") != std::string::npos)
            fail(PM_ERR_MODEL, "not a TorchScript archive (or truncated): %s: %s", path, short_message(e).c_str());
        // A file written by a newer torch may call operators this libtorch lacks
        // (InSPyReNet exports from torch 2.x use scaled_dot_product_attention).
        if (m.find("Unknown builtin op") != std::string::npos)
            fail(PM_ERR_MODEL, "cannot load TorchScript model %s: it uses an operator libtorch %s lacks "
                 "(a file from a newer torch?): %s", path, TORCH_VERSION, short_message(e).c_str());
        if (device.is_cuda() && m.find("CUDA") != std::string::npos)
            fail(PM_ERR_DEVICE, "cannot load %s onto %s: %s", path, device_name(device).c_str(),
                 short_message(e).c_str());
        fail(PM_ERR_MODEL, "cannot load TorchScript model %s: %s", path, short_message(e).c_str());
    }
    manifest = extra[kManifestName];
    return module;
}

// Moves 0-dim tensor constants of every method's graph back to the CPU. A traced
// model computes shapes with them (h // window -> floor_divide(size, CONSTANT) ->
// int); loading onto a GPU maps them there too, so each int() becomes a device
// synchronisation: slower, and impossible inside a CUDA graph capture. A 0-dim
// CPU tensor mixes with CUDA tensors in every op (as a scalar), so this changes
// no result. Weights and buffers stay on the device.
void scalar_constants_to_cpu(torch::jit::Module &module) {
    for (const torch::jit::Module &m : module.modules()) {
        for (const torch::jit::Method &method : m.get_methods()) {
            std::vector<torch::jit::Block *> blocks{method.graph()->block()};
            while (!blocks.empty()) {
                torch::jit::Block *block = blocks.back();
                blocks.pop_back();
                for (torch::jit::Node *node : block->nodes()) {
                    for (torch::jit::Block *inner : node->blocks()) blocks.push_back(inner);
                    if (node->kind() != c10::prim::Constant || !node->hasAttribute(c10::attr::value) ||
                        node->kindOf(c10::attr::value) != torch::jit::AttributeKind::t)
                        continue;
                    const at::Tensor t = node->t(c10::attr::value);
                    if (t.dim() != 0 || t.is_cpu()) continue;
                    const at::Tensor host = t.cpu();
                    node->t_(c10::attr::value, host);
                    node->output()->inferTypeFrom(host);
                }
            }
        }
    }
}

// Floating-point weights and buffers to dtype, on the device (no host copy).
// Not Module::to(dtype): that converts every tensor, integer index buffers too
// (Swin's relative_position_index), which then cannot index anything.
void convert_floating(torch::jit::Module &module, at::ScalarType dtype) {
    for (at::Tensor p : module.parameters(/*recurse=*/true)) {
        if (p.is_floating_point()) p.set_data(p.to(dtype));
    }
    for (at::Tensor b : module.buffers(/*recurse=*/true)) {
        if (b.is_floating_point()) b.set_data(b.to(dtype));
    }
}

// Convolution weights in NHWC order, so cuDNN picks its tensor-core NHWC kernels
// for an NHWC input instead of transposing at every layer.
void to_channels_last(torch::jit::Module &module) {
    for (at::Tensor p : module.parameters(/*recurse=*/true)) {
        if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    }
}

// With opts.freeze: torch.jit.freeze in C++. Parameters and attributes become
// constants of the graph, and BatchNorm (and constant adds and multiplies) fold into
// the convolution before it. On a GPU also optimize_for_inference (its conv + add +
// relu fusions); never on the CPU, where that pass converts the graph to MKL-DNN
// layouts. After the dtype and memory order conversions, since constants no longer
// follow Module::to.
void maybe_freeze(pm_shim_model &model) {
    if (model.opts.freeze != 1) return;
    try {
        torch::jit::Module frozen = torch::jit::freeze(model.module);
        if (model.device.is_cuda()) {
            frozen = torch::jit::optimize_for_inference(frozen);
            scalar_constants_to_cpu(frozen); // folding may have made new 0-dim constants
        }
        model.module = frozen;
        model.frozen = true;
    } catch (const std::exception &e) {
        if (is_out_of_memory(e)) throw;
        fail(PM_ERR_UNSUPPORTED, "cannot freeze the model (tune freeze to 0 or -1): %s", short_message(e).c_str());
    }
}

char *copy_string(const std::string &s) {
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (!p) fail(PM_ERR_NO_MEMORY, "cannot allocate %zu bytes for the manifest", s.size() + 1);
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    return p;
}

void check_config(const pm_model_config &c) {
    if (c.input_width < 1 || c.input_height < 1 || c.input_width > 8192 || c.input_height > 8192)
        fail(PM_ERR_INVALID_ARGUMENT, "model input size %dx%d is outside 1..8192", c.input_width, c.input_height);
    for (int i = 0; i < 3; ++i) {
        if (!std::isfinite(c.mean[i]) || !std::isfinite(c.std[i]) || !(c.std[i] > 0.0f))
            fail(PM_ERR_INVALID_ARGUMENT, "mean[%d]=%g std[%d]=%g: need finite values and std > 0", i,
                 double(c.mean[i]), i, double(c.std[i]));
    }
    if (c.activation != PM_ACTIVATION_PROBABILITY && c.activation != PM_ACTIVATION_LOGIT)
        fail(PM_ERR_INVALID_ARGUMENT, "unknown output activation %d", c.activation);
}

void check_image(const uint8_t *pixels, int width, int height, size_t stride, int channels, const uint8_t *alpha_out) {
    if (!pixels || !alpha_out) fail(PM_ERR_INVALID_ARGUMENT, "pixels and alpha_out must not be NULL");
    if (width < 1 || height < 1) fail(PM_ERR_INVALID_ARGUMENT, "image size %dx%d: both must be >= 1", width, height);
    if (channels != 3 && channels != 4) fail(PM_ERR_INVALID_ARGUMENT, "channels is %d, expected 3 or 4", channels);
    if (stride < size_t(width) * size_t(channels))
        fail(PM_ERR_INVALID_ARGUMENT, "stride %zu is less than width*channels = %zu", stride,
             size_t(width) * size_t(channels));
    // Torch indexes with int64: keep the byte span well inside it.
    if (stride > (size_t(1) << 40) / size_t(height))
        fail(PM_ERR_INVALID_ARGUMENT, "image of %d rows of %zu bytes is too large", height, stride);
}

// The options lib/ resolved: concrete values only, in range.
void check_options(const pm_shim_options &o, bool cuda) {
    const auto flag = [](int v) { return v == 0 || v == 1; };
    if (o.graph < PM_GRAPH_OFF || o.graph > PM_GRAPH_REQUIRE || (!cuda && o.graph != PM_GRAPH_OFF))
        fail(PM_ERR_INTERNAL, "graph mode %d is not resolved for this device", o.graph);
    if (!flag(o.channels_last) || !flag(o.jit_optimize) || !flag(o.freeze))
        fail(PM_ERR_INTERNAL, "channels_last %d, jit_optimize %d, freeze %d: each must be 0 or 1", o.channels_last,
             o.jit_optimize, o.freeze);
    if (o.precision != PM_PRECISION_FP32 && o.precision != PM_PRECISION_FP16 && o.precision != PM_PRECISION_BF16)
        fail(PM_ERR_INTERNAL, "precision %d is not resolved", o.precision);
    if (!cuda && o.precision == PM_PRECISION_FP16)
        fail(PM_ERR_UNSUPPORTED, "fp16 needs a CUDA device; use fp32 or bf16 on cpu");
    if (o.max_batch < 1 || o.batch_wait_us < 0 || o.device_cache_mb < 0 || o.forward_streams < 1 ||
        o.forward_streams > PM_MAX_FORWARD_STREAMS || (!cuda && o.forward_streams != 1))
        fail(PM_ERR_INTERNAL, "max_batch %d, batch_wait_us %d, device_cache_mb %d, forward_streams %d: not resolved",
             o.max_batch, o.batch_wait_us, o.device_cache_mb, o.forward_streams);
}

// The checks pm_shim_backdrop and pm_shim_compose share.
void check_compose_args(const uint8_t *photo, size_t stride, int channels, int width, int height,
                        const pm_backdrop *backdrop) {
    if (!photo || !backdrop) fail(PM_ERR_INVALID_ARGUMENT, "background: NULL photo or backdrop");
    if (width < 1 || height < 1 || (channels != 3 && channels != 4) || stride < size_t(width) * size_t(channels))
        fail(PM_ERR_INVALID_ARGUMENT, "background: bad photo (%dx%d, %d channels, stride %zu)", width, height,
             channels, stride);
    // Torch indexes with int64 and the sizes are ints: keep well inside both.
    if (int64_t(width) + height > INT32_MAX || int64_t(width) * height > (int64_t(1) << 36))
        fail(PM_ERR_INVALID_ARGUMENT, "background: %dx%d is too large", width, height);
    check_backdrop(*backdrop);
}

// Runs body on model's device and call stream, or on the CPU for a NULL model.
template <typename Body> void on_device_of(pm_shim_model *model, int64_t pixels, Body &&body) {
    if (!model) {
        body(c10::Device(c10::kCPU));
        return;
    }
    model->runner->with_call_stream(*model, pixels, /*warm_up=*/false, [&] { body(model->device); });
}

} // namespace

std::string short_message(const std::exception &e) {
    const std::string m = full_message(e);
    std::string line;
    // TorchScript interpreter errors open with a generic sentence and a TorchScript
    // traceback; the original error is the "SomethingError: ..." line after it.
    if (m.find("Traceback of TorchScript") != std::string::npos ||
        m.find("The following operation failed in the TorchScript interpreter") != std::string::npos) {
        size_t pos = 0;
        while (pos < m.size()) {
            size_t end = m.find('\n', pos);
            std::string l = m.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
            if (is_error_line(l)) line = l; // keep the last one: the innermost cause
            if (end == std::string::npos) break;
            pos = end + 1;
        }
    }
    if (line.empty()) line = first_line(m);
    if (line.empty()) line = "(no message)";
    if (line.size() > kMaxDetail) line = line.substr(0, kMaxDetail) + "...";
    return line;
}

} // namespace petmatte

using petmatte::fail;
using petmatte::guarded;

extern "C" {

pm_code pm_shim_cuda_device_count(int *count, char *err, size_t errcap) {
    if (count) *count = 0;
    return guarded(err, errcap, PM_ERR_DEVICE, "counting CUDA devices", nullptr, [&] {
        if (!count) fail(PM_ERR_INVALID_ARGUMENT, "count must not be NULL");
        *count = std::max(0, petmatte::cuda_device_count());
    });
}

void pm_shim_set_cpu_threads(int n) {
    if (n <= 0) return;
    try {
        at::set_num_threads(n);
    } catch (...) { // torch may refuse once its pool runs; keeping its setting is fine
    }
}

pm_code pm_shim_load(const char *path, pm_device_kind kind, int device_index, pm_precision precision,
                     pm_shim_model **out, char **manifest_json, char *err, size_t errcap) {
    if (out) *out = nullptr;
    if (manifest_json) *manifest_json = nullptr;
    // Set once the device is chosen, so that an OOM names it and empties its cache.
    pm_shim_model *loading = nullptr;
    return guarded(err, errcap, PM_ERR_MODEL, "loading the model", &loading, [&] {
        if (!path || !*path || !out || !manifest_json)
            fail(PM_ERR_INVALID_ARGUMENT, "path, out and manifest_json must not be NULL or empty");
        const at::ScalarType dtype = petmatte::dtype_of(precision);
        auto model = std::make_unique<pm_shim_model>();
        petmatte::choose_device(*model, kind, device_index);
        // Torch 1.13's CPU kernels have no fp16 convolution ("slow_conv2d_cpu" not
        // implemented for 'Half'); bf16 convolution runs there, so bf16 is allowed.
        if (model->device.is_cpu() && precision == PM_PRECISION_FP16)
            fail(PM_ERR_UNSUPPORTED, "fp16 needs a CUDA device; use fp32 or bf16 on cpu");
        petmatte::check_readable(path);
        loading = model.get();

        std::string manifest;
        model->runner->begin_load(dtype);
        try {
            model->module = petmatte::load_module(path, model->device, manifest);
        } catch (...) {
            model->runner->finish_load();
            throw;
        }
        model->runner->finish_load(); // the device's library loads are done before the model runs
        model->module.eval();
        if (dtype != at::kFloat) petmatte::convert_floating(model->module, dtype);
        if (model->device.is_cuda()) petmatte::scalar_constants_to_cpu(model->module);
        // After the last change to the methods' graphs: inlining caches each called
        // method's optimised graph, which the executor then runs.
        model->graph_safe = petmatte::forward_is_graph_safe(model->module);
        model->dtype = dtype;

        // An empty extra file is indistinguishable from a missing one: both are "absent".
        char *json = manifest.empty() ? nullptr : petmatte::copy_string(manifest);
        loading = nullptr;
        *out = model.release();
        *manifest_json = json;
    });
}

int pm_shim_graph_safe(const pm_shim_model *model) { return model && model->graph_safe ? 1 : 0; }

pm_code pm_shim_configure(pm_shim_model *model, const pm_model_config *config, const pm_shim_options *opts,
                          char *err, size_t errcap) {
    return guarded(err, errcap, PM_ERR_DEVICE, "configuring the model", &model, [&] {
        if (!model || !config || !opts) fail(PM_ERR_INVALID_ARGUMENT, "model, config and opts must not be NULL");
        if (model->configured) fail(PM_ERR_INTERNAL, "pm_shim_configure called twice");
        petmatte::check_config(*config);
        petmatte::check_options(*opts, model->device.is_cuda());
        model->opts = *opts;
        const at::ScalarType dtype = petmatte::dtype_of(static_cast<pm_precision>(opts->precision));
        if (dtype != model->dtype) {
            // The CPU's bf16 is chosen once the manifest says the model runs NHWC: the
            // file was loaded in fp32 and is converted here, before NHWC and freezing.
            if (model->dtype != at::kFloat)
                fail(PM_ERR_INTERNAL, "precision %d over a model loaded in %s", opts->precision,
                     c10::toString(model->dtype));
            petmatte::convert_floating(model->module, dtype);
            model->dtype = dtype;
        }
        if (opts->channels_last) petmatte::to_channels_last(model->module);
        petmatte::maybe_freeze(*model);
        petmatte::prepare_config(*model, *config);
        model->configured = true;
    });
}

pm_code pm_shim_infer(pm_shim_model *model, const uint8_t *pixels, int width, int height, size_t stride,
                      int channels, uint8_t *alpha_out, char *err, size_t errcap) {
    return guarded(err, errcap, PM_ERR_INFERENCE, "inference failed", &model, [&] {
        if (!model) fail(PM_ERR_INVALID_ARGUMENT, "model must not be NULL");
        if (!model->configured) fail(PM_ERR_INTERNAL, "pm_shim_infer called before pm_shim_configure");
        if (stride == 0) stride = size_t(width > 0 ? width : 0) * size_t(channels > 0 ? channels : 0);
        petmatte::check_image(pixels, width, height, stride, channels, alpha_out);
        petmatte::run_pipeline(*model, pixels, width, height, stride, channels, alpha_out, /*warm_up=*/false);
    });
}

pm_code pm_shim_warm_once(pm_shim_model *model, double *ms, char *err, size_t errcap) {
    if (ms) *ms = 0.0;
    return guarded(err, errcap, PM_ERR_INFERENCE, "warm-up inference failed", &model, [&] {
        if (!model || !ms) fail(PM_ERR_INVALID_ARGUMENT, "model and ms must not be NULL");
        if (!model->configured) fail(PM_ERR_INTERNAL, "pm_shim_warm_once called before pm_shim_configure");
        const int w = model->config.input_width, h = model->config.input_height;
        std::vector<uint8_t> alpha(size_t(w) * size_t(h));
        // Drain earlier queued work so it is not billed to this run.
        model->runner->synchronize();
        const auto t0 = std::chrono::steady_clock::now();
        petmatte::run_pipeline(*model, model->warm_pixels.data(), w, h, size_t(w) * 3, 3, alpha.data(),
                               /*warm_up=*/true);
        model->runner->synchronize();
        const auto t1 = std::chrono::steady_clock::now();
        *ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    });
}

pm_code pm_shim_prepare_batches(pm_shim_model *model, double *ms, char *err, size_t errcap) {
    if (ms) *ms = 0.0;
    return guarded(err, errcap, PM_ERR_INFERENCE, "preparing batched inference", &model, [&] {
        if (!model || !ms) fail(PM_ERR_INVALID_ARGUMENT, "model and ms must not be NULL");
        if (!model->configured) fail(PM_ERR_INTERNAL, "pm_shim_prepare_batches called before pm_shim_configure");
        if (model->opts.max_batch <= 1) {
            model->max_batch = 1;
            return;
        }
        const auto t0 = std::chrono::steady_clock::now();
        // Model-sized work: a call stream of the ring.
        model->runner->with_call_stream(*model, 0, /*warm_up=*/true, [&] { petmatte::prepare_batches(*model); });
        model->runner->synchronize();
        *ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    });
}

int pm_shim_max_batch(const pm_shim_model *model) { return model ? model->max_batch : 0; }

uint64_t pm_shim_forward_passes(pm_shim_model *model) { return model ? model->batcher.passes() : 0; }

int pm_shim_frozen(const pm_shim_model *model) { return model && model->frozen ? 1 : 0; }

int pm_shim_warmup_runs(const pm_shim_model *model) {
    return model && model->runner ? model->runner->warmup_runs(*model) : 1;
}

int pm_shim_forward_streams(const pm_shim_model *model) {
    return model && model->runner ? model->runner->streams() : 0;
}

int pm_shim_uses_cuda_graph(const pm_shim_model *model) {
    return model && model->runner && model->runner->has_graph() ? 1 : 0;
}

void pm_shim_device_description(const pm_shim_model *model, char *buf, size_t cap) {
    if (!buf || cap == 0) return;
    try {
        std::snprintf(buf, cap, "%s", model && model->runner ? model->runner->description().c_str() : "");
    } catch (...) { // the name is decoration: fall back to the bare device
        std::snprintf(buf, cap, "%s", model ? petmatte::device_name(model->device).c_str() : "");
    }
}

uint64_t pm_shim_device_memory(const pm_shim_model *model) {
    try {
        return model && model->runner ? model->runner->device_memory() : 0;
    } catch (...) {
        return 0;
    }
}

uint64_t pm_shim_device_memory_peak(const pm_shim_model *model) {
    try {
        return model && model->runner ? model->runner->device_memory_peak() : 0;
    } catch (...) {
        return 0;
    }
}

int pm_shim_is_cuda(const pm_shim_model *model) { return model && model->device.is_cuda() ? 1 : 0; }

pm_code pm_shim_estimate_foreground(pm_shim_model *model, const uint8_t *rgba, const uint8_t *alpha, int width,
                                    int height, const pm_fg_plan *plan, uint8_t *rgb_out, char *err,
                                    size_t errcap) {
    return guarded(err, errcap, PM_ERR_DEVICE, "clean edges", &model, [&] {
        if (!model || !rgba || !alpha || !plan || !rgb_out)
            fail(PM_ERR_INVALID_ARGUMENT, "clean edges: NULL model, image, matte, plan or output");
        if (width < 1 || height < 1) fail(PM_ERR_INVALID_ARGUMENT, "clean edges: bad size %dx%d", width, height);
        // Torch indexes with int64 and the level sizes are ints: keep well inside both.
        if (int64_t(width) + height > INT32_MAX || int64_t(width) * height > (int64_t(1) << 36))
            fail(PM_ERR_INVALID_ARGUMENT, "clean edges: %dx%d is too large", width, height);
        model->runner->with_call_stream(*model, int64_t(width) * height, /*warm_up=*/false, [&] {
            petmatte::estimate_foreground(model->device, rgba, alpha, width, height, *plan, rgb_out);
        });
    });
}

pm_code pm_shim_backdrop(pm_shim_model *model, const uint8_t *photo, size_t stride, int channels, int width,
                         int height, const pm_backdrop *backdrop, uint8_t *bg_out, char *err, size_t errcap) {
    return guarded(err, errcap, PM_ERR_DEVICE, "background", &model, [&] {
        petmatte::check_compose_args(photo, stride, channels, width, height, backdrop);
        if (!bg_out) fail(PM_ERR_INVALID_ARGUMENT, "background: NULL output");
        petmatte::on_device_of(model, int64_t(width) * height, [&](const c10::Device &device) {
            petmatte::make_backdrop(device, photo, stride, channels, width, height, *backdrop, bg_out);
        });
    });
}

pm_code pm_shim_compose(pm_shim_model *model, const uint8_t *photo, size_t stride, int channels,
                        const uint8_t *fg, const uint8_t *alpha, int width, int height,
                        const pm_backdrop *backdrop, uint8_t *rgb_out, char *err, size_t errcap) {
    return guarded(err, errcap, PM_ERR_DEVICE, "background", &model, [&] {
        petmatte::check_compose_args(photo, stride, channels, width, height, backdrop);
        if (!alpha || !rgb_out) fail(PM_ERR_INVALID_ARGUMENT, "background: NULL matte or output");
        petmatte::on_device_of(model, int64_t(width) * height, [&](const c10::Device &device) {
            petmatte::compose(device, photo, stride, channels, fg, alpha, width, height, *backdrop, rgb_out);
        });
    });
}

void pm_shim_free(pm_shim_model *model) {
    if (!model) return;
    std::unique_ptr<petmatte::Runner> runner = std::move(model->runner);
    try {
        delete model;
    } catch (...) { // tensor destructors do not throw; this only keeps the C boundary tight
    }
    // Give the freed weights back to the driver rather than keep them cached for
    // nobody. Blocks other live models use are untouched.
    if (runner) runner->release_cached_memory();
}

} // extern "C"
