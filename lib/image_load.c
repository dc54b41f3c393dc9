/*
 * image_load.c - pm_image_load: encoded or raw input to an upright 8-bit RGBA
 * buffer, with every limit checked before a pixel buffer exists.
 *
 * Order of work for encoded input, and why:
 *   1. the byte limit (max_encoded_bytes), from the argument alone;
 *   2. the dimensions, from the header alone (our own PNG/JPEG header readers,
 *      else stb's info probe), so that a 65535x65535 header is refused without
 *      stb ever sizing a buffer for it;
 *   3. the pixel limit (max_pixels) from those dimensions;
 *   4. JPEG only: the end-of-image marker must be there (stb decodes a cut-short
 *      JPEG as grey without complaint);
 *   5. the decode: JPEG by libjpeg-turbo (image_jpeg.c; CMYK/YCCK JPEGs fall
 *      through to stb), everything else by stb under an allocation cap derived
 *      from the header dimensions (a zlib bomb inside a small-dimension PNG fails
 *      instead of growing);
 *   6. JPEG only, when asked: the EXIF orientation is undone.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "image_stb.h"
#include "pixel_alloc.h"

/* Decoder allocation cap = padded pixels * PM_CAP_BYTES_PER_PIXEL + PM_CAP_SLACK.
 * 8 bytes a pixel covers the largest per-pixel buffer stb makes for 8/16-bit
 * formats (16-bit RGBA, and the PNG filter stream which is that plus one byte a
 * row); Radiance HDR decodes through float RGBA, 16 bytes a pixel. JPEG pads each
 * side up to a whole MCU (at most 16 more), hence the padding. The slack covers
 * fixed-size decoder state (tables, GIF state, small images). */
#define PM_CAP_BYTES_PER_PIXEL 8u
#define PM_CAP_BYTES_PER_PIXEL_HDR 16u
#define PM_CAP_PAD 16u
#define PM_CAP_SLACK ((uint64_t)16 << 20)

pm_code pm_img_fail(char *err, size_t errcap, pm_code code, const char *fmt, ...)
{
    if (err != NULL && errcap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errcap, fmt, ap);
        va_end(ap);
    }
    return code;
}

void pm_rgba_free(pm_rgba *img)
{
    if (img == NULL)
        return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* Rows of the raw input, of any stride, to tight RGBA. */
static void rows_to_rgba(const uint8_t *src, size_t stride, int format, size_t w, size_t h,
                         uint8_t *px)
{
    for (size_t y = 0; y < h; y++) {
        const uint8_t *s = src + y * stride;
        uint8_t *d = px + y * w * 4u;
        switch (format) {
        case PM_FORMAT_RGB:
            for (size_t x = 0; x < w; x++, s += 3, d += 4) {
                d[0] = s[0]; d[1] = s[1]; d[2] = s[2]; d[3] = 255;
            }
            break;
        case PM_FORMAT_RGBA:
            memcpy(d, s, w * 4u);
            break;
        case PM_FORMAT_BGR:
            for (size_t x = 0; x < w; x++, s += 3, d += 4) {
                d[0] = s[2]; d[1] = s[1]; d[2] = s[0]; d[3] = 255;
            }
            break;
        case PM_FORMAT_BGRA:
            for (size_t x = 0; x < w; x++, s += 4, d += 4) {
                d[0] = s[2]; d[1] = s[1]; d[2] = s[0]; d[3] = s[3];
            }
            break;
        default: /* PM_FORMAT_GRAY */
            for (size_t x = 0; x < w; x++, s += 1, d += 4) {
                d[0] = d[1] = d[2] = s[0]; d[3] = 255;
            }
            break;
        }
    }
}

pm_code pm_rgba_own(pm_rgba *img, char *err, size_t errcap)
{
    if (img->px != NULL)
        return PM_OK;
    size_t w = (size_t)img->width, h = (size_t)img->height;
    uint8_t *px = pm_pixels_alloc(w * h * 4u); /* w*h was bounded by SIZE_MAX/4 at load */
    if (px == NULL)
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                           "no memory for a %dx%d RGBA copy of the input", img->width, img->height);
    rows_to_rgba(img->borrowed, img->borrowed_stride,
                 img->borrowed_channels == 4 ? PM_FORMAT_RGBA : PM_FORMAT_RGB, w, h, px);
    img->px = px;
    img->borrowed = NULL;
    return PM_OK;
}

/* Refuses width*height over max_pixels (0 or a NULL limits: no pixel limit of ours). */
pm_code pm_check_pixels(const pm_limits *limits, int width, int height, char *err,
                        size_t errcap)
{
    uint64_t pixels = (uint64_t)width * (uint64_t)height;
    if (limits != NULL && limits->max_pixels != 0 && pixels > limits->max_pixels)
        return pm_img_fail(err, errcap, PM_ERR_LIMIT,
                           "image is %dx%d = %llu pixels, over the limit of %llu "
                           "(pm_params.max_pixels)",
                           width, height, (unsigned long long)pixels,
                           (unsigned long long)limits->max_pixels);
    /* The RGBA buffer and api.c's matte must be addressable with size_t. */
    if (pixels > (uint64_t)SIZE_MAX / 4u)
        return pm_img_fail(err, errcap, PM_ERR_LIMIT,
                           "image is %dx%d = %llu pixels, too large to address in memory",
                           width, height, (unsigned long long)pixels);
    return PM_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* 1 when data starts with the PNG signature. */
static int is_png(const uint8_t *data, size_t size)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return size >= sizeof sig && memcmp(data, sig, sizeof sig) == 0;
}

/* 1 when data starts with a Radiance HDR signature (decoded through float RGBA). */
static int is_hdr(const uint8_t *data, size_t size)
{
    return (size >= 11 && memcmp(data, "#?RADIANCE\n", 11) == 0) ||
           (size >= 7 && memcmp(data, "#?RGBE\n", 7) == 0);
}

/* Header dimensions of an encoded image, without allocating pixels. PNG and JPEG
 * are read here rather than by stb's probe: stb refuses a large PNG header with a
 * bare "too large" before we could name its size, and skips JPEG segments with a
 * parser that is heavier than needed for two numbers. */
static pm_code encoded_dimensions(const uint8_t *data, size_t size, int *width, int *height,
                                  char *err, size_t errcap)
{
    if (is_png(data, size)) {
        /* signature(8) length(4) "IHDR"(4) width(4) height(4): IHDR must come first. */
        if (size < 24 || memcmp(data + 12, "IHDR", 4) != 0)
            return pm_img_fail(err, errcap, PM_ERR_DECODE,
                               "cannot read the PNG header: %s",
                               size < 24 ? "the data ends inside it" : "IHDR is not the first chunk");
        uint32_t w = be32(data + 16), h = be32(data + 20);
        if (w == 0 || h == 0 || w > INT_MAX || h > INT_MAX)
            return pm_img_fail(err, errcap, PM_ERR_DECODE,
                               "cannot read the PNG header: bad dimensions %lux%lu",
                               (unsigned long)w, (unsigned long)h);
        *width = (int)w;
        *height = (int)h;
        return PM_OK;
    }
    if (pm_jpeg_is_jpeg(data, size)) {
        if (!pm_jpeg_dimensions(data, size, width, height))
            return pm_img_fail(err, errcap, PM_ERR_DECODE,
                               "cannot read the JPEG header: no frame header (SOFn) with "
                               "non-zero dimensions before the first scan");
        return PM_OK;
    }
    return pm_stb_info(data, size, width, height, NULL, err, errcap);
}

/* 1 when any alpha byte of the RGBA buffer is below 255. */
static int any_transparent(const uint8_t *px, uint64_t pixels)
{
    for (uint64_t i = 0; i < pixels; i++)
        if (px[i * 4 + 3] != 255)
            return 1;
    return 0;
}

/* Step 6: undoes a decoded JPEG's EXIF orientation when asked; frees out on failure. */
static pm_code jpeg_orientation(const uint8_t *data, size_t size, int apply_exif, pm_rgba *out,
                                char *err, size_t errcap)
{
    if (!apply_exif)
        return PM_OK;
    int orientation = 1;
    pm_code rc = pm_jpeg_exif_orientation(data, size, &orientation, err, errcap);
    if (rc == PM_OK)
        rc = pm_rgba_apply_orientation(out, orientation, err, errcap);
    if (rc != PM_OK)
        pm_rgba_free(out);
    return rc;
}

static pm_code load_encoded(const pm_image *in, const pm_limits *limits, int apply_exif,
                            pm_rgba *out, char *err, size_t errcap)
{
    const uint8_t *data = in->data;
    size_t size = in->size;
    if (data == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "encoded image: data is NULL");
    if (size == 0)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "encoded image: size is 0 (no bytes to decode)");
    if (limits != NULL && limits->max_encoded_bytes != 0 && (uint64_t)size > limits->max_encoded_bytes)
        return pm_img_fail(err, errcap, PM_ERR_LIMIT,
                           "encoded image is %zu bytes, over the limit of %llu "
                           "(pm_params.max_encoded_bytes)",
                           size, (unsigned long long)limits->max_encoded_bytes);

    int hw = 0, hh = 0;
    pm_code rc = encoded_dimensions(data, size, &hw, &hh, err, errcap);
    if (rc != PM_OK)
        return rc;
    if ((rc = pm_check_pixels(limits, hw, hh, err, errcap)) != PM_OK)
        return rc;

    int jpeg = pm_jpeg_is_jpeg(data, size);
    if (jpeg && !pm_jpeg_has_eoi(data, size))
        return pm_img_fail(err, errcap, PM_ERR_DECODE,
                           "JPEG data is truncated: no end-of-image marker after the "
                           "compressed data (%zu bytes given)", size);

    uint64_t padded = ((uint64_t)hw + PM_CAP_PAD) * ((uint64_t)hh + PM_CAP_PAD);
    uint64_t per_px = is_hdr(data, size) ? PM_CAP_BYTES_PER_PIXEL_HDR : PM_CAP_BYTES_PER_PIXEL;
    uint64_t cap64 = padded <= (UINT64_MAX - PM_CAP_SLACK) / per_px ? padded * per_px + PM_CAP_SLACK
                                                                    : UINT64_MAX;
    size_t cap = cap64 > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)cap64;

    if (jpeg) {
        int declined = 0;
        rc = pm_jpeg_decode_rgba(data, size, limits, out, &declined, err, errcap);
        if (rc != PM_OK)
            return rc;
        if (!declined)
            return jpeg_orientation(data, size, apply_exif, out, err, errcap);
    }

    uint8_t *px = NULL;
    int w = 0, h = 0, channels = 0;
    rc = pm_stb_load_rgba(data, size, cap, &px, &w, &h, &channels, err, errcap);
    if (rc != PM_OK)
        return rc;
    /* The limit was checked on the header; a decoder that disagrees with its own
     * header must not slip a larger image past it. */
    if ((rc = pm_check_pixels(limits, w, h, err, errcap)) != PM_OK) {
        free(px);
        return rc;
    }
    out->px = px;
    out->width = w;
    out->height = h;
    /* Whether the pixels carry alpha is read from the pixels: stb's channel count
     * misses PNG tRNS colour keys and says 4 for every GIF, transparent or not.
     * An alpha channel that is 255 everywhere changes nothing when multiplied in. */
    (void)channels;
    out->has_alpha = any_transparent(px, (uint64_t)w * (uint64_t)h);

    return jpeg ? jpeg_orientation(data, size, apply_exif, out, err, errcap) : PM_OK;
}

static pm_code load_raw(const pm_image *in, const pm_limits *limits, pm_rgba *out, char *err,
                        size_t errcap)
{
    int channels;
    const char *name;
    switch (in->format) {
    case PM_FORMAT_RGB: channels = 3; name = "RGB"; break;
    case PM_FORMAT_RGBA: channels = 4; name = "RGBA"; break;
    case PM_FORMAT_BGR: channels = 3; name = "BGR"; break;
    case PM_FORMAT_BGRA: channels = 4; name = "BGRA"; break;
    case PM_FORMAT_GRAY: channels = 1; name = "GRAY"; break;
    default:
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "input.format %d is not a pm_pixel_format", in->format);
    }
    if (in->data == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT, "raw %s image: data is NULL", name);
    if (in->width <= 0 || in->height <= 0)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "raw %s image: width and height must be positive, got %dx%d", name,
                           in->width, in->height);
    pm_code rc = pm_check_pixels(limits, in->width, in->height, err, errcap);
    if (rc != PM_OK)
        return rc;

    /* width < 2^31 and channels <= 4: row fits in uint64 with room to spare. */
    uint64_t row = (uint64_t)in->width * (uint64_t)channels;
    uint64_t stride = in->stride == 0 ? row : (uint64_t)in->stride;
    if (stride < row)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "raw %s image: stride %zu is smaller than a row (%d pixels * %d "
                           "bytes = %llu bytes)",
                           name, in->stride, in->width, channels, (unsigned long long)row);
    uint64_t rows_before_last = (uint64_t)in->height - 1u;
    if (rows_before_last != 0 && stride > (UINT64_MAX - row) / rows_before_last)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "raw %s image: %d rows of stride %llu overflow the address space",
                           name, in->height, (unsigned long long)stride);
    uint64_t needed = rows_before_last * stride + row;
    if ((uint64_t)in->size < needed)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "raw %s image: size %zu is too small for %dx%d with stride %llu "
                           "(needs %llu bytes)",
                           name, in->size, in->width, in->height, (unsigned long long)stride,
                           (unsigned long long)needed);

    out->width = in->width;
    out->height = in->height;
    out->has_alpha = channels == 4;
    if (in->format == PM_FORMAT_RGB || in->format == PM_FORMAT_RGBA) {
        /* Already in an order the pipeline reads: borrowed, not copied. */
        out->borrowed = in->data;
        out->borrowed_stride = (size_t)stride;
        out->borrowed_channels = channels;
        return PM_OK;
    }
    size_t w = (size_t)in->width, h = (size_t)in->height;
    uint8_t *px = pm_pixels_alloc(w * h * 4u); /* fits: pm_check_pixels bounds w*h by SIZE_MAX/4 */
    if (px == NULL) {
        memset(out, 0, sizeof *out);
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                           "no memory for a %dx%d RGBA copy of the input", in->width, in->height);
    }
    rows_to_rgba(in->data, (size_t)stride, in->format, w, h, px);
    out->px = px;
    return PM_OK;
}

pm_code pm_image_load(const pm_image *in, const pm_limits *limits, int apply_exif,
                      pm_rgba *out, char *err, size_t errcap)
{
    if (out == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT, "pm_image_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (in == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT, "pm_image_load: input is NULL");
    if (in->format == PM_FORMAT_ENCODED)
        return load_encoded(in, limits, apply_exif, out, err, errcap);
    return load_raw(in, limits, out, err, errcap);
}
