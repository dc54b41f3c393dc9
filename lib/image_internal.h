/*
 * image_internal.h - helpers shared by image_load.c, image_orient.c, image_output.c
 * and stb_impl.c. Not part of any public or cross-module contract.
 */
#ifndef PETMATTE_IMAGE_INTERNAL_H
#define PETMATTE_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

#if defined(__GNUC__)
#  define PM_IMG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define PM_IMG_PRINTF(f, a)
#endif

/* Writes the message to err (when err and errcap allow) and returns code. */
pm_code pm_img_fail(char *err, size_t errcap, pm_code code, const char *fmt, ...)
    PM_IMG_PRINTF(4, 5);

/* Refuses width*height over limits->max_pixels (limits NULL or max_pixels 0: no
 * limit of ours) and sizes whose RGBA buffer could not be addressed: PM_ERR_LIMIT. */
pm_code pm_check_pixels(const pm_limits *limits, int width, int height, char *err,
                        size_t errcap);

/* ---- JPEG decoding (image_jpeg.c) ---- */

/* Decodes a JPEG to RGBA (alpha 255) with libjpeg-turbo into a pm_pixels_alloc
 * buffer. CMYK and YCCK JPEGs are declined (*declined = 1, PM_OK, out untouched)
 * for stb to decode. Errors: PM_ERR_DECODE, PM_ERR_LIMIT, PM_ERR_NO_MEMORY. */
pm_code pm_jpeg_decode_rgba(const uint8_t *data, size_t size, const pm_limits *limits,
                            pm_rgba *out, int *declined, char *err, size_t errcap);

/* ---- JPEG markers and EXIF (image_orient.c) ---- */

/* 1 when the data starts with a JPEG SOI marker (FF D8). */
int pm_jpeg_is_jpeg(const uint8_t *data, size_t size);

/* Width and height from the first SOFn segment; 0 when none is found before the
 * first scan (or the data is not a well-formed JPEG header). */
int pm_jpeg_dimensions(const uint8_t *data, size_t size, int *width, int *height);

/* 1 when an end-of-image marker (FF D9) follows the first start-of-scan, i.e. the
 * compressed data was not cut short. */
int pm_jpeg_has_eoi(const uint8_t *data, size_t size);

/* EXIF Orientation (1-8) of a JPEG; 1 when there is no EXIF, no tag, or the EXIF
 * is malformed. Errors: PM_ERR_NO_MEMORY only. */
pm_code pm_jpeg_exif_orientation(const uint8_t *data, size_t size, int *orientation,
                                 char *err, size_t errcap);

/* Transforms img in place so that an image stored with the given EXIF orientation
 * comes out upright (5-8 swap width and height). 1 or out-of-range: no-op.
 * On PM_ERR_NO_MEMORY img is unchanged. */
pm_code pm_rgba_apply_orientation(pm_rgba *img, int orientation, char *err, size_t errcap);

#endif
