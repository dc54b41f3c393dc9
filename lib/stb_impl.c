/*
 * stb_impl.c - the single translation unit that compiles stb_image (Debian
 * libstb-dev), plus the thin wrappers of image_stb.h. Output is encoded elsewhere
 * (encode_png.c, encode_webp.c).
 *
 * Decisions:
 *  - STB_IMAGE_STATIC: every stbi_* symbol is private to
 *    this file, so neither the shared library nor the static test archive exports
 *    one, and a host that links its own stb cannot clash with ours.
 *  - Memory input only (STBI_NO_STDIO).
 *  - STBI_FAILURE_USERMSG: readable failure reasons ("Corrupt PNG").
 *  - stb's process-global switches (flip on load, unpremultiply, iPhone PNG, ...)
 *    are never written.
 *  - stbi_failure_reason() lives in a thread-local variable (checked below), and
 *    is read right after the failing call in the same thread.
 *  - The decoder's allocations go through pm_stb_malloc / pm_stb_realloc, which
 *    enforce a per-call cap held in a thread-local variable (set and cleared
 *    around each decode by the same thread): header dimensions bound what a
 *    decode may allocate, so a small-dimension PNG whose IDAT inflates to
 *    gigabytes is refused instead of growing a buffer without end.
 *  - Only stb and these thin wrappers live here: the sanitizer builds relax three
 *    UB checks for this unit (lib/CMakeLists.txt), so the byte walkers that screen
 *    input for stb's known bugs are in stb_precheck.c, fully checked.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "image_stb.h"
#include "stb_precheck.h"

/* ------------------------------------------------ capped allocation for decoding */

static _Thread_local size_t pm_stb_alloc_cap;  /* 0: no cap */
static _Thread_local int pm_stb_alloc_refused; /* set when the cap refused a request */

/* calloc, not malloc: several stb 2.27 loaders (TGA, PNM) ignore a short read and
 * return the rest of their pixel buffer unwritten, which would hand stale heap
 * bytes (another request's pixels) to the caller. Zeroed buffers make a truncated
 * file decode to black instead. Found by fuzzing; large buffers come from mmap,
 * already zero, so this costs nothing where it would matter. */
static void *pm_stb_malloc(size_t n)
{
    if (pm_stb_alloc_cap != 0 && n > pm_stb_alloc_cap) {
        pm_stb_alloc_refused = 1;
        return NULL;
    }
    return calloc(1, n ? n : 1);
}

static void *pm_stb_realloc(void *p, size_t n)
{
    if (pm_stb_alloc_cap != 0 && n > pm_stb_alloc_cap) {
        pm_stb_alloc_refused = 1;
        return NULL; /* like realloc: p stays valid and stb frees it */
    }
    return realloc(p, n);
}

/* ------------------------------------------------------------------ stb_image */

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STBI_MAX_DIMENSIONS PM_STB_MAX_SIDE
#define STBI_MALLOC(sz) pm_stb_malloc(sz)
#define STBI_REALLOC(p, newsz) pm_stb_realloc((p), (newsz))
#define STBI_FREE(p) free(p)

#if defined(__GNUC__)
/* Outside the push/pop on purpose: GCC reports unused static functions (stb's
 * loaders for what its options leave out) at the end of the translation unit,
 * after a pop would have re-enabled the warning. */
#  pragma GCC diagnostic ignored "-Wunused-function"
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wsign-compare"
#  pragma GCC diagnostic ignored "-Wshadow"
#  pragma GCC diagnostic ignored "-Wunused-parameter"
#  pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include "stb_image.h"
#if defined(__GNUC__)
#  pragma GCC diagnostic pop
#endif

#ifndef STBI_THREAD_LOCAL
#  error "stb_image has no thread-local failure reason with this compiler; stbi_failure_reason() would race"
#endif

/* -------------------------------------------------------------------- helpers */

static void pm_stb_begin(size_t alloc_cap)
{
    stbi__g_failure_reason = NULL; /* thread-local (see the check above) */
    pm_stb_alloc_cap = alloc_cap;
    pm_stb_alloc_refused = 0;
}

/* Ends a decode call; returns 1 when the allocation cap refused a request. */
static int pm_stb_end(void)
{
    int refused = pm_stb_alloc_refused;
    pm_stb_alloc_cap = 0;
    pm_stb_alloc_refused = 0;
    return refused;
}

static pm_code pm_stb_failure(const char *what, char *err, size_t errcap)
{
    const char *why = stbi__g_failure_reason;
    if (why == NULL)
        why = "unknown decoder error";
    if (strcmp(why, "Out of memory") == 0)
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY, "%s: out of memory", what);
    if (strstr(why, "too large") != NULL || strstr(why, "Very large") != NULL)
        return pm_img_fail(err, errcap, PM_ERR_LIMIT,
                           "%s: image is larger than the decoder supports (%s)", what, why);
    return pm_img_fail(err, errcap, PM_ERR_DECODE, "%s: %s", what, why);
}

/* ------------------------------------------------------------------- wrappers */

pm_code pm_stb_info(const uint8_t *data, size_t size, int *width, int *height,
                    int *channels, char *err, size_t errcap)
{
    if (size > (size_t)INT_MAX)
        return pm_img_fail(err, errcap, PM_ERR_LIMIT,
                           "encoded image is %zu bytes, over the decoder's maximum of %d",
                           size, INT_MAX);
    pm_code rc = pm_stb_precheck(data, size, "cannot read the image header", err, errcap);
    if (rc != PM_OK)
        return rc;
    int x = 0, y = 0, n = 0;
    /* Headers never need much: cap anything the probe allocates at 64 MiB. */
    pm_stb_begin((size_t)64 << 20);
    int ok = stbi_info_from_memory(data, (int)size, &x, &y, &n);
    pm_stb_end();
    if (!ok)
        return pm_stb_failure("cannot read the image header", err, errcap);
    if (x <= 0 || y <= 0)
        return pm_img_fail(err, errcap, PM_ERR_DECODE,
                           "cannot read the image header: bad dimensions %dx%d", x, y);
    *width = x;
    *height = y;
    if (channels != NULL)
        *channels = n;
    return PM_OK;
}

pm_code pm_stb_load_rgba(const uint8_t *data, size_t size, size_t alloc_cap,
                         uint8_t **px, int *width, int *height, int *channels,
                         char *err, size_t errcap)
{
    *px = NULL;
    if (size > (size_t)INT_MAX)
        return pm_img_fail(err, errcap, PM_ERR_LIMIT,
                           "encoded image is %zu bytes, over the decoder's maximum of %d",
                           size, INT_MAX);
    pm_code rc = pm_stb_precheck(data, size, "cannot decode image", err, errcap);
    if (rc != PM_OK)
        return rc;
    int x = 0, y = 0, n = 0;
    pm_stb_begin(alloc_cap);
    stbi_uc *p = stbi_load_from_memory(data, (int)size, &x, &y, &n, 4);
    int refused = pm_stb_end();
    if (p == NULL) {
        if (refused)
            return pm_img_fail(err, errcap, PM_ERR_DECODE,
                               "cannot decode image: it needs more memory than its "
                               "dimensions justify (corrupt or hostile file)");
        return pm_stb_failure("cannot decode image", err, errcap);
    }
    if (x <= 0 || y <= 0) {
        free(p);
        return pm_img_fail(err, errcap, PM_ERR_DECODE,
                           "cannot decode image: bad dimensions %dx%d", x, y);
    }
    *px = p;
    *width = x;
    *height = y;
    *channels = n;
    return PM_OK;
}
