/* Bad and unusual images through the public API (pm_remove_bg on red32.pt), each
 * with its documented code, and the regression tests for what fuzzing found
 * (docs/fuzzing.md). Every input is generated here (tests/fuzz/seed_formats.h).
 * The decoder-level versions of most cases live in tests/image_decode.c. */
#include <stdint.h>

#include "test_util.h"
#include "image.h"
#include "seed_formats.h"

#include "stb_write.h"


static sf_buf png_of(int w, int h, int comp) {
    uint8_t *px = malloc((size_t)w * h * comp);
    for (int i = 0; i < w * h * comp; i++) px[i] = (uint8_t)(i * 7 + 3);
    sf_buf b = {0};
    assert_true(stbi_write_png_to_func(sf_stb_sink, &b, w, h, comp, px, w * comp));
    free(px);
    return b;
}

static pm_ctx *ctx_with_limit(uint64_t max_pixels) {
    pm_params p;
    pm_params_init(&p);
    p.model_path = model_path("red32.pt");
    p.device = "cpu";
    p.cpu_threads = 1;
    p.max_pixels = max_pixels;
    pm_ctx *ctx = NULL;
    assert_int_equal(pm_open(&p, &ctx), PM_OK);
    tune(ctx, PM_TUNE_WARMUP_MIN_RUNS, 3);
    tune(ctx, PM_TUNE_WARMUP_MAX_RUNS, 4);
    return ctx;
}

static void expect_code(pm_ctx *ctx, const pm_image *img, pm_code want, const char *what) {
    pm_output *out = (pm_output *)0x1;
    pm_code rc = pm_remove_bg(ctx, img, NULL, &out);
    if (rc != want) fprintf(stderr, "%s: got %d (%s), want %d\n", what, rc, pm_errmsg(ctx), want);
    assert_int_equal(rc, want);
    if (want == PM_OK) {
        assert_non_null(out);
        pm_output_free(out);
    } else {
        assert_null(out);
    }
}

static pm_output *expect_ok(pm_ctx *ctx, const pm_image *img) {
    pm_output *out = NULL;
    pm_code rc = pm_remove_bg(ctx, img, NULL, &out);
    if (rc != PM_OK) fprintf(stderr, "pm_remove_bg: %s\n", pm_errmsg(ctx));
    assert_int_equal(rc, PM_OK);
    return out;
}

static void test_broken_images_fail_with_their_documented_codes(void **state) {
    (void)state;
    pm_ctx *ctx = ctx_with_limit(100000000ull);
    uint8_t junk[512];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 131 + 7);
    pm_image img = encoded_image(junk, 0);
    expect_code(ctx, &img, PM_ERR_INVALID_ARGUMENT, "empty buffer");
    img = encoded_image(junk, sizeof junk);
    expect_code(ctx, &img, PM_ERR_DECODE, "random bytes");
    img = encoded_image(junk, 1);
    expect_code(ctx, &img, PM_ERR_DECODE, "one byte");

    sf_buf jpg = sf_jpeg_cmyk(64, 64, 1);
    img = encoded_image(jpg.p, jpg.n - 10); /* cut inside the scan: no EOI */
    expect_code(ctx, &img, PM_ERR_DECODE, "truncated JPEG");
    img = encoded_image(jpg.p, 40); /* cut inside the header */
    expect_code(ctx, &img, PM_ERR_DECODE, "JPEG header only");
    sf_free(&jpg);

    sf_buf png = png_of(40, 30, 3);
    img = encoded_image(png.p, png.n / 2);
    expect_code(ctx, &img, PM_ERR_DECODE, "truncated PNG");
    img = encoded_image(png.p, 16);
    expect_code(ctx, &img, PM_ERR_DECODE, "PNG signature only");
    sf_free(&png);

    /* A 65535x65535 header on a one-row body: refused from the header alone. */
    uint8_t row[2] = {0, 0};
    sf_buf huge = sf_png(65535, 65535, 8, 0, row, sizeof row, NULL, 0, NULL, 0);
    img = encoded_image(huge.p, huge.n);
    expect_code(ctx, &img, PM_ERR_LIMIT, "65535x65535 PNG");
    assert_non_null(strstr(pm_errmsg(ctx), "65535x65535"));
    sf_free(&huge);

    /* Raw input: zero width, zero height, negative sides, stride under a row. */
    uint8_t px[8 * 8 * 4] = {0};
    pm_image raw = raw_image(PM_FORMAT_RGB, px, 0, 8, 0, sizeof px);
    expect_code(ctx, &raw, PM_ERR_INVALID_ARGUMENT, "zero width");
    raw = raw_image(PM_FORMAT_RGB, px, 8, 0, 0, sizeof px);
    expect_code(ctx, &raw, PM_ERR_INVALID_ARGUMENT, "zero height");
    raw = raw_image(PM_FORMAT_RGBA, px, -8, 8, 0, sizeof px);
    expect_code(ctx, &raw, PM_ERR_INVALID_ARGUMENT, "negative width");
    raw = raw_image(PM_FORMAT_RGB, px, 8, 8, 23, sizeof px);
    expect_code(ctx, &raw, PM_ERR_INVALID_ARGUMENT, "stride one byte short of a row");
    assert_non_null(strstr(pm_errmsg(ctx), "stride"));
    raw = raw_image(PM_FORMAT_RGB, px, 8, 8, 24, 8 * 24 - 1);
    expect_code(ctx, &raw, PM_ERR_INVALID_ARGUMENT, "buffer one byte short");
    raw = raw_image(PM_FORMAT_GRAY, px, 8, 8, SIZE_MAX / 4, sizeof px);
    expect_code(ctx, &raw, PM_ERR_INVALID_ARGUMENT, "stride overflowing the address space");
    raw = raw_image(PM_FORMAT_RGB, px, 8, 8, 24, 8 * 24);
    expect_code(ctx, &raw, PM_OK, "exact buffer");
    pm_close(ctx);
}

static void test_pixel_limit_just_over_is_a_limit_error_for_raw_and_encoded(void **state) {
    (void)state;
    pm_ctx *ctx = ctx_with_limit(100);
    sf_buf at = png_of(10, 10, 4), over = png_of(101, 1, 4);
    pm_image img = encoded_image(at.p, at.n);
    expect_code(ctx, &img, PM_OK, "PNG at the limit");
    img = encoded_image(over.p, over.n);
    expect_code(ctx, &img, PM_ERR_LIMIT, "PNG one pixel over");
    uint8_t px[101 * 3] = {0};
    pm_image raw = raw_image(PM_FORMAT_RGB, px, 101, 1, 0, sizeof px);
    expect_code(ctx, &raw, PM_ERR_LIMIT, "raw one pixel over");
    raw = raw_image(PM_FORMAT_RGB, px, 100, 1, 0, sizeof px);
    expect_code(ctx, &raw, PM_OK, "raw at the limit");
    sf_free(&at);
    sf_free(&over);
    pm_close(ctx);
}

static void test_unusual_but_valid_images_are_decoded(void **state) {
    (void)state;
    pm_ctx *ctx = ctx_with_limit(100000000ull);
    /* CMYK JPEG (Adobe transform 0): all samples 128, so R = G = B = 128*128/255. */
    sf_buf cmyk = sf_jpeg_cmyk(24, 16, 1);
    pm_image img = encoded_image(cmyk.p, cmyk.n);
    pm_output *out = expect_ok(ctx, &img);
    assert_int_equal(out->width, 24);
    assert_int_equal(out->height, 16);
    for (int i = 0; i < 24 * 16; i++) {
        assert_true(abs(out->data[i * 4] - 64) <= 1);
        assert_int_equal(out->data[i * 4], out->data[i * 4 + 2]);
    }
    pm_output_free(out);
    sf_free(&cmyk);

    /* 16-bit PNGs of every colour type keep the high byte. */
    static const int types[] = {0, 2, 4, 6};
    for (size_t t = 0; t < 4; t++) {
        sf_buf p16 = sf_png16(5, 3, types[t]);
        img = encoded_image(p16.p, p16.n);
        out = expect_ok(ctx, &img);
        assert_int_equal(out->width, 5);
        assert_int_equal(out->data[(1 * 5 + 2) * 4], ((2 * 4099 + 1 * 257) & 0xFFFF) >> 8);
        pm_output_free(out);
        sf_free(&p16);
    }

    /* Gray + alpha: the input alpha is multiplied into the matte. */
    sf_buf ga = png_of(32, 32, 2); /* 32x32: red32's input size, so no resampling */
    img = encoded_image(ga.p, ga.n);
    out = expect_ok(ctx, &img);
    for (int i = 0; i < 32 * 32; i++) {
        uint8_t gray = (uint8_t)(i * 2 * 7 + 3), alpha = (uint8_t)((i * 2 + 1) * 7 + 3);
        assert_int_equal(out->data[i * 4], gray);
        int want = (gray * alpha + 127) / 255; /* matte = red = gray, times alpha */
        assert_true(abs(out->data[i * 4 + 3] - want) <= 1);
    }
    pm_output_free(out);
    sf_free(&ga);

    /* Animated GIF: the first frame (index (x+y) % 4, index 0 transparent). */
    sf_buf gif = sf_gif_animated(32, 32, 3);
    img = encoded_image(gif.p, gif.n);
    out = expect_ok(ctx, &img);
    assert_int_equal(out->width, 32);
    assert_int_equal(out->height, 32);
    assert_int_equal(out->data[(0 * 32 + 1) * 4], 255);     /* index 1: red */
    assert_int_equal(out->data[(0 * 32 + 1) * 4 + 3], 255); /* red 255: opaque matte */
    assert_int_equal(out->data[(0 * 32 + 2) * 4 + 3], 0);   /* index 2: green, red 0 */
    assert_int_equal(out->data[(0 * 32 + 0) * 4 + 3], 0);   /* index 0: transparent */
    assert_int_equal(out->data[(1 * 32 + 0) * 4 + 3], 255); /* (0,1): index 1 again */
    pm_output_free(out);
    sf_free(&gif);

    /* EXIF whose IFD0 offset points far past the data: orientation 1, no rotation. */
    sf_buf j = sf_jpeg_cmyk(24, 16, 1);
    sf_buf e = sf_exif_payload(1, 6, 0xFFFFFF00u, 3);
    sf_buf je = sf_jpeg_with_app1(j.p, j.n, e.p, e.n);
    img = encoded_image(je.p, je.n);
    out = expect_ok(ctx, &img);
    assert_int_equal(out->width, 24);
    assert_int_equal(out->height, 16);
    pm_output_free(out);
    sf_free(&je);
    sf_free(&e);
    sf_free(&j);
    pm_close(ctx);
}

/* ---- regressions found by fuzzing (docs/fuzzing.md) ---- */

/* fuzz_remove_bg, finding 1: a 16-bit binary PPM (maxval 510) made stb_image 2.27
 * convert channels with its 8-bit converter and then read the result as 16-bit:
 * heap-buffer-overflow READ in stbi__convert_16_to_8. The fuzzer's input was
 * "P6\n3 2\n510\n" + 19 bytes (the pixels cut short). stb 2.27 also reads 16-bit
 * PNM samples in the wrong byte order, so 16-bit PNM is refused as unsupported;
 * 8-bit PNM decodes exactly. */
static void test_sixteen_bit_pnm_is_refused_without_reading_past_the_buffer(void **state) {
    (void)state;
    pm_ctx *ctx = ctx_with_limit(100000000ull);
    sf_buf crash = {0};
    sf_put(&crash, "P6\n3 2\n510\n", 11);
    for (int i = 0; i < 13; i++) sf_u8(&crash, 0xFF);
    static const uint8_t tail[6] = {0xa8, 0xb6, 0xc4, 0xd2, 0xe0, 0xee};
    sf_put(&crash, tail, sizeof tail);
    pm_image img = encoded_image(crash.p, crash.n);
    expect_code(ctx, &img, PM_ERR_DECODE, "the fuzzer's 16-bit PPM");
    assert_non_null(strstr(pm_errmsg(ctx), "16-bit PNM"));
    sf_free(&crash);

    for (int ppm = 0; ppm <= 1; ppm++) {
        int ch = ppm ? 3 : 1;
        sf_buf b = {0};
        const char *head = ppm ? "P6\n4 3\n65535\n" : "P5\n# sixteen\n4 3 256\n";
        sf_put(&b, head, strlen(head));
        for (int i = 0; i < 4 * 3 * ch; i++) sf_u16be(&b, (unsigned)(i * 700 + 77));
        img = encoded_image(b.p, b.n);
        expect_code(ctx, &img, PM_ERR_DECODE, head);
        sf_free(&b);
        /* The same picture in 8 bits decodes exactly. */
        head = ppm ? "P6\n4 3\n255\n" : "P5\n# eight\n4 3 255\n";
        sf_put(&b, head, strlen(head));
        for (int i = 0; i < 4 * 3 * ch; i++) sf_u8(&b, (unsigned)(i * 7 + 1));
        img = encoded_image(b.p, b.n);
        pm_output *out = expect_ok(ctx, &img);
        assert_int_equal(out->width, 4);
        assert_int_equal(out->height, 3);
        for (int p = 0; p < 12; p++) {
            const uint8_t *o = out->data + p * 4;
            assert_int_equal(o[0], p * ch * 7 + 1);
            assert_int_equal(o[2], (p * ch + (ppm ? 2 : 0)) * 7 + 1);
        }
        pm_output_free(out);
        sf_free(&b);
    }
    pm_close(ctx);
}

/* fuzzing, finding 2: a truncated uncompressed TGA (and PNM) came back with the
 * missing rows unwritten: stale heap bytes handed to the caller. The decoder's
 * buffers are now zeroed, so the missing part is black. The heap is primed with a
 * freed buffer full of 0xAB of the same size first, where a plain malloc would
 * land. */
static void test_truncated_tga_and_pnm_decode_missing_pixels_as_zero_not_stale_heap(void **state) {
    (void)state;
    enum { W = 20, H = 10 };
    uint8_t *px = malloc(W * H * 3);
    memset(px, 200, W * H * 3);
    sf_buf tga = {0};
    stbi_write_tga_with_rle = 0;
    assert_true(stbi_write_tga_to_func(sf_stb_sink, &tga, W, H, 3, px));
    free(px);
    sf_buf ppm = {0};
    sf_put(&ppm, "P6\n20 10\n255\n", 13);
    for (int i = 0; i < W * H * 3; i++) sf_u8(&ppm, 200);

    const sf_buf *files[2] = {&tga, &ppm};
    for (int f = 0; f < 2; f++) {
        size_t keep = files[f]->n - (size_t)(W * 3 * 4); /* the last 4 rows missing */
        for (size_t size = W * H * 4; size <= W * H * 4 + 64; size += 8) {
            void *prime = malloc(size);
            memset(prime, 0xAB, size);
            free(prime);
        }
        pm_image img = encoded_image(files[f]->p, keep);
        pm_rgba out;
        char err[256];
        pm_limits lim = {100000000ull, 1ull << 30};
        pm_code rc = pm_image_load(&img, &lim, 0, &out, err, sizeof err);
        if (rc != PM_OK) { /* refusing a truncated file is fine too */
            assert_int_equal(rc, PM_ERR_DECODE);
            continue;
        }
        assert_int_equal(out.width, W);
        int stale = 0;
        for (int i = 0; i < W * H; i++)
            for (int c = 0; c < 3; c++) {
                uint8_t v = out.px[i * 4 + c];
                if (v != 200 && v != 0) stale++;
            }
        if (stale) fprintf(stderr, "file %d: %d stale bytes\n", f, stale);
        assert_int_equal(stale, 0);
        pm_rgba_free(&out);
    }
    sf_free(&tga);
    sf_free(&ppm);
}

/* fuzz_image_load, finding 3: stb_image 2.27 writes past its Huffman size table
 * when a DHT declares more than 256 codes; the library's pre-check missed three
 * spellings that stb still reads as JPEG: fill bytes before the SOI (FF FF D8,
 * reaching stbi_info, the fuzzer's input), junk between segments, and a DHT cut off
 * by the end of the data. Each must be refused by the check, by name. */
static void bad_dht(sf_buf *b, int truncated) {
    sf_u16be(b, 0xFFC4);
    sf_u16be(b, 2 + 17 + 320);
    sf_u8(b, 0x10);
    for (int i = 0; i < 16; i++) sf_u8(b, 20); /* 16 * 20 = 320 codes > 256 */
    if (!truncated)
        for (int i = 0; i < 320; i++) sf_u8(b, (unsigned)(i % 200));
}

static void test_oversized_huffman_tables_are_refused_however_the_jpeg_is_spelled(void **state) {
    (void)state;
    sf_buf good = sf_jpeg_cmyk(16, 8, 1); /* SOI, then the 16-byte APP14 segment */
    sf_buf cases[3] = {{0}, {0}, {0}};
    /* FF FF D8: a fill byte before SOI, then the bad table, then the real file. */
    sf_put(&cases[0], "\xFF\xFF\xD8", 3);
    bad_dht(&cases[0], 0);
    sf_put(&cases[0], good.p + 2, good.n - 2);
    /* Fill byte, junk between two segments, then the bad table (the fuzzer's input
     * had both). */
    sf_put(&cases[1], "\xFF\xFF\xD8", 3);
    sf_put(&cases[1], good.p + 2, 16); /* the APP14 segment */
    sf_put(&cases[1], "\x00\x11\x22\x33", 4);
    bad_dht(&cases[1], 0);
    sf_put(&cases[1], good.p + 18, good.n - 18);
    /* A valid file with a bad table cut off by the end of the data (no EOI: only
     * the header readers see it). */
    sf_put(&cases[2], good.p, good.n - 2);
    bad_dht(&cases[2], 1);
    for (int k = 0; k < 3; k++) {
        pm_image img = encoded_image(cases[k].p, cases[k].n);
        pm_rgba out;
        char err[256] = "";
        pm_limits lim = {100000000ull, 1ull << 30};
        pm_code rc = pm_image_load(&img, &lim, 1, &out, err, sizeof err);
        if (rc != PM_ERR_DECODE || !strstr(err, "Huffman")) fprintf(stderr, "case %d: %d %s\n", k, rc, err);
        assert_int_equal(rc, PM_ERR_DECODE);
        if (k < 2) assert_non_null(strstr(err, "Huffman"));
        assert_null(out.px);
        sf_free(&cases[k]);
    }
    /* The good file still decodes, with or without a leading fill byte. */
    pm_image img = encoded_image(good.p, good.n);
    pm_rgba out;
    char err[256];
    assert_int_equal(pm_image_load(&img, NULL, 1, &out, err, sizeof err), PM_OK);
    pm_rgba_free(&out);
    sf_free(&good);
}

/* fuzz_image_load, finding 5 (a later run): stb resynchronises on corrupt entropy
 * data differently from the pre-check's segment walk (an FF FF run inside the scan
 * made the walk read a bogus segment length), then took a DHT the walk had skipped
 * and overflowed its table. Every FF C4 after the first scan header, up to EOI, is
 * now checked as a DHT; FF C4 cannot occur in valid entropy-coded data. */
static void test_a_bad_huffman_table_hidden_behind_corrupt_scan_data_is_refused(void **state) {
    (void)state;
    sf_buf good = sf_jpeg_cmyk(16, 8, 1);
    size_t sos = 0;
    for (size_t i = 2; i + 3 < good.n; i++)
        if (good.p[i] == 0xFF && good.p[i + 1] == 0xDA) { sos = i; break; }
    assert_true(sos > 0);
    size_t scan = sos + 2 + (((size_t)good.p[sos + 2] << 8) | good.p[sos + 3]);
    sf_buf bad = {0};
    sf_put(&bad, good.p, scan);
    sf_put(&bad, "\xFF\xFF\x00\x40", 4); /* the walk: an FF run, "marker" 00, length 64 */
    bad_dht(&bad, 0);
    sf_put(&bad, good.p + scan, good.n - scan);
    pm_image img = encoded_image(bad.p, bad.n);
    pm_rgba out;
    char err[256] = "";
    pm_limits lim = {100000000ull, 1ull << 30};
    assert_int_equal(pm_image_load(&img, &lim, 1, &out, err, sizeof err), PM_ERR_DECODE);
    assert_non_null(strstr(err, "Huffman"));
    assert_null(out.px);
    /* The same bytes after the end-of-image marker (appended data, as phones append
     * motion-photo videos) are not looked at: the image still decodes. */
    sf_buf tail = {0};
    sf_put(&tail, good.p, good.n);
    bad_dht(&tail, 0);
    img = encoded_image(tail.p, tail.n);
    assert_int_equal(pm_image_load(&img, &lim, 1, &out, err, sizeof err), PM_OK);
    pm_rgba_free(&out);
    sf_free(&tail);
    sf_free(&bad);
    sf_free(&good);
}

/* fuzz_image_load, finding 6: a zero-length first IDAT chunk (legal PNG) makes
 * stb_image 2.27 compute NULL + 0 (UBSan "applying zero offset to null pointer").
 * Harmless, so that check is off for stb's unit (lib/CMakeLists.txt); the file must
 * decode, pixel-exact, including under the sanitizer build that runs this test. */
static void test_a_png_whose_first_idat_chunk_is_empty_decodes_exactly(void **state) {
    (void)state;
    enum { W = 3, H = 2 };
    uint8_t rows[H * (1 + W)];
    for (int y = 0; y < H; y++) {
        rows[y * (1 + W)] = 0; /* filter: none */
        for (int x = 0; x < W; x++) rows[y * (1 + W) + 1 + x] = (uint8_t)(40 * y + 10 * x + 5);
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t ihdr[13] = {0, 0, 0, W, 0, 0, 0, H, 8, 0, 0, 0, 0};
    sf_buf png = {0};
    sf_put(&png, sig, 8);
    sf_png_chunk(&png, "IHDR", ihdr, 13);
    sf_png_chunk(&png, "IDAT", NULL, 0);
    sf_buf z = sf_zlib_stored(rows, sizeof rows);
    sf_png_chunk(&png, "IDAT", z.p, z.n);
    sf_png_chunk(&png, "IEND", NULL, 0);
    pm_image img = encoded_image(png.p, png.n);
    pm_rgba out;
    char err[256] = "";
    pm_limits lim = {100000000ull, 1ull << 30};
    assert_int_equal(pm_image_load(&img, &lim, 1, &out, err, sizeof err), PM_OK);
    assert_int_equal(out.width, W);
    assert_int_equal(out.height, H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *px = out.px + ((size_t)y * W + x) * 4;
            uint8_t v = (uint8_t)(40 * y + 10 * x + 5);
            assert_int_equal(px[0], v);
            assert_int_equal(px[1], v);
            assert_int_equal(px[2], v);
            assert_int_equal(px[3], 255);
        }
    pm_rgba_free(&out);
    sf_free(&z);
    sf_free(&png);
}

/* fuzz_remove_bg, finding 4: stb_image 2.27 reads PNM header numbers into an int
 * unchecked, so a 10-digit width was signed overflow (UBSan). The fuzzer's input
 * was "P6\n" + 99 '3's + " 2\n255\n" + bytes. Now refused before stb, naming PNM;
 * 9 digits still parse (and then fail stb's own size check). */
static void test_pnm_header_numbers_too_long_for_an_int_are_refused(void **state) {
    (void)state;
    pm_ctx *ctx = ctx_with_limit(100000000ull);
    sf_buf b = {0};
    sf_put(&b, "P6\n", 3);
    for (int i = 0; i < 99; i++) sf_u8(&b, '3');
    sf_put(&b, " 2\n255\n", 7);
    for (int i = 0; i < 16; i++) sf_u8(&b, 0xFF);
    pm_image img = encoded_image(b.p, b.n);
    expect_code(ctx, &img, PM_ERR_DECODE, "99-digit PNM width");
    assert_non_null(strstr(pm_errmsg(ctx), "PNM"));
    sf_free(&b);
    static const char *heads[] = {"P5\n# c\n4 3\n65535000000\n", "P5 4 #x\n 2147483648 255\n",
                                  "P6\n1234567890 1\n255\n"};
    for (size_t k = 0; k < 3; k++) {
        sf_put(&b, heads[k], strlen(heads[k]));
        for (int i = 0; i < 64; i++) sf_u8(&b, 7);
        img = encoded_image(b.p, b.n);
        expect_code(ctx, &img, PM_ERR_DECODE, heads[k]);
        sf_free(&b);
    }
    sf_put(&b, "P5\n999999999 1\n255\n", 19);
    img = encoded_image(b.p, b.n);
    pm_output *out = (pm_output *)0x1;
    pm_code rc = pm_remove_bg(ctx, &img, NULL, &out);
    assert_true(rc == PM_ERR_LIMIT || rc == PM_ERR_DECODE);
    assert_null(out);
    sf_free(&b);
    pm_close(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broken_images_fail_with_their_documented_codes),
        cmocka_unit_test(test_pixel_limit_just_over_is_a_limit_error_for_raw_and_encoded),
        cmocka_unit_test(test_unusual_but_valid_images_are_decoded),
        cmocka_unit_test(test_sixteen_bit_pnm_is_refused_without_reading_past_the_buffer),
        cmocka_unit_test(test_truncated_tga_and_pnm_decode_missing_pixels_as_zero_not_stale_heap),
        cmocka_unit_test(test_oversized_huffman_tables_are_refused_however_the_jpeg_is_spelled),
        cmocka_unit_test(test_a_bad_huffman_table_hidden_behind_corrupt_scan_data_is_refused),
        cmocka_unit_test(test_pnm_header_numbers_too_long_for_an_int_are_refused),
        cmocka_unit_test(test_a_png_whose_first_idat_chunk_is_empty_decodes_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
