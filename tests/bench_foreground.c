/* bench_foreground - times pm_estimate_foreground_tuned on a synthetic 12 MP pet-like
 * photo (not a ctest). Usage: bench_foreground [width height runs [threads skip_flat]]
 * Prints the median, min and max wall time (and median process CPU time) for threads 1 and 2, skip_flat 1 and 0
 * (or only the configuration given).
 *   bench_foreground width height runs torch MODEL.pt [cpu|cuda:N]
 * times the device version (pm_estimate_foreground_on_device: small levels on the
 * host, the rest as tensor ops) instead, on the device the model (any TorchScript
 * file, e.g. tests/models' red32.pt) is loaded on, after one untimed call, and
 * compares its bytes with the C version's (skip_flat 0). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "foreground.h"
#include "shim.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float clampf(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

/* The device version on the model's device: runs timed calls after one warm call,
 * then its bytes against the C version's with skip_flat 0. */
static int bench_torch(const char *model_file, const char *device, const uint8_t *rgba, const uint8_t *alpha,
                       int w, int h, int runs, uint8_t *out, uint8_t *ref, double *t, double *cpu) {
    pm_shim_model *model = NULL;
    char *manifest = NULL, err[512];
    const int cuda = strncmp(device, "cuda:", 5) == 0;
    if (pm_shim_load(model_file, cuda ? PM_DEVICE_CUDA : PM_DEVICE_CPU, cuda ? atoi(device + 5) : 0,
                     PM_PRECISION_FP32, &model, &manifest, err, sizeof err) != PM_OK) {
        fprintf(stderr, "loading %s: %s\n", model_file, err);
        return 1;
    }
    free(manifest);
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pm_shim_set_cpu_threads(cpus > 0 ? (int)cpus : 1); /* torch's intra-op threads (CPU models) */
    char desc[160];
    pm_shim_device_description(model, desc, sizeof desc);
    for (int r = -1; r < runs; r++) {
        const double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        if (pm_estimate_foreground_on_device(model, rgba, alpha, w, h, out, err, sizeof err) != PM_OK) {
            fprintf(stderr, "error: %s\n", err);
            pm_shim_free(model);
            return 1;
        }
        if (r < 0) continue; /* warm: allocator, kernels */
        t[r] = clock_s(CLOCK_MONOTONIC) - t0;
        cpu[r] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    pm_shim_free(model);
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
    printf("device version on %s (%ld CPUs): wall median %.3f s (min %.3f, max %.3f), cpu median %.3f s\n", desc, cpus,
           t[runs / 2], t[0], t[runs - 1], cpu[runs / 2]);
    const pm_fg_tuning full = {0, 0};
    if (pm_estimate_foreground_tuned(rgba, alpha, w, h, ref, &full, err, sizeof err) != PM_OK) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    const size_t bytes = (size_t)w * (size_t)h * 3;
    size_t differ = 0;
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < bytes; i++) {
        const int d = abs((int)out[i] - (int)ref[i]);
        sum += d;
        differ += d != 0;
        worst = d > worst ? d : worst;
    }
    printf("device vs C (skip_flat 0): %zu of %zu bytes differ, max %d, mean %.6f\n", differ, bytes, worst,
           sum / (double)bytes);
    return 0;
}

int main(int argc, char **argv) {
    int w = 4000, h = 3000, runs = 5, only_threads = 0, only_skip = -1;
    const int torch_mode = (argc == 6 || argc == 7) && strcmp(argv[4], "torch") == 0;
    if (argc == 4 || argc == 6 || torch_mode) {
        w = atoi(argv[1]);
        h = atoi(argv[2]);
        runs = atoi(argv[3]);
    }
    if (argc == 6 && !torch_mode) {
        only_threads = atoi(argv[4]);
        only_skip = atoi(argv[5]);
    }
    if (w < 16 || h < 16 || runs < 1 || runs > 100) {
        fprintf(stderr, "usage: %s [width height runs [threads skip_flat | torch MODEL.pt [cpu|cuda:N]]]\n", argv[0]);
        return 2;
    }
    const size_t n = (size_t)w * (size_t)h;
    uint8_t *rgba = malloc(n * 4), *alpha = malloc(n), *out = malloc(n * 3), *out_skip = malloc(n * 3);
    if (!rgba || !alpha || !out || !out_skip) return 1;
    int have_skip = 0;
    /* The pet: an ellipse filling ~45% of the frame, edged by a fur band ~40 px deep
     * (at 12 MP) with strands; textured fur over a green lawn-like background. */
    const float cx = 0.5f * (float)w, cy = 0.55f * (float)h, rx = 0.38f * (float)w, ry = 0.40f * (float)h;
    const float band = 40.0f * (float)w / 4000.0f;
    size_t soft = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * (size_t)w + (size_t)x;
            const float dx = ((float)x - cx) / rx, dy = ((float)y - cy) / ry;
            const float th = atan2f(dy, dx);
            const float d = (1.0f - sqrtf(dx * dx + dy * dy)) * 0.5f * (rx + ry); /* px inside the edge */
            const float reach = band * (0.6f + 0.3f * sinf(97.0f * th) + 0.1f * sinf(331.0f * th));
            const float a = clampf((d + reach) / (reach + 4.0f)) *
                            (d > 0.0f ? 1.0f : clampf(0.7f + 0.4f * sinf(211.0f * th)));
            alpha[i] = (uint8_t)lrintf(a * 255.0f);
            soft += alpha[i] != 0 && alpha[i] != 255;
            const float t = 0.5f + 0.5f * sinf(0.11f * (float)x + 0.8f * sinf(0.05f * (float)y));
            const float f[3] = {0.55f + 0.3f * t, 0.40f + 0.2f * t, 0.25f + 0.1f * t};
            const float b[3] = {0.20f, 0.55f + 0.1f * (float)y / (float)h, 0.15f};
            for (int c = 0; c < 3; c++)
                rgba[i * 4 + (size_t)c] = (uint8_t)lrintf(255.0f * (a * f[c] + (1.0f - a) * b[c]));
            rgba[i * 4 + 3] = 255;
        }
    printf("image %dx%d, soft pixels %zu (%.2f%%), %d runs each\n", w, h, soft, 100.0 * (double)soft / (double)n,
           runs);
    double *t = malloc(sizeof(double) * (size_t)runs), *cpu = malloc(sizeof(double) * (size_t)runs);
    if (!t || !cpu) return 1;
    int rc = 0;
    if (torch_mode) {
        rc = bench_torch(argv[5], argc == 7 ? argv[6] : "cpu", rgba, alpha, w, h, runs, out, out_skip, t, cpu);
        goto done;
    }
    for (int skip = 1; skip >= 0; skip--)
        for (int threads = 1; threads <= 2; threads++) {
            if ((only_threads && threads != only_threads) || (only_skip >= 0 && skip != only_skip)) continue;
            pm_fg_tuning tu = {threads, skip};
            char err[256];
            for (int r = 0; r < runs; r++) {
                const double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
                if (pm_estimate_foreground_tuned(rgba, alpha, w, h, out, &tu, err, sizeof err) != PM_OK) {
                    fprintf(stderr, "error: %s\n", err);
                    rc = 1;
                    goto done;
                }
                t[r] = clock_s(CLOCK_MONOTONIC) - t0;
                cpu[r] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
            }
            if (skip) {
                memcpy(out_skip, out, n * 3);
                have_skip = 1;
            } else if (have_skip) { /* how far skip-flat moves the soft band */
                double sum = 0;
                int worst = 0;
                for (size_t i = 0; i < n; i++) {
                    if (alpha[i] == 0 || alpha[i] == 255) continue;
                    for (int c = 0; c < 3; c++) {
                        const int d = abs((int)out[i * 3 + (size_t)c] - (int)out_skip[i * 3 + (size_t)c]);
                        sum += d;
                        worst = d > worst ? d : worst;
                    }
                }
                printf("skip_flat 1 vs 0 over 0 < alpha < 255: mean |diff| %.4f levels, max %d\n",
                       soft ? sum / (3.0 * (double)soft) : 0.0, worst);
                have_skip = 0;
            }
            qsort(t, (size_t)runs, sizeof *t, cmp_double);
            qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
            printf("skip_flat=%d threads=%d: wall median %.3f s (min %.3f, max %.3f), cpu median %.3f s\n",
                   skip, threads, t[runs / 2], t[0], t[runs - 1], cpu[runs / 2]);
            fflush(stdout);
        }
done:
    free(t);
    free(cpu);
    free(rgba);
    free(alpha);
    free(out);
    free(out_skip);
    return rc;
}
