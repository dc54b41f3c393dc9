#!/usr/bin/env python3
"""A model file's timing stand-in: the same TorchScript graph, shapes and manifest, with
the weights replaced. The default model's weights come from the npm registry at setup
and its file (176 MB) does not fit one device call's transfer; its graph with zeroed
weights compresses to ~60 kB, and refilled with random weights on the GPU machine it
runs the same kernels in the same time (the matte is meaningless: never use a stand-in
for precision or quality figures).

    /usr/bin/python3 tools/gpu/timing_standin.py zero models/isnet-general.pt isnet-zero.pt
    xz -9 isnet-zero.pt                       # ~60 kB: carry it to the GPU machine
    xz -dc isnet-zero.pt.xz > /tmp/isnet-zero.pt
    python3 tools/gpu/timing_standin.py random /tmp/isnet-zero.pt isnet.pt

zero: every floating-point parameter and buffer set to 0. random: N(0, 1/fan_in) for
tensors of 2+ dimensions, N(0, 0.05^2) otherwise (seed 0), so activations stay in range.
The manifest (extra file petmatte.json) is kept as it is.
"""
import sys

import torch


def main(argv):
    if len(argv) != 4 or argv[1] not in ("zero", "random"):
        sys.exit(__doc__)
    mode, src, dst = argv[1:]
    extra = {"petmatte.json": ""}
    m = torch.jit.load(src, map_location="cpu", _extra_files=extra)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in list(m.parameters()) + list(m.buffers()):
            if not t.is_floating_point():
                continue
            if mode == "zero":
                t.zero_()
            elif t.dim() >= 2:
                t.copy_(torch.randn(t.shape, generator=g) / t[0].numel() ** 0.5)
            else:
                t.copy_(0.05 * torch.randn(t.shape, generator=g))
    files = {k: v for k, v in extra.items() if v}
    torch.jit.save(m, dst, _extra_files=files)
    print(f"{mode}: wrote {dst} ({len(extra['petmatte.json'])} bytes of manifest)")


if __name__ == "__main__":
    main(sys.argv)
