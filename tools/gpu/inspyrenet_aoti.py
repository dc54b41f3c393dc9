#!/usr/bin/env python3
"""What an ahead-of-time compiled InSPyReNet would run at: torch.export of libpetmatte's
module (random weights, 1024x1024, batch 1, fp16, channels_last), compiled with
AOTInductor into a .pt2 package, then loaded back in a fresh process (loading it in the
compiling process segfaulted on an H200 in the third session) and timed as CUDA graph
replays, beside the module in the form the exporter writes (BatchNorm folded, fused
conv + bias + ReLU), timed the same way in the compiling process.

    python3 tools/gpu/inspyrenet_aoti.py --out /tmp/insp.pt2 [--runs 50] [--max-autotune]
        [--no-freezing] [--no-metadata]

Prints compile time, package size, load time, median forward, the largest difference
from the eager module, and device memory. Needs a CUDA PyTorch >= 2.6 with Triton.
A measurement, not part of the library.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_util import graph_median_ms  # noqa: E402
from inspyrenet_variants import build  # noqa: E402


def sample_input():
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    return x.to("cuda", torch.float16).contiguous(memory_format=torch.channels_last)


def timed_replays(fn, x, runs):
    """graph_median_ms, or plain timed calls when the callable cannot be captured."""
    try:
        med, lo, hi, out = graph_median_ms(fn, x, runs)
        return med, lo, hi, out, "graph replay"
    except Exception as e:  # noqa: BLE001 - any capture failure: say so and time eagerly
        print(f"graph capture failed: {str(e).splitlines()[0]}", flush=True)
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        out = fn(x)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    out = out[0] if isinstance(out, (list, tuple)) else out
    return statistics.median(times), min(times), max(times), out.float(), "eager calls"


def compile_package(args):
    # The exporter's form (what libpetmatte runs) as the baseline, same process.
    m = build(torch.float16, True, fold=True)
    x = sample_input()
    med, lo, hi, ref, how = timed_replays(m, x, args.runs)
    print(f"exporter's form (TorchScript-able module, eager): {med:.2f} ms [{lo:.2f}-{hi:.2f}] ({how})",
          flush=True)
    torch.save(ref.cpu(), args.out + ".ref")
    del m
    torch.cuda.empty_cache()
    # Unfolded BatchNorm and no fused call: Inductor folds and fuses by itself.
    m = build(torch.float16, True, fold=False)
    t = time.time()
    ep = torch.export.export(m, (x,))
    t_export = time.time() - t
    configs = {}
    if not args.no_metadata:
        configs["aot_inductor.metadata"] = {"petmatte.json": '{"format": "petmatte-manifest"}'}
    if args.max_autotune:
        configs["max_autotune"] = True
    if not args.no_freezing:
        configs["freezing"] = True
    t = time.time()
    path = torch._inductor.aoti_compile_and_package(ep, package_path=args.out, inductor_configs=configs)
    t_compile = time.time() - t
    print(f"export {t_export:.1f} s, AOTInductor compile {t_compile:.1f} s (freezing "
          f"{'off' if args.no_freezing else 'on'}), package {os.path.getsize(path) / 2**20:.0f} MiB", flush=True)


def load_and_time(args):
    torch.cuda.init()
    x = sample_input()
    ref = torch.load(args.out + ".ref").cuda()
    t = time.time()
    runner = torch._inductor.aoti_load_package(args.out)
    t_load = time.time() - t
    t = time.time()
    y = runner(x)
    y = y[0] if isinstance(y, (list, tuple)) else y
    torch.cuda.synchronize()
    print(f"package load {t_load:.2f} s, first call {time.time() - t:.2f} s; max|aoti - eager| "
          f"{(y.float() - ref).abs().max().item():.3e}", flush=True)
    torch.cuda.reset_peak_memory_stats()
    med, lo, hi, _, how = timed_replays(lambda v: runner(v), x, args.runs)
    print(f"AOTInductor fp16 channels_last: {med:.2f} ms [{lo:.2f}-{hi:.2f}] ({how}), "
          f"peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--max-autotune", action="store_true")
    p.add_argument("--no-freezing", action="store_true")
    p.add_argument("--no-metadata", action="store_true", help="no petmatte.json in the package's metadata")
    p.add_argument("--load-only", action="store_true", help="(internal) the fresh process that loads and times")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    torch.backends.cudnn.benchmark = True
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    if args.load_only:
        load_and_time(args)
        return
    compile_package(args)
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--out", args.out, "--runs",
                            str(args.runs), "--load-only"])
    if child.returncode != 0:
        print(f"loading process exit status {child.returncode}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
