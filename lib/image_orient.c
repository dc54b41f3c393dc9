/*
 * image_orient.c - JPEG marker walking (dimensions, truncation, EXIF) and the
 * eight EXIF orientations.
 *
 * The marker walker reads only what it needs and trusts nothing: every length is
 * checked against the bytes left, and a malformed stream simply ends the walk.
 * EXIF parsing is libexif's; we hand it exactly one APP1 payload and read one tag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libexif/exif-data.h>
#include <libexif/exif-utils.h>

#include "image_internal.h"
#include "pixel_alloc.h"

int pm_jpeg_is_jpeg(const uint8_t *data, size_t size)
{
    return data != NULL && size >= 2 && data[0] == 0xFF && data[1] == 0xD8;
}

/* One marker segment found by the walker. For markers without a payload
 * (RSTn, TEM) len is 0. payload points just after the two length bytes. */
typedef struct jpeg_seg {
    uint8_t marker;
    const uint8_t *payload;
    size_t len;   /* payload bytes (the length field minus its own two bytes) */
    size_t next;  /* offset of the byte after this segment */
} jpeg_seg;

/* Reads the segment at offset pos. Returns 0 at the end of the data or on any
 * malformed byte, so callers stop walking. Fill bytes (runs of FF) are skipped as
 * the standard allows. */
static int jpeg_next_segment(const uint8_t *data, size_t size, size_t pos, jpeg_seg *seg)
{
    if (pos >= size || data[pos] != 0xFF)
        return 0;
    while (pos < size && data[pos] == 0xFF)
        pos++;
    if (pos >= size)
        return 0;
    uint8_t m = data[pos++];
    if (m == 0x00)
        return 0; /* a stuffed byte cannot start a segment */
    seg->marker = m;
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD9)) { /* TEM, RSTn, SOI, EOI: no length */
        seg->payload = data + pos;
        seg->len = 0;
        seg->next = pos;
        return 1;
    }
    if (size - pos < 2)
        return 0;
    size_t len = ((size_t)data[pos] << 8) | data[pos + 1];
    if (len < 2 || len > size - pos)
        return 0;
    seg->payload = data + pos + 2;
    seg->len = len - 2;
    seg->next = pos + len;
    return 1;
}

/* SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range. */
static int is_sof(uint8_t m)
{
    return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

int pm_jpeg_dimensions(const uint8_t *data, size_t size, int *width, int *height)
{
    if (!pm_jpeg_is_jpeg(data, size))
        return 0;
    jpeg_seg seg;
    size_t pos = 2;
    while (jpeg_next_segment(data, size, pos, &seg)) {
        if (seg.marker == 0xDA || seg.marker == 0xD9)
            return 0; /* a scan (or the end) before any frame header */
        if (is_sof(seg.marker)) {
            /* precision(1) height(2) width(2) */
            if (seg.len < 5)
                return 0;
            int h = (seg.payload[1] << 8) | seg.payload[2];
            int w = (seg.payload[3] << 8) | seg.payload[4];
            if (w == 0 || h == 0)
                return 0; /* height 0 means "defined later by DNL": not supported */
            *width = w;
            *height = h;
            return 1;
        }
        pos = seg.next;
    }
    return 0;
}

int pm_jpeg_has_eoi(const uint8_t *data, size_t size)
{
    if (!pm_jpeg_is_jpeg(data, size))
        return 0;
    jpeg_seg seg;
    size_t pos = 2;
    while (jpeg_next_segment(data, size, pos, &seg)) {
        if (seg.marker == 0xD9)
            return 0; /* ends before any scan: nothing was coded */
        if (seg.marker == 0xDA) {
            /* Inside entropy-coded data an FF data byte is always followed by 00
             * (or is an RSTn marker), so FF D9 after the first scan header can only
             * be a real end-of-image marker. Search from the end: an intact file
             * ends with it, so this usually looks at two bytes. */
            size_t start = seg.next;
            for (size_t i = size - 1; i > start; i--)
                if (data[i] == 0xD9 && data[i - 1] == 0xFF)
                    return 1;
            return 0;
        }
        pos = seg.next;
    }
    return 0;
}

/* Orientation from one "Exif\0\0" APP1 payload; 1 when libexif finds no usable tag. */
static pm_code orientation_from_exif(const uint8_t *payload, size_t len, int *orientation,
                                     char *err, size_t errcap)
{
    ExifData *ed = exif_data_new();
    if (ed == NULL)
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY, "no memory to parse EXIF data");
    /* FOLLOW_SPECIFICATION makes libexif add "mandatory" tags with default values
     * after loading; we want only what the file says. */
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    /* libexif takes an unsigned int size; an APP1 payload is < 64 KiB anyway. */
    exif_data_load_data(ed, payload, (unsigned int)len);
    ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (e != NULL && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->data != NULL &&
        e->size >= 2) {
        ExifShort v = exif_get_short(e->data, exif_data_get_byte_order(ed));
        if (v >= 1 && v <= 8)
            *orientation = v;
    }
    exif_data_unref(ed);
    return PM_OK;
}

pm_code pm_jpeg_exif_orientation(const uint8_t *data, size_t size, int *orientation,
                                 char *err, size_t errcap)
{
    *orientation = 1;
    if (!pm_jpeg_is_jpeg(data, size))
        return PM_OK;
    jpeg_seg seg;
    size_t pos = 2;
    while (jpeg_next_segment(data, size, pos, &seg)) {
        if (seg.marker == 0xDA || seg.marker == 0xD9)
            break; /* metadata comes before the first scan */
        /* APP1 is also used by XMP: only the first one with the EXIF header counts. */
        if (seg.marker == 0xE1 && seg.len >= 6 && memcmp(seg.payload, "Exif\0\0", 6) == 0)
            return orientation_from_exif(seg.payload, seg.len, orientation, err, errcap);
        pos = seg.next;
    }
    return PM_OK;
}

/* Exchanges two RGBA pixels (memcpy: no aliasing or alignment assumptions, and
 * compilers turn it into two 32-bit moves). */
static void swap_px(uint8_t *a, uint8_t *b)
{
    uint8_t t[4];
    memcpy(t, a, 4);
    memcpy(a, b, 4);
    memcpy(b, t, 4);
}

pm_code pm_rgba_apply_orientation(pm_rgba *img, int orientation, char *err, size_t errcap)
{
    if (img == NULL || img->px == NULL || img->width <= 0 || img->height <= 0 ||
        orientation < 2 || orientation > 8)
        return PM_OK;
    const size_t w = (size_t)img->width, h = (size_t)img->height;
    uint8_t *px = img->px;
    if (orientation <= 4) {
        /* Mirrors and the half turn keep the shape: swap pixel pairs in place, so a
         * 100-megapixel upside-down photo needs no second 400 MB buffer. */
        if (orientation == 3) { /* reversing all pixels turns the image 180 degrees */
            for (size_t i = 0, j = w * h - 1; i < j; i++, j--)
                swap_px(px + i * 4u, px + j * 4u);
        } else if (orientation == 2) { /* reverse each row */
            for (size_t y = 0; y < h; y++)
                for (size_t i = y * w, j = y * w + w - 1; i < j; i++, j--)
                    swap_px(px + i * 4u, px + j * 4u);
        } else { /* 4: swap rows top to bottom */
            for (size_t a = 0, b = h - 1; a < b; a++, b--)
                for (size_t x = 0; x < w; x++)
                    swap_px(px + (a * w + x) * 4u, px + (b * w + x) * 4u);
        }
        return PM_OK;
    }
    /* 5-8 turn the image a quarter: width and height swap, so copy out. */
    const size_t ow = h, oh = w;
    uint8_t *dst = pm_pixels_alloc(w * h * 4u); /* same byte count as img->px, already allocated once */
    if (dst == NULL)
        return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                           "no memory to apply EXIF orientation %d to a %dx%d image",
                           orientation, img->width, img->height);
    /* For each output pixel (x, y), the stored pixel (sx, sy) that is shown there. */
    for (size_t y = 0; y < oh; y++) {
        for (size_t x = 0; x < ow; x++) {
            size_t sx, sy;
            switch (orientation) {
            case 5: sx = y; sy = x; break;                  /* transposed */
            case 6: sx = y; sy = h - 1 - x; break;          /* needs 90 clockwise */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;  /* transversed */
            default: sx = w - 1 - y; sy = x; break;         /* 8: needs 90 anticlockwise */
            }
            memcpy(dst + (y * ow + x) * 4u, px + (sy * w + sx) * 4u, 4);
        }
    }
    free(img->px);
    img->px = dst;
    img->width = (int)ow;
    img->height = (int)oh;
    return PM_OK;
}
