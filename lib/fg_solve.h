/*
 * fg_solve.h - the per-pixel step of the multi-level foreground estimation, shared by
 * lib/foreground.c (the C version) and shim/foreground.cpp (its host levels), which
 * must agree byte for byte: one definition keeps the float operations in one order.
 */
#ifndef PETMATTE_FG_SOLVE_H
#define PETMATTE_FG_SOLVE_H

/* Solves one pixel's 2x2 system for (F, B), all three channels, with its neighbours
 * held fixed (pymatting's _estimate_fb_ml). a0: the pixel's alpha in [0, 1]; i: its
 * colour in [0, 1]; na: the 4 neighbours' alphas; nq: their F and B (6 floats each);
 * out: the pixel's new F and B, clamped to [0, 1]. */
static inline void pm_fg_solve_pixel(float a0, const float i[3], const float na[4], const float *const nq[4],
                                     float eps, float omega, float out[6]) {
    const float a1 = 1.0f - a0;
    float a00 = a0 * a0, a11 = a1 * a1;
    const float a01 = a0 * a1;
    float bf0 = a0 * i[0], bf1 = a0 * i[1], bf2 = a0 * i[2];
    float bb0 = a1 * i[0], bb1 = a1 * i[1], bb2 = a1 * i[2];
    for (int d = 0; d < 4; d++) {
        const float diff = a0 - na[d];
        const float da = eps + omega * (diff < 0.0f ? -diff : diff);
        const float *q = nq[d];
        a00 += da;
        a11 += da;
        bf0 += da * q[0];
        bf1 += da * q[1];
        bf2 += da * q[2];
        bb0 += da * q[3];
        bb1 += da * q[4];
        bb2 += da * q[5];
    }
    const float inv_det = 1.0f / (a00 * a11 - a01 * a01);
    const float b00 = inv_det * a11, b01 = inv_det * -a01, b11 = inv_det * a00;
    const float v[6] = {b00 * bf0 + b01 * bb0, b00 * bf1 + b01 * bb1, b00 * bf2 + b01 * bb2,
                        b01 * bf0 + b11 * bb0, b01 * bf1 + b11 * bb1, b01 * bf2 + b11 * bb2};
    for (int c = 0; c < 6; c++) out[c] = v[c] < 0.0f ? 0.0f : (v[c] > 1.0f ? 1.0f : v[c]);
}

#endif
