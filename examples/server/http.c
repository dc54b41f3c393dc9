/*
 * http.c - the API of petmatte-server.
 *
 *   GET  /health     liveness only: {"ok":true}; never touches the model
 *   GET  /status     the library's status snapshot as JSON (never blocks)
 *   GET  /ready      the same JSON; 200 when READY (and not draining), else 503 (for load balancers)
 *   POST /warmup     starts the warm-up in the background; 202 while it runs, 200 when READY
 *   POST /remove-bg  image in (raw body or multipart/form-data), PNG cut-out out
 *   GET  anything else: a file from the static folder, or 404
 *
 * MHD calls srv_handle once with the headers, once per chunk of body, and once more
 * when the body is complete. Only /remove-bg reads a body; everything else answers on
 * the first call. Upload size is enforced on Content-Length before any body is read,
 * and on the bytes counted while receiving (chunked uploads), never after buffering.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "server.h"

/* After an upload went over the limit its remaining bytes are read and dropped so the
 * client can read the 413; past this much more, the connection is simply closed. */
#define DRAIN_MAX_BYTES ((uint64_t)64 << 20)
#define POST_BUFFER_BYTES 65536
/* Rounded so the JSON reads 12.345, not 12.345000000000001. */
#define R3(x) (round((x) * 1e3) / 1e3)

typedef struct request {
    uint64_t received;        /* body bytes seen so far (multipart framing included) */
    int too_large;
    int out_of_memory;
    unsigned char *body;      /* the image bytes */
    size_t len, cap;
    struct MHD_PostProcessor *pp; /* multipart/form-data only */
    int pp_failed;
    char *part_key;           /* the form field whose bytes we keep */
    int part_done;
    int arrival_state;        /* the library's state when the headers came (pm_state) */
    double arrival_ms;
    unsigned char *background; /* the multipart field "background": a picture for bg=image */
    size_t background_len, background_cap;
    int background_done;       /* a second "background" field is ignored */
} request;

/* ------------------------------------------------------------ small helpers */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *code_name(int code) {
    switch ((pm_code)code) {
    case PM_OK: return "PM_OK";
    case PM_ERR_INVALID_ARGUMENT: return "PM_ERR_INVALID_ARGUMENT";
    case PM_ERR_NO_MEMORY: return "PM_ERR_NO_MEMORY";
    case PM_ERR_IO: return "PM_ERR_IO";
    case PM_ERR_DEVICE: return "PM_ERR_DEVICE";
    case PM_ERR_MODEL: return "PM_ERR_MODEL";
    case PM_ERR_DECODE: return "PM_ERR_DECODE";
    case PM_ERR_LIMIT: return "PM_ERR_LIMIT";
    case PM_ERR_INFERENCE: return "PM_ERR_INFERENCE";
    case PM_ERR_DEVICE_OUT_OF_MEMORY: return "PM_ERR_DEVICE_OUT_OF_MEMORY";
    case PM_ERR_UNSUPPORTED: return "PM_ERR_UNSUPPORTED";
    case PM_ERR_CANCELLED: return "PM_ERR_CANCELLED";
    case PM_ERR_INTERNAL: return "PM_ERR_INTERNAL";
    case PM_ERR_STATE: return "PM_ERR_STATE";
    }
    return "PM_ERR_UNKNOWN";
}

/* Which HTTP status a library failure becomes. 503: the model or device, not the
 * request, is the problem; the client may try again later (after POST /warmup). */
static unsigned http_status_for(pm_code code) {
    switch (code) {
    case PM_ERR_INVALID_ARGUMENT:
    case PM_ERR_DECODE: return MHD_HTTP_BAD_REQUEST;
    case PM_ERR_LIMIT: return MHD_HTTP_CONTENT_TOO_LARGE;
    case PM_ERR_UNSUPPORTED: return MHD_HTTP_UNPROCESSABLE_CONTENT;
    case PM_ERR_IO:
    case PM_ERR_DEVICE:
    case PM_ERR_MODEL:
    case PM_ERR_CANCELLED:
    case PM_ERR_DEVICE_OUT_OF_MEMORY: return MHD_HTTP_SERVICE_UNAVAILABLE;
    default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* Queues obj (consumed) as the JSON body of a response with the given status. */
static enum MHD_Result send_json_h(struct MHD_Connection *conn, unsigned status, json_t *obj,
                                   const char *header, const char *value) {
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(obj);
    if (!text) return MHD_NO;
    size_t n = strlen(text);
    struct MHD_Response *r = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (header) MHD_add_response_header(r, header, value);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *obj) {
    return send_json_h(conn, status, obj, NULL, NULL);
}

static json_t *error_json(const char *code, const char *message) {
    return json_pack("{s:s, s:s}", "error", message ? message : "", "code", code);
}

enum MHD_Result srv_send_error(struct MHD_Connection *conn, unsigned status, const char *code,
                               const char *message) {
    return send_json(conn, status, error_json(code, message));
}

static enum MHD_Result send_method_not_allowed(struct MHD_Connection *conn, const char *allow) {
    char msg[128];
    snprintf(msg, sizeof msg, "method not allowed here; use %s", allow);
    return send_json_h(conn, MHD_HTTP_METHOD_NOT_ALLOWED, error_json("method_not_allowed", msg),
                       MHD_HTTP_HEADER_ALLOW, allow);
}

/* The library's status as JSON; NULL when even that fails. */
static json_t *status_json(const srv_app *app) {
    pm_status_info s;
    pm_status_info_init(&s);
    if (pm_status(app->ctx, &s) != PM_OK) return NULL;
    json_t *last_error = json_null();
    if (s.last_error_code != PM_OK)
        last_error = json_pack("{s:s, s:s}", "code", code_name(s.last_error_code), "message", s.last_error);
    /* graph_safe: true or false once the model is loaded, null before. */
    json_t *graph_safe = s.graph_safe < 0 ? json_null() : json_boolean(s.graph_safe);
    json_t *obj = json_pack("{s:s, s:b, s:f, s:f, s:f, s:f, s:i, s:f, s:f, s:s, s:s, s:s, s:i, s:i, s:b,"
                     " s:I, s:I, s:i, s:I, s:i, s:b, s:o, s:b, s:o, s:s, s:I}",
                     "state", pm_state_name((pm_state)s.state),
                     "ready", s.state == PM_STATE_READY,
                     "progress", round(s.progress * 1e4) / 1e4,
                     "open_ms", R3(s.open_ms),
                     "load_ms", R3(s.load_ms),
                     "warmup_ms", R3(s.warmup_ms),
                     "warmup_runs", s.warmup_runs,
                     "last_warmup_run_ms", R3(s.last_warmup_run_ms),
                     "ready_unix", R3(s.ready_unix),
                     "device", s.device,
                     "model", s.model_name,
                     "precision", pm_precision_name((pm_precision)s.precision),
                     "input_width", s.input_width,
                     "input_height", s.input_height,
                     "random_weights", s.random_weights != 0,
                     "images_processed", (json_int_t)s.images_processed,
                     "device_memory_bytes", (json_int_t)s.device_memory_bytes,
                     "max_batch", s.max_batch,
                     "forward_passes", (json_int_t)s.forward_passes,
                     "forward_streams", s.forward_streams,
                     "cuda_graph", s.cuda_graph != 0,
                     "graph_safe", graph_safe,
                     "frozen", s.frozen != 0,
                     "last_error", last_error,
                     "library_version", pm_version(),
                     "max_upload_bytes", (json_int_t)app->max_upload_bytes);
    if (obj) json_object_set_new(obj, "requests", srv_adm_json(app->adm));
    return obj;
}

/* Queues a library failure: its message and code, plus the status when the model or
 * device is to blame (503). */
static enum MHD_Result send_pm_error(const srv_app *app, struct MHD_Connection *conn, pm_code rc,
                                     const char *message) {
    unsigned status = http_status_for(rc);
    json_t *obj = error_json(code_name(rc), message);
    if (!obj) return MHD_NO;
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        json_t *st = status_json(app);
        if (st) json_object_set_new(obj, "status", st);
        if (rc == PM_ERR_DEVICE_OUT_OF_MEMORY) return send_json_h(conn, status, obj, "Retry-After", "1");
    }
    return send_json(conn, status, obj);
}

static int is_method(const char *method, const char *want) { return strcmp(method, want) == 0; }
static int is_get(const char *method) { return is_method(method, "GET") || is_method(method, "HEAD"); }

/* ------------------------------------------------------------ simple endpoints */

static enum MHD_Result handle_status(const srv_app *app, struct MHD_Connection *conn, int ready_only) {
    json_t *st = status_json(app);
    if (!st) return srv_send_error(conn, 500, code_name(PM_ERR_INTERNAL), pm_errmsg(app->ctx));
    unsigned code = MHD_HTTP_OK;
    /* A draining process keeps state "ready" but wants no new traffic. */
    if (ready_only && (!json_is_true(json_object_get(st, "ready")) || srv_adm_draining(app->adm)))
        code = MHD_HTTP_SERVICE_UNAVAILABLE;
    return send_json(conn, code, st);
}

static enum MHD_Result handle_warmup(const srv_app *app, struct MHD_Connection *conn) {
    /* A no-op while a warm-up runs or once READY; after a failure, tries again. */
    pm_code rc = pm_warmup_start(app->ctx);
    if (rc != PM_OK) return send_pm_error(app, conn, rc, pm_errmsg(app->ctx));
    json_t *st = status_json(app);
    if (!st) return srv_send_error(conn, 500, code_name(PM_ERR_INTERNAL), pm_errmsg(app->ctx));
    unsigned code = json_is_true(json_object_get(st, "ready")) ? MHD_HTTP_OK : MHD_HTTP_ACCEPTED;
    return send_json(conn, code, st);
}

/* ------------------------------------------------------------ /remove-bg */

typedef struct option_parse {
    pm_remove_options *opts;
    int mask, has_bg, overlay;
    int bg_image;   /* bg=image: the picture is the multipart field "background" */
    int has_radius; /* radius= given: only with bg=blur */
    int has_format; /* format= given: the Accept header is not consulted */
    char error[256];
} option_parse;

static int parse_bool(const char *v, int *out) {
    if (!v || !*v || !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes")) {
        *out = 1;
        return 1;
    }
    if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no")) {
        *out = 0;
        return 1;
    }
    return 0;
}

static enum MHD_Result on_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    option_parse *p = cls;
    if (p->error[0]) return MHD_NO;
    int flag = 0;
    if (!strcmp(key, "mask") || !strcmp(key, "invert") || !strcmp(key, "clean_edges")) {
        if (!parse_bool(value, &flag)) {
            snprintf(p->error, sizeof p->error, "option %s must be 1 or 0, not '%s'", key, value);
            return MHD_NO;
        }
        if (!strcmp(key, "mask")) p->mask = flag;
        else if (!strcmp(key, "invert")) p->opts->invert = flag;
        else p->opts->clean_edges = flag;
    } else if (!strcmp(key, "bg") && value && (!strcmp(value, "blur") || !strcmp(value, "image"))) {
        p->opts->output = PM_OUTPUT_COMPOSITE;
        p->opts->background = value[0] == 'b' ? PM_BACKGROUND_BLUR : PM_BACKGROUND_IMAGE;
        p->bg_image = value[0] == 'i';
        p->has_bg = 1;
    } else if (!strcmp(key, "radius") || !strcmp(key, "opacity")) {
        const int radius = key[0] == 'r';
        const double hi = radius ? 256.0 : 1.0;
        char *end = NULL;
        errno = 0;
        double v = value ? strtod(value, &end) : 0.0;
        if (!value || !*value || *end || errno || !(v >= 0.0 && v <= hi)) {
            snprintf(p->error, sizeof p->error, "option %s must be a number from 0 to %g, not '%s'", key, hi,
                     value ? value : "");
            return MHD_NO;
        }
        if (radius) p->opts->blur_radius = (float)v, p->has_radius = 1;
        else p->opts->overlay_opacity = (float)v, p->overlay = 1;
    } else if (!strcmp(key, "overlay")) {
        const char *hex = value && *value ? value : "78ff9b";
        if (*hex == '#') hex++;
        int ok = !strcmp(hex, "1") || strlen(hex) == 6;
        for (int i = 0; ok && hex[1] && i < 6; i++) ok = isxdigit((unsigned char)hex[i]) != 0;
        if (!ok) {
            snprintf(p->error, sizeof p->error, "option overlay must be 1 or a colour RRGGBB, not '%s'",
                     value ? value : "");
            return MHD_NO;
        }
        if (hex[1]) p->opts->overlay_rgb = (uint32_t)strtoul(hex, NULL, 16);
        p->overlay = 1;
    } else if (!strcmp(key, "bg")) {
        const char *hex = value ? value : "";
        if (*hex == '#') hex++;
        int ok = strlen(hex) == 6;
        for (int i = 0; ok && i < 6; i++) ok = isxdigit((unsigned char)hex[i]) != 0;
        if (!ok) {
            snprintf(p->error, sizeof p->error,
                     "option bg must be a colour RRGGBB (e.g. bg=ffffff), blur or image, not '%s'",
                     value ? value : "");
            return MHD_NO;
        }
        p->opts->background_rgb = (uint32_t)strtoul(hex, NULL, 16);
        p->has_bg = 1;
    } else if (!strcmp(key, "threshold")) {
        char *end = NULL;
        errno = 0;
        double t = value ? strtod(value, &end) : 0.0;
        if (!value || !*value || *end || errno || !(t >= 0.0 && t <= 1.0)) {
            snprintf(p->error, sizeof p->error, "option threshold must be a number from 0 to 1, not '%s'",
                     value ? value : "");
            return MHD_NO;
        }
        p->opts->threshold = (float)t;
    } else if (!strcmp(key, "format")) {
        const char *v = value ? value : "";
        if (!strcmp(v, "png")) p->opts->encoding = PM_ENCODING_PNG;
        else if (!strcmp(v, "webp")) p->opts->encoding = PM_ENCODING_WEBP;
        else if (!strcmp(v, "webp-lossless")) p->opts->encoding = PM_ENCODING_WEBP_LOSSLESS;
        else {
            snprintf(p->error, sizeof p->error, "option format must be png, webp or webp-lossless, not '%s'", v);
            return MHD_NO;
        }
        p->has_format = 1;
    } else if (!strcmp(key, "quality")) {
        char *end = NULL;
        errno = 0;
        long q = value ? strtol(value, &end, 10) : -1;
        if (!value || !*value || *end || errno || q < 0 || q > 100) {
            snprintf(p->error, sizeof p->error, "option quality must be an integer from 0 to 100, not '%s'",
                     value ? value : "");
            return MHD_NO;
        }
        p->opts->webp_quality = (int)q;
    } else {
        snprintf(p->error, sizeof p->error,
                 "unknown option '%s' (known: mask, bg, radius, overlay, opacity, threshold, invert, "
                 "clean_edges, format, quality)", key);
        return MHD_NO;
    }
    return MHD_YES;
}

/* Appends to one of the request's growing buffers (the image's or the background's). */
static int append_to(request *rq, unsigned char **buf, size_t *len, size_t *cap_io, const void *data, size_t n) {
    if (n == 0) return 1;
    if (*len + n > *cap_io) {
        size_t cap = *cap_io ? *cap_io : 65536;
        while (cap < *len + n) cap *= 2;
        unsigned char *grown = realloc(*buf, cap);
        if (!grown) {
            rq->out_of_memory = 1;
            return 0;
        }
        *buf = grown;
        *cap_io = cap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 1;
}

static int append(request *rq, const void *data, size_t n) {
    return append_to(rq, &rq->body, &rq->len, &rq->cap, data, n);
}

/* Multipart: keeps the bytes of the first file field (or of a field named image/file),
 * and those of a field named "background" (the picture of bg=image) apart. */
static enum MHD_Result on_form_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                    const char *content_type, const char *transfer_encoding, const char *data,
                                    uint64_t off, size_t size) {
    (void)kind, (void)content_type, (void)transfer_encoding;
    request *rq = cls;
    if (key && !strcmp(key, "background")) { /* only its first occurrence */
        if (off == 0 && rq->background_len > 0) rq->background_done = 1;
        if (rq->background_done) return MHD_YES;
        return append_to(rq, &rq->background, &rq->background_len, &rq->background_cap, data, size) ? MHD_YES
                                                                                                     : MHD_NO;
    }
    if (rq->part_done) return MHD_YES;
    if (!key) key = "";
    if (!rq->part_key) {
        int wanted = filename != NULL || !strcmp(key, "image") || !strcmp(key, "file");
        if (!wanted) return MHD_YES;
        rq->part_key = strdup(key);
        if (!rq->part_key) {
            rq->out_of_memory = 1;
            return MHD_NO;
        }
    } else if (strcmp(key, rq->part_key) != 0 || (off == 0 && rq->len > 0)) {
        rq->part_done = 1; /* a later field: the image is complete */
        return MHD_YES;
    }
    return append(rq, data, size) ? MHD_YES : MHD_NO;
}

static void free_output(void *cls) { pm_output_free(cls); }

/* 1 when an Accept header lists image/webp with a quality above 0. */
static int accepts_webp(const char *accept) {
    for (const char *p = accept; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *semi = memchr(p, ';', len);
        size_t type_len = semi ? (size_t)(semi - p) : len;
        while (type_len > 0 && (p[type_len - 1] == ' ' || p[type_len - 1] == '\t')) type_len--;
        if (type_len == 10 && !strncasecmp(p, "image/webp", 10)) {
            /* q=0 (0, 0.0, 0.000) refuses it; any other value, or none, accepts it. */
            const char *q = semi;
            while (q && q < p + len) {
                q++;
                while (*q == ' ' || *q == '\t') q++;
                if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
                    char *qend = NULL;
                    double v = strtod(q + 2, &qend);
                    return !(qend != q + 2 && v <= 0.0);
                }
                q = memchr(q, ';', (size_t)(p + len - q));
            }
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

static enum MHD_Result run_remove_bg(const srv_app *app, struct MHD_Connection *conn, request *rq) {
    if (rq->out_of_memory)
        return srv_send_error(conn, 500, code_name(PM_ERR_NO_MEMORY), "out of memory while receiving the upload");
    if (rq->len == 0)
        return srv_send_error(conn, 400, "empty_body",
                              "no image: send it as the request body or as a multipart/form-data file field");

    pm_remove_options opts;
    pm_remove_options_init(&opts);
    opts.encoding = PM_ENCODING_PNG;
    option_parse parse = {.opts = &opts};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, on_query_arg, &parse);
    if (parse.error[0]) return srv_send_error(conn, 400, "bad_option", parse.error);
    if (parse.mask + parse.has_bg + parse.overlay > 1)
        return srv_send_error(conn, 400, "bad_option", "mask=1, bg= and overlay= cannot be combined");
    if (parse.has_radius && opts.background != PM_BACKGROUND_BLUR)
        return srv_send_error(conn, 400, "bad_option", "radius= goes with bg=blur");
    /* A "background" part is the picture: bg=image may be left out, nothing else given. */
    if (rq->background_len > 0 && !parse.has_bg && !parse.mask && !parse.overlay) {
        opts.output = PM_OUTPUT_COMPOSITE;
        opts.background = PM_BACKGROUND_IMAGE;
        parse.bg_image = parse.has_bg = 1;
    }
    if (parse.bg_image != (rq->background_len > 0))
        return srv_send_error(conn, 400, "bad_option",
                              parse.bg_image ? "bg=image needs the picture as a multipart field named 'background'"
                                             : "a 'background' field goes with bg=image");
    pm_image picture;
    pm_image_init(&picture);
    picture.data = rq->background;
    picture.size = rq->background_len;
    if (parse.bg_image) opts.background_image = &picture;
    if (parse.mask) opts.output = PM_OUTPUT_MASK;
    else if (parse.overlay) opts.output = PM_OUTPUT_OVERLAY;
    else if (parse.has_bg) opts.output = PM_OUTPUT_COMPOSITE;
    /* Without format=, a client that accepts WebP gets lossless WebP: the same pixels
     * as the PNG (but the colour of fully transparent ones), in fewer bytes. */
    if (!parse.has_format &&
        accepts_webp(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT)))
        opts.encoding = PM_ENCODING_WEBP_LOSSLESS;
    const int webp = opts.encoding != PM_ENCODING_PNG;

    /* A model that failed to load is not retried behind the client's back: the host
     * decides, and here the decision is an explicit POST /warmup. */
    pm_status_info st;
    pm_status_info_init(&st);
    if (pm_status(app->ctx, &st) == PM_OK && st.state == PM_STATE_FAILED) {
        char msg[400];
        snprintf(msg, sizeof msg, "the model is not available: %s (POST /warmup to try loading it again)",
                 st.last_error);
        json_t *obj = error_json(code_name(st.last_error_code), msg);
        json_t *sj = status_json(app);
        if (obj && sj) json_object_set_new(obj, "status", sj);
        else json_decref(sj);
        return send_json(conn, MHD_HTTP_SERVICE_UNAVAILABLE, obj);
    }

    /* Admission: a work slot, or a bounded wait for one, or 503 at once. */
    double queued_ms = 0;
    srv_admit admit = srv_adm_enter(app->adm, &queued_ms);
    if (admit != SRV_ADMIT_OK) {
        srv_log_request(app, conn, MHD_HTTP_SERVICE_UNAVAILABLE, rq->arrival_state, queued_ms,
                        now_ms() - rq->arrival_ms);
        return srv_send_unavailable(app, conn, admit, queued_ms);
    }

    pm_image img;
    pm_image_init(&img);
    img.format = PM_FORMAT_ENCODED;
    img.data = rq->body;
    img.size = rq->len;
    pm_output *out = NULL;
    double t0 = now_ms();
    pm_code rc = pm_remove_bg(app->ctx, &img, &opts, &out); /* warms first if needed */
    double took = now_ms() - t0;
    srv_adm_leave(app->adm, rc == PM_OK);
    if (rc != PM_OK) {
        srv_log_request(app, conn, http_status_for(rc), rq->arrival_state, queued_ms, now_ms() - rq->arrival_ms);
        return send_pm_error(app, conn, rc, pm_errmsg(app->ctx));
    }

    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback_cls(out->size, out->data, free_output, out);
    if (!r) {
        pm_output_free(out);
        return MHD_NO;
    }
    char value[64];
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, webp ? "image/webp" : "image/png");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept");
    snprintf(value, sizeof value, "inline; filename=\"%s.%s\"", parse.mask ? "mask" : "cutout",
             webp ? "webp" : "png");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, value);
    snprintf(value, sizeof value, "%d", out->width);
    MHD_add_response_header(r, "X-Petmatte-Width", value);
    snprintf(value, sizeof value, "%d", out->height);
    MHD_add_response_header(r, "X-Petmatte-Height", value);
    snprintf(value, sizeof value, "%.1f", took);
    MHD_add_response_header(r, "X-Petmatte-Ms", value);
    srv_tag_response(app, conn, r);
    /* Logged before the bytes go out: a process killed while sending has still logged it. */
    srv_log_request(app, conn, MHD_HTTP_OK, rq->arrival_state, queued_ms, now_ms() - rq->arrival_ms);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* First call of a POST /remove-bg: checks the declared size and the body's type. */
static enum MHD_Result begin_remove_bg(const srv_app *app, struct MHD_Connection *conn, void **con_cls) {
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        char *end = NULL;
        errno = 0;
        unsigned long long declared = strtoull(length, &end, 10);
        if (!errno && end != length && declared > app->max_upload_bytes) {
            char msg[160];
            snprintf(msg, sizeof msg, "upload of %llu bytes is over the limit of %" PRIu64 " bytes (--max-upload-mb)",
                     declared, app->max_upload_bytes);
            return srv_send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", msg);
        }
    }
    /* Full already: refused on the headers, before the body is received. */
    if (srv_adm_begin(app->adm)) {
        srv_log_request(app, conn, MHD_HTTP_SERVICE_UNAVAILABLE, -1, 0, 0);
        return srv_send_unavailable(app, conn, SRV_ADMIT_SHED, 0);
    }
    request *rq = calloc(1, sizeof *rq);
    if (!rq) {
        srv_adm_end(app->adm);
        return MHD_NO;
    }
    pm_status_info st;
    pm_status_info_init(&st);
    rq->arrival_state = pm_status(app->ctx, &st) == PM_OK ? st.state : -1;
    rq->arrival_ms = now_ms();
    const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (type && !strncasecmp(type, "multipart/form-data", 19)) {
        rq->pp = MHD_create_post_processor(conn, POST_BUFFER_BYTES, on_form_part, rq);
        if (!rq->pp) {
            free(rq);
            srv_adm_end(app->adm);
            return srv_send_error(conn, 400, "bad_form", "multipart/form-data without a usable boundary");
        }
    }
    /* Any other type is the image itself: curl --data-binary sends a form type. */
    *con_cls = rq;
    return MHD_YES;
}

/* Later calls: a chunk of body, or (size 0) the end of it. */
static enum MHD_Result continue_remove_bg(const srv_app *app, struct MHD_Connection *conn, request *rq,
                                          const char *data, size_t *size) {
    if (*size) {
        size_t n = *size;
        *size = 0;
        rq->received += n;
        if (rq->too_large || rq->received > app->max_upload_bytes) {
            if (!rq->too_large) {
                rq->too_large = 1;
                free(rq->body);
                rq->body = NULL;
                rq->len = rq->cap = 0;
            }
            return rq->received - app->max_upload_bytes > DRAIN_MAX_BYTES ? MHD_NO : MHD_YES;
        }
        if (rq->out_of_memory) return MHD_YES;
        if (rq->pp) {
            if (!rq->pp_failed && MHD_post_process(rq->pp, data, n) != MHD_YES) rq->pp_failed = 1;
        } else {
            append(rq, data, n);
        }
        return MHD_YES;
    }
    if (rq->too_large) {
        char msg[160];
        snprintf(msg, sizeof msg, "upload is over the limit of %" PRIu64 " bytes (--max-upload-mb)",
                 app->max_upload_bytes);
        return srv_send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", msg);
    }
    if (rq->pp) {
        if (MHD_destroy_post_processor(rq->pp) != MHD_YES) rq->pp_failed = 1;
        rq->pp = NULL;
        if (!rq->pp_failed && !rq->part_key) {
            return srv_send_error(conn, 400, "bad_form",
                                  "the form has no file field (send the image as a file, e.g. field 'image')");
        }
        if (rq->pp_failed) return srv_send_error(conn, 400, "bad_form", "malformed multipart/form-data body");
    }
    return run_remove_bg(app, conn, rq);
}

/* ------------------------------------------------------------ dispatch */

enum MHD_Result srv_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size,
                           void **con_cls) {
    (void)version;
    const srv_app *app = cls;
    if (*con_cls) return continue_remove_bg(app, conn, *con_cls, upload_data, upload_data_size);

    if (!strcmp(url, "/health")) {
        if (!is_get(method)) return send_method_not_allowed(conn, "GET, HEAD");
        return send_json(conn, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    }
    if (!strcmp(url, "/status") || !strcmp(url, "/ready")) {
        if (!is_get(method)) return send_method_not_allowed(conn, "GET, HEAD");
        return handle_status(app, conn, url[1] == 'r');
    }
    if (!strcmp(url, "/warmup")) {
        if (!is_method(method, "POST")) return send_method_not_allowed(conn, "POST");
        return handle_warmup(app, conn);
    }
    if (!strcmp(url, "/remove-bg")) {
        if (!is_method(method, "POST")) return send_method_not_allowed(conn, "POST");
        return begin_remove_bg(app, conn, con_cls);
    }
    if (is_get(method)) return srv_serve_static(app, conn, url);
    return srv_send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
}

void srv_request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)conn, (void)toe;
    const srv_app *app = cls;
    request *rq = *con_cls;
    if (!rq) return;
    srv_adm_end(app->adm); /* only /remove-bg has a request: begun in begin_remove_bg */
    if (rq->pp) MHD_destroy_post_processor(rq->pp);
    free(rq->part_key);
    free(rq->body);
    free(rq->background);
    free(rq);
    *con_cls = NULL;
}
