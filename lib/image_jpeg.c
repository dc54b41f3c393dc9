/*
 * image_jpeg.c - JPEG decoding with libjpeg-turbo (Debian libturbojpeg0-dev).
 *
 * Why not stb_image for JPEG: decoding dominates a 12 MP call, and libjpeg-turbo's
 * SIMD decoder takes about half stb_image's time. It also writes RGBA directly
 * (TJPF_RGBA), so no expansion pass follows.
 *
 * What stays with stb: CMYK and YCCK (Adobe) JPEGs, which libjpeg-turbo cannot turn
 * into RGB; pm_jpeg_decode_rgba declines them and image_load.c falls back.
 *
 * Corrupt data: libjpeg-turbo reports recoverable damage (say, extraneous bytes
 * before a marker, which some cameras write) as a warning and still decodes the
 * whole image, as browsers and stb do; such images are accepted. Fatal errors
 * become PM_ERR_DECODE with libjpeg's reason. A cut-short file never gets here:
 * image_load.c refuses JPEGs without an end-of-image marker first.
 *
 * The TurboJPEG 2 calls used here (tjInitDecompress, tjDecompressHeader3,
 * tjDecompress2) are in libjpeg-turbo 2.x and 3.x alike.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include <turbojpeg.h>

#include "image_internal.h"
#include "pixel_alloc.h"

pm_code pm_jpeg_decode_rgba(const uint8_t *data, size_t size, const pm_limits *limits,
                            pm_rgba *out, int *declined, char *err, size_t errcap)
{
    *declined = 0;
    if (size > (size_t)ULONG_MAX)
        return pm_img_fail(err, errcap, PM_ERR_LIMIT, "JPEG is %zu bytes, too large to decode", size);
    /* One handle per call: handles are not thread-safe, and creating one costs
     * microseconds against milliseconds of decoding. */
    tjhandle tj = tjInitDecompress();
    if (tj == NULL)
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY, "no memory for a JPEG decoder");

    pm_code rc = PM_OK;
    uint8_t *px = NULL;
    int w = 0, h = 0, subsampling = 0, colorspace = 0;
    if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsampling, &colorspace) != 0) {
        rc = pm_img_fail(err, errcap, PM_ERR_DECODE, "cannot read the JPEG header: %s",
                         tjGetErrorStr2(tj));
        goto done;
    }
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        *declined = 1;
        goto done;
    }
    /* image_load.c checked the SOF dimensions; libjpeg reads the same segment,
     * but a decoder must not be trusted to agree. */
    if ((rc = pm_check_pixels(limits, w, h, err, errcap)) != PM_OK)
        goto done;
    px = pm_pixels_alloc((size_t)w * (size_t)h * 4u);
    if (px == NULL) {
        rc = pm_img_fail(err, errcap, PM_ERR_NO_MEMORY, "no memory for a %dx%d RGBA image", w, h);
        goto done;
    }
    /* w * 4 fits an int: JPEG sides are 16-bit. TJFLAG_LIMITSCANS refuses a
     * progressive JPEG with an absurd number of scans (over 500), which would
     * otherwise make a small file cost minutes of CPU. */
    if (tjDecompress2(tj, data, (unsigned long)size, px, w, w * 4, h, TJPF_RGBA, TJFLAG_LIMITSCANS) != 0 &&
        tjGetErrorCode(tj) != TJERR_WARNING) {
        rc = pm_img_fail(err, errcap, PM_ERR_DECODE, "cannot decode the JPEG: %s", tjGetErrorStr2(tj));
        free(px);
        px = NULL;
        goto done;
    }
    out->px = px;
    out->width = w;
    out->height = h;
    out->has_alpha = 0;
done:
    tjDestroy(tj);
    return rc;
}
