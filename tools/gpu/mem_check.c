/* mem_check.c - device memory of a CUDA context around 12 MP calls: 6 plain calls,
 * 4 with clean edges, then 4 threads x 3 clean-edges calls, printing each call's time
 * and pm_status.device_memory_bytes after it. Raw 4000x3000 RGB in, RGBA out.
 *   gcc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude tools/gpu/mem_check.c \
 *       -Lbuild-gpu/lib -lpetmatte -lpthread -Wl,-rpath,$PWD/build-gpu/lib -o mem_check
 *   ./mem_check MODEL.pt
 * A measurement (docs/benchmarks.md), not a test. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "petmatte.h"
#include "timing.h"
enum { W = 4000, H = 3000 };
static uint8_t *img;
static double mem(pm_ctx *c) { pm_status s; pm_status_init(&s); pm_get_status(c, &s); return s.device_memory_bytes / 1048576.0; }
static double call(pm_ctx *c, int clean) {
    pm_image in; pm_image_init(&in); in.format = PM_FORMAT_RGB; in.data = img; in.width = W; in.height = H; in.size = (size_t)W * H * 3;
    pm_remove_options o; pm_remove_options_init(&o); o.clean_edges = clean;
    pm_output *out = NULL; double t0 = now_ms();
    pm_code rc = pm_remove_bg(c, &in, &o, &out);
    double ms = now_ms() - t0;
    if (rc != PM_OK) printf("remove_bg failed: %s\n", pm_errmsg(c));
    pm_output_free(out); return ms;
}
static pm_ctx *ctx;
static void *worker(void *a) { (void)a; for (int i = 0; i < 3; i++) call(ctx, 1); return NULL; }
int main(int argc, char **argv) {
    img = malloc((size_t)W * H * 3);
    for (size_t i = 0; i < (size_t)W * H * 3; i++) img[i] = (uint8_t)((i * 2654435761u) >> 24);
    pm_params p; pm_params_init(&p); p.model_path = argv[1]; p.device = "cuda:0";
    if (pm_open(&p, &ctx) != PM_OK || pm_warmup(ctx) != PM_OK) { printf("open/warm failed: %s\n", pm_errmsg(ctx)); return 1; }
    printf("MEM warm: %.0f MiB\n", mem(ctx));
    for (int i = 0; i < 6; i++) { double ms = call(ctx, 0); printf("MEM 12MP plain call %d: %.1f ms, %.0f MiB\n", i, ms, mem(ctx)); }
    for (int i = 0; i < 4; i++) { double ms = call(ctx, 1); printf("MEM 12MP clean-edges call %d: %.1f ms, %.0f MiB\n", i, ms, mem(ctx)); }
    pthread_t t[4]; double t0 = now_ms();
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("MEM 4 threads x 3 clean-edges calls: %.1f ms/call wall, %.0f MiB after\n", (now_ms() - t0) / 12, mem(ctx));
    pm_close(ctx); return 0;
}
