"""Swin Transformer backbone, written for libpetmatte.

Follows the Swin Transformer paper (Liu et al. 2021, arXiv:2103.14030) in the
variant InSPyReNet uses (the dense-prediction form): feature maps are zero-padded
up to a multiple of the window (after norm1, as upstream), the patch embedding
(LayerNorm'd inside PatchEmbed, but not by norm0..3) is returned as an extra first
output, and a LayerNorm (`norm0`..`norm3`) is applied to each stage's output (the
tokens before patch merging; the merging itself takes the tokens without that
norm). No absolute position embedding. Module and parameter
names follow the published checkpoints, so an official InSPyReNet state_dict loads
with strict=True.

Inference only: no dropout, no stochastic depth (both are identities in eval mode).

Shapes are Python integers computed from the input, so a traced graph is specialised
to the traced input size. `prepare(height, width)` precomputes what depends only on
the stage resolution and the weights, as non-persistent buffers, so that a traced
graph carries them as module state (float ones follow `.to(device/dtype)`, which
matters when a runtime converts the file to fp16/bf16) instead of baking constants
into the graph:
  * the shifted-window attention masks;
  * each block's relative position bias, gathered from its table (call prepare
    again after loading other weights);
  * the window partition as one gather index per stage and shift: padding to whole
    windows, the cyclic shift and the split into windows are one `index_select`
    (and the way back one more), where pad + roll + permute + copy took up to five
    passes over the feature map. Pure data movement: the result is the same.

Window attention runs through `F.scaled_dot_product_attention` (the position bias,
and the shifted-window mask, as its additive attn_mask) when the torch that builds the
module has it (2.0+), else as matmul + bias + mask + softmax + matmul: the same
formula, in one fused kernel instead of five steps. A traced file then needs a
libtorch that knows that operator (2.0+); `set_attention("matmul")` writes one for
older ones. `set_attention("efficient")` calls the memory-efficient kernel's operator
directly on CUDA (2.1+), where "sdpa" lets PyTorch pick (often cuDNN's kernel): cuDNN
builds a plan for each attention shape when first called, all paid in a cold start's
first forward pass, while the memory-efficient kernel starts at once and is a little
slower per forward pass (docs/models.md).
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def relative_position_index(window: int) -> torch.Tensor:
    """(window^2, window^2) index into the (2w-1)^2-row bias table.

    Entry [i, j] encodes the offset (dy, dx) of token i from token j inside one
    window, each shifted to start at 0, as dy * (2w - 1) + dx.
    """
    rows = torch.arange(window).repeat_interleave(window)  # token -> row
    cols = torch.arange(window).repeat(window)  # token -> column
    dy = rows[:, None] - rows[None, :] + (window - 1)
    dx = cols[:, None] - cols[None, :] + (window - 1)
    return dy * (2 * window - 1) + dx


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of window -> (B * nWindows, window^2, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_gather_index(h: int, w: int, window: int, shift: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(to_win, from_win): the window partition as token indices for an (h, w) map.

    to_win[k] is the token (row-major, 0..h*w-1) that lands in slot k of the
    windows tensor (window-major, then row-major inside a window) after zero-padding
    the map to whole windows and rolling it by -shift, or h*w for a padding slot
    (the zero row the caller appends). from_win[t] is the slot token t comes back
    from after the reverse roll; padding slots are dropped."""
    hp = int(math.ceil(h / window)) * window
    wp = int(math.ceil(w / window)) * window
    # slot -> position in the rolled, padded map
    wy = torch.arange(hp // window).view(-1, 1, 1, 1)
    wx = torch.arange(wp // window).view(1, -1, 1, 1)
    iy = torch.arange(window).view(1, 1, -1, 1)
    ix = torch.arange(window).view(1, 1, 1, -1)
    ry = (wy * window + iy).expand(hp // window, wp // window, window, window).reshape(-1)
    rx = (wx * window + ix).expand(hp // window, wp // window, window, window).reshape(-1)
    qy = (ry + shift) % hp  # rolled by -shift: rolled[r] = padded[(r + shift) % size]
    qx = (rx + shift) % wp
    inside = (qy < h) & (qx < w)
    to_win = torch.where(inside, qy * w + qx, torch.full_like(qy, h * w))
    from_win = torch.empty(h * w, dtype=torch.long)
    slots = torch.arange(hp * wp)
    from_win[to_win[inside]] = slots[inside]
    return to_win, from_win


def shifted_window_mask(h: int, w: int, window: int, shift: int, fill: float = -100.0) -> torch.Tensor:
    """Additive attention mask for shifted windows on an (h, w) map padded to whole
    windows: 0 between tokens of the same region, `fill` (-100 in InSPyReNet's Swin,
    -inf in BiRefNet's) between tokens that the cyclic shift brought together from
    different regions. (nWindows, w^2, w^2)."""
    hp = int(math.ceil(h / window)) * window
    wp = int(math.ceil(w / window)) * window
    labels = torch.zeros(1, hp, wp, 1)
    bands = ((0, hp - window), (hp - window, hp - shift), (hp - shift, hp))
    stripes = ((0, wp - window), (wp - window, wp - shift), (wp - shift, wp))
    region = 0
    for r0, r1 in bands:
        for c0, c1 in stripes:
            labels[:, r0:r1, c0:c1, :] = region
            region += 1
    lab = to_windows(labels, window).squeeze(-1)  # (nW, w^2)
    diff = lab[:, None, :] - lab[:, :, None]
    return torch.where(diff != 0, torch.full_like(diff, fill), torch.zeros_like(diff))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


ATTENTION_FORMS = ("sdpa", "efficient", "matmul")


def default_attention() -> str:
    """"sdpa" when this torch has scaled_dot_product_attention (2.0+), else "matmul"."""
    return "sdpa" if hasattr(F, "scaled_dot_product_attention") else "matmul"


EFFICIENT_OP = "aten::_scaled_dot_product_efficient_attention"


def has_efficient_attention() -> bool:
    """Whether this torch has the memory-efficient kernel's operator with an additive
    bias argument (PyTorch 2.1+; 2.0's had none), and scaled_dot_product_attention."""
    if not hasattr(F, "scaled_dot_product_attention"):
        return False
    return any("attn_bias" in str(schema) for schema in torch._C._jit_get_schemas_for_operator(EFFICIENT_OP))


_efficient_attention = None


def efficient_attention():
    """The "efficient" form's attention, scripted (so that a traced file keeps both
    branches) on first use: the operator it names exists only in PyTorch 2.1+. On
    CUDA the memory-efficient kernel, always (see the module's docstring); elsewhere
    scaled_dot_product_attention, the same formula."""
    global _efficient_attention
    if _efficient_attention is None:
        def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
            if q.is_cuda:
                return torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, attn_mask, False)[0]
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        _efficient_attention = torch.jit.script(attention)
    return _efficient_attention


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias."""

    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.window = window
        self.heads = heads
        self.form = default_attention()  # a Python attribute: the traced graph keeps one form
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("position_bias", torch.zeros(0), persistent=False)

    def table_bias(self) -> torch.Tensor:
        """(1, heads, n, n): the table's entries for every pair of tokens in a window."""
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0).contiguous()

    def prepare(self) -> None:
        """Gathers the position bias once (from the weights loaded now)."""
        with torch.no_grad():
            self.position_bias = self.table_bias().detach().clone()

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.position_bias if self.position_bias.dim() == 4 else self.table_bias()
        if self.form != "matmul":  # "sdpa" or "efficient"
            # softmax(q k^T / sqrt(head dim) + bias (+ mask)) v, the default scale being
            # self.scale. The plain windows share one bias (a broadcast view); shifted
            # ones add the mask of their window, repeated for each image of a batch
            # (a view for one image: the sizes are traced from the input). contiguous():
            # module.to(memory_format=channels_last) makes the 4-d bias NHWC-strided,
            # which the fused kernels cannot read in place (a no-op otherwise).
            bias = bias.contiguous()
            if mask is None:
                attn_mask = bias.expand(bw, self.heads, n, n)
            else:
                nw = mask.shape[0]
                attn_mask = (bias + mask.unsqueeze(1)).unsqueeze(0).expand(bw // nw, nw, self.heads, n, n)
                attn_mask = attn_mask.reshape(bw, self.heads, n, n)
            if self.form == "efficient":
                out = efficient_attention()(q, k, v, attn_mask)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            return self.proj(out.transpose(1, 2).reshape(bw, n, c))
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (bw, heads, n, n)
        attn = attn + bias
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int, mask: torch.Tensor,
                to_win: torch.Tensor, from_win: torch.Tensor) -> torch.Tensor:
        """to_win/from_win: window_gather_index(h, w, window, self.shift)."""
        b, length, c = x.shape
        shortcut = x
        x = self.norm1(x)
        if to_win.shape[0] != length:
            x = F.pad(x, (0, 0, 0, 1))  # the zero row padding slots read: zeros after the norm, as upstream
        win = x.index_select(1, to_win).view(-1, self.window * self.window, c)
        win = self.attn(win, mask if self.shift > 0 else None)
        x = shortcut + win.view(b, -1, c).index_select(1, from_win)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> one token: concat (4C), LayerNorm, Linear to 2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, length, c = x.shape
        x = x.view(b, h, w, c)
        if h % 2 == 1 or w % 2 == 1:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        # order: (even row, even col), (odd, even), (even, odd), (odd, odd)
        x = torch.cat([x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :],
                       x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]], dim=-1)
        x = x.view(b, -1, 4 * c)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """`depth` blocks alternating plain and shifted windows, then optional merging.

    Upstream calls this BasicLayer; the name only matters for the Python class, the
    state_dict keys come from the attribute names (blocks, downsample).

    prepare() keeps the constants of one or more token-map sizes (a model that runs
    the backbone at two input sizes, as BiRefNet does, prepares both); slot 0's
    buffers have the plain names, slot i's the suffix _i."""

    BUFFERS = ("attn_mask", "plain_to_win", "plain_from_win", "shifted_to_win", "shifted_from_win")

    def __init__(self, dim: int, depth: int, heads: int, window: int, downsample: bool,
                 mask_value: float = -100.0):
        super().__init__()
        self.window = window
        self.shift = window // 2
        self.mask_value = mask_value
        self.blocks = nn.ModuleList([
            SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2) for i in range(depth)
        ])
        self.downsample = PatchMerging(dim) if downsample else None
        self.register_buffer("attn_mask", torch.zeros(0), persistent=False)
        for name in ("plain_to_win", "plain_from_win", "shifted_to_win", "shifted_from_win"):
            self.register_buffer(name, torch.zeros(0, dtype=torch.long), persistent=False)
        self.prepared = {}  # (h, w) -> buffer name suffix

    def prepare(self, h: int, w: int, slot: int = 0) -> None:
        """Precompute the shifted-window mask and the window gather indices for an
        (h, w) token map into buffer slot `slot` (0 replaces every earlier size),
        and each block's position bias."""
        dev = self.attn_mask.device
        suffix = f"_{slot}" if slot else ""
        if slot == 0:
            self.prepared = {}
        mask = shifted_window_mask(h, w, self.window, self.shift, self.mask_value)
        plain = window_gather_index(h, w, self.window, 0)
        shifted = window_gather_index(h, w, self.window, self.shift)
        values = (mask.to(device=dev, dtype=self.attn_mask.dtype),) + tuple(t.to(dev) for t in plain + shifted)
        for name, value in zip(self.BUFFERS, values):
            if slot:
                self.register_buffer(name + suffix, value, persistent=False)
            else:
                setattr(self, name, value)
        for blk in self.blocks:
            blk.attn.prepare()
        self.prepared[(h, w)] = suffix

    def forward(self, x: torch.Tensor, h: int, w: int):
        # int(): while tracing, sizes read from a tensor's shape are traced values,
        # which would not match the keys.
        suffix = self.prepared.get((int(h), int(w)))
        if suffix is not None:
            mask = getattr(self, "attn_mask" + suffix)
            plain = (getattr(self, "plain_to_win" + suffix), getattr(self, "plain_from_win" + suffix))
            shifted = (getattr(self, "shifted_to_win" + suffix), getattr(self, "shifted_from_win" + suffix))
        else:
            mask = shifted_window_mask(h, w, self.window, self.shift, self.mask_value).to(
                device=x.device, dtype=x.dtype)
            plain = tuple(t.to(x.device) for t in window_gather_index(h, w, self.window, 0))
            shifted = tuple(t.to(x.device) for t in window_gather_index(h, w, self.window, self.shift))
        for blk in self.blocks:
            to_win, from_win = shifted if blk.shift > 0 else plain
            x = blk(x, h, w, mask, to_win, from_win)
        if self.downsample is not None:
            return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2
        return x, x, h, w


class PatchEmbed(nn.Module):
    def __init__(self, patch: int = 4, in_chans: int = 3, dim: int = 128):
        super().__init__()
        self.patch = patch
        self.dim = dim
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        if w % self.patch != 0:
            x = F.pad(x, (0, self.patch - w % self.patch))
        if h % self.patch != 0:
            x = F.pad(x, (0, 0, 0, self.patch - h % self.patch))
        x = self.proj(x)
        gh, gw = x.shape[2], x.shape[3]
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).view(-1, self.dim, gh, gw)


class SwinTransformer(nn.Module):
    """Returns five NCHW maps: the patch embedding (stride 4; only PatchEmbed's own
    LayerNorm) and the outputs of the four stages through norm0..norm3 (strides
    4, 8, 16, 32; channels C, C, 2C, 4C, 8C)."""

    def __init__(self, embed_dim: int = 128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32),
                 window: int = 12, mask_value: float = -100.0):
        super().__init__()
        self.window = window
        self.num_features = [embed_dim * 2 ** i for i in range(len(depths))]
        self.patch_embed = PatchEmbed(4, 3, embed_dim)
        self.layers = nn.ModuleList([
            SwinStage(self.num_features[i], depths[i], heads[i], window, i < len(depths) - 1, mask_value)
            for i in range(len(depths))
        ])
        for i, c in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(c))

    @staticmethod
    def stage_sizes(height: int, width: int, stages: int = 4) -> List[Tuple[int, int]]:
        h, w = -(-height // 4), -(-width // 4)
        sizes = []
        for _ in range(stages):
            sizes.append((h, w))
            h, w = (h + 1) // 2, (w + 1) // 2
        return sizes

    def prepare(self, height: int, width: int, also=()) -> None:
        """Constants for input images of (height, width) and of each (h, w) in also."""
        for slot, (hh, ww) in enumerate([(height, width)] + list(also)):
            for layer, (h, w) in zip(self.layers, self.stage_sizes(hh, ww, len(self.layers))):
                layer.prepare(h, w, slot)

    def set_attention(self, form: str) -> None:
        """"sdpa", "efficient" or "matmul" (see the module's docstring) for every block."""
        if form not in ATTENTION_FORMS:
            raise ValueError(f"attention form {form!r}: expected one of {ATTENTION_FORMS}")
        if form == "sdpa" and default_attention() != "sdpa":
            raise ValueError(f"torch {torch.__version__} has no scaled_dot_product_attention (2.0+ has)")
        if form == "efficient" and not has_efficient_attention():
            raise ValueError(f"torch {torch.__version__} has no {EFFICIENT_OP} with attn_bias (2.1+ has)")
        for m in self.modules():
            if isinstance(m, WindowAttention):
                m.form = form

    def forward(self, x: torch.Tensor):
        x = self.patch_embed(x)
        h, w = x.shape[2], x.shape[3]
        # The maps go out in the tokens' own memory order (NHWC strides): what the
        # decoder's convolutions read under channels_last, with no copy; any consumer
        # that needs NCHW order (a reshape) makes it itself.
        outs = [x]
        x = x.flatten(2).transpose(1, 2)
        norms = [self.norm0, self.norm1, self.norm2, self.norm3]
        for i, layer in enumerate(self.layers):
            y, x, nh, nw = layer(x, h, w)
            y = norms[i](y)
            outs.append(y.view(-1, h, w, self.num_features[i]).permute(0, 3, 1, 2))
            h, w = nh, nw
        return outs


def swin_b() -> SwinTransformer:
    """Swin-B, window 12 (the 384x384 ImageNet-22k variant InSPyReNet starts from)."""
    return SwinTransformer(embed_dim=128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32), window=12)
