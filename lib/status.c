/* status.c - pm_status: a snapshot under the context mutex, never a wait on a load. */
#include <stdio.h>
#include <string.h>

#include "context.h"

void pm_status_info_init_sized(pm_status_info *s, size_t struct_size) {
    if (!s || struct_size < sizeof(size_t)) return;
    memset(s, 0, struct_size);
    s->struct_size = struct_size;
}

pm_code pm_status(pm_ctx *c, pm_status_info *out) {
    if (!c) return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, "pm_status: ctx is NULL");
    if (!out) return pm_fail(c, PM_ERR_INVALID_ARGUMENT, "pm_status: info is NULL");
    size_t given = out->struct_size;
    if (given < offsetof(pm_status_info, state) + sizeof out->state)
        return pm_fail(c, PM_ERR_INVALID_ARGUMENT,
                       "pm_status: info.struct_size %zu is too small (use pm_status_info_init)", given);
    pm_status_info s;
    memset(&s, 0, sizeof s);
    pthread_mutex_lock(&c->mu);
    s.state = c->state;
    s.progress = c->progress;
    s.open_ms = c->open_ms;
    s.load_ms = c->load_ms;
    s.warmup_ms = c->state == PM_STATE_READY ? c->warmup_ms : 0.0;
    s.warmup_runs = c->warmup_runs;
    s.last_warmup_run_ms = c->last_run_ms;
    s.ready_unix = c->state == PM_STATE_READY ? c->ready_unix : 0.0;
    snprintf(s.device, sizeof s.device, "%s", c->device_desc);
    s.precision = c->precision_used ? c->precision_used : c->precision_request;
    snprintf(s.model_name, sizeof s.model_name, "%s", c->config.name[0] ? c->config.name : c->file_name);
    s.input_width = c->config.input_width;
    s.input_height = c->config.input_height;
    s.random_weights = c->config.random_weights;
    s.images_processed = c->images_processed;
    s.graph_safe = c->graph_safe;
    /* The model is published only when READY and freed only by pm_close. */
    s.device_memory_bytes = c->model ? pm_shim_device_memory(c->model) : 0;
    s.device_memory_peak_bytes = c->model ? pm_shim_device_memory_peak(c->model) : 0;
    s.cuda_graph = c->model ? pm_shim_uses_cuda_graph(c->model) : 0;
    s.max_batch = c->model ? pm_shim_max_batch(c->model) : 0;
    s.forward_passes = c->model ? pm_shim_forward_passes(c->model) : 0;
    s.frozen = c->model ? pm_shim_frozen(c->model) : 0;
    s.forward_streams = c->model ? pm_shim_forward_streams(c->model) : 0;
    s.last_error_code = c->last_error_code;
    snprintf(s.last_error, sizeof s.last_error, "%s", c->last_error);
    pthread_mutex_unlock(&c->mu);
    s.struct_size = given;
    /* No tail padding: `given` bytes are exactly the caller's fields. */
    memcpy(out, &s, given < sizeof s ? given : sizeof s);
    return PM_OK;
}
