/* fuzz_image_load - libFuzzer target: pm_image_load on arbitrary encoded bytes.
 *
 * Covers what an attacker controls in pm_remove_bg without the model: the PNG and
 * JPEG header readers, the JPEG end-of-image and Huffman-table checks, every stb
 * decoder (PNG, JPEG, BMP, GIF, TGA, PSD, PNM, HDR, PIC) under the allocation cap,
 * libexif and the eight orientations. The pixel limit is 4 MP (not the default
 * 100 MP) so that a tiny header cannot make one input take seconds; what the
 * limit itself does is tested in tests/image_decode.c. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pm_image in;
    pm_image_init(&in);
    in.format = PM_FORMAT_ENCODED;
    in.data = data;
    in.size = size;
    pm_limits limits = {.max_pixels = (uint64_t)1 << 22, .max_encoded_bytes = (uint64_t)1 << 24};
    pm_rgba img;
    char err[256];
    pm_code rc = pm_image_load(&in, &limits, 1, &img, err, sizeof err);
    if (rc == PM_OK) {
        /* Touch every pixel: an image shorter than it claims is a read overflow here. */
        volatile uint8_t sink = 0;
        size_t n = (size_t)img.width * (size_t)img.height * 4u;
        for (size_t i = 0; i < n; i += 61) sink ^= img.px[i];
        if (n) sink ^= img.px[n - 1];
        (void)sink;
        pm_rgba_free(&img);
    } else if (img.px != NULL) {
        abort(); /* a failure must leave nothing allocated */
    }
    return 0;
}
