// foreground.cpp - clean-edges foreground estimation on the model's device: the
// levels of a pm_fg_plan (shim.h) as tensor ops. lib/foreground.c owns the method
// (Germer et al., ICPR 2020; see docs/clean-edges.md): it plans the pyramid (level
// sizes, iteration counts, nearest maps), runs the small levels on the host and
// hands over the rest; this file only sweeps what the plan says, so that it runs
// where the model runs.
//
// Each level samples the image at the plan's maps, starts from the previous level's
// F and B at the plan's maps, and runs the plan's red-black sweeps with the same
// per-pixel 2x2 solve as the C version. What differs is float rounding only: the
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
// Transfers: the image goes up once, as 8-bit, with the host levels' result; only
// the RGB bytes come back. The caller makes the device and stream current.
#include "shim_internal.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

namespace petmatte {
namespace {

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
    DeviceLevel(int w, int h, float eps, float omega, const at::TensorOptions &floats)
        : w_(w), h_(h), w2_((w + 1) / 2), h2_((h + 1) / 2), eps_(eps), omega_(omega), floats_(floats) {
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
        // The constants' temporaries are gone before the split, so that at most two
        // copies of the constants exist at once.
        const at::Tensor k = constants(rgb8, alpha8);
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

private:
    // [13, he, we]: 0-5 a0*I, a1*I; 6 up, 7 down, 8 same, 9 other; 10-12 b00, b01, b11.
    at::Tensor constants(const at::Tensor &rgb8, const at::Tensor &alpha8) const {
        const int64_t he = 2 * h2_, we = 2 * w2_, w = w_, h = h_;
        const at::Tensor k255 = at::scalar_tensor(255.0, floats_);
        at::Tensor img = at::empty({3, h, w}, floats_);
        img.copy_(rgb8.slice(2, 0, 3).permute({2, 0, 1}));
        img.div_(k255); // v / 255 as foreground.c's table (a true division, also on CUDA)
        const at::Tensor a0 = alpha8.to(at::kFloat).div_(k255);
        const at::Tensor a1 = a0.neg().add_(1.0);
        const float eps = eps_;
        // d*: eps + omega*|a0 - a_neighbour| towards left, right, up, down; eps where the
        // neighbour is clamped to the pixel itself.
        at::Tensor dl = at::full({h, w}, eps, floats_), dr = at::full({h, w}, eps, floats_);
        at::Tensor du = at::full({h, w}, eps, floats_), dd = at::full({h, w}, eps, floats_);
        if (w > 1) {
            const at::Tensor d = (a0.slice(1, 1, w) - a0.slice(1, 0, w - 1)).abs_().mul_(omega_).add_(eps);
            dl.slice(1, 1, w).copy_(d);
            dr.slice(1, 0, w - 1).copy_(d);
        }
        if (h > 1) {
            const at::Tensor d = (a0.slice(0, 1, h) - a0.slice(0, 0, h - 1)).abs_().mul_(omega_).add_(eps);
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
        return k;
    }

public:

    // Start values: prev ([6, >= ph, >= pw], any strides) at rows ys and columns xs
    // (index tensors of he and we entries; see padded_index).
    void set_start(const at::Tensor &prev, const at::Tensor &ys, const at::Tensor &xs) {
        const at::Tensor full = prev.index_select(1, ys).index_select(2, xs);
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
        const float eps = eps_;
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
    float eps_, omega_;
    at::TensorOptions floats_;
    Half half_[2];
    at::Tensor sum_; // [6, h2, 2, w2] scratch: the right-hand sides of one half-sweep
};

// Checks that every value of the plan is in range, so that no index reaches a
// device kernel out of bounds.
void check_map(const int32_t *map, int n, int limit, const char *what, int level) {
    if (!map) fail(PM_ERR_INVALID_ARGUMENT, "clean edges: level %d: NULL %s map", level, what);
    for (int i = 0; i < n; i++)
        if (map[i] < 0 || map[i] >= limit)
            fail(PM_ERR_INVALID_ARGUMENT, "clean edges: level %d: %s map entry %d is %d, outside 0..%d", level, what,
                 i, int(map[i]), limit - 1);
}

void check_plan(const pm_fg_plan &plan, int width, int height) {
    if (plan.levels < 1 || !plan.level || !plan.start_fb)
        fail(PM_ERR_INVALID_ARGUMENT, "clean edges: the plan needs at least one level and a start");
    if (plan.start_width < 1 || plan.start_width > width || plan.start_height < 1 || plan.start_height > height)
        fail(PM_ERR_INVALID_ARGUMENT, "clean edges: bad start size %dx%d for a %dx%d image", plan.start_width,
             plan.start_height, width, height);
    if (!std::isfinite(plan.regularization) || !(plan.regularization > 0.0f) ||
        !std::isfinite(plan.gradient_weight) || !(plan.gradient_weight >= 0.0f))
        fail(PM_ERR_INVALID_ARGUMENT, "clean edges: bad weights (regularization %g, gradient %g)",
             double(plan.regularization), double(plan.gradient_weight));
    if (plan.band_pixels < 0)
        fail(PM_ERR_INVALID_ARGUMENT, "clean edges: bad band size %lld pixels", (long long)plan.band_pixels);
    int pw = plan.start_width, ph = plan.start_height;
    for (int l = 0; l < plan.levels; l++) {
        const pm_fg_level &L = plan.level[l];
        if (L.width < 1 || L.width > width || L.height < 1 || L.height > height || L.iterations < 0)
            fail(PM_ERR_INVALID_ARGUMENT, "clean edges: level %d: bad size %dx%d or iterations %d", l, L.width,
                 L.height, L.iterations);
        if (!L.x_full != !L.y_full || (!L.x_full && (L.width != width || L.height != height)))
            fail(PM_ERR_INVALID_ARGUMENT, "clean edges: level %d: the image maps are NULL but the level is not %dx%d",
                 l, width, height);
        if (L.x_full) {
            check_map(L.x_full, L.width, width, "x_full", l);
            check_map(L.y_full, L.height, height, "y_full", l);
        }
        check_map(L.x_prev, L.width, pw, "x_prev", l);
        check_map(L.y_prev, L.height, ph, "y_prev", l);
        pw = L.width;
        ph = L.height;
    }
    if (pw != width || ph != height)
        fail(PM_ERR_INVALID_ARGUMENT, "clean edges: the last level is %dx%d, not the image's %dx%d", pw, ph, width,
             height);
}

// Every level's maps as index tensors on the device, uploaded together: a copy from
// host memory waits for the stream, so one copy before the first kernel rather than
// one per level behind the previous level's sweeps. Entries past a map's end index
// padding pixels (odd level sizes), whose values no real pixel reads: they repeat
// the last entry.
struct LevelIndex {
    at::Tensor x_full, y_full, x_prev, y_prev; // x_full, y_full undefined where the plan's are NULL
};

std::vector<LevelIndex> upload_maps(const pm_fg_plan &plan, const c10::Device &device) {
    std::vector<int64_t> host;
    const auto append = [&host](const int32_t *map, int64_t n, int64_t size) {
        const int64_t offset = int64_t(host.size());
        for (int64_t i = 0; i < size; i++) host.push_back(map[i < n ? i : n - 1]);
        return offset;
    };
    const auto even = [](int n) { return 2 * ((int64_t(n) + 1) / 2); };
    std::vector<int64_t> offsets; // per level: x_full, y_full (or -1), x_prev, y_prev
    for (int l = 0; l < plan.levels; l++) {
        const pm_fg_level &L = plan.level[l];
        offsets.push_back(L.x_full ? append(L.x_full, L.width, L.width) : -1);
        offsets.push_back(L.y_full ? append(L.y_full, L.height, L.height) : -1);
        offsets.push_back(append(L.x_prev, L.width, even(L.width)));
        offsets.push_back(append(L.y_prev, L.height, even(L.height)));
    }
    const at::Tensor all = at::from_blob(host.data(), {int64_t(host.size())}, at::kLong)
                               .to(device, /*non_blocking=*/false, /*copy=*/true);
    std::vector<LevelIndex> index(size_t(plan.levels));
    for (int l = 0; l < plan.levels; l++) {
        const pm_fg_level &L = plan.level[l];
        const int64_t *o = &offsets[size_t(l) * 4];
        LevelIndex &ix = index[size_t(l)];
        if (L.x_full) {
            ix.x_full = all.narrow(0, o[0], L.width);
            ix.y_full = all.narrow(0, o[1], L.height);
        }
        ix.x_prev = all.narrow(0, o[2], even(L.width));
        ix.y_prev = all.narrow(0, o[3], even(L.height));
    }
    return index;
}

} // namespace

namespace {

// Rows of a level swept together: a level larger than plan.band_pixels runs in bands
// of this many rows (even, so that a band's colours are the image's), each swept with
// a halo of rows above and below; 0: the whole level at once.
int band_rows(const pm_fg_plan &plan, const pm_fg_level &L) {
    if (plan.band_pixels <= 0 || int64_t(L.width) * L.height <= plan.band_pixels) return L.height;
    const int64_t rows = std::max<int64_t>(2, (plan.band_pixels / L.width) & ~int64_t(1));
    return int(std::min<int64_t>(rows, L.height));
}

// A halo row is only wrong through the band's cut: its missing neighbour (weight and
// value) makes the rows at the cut wrong, and each half-sweep carries that one row
// further. Past 2 * iterations rows from the cut every value is the whole level's,
// bit for bit (every op is per pixel). Even, so that bands start on even rows.
int halo_rows(const pm_fg_level &L) { return 2 * L.iterations + 2; }

} // namespace

void estimate_foreground(const c10::Device &device, const uint8_t *rgba, const uint8_t *alpha, int width, int height,
                         const pm_fg_plan &plan, uint8_t *rgb_out) {
    check_plan(plan, width, height);
    const at::TensorOptions floats = at::TensorOptions().dtype(at::kFloat).device(device);
    const at::TensorOptions bytes = at::TensorOptions().dtype(at::kByte);
    // The 8-bit image and matte, uploaded once (on the CPU, .to() returns the same tensor).
    const at::Tensor rgba_d = at::from_blob(const_cast<uint8_t *>(rgba), {height, width, 4}, bytes).to(device);
    const at::Tensor alpha_d = at::from_blob(const_cast<uint8_t *>(alpha), {height, width}, bytes).to(device);
    // The host levels' F and B, [6, h, w].
    at::Tensor prev = at::from_blob(const_cast<float *>(plan.start_fb), {plan.start_height, plan.start_width, 6},
                                    at::kFloat)
                          .to(device, /*non_blocking=*/false, /*copy=*/true)
                          .permute({2, 0, 1});

    const std::vector<LevelIndex> index = upload_maps(plan, device);
    // The result, 8-bit RGB, filled band by band and fetched once at the end: a copy
    // to the host per band would make the host wait for each band before it queues
    // the next.
    const at::Tensor host_out = at::from_blob(rgb_out, {height, width, 3}, bytes);
    const at::Tensor out8 = device.is_cpu() ? host_out : at::empty({height, width, 3}, bytes.device(device));

    for (int l = 0; l < plan.levels; l++) {
        const pm_fg_level &L = plan.level[l];
        const LevelIndex &ix = index[size_t(l)];
        const bool last = l == plan.levels - 1;
        const int rows = band_rows(plan, L);
        const int halo = rows < L.height ? halo_rows(L) : 0;
        // F and B of the whole level, the next level's start (the last level's bands go
        // straight to out8).
        at::Tensor next = last ? at::Tensor() : at::empty({6, L.height, L.width}, floats);
        for (int y0 = 0; y0 < L.height; y0 += rows) {
            const int y1 = std::min(L.height, y0 + rows);
            const int a = std::max(0, y0 - halo), b = std::min(L.height, y1 + halo);
            const int band_h = b - a, padded_h = band_h + (band_h & 1);
            DeviceLevel level(L.width, band_h, plan.regularization, plan.gradient_weight, floats);
            if (!L.x_full) {
                level.set_image(rgba_d.narrow(0, a, band_h), alpha_d.narrow(0, a, band_h));
            } else {
                const at::Tensor ys = ix.y_full.narrow(0, a, band_h);
                level.set_image(rgba_d.index_select(0, ys).index_select(1, ix.x_full),
                                alpha_d.index_select(0, ys).index_select(1, ix.x_full));
            }
            // y_prev has an entry for every padded row of the level, so also for a
            // padded last band.
            level.set_start(prev, ix.y_prev.narrow(0, a, padded_h), ix.x_prev);
            for (int it = 0; it < L.iterations; it++)
                for (int colour = 0; colour < 2; colour++) level.half_sweep(colour);
            level.release_constants();
            const at::Tensor fb = level.unpack().narrow(1, y0 - a, y1 - y0).narrow(2, 0, L.width);
            if (!last) {
                next.narrow(1, y0, y1 - y0).copy_(fb);
                continue;
            }
            // 8 bits as foreground.c: the input colour where opaque, else (uint8)(F*255 + 0.5).
            const at::Tensor f8 = fb.slice(0, 0, 3).mul(255.0).add_(0.5).to(at::kByte).permute({1, 2, 0});
            const at::Tensor opaque = alpha_d.narrow(0, y0, y1 - y0).eq(255).unsqueeze(2);
            out8.narrow(0, y0, y1 - y0).copy_(at::where(opaque, rgba_d.narrow(0, y0, y1 - y0).slice(2, 0, 3), f8));
        }
        prev = next;
    }
    if (!device.is_cpu()) host_out.copy_(out8);
}

} // namespace petmatte
