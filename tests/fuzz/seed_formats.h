/* seed_formats.h - writers for small, valid (or deliberately odd) encoded images,
 * built byte by byte: the fuzz seed generator (make_fuzz_seeds.c) and the C tests
 * (tests/api_bad_inputs.c, tests/image_decode.c) use them, so no binary test file is
 * ever committed.
 *
 * Formats stb_image_write cannot produce are written here: 16-bit and palette PNGs
 * (zlib stored blocks), animated GIFs, CMYK JPEGs (baseline, all-zero coefficients),
 * EXIF APP1 segments. Header-only (static functions); link nothing. */
#ifndef PM_SEED_FORMATS_H
#define PM_SEED_FORMATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct sf_buf {
    uint8_t *p;
    size_t n, cap;
} sf_buf;

static inline void sf_put(sf_buf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) abort();
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}
static inline void sf_u8(sf_buf *b, unsigned v) { uint8_t c = (uint8_t)v; sf_put(b, &c, 1); }
static inline void sf_u16be(sf_buf *b, unsigned v) { sf_u8(b, (v >> 8) & 0xFF); sf_u8(b, v & 0xFF); }
static inline void sf_u16le(sf_buf *b, unsigned v) { sf_u8(b, v & 0xFF); sf_u8(b, (v >> 8) & 0xFF); }
static inline void sf_u32be(sf_buf *b, uint32_t v) { sf_u16be(b, v >> 16); sf_u16be(b, v & 0xFFFF); }
static inline void sf_u32le(sf_buf *b, uint32_t v) { sf_u16le(b, v & 0xFFFF); sf_u16le(b, v >> 16); }
static inline void sf_free(sf_buf *b) { free(b->p); memset(b, 0, sizeof *b); }
/* stb_image_write's output callback (stbi_write_*_to_func) appending to an sf_buf. */
static inline void sf_stb_sink(void *ctx, void *data, int size) { sf_put(ctx, data, (size_t)size); }

/* ------------------------------------------------------------------------ PNG */

static inline uint32_t sf_crc32(const uint8_t *p, size_t n, uint32_t crc) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static inline void sf_png_chunk(sf_buf *b, const char *type, const uint8_t *data, size_t n) {
    sf_u32be(b, (uint32_t)n);
    size_t at = b->n;
    sf_put(b, type, 4);
    sf_put(b, data, n);
    sf_u32be(b, sf_crc32(b->p + at, n + 4, 0));
}

/* zlib stream of stored (uncompressed) deflate blocks. */
static inline sf_buf sf_zlib_stored(const uint8_t *raw, size_t n) {
    sf_buf z = {0};
    sf_u8(&z, 0x78);
    sf_u8(&z, 0x01);
    size_t at = 0;
    do {
        size_t len = n - at > 65535 ? 65535 : n - at;
        sf_u8(&z, at + len == n ? 1 : 0);
        sf_u16le(&z, (unsigned)len);
        sf_u16le(&z, (unsigned)(~len & 0xFFFF));
        sf_put(&z, raw + at, len);
        at += len;
    } while (at < n);
    uint32_t a = 1, s = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + raw[i]) % 65521u;
        s = (s + a) % 65521u;
    }
    sf_u32be(&z, (s << 16) | a);
    return z;
}

/* A PNG of the given depth and colour type; rows are the filtered scanlines (a
 * filter byte then the row's bytes). palette/trns may be NULL. */
static inline sf_buf sf_png(uint32_t w, uint32_t h, int depth, int color_type, const uint8_t *rows,
                     size_t rows_len, const uint8_t *palette, size_t palette_len,
                     const uint8_t *trns, size_t trns_len) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    sf_buf b = {0};
    sf_put(&b, sig, 8);
    uint8_t ihdr[13];
    for (int i = 0; i < 4; i++) {
        ihdr[i] = (uint8_t)(w >> (24 - 8 * i));
        ihdr[4 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)color_type;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    sf_png_chunk(&b, "IHDR", ihdr, 13);
    if (palette) sf_png_chunk(&b, "PLTE", palette, palette_len);
    if (trns) sf_png_chunk(&b, "tRNS", trns, trns_len);
    sf_buf z = sf_zlib_stored(rows, rows_len);
    sf_png_chunk(&b, "IDAT", z.p, z.n);
    sf_free(&z);
    sf_png_chunk(&b, "IEND", NULL, 0);
    return b;
}

/* A 16-bit PNG (colour type 0 gray, 2 RGB, 4 gray+alpha, 6 RGBA): sample value
 * of channel c at (x, y) is (x*4099 + y*257 + c*9001) & 0xFFFF. */
static inline sf_buf sf_png16(uint32_t w, uint32_t h, int color_type) {
    int ch = color_type == 0 ? 1 : color_type == 2 ? 3 : color_type == 4 ? 2 : 4;
    size_t row = 1 + (size_t)w * ch * 2;
    uint8_t *rows = calloc(row * h, 1);
    if (rows == NULL) abort();
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                unsigned v = (x * 4099u + y * 257u + (unsigned)c * 9001u) & 0xFFFF;
                uint8_t *p = rows + y * row + 1 + ((size_t)x * ch + c) * 2;
                p[0] = (uint8_t)(v >> 8);
                p[1] = (uint8_t)v;
            }
    sf_buf b = sf_png(w, h, 16, color_type, rows, row * h, NULL, 0, NULL, 0);
    free(rows);
    return b;
}

/* An 8-bit palette PNG with 4 colours; index (x + y) % 4; entry 0 transparent. */
static inline sf_buf sf_png_palette(uint32_t w, uint32_t h) {
    static const uint8_t pal[12] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255};
    static const uint8_t trns[1] = {0};
    size_t row = 1 + w;
    uint8_t *rows = calloc(row * h, 1);
    if (rows == NULL) abort();
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) rows[y * row + 1 + x] = (uint8_t)((x + y) % 4);
    sf_buf b = sf_png(w, h, 8, 3, rows, row * h, pal, sizeof pal, trns, sizeof trns);
    free(rows);
    return b;
}

/* ------------------------------------------------------------------------ GIF */

/* Appends one 3-bit LZW code, least significant bit first. */
static inline void sf_gif_code(sf_buf *bits, uint32_t *acc, int *nbits, unsigned code) {
    *acc |= (uint32_t)code << *nbits;
    *nbits += 3;
    while (*nbits >= 8) {
        sf_u8(bits, *acc & 0xFF);
        *acc >>= 8;
        *nbits -= 8;
    }
}

/* One image descriptor + LZW data for 2-bit indices, codes kept at 3 bits by
 * sending a clear code before every two literals (each pair adds one table entry,
 * never enough to widen the codes). */
static inline void sf_gif_frame(sf_buf *b, int w, int h, const uint8_t *idx) {
    sf_u8(b, 0x2C);
    sf_u16le(b, 0);
    sf_u16le(b, 0);
    sf_u16le(b, (unsigned)w);
    sf_u16le(b, (unsigned)h);
    sf_u8(b, 0);
    sf_u8(b, 2);
    sf_buf bits = {0};
    uint32_t acc = 0;
    int nbits = 0;
    for (int i = 0; i < w * h; i += 2) {
        sf_gif_code(&bits, &acc, &nbits, 4);
        sf_gif_code(&bits, &acc, &nbits, idx[i]);
        if (i + 1 < w * h) sf_gif_code(&bits, &acc, &nbits, idx[i + 1]);
    }
    sf_gif_code(&bits, &acc, &nbits, 5);
    if (nbits) sf_u8(&bits, acc & 0xFF);
    for (size_t at = 0; at < bits.n; at += 255) {
        size_t len = bits.n - at > 255 ? 255 : bits.n - at;
        sf_u8(b, (unsigned)len);
        sf_put(b, bits.p + at, len);
    }
    sf_u8(b, 0);
    sf_free(&bits);
}

/* An animated GIF89a: `frames` frames of w x h, a looping NETSCAPE extension and a
 * graphic control extension per frame (index 0 transparent in frame 0). Frame k
 * has index (x + y + k) % 4. */
static inline sf_buf sf_gif_animated(int w, int h, int frames) {
    static const uint8_t pal[12] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255};
    sf_buf b = {0};
    sf_put(&b, "GIF89a", 6);
    sf_u16le(&b, (unsigned)w);
    sf_u16le(&b, (unsigned)h);
    sf_u8(&b, 0x91);
    sf_u8(&b, 0);
    sf_u8(&b, 0);
    sf_put(&b, pal, sizeof pal);
    sf_put(&b, "\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00", 19);
    uint8_t *idx = malloc((size_t)w * h);
    if (idx == NULL) abort();
    for (int k = 0; k < frames; k++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) idx[y * w + x] = (uint8_t)((x + y + k) % 4);
        /* GCE: disposal 1, transparency flag on frame 0, delay 10, index 0. */
        sf_put(&b, "\x21\xF9\x04", 3);
        sf_u8(&b, k == 0 ? 0x05 : 0x04);
        sf_u16le(&b, 10);
        sf_u8(&b, 0);
        sf_u8(&b, 0);
        sf_gif_frame(&b, w, h, idx);
    }
    free(idx);
    sf_u8(&b, 0x3B);
    return b;
}

/* ----------------------------------------------------------------------- JPEG */

/* A baseline JPEG with four components (CMYK, Adobe APP14 transform 0 when adobe is
 * set), no subsampling, unit quantisers and one Huffman code per table: every block
 * is "DC difference 0, end of block", so every sample decodes to 128. */
static inline sf_buf sf_jpeg_cmyk(int w, int h, int adobe) {
    sf_buf b = {0};
    sf_u16be(&b, 0xFFD8);
    if (adobe) {
        sf_u16be(&b, 0xFFEE);
        sf_u16be(&b, 14);
        sf_put(&b, "Adobe\0", 6);
        sf_u8(&b, 100);      /* version */
        sf_u16be(&b, 0);     /* flags0 */
        sf_u16be(&b, 0);     /* flags1 */
        sf_u8(&b, 0);        /* transform: 0 = CMYK */
    }
    sf_u16be(&b, 0xFFDB);
    sf_u16be(&b, 67);
    sf_u8(&b, 0);
    for (int i = 0; i < 64; i++) sf_u8(&b, 1);
    sf_u16be(&b, 0xFFC0);
    sf_u16be(&b, 8 + 3 * 4);
    sf_u8(&b, 8);
    sf_u16be(&b, (unsigned)h);
    sf_u16be(&b, (unsigned)w);
    sf_u8(&b, 4);
    for (int c = 1; c <= 4; c++) {
        sf_u8(&b, (unsigned)c);
        sf_u8(&b, 0x11);
        sf_u8(&b, 0);
    }
    for (int cls = 0; cls < 2; cls++) { /* DC table 0, AC table 0: one code "0" -> symbol 0 */
        sf_u16be(&b, 0xFFC4);
        sf_u16be(&b, 2 + 17 + 1);
        sf_u8(&b, (unsigned)(cls << 4));
        sf_u8(&b, 1);
        for (int i = 1; i < 16; i++) sf_u8(&b, 0);
        sf_u8(&b, 0);
    }
    sf_u16be(&b, 0xFFDA);
    sf_u16be(&b, 6 + 2 * 4);
    sf_u8(&b, 4);
    for (int c = 1; c <= 4; c++) {
        sf_u8(&b, (unsigned)c);
        sf_u8(&b, 0x00);
    }
    sf_u8(&b, 0);
    sf_u8(&b, 63);
    sf_u8(&b, 0);
    /* 4 blocks x 2 bits = one zero byte a macroblock. */
    size_t mcus = (size_t)((w + 7) / 8) * (size_t)((h + 7) / 8);
    for (size_t i = 0; i < mcus; i++) sf_u8(&b, 0);
    sf_u16be(&b, 0xFFD9);
    return b;
}

/* "Exif\0\0" + a TIFF header + IFD0 at ifd0_offset holding one Orientation entry of
 * the given TIFF type (3 = SHORT). */
static inline sf_buf sf_exif_payload(int big_endian, unsigned orientation, uint32_t ifd0_offset, unsigned type) {
    sf_buf e = {0};
    sf_put(&e, "Exif\0\0", 6);
    void (*p16)(sf_buf *, unsigned) = big_endian ? sf_u16be : sf_u16le;
    void (*p32)(sf_buf *, uint32_t) = big_endian ? sf_u32be : sf_u32le;
    sf_put(&e, big_endian ? "MM" : "II", 2);
    p16(&e, 42);
    p32(&e, ifd0_offset);
    p16(&e, 1);
    p16(&e, 0x0112);
    p16(&e, type);
    p32(&e, 1);
    p16(&e, orientation);
    p16(&e, 0);
    p32(&e, 0);
    return e;
}

/* A copy of a JPEG with an APP1 segment holding payload inserted after SOI. */
static inline sf_buf sf_jpeg_with_app1(const uint8_t *jpg, size_t n, const uint8_t *payload, size_t len) {
    sf_buf b = {0};
    sf_put(&b, jpg, 2);
    sf_u16be(&b, 0xFFE1);
    sf_u16be(&b, (unsigned)(len + 2));
    sf_put(&b, payload, len);
    sf_put(&b, jpg + 2, n - 2);
    return b;
}

#endif
