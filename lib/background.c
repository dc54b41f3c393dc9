/*
 * background.c - plans the backgrounds of background.h. On a GPU, pm_shim_compose
 * builds and blends them there; on the CPU the tint is a table lookup here, torch
 * builds the blur and the picture (pm_shim_backdrop), and one C loop blends.
 *
 * Tint: background = round(photo*(1-o) + colour*o), half up, per channel: a table
 * of 256 values per channel, the same bytes on every device.
 *
 * Blur: a Gaussian of standard deviation sigma, cut at 3 sigma (the weights beyond
 * hold 0.3% of the mass), normalised so that a flat area keeps its value exactly,
 * applied along rows, then columns; the shim repeats the border pixels outwards, so
 * a blur never darkens the frame's edges.
 *
 * A wide blur at full size costs its width per pixel (240 weights a pixel for the
 * default on a 4000-pixel side). From a standard deviation of 2 * PM_BLUR_REDUCED_SIGMA
 * on, the photo is first averaged over f x f areas (f = sigma / PM_BLUR_REDUCED_SIGMA),
 * blurred there with a Gaussian of about PM_BLUR_REDUCED_SIGMA, and resized back
 * bilinearly. Averaging (a box, variance (f^2-1)/12) and the bilinear tent (f^2/6)
 * spread the image too, about f^2/4 together in full-size pixels, so the reduced
 * Gaussian has sqrt(sigma^2 - f^2/4) / f: the whole keeps about the requested width.
 *
 * Cover: the picture is cropped to the frame's aspect ratio around its centre, then
 * scaled to the frame: nothing is stretched, and the overhang on one axis is lost
 * evenly on both sides. The crop is whole pixels, so the aspect ratio is kept to
 * half a source pixel.
 */
#include "background.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "pixel_alloc.h"

int pm_background_composed(const pm_remove_options *opt)
{
    return opt->output == PM_OUTPUT_OVERLAY ||
           (opt->output == PM_OUTPUT_COMPOSITE && opt->background != PM_BACKGROUND_COLOR);
}

double pm_blur_sigma(float blur_radius, int width, int height)
{
    if (blur_radius > 0.0f)
        return (double)blur_radius;
    const double longer = (double)(width > height ? width : height);
    const double sigma = longer * PM_BLUR_AUTO_FRACTION;
    return sigma > PM_BLUR_AUTO_MIN ? sigma : PM_BLUR_AUTO_MIN;
}

void pm_cover_crop(int picture_w, int picture_h, int width, int height, int *x, int *y, int *crop_w,
                   int *crop_h)
{
    const int64_t pw = picture_w, ph = picture_h, w = width, h = height;
    int64_t cw = pw, ch = ph;
    if (pw * h >= ph * w) /* the picture is wider than the frame: full height */
        cw = (ph * w + h / 2) / h;
    else /* taller: full width */
        ch = (pw * h + w / 2) / w;
    if (cw < 1)
        cw = 1;
    if (ch < 1)
        ch = 1;
    if (cw > pw)
        cw = pw;
    if (ch > ph)
        ch = ph;
    *crop_w = (int)cw;
    *crop_h = (int)ch;
    *x = (int)((pw - cw) / 2);
    *y = (int)((ph - ch) / 2);
}

int pm_blur_reduction(double sigma)
{
    const int f = (int)(sigma / PM_BLUR_REDUCED_SIGMA);
    return f > 1 ? f : 1;
}

/* The normalised Gaussian of standard deviation sigma, cut at ceil(3 sigma). */
static float *gaussian_kernel(double sigma, int *taps)
{
    const int r = (int)ceil(3.0 * sigma);
    const int n = 2 * r + 1;
    float *k = malloc((size_t)n * sizeof *k);
    if (k == NULL)
        return NULL;
    double sum = 0.0;
    for (int i = -r; i <= r; i++)
        sum += exp(-(double)i * i / (2.0 * sigma * sigma));
    for (int i = -r; i <= r; i++)
        k[i + r] = (float)(exp(-(double)i * i / (2.0 * sigma * sigma)) / sum);
    *taps = n;
    return k;
}

/* The background's value for each photo value: round(v*(1-o) + c*o), half up. */
static void tint_table(uint32_t rgb, float opacity, uint8_t table[3 * 256])
{
    const double o = opacity;
    for (int k = 0; k < 3; k++) {
        const double c = (double)((rgb >> (16 - 8 * k)) & 0xFFu);
        for (int v = 0; v < 256; v++)
            table[k * 256 + v] = (uint8_t)floor(v * (1.0 - o) + c * o + 0.5);
    }
}

pm_code pm_plan_background(const pm_rgba *img, const pm_remove_options *opt, const pm_rgba *picture,
                           pm_background_plan *plan, char *err, size_t errcap)
{
    memset(plan, 0, sizeof *plan);
    pm_backdrop *b = &plan->backdrop;
    if (opt->output == PM_OUTPUT_OVERLAY) {
        b->kind = PM_BACKDROP_TINT;
        tint_table(opt->overlay_rgb, opt->overlay_opacity, plan->tint_table);
        b->tint_table = plan->tint_table;
    } else if (opt->background == PM_BACKGROUND_BLUR) {
        b->kind = PM_BACKDROP_BLUR;
        double sigma = pm_blur_sigma(opt->blur_radius, img->width, img->height);
        const int f = pm_blur_reduction(sigma);
        b->blur_width = (img->width + f / 2) / f > 0 ? (img->width + f / 2) / f : 1;
        b->blur_height = (img->height + f / 2) / f > 0 ? (img->height + f / 2) / f : 1;
        if (f > 1) /* what averaging and resizing add, taken out; in reduced pixels */
            sigma = sqrt(sigma * sigma - (double)f * f / 4.0) / f;
        plan->kernel = gaussian_kernel(sigma, &b->taps);
        if (plan->kernel == NULL)
            return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY, "no memory for a blur kernel");
        b->kernel = plan->kernel;
    } else {
        if (picture == NULL || pm_rgba_pixels(picture) == NULL)
            return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                               "background image: no picture was decoded");
        b->kind = PM_BACKDROP_IMAGE;
        b->image = pm_rgba_pixels(picture);
        b->image_width = picture->width;
        b->image_height = picture->height;
        b->image_channels = pm_rgba_channels(picture);
        b->image_stride = pm_rgba_stride(picture);
        pm_cover_crop(picture->width, picture->height, img->width, img->height, &b->crop_x,
                      &b->crop_y, &b->crop_width, &b->crop_height);
    }
    return PM_OK;
}

void pm_background_plan_free(pm_background_plan *plan)
{
    free(plan->kernel);
    plan->kernel = NULL;
}

/* The host's side of a CPU composite: the backdrop's bytes (a table lookup for the
 * tint, torch for the blur and the picture), then one fused blend loop. */
static pm_code compose_on_host(const pm_rgba *img, const uint8_t *fg, const uint8_t *matte,
                               const pm_backdrop *b, uint8_t *rgb_out, char *err, size_t errcap)
{
    const size_t w = (size_t)img->width, h = (size_t)img->height;
    const uint8_t *photo = pm_rgba_pixels(img);
    const size_t stride = pm_rgba_stride(img), step = (size_t)pm_rgba_channels(img);
    uint8_t *back = NULL;
    if (b->kind != PM_BACKDROP_TINT) {
        back = pm_pixels_alloc(w * h * 3u);
        if (back == NULL)
            return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY,
                               "no memory for the background of a %dx%d image", img->width,
                               img->height);
        pm_code rc = pm_shim_backdrop(NULL, photo, stride, (int)step, img->width, img->height, b,
                                      back, err, errcap);
        if (rc != PM_OK) {
            free(back);
            return rc;
        }
    }
    const uint8_t *table = b->tint_table;
    for (size_t y = 0; y < h; y++) {
        const uint8_t *p = photo + y * stride;
        const uint8_t *f = fg != NULL ? fg + y * w * 3u : p;
        const size_t fstep = fg != NULL ? 3u : step;
        const uint8_t *bk = back != NULL ? back + y * w * 3u : NULL;
        const uint8_t *m = matte + y * w;
        uint8_t *d = rgb_out + y * w * 3u;
        for (size_t x = 0; x < w; x++, p += step, f += fstep, d += 3) {
            const unsigned a = m[x];
            for (int k = 0; k < 3; k++) {
                const unsigned bg = bk != NULL ? bk[x * 3 + (size_t)k] : table[k * 256 + p[k]];
                d[k] = (uint8_t)((a * f[k] + (255u - a) * bg + 127u) / 255u);
            }
        }
    }
    free(back);
    return PM_OK;
}

pm_code pm_compose_background(struct pm_shim_model *model, const pm_rgba *img, const uint8_t *fg,
                              const uint8_t *matte, const pm_remove_options *opt,
                              const pm_rgba *picture, uint8_t *rgb_out, char *err, size_t errcap)
{
    pm_background_plan plan;
    pm_code rc = pm_plan_background(img, opt, picture, &plan, err, errcap);
    if (rc == PM_OK)
        rc = model != NULL
                 ? pm_shim_compose(model, pm_rgba_pixels(img), pm_rgba_stride(img),
                                   pm_rgba_channels(img), fg, matte, img->width, img->height,
                                   &plan.backdrop, rgb_out, err, errcap)
                 : compose_on_host(img, fg, matte, &plan.backdrop, rgb_out, err, errcap);
    pm_background_plan_free(&plan);
    return rc;
}
