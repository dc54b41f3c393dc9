"""Modulated deformable convolution (DCNv2) in plain torch operators.

torchvision.ops.deform_conv2d is a torchvision operator, which libtorch does not
have; this writes the same arithmetic with operators every libtorch (1.13 and 2.x)
has, so that a traced file runs there:

  1. every kernel tap k of every output pixel (i, j) samples the input at
         y = i * stride - padding + ky * dilation + offset_y[k, i, j]
         x = j * stride - padding + kx * dilation + offset_x[k, i, j]
     bilinearly, corners outside the map counting as zero (torchvision's
     bilinear_interpolate; `grid_sample` with zero padding is the same rule);
  2. the samples are multiplied by the modulation mask[k, i, j];
  3. one matrix product with the weight over (channel, tap), plus the bias.

Offsets are laid out as torchvision's: per offset group, per tap (row-major in the
kernel), the pair (dy, dx). Input channels are split into offset groups in order;
weight groups likewise.

The sampling runs in float32 whatever the input's dtype (torchvision's operator runs
in float32 under autocast too): sample positions are pixel indices plus fractions,
which half precision cannot hold (at 256 it resolves only quarters of a pixel). The
product with the weight runs in the weight's dtype, and gives an output in the input's
memory order (NCHW or NHWC). Scripted, so that a traced file keeps these dtype,
device and layout decisions instead of the ones seen while tracing.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F


@torch.jit.script
def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: Optional[torch.Tensor], weight: torch.Tensor,
                  bias: Optional[torch.Tensor], stride: List[int], padding: List[int],
                  dilation: List[int]) -> torch.Tensor:
    """torchvision.ops.deform_conv2d(x, offset, weight, bias, stride, padding,
    dilation, mask), for x [B, C, H, W], offset [B, 2*G*kh*kw, Ho, Wo], mask
    [B, G*kh*kw, Ho, Wo] or None, weight [O, C/groups, kh, kw]."""
    b, c, h, w = x.shape
    o, c_per_group, kh, kw = weight.shape
    groups = c // c_per_group
    taps = kh * kw
    offset_groups = offset.shape[1] // (2 * taps)
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if groups * c_per_group != c or o % groups != 0:
        raise ValueError("deform_conv2d: channels do not divide into the weight's groups")
    if offset_groups < 1 or offset_groups * 2 * taps != offset.shape[1] or c % offset_groups != 0:
        raise ValueError("deform_conv2d: offset channels must be 2 * offset_groups * kh * kw")
    if offset.shape[0] != b or offset.shape[2] != ho or offset.shape[3] != wo:
        raise ValueError("deform_conv2d: offset map does not match the output size")

    # Sample positions in input pixels, float32: [B, G, taps, Ho, Wo] each.
    off = offset.float().reshape(b, offset_groups, taps, 2, ho, wo)
    f32 = torch.float32
    ky = torch.arange(kh, device=x.device, dtype=f32).repeat_interleave(kw) * dilation[0]
    kx = torch.arange(kw, device=x.device, dtype=f32).repeat(kh) * dilation[1]
    iy = torch.arange(ho, device=x.device, dtype=f32) * stride[0] - padding[0]
    ix = torch.arange(wo, device=x.device, dtype=f32) * stride[1] - padding[1]
    py = off[:, :, :, 0] + (ky.view(taps, 1, 1) + iy.view(1, ho, 1))
    px = off[:, :, :, 1] + (kx.view(taps, 1, 1) + ix.view(1, 1, wo))
    # grid_sample's coordinates for align_corners=False: pixel p -> (2p + 1) / size - 1
    # (no division by size - 1, so one-pixel maps work too).
    gx = (2.0 * px + 1.0) / w - 1.0
    gy = (2.0 * py + 1.0) / h - 1.0
    grid = torch.stack([gx, gy], dim=-1).reshape(b * offset_groups, taps * ho, wo, 2)

    # [B*G, C/G, taps*Ho, Wo]: tap-major rows, so a view gives [B, C, taps, Ho*Wo].
    src = x.float().reshape(b * offset_groups, c // offset_groups, h, w)
    cols = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    cols = cols.reshape(b, offset_groups, c // offset_groups, taps, ho * wo)
    if mask is not None:
        # In place: at 2048x2048 the 7x7 taps' samples are 3.3 GB in float32.
        cols.mul_(mask.float().reshape(b, offset_groups, 1, taps, ho * wo))
    cols = cols.reshape(b, groups, c_per_group * taps, ho * wo).to(weight.dtype)
    if groups == 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        # NHWC input (libpetmatte's layout on a GPU): the product pixels-major, which
        # is the output in NHWC order, what the next convolution reads without a copy.
        out = torch.matmul(cols[:, 0].transpose(1, 2), weight.reshape(o, c * taps).t())
        out = out.view(b, ho, wo, o).permute(0, 3, 1, 2)
    else:
        out = torch.matmul(weight.reshape(1, groups, o // groups, c_per_group * taps), cols)
        out = out.view(b, o, ho, wo)
    if bias is not None:
        out = out + bias.view(1, o, 1, 1)
    return out
