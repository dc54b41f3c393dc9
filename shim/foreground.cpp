// foreground.cpp - clean-edges foreground estimation on the model's device: the
// method of lib/foreground.c (Germer et al., ICPR 2020; see docs/clean-edges.md)
// with skip_flat = 0, written as tensor ops so that it runs where the model runs.
//
// Same pyramid (sizes, nearest sampling from full resolution, F = B = I at 1x1,
// nearest start values from the previous level), same per-pixel 2x2 solve, same
// red-black order and iteration counts. What differs is float rounding only: the
// neighbour terms are summed in another order, and the CUDA kernels may fuse a
// multiply and an add.
//
// Layout. A level of h x w pixels is padded to even sizes he x we (he = 2*h2,
// we = 2*w2) and split by colour (x+y)&1 into two compact halves of he x w2: row y
// of colour c holds the pixels x = 2j + ((y+c)&1). In that layout a pixel's up and
// down neighbours sit at the same j one row away, one of its left/right neighbours
// at the same j ("same") and the other at j-1 or j+1 depending on the row's parity
// ("other"), which one as_strided view covers for all rows. A half-sweep is then
// a few whole-tensor ops over half the pixels, reading only the other colour.
// Each half keeps F and B (6 channels) with a ring of one zero cell, so shifted
// views never leave the tensor; weights towards the ring, and towards padding
// pixels, are 0. A border neighbour that the C code clamps to the pixel itself
// (weight eps) is added back on the four border strips.
//
// Small levels (at most kHostMaxPixels) run on the host in plain loops, in exactly
// the C code's arithmetic: on a GPU each of their 10 sweeps would cost a dozen
// kernel launches for a few thousand pixels. Their result (at most 1.5 MB) goes up
// once; the image goes up once, as 8-bit; only the RGB bytes come back.
#include "shim_internal.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#ifdef PETMATTE_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

extern "C" {
#include "../lib/foreground.h" // the method's parameters (PM_FG_*), one source of truth
#include "../lib/fg_solve.h"   // the per-pixel step, shared with foreground.c
}

namespace petmatte {
namespace {

// Levels up to this many pixels run on the host (256x256; 252x207 at 12 MP).
constexpr int64_t kHostMaxPixels = 65536;

struct Size {
    int w, h;
};

// round(W^(l/n)) x round(H^(l/n)), l = 0..n, n = ceil(log2(max(W,H))): as foreground.c.
std::vector<Size> level_sizes(int width, int height) {
    const int maxdim = width > height ? width : height;
    int n = 0;
    while ((1LL << n) < static_cast<long long>(maxdim)) n++;
    std::vector<Size> sizes;
    for (int l = 0; l <= n; l++) {
        int w = width, h = height;
        if (l < n) {
            const double e = double(l) / double(n);
            w = int(std::lround(std::pow(double(width), e)));
            h = int(std::lround(std::pow(double(height), e)));
            w = w < 1 ? 1 : (w > width ? width : w);
            h = h < 1 ? 1 : (h > height ? height : h);
        }
        sizes.push_back({w, h});
    }
    return sizes;
}

int iterations_for(const Size &s) {
    return (s.w <= PM_FG_SMALL_SIZE && s.h <= PM_FG_SMALL_SIZE) ? PM_FG_SMALL_ITERATIONS : PM_FG_BIG_ITERATIONS;
}

// Nearest sampling as pymatting's _resize_nearest: src = dst * n_src / n_dst.
void nearest_map(std::vector<int> &map, int n_dst, int n_src) {
    map.resize(size_t(n_dst));
    for (int i = 0; i < n_dst; i++) {
        const long long s = static_cast<long long>(i) * n_src / n_dst;
        map[size_t(i)] = int(s < n_src ? s : n_src - 1);
    }
}

// ---- host levels: foreground.c's loops, F and B as 6 floats a pixel, row-major ----

void host_update(const float *lut, const uint8_t *rgb, const uint8_t *al, float *fb, size_t i, const size_t nb[4]) {
    const float colour[3] = {lut[rgb[i * 3]], lut[rgb[i * 3 + 1]], lut[rgb[i * 3 + 2]]};
    const float na[4] = {lut[al[nb[0]]], lut[al[nb[1]]], lut[al[nb[2]]], lut[al[nb[3]]]};
    const float *const nq[4] = {fb + nb[0] * 6, fb + nb[1] * 6, fb + nb[2] * 6, fb + nb[3] * 6};
    pm_fg_solve_pixel(lut[al[i]], colour, na, nq, PM_FG_REGULARIZATION, PM_FG_GRADIENT_WEIGHT, fb + i * 6);
}

// Levels [0, count) on the host; returns the last one's F and B (w*h*6 floats).
std::vector<float> host_levels(const uint8_t *rgba, const uint8_t *alpha, int width, int height,
                               const std::vector<Size> &sizes, size_t count, const float *lut) {
    std::vector<float> prev, cur;
    std::vector<uint8_t> rgb, al;
    std::vector<int> xm, ym;
    for (size_t l = 0; l < count; l++) {
        const int w = sizes[l].w, h = sizes[l].h;
        const size_t W = size_t(w);
        rgb.resize(W * size_t(h) * 3);
        al.resize(W * size_t(h));
        nearest_map(xm, w, width);
        nearest_map(ym, h, height);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const size_t s = size_t(ym[size_t(y)]) * size_t(width) + size_t(xm[size_t(x)]);
                const size_t d = size_t(y) * W + size_t(x);
                std::memcpy(&rgb[d * 3], rgba + s * 4, 3);
                al[d] = alpha[s];
            }
        cur.assign(W * size_t(h) * 6, 0.0f);
        if (l == 0) {
            for (size_t p = 0; p < W * size_t(h); p++)
                for (int c = 0; c < 3; c++) cur[p * 6 + size_t(c)] = cur[p * 6 + 3 + size_t(c)] = lut[rgb[p * 3 + size_t(c)]];
        } else {
            const int pw = sizes[l - 1].w, ph = sizes[l - 1].h;
            nearest_map(xm, w, pw);
            nearest_map(ym, h, ph);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    std::memcpy(&cur[(size_t(y) * W + size_t(x)) * 6],
                                &prev[(size_t(ym[size_t(y)]) * size_t(pw) + size_t(xm[size_t(x)])) * 6],
                                6 * sizeof(float));
        }
        const int iters = iterations_for(sizes[l]);
        for (int it = 0; it < iters; it++)
            for (int colour = 0; colour < 2; colour++)
                for (int y = 0; y < h; y++)
                    for (int x = (y + colour) & 1; x < w; x += 2) {
                        const size_t i = size_t(y) * W + size_t(x);
                        const size_t nb[4] = {x > 0 ? i - 1 : i, x + 1 < w ? i + 1 : i, y > 0 ? i - W : i,
                                              y + 1 < h ? i + W : i}; // left, right, up, down
                        host_update(lut, rgb.data(), al.data(), cur.data(), i, nb);
                    }
        prev.swap(cur);
    }
    return prev;
}

// ---- device levels ------------------------------------------------------------------

// i * n_src / n_dst for i in [0, n), clamped to n_src - 1 (n may exceed n_dst: padding).
at::Tensor nearest_index(int64_t n, int64_t n_dst, int64_t n_src, const at::TensorOptions &longs) {
    return at::arange(n, longs).mul_(n_src).div_(n_dst, "floor").clamp_max_(n_src - 1);
}

// The colour-c pixels of a contiguous [C, he, we] tensor as a view [C, he/2, 2, we/2]:
// element (k, i, r, j) is pixel (y, x) = (2i + r, 2j + ((r + c) & 1)).
at::Tensor colour_view(const at::Tensor &full, int c) {
    const int64_t C = full.size(0), he = full.size(1), we = full.size(2);
    return full.as_strided({C, he / 2, 2, we / 2}, {he * we, 2 * we, c ? we - 1 : we + 1, 2},
                           full.storage_offset() + c);
}

struct Half {
    at::Tensor fb;                       // [6, he + 2, w2 + 2]: F, B with a zero ring
    at::Tensor own;                      // its interior, [6, h2, 2, w2]
    at::Tensor base, w_up, w_down, w_same, w_other, b00, b01, b11; // level constants, same shape
    at::Tensor up, down, same, other;    // the other colour's values seen from here
};

class DeviceLevel {
public:
    DeviceLevel(int w, int h, const at::TensorOptions &floats)
        : w_(w), h_(h), w2_((w + 1) / 2), h2_((h + 1) / 2), floats_(floats) {
        for (int c = 0; c < 2; c++) {
            half_[c].fb = at::zeros({6, 2 * h2_ + 2, w2_ + 2}, floats);
            half_[c].own = half_[c].fb.slice(1, 1, 2 * h2_ + 1).slice(2, 1, w2_ + 1).view({6, h2_, 2, w2_});
        }
        for (int c = 0; c < 2; c++) {
            const at::Tensor &other = half_[1 - c].fb;
            Half &me = half_[c];
            const int64_t he = 2 * h2_, rs = w2_ + 2, cs = (he + 2) * rs;
            me.up = other.slice(1, 0, he).slice(2, 1, w2_ + 1).view({6, h2_, 2, w2_});
            me.down = other.slice(1, 2, he + 2).slice(2, 1, w2_ + 1).view({6, h2_, 2, w2_});
            me.same = other.slice(1, 1, he + 1).slice(2, 1, w2_ + 1).view({6, h2_, 2, w2_});
            // Row y = 2i + r of colour c reads column j - 1 when (r + c) is even (its left
            // neighbour), j + 1 otherwise (its right one): one stride per row parity.
            me.other = other.as_strided({6, h2_, 2, w2_}, {cs, 2 * rs, c ? rs - 2 : rs + 2, 1},
                                        other.storage_offset() + rs + (c ? 2 : 0));
        }
        sum_ = at::empty({6, h2_, 2, w2_}, floats);
    }

    // The level's image (rgb [h, w, 3+] and matte [h, w], 8-bit, any strides) ->
    // the per-pixel constants of the solve, split by colour.
    void set_image(const at::Tensor &rgb8, const at::Tensor &alpha8) {
        const int64_t he = 2 * h2_, we = 2 * w2_, w = w_, h = h_;
        const at::Tensor k255 = at::scalar_tensor(255.0, floats_);
        at::Tensor img = at::empty({3, h, w}, floats_);
        img.copy_(rgb8.slice(2, 0, 3).permute({2, 0, 1}));
        img.div_(k255); // v / 255 as foreground.c's table (a true division, also on CUDA)
        const at::Tensor a0 = alpha8.to(at::kFloat).div_(k255);
        const at::Tensor a1 = a0.neg().add_(1.0);
        const float eps = PM_FG_REGULARIZATION;
        // d*: eps + omega*|a0 - a_neighbour| towards left, right, up, down; eps where the
        // neighbour is clamped to the pixel itself.
        at::Tensor dl = at::full({h, w}, eps, floats_), dr = at::full({h, w}, eps, floats_);
        at::Tensor du = at::full({h, w}, eps, floats_), dd = at::full({h, w}, eps, floats_);
        if (w > 1) {
            const at::Tensor d = (a0.slice(1, 1, w) - a0.slice(1, 0, w - 1)).abs_().mul_(PM_FG_GRADIENT_WEIGHT).add_(eps);
            dl.slice(1, 1, w).copy_(d);
            dr.slice(1, 0, w - 1).copy_(d);
        }
        if (h > 1) {
            const at::Tensor d = (a0.slice(0, 1, h) - a0.slice(0, 0, h - 1)).abs_().mul_(PM_FG_GRADIENT_WEIGHT).add_(eps);
            du.slice(0, 1, h).copy_(d);
            dd.slice(0, 0, h - 1).copy_(d);
        }
        at::Tensor a00 = a0 * a0, a11 = a1 * a1;
        a00.add_(dl).add_(dr).add_(du).add_(dd); // in foreground.c's order
        a11.add_(dl).add_(dr).add_(du).add_(dd);
        const at::Tensor a01 = a0 * a1;
        at::Tensor inv_det = a00 * a11;
        inv_det.sub_(a01 * a01).reciprocal_();

        // Constants: 0-5 a0*I, a1*I; 6 up, 7 down, 8 same, 9 other; 10-12 b00, b01, b11.
        // Zero on the padding, so padding pixels stay 0 and weigh nothing.
        at::Tensor k = at::zeros({13, he, we}, floats_);
        at::Tensor kv = k.slice(1, 0, h).slice(2, 0, w);
        const auto product_into = [](at::Tensor out, const at::Tensor &x, const at::Tensor &y) {
            at::mul_out(out, x, y); // out: a view of k
        };
        product_into(kv.slice(0, 0, 3), img, a0);
        product_into(kv.slice(0, 3, 6), img, a1);
        product_into(kv.select(0, 10), inv_det, a11);
        product_into(kv.select(0, 11), inv_det, a01.neg());
        product_into(kv.select(0, 12), inv_det, a00);
        // The weights of real neighbours only: clamped ones come back on the strips.
        dl.select(1, 0).zero_();
        dr.select(1, w - 1).zero_();
        du.select(0, 0).zero_();
        dd.select(0, h - 1).zero_();
        kv.select(0, 6).copy_(du);
        kv.select(0, 7).copy_(dd);
        // Pixel x = 2j + r: for even x "same" is the right neighbour, for odd x the left.
        const at::Tensor x_even = at::arange(w, floats_.dtype(at::kLong)).remainder_(2).eq(0);
        kv.select(0, 8).copy_(at::where(x_even, dr, dl));
        kv.select(0, 9).copy_(at::where(x_even, dl, dr));
        for (int c = 0; c < 2; c++) {
            const at::Tensor kc = colour_view(k, c).contiguous();
            Half &me = half_[c];
            me.base = kc.slice(0, 0, 6);
            me.w_up = kc.slice(0, 6, 7);
            me.w_down = kc.slice(0, 7, 8);
            me.w_same = kc.slice(0, 8, 9);
            me.w_other = kc.slice(0, 9, 10);
            me.b00 = kc.slice(0, 10, 11);
            me.b01 = kc.slice(0, 11, 12);
            me.b11 = kc.slice(0, 12, 13);
        }
    }

    // Start values: prev ([6, >= ph, >= pw], any strides) at the nearest position.
    void set_start(const at::Tensor &prev, int pw, int ph) {
        const at::TensorOptions longs = floats_.dtype(at::kLong);
        const at::Tensor full = prev.index_select(1, nearest_index(2 * h2_, h_, ph, longs))
                                    .index_select(2, nearest_index(2 * w2_, w_, pw, longs));
        for (int c = 0; c < 2; c++) half_[c].own.copy_(colour_view(full, c));
    }

    // Updates every pixel of colour c from the other colour's values.
    void half_sweep(int c) {
        Half &me = half_[c];
        at::addcmul_out(sum_, me.base, me.w_up, me.up);
        sum_.addcmul_(me.w_down, me.down);
        sum_.addcmul_(me.w_same, me.same);
        sum_.addcmul_(me.w_other, me.other);
        // Clamped neighbours: the pixel itself, weight eps, on the image's four borders
        // (a corner gets two; padding pixels in a strip hold 0 or are never read).
        const float eps = PM_FG_REGULARIZATION;
        const int64_t top_r = 0, bottom_i = (h_ - 1) / 2, bottom_r = (h_ - 1) & 1;
        const int64_t left_r = c, right_r = (((w_ - 1) & 1) + c) & 1, right_j = (w_ - 1) / 2;
        sum_.select(1, 0).select(1, top_r).add_(me.own.select(1, 0).select(1, top_r), eps);
        sum_.select(1, bottom_i).select(1, bottom_r).add_(me.own.select(1, bottom_i).select(1, bottom_r), eps);
        sum_.select(2, left_r).select(2, 0).add_(me.own.select(2, left_r).select(2, 0), eps);
        sum_.select(2, right_r).select(2, right_j).add_(me.own.select(2, right_r).select(2, right_j), eps);
        // F = b00*bf + b01*bb, B = b01*bf + b11*bb, clamped to [0,1].
        const at::Tensor sf = sum_.slice(0, 0, 3), sb = sum_.slice(0, 3, 6);
        at::Tensor f = me.own.slice(0, 0, 3), b = me.own.slice(0, 3, 6);
        at::mul_out(f, me.b00, sf);
        f.addcmul_(me.b01, sb);
        at::mul_out(b, me.b01, sf);
        b.addcmul_(me.b11, sb);
        me.own.clamp_(0.0, 1.0);
    }

    // F and B as [6, he, we] (the level is its top-left h x w).
    at::Tensor unpack() const {
        at::Tensor full = at::empty({6, 2 * h2_, 2 * w2_}, floats_);
        for (int c = 0; c < 2; c++) colour_view(full, c).copy_(half_[c].own);
        return full;
    }

    void release_constants() {
        for (Half &me : half_) me.base = me.w_up = me.w_down = me.w_same = me.w_other = me.b00 = me.b01 = me.b11 = at::Tensor();
        sum_ = at::Tensor();
    }

private:
    int64_t w_, h_, w2_, h2_;
    at::TensorOptions floats_;
    Half half_[2];
    at::Tensor sum_; // [6, h2, 2, w2] scratch: the right-hand sides of one half-sweep
};

void write_host_output(const uint8_t *rgba, const uint8_t *alpha, const std::vector<float> &fb, size_t n,
                       uint8_t *rgb_out) {
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < 3; c++)
            rgb_out[i * 3 + c] = alpha[i] == 255 ? rgba[i * 4 + c] : uint8_t(fb[i * 6 + c] * 255.0f + 0.5f);
}

void estimate_on_device(const c10::Device &device, const uint8_t *rgba, const uint8_t *alpha, int width,
                        int height, uint8_t *rgb_out) {
    const std::vector<Size> sizes = level_sizes(width, height);
    size_t n_host = 0;
    while (n_host < sizes.size() && int64_t(sizes[n_host].w) * sizes[n_host].h <= kHostMaxPixels) n_host++;

    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = float(v) / 255.0f;
    const std::vector<float> host_fb = host_levels(rgba, alpha, width, height, sizes, n_host, lut);
    const size_t n = size_t(width) * size_t(height);
    if (n_host == sizes.size()) { // a small image: nothing for the device
        write_host_output(rgba, alpha, host_fb, n, rgb_out);
        return;
    }

    const at::TensorOptions floats = at::TensorOptions().dtype(at::kFloat).device(device);
    const at::TensorOptions bytes = at::TensorOptions().dtype(at::kByte);
    // The 8-bit image and matte, uploaded once (on the CPU, .to() returns the same tensor).
    const at::Tensor rgba_d = at::from_blob(const_cast<uint8_t *>(rgba), {height, width, 4}, bytes).to(device);
    const at::Tensor alpha_d = at::from_blob(const_cast<uint8_t *>(alpha), {height, width}, bytes).to(device);
    // The last host level's F and B, [6, h, w].
    const Size top = sizes[n_host - 1];
    at::Tensor prev = at::from_blob(const_cast<float *>(host_fb.data()), {top.h, top.w, 6}, at::kFloat)
                          .to(device, /*non_blocking=*/false, /*copy=*/true)
                          .permute({2, 0, 1});
    int pw = top.w, ph = top.h;

    const at::TensorOptions longs = floats.dtype(at::kLong);
    std::unique_ptr<DeviceLevel> level;
    for (size_t l = n_host; l < sizes.size(); l++) {
        const Size s = sizes[l];
        level.reset(); // free the previous level before allocating this one
        level.reset(new DeviceLevel(s.w, s.h, floats));
        if (l + 1 == sizes.size()) {
            level->set_image(rgba_d, alpha_d);
        } else {
            const at::Tensor ys = nearest_index(s.h, s.h, height, longs), xs = nearest_index(s.w, s.w, width, longs);
            level->set_image(rgba_d.index_select(0, ys).index_select(1, xs),
                             alpha_d.index_select(0, ys).index_select(1, xs));
        }
        level->set_start(prev, pw, ph);
        prev = at::Tensor();
        const int iters = iterations_for(s);
        for (int it = 0; it < iters; it++)
            for (int colour = 0; colour < 2; colour++) level->half_sweep(colour);
        level->release_constants();
        prev = level->unpack();
        pw = s.w;
        ph = s.h;
    }
    level.reset();

    // 8 bits as foreground.c: the input colour where opaque, else (uint8)(F*255 + 0.5).
    const at::Tensor f8 = prev.slice(0, 0, 3).slice(1, 0, height).slice(2, 0, width).mul(255.0).add_(0.5).to(at::kByte);
    prev = at::Tensor();
    const at::Tensor out = at::where(alpha_d.eq(255).unsqueeze(2), rgba_d.slice(2, 0, 3), f8.permute({1, 2, 0}))
                               .contiguous();
    at::from_blob(rgb_out, {height, width, 3}, bytes).copy_(out);
}

} // namespace

void estimate_foreground(const c10::Device &device, const uint8_t *rgba, const uint8_t *alpha, int width,
                         int height, uint8_t *rgb_out) {
#ifdef PETMATTE_WITH_CUDA
    if (device.is_cuda()) {
        c10::cuda::CUDAGuard device_guard(device);
        // On the current stream: pm_shim_estimate_foreground makes that one of the
        // model's I/O streams (cuda_runner.cpp), whose allocator cache is reused call
        // after call instead of growing one cache per pool stream.
        estimate_on_device(device, rgba, alpha, width, height, rgb_out);
        return;
    }
#endif
    estimate_on_device(device, rgba, alpha, width, height, rgb_out);
}

} // namespace petmatte
