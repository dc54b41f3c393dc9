/*
 * image_stb.h - the only door to stb_image (internal).
 *
 * stb is compiled in exactly one translation unit, stb_impl.c, with static
 * linkage; nothing else in the library includes the stb headers. These thin
 * wrappers map stb's failures to pm_code values and copy stb's (thread-local)
 * failure reason into the caller's message buffer at once.
 *
 * Buffers returned here are allocated with malloc() and released with free().
 */
#ifndef PETMATTE_IMAGE_STB_H
#define PETMATTE_IMAGE_STB_H

#include <stddef.h>
#include <stdint.h>

#include "petmatte.h"

/* Largest side stb accepts at all; our own limits (max_pixels) are checked first. */
#define PM_STB_MAX_SIDE (1 << 20)

/* Width, height and channel count from the file header (no pixel allocation).
 * PM_ERR_DECODE: unknown/corrupt; PM_ERR_LIMIT: larger than stb can decode. */
pm_code pm_stb_info(const uint8_t *data, size_t size, int *width, int *height,
                    int *channels, char *err, size_t errcap);

/* Decodes to 8-bit RGBA. *channels is the file's channel count (1-4).
 * No single allocation made by the decoder may exceed alloc_cap bytes (0: no cap):
 * a file that needs more than its header's dimensions justify (a zlib bomb) fails
 * with PM_ERR_DECODE instead of exhausting memory.
 * Errors: PM_ERR_DECODE, PM_ERR_LIMIT, PM_ERR_NO_MEMORY. */
pm_code pm_stb_load_rgba(const uint8_t *data, size_t size, size_t alloc_cap,
                         uint8_t **px, int *width, int *height, int *channels,
                         char *err, size_t errcap);

#endif
