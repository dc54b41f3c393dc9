/*
 * image_output.c - pm_build_output (matte post-processing, RGBA / MASK / COMPOSITE
 * pixels, RAW, PNG or WebP encoding) and pm_output_free.
 *
 * Ownership: a pm_output is one calloc'd struct plus one data buffer that free()
 * releases (ours for RAW: pm_pixels_alloc, or taken over: the image's own buffer
 * for RGBA, the matte for MASK; the encoders' for PNG and WebP, which encode.h
 * promises is malloc'd too), so
 * pm_output_free is free(data) + free(struct) whatever the encoding.
 *
 * Matte order: threshold, then invert (the header says "after threshold"), then
 * the input's alpha. The input alpha comes last so that pixels the caller marked
 * transparent stay transparent even with invert.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "background.h"
#include "foreground.h"
#include "image_internal.h"
#include "encode.h"
#include "pixel_alloc.h"
#include "shim.h"

void pm_output_free(pm_output *output)
{
    if (output == NULL)
        return;
    free(output->data);
    free(output);
}

/* x / 255 rounded to nearest for 0 <= x <= 255*255; 255 is odd, so no ties. */
static inline uint8_t div255(unsigned x)
{
    return (uint8_t)((x + 127u) / 255u);
}

/* Threshold and invert as one table over the 256 matte values. The threshold is
 * taken to the nearest 8-bit level, cut = round(t*255), and alpha = matte >= cut:
 * this keeps "matte >= t" for t = 0.5 (cut 128, as the API tests expect) and makes
 * a threshold of exactly k/255 keep level k although k/255 is not exact in float. */
static void matte_table(float threshold, int invert, uint8_t lut[256])
{
    long cut = threshold >= 0.0f ? lround((double)threshold * 255.0) : -1;
    for (int m = 0; m < 256; m++) {
        int a = m;
        if (cut >= 0)
            a = m >= cut ? 255 : 0;
        if (invert)
            a = 255 - a;
        lut[m] = (uint8_t)a;
    }
}

pm_code pm_check_remove_options(const pm_remove_options *opt, char *err, size_t errcap)
{
    if (opt == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT, "options is NULL");
    if (opt->output != PM_OUTPUT_RGBA && opt->output != PM_OUTPUT_MASK &&
        opt->output != PM_OUTPUT_COMPOSITE && opt->output != PM_OUTPUT_OVERLAY)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.output %d is not a pm_output_kind (RGBA=0, MASK=1, "
                           "COMPOSITE=2, OVERLAY=3)", opt->output);
    if (opt->encoding != PM_ENCODING_RAW && opt->encoding != PM_ENCODING_PNG &&
        opt->encoding != PM_ENCODING_WEBP_LOSSLESS && opt->encoding != PM_ENCODING_WEBP)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.encoding %d is not a pm_encoding (RAW=0, PNG=1, "
                           "WEBP_LOSSLESS=2, WEBP=3)", opt->encoding);
    if (opt->png_level != -1 &&
        (opt->png_level < PM_PNG_LEVEL_MIN || opt->png_level > PM_PNG_LEVEL_MAX))
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.png_level %d is not -1 (default) or in %d..%d",
                           opt->png_level, PM_PNG_LEVEL_MIN, PM_PNG_LEVEL_MAX);
    if (opt->webp_quality < PM_WEBP_QUALITY_MIN || opt->webp_quality > PM_WEBP_QUALITY_MAX)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.webp_quality %d is not in %d..%d", opt->webp_quality,
                           PM_WEBP_QUALITY_MIN, PM_WEBP_QUALITY_MAX);
    if (isnan(opt->threshold) || opt->threshold > 1.0f)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.threshold %g is not < 0 (soft matte) or in 0..1",
                           (double)opt->threshold);
    if (opt->background_rgb > 0xFFFFFFu)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.background_rgb 0x%lX is not 0xRRGGBB",
                           (unsigned long)opt->background_rgb);
    if (opt->background != PM_BACKGROUND_COLOR && opt->background != PM_BACKGROUND_BLUR &&
        opt->background != PM_BACKGROUND_IMAGE)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.background %d is not a pm_background (COLOR=0, BLUR=1, "
                           "IMAGE=2)", opt->background);
    if (!(opt->blur_radius >= 0.0f && opt->blur_radius <= PM_BLUR_RADIUS_MAX))
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.blur_radius %g is not 0 (auto) or in 0..%g pixels",
                           (double)opt->blur_radius, (double)PM_BLUR_RADIUS_MAX);
    if (opt->output == PM_OUTPUT_COMPOSITE && opt->background == PM_BACKGROUND_IMAGE &&
        opt->background_image == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.background is PM_BACKGROUND_IMAGE but "
                           "options.background_image is NULL");
    if (opt->overlay_rgb > 0xFFFFFFu)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.overlay_rgb 0x%lX is not 0xRRGGBB",
                           (unsigned long)opt->overlay_rgb);
    if (!(opt->overlay_opacity >= 0.0f && opt->overlay_opacity <= 1.0f))
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "options.overlay_opacity %g is not in 0..1",
                           (double)opt->overlay_opacity);
    return PM_OK;
}

static pm_code check_options(const pm_rgba *img, const uint8_t *matte,
                             const pm_remove_options *opt, char *err, size_t errcap)
{
    if (img == NULL || pm_rgba_pixels(img) == NULL || matte == NULL || opt == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "pm_build_output: image, matte or options is NULL");
    if (img->width <= 0 || img->height <= 0)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "pm_build_output: bad image size %dx%d", img->width, img->height);
    return pm_check_remove_options(opt, err, errcap);
}

pm_code pm_build_output(pm_rgba *img, uint8_t **matte_io, const pm_remove_options *opt,
                        const pm_rgba *picture, pm_shim_model *fg_model, pm_output **out,
                        char *err, size_t errcap)
{
    if (out == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT, "pm_build_output: out is NULL");
    *out = NULL;
    uint8_t *matte = matte_io != NULL ? *matte_io : NULL;
    pm_code rc = check_options(img, matte, opt, err, errcap);
    if (rc != PM_OK)
        return rc;

    const size_t w = (size_t)img->width, h = (size_t)img->height;
    const uint64_t pixels = (uint64_t)w * (uint64_t)h;
    int channels = opt->output == PM_OUTPUT_RGBA ? 4 : opt->output == PM_OUTPUT_MASK ? 1 : 3;
    /* The image's pixels already span pixels*3 or *4 bytes, but say so rather than
     * assume it. */
    if (pixels > (uint64_t)SIZE_MAX / 4u)
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "pm_build_output: %dx%d is too large to address", img->width,
                           img->height);
    const size_t n = (size_t)pixels;

    /* 1. The final matte, in place (a soft matte without invert or input alpha is
     * final already: no pass over it). */
    uint8_t lut[256];
    matte_table(opt->threshold, opt->invert, lut);
    const int use_alpha = opt->keep_input_alpha && img->has_alpha && pm_rgba_channels(img) == 4;
    const int identity = opt->threshold < 0.0f && !opt->invert;
    if (use_alpha) { /* rows: the pixels may be the caller's, with their stride */
        for (size_t y = 0; y < h; y++) {
            const uint8_t *s = pm_rgba_pixels(img) + y * pm_rgba_stride(img);
            uint8_t *m = matte + y * w;
            for (size_t x = 0; x < w; x++)
                m[x] = div255((unsigned)lut[m[x]] * s[x * 4 + 3]);
        }
    } else if (!identity) {
        for (size_t i = 0; i < n; i++)
            matte[i] = lut[matte[i]];
    }

    /* 2. Colours: the input's, or re-estimated foreground colours at soft edges. */
    uint8_t *fg = NULL; /* w*h*3 when clean_edges applies */
    if (opt->clean_edges && opt->output != PM_OUTPUT_MASK) {
        /* The estimators read tight RGBA. */
        if ((rc = pm_rgba_own(img, err, errcap)) != PM_OK)
            return rc;
        fg = pm_pixels_alloc(n * 3u);
        if (fg == NULL)
            return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                               "no memory for the clean-edges colours of a %dx%d image",
                               img->width, img->height);
        /* On a GPU, full sweeps, the large levels on the device; on the CPU, the C
         * version, whose skip-flat does far less work (docs/clean-edges.md). */
        rc = fg_model != NULL
                 ? pm_estimate_foreground_on_device(fg_model, img->px, matte, img->width,
                                                    img->height, fg, err, errcap)
                 : pm_estimate_foreground(img->px, matte, img->width, img->height, fg, err,
                                          errcap);
        if (rc != PM_OK) {
            free(fg);
            return rc;
        }
    }

    /* 3. Output pixels, tightly packed. RGBA output is written over the image's
     * own buffer (the library's decode or copy, never the caller's), which the
     * output then takes over: a 12 MP call saves a 48 MB allocation, its page
     * faults and a pass over the pixels. A mask is the matte itself, encoded or
     * (RAW) taken over. */
    const int in_place = opt->output == PM_OUTPUT_RGBA && img->px != NULL;
    const int mask = opt->output == PM_OUTPUT_MASK;
    /* px is ours to free on failure (or after encoding) only when allocated here. */
    const int px_allocated = !in_place && !mask;
    uint8_t *px = in_place ? img->px : mask ? matte : pm_pixels_alloc(n * (size_t)channels);
    if (px == NULL) {
        free(fg);
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                           "no memory for a %dx%d output with %d channels", img->width,
                           img->height, channels);
    }
    /* The colours: clean-edge estimates (tight RGB) or the image's own pixels (its
     * stride, 3 or 4 channels), read as rows with a per-pixel step. */
    const uint8_t *colours = fg != NULL ? fg : pm_rgba_pixels(img);
    const size_t colour_stride = fg != NULL ? w * 3u : pm_rgba_stride(img);
    const size_t step = fg != NULL ? 3u : (size_t)pm_rgba_channels(img);
    if (pm_background_composed(opt)) {
        /* Blur, picture and tint: built and blended where fg_model runs (the CPU
         * for NULL), by the shim. */
        rc = pm_compose_background(fg_model, img, fg, matte, opt, picture, px, err, errcap);
        free(fg);
        if (rc != PM_OK) {
            free(px);
            return rc;
        }
        fg = NULL;
    }
    switch (pm_background_composed(opt) ? -1 : opt->output) {
    case -1: /* composed above */
        break;
    case PM_OUTPUT_MASK: /* px is the matte */
        break;
    case PM_OUTPUT_RGBA:
        if (in_place && fg == NULL) { /* the colours are already there: alpha only */
            for (size_t i = 0; i < n; i++)
                px[i * 4 + 3] = matte[i];
            break;
        }
        for (size_t y = 0; y < h; y++) {
            const uint8_t *c = colours + y * colour_stride;
            uint8_t *d = px + y * w * 4u;
            const uint8_t *m = matte + y * w;
            for (size_t x = 0; x < w; x++, c += step, d += 4) {
                memcpy(d, c, 3);
                d[3] = m[x];
            }
        }
        break;
    default: { /* PM_OUTPUT_COMPOSITE, PM_BACKGROUND_COLOR: straight alpha over the colour */
        const unsigned bg[3] = {(opt->background_rgb >> 16) & 0xFFu,
                                (opt->background_rgb >> 8) & 0xFFu, opt->background_rgb & 0xFFu};
        for (size_t y = 0; y < h; y++) {
            const uint8_t *c = colours + y * colour_stride;
            uint8_t *d = px + y * w * 3u;
            const uint8_t *m = matte + y * w;
            for (size_t x = 0; x < w; x++, c += step, d += 3) {
                const unsigned a = m[x];
                for (int k = 0; k < 3; k++)
                    d[k] = div255(a * c[k] + (255u - a) * bg[k]);
            }
        }
        break;
    }
    }
    free(fg);

    pm_output *o = calloc(1, sizeof *o);
    if (o == NULL) {
        if (px_allocated)
            free(px);
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY, "no memory for the output record");
    }
    o->encoding = opt->encoding;
    o->format = opt->output == PM_OUTPUT_RGBA   ? PM_FORMAT_RGBA
                : opt->output == PM_OUTPUT_MASK ? PM_FORMAT_GRAY
                                                : PM_FORMAT_RGB;
    o->width = img->width;
    o->height = img->height;

    if (opt->encoding == PM_ENCODING_RAW) {
        o->stride = w * (size_t)channels;
        o->data = px;
        o->size = n * (size_t)channels;
        if (in_place)
            img->px = NULL; /* the output owns the pixels now */
        if (mask)
            *matte_io = NULL; /* and here the matte */
    } else {
        uint8_t *bytes = NULL;
        size_t size = 0;
        if (opt->encoding == PM_ENCODING_PNG)
            rc = pm_encode_png(px, img->width, img->height, channels,
                               opt->png_level < 0 ? PM_PNG_LEVEL_DEFAULT : opt->png_level, 0,
                               &bytes, &size, err, errcap);
        else
            rc = pm_encode_webp(px, img->width, img->height, channels,
                                opt->encoding == PM_ENCODING_WEBP_LOSSLESS, opt->webp_quality,
                                &bytes, &size, err, errcap);
        if (px_allocated)
            free(px);
        if (rc != PM_OK) {
            free(o);
            return rc;
        }
        o->stride = 0;
        o->data = bytes;
        o->size = size;
    }
    *out = o;
    return PM_OK;
}
