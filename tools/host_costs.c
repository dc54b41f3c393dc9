/* host_costs.c - the host-side costs behind a 12 MP call, measured alone:
 *   1. first touch of a fresh 48 MB buffer: malloc (glibc maps it afresh, one page
 *      fault per 4 KiB page) vs 2 MiB-aligned + MADV_HUGEPAGE (lib/pixel_alloc.c),
 *      and a second pass over the same buffer for reference;
 *   2. decoding a JPEG to RGBA: stb_image (which allocates its own buffer) vs
 *      libjpeg-turbo into a fresh buffer and into one already touched.
 * Three rounds each.
 *   gcc -O2 -D_DEFAULT_SOURCE -I/usr/include/stb tools/host_costs.c -lturbojpeg -lm -o host_costs
 *   ./host_costs photo.jpg
 * (-static with Debian's libturbojpeg.a makes a binary the GPU hosts run as is.)
 * A measurement (docs/benchmarks.md), not a test. */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#include <stb_image.h>
#include <turbojpeg.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "gpu/timing.h"

enum { BYTES = 48000000, HUGE_PAGE = 2 << 20 };

static void touch(volatile unsigned char *p, size_t n, unsigned char v) {
    memset((void *)p, v, n);
    if (p[n / 2] != v) abort(); /* keeps the stores */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s photo.jpg\n", argv[0]);
        return 2;
    }
    for (int r = 0; r < 3; r++) {
        double t0 = now_ms();
        unsigned char *p = malloc(BYTES);
        touch(p, BYTES, 1);
        double t1 = now_ms();
        touch(p, BYTES, 2);
        double t2 = now_ms();
        free(p);
        size_t rounded = ((size_t)BYTES + HUGE_PAGE - 1) & ~((size_t)HUGE_PAGE - 1);
        void *h = NULL;
        double t3 = now_ms();
        if (posix_memalign(&h, HUGE_PAGE, rounded) != 0) return 1;
        madvise(h, rounded, MADV_HUGEPAGE);
        touch(h, BYTES, 1);
        double t4 = now_ms();
        free(h);
        printf("48 MB first touch: malloc %.1f ms, huge pages %.1f ms; second pass %.1f ms\n", t1 - t0, t4 - t3, t2 - t1);
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *jpeg = malloc((size_t)n);
    if (fread(jpeg, 1, (size_t)n, f) != (size_t)n) return 1;
    fclose(f);
    tjhandle tj = tjInitDecompress();
    for (int r = 0; r < 3; r++) {
        int w, h, c, sub, cs;
        double t0 = now_ms();
        unsigned char *s = stbi_load_from_memory(jpeg, (int)n, &w, &h, &c, 4);
        double t1 = now_ms();
        stbi_image_free(s);
        tjDecompressHeader3(tj, jpeg, (unsigned long)n, &w, &h, &sub, &cs);
        unsigned char *q = malloc((size_t)w * h * 4);
        double t2 = now_ms();
        int rc1 = tjDecompress2(tj, jpeg, (unsigned long)n, q, w, 0, h, TJPF_RGBA, 0);
        double t3 = now_ms();
        int rc2 = tjDecompress2(tj, jpeg, (unsigned long)n, q, w, 0, h, TJPF_RGBA, 0);
        double t4 = now_ms();
        free(q);
        printf("%dx%d JPEG -> RGBA: stb_image %.1f ms; libjpeg-turbo fresh buffer %.1f ms, touched buffer %.1f ms%s\n",
               w, h, t1 - t0, t3 - t2, t4 - t3, rc1 || rc2 ? " (decoder reported an error)" : "");
    }
    tjDestroy(tj);
    free(jpeg);
    return 0;
}
