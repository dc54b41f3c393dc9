/*
 * background.h - what a composite puts behind the subject, other than a solid colour:
 * the photo blurred (PM_BACKGROUND_BLUR), a picture scaled to cover the frame
 * (PM_BACKGROUND_IMAGE), and the photo tinted (PM_OUTPUT_OVERLAY). This file plans
 * (the Gaussian's kernel, the crop rectangle, the tint table) in C; on a GPU the shim
 * builds the background and blends the subject over it (pm_shim_compose); on the
 * CPU torch builds the blur and the picture (pm_shim_backdrop) and C blends.
 * Internal.
 */
#ifndef PETMATTE_BACKGROUND_H
#define PETMATTE_BACKGROUND_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "petmatte.h"
#include "shim.h"

#define PM_BLUR_RADIUS_MAX 256.0f      /* pm_remove_options.blur_radius */
#define PM_BLUR_AUTO_FRACTION 0.01     /* blur_radius 0: this share of the longer side */
#define PM_BLUR_AUTO_MIN 2.0           /* ... and at least this many pixels */
#define PM_OVERLAY_RGB_DEFAULT 0x78FF9Bu
#define PM_OVERLAY_OPACITY_DEFAULT 0.5f

/* 1 when opt asks for a background that pm_compose_background builds. */
int pm_background_composed(const pm_remove_options *opt);

/* The Gaussian's standard deviation for blur_radius on a width x height image. */
double pm_blur_sigma(float blur_radius, int width, int height);

/* The factor by which a blur of standard deviation sigma first reduces the photo
 * (1: none; see background.c). */
#define PM_BLUR_REDUCED_SIGMA 4.0
int pm_blur_reduction(double sigma);

/* The centred rectangle of a picture_w x picture_h picture with the frame's aspect
 * ratio (to the nearest pixel), which scaled to width x height covers the frame. */
void pm_cover_crop(int picture_w, int picture_h, int width, int height, int *x, int *y, int *crop_w,
                   int *crop_h);

/* The shim's plan for opt's background behind img (kernel and table owned here). */
typedef struct pm_background_plan {
    pm_backdrop backdrop;     /* points into this struct: use it in place */
    float *kernel;            /* BLUR */
    uint8_t tint_table[3 * 256];
} pm_background_plan;

/* Fills *plan for a background pm_background_composed says is built; free it with
 * pm_background_plan_free (also after a failure). Errors: PM_ERR_NO_MEMORY,
 * PM_ERR_INVALID_ARGUMENT (an image background without a picture). */
pm_code pm_plan_background(const pm_rgba *img, const pm_remove_options *opt, const pm_rgba *picture,
                           pm_background_plan *plan, char *err, size_t errcap);
void pm_background_plan_free(pm_background_plan *plan);

/* Writes img's composite (height rows of width*3 bytes) to rgb_out: the subject's
 * colours (fg, tight RGB, when clean edges made them, else img's own) over the
 * background opt asks for, weighted by the final matte. picture: the decoded
 * PM_BACKGROUND_IMAGE (else unused). model: where it runs (a CUDA model), NULL for
 * the CPU. Errors: PM_ERR_INVALID_ARGUMENT, PM_ERR_NO_MEMORY and the device's. */
pm_code pm_compose_background(struct pm_shim_model *model, const pm_rgba *img, const uint8_t *fg,
                              const uint8_t *matte, const pm_remove_options *opt,
                              const pm_rgba *picture, uint8_t *rgb_out, char *err, size_t errcap);

#endif
