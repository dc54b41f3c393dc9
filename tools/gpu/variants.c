/* Exploration: one configuration per process. Prints cold phases, warm medians,
 * worst of first 50, concurrency throughput, memory. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "petmatte.h"
#include "timing.h"

static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static pm_ctx *ctx; static uint8_t *img; static int W, H;
static double one(void) {
    pm_image in; pm_image_init(&in); in.format = PM_FORMAT_RGB; in.data = img; in.width = W; in.height = H; in.size = (size_t)W * H * 3;
    pm_remove_options o; pm_remove_options_init(&o); o.output = PM_OUTPUT_MASK; o.encoding = PM_ENCODING_RAW;
    pm_output *out = NULL; double t = now_ms();
    if (pm_remove_bg(ctx, &in, &o, &out) != PM_OK) { printf("remove_bg: %s\n", pm_errmsg(ctx)); exit(1); }
    t = now_ms() - t; pm_output_free(out); return t;
}
static int per_thread;
static void *worker(void *a) { (void)a; for (int i = 0; i < per_thread; i++) one(); return NULL; }
int main(int argc, char **argv) {
    double t_start = now_ms();
    if (argc < 7) { fprintf(stderr, "variants MODEL DEVICE PREC GRAPH CL JIT\n"); return 2; }
    pm_params p; pm_params_init(&p); p.model_path = argv[1]; p.device = argv[2];
    p.precision = atoi(argv[3]); p.cuda_graph = atoi(argv[4]); p.channels_last = atoi(argv[5]); p.jit_optimize = atoi(argv[6]);
    if (pm_open(&p, &ctx) != PM_OK) { printf("open: %s\n", pm_errmsg(NULL)); return 1; }
    if (pm_warmup(ctx) != PM_OK) { printf("warmup: %s\n", pm_errmsg(ctx)); return 1; }
    double ready = now_ms() - t_start;
    pm_status st; pm_status_init(&st); pm_get_status(ctx, &st);
    W = st.input_width; H = st.input_height; img = malloc((size_t)W * H * 3);
    srand(1); for (size_t i = 0; i < (size_t)W * H * 3; i++) img[i] = (uint8_t)(rand() >> 7);
    double first[50]; for (int i = 0; i < 50; i++) first[i] = one();
    int n = 100; double *ms = malloc(n * sizeof *ms); for (int i = 0; i < n; i++) ms[i] = one();
    qsort(ms, n, sizeof *ms, cmpd); double worst = 0; for (int i = 0; i < 50; i++) if (first[i] > worst) worst = first[i];
    pm_get_status(ctx, &st);
    printf("%s prec=%s graph=%d(%d) cl=%d jit=%d | ready %.0f ms (load %.0f, warm %.0f, runs %d) | median %.2f ms min %.2f max %.2f | worst-first-50 %.2f (%.2fx) | mem %.0f MB",
           argv[1], pm_precision_name(st.precision), p.cuda_graph, st.cuda_graph, p.channels_last, p.jit_optimize, ready, st.load_ms, st.warmup_ms, st.warmup_runs,
           ms[n / 2], ms[0], ms[n - 1], worst, worst / ms[n / 2], st.device_memory_bytes / 1048576.0);
    int threads[] = {2, 4, 8};
    for (int k = 0; k < 3; k++) {
        per_thread = 64 / threads[k]; pthread_t th[8]; double t0 = now_ms();
        for (int i = 0; i < threads[k]; i++) pthread_create(&th[i], NULL, worker, NULL);
        for (int i = 0; i < threads[k]; i++) pthread_join(th[i], NULL);
        printf(" | T%d %.2f ms/img", threads[k], (now_ms() - t0) / 64);
    }
    pm_get_status(ctx, &st);
    printf(" | mem after %.0f MB\n", st.device_memory_bytes / 1048576.0);
    pm_close(ctx);
    return 0;
}
