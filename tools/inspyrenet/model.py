"""InSPyReNet (Kim et al., "Revisiting Image Pyramid Structure for High Resolution
Salient Object Detection", ACCV 2022) with the Swin-B backbone, written for libpetmatte.

Inference form only: one pass of the saliency pyramid (what upstream runs when the
input is at or below its pyramid-blending threshold, and what its TorchScript route
traces). The module tree reproduces the official checkpoints' state_dict key for key
and shape for shape (`ckpt_base.pth`, `ckpt_fast.pth`: depth 64, backbone channels
[128, 128, 256, 512, 1024]); load them with `strict=True`.

Output: a probability map `sigmoid(d0)` of shape [N, 1, H, W]. The per-image min-max
stretch that upstream applies afterwards is left to libpetmatte (manifest
`"normalize": "minmax"`, the same formula (p - min) / (max - min + 1e-8)).

Several operations are reproduced exactly as the checkpoints were trained with them,
even where they look unusual; changing any of them changes the output:
  * the axial self-attention reshapes a [B, C, H, W] map to (B, -1, axis) in NCHW
    element order (upstream's `view`: a memory reinterpretation, not a transpose);
  * SICA flattens its resized feature map [B, C, h, w] to (B, h*w, -1), again a
    reinterpretation of NCHW order;
  * these use `reshape`, which gives upstream's result for NCHW tensors (where it is
    the same view) and also for channels_last ones (where it copies), so the file
    runs in either memory order;
  * SICA resizes to a fixed "stage size" derived from `base_size`, not from the input;
  * the decoder concatenates its inputs coarsest first.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .swin import swin_b


@torch.jit.script
def conv_bias_relu(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   padding: List[int], dilation: List[int]) -> torch.Tensor:
    """relu(conv2d(x) + bias), stride 1. On CUDA, for the layout libpetmatte runs
    (input and weights NHWC, one dtype), one cuDNN call that applies the bias and the
    ReLU to the convolution's accumulator (PyTorch's conv2d adds a bias in a second
    pass over the output, and ReLU is a third); otherwise the plain ops, which also
    keeps the file usable under torch.autocast (fp16 input, fp32 weights: cuDNN has no
    fused engine for that mix). Scripted, so a traced file keeps both branches."""
    if (x.is_cuda and x.dtype == weight.dtype and x.is_contiguous(memory_format=torch.channels_last)
            and weight.is_contiguous(memory_format=torch.channels_last)):
        return torch.cudnn_convolution_relu(x, weight, bias, [1, 1], padding, dilation, 1)
    return torch.relu(F.conv2d(x, weight, bias, [1, 1], padding, dilation, 1))


@torch.jit.script
def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """conv2d with a 1x1 kernel (stride 1, no padding). On CUDA, for NHWC input of the
    weights' dtype, the same product as a matrix product over the pixels (F.linear on
    the NHWC view, whose result is NHWC again): cuBLASLt adds the bias in the product's
    epilogue, where cuDNN's convolution leaves it to a second pass over the output.
    Otherwise the plain convolution. Scripted, so a traced file keeps both branches."""
    if x.is_cuda and x.dtype == weight.dtype and x.is_contiguous(memory_format=torch.channels_last):
        out = F.linear(x.permute(0, 2, 3, 1), weight.reshape(weight.shape[0], weight.shape[1]), bias)
        return out.permute(0, 3, 1, 2)
    return F.conv2d(x, weight, bias)


def resize_matrix(n_out: int, n_in: int, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """[n_out, n_in]: row i holds the weights F.interpolate's bilinear formula gives
    the n_in source positions for output position i along one axis: the identity
    matrix resized along its first axis (computed in float64 and stored in like's
    dtype and device; for a doubling, 0.25 and 0.75, exact in any dtype)."""
    eye = torch.eye(n_in, dtype=torch.float64, device=like.device).view(1, 1, n_in, n_in)
    m = F.interpolate(eye, size=[n_out, n_in], mode="bilinear", align_corners=align_corners)
    return m.view(n_out, n_in).to(like.dtype)


def resize_by_products(x: torch.Tensor, height: int, width: int, align_corners: bool) -> torch.Tensor:
    """Bilinear resize of a map in NHWC memory order as two matrix products with
    resize_matrix's weights: along the columns, one product per image row (the
    weights shared: a stride-0 batch), then along the rows, one product over the
    whole [h, w*c] image. Bilinear resizing is separable, so this is F.interpolate's
    formula (the intermediate rounded once more to the map's dtype); the products
    multiply mostly zeros, which tensor cores do faster than PyTorch's NHWC kernel
    gathers four pixels per output element. The output is NHWC-ordered again."""
    b, c, h, w = x.shape
    t = x.permute(0, 2, 3, 1).reshape(b * h, w, c)  # image rows, a view
    mw = resize_matrix(width, w, align_corners, x)
    cols = torch.bmm(mw.expand(b * h, width, w), t).view(b, h, width * c)
    # A square map resized to a square (every resize in this model) has one matrix.
    mh = mw if (height, h) == (width, w) else resize_matrix(height, h, align_corners, x)
    rows = torch.matmul(mh, cols)  # [b, height, width * c]
    return rows.view(b, height, width, c).permute(0, 3, 1, 2)


@torch.jit.script
def resize_bilinear(x: torch.Tensor, height: int, width: int, align_corners: bool,
                    by_products: bool) -> torch.Tensor:
    """F.interpolate(x, (height, width), 'bilinear', align_corners), through
    resize_by_products when by_products and x is a map of several channels in NHWC
    order (the layout libpetmatte runs on CUDA) with no side longer than 1024 (the
    products' work grows with the cube of the side; at 1024 they were still
    faster). Scripted, so a traced file keeps both branches."""
    if (by_products and x.shape[1] > 1 and max([height, width, x.shape[2], x.shape[3]]) <= 1024
            and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)):
        return resize_by_products(x, height, width, align_corners)
    return F.interpolate(x, size=[height, width], mode="bilinear", align_corners=align_corners)


@torch.jit.script
def axial_mix(v: torch.Tensor, attn: torch.Tensor, axis: int, nhwc: bool) -> torch.Tensor:
    """The axial attention's output, upstream's bmm(v.view(b, -1, axis), attn^T) viewed
    back as [b, c, h, w]: out[b, c, y, i] = sum_j v[b, c, y, j] * attn[b, i, j] when each
    row of that view is one image row (axis == w; the 'h' mode's rows are image rows
    too when h == w, as at every square input size). Then, for a value map in NHWC
    order and nhwc set, the same sums as one batched product per image over the image
    rows, reading v and writing the output in NHWC order (the attention matrix shared
    by every row: a stride-0 batch), where the view would first copy v to NCHW order and
    leave an NCHW result for the NHWC residual to read across. Scripted, so a traced
    file keeps both branches."""
    b, c, h, w = v.shape
    if (nhwc and axis == w and not v.is_contiguous()
            and v.is_contiguous(memory_format=torch.channels_last)):
        rows = v.permute(0, 2, 3, 1)  # [b, h, w, c], contiguous
        out = torch.empty_like(rows)
        for i in range(b):
            torch.bmm(attn[i].expand(h, w, w), rows[i], out=out[i])
        return out.permute(0, 3, 1, 2)
    return torch.bmm(v.reshape(b, -1, axis), attn.permute(0, 2, 1)).view(b, c, h, w)


def fold_bn_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv's weight and bias become those of conv followed by bn (eval statistics):
    w * g / sqrt(var + eps), (b - mean) * g / sqrt(var + eps) + beta, computed in
    float64."""
    with torch.no_grad():
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
        conv.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
        conv.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + bn.bias.double())
                                 .to(conv.weight.dtype), requires_grad=False)


class ConvBN(nn.Module):
    """Conv2d with 'same' padding (odd kernels), no bias by default, then optional
    BatchNorm and ReLU. Attribute names (`conv`, `bn`) match the checkpoints; with
    bn=False there is no `bn` entry at all."""

    def __init__(self, cin: int, cout: int, kernel, dilation: int = 1, bias: bool = False,
                 bn: bool = True, relu: bool = False):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        self.conv = nn.Conv2d(cin, cout, (kh, kw), stride=1, padding=pad, dilation=dilation, bias=bias)
        self.bn = nn.BatchNorm2d(cout) if bn else None
        self.relu = nn.ReLU(inplace=True) if relu else None
        self.pointwise_as_product = (kh, kw) == (1, 1)  # see pointwise_conv; set_pointwise

    def forward(self, x):
        if self.bn is None and self.relu is not None:  # folded (fold_batchnorm), or no BatchNorm
            conv = self.conv
            return conv_bias_relu(x, conv.weight, conv.bias, list(conv.padding), list(conv.dilation))
        if self.bn is None and self.pointwise_as_product:
            return pointwise_conv(x, self.conv.weight, self.conv.bias)
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x

    def fold_batchnorm(self) -> None:
        """Merges the BatchNorm (its running statistics: eval mode) into the convolution:
        w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps) + beta,
        computed in float64. One kernel a layer instead of two; the state_dict then no
        longer matches the checkpoints' (no `bn` entries, a conv bias)."""
        if self.bn is None:
            return
        fold_bn_into(self.conv, self.bn)
        self.bn = None


def fp32_branch(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Runs a Sequential of ConvBN (eval mode) in float32 whatever the weights' dtype:
    the same operations as calling it, with every weight read through .float() (a
    no-op for float32 weights)."""
    for m in seq:
        conv = m.conv
        x = F.conv2d(x, conv.weight.float(), None if conv.bias is None else conv.bias.float(),
                     conv.stride, conv.padding, conv.dilation, conv.groups)
        if m.bn is not None:
            bn = m.bn
            x = F.batch_norm(x, bn.running_mean.float(), bn.running_var.float(), bn.weight.float(),
                             bn.bias.float(), False, 0.0, bn.eps)
        if m.relu is not None:
            x = F.relu(x)
    return x


class AxialAttention(nn.Module):
    """Self-attention along one axis ('h' or 'w'), with a learned residual gate.

    The projected maps are reshaped to (B, -1, axis) in NCHW order: for 'w' that groups
    each row, for 'h' it reinterprets memory (the trained behaviour, kept as is)."""

    def __init__(self, channels: int, mode: str):
        super().__init__()
        self.mode = mode
        self.query_conv = ConvBN(channels, channels // 8, 1)
        self.key_conv = ConvBN(channels, channels // 8, 1)
        self.value_conv = ConvBN(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.mix_nhwc = True  # axial_mix's NHWC product; InSPyReNet.set_rewrites

    def forward(self, x):
        b, c, h, w = x.shape
        axis = 1
        if "h" in self.mode:
            axis *= h
        if "w" in self.mode:
            axis *= w
        q = self.query_conv(x).reshape(b, -1, axis).permute(0, 2, 1)
        k = self.key_conv(x).reshape(b, -1, axis)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)
        out = axial_mix(self.value_conv(x), attn, axis, self.mix_nhwc)
        return torch.addcmul(x, self.gamma, out)  # x + gamma * out, one pass


class PAAKernel(nn.Module):
    """One receptive-field branch of the Pyramid Axial Attention encoder (PAA_kernel)."""

    def __init__(self, cin: int, cout: int, receptive: int):
        super().__init__()
        self.conv0 = ConvBN(cin, cout, 1)
        self.conv1 = ConvBN(cout, cout, (1, receptive))
        self.conv2 = ConvBN(cout, cout, (receptive, 1))
        self.conv3 = ConvBN(cout, cout, 3, dilation=receptive)
        self.Hattn = AxialAttention(cout, "h")
        self.Wattn = AxialAttention(cout, "w")

    def forward(self, x):
        x = self.conv2(self.conv1(self.conv0(x)))
        return self.conv3(self.Hattn(x) + self.Wattn(x))


class PAAEncoder(nn.Module):
    """Context module (upstream PAA_e): four branches, concatenated, plus a residual."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.branch0 = ConvBN(cin, cout, 1)
        self.branch1 = PAAKernel(cin, cout, 3)
        self.branch2 = PAAKernel(cin, cout, 5)
        self.branch3 = PAAKernel(cin, cout, 7)
        self.conv_cat = ConvBN(4 * cout, cout, 3)
        self.conv_res = ConvBN(cin, cout, 1)

    def forward(self, x):
        cat = torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)
        return self.relu(self.conv_cat(cat) + self.conv_res(x))


class PAADecoder(nn.Module):
    """Upstream PAA_d: fuses the three coarsest context maps at the finest of them."""

    def __init__(self, cin: int, depth: int = 64, cout: int = 1):
        super().__init__()
        self.conv1 = ConvBN(cin, depth, 3)
        self.conv2 = ConvBN(depth, depth, 3)
        self.conv3 = ConvBN(depth, depth, 3)
        self.conv4 = ConvBN(depth, depth, 3)
        self.conv5 = ConvBN(depth, cout, 3, bn=False)
        self.Hattn = AxialAttention(depth, "h")
        self.Wattn = AxialAttention(depth, "w")
        self.resize_as_products = True  # resize_bilinear; InSPyReNet.set_rewrites

    def forward(self, fine, mid, coarse) -> Tuple[torch.Tensor, torch.Tensor]:
        h, w = fine.shape[-2], fine.shape[-1]
        mid = resize_bilinear(mid, h, w, True, self.resize_as_products)
        coarse = resize_bilinear(coarse, h, w, True, self.resize_as_products)
        x = self.conv1(torch.cat([coarse, mid, fine], dim=1))
        x = self.conv2(self.Hattn(x) + self.Wattn(x))
        x = self.conv4(self.conv3(x))
        return x, self.conv5(x)


class SICA(nn.Module):
    """Scale-Invariant Context Attention: refines features with class-conditional
    context vectors pooled by the (upsampled) coarser saliency / Laplacian maps."""

    def __init__(self, cin: int, depth: int, stage_size: Tuple[int, int], lmap_in: bool,
                 cout: int = 1):
        super().__init__()
        self.depth = depth
        self.lmap_in = lmap_in
        self.stage_size = stage_size
        self.ctx = 5 if lmap_in else 3
        self.conv_query = nn.Sequential(ConvBN(cin, depth, 3, relu=True), ConvBN(depth, depth, 3, relu=True))
        self.conv_key = nn.Sequential(ConvBN(cin, depth, 1, relu=True), ConvBN(depth, depth, 1, relu=True))
        self.conv_value = nn.Sequential(ConvBN(cin, depth, 1, relu=True), ConvBN(depth, depth, 1, relu=True))
        self.conv_out1 = ConvBN(depth, depth, 3, relu=True)
        self.conv_out2 = ConvBN(cin + depth, depth, 3, relu=True)
        self.conv_out3 = ConvBN(depth, depth, 3, relu=True)
        self.conv_out4 = ConvBN(depth, cout, 1)
        self.threshold = nn.Parameter(torch.tensor([0.5]))
        if lmap_in:
            self.lthreshold = nn.Parameter(torch.tensor([0.5]))
        # InSPyReNet.set_rewrites: resize_bilinear's products; context sums read
        # from the map in its own dtype (context_sums) rather than a float32 copy.
        self.resize_as_products = True
        self.context_in_map_dtype = True

    def forward(self, x, smap, lmap: Optional[torch.Tensor] = None):
        b, c, h, w = x.shape
        smap = torch.sigmoid(F.interpolate(smap, size=(h, w), mode="bilinear", align_corners=False))
        p = smap - self.threshold
        probs = [torch.clip(p, 0, 1), torch.clip(-p, 0, 1), self.threshold - torch.abs(p)]
        if self.lmap_in:
            assert lmap is not None
            lmap = torch.sigmoid(F.interpolate(lmap, size=(h, w), mode="bilinear", align_corners=False))
            lp = lmap - self.lthreshold
            probs += [torch.clip(lp, 0, 1), torch.clip(-lp, 0, 1)]
        prob = torch.cat(probs, dim=1)

        sh, sw = self.stage_size
        # The context vectors are sums over the whole stage map (a million pixels at
        # base size 1024), far beyond fp16's range: they are summed in float32
        # (context_sums), and the small key/value branches that read them run in
        # float32 whatever the module's dtype. In float32 this is exactly upstream's
        # computation, up to the order of the sums. Resizing to the size a map
        # already has is skipped (bilinear, align_corners=False, same size: the
        # identity).
        f = x if (h, w) == (sh, sw) else resize_bilinear(x, sh, sw, False, self.resize_as_products)
        if prob.shape[-2:] != (sh, sw):
            prob = resize_bilinear(prob, sh, sw, False, self.resize_as_products)
        if not self.context_in_map_dtype:
            # Without the "context" rewrite: float32 copies of both (copy=True: when
            # tracing in float32 a no-op .to() would hand back x itself, and the
            # tracer would then record every later use of x as the copy).
            f = f.to(torch.float32, copy=True)
            prob = prob.to(torch.float32, copy=True)
        prob = prob.reshape(b, self.ctx, sh * sw)
        context = context_sums(prob, f).permute(0, 2, 1).unsqueeze(3)  # (b, c, ctx, 1), float32

        # (b, h*w, depth) and back as transposed views: in NHWC memory neither copies.
        query = self.conv_query(x).flatten(2).transpose(1, 2)
        key = fp32_branch(self.conv_key, context).type_as(query).view(b, self.depth, -1)
        value = fp32_branch(self.conv_value, context).type_as(query).view(b, self.depth, -1).permute(0, 2, 1)
        sim = torch.softmax((self.depth ** -0.5) * torch.bmm(query, key), dim=-1)
        context = torch.bmm(sim, value).transpose(1, 2).view(b, self.depth, h, w)
        context = self.conv_out1(context)

        x = self.conv_out3(self.conv_out2(torch.cat([x, context], dim=1)))
        return x, self.conv_out4(x)


def context_sums(prob: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """bmm(prob, f.reshape(b, h*w, -1)) in float32: upstream's context sums, which
    read the map f [b, c, h, w] through its NCHW element order ((b, h*w, c) rows cut
    from the channel planes: row i, column j is element i*c + j of the flattened NCHW
    map). prob: [b, ctx, h*w].

    -> (b, ctx, c), float32. When c divides h*w, row i = k*(h*w/c) + r lies in
    channel k, at pixels r*c .. r*c + c - 1, so the sum splits by r into one small
    matrix product each, which reads f in pixel-major order: a free view of an NHWC
    map, where converting it to NCHW order would be a full strided copy.
    Those products run in f's own dtype, with prob scaled by 1/c so that each partial
    sum of c terms stays within the largest |f| (in range for fp16 too; the product
    accumulates in float32 inside), and only the c-times-smaller partial sums are
    added up in float32, then scaled back: no float32 copy of the map (256 MB at
    1024x1024). Otherwise, the plain reshape, in float32."""
    b, c, h, w = f.shape
    hw = h * w
    acc = torch.float64 if f.dtype == torch.float64 else torch.float32
    if hw % c != 0:
        return torch.bmm(prob.to(acc), f.reshape(b, hw, c).to(acc))
    r = hw // c
    ctx = prob.shape[1]
    pixels = f.permute(0, 2, 3, 1).reshape(b * r, c, c)  # [(b, r), j, channel]
    weights = (prob * (1.0 / c)).type_as(f)  # type_as: a traced file keeps no fixed dtype
    weights = weights.view(b, ctx, c, r).permute(0, 3, 1, 2).reshape(b * r, ctx, c)  # [(b, r), ctx, channel]
    partial = torch.bmm(weights, pixels.transpose(1, 2)).view(b, r, ctx, c)
    return partial.sum(1, dtype=acc) * c


def gaussian_kernel(ksize: int = 7, sigma: float = 1.0) -> torch.Tensor:
    """Normalised 2-D Gaussian (outer product of the 1-D kernel), computed in float64
    and stored as float32, shape (1, 1, k, k)."""
    i = np.arange(ksize, dtype=np.float64) - (ksize - 1) * 0.5
    g = np.exp(-(i * i) / (2.0 * sigma * sigma))
    g = g / g.sum()
    return torch.tensor(np.outer(g, g)).float().view(1, 1, ksize, ksize)


class InSPyReNet(nn.Module):
    def __init__(self, base_size: Sequence[int] = (1024, 1024), depth: int = 64,
                 in_channels: Sequence[int] = (128, 128, 256, 512, 1024)):
        super().__init__()
        self.base_size = (int(base_size[0]), int(base_size[1]))
        self.depth = depth
        bh, bw = self.base_size

        def stage(s):
            return (bh // 2 ** s, bw // 2 ** s)

        self.backbone = swin_b()
        self.context1 = PAAEncoder(in_channels[0], depth)
        self.context2 = PAAEncoder(in_channels[1], depth)
        self.context3 = PAAEncoder(in_channels[2], depth)
        self.context4 = PAAEncoder(in_channels[3], depth)
        self.context5 = PAAEncoder(in_channels[4], depth)
        self.decoder = PAADecoder(depth * 3, depth)
        self.attention0 = SICA(depth, depth, stage(0), lmap_in=True)
        self.attention1 = SICA(depth * 2, depth, stage(1), lmap_in=True)
        self.attention2 = SICA(depth * 2, depth, stage(2), lmap_in=False)
        self.resize_as_products = True  # resize_bilinear's products; set_rewrites
        # Laplacian pyramid kernel: not part of the checkpoints (non-persistent).
        self.register_buffer("pyramid_kernel", gaussian_kernel(7, 1.0), persistent=False)

    # -- Laplacian pyramid ---------------------------------------------------------
    def _expand(self, x):
        """Upsample x2: zero-insertion (value at the top-left of each 2x2 cell), then
        a reflect-padded Gaussian blur scaled by 4.

        Upstream inserts the zeros with pixel_shuffle(cat([x, 0, 0, 0])) on its
        one-channel maps; padding a [B, C, h, 1, w, 1] view gives the same tensor
        without a zeros_like, which a tracer would record with a fixed dtype and
        device (breaking fp16/bf16 and CUDA use of the exported file)."""
        b, c, h, w = x.shape
        x = F.pad(x.reshape(b, c, h, 1, w, 1), (0, 1, 0, 0, 0, 1)).reshape(b, c, 2 * h, 2 * w)
        k = self.pyramid_kernel.shape[-1] // 2
        x = F.pad(x, (k, k, k, k), mode="reflect")
        return F.conv2d(x, self.pyramid_kernel * 4)

    def _reconstruct(self, coarse, laplacian):
        up = self._expand(coarse)
        if laplacian.shape[-2:] != up.shape[-2:]:
            laplacian = F.interpolate(laplacian, size=up.shape[-2:], mode="bilinear", align_corners=True)
        return up + laplacian

    # -- model ---------------------------------------------------------------------
    def prepare(self, height: int, width: int) -> "InSPyReNet":
        """Precompute size- and weight-dependent constants (Swin masks, window
        indices, position biases) for this input size. Call after loading weights."""
        self.backbone.prepare(height, width)
        return self

    def set_attention(self, form: str) -> "InSPyReNet":
        """Swin's window attention as "sdpa" (the default where torch has it),
        "efficient" (the memory-efficient kernel on CUDA: a shorter cold start, a
        slightly slower forward pass) or "matmul" (loads in libtorch 1.x too):
        swin.py's docstring."""
        self.backbone.set_attention(form)
        return self

    def set_pointwise(self, as_product: bool) -> "InSPyReNet":
        """Whether the folded 1x1 convolutions without ReLU take pointwise_conv's
        matrix product on CUDA (the default) or always the convolution."""
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.pointwise_as_product = as_product and tuple(m.conv.kernel_size) == (1, 1)
        return self

    REWRITES = ("resize", "context", "axial")

    @classmethod
    def check_rewrites(cls, names):
        """names, if each is one of REWRITES; else ValueError naming the others."""
        unknown = sorted(set(names) - set(cls.REWRITES))
        if unknown:
            raise ValueError(f"unknown rewrites {unknown}: expected some of {cls.REWRITES}")
        return names

    def set_rewrites(self, on=REWRITES) -> "InSPyReNet":
        """Which of the decoder's GPU rewrites the module runs (all by default; the
        others in their plain form): "resize" (resize_by_products), "context"
        (context_sums read from the map in its dtype, no float32 copy), "axial"
        (axial_mix's NHWC product). Each is the same formula as its plain form; they
        are switches so that each can be timed against it."""
        on = set(self.check_rewrites(on))
        for m in self.modules():
            if isinstance(m, (InSPyReNet, PAADecoder, SICA)):
                m.resize_as_products = "resize" in on
            if isinstance(m, SICA):
                m.context_in_map_dtype = "context" in on
            if isinstance(m, AxialAttention):
                m.mix_nhwc = "axial" in on
        return self

    def fold_batchnorm(self) -> "InSPyReNet":
        """Every BatchNorm merged into its convolution (ConvBN.fold_batchnorm), for
        inference: the exporter does it after loading the weights."""
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.fold_batchnorm()
        return self

    def saliency(self, x) -> List[torch.Tensor]:
        """The saliency pyramid [d3, d2, d1, d0] (logits), coarsest first."""
        h, w = x.shape[-2], x.shape[-1]
        f1, f2, f3, f4, f5 = self.backbone(x)
        x1 = self.context1(f1)
        x2 = self.context2(f2)
        x3 = self.context3(f3)
        x4 = self.context4(f4)
        x5 = self.context5(f5)

        f3, d3 = self.decoder(x3, x4, x5)

        products = self.resize_as_products

        def res(t, size: Tuple[int, int]):
            return resize_bilinear(t, size[0], size[1], False, products)

        f3 = res(f3, (h // 4, w // 4))
        f2, p2 = self.attention2(torch.cat([x2, f3], dim=1), d3)
        d2 = self._reconstruct(d3, p2)

        x1 = res(x1, (h // 2, w // 2))
        f2 = res(f2, (h // 2, w // 2))
        f1, p1 = self.attention1(torch.cat([x1, f2], dim=1), d2, p2)
        d1 = self._reconstruct(d2, p1)

        f1 = res(f1, (h, w))
        _, p0 = self.attention0(f1, d1, p1)
        d0 = self._reconstruct(d1, p0)
        return [d3, d2, d1, d0]

    def forward(self, x):
        return torch.sigmoid(self.saliency(x)[3])


def inspyrenet_swinb(base_size=(1024, 1024)) -> InSPyReNet:
    return InSPyReNet(base_size=base_size, depth=64, in_channels=(128, 128, 256, 512, 1024))


def valid_size(height: int, width: int) -> Optional[str]:
    """None when (height, width) is a supported input size, else the reason."""
    for name, v in (("height", height), ("width", width)):
        if v < 64:
            return f"{name} {v} is below 64"
        if v % 32 != 0:
            return f"{name} {v} is not a multiple of 32"
    return None


# -- checkpoints -------------------------------------------------------------------

# The official checkpoints (plemeri/transparent-background config.yaml): md5 -> the
# base size they were trained and are run at. The base size also fixes SICA's
# internal "stage size", so it is a property of the weights, not only of the input.
KNOWN_CHECKPOINTS = {
    "d692e3dd5fa1b9658949d452bebf1cda": ("ckpt_base.pth", 1024),
    "9efdbfbcc49b79ef0f7891c83d2fd52f": ("ckpt_fast.pth", 384),
}


def extract_state_dict(obj) -> dict:
    """The state_dict inside what torch.load returned: the official files are a bare
    state_dict; a {'state_dict': ...} / {'model': ...} wrapper and a DataParallel
    'module.' prefix are also accepted."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError("checkpoint holds no state_dict")
    if all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def state_dict_listing(model: nn.Module) -> str:
    """One line per state_dict entry, in order: `name [d0, d1, ...] dtype`."""
    lines = []
    for name, t in model.state_dict().items():
        dtype = str(t.dtype).replace("torch.", "")
        lines.append(f"{name} [{', '.join(str(d) for d in t.shape)}] {dtype}")
    return "\n".join(lines) + "\n"


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Fills every floating-point parameter and buffer with deterministic random
    values (numpy's RandomState, whose stream never changes, so a seed gives the same
    weights with any torch or numpy version). Scales keep activations in a sane range
    so that the output is a non-trivial map: conv/linear weights N(0, 1/fan_in),
    normalisation affines near identity, BatchNorm statistics near (0, 1), the axial
    attention gates and Swin position biases small but non-zero, SICA thresholds near
    0.5. Integer buffers (relative_position_index, num_batches_tracked) are left as
    built."""
    rng = np.random.RandomState(seed)
    context_inputs = {}
    for mname, m in model.named_modules():
        if isinstance(m, SICA):
            area = float(m.stage_size[0] * m.stage_size[1])
            for branch in ("conv_key", "conv_value"):
                context_inputs[f"{mname}.{branch}.0.conv.weight"] = area
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            leaf = name.rsplit(".", 1)[-1]
            n = rng.standard_normal(t.numel()).reshape(tuple(t.shape))
            if leaf == "weight" and t.dim() >= 2:
                fan_in = t[0].numel()
                v = n / np.sqrt(fan_in)
                if name in context_inputs:
                    # SICA's context vectors are sums over the whole stage map:
                    # dividing by its area keeps them (and the logits) O(1).
                    v = v / context_inputs[name]
            elif leaf == "running_var":
                v = 1.0 + 0.1 * np.abs(n)
            elif leaf in ("running_mean", "bias"):
                v = 0.05 * n
            elif leaf == "weight":  # LayerNorm / BatchNorm scale
                v = 1.0 + 0.05 * n
            elif leaf == "relative_position_bias_table":
                v = 0.02 * n
            elif leaf == "gamma":
                v = 0.1 * n
            elif leaf in ("threshold", "lthreshold"):
                v = 0.5 + 0.05 * n
            else:
                raise ValueError(f"randomize_: no rule for {name}")
            t.copy_(torch.from_numpy(np.ascontiguousarray(v)).to(t.dtype))
    return model
