/*
 * encode_png.c - PNG output: the chunks written here, the pixels filtered here, the
 * deflate done by libdeflate (one call) or by zlib (bands of rows on several threads).
 *
 * Decisions (figures in docs/benchmarks.md, "PNG and WebP output"):
 *  - Every row uses the Up filter. It is one subtraction a byte, and on the photo
 *    cut-outs measured it compressed better than Paeth and than libpng's adaptive
 *    choice (minimum sum of absolute differences over the five filters).
 *  - One thread: libdeflate compresses the whole filtered image in one call (it
 *    needs all its input at once), the fastest deflate Debian ships.
 *  - Bands: libdeflate cannot end a stream anywhere but in a final block, so bands
 *    go through zlib instead: each band is a raw deflate stream of its own (no
 *    match reaches into the band before it) that ends with Z_SYNC_FLUSH, i.e. on a
 *    byte boundary and without a final block, so the bands concatenate into one
 *    valid zlib stream; the last band ends with Z_FINISH. Each thread also keeps the
 *    Adler-32 of its filtered bytes, and adler32_combine joins them in order.
 *    zlib is about half as fast as libdeflate a core, so bands pay only from three
 *    threads on (pm_png_auto_threads).
 *  - Each band filters and compresses a few rows at a time, so a band holds no
 *    filtered copy of its rows; the single-call path needs one.
 *  - IDAT chunks hold at most PM_PNG_IDAT_MAX bytes each (the format allows 2^31 - 1).
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libdeflate.h>
#include <zlib.h>

#include "encode.h"
#include "image_internal.h"

#define PM_PNG_IDAT_MAX ((size_t)1 << 30)
#define PM_PNG_FILTER_UP 2
/* Rows a band filters before handing them to deflate. */
#define PM_PNG_BAND_CHUNK_ROWS 16
/* zlib's avail_in is an unsigned int: feed it at most this much at a time. */
#define PM_PNG_ZLIB_FEED ((size_t)1 << 30)

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* out[0] = filter type Up, out[1..n] = cur - prev (prev NULL: the row above the
 * first is zeros, so the bytes are the row itself). */
static void filter_row_up(const uint8_t *restrict cur, const uint8_t *restrict prev,
                          uint8_t *restrict out, size_t n)
{
    out[0] = PM_PNG_FILTER_UP;
    out++;
    if (prev == NULL) {
        memcpy(out, cur, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(cur[i] - prev[i]);
}

int pm_png_auto_threads(int width, int height, int channels)
{
    if (width <= 0 || height <= 0 || channels <= 0)
        return 1;
    long cpus = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = CPU_COUNT(&set);
    if (cpus <= 0)
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > PM_PNG_MAX_THREADS)
        cpus = PM_PNG_MAX_THREADS;
    uint64_t filtered = ((uint64_t)width * (uint64_t)channels + 1u) * (uint64_t)height;
    uint64_t by_size = filtered / PM_PNG_MIN_BAND_BYTES;
    long n = (uint64_t)cpus < by_size ? cpus : (long)by_size;
    if (n > height)
        n = height;
    return n >= 3 ? (int)n : 1;
}

/* ------------------------------------------------------------ the chunks */

/* One piece of the zlib stream, in order. */
typedef struct zpiece {
    const uint8_t *data;
    size_t size;
} zpiece;

/* Signature, IHDR, the zlib stream (the pieces, in order) split into IDAT chunks,
 * IEND: one malloc'd buffer. */
static pm_code png_assemble(int width, int height, int channels, const zpiece *pieces,
                            int n_pieces, uint8_t **out, size_t *out_size, char *err,
                            size_t errcap)
{
    size_t zlen = 0;
    for (int i = 0; i < n_pieces; i++) {
        if (pieces[i].size > SIZE_MAX / 2 - zlen)
            return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                               "PNG: the compressed image is too large to address");
        zlen += pieces[i].size;
    }
    size_t chunks = zlen / PM_PNG_IDAT_MAX + 1;
    size_t total = sizeof png_signature + 25u + chunks * 12u + zlen + 12u;
    uint8_t *png = malloc(total);
    if (png == NULL)
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                           "no memory for a %zu-byte PNG of %dx%d", total, width, height);
    uint8_t *p = png;
    memcpy(p, png_signature, sizeof png_signature);
    p += sizeof png_signature;

    static const uint8_t color_type[5] = {0, 0, 4, 2, 6}; /* by channel count */
    put_be32(p, 13);
    memcpy(p + 4, "IHDR", 4);
    put_be32(p + 8, (uint32_t)width);
    put_be32(p + 12, (uint32_t)height);
    p[16] = 8; /* bit depth */
    p[17] = color_type[channels];
    p[18] = 0; /* deflate */
    p[19] = 0; /* adaptive filtering (the per-row filter byte) */
    p[20] = 0; /* no interlace */
    put_be32(p + 21, (uint32_t)libdeflate_crc32(0, p + 4, 17));
    p += 25;

    /* IDAT chunks of up to PM_PNG_IDAT_MAX bytes, filled across piece borders. */
    int piece = 0;
    size_t used = 0; /* bytes of pieces[piece] already written */
    size_t left = zlen;
    do {
        size_t len = left < PM_PNG_IDAT_MAX ? left : PM_PNG_IDAT_MAX;
        put_be32(p, (uint32_t)len);
        memcpy(p + 4, "IDAT", 4);
        uint32_t crc = (uint32_t)libdeflate_crc32(0, p + 4, 4);
        p += 8;
        for (size_t need = len; need > 0;) {
            while (used == pieces[piece].size) {
                piece++;
                used = 0;
            }
            size_t take = pieces[piece].size - used;
            if (take > need)
                take = need;
            memcpy(p, pieces[piece].data + used, take);
            crc = (uint32_t)libdeflate_crc32(crc, p, take);
            p += take;
            used += take;
            need -= take;
        }
        put_be32(p, crc);
        p += 4;
        left -= len;
    } while (left > 0);

    put_be32(p, 0);
    memcpy(p + 4, "IEND", 4);
    put_be32(p + 8, (uint32_t)libdeflate_crc32(0, p + 4, 4));
    p += 12;

    *out = png;
    *out_size = (size_t)(p - png);
    return PM_OK;
}

/* ------------------------------------------------- one call of libdeflate */

static pm_code png_single(const uint8_t *px, int width, int height, int channels, int level,
                          uint8_t **out, size_t *out_size, char *err, size_t errcap)
{
    const size_t row = (size_t)width * (size_t)channels;
    const size_t filtered_size = (row + 1u) * (size_t)height; /* checked by the caller */
    uint8_t *filtered = malloc(filtered_size);
    if (filtered == NULL)
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                           "no memory for the %zu filtered bytes of a %dx%d PNG", filtered_size,
                           width, height);
    for (size_t y = 0; y < (size_t)height; y++)
        filter_row_up(px + y * row, y > 0 ? px + (y - 1) * row : NULL,
                      filtered + y * (row + 1u), row);

    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (c == NULL) {
        free(filtered);
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                           "no memory for the PNG compressor (level %d)", level);
    }
    size_t bound = libdeflate_zlib_compress_bound(c, filtered_size);
    uint8_t *z = malloc(bound);
    if (z == NULL) {
        libdeflate_free_compressor(c);
        free(filtered);
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                           "no memory for the compressed data of a %dx%d PNG", width, height);
    }
    size_t zlen = libdeflate_zlib_compress(c, filtered, filtered_size, z, bound);
    libdeflate_free_compressor(c);
    free(filtered);
    if (zlen == 0) { /* only when the bound was wrong */
        free(z);
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL,
                           "PNG: libdeflate found no room within its own bound (%zu bytes)", bound);
    }
    zpiece piece = {z, zlen};
    pm_code rc = png_assemble(width, height, channels, &piece, 1, out, out_size, err, errcap);
    free(z);
    return rc;
}

/* --------------------------------------------------- bands through zlib */

typedef struct band {
    /* in */
    const uint8_t *px;
    size_t row;     /* bytes a pixel row */
    int y0, y1;     /* rows [y0, y1) */
    int last;       /* the last band ends the stream */
    int zlevel;
    /* out */
    uint8_t *z;     /* raw deflate, malloc'd */
    size_t zlen;
    uLong adler;    /* of the filtered bytes */
    size_t filtered;/* their count */
    pm_code rc;
    char err[160];
} band;

/* Feeds len bytes to deflate with the given flush at the end (zlib counts in
 * unsigned ints, so in pieces), with *out_left bytes of room at s->next_out.
 * Returns Z_OK once all is in and flushed as asked, Z_STREAM_END after Z_FINISH,
 * or zlib's error (Z_BUF_ERROR: out of room). */
static int deflate_all(z_stream *s, uint8_t *in, size_t len, int flush, size_t *out_left)
{
    size_t fed = 0;
    for (;;) {
        const size_t feed = len - fed < PM_PNG_ZLIB_FEED ? len - fed : PM_PNG_ZLIB_FEED;
        const size_t room = *out_left < PM_PNG_ZLIB_FEED ? *out_left : PM_PNG_ZLIB_FEED;
        s->next_in = in + fed;
        s->avail_in = (uInt)feed;
        s->avail_out = (uInt)room;
        int zr = deflate(s, fed + feed == len ? flush : Z_NO_FLUSH);
        fed += feed - s->avail_in;
        *out_left -= room - s->avail_out;
        if (zr == Z_STREAM_END)
            return flush == Z_FINISH && fed == len ? Z_STREAM_END : Z_STREAM_ERROR;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return zr;
        /* Room left after the call: deflate wrote all it had for this flush. */
        if (fed == len && s->avail_out > 0 && flush != Z_FINISH)
            return Z_OK;
        if (*out_left == 0)
            return Z_BUF_ERROR;
    }
}

static void *band_run(void *arg)
{
    band *b = arg;
    const size_t rows = (size_t)(b->y1 - b->y0);
    const size_t chunk_rows = rows < PM_PNG_BAND_CHUNK_ROWS ? rows : PM_PNG_BAND_CHUNK_ROWS;
    b->filtered = (b->row + 1u) * rows;
    b->adler = 1; /* Adler-32 of nothing */
    uint8_t *buf = malloc((b->row + 1u) * chunk_rows);
    if (buf == NULL) {
        b->rc = pm_img_fail(b->err, sizeof b->err, PM_ERR_NO_MEMORY,
                            "no memory to filter a band of PNG rows");
        return NULL;
    }
    z_stream s;
    memset(&s, 0, sizeof s);
    int zr = deflateInit2(&s, b->zlevel, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    if (zr != Z_OK) {
        free(buf);
        b->rc = pm_img_fail(b->err, sizeof b->err,
                            zr == Z_MEM_ERROR ? PM_ERR_NO_MEMORY : PM_ERR_INTERNAL,
                            "PNG: zlib's deflateInit2 failed (%d)", zr);
        return NULL;
    }
    /* deflateBound covers Z_FINISH; a sync flush adds an empty stored block (5
     * bytes) and may need a few bits more. */
    size_t cap = (size_t)deflateBound(&s, (uLong)b->filtered) + 64u;
    b->z = malloc(cap);
    if (b->z == NULL) {
        deflateEnd(&s);
        free(buf);
        b->rc = pm_img_fail(b->err, sizeof b->err, PM_ERR_NO_MEMORY,
                            "no memory for a band of compressed PNG data");
        return NULL;
    }
    s.next_out = b->z;
    size_t out_left = cap;
    for (int y = b->y0; y < b->y1 && zr == Z_OK;) {
        int n = (int)chunk_rows < b->y1 - y ? (int)chunk_rows : b->y1 - y;
        for (int k = 0; k < n; k++) {
            const uint8_t *cur = b->px + (size_t)(y + k) * b->row;
            filter_row_up(cur, y + k > 0 ? cur - b->row : NULL, buf + (size_t)k * (b->row + 1u),
                          b->row);
        }
        y += n;
        const size_t len = (size_t)n * (b->row + 1u);
        b->adler = libdeflate_adler32((uint32_t)b->adler, buf, len);
        const int flush = y < b->y1 ? Z_NO_FLUSH : b->last ? Z_FINISH : Z_SYNC_FLUSH;
        zr = deflate_all(&s, buf, len, flush, &out_left);
    }
    deflateEnd(&s);
    free(buf);
    if (zr != (b->last ? Z_STREAM_END : Z_OK)) {
        free(b->z);
        b->z = NULL;
        b->rc = pm_img_fail(b->err, sizeof b->err, PM_ERR_INTERNAL,
                            "PNG: zlib's deflate failed on rows %d..%d (%d)", b->y0, b->y1 - 1, zr);
        return NULL;
    }
    b->zlen = cap - out_left;
    b->rc = PM_OK;
    return NULL;
}

static pm_code png_bands(const uint8_t *px, int width, int height, int channels, int level,
                         int n, uint8_t **out, size_t *out_size, char *err, size_t errcap)
{
    if (n > height)
        n = height;
    band *bands = calloc((size_t)n, sizeof *bands);
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    uint8_t *started = calloc((size_t)n, 1);
    zpiece *pieces = calloc((size_t)n + 2u, sizeof *pieces);
    if (bands == NULL || threads == NULL || started == NULL || pieces == NULL) {
        free(bands);
        free(threads);
        free(started);
        free(pieces);
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY, "no memory to plan PNG bands");
    }
    const size_t row = (size_t)width * (size_t)channels;
    const int zlevel = level < 9 ? level : 9;
    for (int i = 0; i < n; i++) {
        bands[i].px = px;
        bands[i].row = row;
        bands[i].y0 = (int)((int64_t)height * i / n);
        bands[i].y1 = (int)((int64_t)height * (i + 1) / n);
        bands[i].last = i == n - 1;
        bands[i].zlevel = zlevel;
    }
    /* Bands 1..n-1 on helper threads, band 0 here; a helper that cannot start is
     * run here too. */
    for (int i = 1; i < n; i++)
        started[i] = pthread_create(&threads[i], NULL, band_run, &bands[i]) == 0;
    band_run(&bands[0]);
    for (int i = 1; i < n; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        else
            band_run(&bands[i]);
    }

    pm_code rc = PM_OK;
    for (int i = 0; i < n && rc == PM_OK; i++)
        if (bands[i].rc != PM_OK)
            rc = pm_img_fail(err, errcap, bands[i].rc, "%s", bands[i].err);
    if (rc == PM_OK) {
        /* zlib header: deflate, 32 KiB window, the level class; FCHECK makes the
         * 16-bit value a multiple of 31. */
        static const uint8_t header[4][2] = {{0x78, 0x01}, {0x78, 0x5E}, {0x78, 0x9C}, {0x78, 0xDA}};
        const int cls = zlevel <= 1 ? 0 : zlevel <= 5 ? 1 : zlevel == 6 ? 2 : 3;
        uLong adler = bands[0].adler;
        for (int i = 1; i < n; i++)
            adler = adler32_combine(adler, bands[i].adler, (z_off_t)bands[i].filtered);
        uint8_t trailer[4];
        put_be32(trailer, (uint32_t)adler);
        pieces[0] = (zpiece){header[cls], 2};
        for (int i = 0; i < n; i++)
            pieces[i + 1] = (zpiece){bands[i].z, bands[i].zlen};
        pieces[n + 1] = (zpiece){trailer, 4};
        rc = png_assemble(width, height, channels, pieces, n + 2, out, out_size, err, errcap);
    }
    for (int i = 0; i < n; i++)
        free(bands[i].z);
    free(bands);
    free(threads);
    free(started);
    free(pieces);
    return rc;
}

pm_code pm_encode_png(const uint8_t *px, int width, int height, int channels, int level,
                      int threads, uint8_t **out, size_t *out_size, char *err, size_t errcap)
{
    if (out == NULL || out_size == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL, "PNG encoder called without an output");
    *out = NULL;
    *out_size = 0;
    if (px == NULL || width <= 0 || height <= 0 ||
        (channels != 1 && channels != 3 && channels != 4))
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL,
                           "PNG encoder called with %dx%d, %d channels", width, height, channels);
    if (level < PM_PNG_LEVEL_MIN || level > PM_PNG_LEVEL_MAX)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "PNG level %d is not in %d..%d", level, PM_PNG_LEVEL_MIN,
                           PM_PNG_LEVEL_MAX);
    if (threads < 0 || threads > PM_PNG_MAX_THREADS)
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL,
                           "PNG encoder called with %d threads", threads);
    /* The filtered rows, and what addresses them, must fit a size_t. */
    const uint64_t filtered = ((uint64_t)width * (uint64_t)channels + 1u) * (uint64_t)height;
    if (filtered > (uint64_t)SIZE_MAX / 2u)
        return pm_img_fail(err, errcap, PM_ERR_UNSUPPORTED,
                           "a %dx%d image is too large to encode as PNG here", width, height);
    if (threads == 0)
        threads = pm_png_auto_threads(width, height, channels);
    if (threads <= 1)
        return png_single(px, width, height, channels, level, out, out_size, err, errcap);
    return png_bands(px, width, height, channels, level, threads, out, out_size, err, errcap);
}
