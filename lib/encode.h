/*
 * encode.h - PNG and WebP encoders of pm_remove_bg's output (internal).
 *
 * Both take tight 8-bit pixels (rows width * channels bytes apart; channels 1 gray,
 * 3 RGB, 4 RGBA) and return one malloc'd buffer that free() releases, so that
 * pm_output_free stays free(data) + free(struct) whatever the encoding.
 * Errors carry a message in err: PM_ERR_NO_MEMORY when an allocation (ours or the
 * compressor's) fails, PM_ERR_UNSUPPORTED for a size the format cannot hold,
 * PM_ERR_INTERNAL for any other encoder failure.
 */
#ifndef PETMATTE_ENCODE_H
#define PETMATTE_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "petmatte.h"

/* pm_remove_options.png_level: its range and what -1 means. */
#define PM_PNG_LEVEL_MIN 0
#define PM_PNG_LEVEL_MAX 12
#define PM_PNG_LEVEL_DEFAULT 1

/* pm_remove_options.webp_quality: its range and default. */
#define PM_WEBP_QUALITY_MIN 0
#define PM_WEBP_QUALITY_MAX 100
#define PM_WEBP_QUALITY_DEFAULT 90

/* The largest side a WebP image can have. */
#define PM_WEBP_MAX_SIDE 16383

/* Helper threads a PNG encode uses at most, the calling thread included. */
#define PM_PNG_MAX_THREADS 16

/* Filtered bytes one band of rows should hold at least: smaller bands cost more
 * in thread start-up and lost matches at their edges than they save. */
#define PM_PNG_MIN_BAND_BYTES ((uint64_t)512 << 10)

/* How many bands (threads) pm_encode_png uses for an image of width x height x
 * channels when left to choose: 1 (one libdeflate call) unless at least 3 CPUs of
 * this process's affinity mask can each take a band of PM_PNG_MIN_BAND_BYTES;
 * at most PM_PNG_MAX_THREADS. */
int pm_png_auto_threads(int width, int height, int channels);

/* PNG (8-bit gray, RGB or RGBA, no interlace), every row filtered with Up.
 * level: 0..12 (PM_PNG_LEVEL_*). threads: 0 = pm_png_auto_threads; 1 = the whole
 * zlib stream from one libdeflate call; n >= 2 = n bands of rows compressed at once
 * by zlib (each ending on a byte boundary with an empty stored block, the Adler-32
 * sums combined), at zlib's level min(level, 9). The pixels decoded are the same
 * whatever the thread count; the bytes differ. */
pm_code pm_encode_png(const uint8_t *px, int width, int height, int channels, int level,
                      int threads, uint8_t **out, size_t *out_size, char *err, size_t errcap);

/* WebP through libwebp: lossless (quality ignored) or lossy at quality 0..100 with
 * the alpha plane stored losslessly. Gray input is encoded as gray RGB. The colour
 * of fully transparent pixels is not kept. PM_ERR_UNSUPPORTED over
 * PM_WEBP_MAX_SIDE. */
pm_code pm_encode_webp(const uint8_t *px, int width, int height, int channels, int lossless,
                       int quality, uint8_t **out, size_t *out_size, char *err, size_t errcap);

#endif
