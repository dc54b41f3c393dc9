/*
 * stb_precheck.h - what stb_image 2.27 must not see (internal).
 */
#ifndef PETMATTE_STB_PRECHECK_H
#define PETMATTE_STB_PRECHECK_H

#include <stddef.h>
#include <stdint.h>

#include "petmatte.h"

/* PM_OK, or PM_ERR_DECODE with a message naming the problem ("what: ...") for
 * input that would reach a known stb_image 2.27 bug: a JPEG Huffman table with
 * more than 256 codes (however the file hides it), a PNM header number of more
 * than 9 digits, a 16-bit PNM. Anything else malformed is left to stb. */
pm_code pm_stb_precheck(const uint8_t *data, size_t size, const char *what, char *err,
                        size_t errcap);

#endif
