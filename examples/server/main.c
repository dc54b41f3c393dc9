/*
 * main.c - petmatte-server: command line, model path, the MHD daemon, shutdown.
 *
 *   petmatte-server [--host 127.0.0.1] [--port 8080] [--model PATH] [--device auto]
 *                   [--precision auto] [--threads N] [--static-dir DIR]
 *                   [--max-upload-mb 32] [--max-connections 64] [--warmup]
 *                   [--max-batch N] [--tune KEY=VALUE]... [--max-inflight N] [--max-queue N]
 *                   [--request-timeout S] [--drain-timeout S] [--log-requests]
 *
 * The model defaults to $PETMATTE_MODEL, else <exe dir>/../../models/isnet-general.pt
 * (the repository's models/ folder when run from build/examples/). --port 0 picks a
 * free port; the line "listening on http://HOST:PORT" on stdout says which.
 *
 * SIGTERM/SIGINT drain: the listening socket closes at once (new connections are
 * refused, so a balancer sends them elsewhere), /ready answers 503, and the requests
 * already in the process finish (up to --drain-timeout) before it exits.
 */
#define _GNU_SOURCE /* realpath, readlink, getaddrinfo */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server.h"
#include "../common/tune_option.h"

#ifndef PM_SERVER_STATIC_DIR
#define PM_SERVER_STATIC_DIR ""
#endif

typedef struct options {
    const char *host;
    int port;
    const char *model;
    const char *device;
    int precision;
    int threads;
    const char *static_dir;
    double max_upload_mb;
    int max_connections;
    int warmup_at_start;
    int max_batch;                 /* pm_params; 0 = the library's default */
    tune_setting tune[64];         /* --tune, in order: a later one for a key wins */
    size_t n_tune;
    int max_inflight;              /* 0 = auto: max(DEFAULT_MAX_INFLIGHT, --max-batch) */
    int max_queue;
    double request_timeout_s;      /* longest wait for a work slot; 0 = none */
    double drain_timeout_s;        /* how long SIGTERM waits for requests in progress */
    int log_requests;
} options;

/* Cut-outs worked on at once: the library runs one model pass at a time (or one batch),
 * while decoding and encoding of several requests overlap; 8 also covers the most
 * CUDA forward streams. */
#define DEFAULT_MAX_INFLIGHT 8
#define DEFAULT_MAX_QUEUE 32
#define DEFAULT_REQUEST_TIMEOUT_S 30.0
#define DEFAULT_DRAIN_TIMEOUT_S 60.0

static void usage(FILE *f) {
    char keys[1024];
    tune_option_keys_wrapped(keys, sizeof keys, 24, 80);
    fprintf(f,
            "usage: petmatte-server [options]\n"
            "  --host ADDR           address to listen on (default 127.0.0.1)\n"
            "  --port N              port (default 8080; 0 = any free port)\n"
            "  --model PATH          TorchScript model (default $PETMATTE_MODEL, else\n"
            "                        <exe dir>/../../models/isnet-general.pt)\n"
            "  --device DEV          auto, cpu or cuda:N (default auto)\n"
            "  --precision P         auto, fp32, fp16 or bf16 (default auto)\n"
            "  --threads N           CPU inference threads (default: one a physical core)\n"
            "  --static-dir DIR      folder of the demo page (default: the source tree's)\n"
            "  --max-upload-mb MB    largest accepted request body (default 32)\n"
            "  --max-connections N   concurrent connections (default 64)\n"
            "  --warmup              start warming the model at once, not on POST /warmup\n"
            "  --max-batch N         requests gathered into one forward pass, 1..64\n"
            "                        (library default: 1, no batching)\n"
            "  --tune KEY=VALUE      how the model runs on its device, repeatable (the\n"
            "                        library's defaults suit most hosts); VALUE an integer,\n"
            "                        or auto, on, off; e.g. --tune batch_wait_us=2000 with\n"
            "                        --max-batch 4, --tune warmup_max_runs=40. KEY one of:\n"
            "%s"
            "  --max-inflight N      cut-outs worked on at once (default: 8, or --max-batch\n"
            "                        if larger)\n"
            "  --max-queue N         cut-outs that may wait for a free slot (default 32); past\n"
            "                        that, 503 with Retry-After at once\n"
            "  --request-timeout S   longest wait for a slot, seconds; then 503 and the work\n"
            "                        is not started (default 30; 0 = no limit)\n"
            "  --drain-timeout S     on SIGTERM, how long requests in progress may take to\n"
            "                        finish (default 60)\n"
            "  --log-requests        one stderr line per answered /remove-bg (X-Request-Id,\n"
            "                        status, state on arrival, queue wait, total ms)\n"
            "  --help, --version\n",
            keys);
}

static int parse_int(const char *name, const char *text, long lo, long hi, int *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "petmatte-server: %s must be an integer from %ld to %ld, not '%s'\n", name, lo, hi, text);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int parse_seconds(const char *name, const char *text, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "petmatte-server: %s must be a number of seconds from %g to %g, not '%s'\n", name, lo, hi,
                text);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_precision(const char *text, int *out) {
    static const char *names[] = {"auto", "fp32", "fp16", "bf16"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(text, names[i])) {
            *out = i; /* same order as pm_precision */
            return 1;
        }
    fprintf(stderr, "petmatte-server: --precision must be auto, fp32, fp16 or bf16, not '%s'\n", text);
    return 0;
}

/* 0 = run, 1 = exit successfully (help, version), 2 = usage error */
static int parse_args(int argc, char **argv, options *o) {
    enum { O_HOST = 256, O_PORT, O_MODEL, O_DEVICE, O_PRECISION, O_THREADS, O_STATIC, O_UPLOAD, O_CONN,
           O_WARMUP, O_BATCH, O_TUNE, O_INFLIGHT, O_QUEUE, O_REQ_TIMEOUT, O_DRAIN_TIMEOUT, O_LOG_REQUESTS,
           O_HELP, O_VERSION };
    static const struct option longopts[] = {
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"model", required_argument, NULL, O_MODEL},
        {"device", required_argument, NULL, O_DEVICE},
        {"precision", required_argument, NULL, O_PRECISION},
        {"threads", required_argument, NULL, O_THREADS},
        {"static-dir", required_argument, NULL, O_STATIC},
        {"max-upload-mb", required_argument, NULL, O_UPLOAD},
        {"max-connections", required_argument, NULL, O_CONN},
        {"warmup", no_argument, NULL, O_WARMUP},
        {"max-batch", required_argument, NULL, O_BATCH},
        {"tune", required_argument, NULL, O_TUNE},
        {"max-inflight", required_argument, NULL, O_INFLIGHT},
        {"max-queue", required_argument, NULL, O_QUEUE},
        {"request-timeout", required_argument, NULL, O_REQ_TIMEOUT},
        {"drain-timeout", required_argument, NULL, O_DRAIN_TIMEOUT},
        {"log-requests", no_argument, NULL, O_LOG_REQUESTS},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_HOST: o->host = optarg; break;
        case O_PORT: if (!parse_int("--port", optarg, 0, 65535, &o->port)) return 2; break;
        case O_MODEL: o->model = optarg; break;
        case O_DEVICE: o->device = optarg; break;
        case O_PRECISION: if (!parse_precision(optarg, &o->precision)) return 2; break;
        case O_THREADS: if (!parse_int("--threads", optarg, 0, 1024, &o->threads)) return 2; break;
        case O_STATIC: o->static_dir = optarg; break;
        case O_UPLOAD: {
            char *end = NULL;
            errno = 0;
            o->max_upload_mb = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->max_upload_mb > 0.0 && o->max_upload_mb <= 1 << 20)) {
                fprintf(stderr, "petmatte-server: --max-upload-mb must be a positive number, not '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case O_CONN: if (!parse_int("--max-connections", optarg, 1, 100000, &o->max_connections)) return 2; break;
        case O_WARMUP: o->warmup_at_start = 1; break;
        case O_BATCH: if (!parse_int("--max-batch", optarg, 1, 64, &o->max_batch)) return 2; break;
        case O_TUNE: {
            char why[768];
            if (o->n_tune == sizeof o->tune / sizeof o->tune[0]) {
                fprintf(stderr, "petmatte-server: too many --tune options\n");
                return 2;
            }
            if (!tune_option_parse(optarg, &o->tune[o->n_tune], why, sizeof why)) {
                fprintf(stderr, "petmatte-server: %s\n", why);
                return 2;
            }
            o->n_tune++;
            break;
        }
        case O_INFLIGHT: if (!parse_int("--max-inflight", optarg, 1, 4096, &o->max_inflight)) return 2; break;
        case O_QUEUE: if (!parse_int("--max-queue", optarg, 0, 100000, &o->max_queue)) return 2; break;
        case O_REQ_TIMEOUT:
            if (!parse_seconds("--request-timeout", optarg, 0, 86400, &o->request_timeout_s)) return 2;
            break;
        case O_DRAIN_TIMEOUT:
            if (!parse_seconds("--drain-timeout", optarg, 0, 86400, &o->drain_timeout_s)) return 2;
            break;
        case O_LOG_REQUESTS: o->log_requests = 1; break;
        case 'h':
        case O_HELP: usage(stdout); return 1;
        case O_VERSION: printf("petmatte-server (libpetmatte %s)\n", pm_version()); return 1;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "petmatte-server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return 0;
}

/* --model, else $PETMATTE_MODEL, else <exe dir>/../../models/isnet-general.pt */
static const char *resolve_model(const char *given, char *buf, size_t cap) {
    if (given) return given;
    const char *env = getenv("PETMATTE_MODEL");
    if (env && *env) return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return "models/isnet-general.pt";
    exe[n] = '\0';
    snprintf(buf, cap, "%s/../../models/isnet-general.pt", dirname(exe));
    char *real = realpath(buf, NULL); /* tidier in messages when it exists */
    if (real) {
        snprintf(buf, cap, "%s", real);
        free(real);
    }
    return buf;
}

static int resolve_static_dir(const char *given, char *out, size_t cap) {
    const char *dir = given ? given : PM_SERVER_STATIC_DIR;
    out[0] = '\0';
    if (!*dir) return 1;
    char *real = realpath(dir, NULL);
    if (!real) {
        if (given) {
            fprintf(stderr, "petmatte-server: --static-dir %s: %s\n", given, strerror(errno));
            return 0;
        }
        fprintf(stderr, "petmatte-server: no demo page (%s not found); the API still works\n", dir);
        return 1;
    }
    if (strlen(real) >= cap) {
        fprintf(stderr, "petmatte-server: static folder path too long\n");
        free(real);
        return 0;
    }
    snprintf(out, cap, "%s", real);
    free(real);
    return 1;
}

/* Stops listening (new connections are refused at once, not left in the backlog),
 * marks /ready 503, and waits for the /remove-bg requests in progress. */
static MHD_socket drain(struct MHD_Daemon *daemon, srv_admission *adm, double timeout_s) {
    srv_adm_drain(adm);
    MHD_socket listener = MHD_quiesce_daemon(daemon);
    /* The socket itself may only be closed after MHD_stop_daemon; shutting it down
     * turns a Linux listening socket back to closed, so connects get a reset. */
    if (listener != MHD_INVALID_SOCKET) shutdown(listener, SHUT_RDWR);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int left = srv_adm_wait_idle(adm, timeout_s);
    /* A connection accepted just before the listener stopped may still be sending its
     * headers: its cut-out begins after the wait above, and stopping the daemon now
     * would drop its answer after the work is done (a balancer then runs it again
     * elsewhere). So connections get a short settle time in which any cut-out they
     * begin is waited for; an idle kept-alive one delays the exit by that much only. */
    const double settle_s = 1.0;
    double settled_at = -1.0;
    for (;;) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        const double spent = (double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec);
        if (left || spent >= timeout_s) break;
        const union MHD_DaemonInfo *c = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!c || c->num_connections == 0) break;
        if (srv_adm_wait_idle(adm, 0.0)) { /* a cut-out began: wait for it, then settle again */
            left = srv_adm_wait_idle(adm, timeout_s - spent);
            settled_at = -1.0;
            continue;
        }
        if (settled_at < 0.0) settled_at = spent;
        if (spent - settled_at >= settle_s) break;
        const struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (left) fprintf(stderr, "petmatte-server: %d requests still running after %g s; stopping anyway\n", left,
                      timeout_s);
    else fprintf(stderr, "petmatte-server: no request in progress, shutting down\n");
    return listener;
}

static volatile sig_atomic_t stop_signal;

static void note_stop_signal(int sig) { stop_signal = sig; }

int main(int argc, char **argv) {
    options o = {.host = "127.0.0.1", .port = 8080, .device = "auto", .max_upload_mb = 32.0, .max_connections = 64,
                 .max_queue = DEFAULT_MAX_QUEUE, .request_timeout_s = DEFAULT_REQUEST_TIMEOUT_S,
                 .drain_timeout_s = DEFAULT_DRAIN_TIMEOUT_S};
    int parsed = parse_args(argc, argv, &o);
    if (parsed) return parsed == 1 ? 0 : 2;
    if (!o.max_inflight) o.max_inflight = o.max_batch > DEFAULT_MAX_INFLIGHT ? o.max_batch : DEFAULT_MAX_INFLIGHT;

    static srv_app app;
    static srv_admission admission;
    srv_adm_init(&admission, o.max_inflight, o.max_queue, o.request_timeout_s, 1);
    app.adm = &admission;
    app.log_requests = o.log_requests;
    app.max_upload_bytes = (uint64_t)(o.max_upload_mb * 1024.0 * 1024.0);
    if (!resolve_static_dir(o.static_dir, app.static_dir, sizeof app.static_dir)) return 2;

    /* Every thread started from here on (MHD's, the library's warm-up) inherits this
     * mask, so SIGINT/SIGTERM reach only the sigwait below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    /* A thread a library started before main() may not carry the mask: there the
     * signal runs this handler (instead of killing the process), and the loop below
     * sees the flag. */
    struct sigaction on_stop;
    memset(&on_stop, 0, sizeof on_stop);
    on_stop.sa_handler = note_stop_signal;
    sigemptyset(&on_stop.sa_mask);
    sigaction(SIGINT, &on_stop, NULL);
    sigaction(SIGTERM, &on_stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char model_buf[PATH_MAX + 64];
    pm_params params;
    pm_params_init(&params);
    params.model_path = resolve_model(o.model, model_buf, sizeof model_buf);
    params.device = o.device;
    params.precision = o.precision;
    params.cpu_threads = o.threads;
    params.max_encoded_bytes = app.max_upload_bytes;
    if (o.max_batch) params.max_batch = o.max_batch;
    if (pm_open(&params, &app.ctx) != PM_OK) {
        fprintf(stderr, "petmatte-server: cannot open the model %s: %s\n", params.model_path, pm_errmsg(NULL));
        if (!o.model && !getenv("PETMATTE_MODEL"))
            fprintf(stderr, "petmatte-server: make it with tools/setup_default_model.py, or pass --model\n");
        return 1;
    }
    /* Tuning goes in before anything can start a warm-up (--warmup, POST /warmup). */
    char why[768];
    pm_code tuned = tune_option_apply(app.ctx, o.tune, o.n_tune, why, sizeof why);
    if (tuned != PM_OK) {
        fprintf(stderr, "petmatte-server: %s\n", why);
        pm_close(app.ctx);
        return tuned == PM_ERR_INVALID_ARGUMENT ? 2 : 1;
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", o.port);
    int gai = getaddrinfo(o.host, port_text, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "petmatte-server: --host %s: %s\n", o.host, gai_strerror(gai));
        pm_close(app.ctx);
        return 2;
    }
    int v6 = ai->ai_family == AF_INET6;
    /* MHD_USE_ITC: MHD_quiesce_daemon, the start of a drain, needs it. */
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *daemon = MHD_start_daemon(
        flags, (uint16_t)o.port, NULL, NULL, srv_handle, &app,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, srv_request_done, &app,
        MHD_OPTION_UNESCAPE_CALLBACK, srv_unescape, NULL,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)o.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!daemon) {
        fprintf(stderr, "petmatte-server: cannot listen on %s port %d\n", o.host, o.port);
        pm_close(app.ctx);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    int port = info ? info->port : o.port;
    printf("listening on http://%s%s%s:%d\n", v6 ? "[" : "", o.host, v6 ? "]" : "", port);
    fflush(stdout);
    fprintf(stderr, "petmatte-server: model %s, device %s, static %s, max upload %.1f MB\n", params.model_path,
            o.device, app.static_dir[0] ? app.static_dir : "(none)", o.max_upload_mb);
    fprintf(stderr, "petmatte-server: max inflight %d, max queue %d, request timeout %g s\n", o.max_inflight,
            o.max_queue, o.request_timeout_s);

    /* Production hosts warm on start so that readiness (/status ready) follows soon. */
    if (o.warmup_at_start && pm_warmup_start(app.ctx) != PM_OK)
        fprintf(stderr, "petmatte-server: warm-up did not start: %s\n", pm_errmsg(app.ctx));

    int sig = 0;
    const struct timespec tick = {0, 200 * 1000 * 1000};
    while (!sig && !stop_signal) {
        const int got = sigtimedwait(&stop, NULL, &tick);
        if (got > 0) sig = got;
    }
    if (!sig) sig = stop_signal;
    fprintf(stderr, "petmatte-server: %s, draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    MHD_socket listener = drain(daemon, &admission, o.drain_timeout_s);
    MHD_stop_daemon(daemon); /* joins the connection threads */
    if (listener != MHD_INVALID_SOCKET) close(listener);
    pm_close(app.ctx);       /* joins a background warm-up */
    return 0;
}
