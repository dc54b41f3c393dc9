/*
 * encode_webp.c - WebP output through libwebp's advanced API.
 *
 * Decisions (figures in docs/benchmarks.md, "PNG and WebP output"):
 *  - The bytes are written by our own WebPWriterFunction into a buffer grown with
 *    realloc, so the output is released with free() like every other encoding, and
 *    running out of memory there is told apart from an encoder failure.
 *  - Lossless: libwebp's lossless preset 0 (method 0), its fastest; the higher
 *    presets take several times longer for a file a quarter smaller.
 *  - Lossy: method 0 (the fastest) at the caller's quality, the alpha plane
 *    compressed losslessly (alpha_quality 100), so the matte is exact.
 *  - `exact` stays off: libwebp may change the colour of fully transparent pixels,
 *    which nobody sees and which would otherwise cost most of a cut-out's bytes.
 *  - thread_level 1: libwebp's own second thread for the lossy analysis and alpha.
 *  - Gray (a mask) is expanded to gray RGB here: WebP has no gray mode.
 */
#include <stdlib.h>
#include <string.h>

#include <webp/encode.h>

#include "encode.h"
#include "image_internal.h"

typedef struct webp_sink {
    uint8_t *data;
    size_t size, cap;
    int no_memory;
} webp_sink;

static int webp_write(const uint8_t *data, size_t size, const WebPPicture *pic)
{
    webp_sink *sink = pic->custom_ptr;
    if (size > sink->cap - sink->size) {
        size_t cap = sink->cap ? sink->cap : 64u << 10;
        while (cap - sink->size < size) {
            if (cap > SIZE_MAX / 2u) {
                sink->no_memory = 1;
                return 0;
            }
            cap *= 2u;
        }
        uint8_t *grown = realloc(sink->data, cap);
        if (grown == NULL) {
            sink->no_memory = 1;
            return 0;
        }
        sink->data = grown;
        sink->cap = cap;
    }
    memcpy(sink->data + sink->size, data, size);
    sink->size += size;
    return 1;
}

static const char *webp_error_text(WebPEncodingError e)
{
    switch (e) {
    case VP8_ENC_ERROR_OUT_OF_MEMORY: return "out of memory";
    case VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY: return "out of memory for the bitstream";
    case VP8_ENC_ERROR_NULL_PARAMETER: return "a NULL parameter";
    case VP8_ENC_ERROR_INVALID_CONFIGURATION: return "an invalid configuration";
    case VP8_ENC_ERROR_BAD_DIMENSION: return "a bad dimension";
    case VP8_ENC_ERROR_PARTITION0_OVERFLOW: return "partition 0 overflow";
    case VP8_ENC_ERROR_PARTITION_OVERFLOW: return "partition overflow";
    case VP8_ENC_ERROR_BAD_WRITE: return "a failed write";
    case VP8_ENC_ERROR_FILE_TOO_BIG: return "a file over 4 GiB";
    case VP8_ENC_ERROR_USER_ABORT: return "an abort";
    default: return "an unknown error";
    }
}

pm_code pm_encode_webp(const uint8_t *px, int width, int height, int channels, int lossless,
                       int quality, uint8_t **out, size_t *out_size, char *err, size_t errcap)
{
    if (out == NULL || out_size == NULL)
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL, "WebP encoder called without an output");
    *out = NULL;
    *out_size = 0;
    if (px == NULL || width <= 0 || height <= 0 ||
        (channels != 1 && channels != 3 && channels != 4))
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL,
                           "WebP encoder called with %dx%d, %d channels", width, height, channels);
    if (!lossless && (quality < PM_WEBP_QUALITY_MIN || quality > PM_WEBP_QUALITY_MAX))
        return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                           "WebP quality %d is not in %d..%d", quality, PM_WEBP_QUALITY_MIN,
                           PM_WEBP_QUALITY_MAX);
    if (width > PM_WEBP_MAX_SIDE || height > PM_WEBP_MAX_SIDE)
        return pm_img_fail(err, errcap, PM_ERR_UNSUPPORTED,
                           "a %dx%d image is larger than WebP allows (%d pixels a side); "
                           "ask for PNG", width, height, PM_WEBP_MAX_SIDE);

    WebPConfig config;
    if (!WebPConfigInit(&config))
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL,
                           "WebP: this libwebp does not match the headers it was built with");
    if (lossless) {
        if (!WebPConfigLosslessPreset(&config, 0))
            return pm_img_fail(err, errcap, PM_ERR_INTERNAL, "WebP: no lossless preset 0");
    } else {
        config.quality = (float)quality;
        config.method = 0;
        config.alpha_compression = 1;
        config.alpha_quality = 100;
    }
    config.thread_level = 1;
    if (!WebPValidateConfig(&config))
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL, "WebP: libwebp refused its configuration");

    /* A mask becomes gray RGB; the other kinds are imported as they are. */
    uint8_t *rgb = NULL;
    const uint8_t *src = px;
    int src_channels = channels;
    if (channels == 1) {
        const size_t n = (size_t)width * (size_t)height; /* at most 16383^2 */
        rgb = malloc(n * 3u);
        if (rgb == NULL)
            return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                               "no memory to expand a %dx%d mask for WebP", width, height);
        for (size_t i = 0; i < n; i++)
            memset(rgb + i * 3u, px[i], 3);
        src = rgb;
        src_channels = 3;
    }

    WebPPicture pic;
    if (!WebPPictureInit(&pic)) {
        free(rgb);
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL, "WebP: WebPPictureInit failed");
    }
    pic.width = width;
    pic.height = height;
    pic.use_argb = lossless;
    webp_sink sink = {0};
    pic.writer = webp_write;
    pic.custom_ptr = &sink;
    const int stride = width * src_channels; /* at most 16383 * 4 */
    int ok = src_channels == 4 ? WebPPictureImportRGBA(&pic, src, stride)
                               : WebPPictureImportRGB(&pic, src, stride);
    free(rgb);
    if (!ok) {
        WebPPictureFree(&pic);
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                           "no memory to import a %dx%d image into libwebp", width, height);
    }
    ok = WebPEncode(&config, &pic);
    WebPEncodingError code = pic.error_code;
    WebPPictureFree(&pic);
    if (!ok || sink.size == 0) {
        free(sink.data);
        if (sink.no_memory || code == VP8_ENC_ERROR_OUT_OF_MEMORY ||
            code == VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY)
            return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                               "out of memory while encoding a %dx%d WebP", width, height);
        return pm_img_fail(err, errcap, PM_ERR_INTERNAL,
                           "WebP: libwebp failed on a %dx%d image with %s (%d)", width, height,
                           webp_error_text(code), (int)code);
    }
    uint8_t *fit = realloc(sink.data, sink.size); /* give back the growth's slack */
    *out = fit != NULL ? fit : sink.data;
    *out_size = sink.size;
    return PM_OK;
}
