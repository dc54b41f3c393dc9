/*
 * image.h - decoding, orientation, limits, matte application and encoding (C11).
 * The image side of pm_remove_bg: everything here runs in the caller's thread.
 */
#ifndef PETMATTE_IMAGE_H
#define PETMATTE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "petmatte.h"

typedef struct pm_limits {
    uint64_t max_pixels;
    uint64_t max_encoded_bytes;
} pm_limits;

/* An upright 8-bit image: the library's own RGBA buffer (px, rows width*4 bytes
 * apart), or, for raw RGB and RGBA input, the caller's pixels read in place (px NULL,
 * borrowed set): a 1024x1024 call then copies nothing on the host. Read the pixels
 * through pm_rgba_pixels / _stride / _channels, which cover both. */
typedef struct pm_rgba {
    uint8_t *px;               /* owned RGBA, or NULL while the pixels are borrowed */
    int width, height;
    int has_alpha;             /* 1 when the input carried an alpha channel */
    const uint8_t *borrowed;   /* the caller's pixels when px is NULL */
    size_t borrowed_stride;    /* bytes between their rows */
    int borrowed_channels;     /* 3 (RGB) or 4 (RGBA) */
} pm_rgba;

static inline const uint8_t *pm_rgba_pixels(const pm_rgba *img)
{
    return img->px != NULL ? img->px : img->borrowed;
}
static inline size_t pm_rgba_stride(const pm_rgba *img)
{
    return img->px != NULL ? (size_t)img->width * 4u : img->borrowed_stride;
}
static inline int pm_rgba_channels(const pm_rgba *img)
{
    return img->px != NULL ? 4 : img->borrowed_channels;
}

/* Gives a borrowed image its own tight RGBA copy (a no-op when it has one), for the
 * steps that need one (clean edges). Errors: PM_ERR_NO_MEMORY. */
pm_code pm_rgba_own(pm_rgba *img, char *err, size_t errcap);

/* Decodes (encoded input) or converts (raw input) to upright RGBA; raw RGB and RGBA
 * input is borrowed instead (see pm_rgba), valid as long as the caller's buffer.
 * Every limit is checked from headers/arguments before any pixel buffer is allocated. When
 * apply_exif is set, JPEG EXIF orientations 2-8 are undone.
 * Errors: PM_ERR_INVALID_ARGUMENT, PM_ERR_LIMIT, PM_ERR_DECODE, PM_ERR_NO_MEMORY. */
pm_code pm_image_load(const pm_image *in, const pm_limits *limits, int apply_exif,
                      pm_rgba *out, char *err, size_t errcap);

void pm_rgba_free(pm_rgba *img);

/* Checks output kind, encoding, PNG level, WebP quality, threshold, background kind,
 * colour and blur radius, overlay colour and opacity, and that an image background
 * names a picture, so that bad options fail before any decoding or inference.
 * Errors: PM_ERR_INVALID_ARGUMENT. */
pm_code pm_check_remove_options(const pm_remove_options *opt, char *err, size_t errcap);

/* Applies threshold / invert / input alpha to the matte (width*height bytes, modified
 * in place), builds the requested output kind and encodes it. Ownership, so that
 * no output copies what it can take over:
 * - RGBA output is built in img's own pixels: with RAW encoding the output takes
 *   them over (img->px is NULL on return), with PNG they are overwritten; other
 *   outputs leave img as is;
 * - a MASK output is the matte itself: with RAW encoding the output takes *matte
 *   over (*matte is NULL on return). *matte must therefore come from
 *   pm_pixels_alloc; the caller frees it afterwards either way.
 * clean_edges are computed by pm_shim_estimate_foreground on fg_model's device when
 * fg_model is not NULL (pm_remove_bg passes the model when it runs on CUDA), else
 * by pm_estimate_foreground on the CPU (docs/clean-edges.md). Blurred, picture and
 * overlay backgrounds (background.h) are composed on fg_model's device, or with
 * torch on the CPU for NULL; picture is the decoded PM_BACKGROUND_IMAGE (else NULL).
 * Errors: PM_ERR_INVALID_ARGUMENT, PM_ERR_NO_MEMORY, PM_ERR_INTERNAL (encoder), and
 * from the device PM_ERR_DEVICE, PM_ERR_DEVICE_OUT_OF_MEMORY. */
struct pm_shim_model;
pm_code pm_build_output(pm_rgba *img, uint8_t **matte, const pm_remove_options *opt,
                        const pm_rgba *picture, struct pm_shim_model *fg_model,
                        pm_output **out, char *err, size_t errcap);

#endif
