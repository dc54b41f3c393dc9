#!/usr/bin/env python3
"""Two of the issue's "ways that are known to matter", measured on their own:

1. weights loaded straight to the device: torch.jit.load(f, map_location="cuda")
   (what libpetmatte does) against torch.jit.load(f) on the CPU, then .to("cuda"),
   each in fresh processes (the CUDA context made first, outside the timing);
2. the pixel upload from pinned memory: a caller's 8-bit RGB (1024x1024, and 12 MP)
   copied to the GPU from its own (pageable) memory, as libpetmatte does, against a
   memcpy into a pinned staging buffer and an asynchronous copy from there.

    python3 tools/gpu/load_and_upload.py MODEL.pt [--repeats 3] [--runs 50]

Prints medians [min-max]. A measurement for docs/benchmarks.md, not a test.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import torch


def child_load(path, how):
    torch.empty(1, device="cuda")  # context first: not part of either figure
    torch.cuda.synchronize()
    t = time.perf_counter()
    if how == "device":
        m = torch.jit.load(path, map_location="cuda")
    else:
        m = torch.jit.load(path, map_location="cpu").to("cuda")
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t) * 1e3
    print(json.dumps({"ms": ms, "peak_mib": torch.cuda.max_memory_allocated() / 2**20,
                      "params": sum(p.numel() for p in m.parameters())}))


def fmt(v):
    return f"{statistics.median(v):.1f} [{min(v):.1f}-{max(v):.1f}]"


def upload_ms(np_rgb, pinned, runs):
    src = torch.from_numpy(np_rgb)
    staging = torch.empty(src.shape, dtype=torch.uint8).pin_memory() if pinned else None
    times = []
    for _ in range(runs + 3):
        torch.cuda.synchronize()
        t = time.perf_counter()
        if pinned:
            staging.copy_(src)  # the caller's bytes into the pinned buffer (a host memcpy)
            dev = staging.to("cuda", non_blocking=True)
        else:
            dev = src.to("cuda")
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
        del dev
    return times[3:]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--child", choices=["device", "cpu"])
    args = p.parse_args()
    if args.child:
        child_load(args.model, args.child)
        return
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    res = {"device": [], "cpu": []}
    for _ in range(args.repeats):
        for how in ("device", "cpu"):
            out = subprocess.run([sys.executable, __file__, args.model, "--child", how], check=True,
                                 stdout=subprocess.PIPE, text=True).stdout
            res[how].append(json.loads(out.strip().splitlines()[-1]))
    for how, label in (("device", "jit.load straight to the GPU"), ("cpu", "jit.load on the CPU, then .to(cuda)")):
        print(f"{label:40s} {fmt([r['ms'] for r in res[how]])} ms, peak "
              f"{statistics.median([r['peak_mib'] for r in res[how]]):.0f} MiB", flush=True)
    import numpy as np
    rng = np.random.default_rng(0)
    for w, h in ((1024, 1024), (4000, 3000)):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        a = upload_ms(rgb, False, args.runs)
        b = upload_ms(rgb, True, args.runs)
        print(f"upload {w}x{h} RGB ({rgb.nbytes / 2**20:.1f} MiB): pageable {fmt(a)} ms, "
              f"memcpy to pinned + async copy {fmt(b)} ms", flush=True)


if __name__ == "__main__":
    main()
