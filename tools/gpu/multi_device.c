/* multi_device.c - throughput scaling over several devices in one process: for k = 1..D
 * it opens one context on each of the first k devices, warms them together, then lets
 * `threads` caller threads per context call pm_remove_bg for `seconds` (a raw RGB image
 * at the model's input size, MASK out) and prints images/s in total, per device, and
 * the total's ratio to k = 1.
 *   gcc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude tools/gpu/multi_device.c \
 *       -Lbuild-gpu/lib -lpetmatte -lpthread -Wl,-rpath,$PWD/build-gpu/lib -o multi_device
 *   ./multi_device MODEL cuda:0,cuda:1 [threads per device, default 2] [seconds, default 10]
 * ("cpu,cpu" runs the same code on the CPU, as a check of the program itself.)
 * A measurement (docs/benchmarks.md), not a test. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "petmatte.h"
#include "timing.h"

enum { MAX_DEVICES = 16, MAX_THREADS = 64 };

typedef struct caller {
    pm_ctx *ctx;
    const uint8_t *rgb;
    int side;
    double until_ms;
    long images;
    int failed;
} caller;

static void *call_loop(void *arg) {
    caller *c = arg;
    pm_image in;
    pm_image_init(&in);
    in.format = PM_FORMAT_RGB;
    in.data = c->rgb;
    in.width = in.height = c->side;
    in.size = (size_t)c->side * c->side * 3;
    pm_remove_options o;
    pm_remove_options_init(&o);
    o.output = PM_OUTPUT_MASK;
    while (now_ms() < c->until_ms) {
        pm_output *out = NULL;
        if (pm_remove_bg(c->ctx, &in, &o, &out) != PM_OK) {
            c->failed = 1;
            fprintf(stderr, "pm_remove_bg: %s\n", pm_errmsg(c->ctx));
            return NULL;
        }
        pm_output_free(out);
        c->images++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL DEV[,DEV...] [threads per device] [seconds]\n", argv[0]);
        return 2;
    }
    char *devices[MAX_DEVICES];
    int n_dev = 0;
    char *list = strdup(argv[2]);
    for (char *tok = strtok(list, ","); tok && n_dev < MAX_DEVICES; tok = strtok(NULL, ",")) devices[n_dev++] = tok;
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    double seconds = argc > 4 ? atof(argv[4]) : 10.0;
    if (threads < 1 || threads * n_dev > MAX_THREADS || seconds <= 0) {
        fprintf(stderr, "threads per device 1..%d in all, seconds > 0\n", MAX_THREADS);
        return 2;
    }
    printf("model %s | devices %s | %d caller threads a device | %.0f s a round\n", argv[1], argv[2], threads, seconds);
    printf("%8s %12s %12s %14s %10s\n", "devices", "READY (ms)", "images/s", "per device", "vs 1");
    double base = 0;
    for (int k = 1; k <= n_dev; k++) {
        pm_ctx *ctx[MAX_DEVICES] = {0};
        double t0 = now_ms();
        for (int d = 0; d < k; d++) {
            pm_params p;
            pm_params_init(&p);
            p.model_path = argv[1];
            p.device = devices[d];
            if (pm_open(&p, &ctx[d]) != PM_OK || pm_warmup_start(ctx[d]) != PM_OK) {
                fprintf(stderr, "%s: %s\n", devices[d], pm_errmsg(ctx[d]));
                return 1;
            }
        }
        int side = 0;
        for (int d = 0; d < k; d++) { /* pm_warmup joins the flight pm_warmup_start began */
            if (pm_warmup(ctx[d]) != PM_OK) {
                fprintf(stderr, "%s: %s\n", devices[d], pm_errmsg(ctx[d]));
                return 1;
            }
            pm_status s;
            pm_status_init(&s);
            pm_get_status(ctx[d], &s);
            side = s.input_width;
        }
        double ready = now_ms() - t0;
        uint8_t *rgb = malloc((size_t)side * side * 3);
        for (size_t i = 0; i < (size_t)side * side * 3; i++) rgb[i] = (uint8_t)(i * 7 + i / 3001);
        caller callers[MAX_THREADS];
        pthread_t tid[MAX_THREADS];
        double until = now_ms() + seconds * 1e3;
        int n = k * threads;
        for (int i = 0; i < n; i++) {
            callers[i] = (caller){ctx[i % k], rgb, side, until, 0, 0};
            pthread_create(&tid[i], NULL, call_loop, &callers[i]);
        }
        long images = 0;
        int failed = 0;
        for (int i = 0; i < n; i++) {
            pthread_join(tid[i], NULL);
            images += callers[i].images;
            failed |= callers[i].failed;
        }
        double rate = images / seconds;
        if (k == 1) base = rate;
        printf("%8d %12.0f %12.1f %14.1f %9.2fx%s\n", k, ready, rate, rate / k, base > 0 ? rate / base : 0.0,
               failed ? "  (a call failed)" : "");
        free(rgb);
        for (int d = 0; d < k; d++) pm_close(ctx[d]);
    }
    free(list);
    return 0;
}
