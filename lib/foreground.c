/*
 * foreground.c - multi-level foreground estimation (Germer et al., ICPR 2020); see
 * foreground.h for the contract and docs/clean-edges.md for the method and timings.
 *
 * Layout: a level keeps F and B as 6 floats per pixel (F rgb, B rgb, in [0,1]) in
 * blocks of 16x16 pixels, one block per stored tile. The image and matte stay 8-bit,
 * row-major (the finest level reads the caller's buffers; coarser levels hold
 * nearest-sampled copies) and become floats through a 256-entry table.
 *
 * Why red-black: the paper (and pymatting) update pixels in raster order, each one
 * reading neighbours already updated in the same sweep (Gauss-Seidel). That order
 * is serial, and splitting it among threads makes the result depend on timing.
 * Colouring pixels like a chequerboard by (x+y)&1, every 4-neighbour of a red pixel
 * is black (a clamped border "neighbour" is the pixel itself), so a half-sweep over
 * the red pixels reads only black values and writes only red ones: its updates are
 * independent, any split among threads gives the same bytes, and it keeps
 * Gauss-Seidel's convergence (the black half-sweep already sees the new red values).
 *
 * Skip-flat: where the matte is uniformly 0 or 255 around a pixel, its update is a
 * pure smoothing step, and a value changed in the first of a level's 2*iters
 * half-sweeps travels at most 2*iters-1 pixels by the end of the level. So a level
 * sweeps only the tiles within that distance of a "source" (a pixel whose
 * 4-neighbourhood is not all 0 or all 255), and stores only those tiles plus one
 * tile around them (what the sweeps read). Everywhere else a level's values are, by
 * definition, its starting values, i.e. the previous level's at the nearest
 * position, and fg_fetch follows the maps down to the first level that stores them:
 * the same result as materialising every level in full, without writing hundreds of
 * MB at 12 MP. At a level, the sources end exactly as in a full sweep; what differs
 * is the far interior, which only seeds the next level (see docs/clean-edges.md).
 *
 * Device runs: this file owns the pyramid for the device version too. It runs the
 * small levels here with full sweeps, then hands the shim a pm_fg_plan (shim.h) with
 * every remaining level's size, iteration count and nearest maps, and the host
 * levels' F and B to start from; the shim only sweeps what the plan says.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "foreground.h"
#include "shim.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FG_TILE 16                       /* tile side: skip-flat granularity, storage block */
#define FG_TILE_PX (FG_TILE * FG_TILE)
#define FG_NONE SIZE_MAX                 /* slot of a tile a level does not store */
#define FG_MAX_THREADS 16
#define FG_MIN_TILES_PER_THREAD 32       /* ~8k pixels: less is not worth a thread */
#define FG_MIN_PIXELS_PER_THREAD 65536

#if defined(__GNUC__)
#  define FG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define FG_PRINTF(f, a)
#endif

static pm_code fg_fail(char *err, size_t errcap, pm_code code, const char *fmt, ...)
    FG_PRINTF(4, 5);

static pm_code fg_fail(char *err, size_t errcap, pm_code code, const char *fmt, ...) {
    if (err && errcap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errcap, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- a fork-join helper: [0, n) split into contiguous chunks ---------------------- */

typedef void (*fg_range_fn)(void *arg, size_t begin, size_t end);

typedef struct fg_chunk {
    fg_range_fn fn;
    void *arg;
    size_t begin, end;
} fg_chunk;

static void *fg_chunk_main(void *p) {
    fg_chunk *c = p;
    c->fn(c->arg, c->begin, c->end);
    return NULL;
}

/* Runs fn over [0, n) on up to `threads` threads, at least min_per_thread items each.
 * Every caller's items are independent, so the split (and a thread that could not be
 * started, whose chunk then runs here) never changes the result. */
static void fg_parallel(int threads, size_t n, size_t min_per_thread, fg_range_fn fn, void *arg) {
    size_t t = (size_t)threads;
    const size_t cap = min_per_thread ? n / min_per_thread : n;
    if (t > cap) t = cap;
    if (t > FG_MAX_THREADS) t = FG_MAX_THREADS;
    if (t <= 1) {
        if (n) fn(arg, 0, n);
        return;
    }
    pthread_t tid[FG_MAX_THREADS];
    fg_chunk ch[FG_MAX_THREADS];
    int started[FG_MAX_THREADS];
    for (size_t k = 0; k < t; k++) {
        ch[k].fn = fn;
        ch[k].arg = arg;
        ch[k].begin = n / t * k + (n % t) * k / t;
        ch[k].end = n / t * (k + 1) + (n % t) * (k + 1) / t;
    }
    for (size_t k = 1; k < t; k++) started[k] = pthread_create(&tid[k], NULL, fg_chunk_main, &ch[k]) == 0;
    fn(arg, ch[0].begin, ch[0].end);
    for (size_t k = 1; k < t; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            fn(arg, ch[k].begin, ch[k].end);
    }
}

/* ---- levels ------------------------------------------------------------------------ */

typedef struct fg_level {
    int w, h;
    size_t tiles_x, tiles_y;
    const uint8_t *rgba;  /* w*h pixels, 4 bytes each, row-major (NULL once swept) */
    const uint8_t *alpha; /* w*h bytes (NULL once swept) */
    uint8_t *own_rgba, *own_alpha; /* the nearest-sampled copies of coarse levels */
    size_t *slot;         /* per tile: its block in fb, or FG_NONE */
    float *fb;            /* blocks of FG_TILE_PX pixels (row-major in the tile) x 6 floats */
    int32_t *xmap, *ymap; /* this level's x, y -> the previous level's (NULL at level 0) */
} fg_level;

static void fg_level_free_image(fg_level *L) {
    free(L->own_rgba);
    free(L->own_alpha);
    L->own_rgba = L->own_alpha = NULL;
    L->rgba = L->alpha = NULL;
}

static void fg_level_free(fg_level *L) {
    fg_level_free_image(L);
    free(L->slot);
    free(L->fb);
    free(L->xmap);
    memset(L, 0, sizeof *L);
}

/* F and B of level l at (x, y): from the first level down that stores them there.
 * Level 0 stores everything. */
static inline const float *fg_fetch(const fg_level *levels, int l, size_t x, size_t y) {
    const fg_level *L = levels + l;
    for (;;) {
        const size_t s = L->slot[(y / FG_TILE) * L->tiles_x + x / FG_TILE];
        if (s != FG_NONE) return L->fb + (s * FG_TILE_PX + (y % FG_TILE) * FG_TILE + x % FG_TILE) * 6;
        const size_t px = (size_t)L->xmap[x], py = (size_t)L->ymap[y];
        x = px;
        y = py;
        L--;
    }
}

/* Nearest sampling as pymatting's _resize_nearest: src = dst * n_src / n_dst. */
static void fg_nearest_map(int32_t *map, int n_dst, int n_src) {
    for (int i = 0; i < n_dst; i++) {
        const long long s = (long long)i * n_src / n_dst;
        map[i] = (int32_t)(s < n_src ? s : n_src - 1);
    }
}

typedef struct fg_sample_arg {
    const int32_t *xmap, *ymap;
    int w, src_w;
    const uint8_t *src_rgba, *src_alpha;
    uint8_t *dst_rgba, *dst_alpha;
} fg_sample_arg;

static void fg_sample_image_rows(void *p, size_t y0, size_t y1) {
    const fg_sample_arg *a = p;
    for (size_t y = y0; y < y1; y++) {
        const size_t srow = (size_t)a->ymap[y] * (size_t)a->src_w;
        const size_t drow = y * (size_t)a->w;
        for (int x = 0; x < a->w; x++) {
            const size_t s = srow + (size_t)a->xmap[x], d = drow + (size_t)x;
            memcpy(a->dst_rgba + d * 4, a->src_rgba + s * 4, 4);
            a->dst_alpha[d] = a->src_alpha[s];
        }
    }
}

typedef struct fg_tiles_arg {
    const fg_level *levels;
    int level;
    const size_t *tiles; /* tile indices */
    const float *lut;    /* v / 255 */
    int colour;
    float eps, omega;
} fg_tiles_arg;

/* Starting F and B of a level's stored tiles: the previous level's, nearest. */
static void fg_upsample_tiles(void *p, size_t k0, size_t k1) {
    const fg_tiles_arg *a = p;
    const fg_level *L = a->levels + a->level;
    const size_t w = (size_t)L->w, h = (size_t)L->h;
    for (size_t k = k0; k < k1; k++) {
        const size_t t = a->tiles[k];
        const size_t x0 = t % L->tiles_x * FG_TILE, y0 = t / L->tiles_x * FG_TILE;
        const size_t tw = w - x0 < FG_TILE ? w - x0 : FG_TILE, th = h - y0 < FG_TILE ? h - y0 : FG_TILE;
        float *block = L->fb + L->slot[t] * FG_TILE_PX * 6;
        for (size_t yy = 0; yy < th; yy++) {
            const size_t sy = (size_t)L->ymap[y0 + yy];
            for (size_t xx = 0; xx < tw; xx++)
                memcpy(block + (yy * FG_TILE + xx) * 6,
                       fg_fetch(a->levels, a->level - 1, (size_t)L->xmap[x0 + xx], sy), 6 * sizeof(float));
        }
    }
}

/* ---- the sweep ---------------------------------------------------------------------- */

/* Solves one pixel's 2x2 system for (F, B), all three channels, with its neighbours
 * held fixed (pymatting's _estimate_fb_ml). a0: the pixel's alpha in [0, 1]; i: its
 * colour in [0, 1]; na: the 4 neighbours' alphas; nq: their F and B (6 floats each);
 * out: the pixel's new F and B, clamped to [0, 1]. */
static inline void fg_solve_pixel(float a0, const float i[3], const float na[4], const float *const nq[4], float eps,
                                  float omega, float out[6]) {
    const float a1 = 1.0f - a0;
    float a00 = a0 * a0, a11 = a1 * a1;
    const float a01 = a0 * a1;
    float bf0 = a0 * i[0], bf1 = a0 * i[1], bf2 = a0 * i[2];
    float bb0 = a1 * i[0], bb1 = a1 * i[1], bb2 = a1 * i[2];
    for (int d = 0; d < 4; d++) {
        const float diff = a0 - na[d];
        const float da = eps + omega * (diff < 0.0f ? -diff : diff);
        const float *q = nq[d];
        a00 += da;
        a11 += da;
        bf0 += da * q[0];
        bf1 += da * q[1];
        bf2 += da * q[2];
        bb0 += da * q[3];
        bb1 += da * q[4];
        bb2 += da * q[5];
    }
    const float inv_det = 1.0f / (a00 * a11 - a01 * a01);
    const float b00 = inv_det * a11, b01 = inv_det * -a01, b11 = inv_det * a00;
    const float v[6] = {b00 * bf0 + b01 * bb0, b00 * bf1 + b01 * bb1, b00 * bf2 + b01 * bb2,
                        b01 * bf0 + b11 * bb0, b01 * bf1 + b11 * bb1, b01 * bf2 + b11 * bb2};
    for (int c = 0; c < 6; c++) out[c] = v[c] < 0.0f ? 0.0f : (v[c] > 1.0f ? 1.0f : v[c]);
}

/* One pixel's update: neighbours in the order left, right, up, down, clamped at the
 * border (a border pixel counts itself), as pymatting. ia/an: row-major indices of the
 * pixel and its neighbours in the image and matte; i/fn: the same pixels in fb. */
static inline void fg_update(const fg_tiles_arg *a, const fg_level *L, size_t ia, size_t i,
                             const size_t an[4], const size_t fn[4]) {
    const float *lut = a->lut;
    const uint8_t *px = L->rgba + ia * 4;
    const float colour[3] = {lut[px[0]], lut[px[1]], lut[px[2]]};
    const float na[4] = {lut[L->alpha[an[0]]], lut[L->alpha[an[1]]], lut[L->alpha[an[2]]], lut[L->alpha[an[3]]]};
    const float *const nq[4] = {L->fb + fn[0] * 6, L->fb + fn[1] * 6, L->fb + fn[2] * 6, L->fb + fn[3] * 6};
    fg_solve_pixel(lut[L->alpha[ia]], colour, na, nq, a->eps, a->omega, L->fb + i * 6);
}

/* One half-sweep (pixels with (x+y)&1 == colour) over active tiles [k0, k1). The
 * tiles next to an active tile are stored (see fg_plan_tiles). */
static void fg_sweep_tiles(void *p, size_t k0, size_t k1) {
    const fg_tiles_arg *a = p;
    const fg_level *L = a->levels + a->level;
    const size_t w = (size_t)L->w, h = (size_t)L->h, tx_n = L->tiles_x, ty_n = L->tiles_y;
    const size_t T = FG_TILE;
    for (size_t k = k0; k < k1; k++) {
        const size_t t = a->tiles[k], tx = t % tx_n, ty = t / tx_n;
        const size_t x0 = tx * T, y0 = ty * T;
        const size_t tw = w - x0 < T ? w - x0 : T, th = h - y0 < T ? h - y0 : T;
        const size_t base = L->slot[t] * FG_TILE_PX;
        const size_t b_left = tx > 0 ? L->slot[t - 1] * FG_TILE_PX : 0;
        const size_t b_right = tx + 1 < tx_n ? L->slot[t + 1] * FG_TILE_PX : 0;
        const size_t b_up = ty > 0 ? L->slot[t - tx_n] * FG_TILE_PX : 0;
        const size_t b_down = ty + 1 < ty_n ? L->slot[t + tx_n] * FG_TILE_PX : 0;
        for (size_t yy = 0; yy < th; yy++) {
            const size_t y = y0 + yy;
            for (size_t xx = (x0 + y + (size_t)a->colour) & 1; xx < tw; xx += 2) {
                const size_t x = x0 + xx, ia = y * w + x, i = base + yy * T + xx;
                size_t an[4], fn[4];
                if (xx > 0) an[0] = ia - 1, fn[0] = i - 1;
                else if (x > 0) an[0] = ia - 1, fn[0] = b_left + yy * T + T - 1;
                else an[0] = ia, fn[0] = i;
                if (xx + 1 < tw) an[1] = ia + 1, fn[1] = i + 1;
                else if (x + 1 < w) an[1] = ia + 1, fn[1] = b_right + yy * T;
                else an[1] = ia, fn[1] = i;
                if (yy > 0) an[2] = ia - w, fn[2] = i - T;
                else if (y > 0) an[2] = ia - w, fn[2] = b_up + (T - 1) * T + xx;
                else an[2] = ia, fn[2] = i;
                if (yy + 1 < th) an[3] = ia + w, fn[3] = i + T;
                else if (y + 1 < h) an[3] = ia + w, fn[3] = b_down + xx;
                else an[3] = ia, fn[3] = i;
                fg_update(a, L, ia, i, an, fn);
            }
        }
    }
}

/* ---- skip-flat: which tiles to sweep and store --------------------------------------- */

static const uint8_t fg_zeros[FG_TILE];
static const uint8_t fg_ones[FG_TILE] = {255, 255, 255, 255, 255, 255, 255, 255,
                                          255, 255, 255, 255, 255, 255, 255, 255};

/* 1 when some pixel of the tile has a 4-neighbourhood that is not all 0 or all 255. */
static int fg_tile_has_source(const uint8_t *al, size_t w, size_t h, size_t x0, size_t y0,
                              size_t x1, size_t y1) {
    const uint8_t v = al[y0 * w + x0];
    if (v != 0 && v != 255) return 1;
    const uint8_t *ref = v ? fg_ones : fg_zeros;
    const size_t n = x1 - x0;
    for (size_t y = y0; y < y1; y++)
        if (memcmp(al + y * w + x0, ref, n) != 0) return 1;
    /* The tile is uniformly v: a source only if a neighbour just outside differs. */
    if (y0 > 0 && memcmp(al + (y0 - 1) * w + x0, ref, n) != 0) return 1;
    if (y1 < h && memcmp(al + y1 * w + x0, ref, n) != 0) return 1;
    for (size_t y = y0; y < y1; y++) {
        if (x0 > 0 && al[y * w + x0 - 1] != v) return 1;
        if (x1 < w && al[y * w + x1] != v) return 1;
    }
    return 0;
}

/* Square dilation of a tx_n*ty_n byte mask by d tiles; tmp is scratch. */
static void fg_dilate(const uint8_t *src, uint8_t *dst, uint8_t *tmp, size_t tx_n, size_t ty_n, size_t d) {
    for (size_t ty = 0; ty < ty_n; ty++)
        for (size_t tx = 0; tx < tx_n; tx++) {
            const size_t lo = tx > d ? tx - d : 0, hi = tx + d < tx_n - 1 ? tx + d : tx_n - 1;
            uint8_t m = 0;
            for (size_t u = lo; u <= hi && !m; u++) m = src[ty * tx_n + u];
            tmp[ty * tx_n + tx] = m;
        }
    for (size_t ty = 0; ty < ty_n; ty++) {
        const size_t lo = ty > d ? ty - d : 0, hi = ty + d < ty_n - 1 ? ty + d : ty_n - 1;
        for (size_t tx = 0; tx < tx_n; tx++) {
            uint8_t m = 0;
            for (size_t u = lo; u <= hi && !m; u++) m = tmp[u * tx_n + tx];
            dst[ty * tx_n + tx] = m;
        }
    }
}

/* active[]: tiles within 2*iterations-1 pixels of a source (a square superset);
 * stored[]: those plus one tile around. scratch: 2*tiles bytes. */
static void fg_plan_tiles(const fg_level *L, int iterations, uint8_t *active, uint8_t *stored,
                          uint8_t *scratch) {
    const size_t w = (size_t)L->w, h = (size_t)L->h, tx_n = L->tiles_x, ty_n = L->tiles_y;
    uint8_t *src = scratch, *tmp = scratch + tx_n * ty_n;
    for (size_t ty = 0; ty < ty_n; ty++)
        for (size_t tx = 0; tx < tx_n; tx++) {
            const size_t x0 = tx * FG_TILE, y0 = ty * FG_TILE;
            const size_t x1 = x0 + FG_TILE < w ? x0 + FG_TILE : w;
            const size_t y1 = y0 + FG_TILE < h ? y0 + FG_TILE : h;
            src[ty * tx_n + tx] = (uint8_t)fg_tile_has_source(L->alpha, w, h, x0, y0, x1, y1);
        }
    const size_t reach = (size_t)(2 * iterations - 1);
    fg_dilate(src, active, tmp, tx_n, ty_n, (reach + FG_TILE - 1) / FG_TILE);
    fg_dilate(active, stored, tmp, tx_n, ty_n, 1);
}

/* ---- output --------------------------------------------------------------------------- */

typedef struct fg_out_arg {
    const uint8_t *rgba, *alpha;
    const fg_level *levels;
    int level;
    uint8_t *out;
    size_t w;
} fg_out_arg;

static void fg_output_rows(void *p, size_t y0, size_t y1) {
    const fg_out_arg *a = p;
    for (size_t y = y0; y < y1; y++)
        for (size_t x = 0; x < a->w; x++) {
            const size_t i = y * a->w + x;
            if (a->alpha[i] == 255) {
                memcpy(a->out + i * 3, a->rgba + i * 4, 3);
            } else {
                const float *f = fg_fetch(a->levels, a->level, x, y);
                for (int c = 0; c < 3; c++) a->out[i * 3 + (size_t)c] = (uint8_t)(f[c] * 255.0f + 0.5f);
            }
        }
}

/* ---- the pyramid ---------------------------------------------------------------------- */

/* Levels 0..n, n = ceil(log2(max(W,H))): the returned value is n. */
static int fg_level_count(int width, int height) {
    const int maxdim = width > height ? width : height;
    int n = 0;
    while ((1LL << n) < (long long)maxdim) n++;
    return n;
}

/* Level l of n: round(W^(l/n)) x round(H^(l/n)); level n is the image itself. */
static void fg_level_size(int width, int height, int n_levels, int l, int *w, int *h) {
    *w = width;
    *h = height;
    if (l < n_levels) {
        const double e = (double)l / (double)n_levels;
        int lw = (int)lround(pow((double)width, e));
        int lh = (int)lround(pow((double)height, e));
        *w = lw < 1 ? 1 : (lw > width ? width : lw);
        *h = lh < 1 ? 1 : (lh > height ? height : lh);
    }
}

static int fg_iterations(int w, int h) {
    return (w <= PM_FG_SMALL_SIZE && h <= PM_FG_SMALL_SIZE) ? PM_FG_SMALL_ITERATIONS : PM_FG_BIG_ITERATIONS;
}

/* Levels up to this many pixels run on the host in a device run: on a GPU each of
 * their sweeps would cost a dozen kernel launches for a few thousand pixels. */
#define FG_HOST_MAX_PIXELS 65536

/* ---- running levels on the host -------------------------------------------------------- */

static int fg_online_cpus(void) {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    return n > FG_MAX_THREADS ? FG_MAX_THREADS : (int)n;
}

static size_t fg_min_rows(int w) {
    const size_t r = FG_MIN_PIXELS_PER_THREAD / (size_t)w;
    return r ? r : 1;
}

/* One estimation: the image, its pyramid and the levels run so far. */
typedef struct fg_run {
    const uint8_t *rgba, *alpha; /* the image, width x height */
    int width, height, n_levels;
    int threads, skip_flat;
    float lut[256];              /* v / 255 */
    fg_level levels[32];
} fg_run;

/* Checks what every entry point needs: pointers, sizes that fit every buffer. */
static pm_code fg_check(const uint8_t *rgba, const uint8_t *alpha, int width, int height, const uint8_t *rgb_out,
                        char *err, size_t errcap) {
    if (!rgba || !alpha || !rgb_out)
        return fg_fail(err, errcap, PM_ERR_INVALID_ARGUMENT, "foreground: NULL image, matte or output");
    if (width < 1 || height < 1)
        return fg_fail(err, errcap, PM_ERR_INVALID_ARGUMENT, "foreground: bad size %dx%d", width, height);
    /* The largest buffer is every tile of the finest level stored: tiles*256*6 floats.
     * W + H <= INT_MAX keeps the maps (and n_levels <= 31) in range. */
    const size_t W = (size_t)width, H = (size_t)height;
    const size_t tx_max = (W + FG_TILE - 1) / FG_TILE, ty_max = (H + FG_TILE - 1) / FG_TILE;
    if (W + H > (size_t)INT_MAX || tx_max > SIZE_MAX / ty_max ||
        tx_max * ty_max > SIZE_MAX / (FG_TILE_PX * 6 * sizeof(float)) || W > SIZE_MAX / 4 / H)
        return fg_fail(err, errcap, PM_ERR_INVALID_ARGUMENT, "foreground: %dx%d overflows", width, height);
    return PM_OK;
}

static void fg_run_init(fg_run *r, const uint8_t *rgba, const uint8_t *alpha, int width, int height, int threads,
                        int skip_flat) {
    memset(r, 0, sizeof *r);
    r->rgba = rgba;
    r->alpha = alpha;
    r->width = width;
    r->height = height;
    r->n_levels = fg_level_count(width, height);
    r->threads = threads > FG_MAX_THREADS ? FG_MAX_THREADS : threads;
    r->skip_flat = skip_flat;
    for (int v = 0; v < 256; v++) r->lut[v] = (float)v / 255.0f;
}

static void fg_run_free(fg_run *r) {
    for (int l = 0; l <= r->n_levels; l++) fg_level_free(r->levels + l);
}

/* Runs levels [0, count) of the pyramid, count <= n_levels + 1. PM_OK or
 * PM_ERR_NO_MEMORY; fg_run_free releases what was allocated either way. */
static pm_code fg_run_levels(fg_run *r, int count) {
    const int width = r->width, height = r->height, threads = r->threads;
    fg_level *levels = r->levels;
    /* Scratch for the largest level run, the last one. */
    int top_w, top_h;
    fg_level_size(width, height, r->n_levels, count - 1, &top_w, &top_h);
    const size_t tiles_max =
        (((size_t)top_w + FG_TILE - 1) / FG_TILE) * (((size_t)top_h + FG_TILE - 1) / FG_TILE);

    pm_code rc = PM_OK;
    int32_t *map = malloc(((size_t)top_w + (size_t)top_h) * sizeof *map);
    size_t *active_list = malloc(tiles_max * 2 * sizeof *active_list);
    uint8_t *masks = malloc(tiles_max * 4);
    if (!map || !active_list || !masks) goto no_memory;
    size_t *stored_list = active_list + tiles_max;
    uint8_t *active = masks, *stored = masks + tiles_max;
    const float *lut = r->lut;

    for (int l = 0; l < count; l++) {
        fg_level *L = levels + l;
        int w, h;
        fg_level_size(width, height, r->n_levels, l, &w, &h);
        L->w = w;
        L->h = h;
        L->tiles_x = ((size_t)w + FG_TILE - 1) / FG_TILE;
        L->tiles_y = ((size_t)h + FG_TILE - 1) / FG_TILE;
        const size_t n_tiles = L->tiles_x * L->tiles_y;
        if (l == r->n_levels) {
            L->rgba = r->rgba;
            L->alpha = r->alpha;
        } else {
            const size_t px = (size_t)w * (size_t)h;
            L->own_rgba = malloc(px * 4);
            L->own_alpha = malloc(px);
            if (!L->own_rgba || !L->own_alpha) goto no_memory;
            fg_nearest_map(map, w, width);
            fg_nearest_map(map + w, h, height);
            fg_sample_arg sa = {.xmap = map, .ymap = map + w, .w = w, .src_w = width,
                                .src_rgba = r->rgba, .src_alpha = r->alpha,
                                .dst_rgba = L->own_rgba, .dst_alpha = L->own_alpha};
            fg_parallel(threads, (size_t)h, fg_min_rows(w), fg_sample_image_rows, &sa);
            L->rgba = L->own_rgba;
            L->alpha = L->own_alpha;
        }

        const int iterations = fg_iterations(w, h);
        if (r->skip_flat && l > 0) { /* level 0 (1x1) is stored whole: fetches end there */
            fg_plan_tiles(L, iterations, active, stored, masks + 2 * tiles_max);
        } else {
            memset(active, 1, n_tiles);
            memset(stored, 1, n_tiles);
        }
        L->slot = malloc(n_tiles * sizeof *L->slot);
        if (!L->slot) goto no_memory;
        size_t n_active = 0, n_stored = 0;
        for (size_t t = 0; t < n_tiles; t++) {
            if (active[t]) active_list[n_active++] = t;
            if (stored[t]) stored_list[n_stored] = t;
            L->slot[t] = stored[t] ? n_stored++ : FG_NONE;
        }
        L->fb = malloc((n_stored ? n_stored : 1) * FG_TILE_PX * 6 * sizeof(float));
        if (!L->fb) goto no_memory;

        fg_tiles_arg ta = {.levels = levels, .level = l, .lut = lut,
                           .eps = PM_FG_REGULARIZATION, .omega = PM_FG_GRADIENT_WEIGHT};
        if (l == 0) {
            /* Nothing coarser: start from F = B = I, the solution where the matte is flat. */
            for (size_t y = 0; y < (size_t)h; y++)
                for (size_t x = 0; x < (size_t)w; x++) {
                    float *q = L->fb + (L->slot[(y / FG_TILE) * L->tiles_x + x / FG_TILE] * FG_TILE_PX +
                                        (y % FG_TILE) * FG_TILE + x % FG_TILE) * 6;
                    for (int c = 0; c < 3; c++) q[c] = q[3 + c] = lut[L->rgba[(y * (size_t)w + x) * 4 + (size_t)c]];
                }
        } else {
            L->xmap = malloc(((size_t)w + (size_t)h) * sizeof *L->xmap);
            if (!L->xmap) goto no_memory;
            L->ymap = L->xmap + w;
            fg_nearest_map(L->xmap, w, levels[l - 1].w);
            fg_nearest_map(L->ymap, h, levels[l - 1].h);
            ta.tiles = stored_list;
            fg_parallel(threads, n_stored, FG_MIN_TILES_PER_THREAD, fg_upsample_tiles, &ta);
            /* Stored in full, this level never falls back to coarser ones. */
            if (n_stored == n_tiles)
                for (int k = 0; k < l; k++) fg_level_free(levels + k);
        }

        ta.tiles = active_list;
        for (int it = 0; it < iterations; it++)
            for (int colour = 0; colour < 2; colour++) {
                ta.colour = colour;
                fg_parallel(threads, n_active, FG_MIN_TILES_PER_THREAD, fg_sweep_tiles, &ta);
            }
        fg_level_free_image(L);
    }
    goto done;

no_memory:
    rc = PM_ERR_NO_MEMORY;
done:
    free(map);
    free(active_list);
    free(masks);
    return rc;
}

/* The 8-bit output from the finest level, once every level has run. */
static void fg_run_output(const fg_run *r, uint8_t *rgb_out) {
    fg_out_arg oa = {.rgba = r->rgba, .alpha = r->alpha, .levels = r->levels, .level = r->n_levels,
                     .out = rgb_out, .w = (size_t)r->width};
    fg_parallel(r->threads, (size_t)r->height, fg_min_rows(r->width), fg_output_rows, &oa);
}

static pm_code fg_no_memory(char *err, size_t errcap, int width, int height) {
    return fg_fail(err, errcap, PM_ERR_NO_MEMORY, "foreground: out of memory for a %dx%d image", width, height);
}

/* ---- entry points ---------------------------------------------------------------------- */

pm_code pm_estimate_foreground_tuned(const uint8_t *rgba, const uint8_t *alpha, int width,
                                     int height, uint8_t *rgb_out, const pm_fg_tuning *tuning,
                                     char *err, size_t errcap) {
    const pm_fg_tuning defaults = PM_FG_TUNING_DEFAULT;
    const pm_fg_tuning *tu = tuning ? tuning : &defaults;
    pm_code rc = fg_check(rgba, alpha, width, height, rgb_out, err, errcap);
    if (rc != PM_OK) return rc;
    if (tu->threads < 0 || (tu->skip_flat != 0 && tu->skip_flat != 1))
        return fg_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                       "foreground: bad tuning (threads %d, skip_flat %d)", tu->threads, tu->skip_flat);
    fg_run r;
    fg_run_init(&r, rgba, alpha, width, height, tu->threads ? tu->threads : fg_online_cpus(), tu->skip_flat);
    rc = fg_run_levels(&r, r.n_levels + 1);
    if (rc == PM_OK)
        fg_run_output(&r, rgb_out);
    else
        rc = fg_no_memory(err, errcap, width, height);
    fg_run_free(&r);
    return rc;
}

pm_code pm_estimate_foreground(const uint8_t *rgba, const uint8_t *alpha, int width, int height,
                               uint8_t *rgb_out, char *err, size_t errcap) {
    return pm_estimate_foreground_tuned(rgba, alpha, width, height, rgb_out, NULL, err, errcap);
}

/* The device run's plan: the levels after the host's, with their maps. */
typedef struct fg_device_plan {
    pm_fg_plan plan;
    pm_fg_level *level;
    int32_t *maps;
    float *start_fb;
} fg_device_plan;

static void fg_device_plan_free(fg_device_plan *p) {
    free(p->level);
    free(p->maps);
    free(p->start_fb);
}

/* Level n_host - 1 of r (swept in full) as rows of pixels of 6 floats, and the maps
 * of levels n_host..n_levels. PM_OK or PM_ERR_NO_MEMORY. */
static pm_code fg_device_plan_make(fg_device_plan *p, const fg_run *r, int n_host) {
    memset(p, 0, sizeof *p);
    const fg_level *top = r->levels + (n_host - 1);
    const size_t tw = (size_t)top->w, th = (size_t)top->h;
    const int n_dev = r->n_levels + 1 - n_host;
    size_t n_maps = 0;
    for (int l = n_host; l <= r->n_levels; l++) {
        int w, h;
        fg_level_size(r->width, r->height, r->n_levels, l, &w, &h);
        n_maps += 2 * ((size_t)w + (size_t)h);
    }
    p->start_fb = malloc(tw * th * 6 * sizeof *p->start_fb);
    p->level = calloc((size_t)n_dev, sizeof *p->level);
    p->maps = malloc(n_maps * sizeof *p->maps);
    if (!p->start_fb || !p->level || !p->maps) return PM_ERR_NO_MEMORY;
    for (size_t y = 0; y < th; y++)
        for (size_t x = 0; x < tw; x++)
            memcpy(p->start_fb + (y * tw + x) * 6, fg_fetch(r->levels, n_host - 1, x, y), 6 * sizeof(float));

    int32_t *m = p->maps;
    int pw = top->w, ph = top->h;
    for (int k = 0; k < n_dev; k++) {
        pm_fg_level *L = p->level + k;
        const int l = n_host + k;
        fg_level_size(r->width, r->height, r->n_levels, l, &L->width, &L->height);
        L->iterations = fg_iterations(L->width, L->height);
        int32_t *x_prev = m, *y_prev = m + L->width;
        m += L->width + L->height;
        fg_nearest_map(x_prev, L->width, pw);
        fg_nearest_map(y_prev, L->height, ph);
        L->x_prev = x_prev;
        L->y_prev = y_prev;
        if (l < r->n_levels) { /* the finest level is the image as it is */
            int32_t *x_full = m, *y_full = m + L->width;
            m += L->width + L->height;
            fg_nearest_map(x_full, L->width, r->width);
            fg_nearest_map(y_full, L->height, r->height);
            L->x_full = x_full;
            L->y_full = y_full;
        }
        pw = L->width;
        ph = L->height;
    }
    p->plan.levels = n_dev;
    p->plan.level = p->level;
    p->plan.start_width = top->w;
    p->plan.start_height = top->h;
    p->plan.start_fb = p->start_fb;
    p->plan.regularization = PM_FG_REGULARIZATION;
    p->plan.gradient_weight = PM_FG_GRADIENT_WEIGHT;
    p->plan.band_pixels = PM_FG_DEVICE_BAND_PIXELS;
    return PM_OK;
}

pm_code pm_estimate_foreground_on_device(struct pm_shim_model *model, const uint8_t *rgba, const uint8_t *alpha,
                                         int width, int height, uint8_t *rgb_out, char *err, size_t errcap) {
    pm_code rc = fg_check(rgba, alpha, width, height, rgb_out, err, errcap);
    if (rc != PM_OK) return rc;
    if (!model) return fg_fail(err, errcap, PM_ERR_INVALID_ARGUMENT, "foreground: NULL model");
    fg_run r;
    fg_run_init(&r, rgba, alpha, width, height, fg_online_cpus(), 0); /* full sweeps, as on the device */
    int n_host = 0;
    for (; n_host <= r.n_levels; n_host++) {
        int w, h;
        fg_level_size(width, height, r.n_levels, n_host, &w, &h);
        if ((long long)w * h > FG_HOST_MAX_PIXELS) break;
    }
    rc = fg_run_levels(&r, n_host);
    if (rc == PM_OK && n_host > r.n_levels) { /* a small image: nothing for the device */
        fg_run_output(&r, rgb_out);
        fg_run_free(&r);
        return PM_OK;
    }
    fg_device_plan p;
    memset(&p, 0, sizeof p);
    if (rc == PM_OK) rc = fg_device_plan_make(&p, &r, n_host);
    fg_run_free(&r); /* the host levels' result now lives in the plan */
    if (rc == PM_OK)
        rc = pm_shim_estimate_foreground(model, rgba, alpha, width, height, &p.plan, rgb_out, err, errcap);
    else
        rc = fg_no_memory(err, errcap, width, height);
    fg_device_plan_free(&p);
    return rc;
}
