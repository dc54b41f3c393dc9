/* pm_image_load: raw formats, every encoded format we promise, limits checked from
 * headers, hostile and broken inputs, and the eight EXIF orientations.
 * Every image is made here: with stb_image_write, or byte by byte where the format
 * detail matters (16-bit PNG, tRNS, GIF frames, zlib bombs, EXIF segments). */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include <turbojpeg.h>

#include "test_util.h"

#include "image.h"
#include "image_internal.h"
#include "seed_formats.h"

#include "stb_write.h"

/* Byte buffers, PNG chunks, zlib stored blocks, GIF frames and EXIF segments come
 * from tests/fuzz/seed_formats.h (shared with the fuzz seeds and api_bad_inputs). */

/* Signature and IHDR only: the tests add their own (odd) chunks after it. */
static void png_start(sf_buf *b, uint32_t w, uint32_t h, int depth, int color_type) {
    sf_put(b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0};
    for (int i = 0; i < 4; i++) {
        ihdr[i] = (uint8_t)(w >> (24 - 8 * i));
        ihdr[4 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)color_type;
    sf_png_chunk(b, "IHDR", ihdr, sizeof ihdr);
}

/* ------------------------------------------------------------ helpers */

static pm_limits limits_of(uint64_t pixels, uint64_t bytes) {
    pm_limits l = {pixels, bytes};
    return l;
}

static const pm_limits *default_limits(void) {
    static const pm_limits l = {100000000ull, 256ull << 20};
    return &l;
}

static pm_code load(const pm_image *in, const pm_limits *lim, int exif, pm_rgba *out, char *err) {
    return pm_image_load(in, lim, exif, out, err, 256);
}

static void load_ok(const pm_image *in, int exif, pm_rgba *out) {
    char err[256] = "";
    pm_code rc = load(in, default_limits(), exif, out, err);
    if (rc != PM_OK) fprintf(stderr, "pm_image_load: %s\n", err);
    assert_int_equal(rc, PM_OK);
    assert_non_null(pm_rgba_pixels(out));
}

static void expect_failure(const pm_image *in, const pm_limits *lim, pm_code want, const char *needle) {
    char err[256] = "";
    pm_rgba out;
    memset(&out, 0xAB, sizeof out);
    pm_code rc = load(in, lim, 1, &out, err);
    if (rc != want || (needle && !strstr(err, needle)))
        fprintf(stderr, "got %d \"%s\", wanted %d containing \"%s\"\n", rc, err, want, needle ? needle : "");
    assert_int_equal(rc, want);
    assert_null(out.px);
    if (needle) assert_non_null(strstr(err, needle));
}

static const uint8_t *px_at(const pm_rgba *img, int x, int y) {
    return img->px + ((size_t)y * (size_t)img->width + (size_t)x) * 4;
}

/* Pattern used by the raw and lossless tests: every channel differs. */
static uint8_t chan(int x, int y, int c) { return (uint8_t)(x * 11 + y * 37 + c * 71 + 5); }

/* ------------------------------------------------------------ raw input */

static void test_raw_formats_with_padded_stride_convert_exactly(void **state) {
    (void)state;
    enum { W = 7, H = 5, PAD = 9 };
    const int formats[] = {PM_FORMAT_RGB, PM_FORMAT_RGBA, PM_FORMAT_BGR, PM_FORMAT_BGRA, PM_FORMAT_GRAY};
    const int chans[] = {3, 4, 3, 4, 1};
    for (int f = 0; f < 5; f++) {
        int ch = chans[f];
        size_t stride = (size_t)W * ch + PAD;
        /* The last row is not padded: exactly (h-1)*stride + row bytes are enough. */
        size_t size = (H - 1) * stride + (size_t)W * ch;
        uint8_t *raw = malloc(size);
        memset(raw, 0xEE, size);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < ch; c++) raw[y * stride + x * ch + c] = chan(x, y, c);
        pm_image in = raw_image(formats[f], raw, W, H, stride, size);
        pm_rgba img;
        load_ok(&in, 1, &img);
        assert_int_equal(img.width, W);
        assert_int_equal(img.height, H);
        assert_int_equal(img.has_alpha, ch == 4);
        if (formats[f] == PM_FORMAT_RGB || formats[f] == PM_FORMAT_RGBA) {
            /* Read in place: the caller's buffer, stride and channel count. */
            assert_null(img.px);
            assert_ptr_equal(pm_rgba_pixels(&img), raw);
            assert_int_equal(pm_rgba_stride(&img), stride);
            assert_int_equal(pm_rgba_channels(&img), ch);
            char err[128];
            assert_int_equal(pm_rgba_own(&img, err, sizeof err), PM_OK); /* the RGBA copy clean edges use */
            assert_non_null(img.px);
            assert_int_equal(pm_rgba_stride(&img), W * 4);
        } else {
            assert_non_null(img.px); /* converted: the pipeline reads RGB(A) order */
        }
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const uint8_t *p = px_at(&img, x, y);
                uint8_t want[4];
                switch (formats[f]) {
                case PM_FORMAT_RGB: want[0] = chan(x, y, 0); want[1] = chan(x, y, 1); want[2] = chan(x, y, 2); want[3] = 255; break;
                case PM_FORMAT_RGBA: for (int c = 0; c < 4; c++) want[c] = chan(x, y, c); break;
                case PM_FORMAT_BGR: want[0] = chan(x, y, 2); want[1] = chan(x, y, 1); want[2] = chan(x, y, 0); want[3] = 255; break;
                case PM_FORMAT_BGRA: want[0] = chan(x, y, 2); want[1] = chan(x, y, 1); want[2] = chan(x, y, 0); want[3] = chan(x, y, 3); break;
                default: want[0] = want[1] = want[2] = chan(x, y, 0); want[3] = 255; break;
                }
                assert_memory_equal(p, want, 4);
            }
        pm_rgba_free(&img);
        assert_null(img.px);
        free(raw);
    }
}

static void test_raw_stride_zero_means_tight_rows(void **state) {
    (void)state;
    uint8_t *rgb = make_rgb(9, 4);
    pm_image in = raw_image(PM_FORMAT_RGB, rgb, 9, 4, 0, 9 * 4 * 3);
    pm_rgba img;
    load_ok(&in, 1, &img);
    assert_int_equal(pm_rgba_stride(&img), 9 * 3);
    assert_int_equal(pm_rgba_pixels(&img)[3 * 9 * 3 + 8 * 3], pattern_red(8, 3));
    pm_rgba_free(&img);
    free(rgb);
}

static void test_raw_bad_arguments_are_refused(void **state) {
    (void)state;
    uint8_t data[64 * 64 * 4] = {0};
    pm_image in = raw_image(PM_FORMAT_RGB, data, 10, 10, 29, sizeof data);
    expect_failure(&in, default_limits(), PM_ERR_INVALID_ARGUMENT, "stride 29 is smaller than a row");
    in = raw_image(PM_FORMAT_RGB, data, 0, 10, 0, sizeof data);
    expect_failure(&in, default_limits(), PM_ERR_INVALID_ARGUMENT, "0x10");
    in = raw_image(PM_FORMAT_RGBA, data, 10, -3, 0, sizeof data);
    expect_failure(&in, default_limits(), PM_ERR_INVALID_ARGUMENT, "must be positive");
    /* One byte short of (h-1)*stride + row. */
    in = raw_image(PM_FORMAT_BGRA, data, 10, 10, 50, 9 * 50 + 40 - 1);
    expect_failure(&in, default_limits(), PM_ERR_INVALID_ARGUMENT, "needs 490 bytes");
    in = raw_image(PM_FORMAT_GRAY, NULL, 10, 10, 0, sizeof data);
    expect_failure(&in, default_limits(), PM_ERR_INVALID_ARGUMENT, "data is NULL");
    in = raw_image(99, data, 10, 10, 0, sizeof data);
    expect_failure(&in, default_limits(), PM_ERR_INVALID_ARGUMENT, "not a pm_pixel_format");
    /* A stride so large that (h-1)*stride overflows 64 bits. */
    in = raw_image(PM_FORMAT_RGB, data, 10, 5, SIZE_MAX / 2, sizeof data);
    expect_failure(&in, default_limits(), PM_ERR_INVALID_ARGUMENT, "overflow");
    char err[64];
    assert_int_equal(pm_image_load(NULL, default_limits(), 1, &(pm_rgba){0}, err, sizeof err),
                     PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_image_load(&in, default_limits(), 1, NULL, err, sizeof err), PM_ERR_INVALID_ARGUMENT);
}

static void test_raw_pixel_limit_is_inclusive_and_named_in_the_message(void **state) {
    (void)state;
    uint8_t *gray = calloc(40, 25);
    pm_image in = raw_image(PM_FORMAT_GRAY, gray, 40, 25, 0, 1000);
    pm_limits at = limits_of(1000, 10);
    pm_rgba img;
    char err[256];
    assert_int_equal(load(&in, &at, 1, &img, err), PM_OK);
    pm_rgba_free(&img);
    pm_limits under = limits_of(999, 10);
    expect_failure(&in, &under, PM_ERR_LIMIT,
                   "image is 40x25 = 1000 pixels, over the limit of 999 (pm_params.max_pixels)");
    free(gray);
}

/* ------------------------------------------------------------ lossless encoded formats */

static uint8_t *pattern_rgba(int w, int h, int alpha) {
    uint8_t *p = malloc((size_t)w * h * 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 4; c++)
                p[((size_t)y * w + x) * 4 + c] = c == 3 && !alpha ? 255 : chan(x, y, c);
    return p;
}

static void expect_pattern(const pm_rgba *img, int w, int h, int comp) {
    assert_int_equal(img->width, w);
    assert_int_equal(img->height, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *p = px_at(img, x, y);
            uint8_t want[4];
            if (comp <= 2) {
                want[0] = want[1] = want[2] = chan(x, y, 0);
                want[3] = comp == 2 ? chan(x, y, 1) : 255;
            } else {
                for (int c = 0; c < 3; c++) want[c] = chan(x, y, c);
                want[3] = comp == 4 ? chan(x, y, 3) : 255;
            }
            assert_memory_equal(p, want, 4);
        }
}

/* Packs the pattern to comp channels for stb_image_write (gray = channel 0). */
static uint8_t *pattern_packed(int w, int h, int comp) {
    uint8_t *p = malloc((size_t)w * h * comp);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comp; c++) p[((size_t)y * w + x) * comp + c] = chan(x, y, c);
    return p;
}

static void test_png_bmp_tga_decode_exactly_for_every_channel_count(void **state) {
    (void)state;
    enum { W = 13, H = 6 };
    for (int comp = 1; comp <= 4; comp++) {
        uint8_t *px = pattern_packed(W, H, comp);
        for (int fmt = 0; fmt < 3; fmt++) {
            if (fmt == 1 && (comp == 1 || comp == 2)) continue; /* stb's BMP writer: RGB/RGBA only */
            sf_buf b = {0};
            int ok = fmt == 0   ? stbi_write_png_to_func(sf_stb_sink, &b, W, H, comp, px, W * comp)
                     : fmt == 1 ? stbi_write_bmp_to_func(sf_stb_sink, &b, W, H, comp, px)
                                : stbi_write_tga_to_func(sf_stb_sink, &b, W, H, comp, px);
            assert_true(ok);
            pm_image in = encoded_image(b.p, b.n);
            pm_rgba img;
            load_ok(&in, 1, &img);
            expect_pattern(&img, W, H, comp);
            assert_int_equal(img.has_alpha, comp == 2 || comp == 4);
            pm_rgba_free(&img);
            free(b.p);
        }
        free(px);
    }
}

static void test_sixteen_bit_png_keeps_the_high_byte(void **state) {
    (void)state;
    enum { W = 3, H = 2 };
    uint8_t rows[H * (1 + W * 8)];
    size_t k = 0;
    for (int y = 0; y < H; y++) {
        rows[k++] = 0; /* filter: none */
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 4; c++) {
                rows[k++] = chan(x, y, c);  /* high byte */
                rows[k++] = (uint8_t)(0xFF - c); /* low byte: must not matter */
            }
    }
    sf_buf png = sf_png(W, H, 16, 6, rows, sizeof rows, NULL, 0, NULL, 0);
    pm_image in = encoded_image(png.p, png.n);
    pm_rgba img;
    load_ok(&in, 1, &img);
    expect_pattern(&img, W, H, 4);
    assert_int_equal(img.has_alpha, 1);
    pm_rgba_free(&img);
    free(png.p);
}

static void test_gray_alpha_png_and_rgb_trns_colour_key_give_alpha(void **state) {
    (void)state;
    /* 8-bit RGB with a tRNS colour key: the keyed pixel becomes transparent. */
    uint8_t rows[2 * (1 + 2 * 3)] = {0, 10, 20, 30, 40, 50, 60, 0, 10, 20, 30, 1, 2, 3};
    const uint8_t key[6] = {0, 40, 0, 50, 0, 60};
    sf_buf png = sf_png(2, 2, 8, 2, rows, sizeof rows, NULL, 0, key, sizeof key);
    pm_image in = encoded_image(png.p, png.n);
    pm_rgba img;
    load_ok(&in, 1, &img);
    assert_int_equal(img.has_alpha, 1);
    assert_int_equal(px_at(&img, 1, 0)[3], 0);
    assert_int_equal(px_at(&img, 0, 0)[3], 255);
    assert_int_equal(px_at(&img, 1, 1)[2], 3);
    pm_rgba_free(&img);
    free(png.p);

    /* Gray + alpha, 8-bit (colour type 4). */
    uint8_t ga[1 + 2 * 2] = {0, 200, 17, 90, 255};
    png = sf_png(2, 1, 8, 4, ga, sizeof ga, NULL, 0, NULL, 0);
    in = encoded_image(png.p, png.n);
    load_ok(&in, 1, &img);
    const uint8_t want[8] = {200, 200, 200, 17, 90, 90, 90, 255};
    assert_memory_equal(img.px, want, 8);
    assert_int_equal(img.has_alpha, 1);
    pm_rgba_free(&img);
    free(png.p);
}

static void test_gif_decodes_its_first_frame(void **state) {
    (void)state;
    enum { W = 5, H = 3 };
    const uint8_t pal[12] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255};
    uint8_t first[W * H], second[W * H];
    for (int i = 0; i < W * H; i++) {
        first[i] = (uint8_t)(i % 4);
        second[i] = 3;
    }
    sf_buf b = {0};
    sf_put(&b, "GIF89a", 6);
    sf_u16le(&b, W); sf_u16le(&b, H);
    sf_u8(&b, 0x91); /* global table of 4 entries */
    sf_u8(&b, 0); sf_u8(&b, 0);
    sf_put(&b, pal, sizeof pal);
    sf_gif_frame(&b, W, H, first);
    sf_gif_frame(&b, W, H, second);
    sf_u8(&b, 0x3B);
    pm_image in = encoded_image(b.p, b.n);
    pm_rgba img;
    load_ok(&in, 1, &img);
    assert_int_equal(img.width, W);
    assert_int_equal(img.height, H);
    assert_int_equal(img.has_alpha, 0);
    for (int i = 0; i < W * H; i++) {
        const uint8_t *p = img.px + i * 4;
        assert_memory_equal(p, pal + first[i] * 3, 3);
        assert_int_equal(p[3], 255);
    }
    pm_rgba_free(&img);
    free(b.p);
}

/* ------------------------------------------------------------ broken and hostile input */

static sf_buf small_png(int w, int h) {
    uint8_t *px = pattern_packed(w, h, 3);
    sf_buf b = {0};
    assert_true(stbi_write_png_to_func(sf_stb_sink, &b, w, h, 3, px, w * 3));
    free(px);
    return b;
}

static void test_truncated_png_is_a_decode_error(void **state) {
    (void)state;
    sf_buf png = small_png(40, 30);
    pm_image in = encoded_image(png.p, png.n / 2);
    expect_failure(&in, default_limits(), PM_ERR_DECODE, "cannot decode image");
    in = encoded_image(png.p, 20); /* inside IHDR */
    expect_failure(&in, default_limits(), PM_ERR_DECODE, "PNG header");
    free(png.p);
}

static sf_buf blocks_jpeg(int w, int h, uint8_t (*colour)(int bx, int by, int c));

static uint8_t grid_colour(int bx, int by, int c) {
    /* 16x16 blocks, each a distinct, well-separated colour. */
    static const uint8_t k[6][3] = {{230, 20, 20}, {20, 220, 30}, {30, 40, 230},
                                    {240, 230, 30}, {20, 220, 220}, {120, 120, 120}};
    return k[(by * 3 + bx) % 6][c];
}

static void test_truncated_jpeg_is_a_decode_error_not_grey(void **state) {
    (void)state;
    sf_buf jpg = blocks_jpeg(48, 32, grid_colour);
    pm_image whole = encoded_image(jpg.p, jpg.n);
    pm_rgba img;
    load_ok(&whole, 1, &img);
    pm_rgba_free(&img);
    /* stb would decode this as a partly grey image; we refuse it. */
    pm_image cut = encoded_image(jpg.p, jpg.n - 40);
    expect_failure(&cut, default_limits(), PM_ERR_DECODE, "truncated");
    assert_int_equal(pm_jpeg_has_eoi(jpg.p, jpg.n), 1);
    assert_int_equal(pm_jpeg_has_eoi(jpg.p, jpg.n - 2), 0);
    /* Cut inside the headers: no frame header before the data ends. */
    pm_image head = encoded_image(jpg.p, 30);
    expect_failure(&head, default_limits(), PM_ERR_DECODE, "JPEG header");
    free(jpg.p);
}

static void test_random_bytes_empty_and_null_buffers(void **state) {
    (void)state;
    uint8_t junk[4096];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        s = s * 1103515245u + 12345u;
        junk[i] = (uint8_t)(s >> 16);
    }
    junk[0] = 0x42; /* not by chance a JPEG or PNG signature */
    pm_image in = encoded_image(junk, sizeof junk);
    expect_failure(&in, default_limits(), PM_ERR_DECODE, NULL);
    in = encoded_image(junk, 0);
    expect_failure(&in, default_limits(), PM_ERR_INVALID_ARGUMENT, "size is 0");
    in = encoded_image(NULL, 100);
    expect_failure(&in, default_limits(), PM_ERR_INVALID_ARGUMENT, "data is NULL");
    /* A JPEG signature followed by junk, and the two signature bytes alone. */
    junk[0] = 0xFF;
    junk[1] = 0xD8;
    in = encoded_image(junk, sizeof junk);
    expect_failure(&in, default_limits(), PM_ERR_DECODE, NULL);
    in = encoded_image(junk, 2);
    expect_failure(&in, default_limits(), PM_ERR_DECODE, NULL);
}

static void test_huge_png_header_is_refused_from_the_header_alone(void **state) {
    (void)state;
    sf_buf b = {0};
    png_start(&b, 65535, 65535, 8, 6);
    sf_png_chunk(&b, "IEND", NULL, 0);
    pm_image in = encoded_image(b.p, b.n);
    expect_failure(&in, default_limits(), PM_ERR_LIMIT,
                   "image is 65535x65535 = 4294836225 pixels, over the limit of 100000000 "
                   "(pm_params.max_pixels)");
    /* With our own limit lifted, the decoder's limit still refuses it before allocating. */
    pm_limits none = limits_of(UINT64_MAX, UINT64_MAX);
    expect_failure(&in, &none, PM_ERR_LIMIT, NULL);
    free(b.p);
}

static void test_encoded_pixel_limit_just_over_and_at(void **state) {
    (void)state;
    sf_buf png = small_png(100, 50);
    pm_image in = encoded_image(png.p, png.n);
    pm_limits over = limits_of(4999, 1 << 20);
    expect_failure(&in, &over, PM_ERR_LIMIT, "100x50 = 5000 pixels, over the limit of 4999");
    pm_limits at = limits_of(5000, 1 << 20);
    pm_rgba img;
    char err[256];
    assert_int_equal(load(&in, &at, 1, &img, err), PM_OK);
    pm_rgba_free(&img);
    /* Same for a JPEG (dimensions from its SOF segment) and a BMP (stb's probe). */
    sf_buf jpg = blocks_jpeg(48, 32, grid_colour);
    in = encoded_image(jpg.p, jpg.n);
    pm_limits jover = limits_of(48 * 32 - 1, 1 << 20);
    expect_failure(&in, &jover, PM_ERR_LIMIT, "48x32 = 1536 pixels");
    uint8_t *px = pattern_packed(30, 20, 3);
    sf_buf bmp = {0};
    assert_true(stbi_write_bmp_to_func(sf_stb_sink, &bmp, 30, 20, 3, px));
    in = encoded_image(bmp.p, bmp.n);
    pm_limits bover = limits_of(599, 1 << 20);
    expect_failure(&in, &bover, PM_ERR_LIMIT, "30x20 = 600 pixels");
    free(px);
    free(bmp.p);
    free(jpg.p);
    free(png.p);
}

static void test_encoded_byte_limit(void **state) {
    (void)state;
    sf_buf png = small_png(20, 20);
    pm_image in = encoded_image(png.p, png.n);
    pm_limits under = limits_of(1000000, png.n - 1);
    char want[128];
    snprintf(want, sizeof want, "encoded image is %zu bytes, over the limit of %zu (pm_params.max_encoded_bytes)",
             png.n, png.n - 1);
    expect_failure(&in, &under, PM_ERR_LIMIT, want);
    pm_limits at = limits_of(1000000, png.n);
    pm_rgba img;
    char err[256];
    assert_int_equal(load(&in, &at, 1, &img, err), PM_OK);
    pm_rgba_free(&img);
    free(png.p);
}

/* Writes Huffman codes (most significant bit first) into an LSB-first bit stream. */
typedef struct bitw {
    sf_buf b;
    uint32_t acc;
    int n;
} bitw;
static void bits_lsb(bitw *w, uint32_t v, int n) {
    w->acc |= v << w->n;
    w->n += n;
    while (w->n >= 8) {
        sf_u8(&w->b, w->acc & 0xFF);
        w->acc >>= 8;
        w->n -= 8;
    }
}
static void bits_code(bitw *w, uint32_t code, int n) {
    for (int i = n - 1; i >= 0; i--) bits_lsb(w, (code >> i) & 1u, 1);
}

static void test_zlib_bomb_in_a_small_png_fails_without_growing(void **state) {
    (void)state;
    /* A 16x16 gray PNG whose IDAT inflates to ~64 MiB of zeros: fixed-Huffman
     * blocks of "length 258, distance 1" copies, 13 bits each. */
    bitw w = {0};
    sf_u8(&w.b, 0x78);
    sf_u8(&w.b, 0x01);
    bits_lsb(&w, 1, 1);      /* final block */
    bits_lsb(&w, 1, 2);      /* fixed Huffman */
    bits_code(&w, 0x30, 8);  /* literal 0 */
    for (int i = 0; i < (64 << 20) / 258; i++) {
        bits_code(&w, 0xC5, 8); /* length code 285 = 258 */
        bits_code(&w, 0, 5);    /* distance code 0 = 1 */
    }
    bits_code(&w, 0, 7);     /* end of block */
    if (w.n) bits_lsb(&w, 0, 8 - w.n);
    sf_u32be(&w.b, 1);        /* adler32: never reached */
    sf_buf png = {0};
    png_start(&png, 16, 16, 8, 0);
    sf_png_chunk(&png, "IDAT", w.b.p, w.b.n);
    sf_png_chunk(&png, "IEND", NULL, 0);
    pm_image in = encoded_image(png.p, png.n);
    expect_failure(&in, default_limits(), PM_ERR_DECODE, "more memory than its dimensions justify");
    free(w.b.p);
    free(png.p);
}

/* ------------------------------------------------------------ EXIF orientation */

static sf_buf blocks_jpeg(int w, int h, uint8_t (*colour)(int bx, int by, int c)) {
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) px[((size_t)y * w + x) * 3 + c] = colour(x / 16, y / 16, c);
    sf_buf b = {0};
    /* Quality 100: no chroma subsampling, unit quantisers; flat 16x16 blocks come
     * back within a few levels. */
    assert_true(stbi_write_jpg_to_func(sf_stb_sink, &b, w, h, 3, px, 100));
    free(px);
    return b;
}

static int near(int a, int b) { return abs(a - b) <= 10; }

/* Where stored pixel (sx, sy) of a WxH image appears after undoing orientation o;
 * written from the EXIF definitions independently of the library's inverse map. */
static void displayed_at(int o, int W, int H, int sx, int sy, int *dx, int *dy) {
    switch (o) {
    case 1: *dx = sx; *dy = sy; break;
    case 2: *dx = W - 1 - sx; *dy = sy; break;             /* flip horizontally */
    case 3: *dx = W - 1 - sx; *dy = H - 1 - sy; break;     /* rotate 180 */
    case 4: *dx = sx; *dy = H - 1 - sy; break;             /* flip vertically */
    case 5: *dx = sy; *dy = sx; break;                     /* transpose */
    case 6: *dx = H - 1 - sy; *dy = sx; break;             /* rotate 90 clockwise */
    case 7: *dx = H - 1 - sy; *dy = W - 1 - sx; break;     /* transverse */
    default: *dx = sy; *dy = W - 1 - sx; break;            /* 8: rotate 90 anticlockwise */
    }
}

static void test_exif_orientations_one_to_eight_turn_jpegs_upright(void **state) {
    (void)state;
    enum { W = 48, H = 32 };
    sf_buf jpg = blocks_jpeg(W, H, grid_colour);
    for (int o = 1; o <= 8; o++) {
        sf_buf e = sf_exif_payload(o % 2, (unsigned)o, 8, 3); /* both byte orders */
        sf_buf j = sf_jpeg_with_app1(jpg.p, jpg.n, e.p, e.n);
        int got = 0;
        char err[128];
        assert_int_equal(pm_jpeg_exif_orientation(j.p, j.n, &got, err, sizeof err), PM_OK);
        assert_int_equal(got, o);
        pm_image in = encoded_image(j.p, j.n);
        pm_rgba img;
        load_ok(&in, 1, &img);
        int swap = o >= 5;
        assert_int_equal(img.width, swap ? H : W);
        assert_int_equal(img.height, swap ? W : H);
        /* The centre of every stored block shows up where the definition says. */
        for (int by = 0; by < H / 16; by++)
            for (int bx = 0; bx < W / 16; bx++) {
                int dx, dy;
                displayed_at(o, W, H, bx * 16 + 8, by * 16 + 8, &dx, &dy);
                const uint8_t *p = px_at(&img, dx, dy);
                for (int c = 0; c < 3; c++) assert_true(near(p[c], grid_colour(bx, by, c)));
            }
        pm_rgba_free(&img);
        /* apply_exif off: stored as is. */
        load_ok(&in, 0, &img);
        assert_int_equal(img.width, W);
        pm_rgba_free(&img);
        free(j.p);
        free(e.p);
    }
    free(jpg.p);
}

static void test_malformed_exif_means_orientation_one(void **state) {
    (void)state;
    sf_buf jpg = blocks_jpeg(32, 16, grid_colour);
    struct { int be; unsigned o; uint32_t ifd; unsigned type; } bad[] = {
        {1, 6, 0xFFFFFF00u, 3}, /* IFD0 offset far past the data */
        {0, 6, 3, 3},           /* IFD0 inside the TIFF header */
        {1, 9, 8, 3},           /* value out of range */
        {0, 6, 8, 4},           /* LONG instead of SHORT */
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        sf_buf e = sf_exif_payload(bad[k].be, bad[k].o, bad[k].ifd, bad[k].type);
        sf_buf j = sf_jpeg_with_app1(jpg.p, jpg.n, e.p, e.n);
        int got = -1;
        char err[128];
        assert_int_equal(pm_jpeg_exif_orientation(j.p, j.n, &got, err, sizeof err), PM_OK);
        if (got != 1) fprintf(stderr, "case %zu gave orientation %d\n", k, got);
        assert_int_equal(got, 1);
        pm_image in = encoded_image(j.p, j.n);
        pm_rgba img;
        load_ok(&in, 1, &img);
        assert_int_equal(img.width, 32);
        pm_rgba_free(&img);
        free(j.p);
        free(e.p);
    }
    /* Truncated EXIF payloads of every length: never a crash; 1 until the whole
     * Orientation entry (bytes 16..27 of the payload) is there. */
    sf_buf e = sf_exif_payload(1, 6, 8, 3);
    for (size_t n = 0; n < e.n; n++) {
        sf_buf j = sf_jpeg_with_app1(jpg.p, jpg.n, e.p, n);
        int got = -1;
        char err[128];
        assert_int_equal(pm_jpeg_exif_orientation(j.p, j.n, &got, err, sizeof err), PM_OK);
        if (n < 28) assert_int_equal(got, 1);
        else assert_true(got == 1 || got == 6);
        free(j.p);
    }
    /* An entry count claiming 65535 entries in a 30-byte IFD. */
    e.p[14] = 0xFF;
    e.p[15] = 0xFF;
    sf_buf j = sf_jpeg_with_app1(jpg.p, jpg.n, e.p, e.n);
    int got = -1;
    char err[128];
    assert_int_equal(pm_jpeg_exif_orientation(j.p, j.n, &got, err, sizeof err), PM_OK);
    assert_int_equal(got >= 1 && got <= 8, 1);
    free(j.p);
    free(e.p);
    /* No EXIF at all, and not a JPEG. */
    assert_int_equal(pm_jpeg_exif_orientation(jpg.p, jpg.n, &got, err, sizeof err), PM_OK);
    assert_int_equal(got, 1);
    assert_int_equal(pm_jpeg_exif_orientation((const uint8_t *)"abc", 3, &got, err, sizeof err), PM_OK);
    assert_int_equal(got, 1);
    free(jpg.p);
}

static void test_apply_orientation_moves_every_pixel_exactly(void **state) {
    (void)state;
    /* Stored 3x2:  A B C / D E F  (pixel value = letter). Expected upright images
     * written out by hand from the EXIF definitions. */
    static const char *want[9] = {NULL, "ABCDEF", "CBAFED", "FEDCBA", "DEFABC",
                                  "ADBECF", "DAEBFC", "FCEBDA", "CFBEAD"};
    for (int o = 1; o <= 8; o++) {
        pm_rgba img = {.px = malloc(6 * 4), .width = 3, .height = 2, .has_alpha = 1};
        for (int i = 0; i < 6; i++) {
            uint8_t v = (uint8_t)('A' + i);
            uint8_t p[4] = {v, (uint8_t)(v + 100), (uint8_t)(v + 50), (uint8_t)(200 + i)};
            memcpy(img.px + i * 4, p, 4);
        }
        char err[64];
        assert_int_equal(pm_rgba_apply_orientation(&img, o, err, sizeof err), PM_OK);
        assert_int_equal(img.width, o >= 5 ? 2 : 3);
        assert_int_equal(img.height, o >= 5 ? 3 : 2);
        assert_int_equal(img.has_alpha, 1);
        for (int i = 0; i < 6; i++) {
            uint8_t v = (uint8_t)want[o][i];
            assert_int_equal(img.px[i * 4], v);
            assert_int_equal(img.px[i * 4 + 1], v + 100);
            assert_int_equal(img.px[i * 4 + 2], v + 50);
            assert_int_equal(img.px[i * 4 + 3], 200 + (v - 'A'));
        }
        pm_rgba_free(&img);
    }
    /* Out of range: untouched. */
    pm_rgba img = {.px = malloc(4), .width = 1, .height = 1};
    memset(img.px, 7, 4);
    assert_int_equal(pm_rgba_apply_orientation(&img, 9, NULL, 0), PM_OK);
    assert_int_equal(pm_rgba_apply_orientation(&img, 0, NULL, 0), PM_OK);
    assert_int_equal(img.px[0], 7);
    pm_rgba_free(&img);
}

static void test_jpeg_dimensions_come_from_the_frame_header(void **state) {
    (void)state;
    sf_buf jpg = blocks_jpeg(48, 32, grid_colour);
    int w = 0, h = 0;
    assert_int_equal(pm_jpeg_dimensions(jpg.p, jpg.n, &w, &h), 1);
    assert_int_equal(w, 48);
    assert_int_equal(h, 32);
    assert_int_equal(pm_jpeg_is_jpeg(jpg.p, jpg.n), 1);
    assert_int_equal(pm_jpeg_is_jpeg(jpg.p, 1), 0);
    assert_int_equal(pm_jpeg_dimensions(jpg.p, 20, &w, &h), 0);
    free(jpg.p);
}

/* The length field of the marker segment whose FF is at jpg->p[at]. */
static size_t segment_len(const sf_buf *jpg, size_t at) {
    return ((size_t)jpg->p[at + 2] << 8) | jpg->p[at + 3];
}

/* Offset of the FF of the first `marker` segment, walking the segments from after the
 * SOI by their length fields (up to the first scan: the tests' encoders write no junk). */
static size_t segment_at(const sf_buf *jpg, uint8_t marker) {
    size_t at = 2;
    while (at + 4 < jpg->n && !(jpg->p[at] == 0xFF && jpg->p[at + 1] == marker))
        at += 2 + segment_len(jpg, at);
    assert_true(at + 4 < jpg->n);
    return at;
}

static void test_jpeg_huffman_table_with_too_many_codes_is_refused(void **state) {
    (void)state;
    /* stb_image 2.27 would write past its code-length table for this; the wrapper
     * refuses it first. A DHT segment is rebuilt to declare 16*20 = 320 codes. */
    sf_buf jpg = blocks_jpeg(32, 16, grid_colour);
    size_t at = segment_at(&jpg, 0xC4);
    size_t old_len = segment_len(&jpg, at);
    sf_buf bad = {0};
    sf_put(&bad, jpg.p, at);
    sf_u8(&bad, 0xFF);
    sf_u8(&bad, 0xC4);
    sf_u16be(&bad, 2 + 17 + 320);
    sf_u8(&bad, 0x00); /* DC table 0 */
    for (int i = 0; i < 16; i++) sf_u8(&bad, 20);
    for (int i = 0; i < 320; i++) sf_u8(&bad, (unsigned)(i % 12));
    sf_put(&bad, jpg.p + at + 2 + old_len, jpg.n - at - 2 - old_len);
    pm_image in = encoded_image(bad.p, bad.n);
    expect_failure(&in, default_limits(), PM_ERR_DECODE, "Huffman table");
    free(bad.p);
    free(jpg.p);
}

/* ------------------------------------------------------------ JPEG decoding */

/* A JPEG from libjpeg-turbo's own encoder: 4:2:0 colour and one-channel grey are
 * what phones and cameras write, and stb's writer makes only 4:4:4 colour. */
static sf_buf turbo_jpeg(const uint8_t *px, int w, int h, int pixel_format, int subsampling) {
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned char *jpeg = NULL;
    unsigned long size = 0;
    assert_int_equal(tjCompress2(tj, px, w, 0, h, pixel_format, &jpeg, &size, subsampling, 95, 0), 0);
    sf_buf b = {0};
    sf_put(&b, jpeg, size);
    tjFree(jpeg);
    tjDestroy(tj);
    return b;
}

static void test_subsampled_colour_and_grey_jpegs_decode_to_their_colours(void **state) {
    (void)state;
    enum { JW = 64, JH = 48 };
    uint8_t rgb[JW * JH * 3], grey[JW * JH];
    for (int y = 0; y < JH; y++)
        for (int x = 0; x < JW; x++) {
            for (int c = 0; c < 3; c++) rgb[(y * JW + x) * 3 + c] = grid_colour(x / 16, y / 16, c);
            grey[y * JW + x] = (uint8_t)(20 + 50 * ((x / 16 + y / 16) % 5));
        }
    sf_buf colour = turbo_jpeg(rgb, JW, JH, TJPF_RGB, TJSAMP_420);
    sf_buf mono = turbo_jpeg(grey, JW, JH, TJPF_GRAY, TJSAMP_GRAY);
    char err[256] = "";
    pm_rgba a, b;
    pm_image in = encoded_image(colour.p, colour.n);
    assert_int_equal(load(&in, default_limits(), 1, &a, err), PM_OK);
    in = encoded_image(mono.p, mono.n);
    assert_int_equal(load(&in, default_limits(), 1, &b, err), PM_OK);
    assert_int_equal(a.width, JW);
    assert_int_equal(a.height, JH);
    assert_int_equal(b.width, JW);
    assert_int_equal(a.has_alpha, 0);
    assert_int_equal(b.has_alpha, 0);
    /* Block centres: away from the edges that chroma subsampling blurs. */
    for (int by = 0; by < JH / 16; by++)
        for (int bx = 0; bx < JW / 16; bx++) {
            const uint8_t *p = px_at(&a, bx * 16 + 8, by * 16 + 8);
            for (int c = 0; c < 3; c++) assert_true(near(p[c], grid_colour(bx, by, c)));
            assert_int_equal(p[3], 255);
            const uint8_t *q = px_at(&b, bx * 16 + 8, by * 16 + 8);
            int want = 20 + 50 * ((bx + by) % 5);
            assert_true(abs(q[0] - want) <= 3);
            assert_int_equal(q[0], q[1]);
            assert_int_equal(q[1], q[2]);
            assert_int_equal(q[3], 255);
        }
    pm_rgba_free(&a);
    pm_rgba_free(&b);
    sf_free(&colour);
    sf_free(&mono);
}

static void test_jpeg_with_damaged_scan_data_still_decodes(void **state) {
    (void)state;
    /* libjpeg reports damaged entropy data as a warning ("Corrupt JPEG data: N
     * extraneous bytes before marker") and decodes the whole image, garbled after
     * the damage, as browsers and stb do; the library accepts it too rather than
     * refusing a photo a viewer shows. */
    sf_buf jpg = blocks_jpeg(48, 32, grid_colour);
    size_t sos = segment_at(&jpg, 0xDA);
    size_t scan = sos + 2 + segment_len(&jpg, sos);
    size_t at = scan + (jpg.n - 2 - scan) * 3 / 4; /* the last block row */
    while (jpg.p[at] == 0xFF || jpg.p[at] == 0xAA || jpg.p[at - 1] == 0xFF) at++;
    jpg.p[at] ^= 0x55;
    pm_image in = encoded_image(jpg.p, jpg.n);
    pm_rgba out;
    char err[256] = "";
    pm_code rc = load(&in, default_limits(), 1, &out, err);
    if (rc != PM_OK) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, PM_OK);
    assert_int_equal(out.width, 48);
    assert_int_equal(out.height, 32);
    /* The first block row lies before the damage. */
    for (int bx = 0; bx < 3; bx++)
        for (int c = 0; c < 3; c++) assert_true(near(px_at(&out, bx * 16 + 8, 8)[c], grid_colour(bx, 0, c)));
    pm_rgba_free(&out);
    free(jpg.p);
}

static void test_jpeg_the_decoder_cannot_read_is_refused_with_its_reason(void **state) {
    (void)state;
    /* 12-bit samples (SOF precision byte) are outside an 8-bit decoder. */
    sf_buf jpg = blocks_jpeg(32, 16, grid_colour);
    jpg.p[segment_at(&jpg, 0xC0) + 4] = 12;
    pm_image in = encoded_image(jpg.p, jpg.n);
    expect_failure(&in, default_limits(), PM_ERR_DECODE, "precision");
    free(jpg.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_formats_with_padded_stride_convert_exactly),
        cmocka_unit_test(test_raw_stride_zero_means_tight_rows),
        cmocka_unit_test(test_raw_bad_arguments_are_refused),
        cmocka_unit_test(test_raw_pixel_limit_is_inclusive_and_named_in_the_message),
        cmocka_unit_test(test_png_bmp_tga_decode_exactly_for_every_channel_count),
        cmocka_unit_test(test_sixteen_bit_png_keeps_the_high_byte),
        cmocka_unit_test(test_gray_alpha_png_and_rgb_trns_colour_key_give_alpha),
        cmocka_unit_test(test_gif_decodes_its_first_frame),
        cmocka_unit_test(test_truncated_png_is_a_decode_error),
        cmocka_unit_test(test_truncated_jpeg_is_a_decode_error_not_grey),
        cmocka_unit_test(test_random_bytes_empty_and_null_buffers),
        cmocka_unit_test(test_huge_png_header_is_refused_from_the_header_alone),
        cmocka_unit_test(test_encoded_pixel_limit_just_over_and_at),
        cmocka_unit_test(test_encoded_byte_limit),
        cmocka_unit_test(test_zlib_bomb_in_a_small_png_fails_without_growing),
        cmocka_unit_test(test_exif_orientations_one_to_eight_turn_jpegs_upright),
        cmocka_unit_test(test_malformed_exif_means_orientation_one),
        cmocka_unit_test(test_apply_orientation_moves_every_pixel_exactly),
        cmocka_unit_test(test_jpeg_dimensions_come_from_the_frame_header),
        cmocka_unit_test(test_jpeg_huffman_table_with_too_many_codes_is_refused),
        cmocka_unit_test(test_subsampled_colour_and_grey_jpegs_decode_to_their_colours),
        cmocka_unit_test(test_jpeg_with_damaged_scan_data_still_decodes),
        cmocka_unit_test(test_jpeg_the_decoder_cannot_read_is_refused_with_its_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
