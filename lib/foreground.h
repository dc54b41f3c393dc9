/*
 * foreground.h - foreground colour estimation for clean edges (internal, C11, no torch).
 *
 * Given an image I and its matte alpha, estimates per-pixel foreground colours F (and,
 * internally, background colours B) so that I ~ alpha*F + (1-alpha)*B, with the
 * multi-level method of
 *
 *   T. Germer, T. Uelwer, S. Conrad, S. Harmeling: "Fast Multi-Level Foreground
 *   Estimation", ICPR 2020 (arXiv:2006.14970).
 *
 * It minimises, for every colour channel,
 *
 *   sum_i (alpha_i F_i + (1-alpha_i) B_i - I_i)^2
 *     + sum_i sum_{j in N4(i)} (eps + omega*|alpha_i - alpha_j|) ((F_i-F_j)^2 + (B_i-B_j)^2)
 *
 * coarse to fine: the image and matte are sampled (nearest) to a pyramid of sizes
 * round(W^(l/n)) x round(H^(l/n)), l = 0..n, n = ceil(log2(max(W,H))); each level
 * starts from the previous level's F and B (nearest) and runs a few sweeps in which
 * every pixel solves its own 2x2 system for (F_i, B_i) with its neighbours held fixed.
 * This implementation sweeps in red-black order (see foreground.c for why) and,
 * where the matte is locally all 0 or all 255, skips work that cannot reach a pixel
 * of the soft band (0 < alpha < 255). pm_estimate_foreground_on_device runs the same
 * pyramid with the large levels on a model's device (shim/foreground.cpp).
 *
 * See docs/clean-edges.md.
 */
#ifndef PETMATTE_FOREGROUND_H
#define PETMATTE_FOREGROUND_H

#include <stddef.h>
#include <stdint.h>

#include "petmatte.h"

/* The paper's (and pymatting's estimate_foreground_ml's) default parameters. */
#define PM_FG_REGULARIZATION 1e-5f  /* eps */
#define PM_FG_GRADIENT_WEIGHT 1.0f  /* omega */
#define PM_FG_SMALL_ITERATIONS 10   /* sweeps on levels no larger than small_size^2 */
#define PM_FG_BIG_ITERATIONS 2      /* sweeps on the larger levels */
#define PM_FG_SMALL_SIZE 32
/* On a model's device, levels larger than this are swept in bands of rows of about
 * this many pixels: the transient memory of a call stays that of a 1 MP band,
 * whatever the image's size. */
#define PM_FG_DEVICE_BAND_PIXELS (1 << 20)

/* rgba: the upright image, height rows of width*4 bytes (the 4th byte is ignored).
 * alpha: the final matte, height rows of width bytes (255 = opaque).
 * rgb_out: height rows of width*3 bytes: the estimated foreground colours. Where
 * alpha == 255 they are the input colour exactly; where alpha == 0 they are the
 * estimate (smooth continuation of the nearby foreground), which nothing shows.
 * Deterministic: the same bytes on every run and for any number of threads.
 * Uses all online CPUs (at most 16) for large images.
 * Errors: PM_ERR_INVALID_ARGUMENT (NULL pointer, width or height < 1, sizes that
 * overflow), PM_ERR_NO_MEMORY (nothing leaks). err gets a message (may be NULL). */
pm_code pm_estimate_foreground(const uint8_t *rgba, const uint8_t *alpha, int width, int height,
                               uint8_t *rgb_out, char *err, size_t errcap);

/* Knobs for tests and benchmarks; pm_estimate_foreground uses the defaults. */
typedef struct pm_fg_tuning {
    int threads;    /* worker threads; 0 = online CPUs, at most 16 (the default) */
    int skip_flat;  /* 1 (default): skip sweeps far from the soft band; 0: sweep every
                       pixel, as the paper does (for comparisons) */
} pm_fg_tuning;

#define PM_FG_TUNING_DEFAULT {0, 1}

/* pm_estimate_foreground with explicit tuning (NULL = defaults). */
pm_code pm_estimate_foreground_tuned(const uint8_t *rgba, const uint8_t *alpha, int width,
                                     int height, uint8_t *rgb_out, const pm_fg_tuning *tuning,
                                     char *err, size_t errcap);

struct pm_shim_model;

/* The same estimate with full sweeps (skip_flat = 0) and the levels larger than
 * 65,536 pixels on model's device: this plans the pyramid, runs the smaller levels
 * on the host (all online CPUs, at most 16) and hands the rest to
 * pm_shim_estimate_foreground. An image whose levels are all that small never
 * reaches the device. Same arguments and output as pm_estimate_foreground; the
 * result matches pm_estimate_foreground_tuned with skip_flat = 0 up to the device's
 * float rounding (the same bytes where no level reaches the device). Errors: those
 * of pm_estimate_foreground (a NULL model is PM_ERR_INVALID_ARGUMENT) and the
 * shim's (PM_ERR_DEVICE, PM_ERR_DEVICE_OUT_OF_MEMORY). */
pm_code pm_estimate_foreground_on_device(struct pm_shim_model *model, const uint8_t *rgba, const uint8_t *alpha,
                                         int width, int height, uint8_t *rgb_out, char *err, size_t errcap);

#endif
