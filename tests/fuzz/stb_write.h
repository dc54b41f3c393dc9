/* stb_write.h - stb_image_write (Debian's libstb-dev) compiled into the including
 * test program: static, memory output only (stbi_write_*_to_func, with sf_stb_sink
 * from seed_formats.h). Include once per program. */
#ifndef PM_TEST_STB_WRITE_H
#define PM_TEST_STB_WRITE_H

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
/* Not popped: GCC reports unused static functions at the end of the translation unit. */
#if defined(__GNUC__)
#  pragma GCC diagnostic ignored "-Wunused-function"
#  pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include "stb_image_write.h"

#endif
