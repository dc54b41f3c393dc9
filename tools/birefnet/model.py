"""BiRefNet (Zheng et al., "Bilateral Reference for High-Resolution Dichotomous Image
Segmentation", CAAI AIR 2024), written for libpetmatte.

The general configuration of github.com/ZhengPeng7/BiRefNet (config.py): Swin-L
backbone (swin_v1_l) run on the image and on a half-size copy whose maps are
concatenated (mul_scl_ipt 'cat'), three context skip connections into the deepest map
(cxt_num 3), one BasicDecBlk squeeze block, BasicDecBlk decoder blocks with
ASPPDeformable attention, BasicLatBlk lateral blocks, image patches fed to every
decoder stage (dec_ipt, dec_ipt_split) and the gradient-attention gates of out_ref.
Module and parameter names follow upstream's, so a checkpoint loads with
strict=True once its training-only heads are dropped (TRAINING_ONLY_KEYS; upstream
builds them in eval mode too, but its eval forward never reads them).

Inference form only: the forward pass returns sigmoid of the final map, what
upstream's inference (`model(x)[-1].sigmoid()`) computes. Upstream's deformable
convolution is torchvision's operator; here it is deform_conv.deform_conv2d (plain
operators, the same arithmetic). The Swin-T/S/B backbones of the other published
BiRefNet variants (BiRefNet_lite: swin_v1_t) share everything else and are built
from the same code (BACKBONES).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from inspyrenet.model import fold_bn_into
from inspyrenet.swin import SwinTransformer
from .deform_conv import deform_conv2d

# name -> (embed_dim, depths, heads, window): upstream models/backbones/swin_v1.py.
BACKBONES = {
    "swin_v1_l": (192, (2, 2, 18, 2), (6, 12, 24, 48), 12),
    "swin_v1_b": (128, (2, 2, 18, 2), (4, 8, 16, 32), 12),
    "swin_v1_s": (96, (2, 2, 18, 2), (3, 6, 12, 24), 7),
    "swin_v1_t": (96, (2, 2, 6, 2), (3, 6, 12, 24), 7),
}

# Upstream's Decoder builds these in eval mode too (ms_supervision and out_ref are on
# in every published configuration), but only its training forward reads them: the
# multi-scale supervision heads and the gradient-map predictors. A checkpoint holds
# them; the inference module has no use for them. name -> shape (for any backbone:
# their inputs are the decoder's channel counts, given by dec_out below).
def training_only_keys(dec_out: Sequence[int]) -> Dict[str, Tuple[int, ...]]:
    keys = {}
    for level, c in zip((4, 3, 2), dec_out[:3]):
        keys[f"decoder.conv_ms_spvn_{level}.weight"] = (1, c, 1, 1)
        keys[f"decoder.conv_ms_spvn_{level}.bias"] = (1,)
    for level in (4, 3, 2):
        keys[f"decoder.gdt_convs_pred_{level}.0.weight"] = (1, 16, 1, 1)
        keys[f"decoder.gdt_convs_pred_{level}.0.bias"] = (1,)
    return keys


def bn_or_fold(bn: Optional[nn.Module], x: torch.Tensor) -> torch.Tensor:
    return x if bn is None else bn(x)


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Upstream's every resize: bilinear, align_corners=True."""
    return F.interpolate(x, size=[int(size[0]), int(size[1])], mode="bilinear", align_corners=True)


def image_patches(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Upstream's image2patches(x, patch_ref=ref, 'b c (hg h) (wg w) -> b (c hg wg) h w')
    followed by its resize to ref's size: the image cut into a grid of ref-sized tiles,
    stacked on the channels (channel c * g_h * g_w + row * g_w + col). At the sizes the
    exporter allows the tiles already have ref's size, and an align_corners resize to
    the same size is the identity, so it is left out there."""
    b, c, h, w = x.shape
    gh, gw = h // ref.shape[2], w // ref.shape[3]
    th, tw = h // gh, w // gw
    p = x.reshape(b, c, gh, th, gw, tw).permute(0, 1, 2, 4, 3, 5).reshape(b, c * gh * gw, th, tw)
    if (th, tw) != (ref.shape[2], ref.shape[3]):
        p = resize(p, ref.shape[2:])
    return p


class DeformableConv2d(nn.Module):
    """Upstream's DeformableConv2d: offsets and a modulation mask (2 * sigmoid) from
    two convolutions of the input, then the modulated deformable convolution with
    regular_conv's weight (no bias upstream; the folded BatchNorm gives it one)."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int):
        super().__init__()
        self.padding = padding
        self.offset_conv = nn.Conv2d(cin, 2 * kernel * kernel, kernel, 1, padding, bias=True)
        self.modulator_conv = nn.Conv2d(cin, kernel * kernel, kernel, 1, padding, bias=True)
        self.regular_conv = nn.Conv2d(cin, cout, kernel, 1, padding, bias=False)

    def forward(self, x):
        offset = self.offset_conv(x)
        modulator = 2.0 * torch.sigmoid(self.modulator_conv(x))
        conv = self.regular_conv
        return deform_conv2d(x, offset, modulator, conv.weight, conv.bias, [1, 1],
                             [self.padding, self.padding], [1, 1])


class ASPPModuleDeformable(nn.Module):
    """Upstream's _ASPPModuleDeformable: deformable conv, BatchNorm, ReLU."""

    def __init__(self, cin: int, planes: int, kernel: int, padding: int):
        super().__init__()
        self.atrous_conv = DeformableConv2d(cin, planes, kernel, padding)
        self.bn = nn.BatchNorm2d(planes)

    def forward(self, x):
        return torch.relu(bn_or_fold(self.bn, self.atrous_conv(x)))

    def fold_batchnorm(self) -> None:
        if self.bn is not None:
            fold_bn_into(self.atrous_conv.regular_conv, self.bn)
            self.bn = None


class ASPPDeformable(nn.Module):
    """Upstream's ASPPDeformable (parallel kernels 1, 3, 7 besides the 1x1 branch;
    256 channels a branch), dropout left out (identity in eval mode)."""

    def __init__(self, cin: int, cout: Optional[int] = None, kernels: Sequence[int] = (1, 3, 7)):
        super().__init__()
        cout = cout or cin
        planes = 256
        self.aspp1 = ASPPModuleDeformable(cin, planes, 1, 0)
        self.aspp_deforms = nn.ModuleList([ASPPModuleDeformable(cin, planes, k, k // 2) for k in kernels])
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Conv2d(cin, planes, 1, bias=False),
                                             nn.BatchNorm2d(planes), nn.ReLU(inplace=True))
        self.conv1 = nn.Conv2d(planes * (2 + len(kernels)), cout, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)

    def forward(self, x):
        x1 = self.aspp1(x)
        branches = [x1] + [m(x) for m in self.aspp_deforms]
        # Upstream resizes the pooled 1x1 map to x1's size with align_corners=True:
        # every output pixel reads the one input pixel, which is what expand gives.
        pooled = self.global_avg_pool(x)
        branches.append(pooled.expand(-1, -1, x1.shape[2], x1.shape[3]))
        x = self.conv1(torch.cat(branches, dim=1))
        return torch.relu(bn_or_fold(self.bn1, x))

    def fold_batchnorm(self) -> None:
        for m in [self.aspp1] + list(self.aspp_deforms):
            m.fold_batchnorm()
        if isinstance(self.global_avg_pool[2], nn.BatchNorm2d):
            fold_bn_into(self.global_avg_pool[1], self.global_avg_pool[2])
            self.global_avg_pool[2] = nn.Identity()
        if self.bn1 is not None:
            fold_bn_into(self.conv1, self.bn1)
            self.bn1 = None


class BasicDecBlk(nn.Module):
    """conv 3x3 -> BN -> ReLU -> ASPPDeformable -> conv 3x3 -> BN (64 channels inside).
    Attribute order is upstream's, so the state_dict lists in its order."""

    def __init__(self, cin: int, cout: int, inter: int = 64):
        super().__init__()
        self.conv_in = nn.Conv2d(cin, inter, 3, 1, padding=1)
        self.dec_att = ASPPDeformable(inter)
        self.conv_out = nn.Conv2d(inter, cout, 3, 1, padding=1)
        self.bn_in = nn.BatchNorm2d(inter)
        self.bn_out = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = torch.relu(bn_or_fold(self.bn_in, self.conv_in(x)))
        x = self.dec_att(x)
        return bn_or_fold(self.bn_out, self.conv_out(x))

    def fold_batchnorm(self) -> None:
        if self.bn_in is not None:
            fold_bn_into(self.conv_in, self.bn_in)
            fold_bn_into(self.conv_out, self.bn_out)
            self.bn_in = self.bn_out = None
        self.dec_att.fold_batchnorm()


class BasicLatBlk(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x):
        return self.conv(x)


class SimpleConvs(nn.Module):
    """Two 3x3 convolutions, no activation between them (upstream's)."""

    def __init__(self, cin: int, cout: int, inter: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, inter, 3, 1, 1)
        self.conv_out = nn.Conv2d(inter, cout, 3, 1, 1)

    def forward(self, x):
        return self.conv_out(self.conv1(x))


def gradient_gate(cin: int) -> nn.Sequential:
    """Upstream's gdt_convs_N: conv 3x3 to 16 channels, BN, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(inplace=True))


class Decoder(nn.Module):
    def __init__(self, channels: Sequence[int]):
        super().__init__()
        channels = list(channels)  # [x4, x3, x2, x1] after the multi-scale concat
        ipt_in = [3 * 4 ** i for i in (5, 4, 3, 2, 0)]  # 3 * (32/2^i)^2 image tiles
        ipt_out = [c // 8 for c in channels]
        dec_out = channels[1:] + [channels[-1] // 2]
        dec_in = [channels[i] + ipt_out[max(0, i - 1)] for i in range(4)]
        self.dec_out = dec_out
        self.ipt_blk5 = SimpleConvs(ipt_in[0], ipt_out[0])
        self.ipt_blk4 = SimpleConvs(ipt_in[1], ipt_out[0])
        self.ipt_blk3 = SimpleConvs(ipt_in[2], ipt_out[1])
        self.ipt_blk2 = SimpleConvs(ipt_in[3], ipt_out[2])
        self.ipt_blk1 = SimpleConvs(ipt_in[4], ipt_out[3])
        self.decoder_block4 = BasicDecBlk(dec_in[0], dec_out[0])
        self.decoder_block3 = BasicDecBlk(dec_in[1], dec_out[1])
        self.decoder_block2 = BasicDecBlk(dec_in[2], dec_out[2])
        self.decoder_block1 = BasicDecBlk(dec_in[3], dec_out[3])
        self.conv_out1 = nn.Sequential(nn.Conv2d(dec_out[3] + ipt_out[3], 1, 1, 1, 0))
        self.lateral_block4 = BasicLatBlk(channels[1], dec_out[0])
        self.lateral_block3 = BasicLatBlk(channels[2], dec_out[1])
        self.lateral_block2 = BasicLatBlk(channels[3], dec_out[2])
        self.gdt_convs_4 = gradient_gate(dec_out[0])
        self.gdt_convs_3 = gradient_gate(dec_out[1])
        self.gdt_convs_2 = gradient_gate(dec_out[2])
        self.gdt_convs_attn_4 = nn.Sequential(nn.Conv2d(16, 1, 1, 1, 0))
        self.gdt_convs_attn_3 = nn.Sequential(nn.Conv2d(16, 1, 1, 1, 0))
        self.gdt_convs_attn_2 = nn.Sequential(nn.Conv2d(16, 1, 1, 1, 0))
        # The rewritten head (set by BiRefNet.fuse_head): see there.
        self.head_fused = False
        self.register_buffer("head_coarse", torch.zeros(0), persistent=False)
        self.register_buffer("head_fine", torch.zeros(0), persistent=False)
        self.register_buffer("head_bias", torch.zeros(0), persistent=False)

    @staticmethod
    def gate(p, convs: nn.Sequential, attn: nn.Sequential):
        """out_ref's gradient attention: p * sigmoid(conv(ReLU(BN(conv(p)))))."""
        return p * torch.sigmoid(attn(convs(p)))

    def forward(self, x, x1, x2, x3, x4):
        x4 = torch.cat((x4, self.ipt_blk5(image_patches(x, x4))), 1)
        p4 = self.gate(self.decoder_block4(x4), self.gdt_convs_4, self.gdt_convs_attn_4)
        p3 = resize(p4, x3.shape[2:]) + self.lateral_block4(x3)
        p3 = torch.cat((p3, self.ipt_blk4(image_patches(x, p3))), 1)
        p3 = self.gate(self.decoder_block3(p3), self.gdt_convs_3, self.gdt_convs_attn_3)
        p2 = resize(p3, x2.shape[2:]) + self.lateral_block3(x2)
        p2 = torch.cat((p2, self.ipt_blk3(image_patches(x, p2))), 1)
        p2 = self.gate(self.decoder_block2(p2), self.gdt_convs_2, self.gdt_convs_attn_2)
        p1 = resize(p2, x1.shape[2:]) + self.lateral_block2(x1)
        p1 = torch.cat((p1, self.ipt_blk2(image_patches(x, p1))), 1)
        p1 = self.decoder_block1(p1)
        if self.head_fused:
            # conv_out1 (1x1) of [resize(p1), ipt_blk1(x)] as the sum of its two
            # channel blocks: the coarse block before the resize (a per-pixel linear map
            # commutes with bilinear resizing, whose weights sum to 1), the fine block
            # merged into ipt_blk1's last convolution (two linear layers in a row).
            coarse = F.conv2d(p1, self.head_coarse)
            fine = F.conv2d(self.ipt_blk1.conv1(x), self.head_fine, self.head_bias, 1, 1)
            return resize(coarse, x.shape[2:]) + fine
        p1 = resize(p1, x.shape[2:])
        p1 = torch.cat((p1, self.ipt_blk1(image_patches(x, p1))), 1)
        return self.conv_out1(p1)

    def fold_batchnorm(self) -> None:
        for blk in (self.decoder_block4, self.decoder_block3, self.decoder_block2, self.decoder_block1):
            blk.fold_batchnorm()
        for seq in (self.gdt_convs_4, self.gdt_convs_3, self.gdt_convs_2):
            if isinstance(seq[1], nn.BatchNorm2d):
                fold_bn_into(seq[0], seq[1])
                seq[1] = nn.Identity()

    def fuse_head(self) -> None:
        """Precomputes the rewritten head's weights (float64 products, stored in the
        weights' dtype). The upstream head resizes 192 decoder channels to the full
        input size (805 MB in float32 at 1024x1024) and concatenates 48 more, all for
        one 1x1 convolution to a single channel; the rewrite resizes one channel."""
        head = self.conv_out1[0]
        split = self.dec_out[3]
        w = head.weight.double()[:, :, 0, 0]  # [1, split + ipt]
        last = self.ipt_blk1.conv_out
        with torch.no_grad():
            fine = torch.einsum("po,oikl->pikl", w[:, split:], last.weight.double())
            bias = head.bias.double() + w[:, split:] @ last.bias.double()
            dtype = head.weight.dtype
            self.head_coarse = head.weight[:, :split].detach().clone()
            self.head_fine = fine.to(dtype)
            self.head_bias = bias.to(dtype)
        self.head_fused = True


class BiRefNet(nn.Module):
    def __init__(self, backbone: str = "swin_v1_l"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone {backbone!r}: expected one of {sorted(BACKBONES)}")
        embed, depths, heads, window = BACKBONES[backbone]
        self.backbone_name = backbone
        # Upstream's Swin masks shifted windows with -inf (InSPyReNet's with -100).
        self.bb = SwinTransformer(embed, depths, heads, window, mask_value=float("-inf"))
        # Backbone channels [x4, x3, x2, x1], doubled by the multi-scale concat.
        channels = [2 * embed * 2 ** i for i in (3, 2, 1, 0)]
        self.cxt = channels[1:][::-1]  # [x1, x2, x3] channels fed into x4
        self.squeeze_module = nn.Sequential(BasicDecBlk(channels[0] + sum(self.cxt), channels[0]))
        self.decoder = Decoder(channels)

    def training_only_keys(self) -> Dict[str, Tuple[int, ...]]:
        return training_only_keys(self.decoder.dec_out)

    def prepare(self, height: int, width: int) -> "BiRefNet":
        """Swin's constants for the input size and the half-size copy. Call after
        loading weights (and folding)."""
        self.bb.prepare(height, width, also=[(height // 2, width // 2)])
        return self

    def set_attention(self, form: str) -> "BiRefNet":
        self.bb.set_attention(form)
        return self

    def fold_batchnorm(self) -> "BiRefNet":
        """Every BatchNorm merged into the convolution before it (eval statistics)."""
        self.squeeze_module[0].fold_batchnorm()
        self.decoder.fold_batchnorm()
        return self

    def fuse_head(self) -> "BiRefNet":
        self.decoder.fuse_head()
        return self

    def encode(self, x) -> List[torch.Tensor]:
        h, w = x.shape[2], x.shape[3]
        x1, x2, x3, x4 = self.bb(x)[1:]  # our Swin also returns the patch embedding first
        half = resize(x, (h // 2, w // 2))
        y1, y2, y3, y4 = self.bb(half)[1:]
        x1 = torch.cat([x1, resize(y1, x1.shape[2:])], dim=1)
        x2 = torch.cat([x2, resize(y2, x2.shape[2:])], dim=1)
        x3 = torch.cat([x3, resize(y3, x3.shape[2:])], dim=1)
        x4 = torch.cat([x4, resize(y4, x4.shape[2:])], dim=1)
        size4 = x4.shape[2:]
        x4 = torch.cat([resize(x1, size4), resize(x2, size4), resize(x3, size4), x4], dim=1)
        return [x1, x2, x3, x4]

    def logits(self, x) -> torch.Tensor:
        x1, x2, x3, x4 = self.encode(x)
        x4 = self.squeeze_module(x4)
        return self.decoder(x, x1, x2, x3, x4)

    def forward(self, x):
        return torch.sigmoid(self.logits(x))


def valid_size(height: int, width: int) -> Optional[str]:
    """None when (height, width) is a supported input size, else the reason. The
    decoder cuts the image into 32x32, 16x16, 8x8 and 4x4 tiles of the backbone's
    stride-32..4 maps, which needs sides that are multiples of 32; the half-size
    copy runs through Swin too."""
    for name, v in (("height", height), ("width", width)):
        if v < 64:
            return f"{name} {v} is below 64"
        if v > 4096:
            return f"{name} {v} is above 4096"
        if v % 32 != 0:
            return f"{name} {v} is not a multiple of 32"
    return None


def strip_prefixes(state: dict) -> dict:
    """Upstream's check_state_dict: drop a leading 'module.' (DataParallel) and
    '_orig_mod.' (torch.compile) from every key, in that order."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def extract_state_dict(obj) -> dict:
    """The state_dict inside what torch.load returned (upstream's .pth files are a
    bare state_dict; {'state_dict': ...} / {'model': ...} wrappers are accepted),
    prefixes stripped."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise ValueError("checkpoint holds no state_dict")
    return strip_prefixes(obj)


def detect_backbone(state: dict) -> str:
    """The Swin variant a checkpoint was trained with, from its shapes."""
    w = state.get("bb.patch_embed.proj.weight")
    if w is None:
        raise ValueError("checkpoint has no bb.patch_embed.proj.weight: not a Swin BiRefNet")
    embed = int(w.shape[0])
    blocks = {int(k.split(".")[4]) for k in state if k.startswith("bb.layers.2.blocks.")}
    depth3 = max(blocks) + 1 if blocks else 0
    for name, (e, depths, _, _) in BACKBONES.items():
        if e == embed and depths[2] == depth3:
            return name
    raise ValueError(f"checkpoint's Swin (embed {embed}, stage-3 depth {depth3}) is none of {sorted(BACKBONES)}")


def load_checkpoint(model: BiRefNet, state: dict) -> List[str]:
    """Loads a prefix-stripped state_dict with strict=True after dropping exactly the
    training-only heads (each must have its expected shape); returns the dropped
    names. Any other missing, unexpected or mis-shaped key is an error."""
    extra = model.training_only_keys()
    dropped = []
    kept = {}
    for k, v in state.items():
        if k in extra:
            if tuple(v.shape) != extra[k]:
                raise ValueError(f"{k}: shape {list(v.shape)}, expected {list(extra[k])}")
            dropped.append(k)
        else:
            kept[k] = v
    model.load_state_dict(kept, strict=True)
    return dropped


def state_dict_entries(model: nn.Module) -> List[Tuple[str, List[int], str]]:
    """(name, shape, dtype) for every state_dict entry, in order."""
    return [(name, list(t.shape), str(t.dtype).replace("torch.", "")) for name, t in model.state_dict().items()]
