/*
 * pixel_alloc.h - allocation of large pixel buffers (internal).
 *
 * Why this exists: a 12 MP RGBA buffer is 48 MB. glibc serves blocks that large
 * with a fresh mmap and returns them to the kernel on free, so every call pays a
 * page fault per 4 KiB page the first time it writes its buffers, which on a small
 * VM costs more than decoding the JPEG itself. Buffers from pm_pixels_alloc are
 * aligned to 2 MiB and marked for transparent huge pages, so the kernel maps them
 * 2 MiB at a time. Where huge pages are off, this is an
 * ordinary aligned allocation. Where the kernel's THP defrag setting is "madvise" (the
 * Debian and Ubuntu default), a fault in these buffers may compact memory first when
 * no huge page is free; a host that sees such stalls can set THP to "never", which
 * turns this back into plain 4 KiB pages.
 *
 * Buffers are released with free(): they can be handed to the caller inside a
 * pm_output, which pm_output_free releases with free().
 */
#ifndef PETMATTE_PIXEL_ALLOC_H
#define PETMATTE_PIXEL_ALLOC_H

#include <stddef.h>

/* At least `bytes` bytes (uninitialised), or NULL when memory is short. */
void *pm_pixels_alloc(size_t bytes);

#endif
