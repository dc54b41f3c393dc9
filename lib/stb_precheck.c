/*
 * stb_precheck.c - screens encoded input for the stb_image 2.27 (Debian 12) bugs
 * that fuzzing found, before stb sees a byte (docs/fuzzing.md). Kept apart from
 * stb_impl.c so that this code runs under every sanitizer check.
 */
#include <stddef.h>
#include <stdint.h>

#include "image_internal.h"
#include "stb_precheck.h"

/* Checks the DHT segment whose length field starts at d[pos] (right after FF C4): every
 * table's 16 counts may add up to at most 256 codes and must fit the segment. A DHT cut
 * off by the end of the data still reaches stb's table builder (it reads zeros past the
 * end): what is there is checked. Returns 0 for a table stb_image 2.27 would overflow. */
static int pm_stb_dht_ok(const uint8_t *d, size_t n, size_t pos)
{
    if (n - pos < 2)
        return 1;
    size_t len = ((size_t)d[pos] << 8) | d[pos + 1];
    if (len < 2)
        return 1;
    size_t at = pos + 2, end = len <= n - pos ? pos + len : n;
    while (at < end) { /* one or more tables: class/id, 16 counts, symbols */
        if (end - at < 17)
            return 0;
        size_t codes = 0;
        for (int i = 1; i <= 16; i++)
            codes += d[at + (size_t)i];
        if (codes > 256 || end - at - 17 < codes)
            return 0;
        at += 17 + codes;
    }
    return 1;
}

/* stb_image 2.27 (Debian 12) writes past stbi__huffman.size[257] when a DHT
 * segment declares more than 256 codes (its code counts are summed unchecked in
 * stbi__build_huffman), corrupting the decoder's other tables. Found by fuzzing
 * pm_image_load under UBSan. Until stb checks it, every DHT segment of a JPEG is
 * checked here first: this walks all marker segments, stepping over entropy-coded
 * data, and returns 0 only for a DHT table with more than 256 codes or one that
 * runs past its segment. Anything else malformed is left for stb to refuse. */
static int pm_stb_jpeg_tables_ok(const uint8_t *d, size_t n)
{
    /* stb's reader takes any run of FF fill bytes before the SOI's D8, so a file
     * that starts FF FF D8 is a JPEG to stb although not to pm_jpeg_is_jpeg: it
     * reached the unchecked tables through stbi_info (found by fuzzing). Every
     * stb-JPEG is checked, from the byte after its SOI. Anything else passes. */
    size_t pos = 0;
    if (n < 2 || d[0] != 0xFF)
        return 1;
    while (pos < n && d[pos] == 0xFF)
        pos++;
    if (pos >= n || d[pos] != 0xD8)
        return 1;
    pos++; /* after SOI */
    int scanned = 0; /* the FF C4 pass after the first scan header has run */
    while (pos + 1 < n) {
        if (d[pos] != 0xFF) {
            /* Like stb, which skips any bytes between segments looking for the
             * next FF (found by fuzzing: stopping here left later tables unread). */
            pos++;
            continue;
        }
        while (pos < n && d[pos] == 0xFF)
            pos++;
        if (pos >= n)
            return 1;
        uint8_t m = d[pos++];
        if (m == 0xD9)
            return 1; /* EOI */
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8))
            continue; /* no length field */
        if (n - pos < 2)
            return 1;
        size_t len = ((size_t)d[pos] << 8) | d[pos + 1];
        if (len < 2 || (len > n - pos && m != 0xC4))
            return 1;
        if (m == 0xC4 && !pm_stb_dht_ok(d, n, pos))
            return 0;
        pos += len;
        if (m == 0xDA) {
            /* Entropy-coded data: FF 00 is a data byte and FF D0..D7 a restart;
             * any other FF xx is the next marker. */
            while (pos + 1 < n && !(d[pos] == 0xFF && d[pos + 1] != 0x00 &&
                                    !(d[pos + 1] >= 0xD0 && d[pos + 1] <= 0xD7)))
                pos++;
            /* stb resynchronises on corrupt entropy data differently from this walk
             * (an FF FF run, say), and may then take a DHT this walk never reaches
             * (found by fuzzing). FF C4 cannot occur in valid entropy-coded data, so
             * every FF C4 up to the end-of-image marker (stb stops there; data appended
             * after it, like a phone's motion-photo video, is not looked at) is checked
             * as a DHT: no valid file is refused. */
            /* Once: later scans' data lies inside what this pass covered. */
            for (size_t i = pos; !scanned && i + 1 < n && !(d[i] == 0xFF && d[i + 1] == 0xD9); i++) {
                if (d[i] == 0xFF && d[i + 1] == 0xC4 && !pm_stb_dht_ok(d, n, i + 2))
                    return 0;
            }
            scanned = 1;
        }
    }
    return 1;
}

/* Two stb_image 2.27 bugs in binary PNM (P5, P6), both found by fuzzing:
 *  - the header numbers are parsed into an int without an overflow check: a
 *    10-digit width is signed overflow, undefined behaviour;
 *  - a 16-bit file (maxval > 255) is converted to RGBA with the 8-bit converter and
 *    then read as 16-bit: a heap read past the end of the buffer. (Its samples are
 *    also read in the wrong byte order.)
 * This walks the header as stb does (whitespace, # comments, digits) and returns
 * 1 for a number of more than 9 digits (no real image has one: stb refuses sides
 * over 2^20), 2 for maxval > 255, 0 otherwise, including for anything not PNM. */
static int pm_stb_pnm_header_problem(const uint8_t *d, size_t n)
{
    if (n < 2 || d[0] != 'P' || (d[1] != '5' && d[1] != '6'))
        return 0;
    size_t pos = 2;
    long value = 0;
    for (int field = 0; field < 3; field++) {
        for (;;) {
            while (pos < n && (d[pos] == ' ' || (d[pos] >= '\t' && d[pos] <= '\r')))
                pos++;
            if (pos >= n || d[pos] != '#')
                break;
            while (pos < n && d[pos] != '\n' && d[pos] != '\r')
                pos++;
        }
        size_t digits = 0;
        value = 0;
        while (pos < n && d[pos] >= '0' && d[pos] <= '9') {
            if (++digits > 9)
                return 1;
            value = value * 10 + (d[pos] - '0');
            pos++;
        }
    }
    return value > 255 ? 2 : 0; /* value: the maxval */
}

/* What stb_image 2.27 must not see (above): PM_ERR_DECODE naming the problem. */
pm_code pm_stb_precheck(const uint8_t *data, size_t size, const char *what, char *err,
                               size_t errcap)
{
    if (!pm_stb_jpeg_tables_ok(data, size))
        return pm_img_fail(err, errcap, PM_ERR_DECODE,
                           "%s: Corrupt JPEG (a Huffman table declares more codes than it "
                           "may hold)", what);
    int pnm = pm_stb_pnm_header_problem(data, size);
    if (pnm == 1)
        return pm_img_fail(err, errcap, PM_ERR_DECODE,
                           "%s: Corrupt PNM (a header number has more than 9 digits)", what);
    if (pnm == 2)
        return pm_img_fail(err, errcap, PM_ERR_DECODE,
                           "%s: 16-bit PNM (maxval over 255) is not supported", what);
    return PM_OK;
}
