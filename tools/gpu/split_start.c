/* split_start.c - would READY come sooner if Torch were loaded at run time, beside
 * the CUDA context's creation, instead of before main()? This program links neither
 * libpetmatte nor Torch: it dlopen()s libpetmatte.so (which pulls Torch in), and with
 * `par` creates the device's primary context through the driver API (libcuda.so.1)
 * on a second thread meanwhile; then pm_open + pm_warmup. Prints ms since process
 * start for each step.
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude tools/gpu/split_start.c -ldl -lpthread -o split_start
 *   ./split_start build-gpu/lib/libpetmatte.so MODEL.pt seq|par
 * A measurement (docs/benchmarks.md), not a test. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "petmatte.h"
#include "timing.h"

static double t_main, at_main, ctx_done = -1;

static void *make_context(void *arg) {
    (void)arg;
    void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (!cuda) return NULL;
    int (*init)(unsigned) = (int (*)(unsigned))dlsym(cuda, "cuInit");
    int (*get)(int *, int) = (int (*)(int *, int))dlsym(cuda, "cuDeviceGet");
    int (*retain)(void **, int) = (int (*)(void **, int))dlsym(cuda, "cuDevicePrimaryCtxRetain");
    int dev = 0;
    void *ctx = NULL;
    if (init && get && retain && init(0) == 0 && get(&dev, 0) == 0 && retain(&ctx, dev) == 0)
        ctx_done = now_ms() - t_main;
    return NULL;
}

int main(int argc, char **argv) {
    t_main = now_ms();
    at_main = since_process_start_ms();
    if (argc < 4) return 2;
    int par = strcmp(argv[3], "par") == 0;
    pthread_t th;
    if (par) pthread_create(&th, NULL, make_context, NULL);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    double dl = now_ms() - t_main;
    if (par) pthread_join(th, NULL);
    void (*params_init)(pm_params *, size_t) = (void (*)(pm_params *, size_t))dlsym(lib, "pm_params_init_sized");
    pm_code (*open_)(const pm_params *, pm_ctx **) = (pm_code(*)(const pm_params *, pm_ctx **))dlsym(lib, "pm_open");
    pm_code (*warm)(pm_ctx *) = (pm_code(*)(pm_ctx *))dlsym(lib, "pm_warmup");
    pm_params p;
    params_init(&p, sizeof p);
    p.model_path = argv[2];
    p.device = "cuda:0";
    pm_ctx *c = NULL;
    if (open_(&p, &c) != PM_OK || warm(c) != PM_OK) {
        fprintf(stderr, "open/warm-up failed\n");
        return 1;
    }
    double ready = now_ms() - t_main;
    printf("%s: main() at %.0f ms; libpetmatte+Torch loaded at +%.0f; context made at +%.0f; READY at +%.0f = %.0f ms "
           "after process start\n",
           argv[3], at_main, dl, ctx_done, ready, at_main + ready);
    return 0;
}
