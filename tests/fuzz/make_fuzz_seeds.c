/* make_fuzz_seeds - writes the fuzzers' seed corpus: make_fuzz_seeds OUTDIR
 *   OUTDIR/image/      encoded images for fuzz_image_load
 *   OUTDIR/remove_bg/  the same images behind an options byte, for fuzz_remove_bg
 *   OUTDIR/manifest/   petmatte.json variants for fuzz_manifest
 * Every seed is generated here (stb_image_write plus seed_formats.h): odd sizes,
 * every channel count, 16-bit and palette PNGs, BMP, TGA (plain and RLE), JPEGs of
 * several qualities, with EXIF orientations 1-8 and broken EXIF, CMYK JPEG, animated
 * GIF, PNM, Radiance HDR. Deterministic: the same files on every run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stb_write.h"

#include "seed_formats.h"

static const char *outdir;
static int n_image, n_remove, n_manifest;

static void write_file(const char *sub, const char *name, const void *data, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_fuzz_seeds: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* One image seed: as is for fuzz_image_load, and behind an options byte (cycling
 * through all 256 over the corpus) for fuzz_remove_bg. */
static void image_seed(const char *name, const void *data, size_t n) {
    write_file("image", name, data, n);
    sf_buf r = {0};
    sf_u8(&r, (unsigned)(n_remove * 37 + 11) & 0xFF);
    sf_put(&r, data, n);
    write_file("remove_bg", name, r.p, r.n);
    sf_free(&r);
    n_image++;
    n_remove++;
}


static uint8_t *pattern(int w, int h, int comp) {
    uint8_t *px = malloc((size_t)w * h * comp);
    if (px == NULL) abort();
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comp; c++)
                px[((size_t)y * w + x) * comp + c] =
                    (uint8_t)(c == 3 ? (x * 255) / (w > 1 ? w - 1 : 1) : x * 13 + y * 7 + c * 60);
    return px;
}

static void stb_images(void) {
    static const int sizes[][2] = {{1, 1}, {3, 5}, {17, 9}, {33, 31}, {64, 3}, {7, 40}};
    char name[64];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        for (int comp = 1; comp <= 4; comp++) {
            uint8_t *px = pattern(w, h, comp);
            sf_buf b = {0};
            stbi_write_png_to_func(sf_stb_sink, &b, w, h, comp, px, w * comp);
            snprintf(name, sizeof name, "png_%dx%d_c%d.png", w, h, comp);
            image_seed(name, b.p, b.n);
            sf_free(&b);
            if (comp == 3 || comp == 4) {
                stbi_write_bmp_to_func(sf_stb_sink, &b, w, h, comp, px);
                snprintf(name, sizeof name, "bmp_%dx%d_c%d.bmp", w, h, comp);
                image_seed(name, b.p, b.n);
                sf_free(&b);
            }
            for (int rle = 0; rle <= 1; rle++) {
                stbi_write_tga_with_rle = rle;
                stbi_write_tga_to_func(sf_stb_sink, &b, w, h, comp, px);
                snprintf(name, sizeof name, "tga_%dx%d_c%d_rle%d.tga", w, h, comp, rle);
                image_seed(name, b.p, b.n);
                sf_free(&b);
            }
            if (comp == 1 || comp == 3) {
                static const int qualities[] = {10, 60, 95, 100};
                for (size_t q = 0; q < sizeof qualities / sizeof qualities[0]; q++) {
                    stbi_write_jpg_to_func(sf_stb_sink, &b, w, h, comp, px, qualities[q]);
                    snprintf(name, sizeof name, "jpg_%dx%d_c%d_q%d.jpg", w, h, comp, qualities[q]);
                    image_seed(name, b.p, b.n);
                    sf_free(&b);
                }
            }
            free(px);
        }
    }
}

static void exif_images(void) {
    uint8_t *px = pattern(24, 16, 3);
    sf_buf jpg = {0};
    stbi_write_jpg_to_func(sf_stb_sink, &jpg, 24, 16, 3, px, 90);
    free(px);
    char name[64];
    for (unsigned o = 1; o <= 8; o++) {
        sf_buf e = sf_exif_payload((int)(o % 2), o, 8, 3);
        sf_buf j = sf_jpeg_with_app1(jpg.p, jpg.n, e.p, e.n);
        snprintf(name, sizeof name, "exif_orientation_%u.jpg", o);
        image_seed(name, j.p, j.n);
        sf_free(&j);
        sf_free(&e);
    }
    /* Broken EXIF: IFD0 far past the data, inside the header, a LONG, a value of 9,
     * and an entry count of 65535. */
    struct { int be; unsigned o; uint32_t ifd; unsigned type; } bad[] = {
        {1, 6, 0xFFFFFF00u, 3}, {0, 6, 3, 3}, {0, 6, 8, 4}, {1, 9, 8, 3}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        sf_buf e = sf_exif_payload(bad[k].be, bad[k].o, bad[k].ifd, bad[k].type);
        sf_buf j = sf_jpeg_with_app1(jpg.p, jpg.n, e.p, e.n);
        snprintf(name, sizeof name, "exif_bad_%zu.jpg", k);
        image_seed(name, j.p, j.n);
        sf_free(&j);
        sf_free(&e);
    }
    sf_buf e = sf_exif_payload(1, 6, 8, 3);
    e.p[14] = e.p[15] = 0xFF;
    sf_buf j = sf_jpeg_with_app1(jpg.p, jpg.n, e.p, e.n);
    image_seed("exif_65535_entries.jpg", j.p, j.n);
    sf_free(&j);
    sf_free(&e);
    sf_free(&jpg);
}

static void handmade_images(void) {
    static const int types[] = {0, 2, 4, 6};
    char name[64];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        sf_buf b = sf_png16(5, 3, types[t]);
        snprintf(name, sizeof name, "png16_type%d.png", types[t]);
        image_seed(name, b.p, b.n);
        sf_free(&b);
    }
    sf_buf b = sf_png_palette(9, 7);
    image_seed("png_palette_trns.png", b.p, b.n);
    sf_free(&b);
    b = sf_gif_animated(6, 5, 3);
    image_seed("gif_animated_3_frames.gif", b.p, b.n);
    sf_free(&b);
    b = sf_gif_animated(1, 1, 1);
    image_seed("gif_1x1.gif", b.p, b.n);
    sf_free(&b);
    b = sf_jpeg_cmyk(16, 8, 1);
    image_seed("jpeg_cmyk_adobe.jpg", b.p, b.n);
    sf_free(&b);
    b = sf_jpeg_cmyk(9, 9, 0);
    image_seed("jpeg_4_components_no_adobe.jpg", b.p, b.n);
    sf_free(&b);
    /* PNM: binary RGB (P6) and gray (P5). */
    static const char p6[] = "P6\n3 2\n255\n";
    sf_put(&b, p6, sizeof p6 - 1);
    for (int i = 0; i < 18; i++) sf_u8(&b, (unsigned)(i * 14));
    image_seed("pnm_3x2.ppm", b.p, b.n);
    sf_free(&b);
    static const char p5[] = "P5\n# comment\n4 3\n255\n";
    sf_put(&b, p5, sizeof p5 - 1);
    for (int i = 0; i < 12; i++) sf_u8(&b, (unsigned)(i * 21));
    image_seed("pgm_4x3.pgm", b.p, b.n);
    sf_free(&b);
    /* Radiance HDR, flat (not run-length) scanlines of RGBE pixels. */
    static const char hdr[] = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 3\n";
    sf_put(&b, hdr, sizeof hdr - 1);
    for (int i = 0; i < 6; i++) {
        sf_u8(&b, (unsigned)(40 * i));
        sf_u8(&b, 128);
        sf_u8(&b, 64);
        sf_u8(&b, 129);
    }
    image_seed("hdr_3x2.hdr", b.p, b.n);
    sf_free(&b);
}

static void manifest_seed(const char *text) {
    char name[32];
    snprintf(name, sizeof name, "manifest_%02d.json", n_manifest++);
    write_file("manifest", name, text, strlen(text));
}

static void manifests(void) {
    manifest_seed("{\"format\": \"petmatte-manifest\", \"version\": 1, \"name\": \"inspyrenet-base\","
                  " \"input\": {\"width\": 1024, \"height\": 1024, \"mean\": [0.485, 0.456, 0.406],"
                  " \"std\": [0.229, 0.224, 0.225]}, \"output\": {\"activation\": \"probability\","
                  " \"normalize\": \"minmax\", \"resize\": \"bilinear\", \"align_corners\": true},"
                  " \"random_weights\": false}");
    manifest_seed("{\"format\":\"petmatte-manifest\",\"version\":1,\"name\":\"red32\",\"input\":{\"width\":32,"
                  "\"height\":32,\"mean\":[0,0,0],\"std\":[1,1,1]},\"output\":{\"activation\":\"logit\","
                  "\"normalize\":\"none\",\"resize\":\"bilinear\",\"align_corners\":false},\"random_weights\":true}");
    manifest_seed("{}");
    manifest_seed("{\"input\": {\"width\": 8192, \"height\": 1}}");
    manifest_seed("{\"input\": {\"mean\": [1e6, -1e6, 0.5], \"std\": [1e-12, 2, 1e6]}}");
    manifest_seed("{\"name\": \"\\u00e9\\u4e2d\\ud83d\\ude00 unicode\", \"version\": 1}");
    manifest_seed("{\"name\": \"bad\", ");
    manifest_seed("{\"version\": 99}");
    manifest_seed("{\"input\": {\"width\": 100000}}");
    manifest_seed("{\"output\": {\"activation\": \"softmax\"}}");
    manifest_seed("{\"a\": 1, \"a\": 2}");
    manifest_seed("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    manifest_seed("{\"input\": {\"mean\": [NaN, 1, 2]}}");
    manifest_seed("{\"input\": {\"width\": 1.5e300, \"height\": -9223372036854775808}}");
}

static void make_dir(const char *sub) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", outdir, sub[0] ? "/" : "", sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_fuzz_seeds: cannot create %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_fuzz_seeds OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    make_dir("");
    make_dir("image");
    make_dir("remove_bg");
    make_dir("manifest");
    stb_images();
    exif_images();
    handmade_images();
    manifests();
    printf("make_fuzz_seeds: %d image, %d remove_bg, %d manifest seeds in %s\n", n_image, n_remove,
           n_manifest, outdir);
    return 0;
}
