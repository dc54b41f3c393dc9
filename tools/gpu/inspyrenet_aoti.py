#!/usr/bin/env python3
"""What an ahead-of-time compiled InSPyReNet would run at: torch.export of libpetmatte's
module (random weights, 1024x1024, batch 1, fp16, channels_last), compiled with
AOTInductor into a .pt2 package, loaded back and timed as CUDA graph replays, beside
the same module as a traced TorchScript file (what libpetmatte runs today).

    python3 tools/gpu/inspyrenet_aoti.py --out /tmp/insp.pt2 [--runs 50] [--max-autotune]

Prints compile time, package size, load time, median forward and device memory.
Needs a CUDA PyTorch >= 2.6 with Triton. A measurement, not part of the library.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from inspyrenet import inspyrenet_swinb, randomize_  # noqa: E402
from inspyrenet_variants import graph_median_ms  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--max-autotune", action="store_true")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    torch.backends.cudnn.benchmark = True
    m = inspyrenet_swinb()
    randomize_(m, 0)
    m.eval().prepare(1024, 1024)
    m = m.to("cuda", torch.float16).to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    x = x.to("cuda", torch.float16).contiguous(memory_format=torch.channels_last)
    ref = m(x).float()

    t = time.time()
    ep = torch.export.export(m, (x,))
    t_export = time.time() - t
    configs = {"aot_inductor.metadata": {"petmatte.json": '{"format": "petmatte-manifest"}'}}
    if args.max_autotune:
        configs["max_autotune"] = True
    t = time.time()
    path = torch._inductor.aoti_compile_and_package(ep, package_path=args.out, inductor_configs=configs)
    t_compile = time.time() - t
    print(f"export {t_export:.1f} s, AOTInductor compile {t_compile:.1f} s, package "
          f"{os.path.getsize(path) / 2**20:.0f} MiB", flush=True)
    del ep
    torch.cuda.empty_cache()

    t = time.time()
    runner = torch._inductor.aoti_load_package(path)
    y = runner(x)
    torch.cuda.synchronize()
    print(f"load + first call {time.time() - t:.2f} s; max|aoti - eager| {(y.float() - ref).abs().max().item():.3e}",
          flush=True)
    torch.cuda.reset_peak_memory_stats()
    try:
        med, lo, hi, _ = graph_median_ms(lambda v: runner(v), x, args.runs)
        how = "graph replay"
    except Exception as e:
        print(f"graph capture failed: {str(e).splitlines()[0]}", flush=True)
        times = []
        for _ in range(args.runs):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            runner(x)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        med, lo, hi, how = statistics.median(times), min(times), max(times), "eager calls"
    print(f"AOTInductor fp16 channels_last: {med:.2f} ms [{lo:.2f}-{hi:.2f}] ({how}), "
          f"peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
