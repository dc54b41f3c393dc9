/* GPU out-of-memory faults: fill the device with cudaMalloc, check that warm-up and
 * inference fail with PM_ERR_DEVICE_OUT_OF_MEMORY (state FAILED with a message after
 * the warm-up), free the filler, and check that the next call works.
 * Build: gcc -std=c11 -Iinclude oom_check.c -Lbuild-gpu/lib -lpetmatte -lcudart ...
 * Usage: oom_check MODEL */
#include <stdio.h>
#include <stdlib.h>
#include <cuda_runtime_api.h>
#include "petmatte.h"

static void *filler[4096];
static int nfill;

/* Takes device memory in 256 MiB blocks, then smaller, until less than `leave` is free. */
static void fill_device(size_t leave) {
    size_t block = (size_t)256 << 20;
    while (nfill < 4096 && block >= ((size_t)1 << 20)) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        if (free_b <= leave + block) { block /= 2; continue; }
        if (cudaMalloc(&filler[nfill], block) != cudaSuccess) { cudaGetLastError(); block /= 2; continue; }
        nfill++;
    }
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    printf("  filled: %.1f MiB free of %.0f MiB\n", free_b / 1048576.0, total_b / 1048576.0);
}

static void release_device(void) {
    while (nfill > 0) cudaFree(filler[--nfill]);
}

static pm_code remove_12mp(pm_ctx *ctx) {
    int w = 4000, h = 3000;
    unsigned char *px = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) px[i] = (unsigned char)(i * 2654435761u >> 24);
    pm_image in; pm_image_init(&in); in.format = PM_FORMAT_RGB; in.data = px; in.width = w; in.height = h;
    in.size = (size_t)w * h * 3;
    pm_remove_options o; pm_remove_options_init(&o); o.output = PM_OUTPUT_MASK;
    pm_output *out = NULL;
    pm_code rc = pm_remove_bg(ctx, &in, &o, &out);
    pm_output_free(out);
    free(px);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int failures = 0;
    pm_params p; pm_params_init(&p); p.model_path = argv[1]; p.device = "cuda:0";
    pm_ctx *ctx = NULL;
    if (pm_open(&p, &ctx) != PM_OK) { printf("open: %s\n", pm_errmsg(NULL)); return 1; }
    cudaFree(0);
    printf("1. warm-up with the device full\n");
    fill_device((size_t)64 << 20);
    pm_code rc = pm_warmup(ctx);
    pm_status st; pm_status_init(&st); pm_get_status(ctx, &st);
    printf("  pm_warmup -> %d (%s), state %s, last error: %s\n", rc, pm_strerror(rc), pm_state_name(st.state), st.last_error);
    failures += rc != PM_ERR_DEVICE_OUT_OF_MEMORY || st.state != PM_STATE_FAILED;
    release_device();
    rc = pm_warmup(ctx);
    pm_get_status(ctx, &st);
    printf("  memory back: pm_warmup -> %d, state %s\n", rc, pm_state_name(st.state));
    failures += rc != PM_OK;
    printf("2. a 12 MP inference with the device full\n");
    fill_device((size_t)32 << 20);
    rc = remove_12mp(ctx);
    printf("  pm_remove_bg -> %d (%s): %s\n", rc, pm_strerror(rc), pm_errmsg(ctx));
    failures += rc != PM_ERR_DEVICE_OUT_OF_MEMORY;
    release_device();
    rc = remove_12mp(ctx);
    printf("  memory back: pm_remove_bg -> %d\n", rc);
    failures += rc != PM_OK;
    pm_close(ctx);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
