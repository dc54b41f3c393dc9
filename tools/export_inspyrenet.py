#!/usr/bin/python3
"""Exports InSPyReNet (Swin-B) to a libpetmatte TorchScript file.

    /usr/bin/python3 tools/export_inspyrenet.py --checkpoint ckpt_base.pth --out inspyrenet-base.pt
    /usr/bin/python3 tools/export_inspyrenet.py --checkpoint ckpt_fast.pth --out inspyrenet-fast.pt
    /usr/bin/python3 tools/export_inspyrenet.py --random-weights --seed 0 --size 384 --out random.pt

The network is libpetmatte's own implementation (tools/inspyrenet/), which loads the
official checkpoints with strict=True. It is traced at one fixed input size (the
model's input is [1, 3, size, size], ImageNet-normalised RGB) and returns
sigmoid(d0), the finest level of the saliency pyramid, as [1, 1, size, size]. The
per-image min-max stretch InSPyReNet applies afterwards is done by libpetmatte, as
the embedded manifest (extra file "petmatte.json", docs/manifest.md) says.

The file is the inference form of the module: every BatchNorm is merged into the
convolution before it (the file's parameters are therefore not the checkpoint's), and
the Swin masks, window indices and position biases are precomputed for the size.
Window attention is written as scaled_dot_product_attention where the exporting torch
has it (2.0+; such a file loads in libtorch 2.0+), else, or with --attention matmul,
as plain matrix products (any libtorch). --attention efficient names the
memory-efficient kernel on CUDA (libtorch 2.1+): a shorter cold start, a slightly
slower forward pass (docs/models.md).

Files are float32. Half precision is chosen when the library loads the file
(pm_params.precision: it converts the weights with module.to(dtype)), so one file
serves fp32, fp16 and bf16. See docs/models.md.
"""
import argparse
import hashlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inspyrenet import (KNOWN_CHECKPOINTS, InSPyReNet, extract_state_dict, inspyrenet_swinb,  # noqa: E402
                        randomize_, valid_size)
from inspyrenet.swin import default_attention  # noqa: E402
from trace_export import add_output_options, check_output_options, manifest_json, trace_to_file  # noqa: E402

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
UPSTREAM = "InSPyReNet (Kim et al., ACCV 2022), github.com/plemeri/InSPyReNet and plemeri/transparent-background"


def md5_of(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_manifest(name: str, size: int, random_weights: bool, source: str, license_text: str,
                  extra: dict) -> str:
    # The map is stretched to [0, 1] (min-max), as upstream's inference does.
    return manifest_json(name, size, size, MEAN, STD, "minmax", random_weights, source, license_text, extra)


def build(args):
    """-> (model in eval mode, size, manifest text)."""
    if args.checkpoint:
        digest = md5_of(args.checkpoint)
        known = KNOWN_CHECKPOINTS.get(digest)
        base = args.base_size or (known[1] if known else None) or args.size
        if base is None:
            raise SystemExit(f"{args.checkpoint} (md5 {digest}) is not an official checkpoint: "
                             "give --size (and --base-size if it was trained at another size)")
        size = args.size or base
        stem = {"ckpt_base.pth": "base", "ckpt_fast.pth": "fast"}.get(known[0] if known else "", None)
        name = args.name or (f"inspyrenet-swinb-{stem}" if stem else "inspyrenet-swinb")
        if size != base:
            name = args.name or f"{name}-{size}"
        source = (f"{UPSTREAM}; checkpoint {os.path.basename(args.checkpoint)} md5 {digest}"
                  + (f" (official {known[0]})" if known else ""))
        license_text = "MIT (InSPyReNet code and weights, Copyright (c) 2022 Taehun Kim)"
        extra = {"checkpoint_md5": digest}
    else:
        size = args.size or 1024
        base = args.base_size or size
        name = args.name or f"inspyrenet-swinb-random-{size}"
        source = f"{UPSTREAM}; architecture only: random weights, seed {args.seed}"
        license_text = "MIT"
        extra = {"seed": args.seed}
        digest = None

    for what, v in (("--size", size), ("--base-size", base)):
        why = valid_size(v, v)
        if why:
            raise SystemExit(f"{what} {v}: {why}")
    if size != base:
        print(f"note: input size {size} differs from the base size {base} the weights were trained at; "
              "upstream runs such inputs too, but quality is best at the base size", file=sys.stderr)

    model = inspyrenet_swinb(base_size=(base, base))
    if args.checkpoint:
        state = extract_state_dict(torch.load(args.checkpoint, map_location="cpu"))
        model.load_state_dict(state, strict=True)
    else:
        randomize_(model, args.seed)
    # BatchNorm merged into the convolutions (one kernel a layer fewer at run time),
    # then the size- and weight-dependent constants.
    model.eval().fold_batchnorm().prepare(size, size)
    attention = default_attention() if args.attention == "auto" else args.attention
    try:
        model.set_attention(attention)
    except ValueError as e:
        raise SystemExit(f"--attention {args.attention}: {e}")
    rewrites = parse_rewrites(args.rewrites)
    model.set_rewrites(rewrites)
    extra.update({"architecture": "InSPyReNet Swin-B, depth 64", "base_size": base, "attention": attention,
                  "exporter": "libpetmatte tools/export_inspyrenet.py", "torch": torch.__version__})
    manifest = make_manifest(name, size, not args.checkpoint, source, license_text, extra)
    return model, size, manifest


def parse_rewrites(text: str):
    """--rewrites: "all", "none" or a comma list of InSPyReNet.REWRITES."""
    if text == "all":
        return InSPyReNet.REWRITES
    if text == "none":
        return ()
    try:
        return InSPyReNet.check_rewrites(tuple(n for n in text.split(",") if n))
    except ValueError as e:
        raise SystemExit(f"--rewrites {text}: {e} (or all, none)")


def export(model, size: int, manifest: str, out: str, verify: bool = True, log=print) -> torch.jit.ScriptModule:
    """Traces model at [1, 3, size, size], saves it with the manifest, and (verify)
    checks the file against the eager module."""
    return trace_to_file(model, size, size, manifest, out, verify, log)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Sizes: multiples of 32, at least 64 (square). "
                                       "Official: ckpt_base.pth 1024, ckpt_fast.pth 384.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="official InSPyReNet Swin-B state_dict (ckpt_base.pth, ckpt_fast.pth)")
    src.add_argument("--random-weights", action="store_true",
                     help="the exact architecture with deterministic random weights (tests, benchmarks)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-weights (default 0)")
    p.add_argument("--size", type=int, help="input size the file runs at (default: the checkpoint's base "
                                             "size: 1024 for ckpt_base.pth, 384 for ckpt_fast.pth; 1024 "
                                             "for random weights)")
    p.add_argument("--base-size", type=int,
                   help="the size the weights were trained at (fixes SICA's stage sizes); default: known "
                        "from the checkpoint's md5, else --size")
    p.add_argument("--attention", default="auto", choices=["auto", "sdpa", "efficient", "matmul"],
                   help="Swin's window attention: sdpa (scaled_dot_product_attention, one fused "
                        "kernel on a GPU; the file then needs libtorch 2.0+), efficient (on CUDA always "
                        "the memory-efficient kernel: no per-shape cuDNN set-up in a cold start, a "
                        "slightly slower forward pass; needs libtorch 2.1+), matmul (loads in "
                        "libtorch 1.x too), auto (default): sdpa when this torch has it")
    p.add_argument("--rewrites", default="all",
                   help="the decoder's GPU rewrites to write (same formulas, faster in NHWC on a "
                        "GPU): all (default), none, or a comma list of resize, context, axial "
                        "(InSPyReNet.set_rewrites); for timing one against another")
    add_output_options(p)
    args = p.parse_args(argv)
    check_output_options(p, args)
    torch.set_grad_enabled(False)
    model, size, manifest = build(args)
    export(model, size, manifest, args.out, verify=not args.no_verify)


if __name__ == "__main__":
    main()
