#!/usr/bin/python3
"""Exports BiRefNet to a libpetmatte TorchScript file.

    /usr/bin/python3 tools/export_birefnet.py --checkpoint BiRefNet-general-epoch_244.pth --out birefnet-general.pt
    /usr/bin/python3 tools/export_birefnet.py --checkpoint HR_CHECKPOINT.pth --size 2048 --out birefnet-hr.pt
    /usr/bin/python3 tools/export_birefnet.py --random-weights --seed 0 --size 1024 --out random.pt

The network is libpetmatte's own implementation (tools/birefnet/): the general
configuration of github.com/ZhengPeng7/BiRefNet with a Swin backbone (Swin-L, or the
Swin-T/S/B a checkpoint's shapes show, as the lite ones' Swin-T). A checkpoint loads
with strict=True after its 'module.' / '_orig_mod.' prefixes are stripped and its
training-only heads (the multi-scale supervision and gradient-map predictors, which
upstream's inference never reads) are dropped; the exporter names what it dropped.

The file is traced at one input size (the model's input is [1, 3, H, W],
ImageNet-normalised RGB) and returns sigmoid of the final map, [1, 1, H, W]: what
upstream's inference computes. libpetmatte resizes it back to the image (bilinear,
align_corners=True, upstream's rule), with no further normalisation, as the embedded
manifest (extra file "petmatte.json", docs/manifest.md) says.

The file holds the module's inference form: every BatchNorm merged into the
convolution before it, the Swin masks, window indices and position biases precomputed
for the input size and the half-size copy, the deformable convolution in plain
operators (torchvision's operator is not in libtorch), and the output head rewritten to
resize one channel instead of 192 (--rewrites none keeps upstream's order). Window
attention is scaled_dot_product_attention where the exporting torch has it (2.0+; such
a file loads in libtorch 2.0+), else, or with --attention matmul, plain matrix products
(any libtorch).

Files are float32. Half precision is chosen when the library loads the file
(pm_params.precision), so one file serves fp32, fp16 and bf16. See docs/models.md.
"""
import argparse
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from birefnet import BACKBONES, BiRefNet, detect_backbone, extract_state_dict, load_checkpoint, valid_size  # noqa: E402
from export_inspyrenet import MEAN, STD, md5_of  # noqa: E402
from inspyrenet import randomize_  # noqa: E402
from inspyrenet.swin import default_attention  # noqa: E402
from trace_export import add_output_options, check_output_options, manifest_json, trace_to_file  # noqa: E402

UPSTREAM = "BiRefNet (Zheng et al., CAAI AIR 2024), github.com/ZhengPeng7/BiRefNet"
LICENSE = "MIT (BiRefNet code and weights, Copyright (c) 2024 ZhengPeng)"
REWRITES = ("head",)


def parse_size(text: str):
    """'N' or 'WxH' -> (width, height)."""
    m = re.fullmatch(r"(\d+)(?:x(\d+))?", text or "")
    if not m:
        raise SystemExit(f"--size {text!r}: expected N or WIDTHxHEIGHT, e.g. 1024 or 2560x1440")
    w = int(m.group(1))
    h = int(m.group(2)) if m.group(2) else w
    why = valid_size(h, w)
    if why:
        raise SystemExit(f"--size {text}: {why}")
    return w, h


def make_manifest(name: str, width: int, height: int, random_weights: bool, source: str,
                  license_text: str, extra: dict) -> str:
    # Upstream: model(x)[-1].sigmoid(), then the resize to the image; no min-max stretch.
    return manifest_json(name, width, height, MEAN, STD, "none", random_weights, source, license_text, extra)


def default_name(checkpoint: str, width: int, height: int) -> str:
    stem = os.path.splitext(os.path.basename(checkpoint))[0].lower().replace("_", "-")
    stem = re.sub(r"[^a-z0-9.-]+", "-", stem).strip("-")
    if not stem.startswith("birefnet"):
        stem = "birefnet-" + stem
    return f"{stem}-{width}x{height}"[:63] if (width, height) != (1024, 1024) else stem[:63]


def build(args, log=print):
    """-> (model in eval mode, (width, height), manifest text)."""
    width, height = parse_size(args.size)
    state = None
    if args.checkpoint:
        digest = md5_of(args.checkpoint)
        try:
            state = extract_state_dict(torch.load(args.checkpoint, map_location="cpu"))
            backbone = detect_backbone(state)
        except ValueError as e:
            raise SystemExit(f"{args.checkpoint}: {e}")
        if args.backbone and args.backbone != backbone:
            raise SystemExit(f"--backbone {args.backbone}: the checkpoint's shapes are {backbone}'s")
        name = args.name or default_name(args.checkpoint, width, height)
        source = f"{UPSTREAM}; checkpoint {os.path.basename(args.checkpoint)} md5 {digest}"
        license_text = LICENSE
        extra = {"checkpoint_md5": digest}
    else:
        backbone = args.backbone or "swin_v1_l"
        suffix = "" if backbone == "swin_v1_l" else "-" + backbone.replace("_", "-")
        name = args.name or f"birefnet{suffix}-random-{width}x{height}"
        source = f"{UPSTREAM}; architecture only: random weights, seed {args.seed}"
        license_text = "MIT"
        extra = {"seed": args.seed}

    model = BiRefNet(backbone)
    if state is not None:
        try:
            dropped = load_checkpoint(model, state)
        except (RuntimeError, ValueError) as e:
            raise SystemExit(f"{args.checkpoint} does not load into BiRefNet ({backbone}): {e}")
        log(f"loaded {args.checkpoint} ({backbone}), strict; dropped {len(dropped)} training-only "
            f"entries: {', '.join(sorted(dropped))}")
    else:
        randomize_(model, args.seed)
    rewrites = parse_rewrites(args.rewrites)
    inference_form(model, (width, height), rewrites, args.attention)
    attention = model.bb.layers[0].blocks[0].attn.form
    extra.update({"architecture": f"BiRefNet {backbone}, general configuration", "attention": attention,
                  "rewrites": list(rewrites), "exporter": "libpetmatte tools/export_birefnet.py",
                  "torch": torch.__version__})
    manifest = make_manifest(name, width, height, state is None, source, license_text, extra)
    return model, (width, height), manifest


def inference_form(model: BiRefNet, size, rewrites, attention: str) -> BiRefNet:
    """The exported form of a loaded model, in place: BatchNorm merged into the
    convolutions, the head rewritten (if "head" in rewrites), the Swin constants for
    size = (width, height) and its half, the window attention form ("auto": sdpa where
    this torch has it)."""
    width, height = size
    model.eval().fold_batchnorm()
    if "head" in rewrites:
        model.fuse_head()
    model.prepare(height, width)
    form = default_attention() if attention == "auto" else attention
    try:
        model.set_attention(form)
    except ValueError as e:
        raise SystemExit(f"--attention {attention}: {e}")
    return model


def parse_rewrites(text: str):
    if text == "all":
        return REWRITES
    if text == "none":
        return ()
    names = tuple(n for n in text.split(",") if n)
    unknown = sorted(set(names) - set(REWRITES))
    if unknown:
        raise SystemExit(f"--rewrites {text}: unknown {unknown} (expected all, none or some of {REWRITES})")
    return names


def export(model, size, manifest: str, out: str, verify: bool = True, log=print) -> torch.jit.ScriptModule:
    """Traces model at [1, 3, height, width] (size = (width, height)), saves it with
    the manifest, and (verify) checks the file against the eager module."""
    width, height = size
    return trace_to_file(model, width, height, manifest, out, verify, log)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Sizes: multiples of 32 from 64 to 4096. Upstream runs the "
                                       "general checkpoints at 1024, the HR ones at 2048, the 2K "
                                       "ones at 2560x1440.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a BiRefNet .pth state_dict (e.g. BiRefNet-general-epoch_244.pth)")
    src.add_argument("--random-weights", action="store_true",
                     help="the exact architecture with deterministic random weights (tests, benchmarks)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-weights (default 0)")
    p.add_argument("--size", default="1024", help="input size the file runs at: N (square) or WIDTHxHEIGHT "
                                                  "(default 1024; use the size the checkpoint was trained at)")
    p.add_argument("--backbone", choices=sorted(BACKBONES),
                   help="Swin variant: found from a checkpoint's shapes; swin_v1_l for random weights")
    p.add_argument("--attention", default="auto", choices=["auto", "sdpa", "efficient", "matmul"],
                   help="Swin's window attention, as in export_inspyrenet.py: sdpa (libtorch 2.0+), "
                        "efficient (libtorch 2.1+), matmul (any libtorch), auto (default): sdpa when "
                        "this torch has it")
    p.add_argument("--rewrites", default="all",
                   help="inference rewrites to write: all (default), none, or a comma list of head "
                        "(the output head resizes one channel instead of 192); same formulas")
    add_output_options(p)
    args = p.parse_args(argv)
    check_output_options(p, args)
    torch.set_grad_enabled(False)
    model, size, manifest = build(args)
    export(model, size, manifest, args.out, verify=not args.no_verify)


if __name__ == "__main__":
    main()
