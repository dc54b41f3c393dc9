/* errors.c - codes, messages and the per-thread / per-context last error. */
#include <stdio.h>
#include <string.h>

#include "context.h"

/* Why thread-local: several host threads share one context, and a message must
 * belong to the call that failed, not to whichever thread failed last. */
static _Thread_local const pm_ctx *tl_ctx;
static _Thread_local char tl_msg[PM_ERRMSG_CAP];
static _Thread_local char tl_copy[PM_ERRMSG_CAP];

const char *pm_strerror(pm_code code) {
    switch (code) {
    case PM_OK: return "not an error";
    case PM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case PM_ERR_NO_MEMORY: return "out of host memory";
    case PM_ERR_IO: return "model file missing or unreadable";
    case PM_ERR_DEVICE: return "device not available";
    case PM_ERR_MODEL: return "invalid model";
    case PM_ERR_DECODE: return "image could not be decoded";
    case PM_ERR_LIMIT: return "input exceeds a configured limit";
    case PM_ERR_INFERENCE: return "inference failed";
    case PM_ERR_DEVICE_OUT_OF_MEMORY: return "device out of memory";
    case PM_ERR_UNSUPPORTED: return "not supported by this build or device";
    case PM_ERR_CANCELLED: return "cancelled: the context is closing";
    case PM_ERR_INTERNAL: return "internal error";
    case PM_ERR_STATE: return "not valid in the context's current state";
    }
    return "unknown error code";
}

pm_code pm_fail(pm_ctx *ctx, pm_code code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    tl_ctx = ctx;
    if (ctx) {
        pthread_mutex_lock(&ctx->mu);
        ctx->last_error_code = code;
        snprintf(ctx->last_error, sizeof ctx->last_error, "%.*s", (int)sizeof ctx->last_error - 1, tl_msg);
        pthread_mutex_unlock(&ctx->mu);
    }
    return code;
}

const char *pm_errmsg(const pm_ctx *ctx) {
    if (tl_msg[0] && tl_ctx == ctx) return tl_msg;
    if (!ctx) return "no error";
    pm_ctx *c = (pm_ctx *)ctx; /* locking does not change what the caller sees */
    pthread_mutex_lock(&c->mu);
    snprintf(tl_copy, sizeof tl_copy, "%s", c->last_error[0] ? c->last_error : "no error");
    pthread_mutex_unlock(&c->mu);
    return tl_copy;
}
