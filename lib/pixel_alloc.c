/*
 * pixel_alloc.c - pm_pixels_alloc: large pixel buffers on transparent huge pages
 * (see pixel_alloc.h for why).
 */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE (glibc hides them under strict POSIX) */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pixel_alloc.h"

/* Size of a huge page on x86-64 and arm64 (4 KiB base pages). */
#define PM_HUGE_PAGE ((size_t)2 << 20)

/* Below this a buffer is mostly not a whole huge page: plain malloc. */
#define PM_HUGE_MIN ((size_t)4 << 20)

void *pm_pixels_alloc(size_t bytes)
{
    if (bytes < PM_HUGE_MIN)
        return malloc(bytes ? bytes : 1);
    if (bytes > SIZE_MAX - PM_HUGE_PAGE)
        return NULL;
    /* Whole huge pages, so that the advice covers only this buffer. */
    size_t rounded = (bytes + PM_HUGE_PAGE - 1) & ~(PM_HUGE_PAGE - 1);
    void *p = NULL;
    if (posix_memalign(&p, PM_HUGE_PAGE, rounded) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    /* Advice only: EINVAL where the kernel has no THP changes nothing. */
    (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}
