/*
 * background.c - plans the backgrounds of background.h; pm_shim_compose runs them.
 *
 * Blur: a Gaussian of standard deviation sigma, cut at 3 sigma (the weights beyond
 * hold 0.3% of the mass), normalised so that a flat area keeps its value exactly,
 * applied along rows, then columns; the shim repeats the border pixels outwards, so
 * a blur never darkens the frame's edges.
 *
 * Cover: the picture is cropped to the frame's aspect ratio around its centre, then
 * scaled to the frame: nothing is stretched, and the overhang on one axis is lost
 * evenly on both sides. The crop is whole pixels, so the aspect ratio is kept to
 * half a source pixel.
 */
#include "background.h"

#include <math.h>
#include <stdlib.h>

#include "image_internal.h"
#include "shim.h"

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

pm_code pm_compose_background(struct pm_shim_model *model, const pm_rgba *img, const uint8_t *fg,
                              const uint8_t *matte, const pm_remove_options *opt,
                              const pm_rgba *picture, uint8_t *rgb_out, char *err, size_t errcap)
{
    pm_backdrop b = {0};
    float *kernel = NULL;
    if (opt->output == PM_OUTPUT_OVERLAY) {
        b.kind = PM_BACKDROP_TINT;
        b.tint[0] = (uint8_t)(opt->overlay_rgb >> 16);
        b.tint[1] = (uint8_t)(opt->overlay_rgb >> 8);
        b.tint[2] = (uint8_t)opt->overlay_rgb;
        b.opacity = opt->overlay_opacity;
    } else if (opt->background == PM_BACKGROUND_BLUR) {
        b.kind = PM_BACKDROP_BLUR;
        kernel = gaussian_kernel(pm_blur_sigma(opt->blur_radius, img->width, img->height), &b.taps);
        if (kernel == NULL)
            return pm_img_fail(err, errcap, PM_ERR_NO_MEMORY, "no memory for a blur kernel");
        b.kernel = kernel;
    } else {
        if (picture == NULL || pm_rgba_pixels(picture) == NULL)
            return pm_img_fail(err, errcap, PM_ERR_INVALID_ARGUMENT,
                               "background image: no picture was decoded");
        b.kind = PM_BACKDROP_IMAGE;
        b.image = pm_rgba_pixels(picture);
        b.image_width = picture->width;
        b.image_height = picture->height;
        b.image_channels = pm_rgba_channels(picture);
        b.image_stride = pm_rgba_stride(picture);
        pm_cover_crop(picture->width, picture->height, img->width, img->height, &b.crop_x,
                      &b.crop_y, &b.crop_width, &b.crop_height);
    }
    pm_code rc = pm_shim_compose(model, pm_rgba_pixels(img), pm_rgba_stride(img),
                                 pm_rgba_channels(img), fg, matte, img->width, img->height, &b,
                                 rgb_out, err, errcap);
    free(kernel);
    return rc;
}
