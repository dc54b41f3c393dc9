#!/usr/bin/env python3
"""Candidate rewrites of InSPyReNet Swin-B's hottest operations, each timed against
the form the exporter writes now, on a CUDA device (fp16, NHWC, the shapes of a
1024x1024 input). A measurement to decide what the exporter writes, not a test.

    python3 tools/gpu/op_rewrites.py [--runs 200]

  attention   Swin window attention of each stage, plain and shifted windows:
              matmul + bias (+ mask) + softmax + matmul as now, against
              scaled_dot_product_attention with the bias (and mask) as attn_mask,
              with the backend PyTorch picks and with the memory-efficient one forced
  conv1x1     a 1x1 convolution with a bias on an NHWC map (cuDNN, then a separate
              bias pass) against the same product as F.linear on the NHWC view
              (cuBLASLt adds the bias in the product's epilogue)
  upsample2x  a 2x bilinear resize (align_corners=False) of an NHWC map against the
              same stencil as two separable passes of lerps, and as two matrix
              products with the interpolation weights (model.resize_by_products)
  context     SICA's context sums: float32 copies of the map and the weights, then
              the products (the seventh session's form), against the products in
              the map's dtype with float32 partial sums (model.context_sums now)
  axial       the axial attention's value mix and residual: the NCHW-order view of
              an NHWC value map (a copy) against model.axial_mix's NHWC product
  value_fold  SICA's similarity x value product and the 3x3 convolution after it,
              against that convolution with the value vectors folded into its
              weights, reading the ctx-channel similarity map (as is, or padded to 8)
  layernorm   Swin's LayerNorm over C channels of [tokens, C] (F.layer_norm)
              against var_mean + two addcmul passes, and F.group_norm with one group

Every row prints the median time of a CUDA graph replay of 20 calls (divided by 20)
and the largest difference from the current form's result.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_util import graph_median_ms  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from inspyrenet import model as insp  # noqa: E402

REPS = 20  # calls per graph replay, so that launch gaps do not dominate small ops


def time_ms(fn, runs):
    """Median ms of one call of fn() and its output, from CUDA graph replays of REPS calls."""
    med, _, _, out = graph_median_ms(lambda _: fn(), None, runs, reps=REPS)
    return med, out


def row(name, ms, base_ms, diff):
    print(f"  {name:44s} {ms * 1e3:9.1f} us  {base_ms / ms:5.2f}x  max|d| {diff:.2e}", flush=True)


def attention(runs):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    n, d = 144, 32
    # stage: (windows, heads) at 1024x1024 (token maps 256, 128, 64, 32; window 12)
    stages = [(484, 4), (121, 8), (36, 16), (9, 32)]
    print("attention (per call; Swin-B runs 2, 2, 18, 2 blocks a stage, half of them shifted):")
    for nw, heads in stages:
        g = torch.Generator(device="cuda").manual_seed(0)
        c = heads * d
        qkv_out = torch.randn(nw, n, 3 * c, device="cuda", dtype=torch.half, generator=g)
        bias = 0.02 * torch.randn(1, heads, n, n, device="cuda", dtype=torch.half, generator=g)
        mask = torch.where(torch.rand(nw, n, n, device="cuda", generator=g) < 0.2, -100.0, 0.0).half()
        scale = d ** -0.5

        def current(with_mask):
            qkv = qkv_out.reshape(nw, n, 3, heads, d).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = (q * scale) @ k.transpose(-2, -1) + bias
            if with_mask:
                attn = (attn.view(1, nw, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, heads, n, n)
            attn = attn.softmax(dim=-1)
            return (attn @ v).transpose(1, 2).reshape(nw, n, c)

        def sdpa(with_mask):
            qkv = qkv_out.reshape(nw, n, 3, heads, d).permute(2, 0, 3, 1, 4)
            am = bias.expand(nw, heads, n, n)
            if with_mask:
                am = bias + mask.unsqueeze(1)
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=am)
            return out.transpose(1, 2).reshape(nw, n, c)

        for with_mask in (False, True):
            label = f"{nw} windows x {heads} heads, {'shifted' if with_mask else 'plain'}"
            base, ref = time_ms(lambda: current(with_mask), runs)
            row(label + ": now", base, base, 0.0)
            ms, out = time_ms(lambda: sdpa(with_mask), runs)
            row(label + ": sdpa (picked)", ms, base, (out.float() - ref.float()).abs().max().item())
            try:
                with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
                    ms, out = time_ms(lambda: sdpa(with_mask), runs)
                row(label + ": sdpa (efficient)", ms, base, (out.float() - ref.float()).abs().max().item())
            except RuntimeError as e:
                print(f"  {label}: sdpa (efficient) refused: {str(e).splitlines()[0][:120]}")


def conv1x1(runs):
    print("1x1 convolution + bias, NHWC:")
    for cin, cout, side in [(64, 8, 256), (64, 64, 256), (128, 64, 256), (64, 64, 512), (128, 64, 512),
                            (64, 8, 64), (256, 64, 64)]:
        g = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(1, cin, side, side, device="cuda", dtype=torch.half, generator=g)
        x = x.contiguous(memory_format=torch.channels_last)
        w = (torch.randn(cout, cin, 1, 1, device="cuda", dtype=torch.half, generator=g) / cin ** 0.5)
        w = w.contiguous(memory_format=torch.channels_last)
        b = torch.randn(cout, device="cuda", dtype=torch.half, generator=g)
        base, ref = time_ms(lambda: F.conv2d(x, w, b), runs)
        row(f"[1,{cin},{side},{side}] -> {cout}: conv2d", base, base, 0.0)
        ms, out = time_ms(lambda: F.linear(x.permute(0, 2, 3, 1), w.view(cout, cin), b).permute(0, 3, 1, 2), runs)
        row(f"[1,{cin},{side},{side}] -> {cout}: linear", ms, base, (out.float() - ref.float()).abs().max().item())


def rand(*shape, channels_last=False, scale=1.0, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    t = scale * torch.randn(*shape, device="cuda", dtype=torch.half, generator=g)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def upsample2x(runs):
    print("2x bilinear upsample (align_corners=False), NHWC:")

    def separable(x):
        # out[2i] = 0.25 x[i-1] + 0.75 x[i], out[2i+1] = 0.75 x[i] + 0.25 x[i+1], edges clamped;
        # in NHWC memory, interleaving along W and H is a stack and a free view.
        b, c, h, w = x.shape
        t = x.permute(0, 2, 3, 1)  # (b, h, w, c), contiguous
        left = torch.cat([t[:, :, :1], t[:, :, :-1]], dim=2)
        right = torch.cat([t[:, :, 1:], t[:, :, -1:]], dim=2)
        t = torch.stack([torch.lerp(t, left, 0.25), torch.lerp(t, right, 0.25)], dim=3).view(b, h, 2 * w, c)
        up = torch.cat([t[:, :1], t[:, :-1]], dim=1)
        down = torch.cat([t[:, 1:], t[:, -1:]], dim=1)
        t = torch.stack([torch.lerp(t, up, 0.25), torch.lerp(t, down, 0.25)], dim=2).view(b, 2 * h, 2 * w, c)
        return t.permute(0, 3, 1, 2)

    for c, side in [(64, 256), (64, 512), (1, 512)]:
        x = rand(1, c, side, side, channels_last=True)
        size = (2 * side, 2 * side)
        base, ref = time_ms(lambda: F.interpolate(x, size=size, mode="bilinear", align_corners=False), runs)
        row(f"[1,{c},{side},{side}]: interpolate", base, base, 0.0)
        ms, out = time_ms(lambda: separable(x), runs)
        row(f"[1,{c},{side},{side}]: separable lerps", ms, base, (out.float() - ref.float()).abs().max().item())
        ms, out = time_ms(lambda: insp.resize_by_products(x, 2 * side, 2 * side, False), runs)
        row(f"[1,{c},{side},{side}]: two matrix products", ms, base, (out.float() - ref.float()).abs().max().item())


def context(runs):
    print("SICA context sums (f NHWC, prob [1, ctx, h*w]; result float32):")

    def before(prob, f):
        return insp.context_sums(prob.to(torch.float32, copy=True), f.to(torch.float32, copy=True))

    for c, side, ctx in [(64, 1024, 5), (128, 512, 5), (128, 256, 3)]:
        f = rand(1, c, side, side, channels_last=True).relu()
        prob = rand(1, ctx, side * side, seed=1).sigmoid()
        base, ref = time_ms(lambda: before(prob, f), runs)
        row(f"[1,{c},{side},{side}] x {ctx}: float32 copies", base, base, 0.0)
        ms, out = time_ms(lambda: insp.context_sums(prob, f), runs)
        rel = ((out - ref).abs().max() / ref.abs().max()).item()
        row(f"[1,{c},{side},{side}] x {ctx}: in the map's dtype", ms, base, (out - ref).abs().max().item())
        print(f"  {'':44s} largest difference / largest sum: {rel:.2e}")


def axial(runs):
    print("axial attention value mix + gated residual (v, x NHWC; attn [1, w, w]):")
    for c, side in [(64, 256), (64, 128), (64, 64)]:
        x = rand(1, c, side, side, channels_last=True)
        v = rand(1, c, side, side, channels_last=True, seed=1)
        attn = torch.softmax(rand(1, side, side, seed=2).float(), -1).half()
        gamma = torch.full((1,), 0.1, device="cuda", dtype=torch.half)

        def before():
            out = torch.bmm(v.reshape(1, -1, side), attn.permute(0, 2, 1)).view(1, c, side, side)
            return torch.addcmul(x, gamma, out)

        base, ref = time_ms(before, runs)
        row(f"[1,{c},{side},{side}]: NCHW-order view", base, base, 0.0)
        ms, out = time_ms(lambda: torch.addcmul(x, gamma, insp.axial_mix(v, attn, side, True)), runs)
        row(f"[1,{c},{side},{side}]: NHWC product", ms, base, (out.float() - ref.float()).abs().max().item())


def value_fold(runs):
    print("SICA's similarity x value, then conv_out1 (3x3 conv + bias + ReLU), NHWC:")
    for side, ctx in [(1024, 5), (512, 5), (256, 3)]:
        depth = 64
        sim = torch.softmax(rand(1, side * side, ctx).float(), -1).half()  # [b, h*w, ctx]
        value = rand(1, ctx, depth, seed=1)
        w1 = rand(depth, depth, 3, 3, seed=2, scale=1 / 24, channels_last=True)
        b1 = rand(depth, seed=3, scale=0.05)

        def before():
            context = torch.bmm(sim, value).transpose(1, 2).view(1, depth, side, side)
            return insp.conv_bias_relu(context, w1, b1, [1, 1], [1, 1])

        def folded(pad_to):
            # conv(W1, V s) = conv(W1 V, s): the convolution is linear and zero padding
            # maps to zero padding, so it can read the ctx-channel similarity map.
            smap = sim.transpose(1, 2).view(1, ctx, side, side)
            wf = torch.einsum("ocyx,kc->okyx", w1.float(), value[0].float()).half()
            if pad_to > ctx:
                smap = F.pad(smap.permute(0, 2, 3, 1), (0, pad_to - ctx)).permute(0, 3, 1, 2)
                wf = F.pad(wf, (0, 0, 0, 0, 0, pad_to - ctx))
            wf = wf.contiguous(memory_format=torch.channels_last)
            return insp.conv_bias_relu(smap, wf, b1, [1, 1], [1, 1])

        base, ref = time_ms(before, runs)
        row(f"{side}x{side}, {ctx} contexts: bmm + conv 64->64", base, base, 0.0)
        for pad_to in (ctx, 8):
            ms, out = time_ms(lambda: folded(pad_to), runs)
            row(f"{side}x{side}: folded, conv {pad_to}->64", ms, base, (out.float() - ref.float()).abs().max().item())


def layernorm(runs):
    print("LayerNorm over the channels of [tokens, C] (Swin's stages at 1024x1024):")
    for tokens, c in [(65536, 128), (16384, 256), (4096, 512), (1024, 1024)]:
        x = rand(tokens, c, scale=2.0) + 0.5
        w = rand(c, seed=1, scale=0.05) + 1.0
        b = rand(c, seed=2, scale=0.05)

        def stats_form():
            var, mean = torch.var_mean(x, -1, keepdim=True, unbiased=False)
            a = torch.rsqrt(var.float() + 1e-5)
            y = torch.addcmul((-mean.float() * a).half(), x, a.half())
            return torch.addcmul(b, y, w)

        base, ref = time_ms(lambda: F.layer_norm(x, (c,), w, b, 1e-5), runs)
        row(f"[{tokens},{c}]: layer_norm", base, base, 0.0)
        ms, out = time_ms(stats_form, runs)
        row(f"[{tokens},{c}]: var_mean + 2 addcmul", ms, base, (out.float() - ref.float()).abs().max().item())
        ms, out = time_ms(lambda: F.group_norm(x, 1, w, b, 1e-5), runs)
        row(f"[{tokens},{c}]: group_norm, 1 group", ms, base, (out.float() - ref.float()).abs().max().item())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--only", default="attention,conv1x1,upsample2x,context,axial,layernorm")
    args = p.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, fp16", flush=True)
    for name in args.only.split(","):
        globals()[name](args.runs)


if __name__ == "__main__":
    main()
