#!/usr/bin/env python3
"""What a warm call costs beyond the model: one TorchScript file (IS-Net, InSPyReNet) at its
1024x1024 input, fp16, channels_last, cuDNN autotuning on, executor optimisation off
(libpetmatte's CUDA settings), timed three ways in one process:

  A  libpetmatte's steps in Python: pageable upload of 8-bit RGB, normalise, copy into
     the model graph's input, replay, clone, finiteness check (a sync), min-max,
     8-bit matte, download;
  B  pre-processing, model and post-processing captured in one CUDA graph, pinned
     staging buffers in and out;
  C  the same graph, pageable copies.

Also the GPU time of the model graph alone and of the whole graph. Usage:

    python3 tools/gpu/pipeline_overhead.py MODEL.pt

Normalisation constants are fixed (mean 0.5, std 1): they do not change the timing.
A measurement (docs/benchmarks.md), not part of the library.
"""
import os, sys, time, statistics, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_util import LibraryMimic
lib = LibraryMimic(sys.argv[1])
m, host, s, pre, post, g = lib.model, lib.host, lib.stream, lib.pre, lib.post, lib.graph
H, W = lib.H, lib.W
def wall(fn, n=200):
    for _ in range(10): fn()
    ts = []
    for _ in range(n):
        a = time.perf_counter(); fn(); ts.append((time.perf_counter() - a) * 1e3)
    return statistics.median(ts), min(ts), max(ts)
with torch.cuda.stream(s):
    u8 = host.cuda(); gb = torch.cuda.CUDAGraph()
    for _ in range(2): post(m(pre(u8)))
    torch.cuda.synchronize()
    with torch.cuda.graph(gb): bm, bok = post(m(pre(u8)))
    torch.cuda.synchronize()
    A = lib.call
    pin_in = torch.empty_like(host).pin_memory(); pin_out = torch.empty((1, 1, H, W), dtype=torch.uint8).pin_memory(); pin_ok = torch.empty((), dtype=torch.bool).pin_memory()
    res = torch.empty((1, 1, H, W), dtype=torch.uint8)
    def B():
        pin_in.copy_(host); u8.copy_(pin_in, non_blocking=True); gb.replay()
        pin_out.copy_(bm, non_blocking=True); pin_ok.copy_(bok, non_blocking=True); s.synchronize()
        res.copy_(pin_out)
        if not bool(pin_ok): raise SystemExit("nan")
    def C():
        u8.copy_(host); gb.replay(); res.copy_(bm)
        if not bool(bok.item()): raise SystemExit("nan")
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record(s); [g.replay() for _ in range(50)]; e1.record(s); e1.synchronize()
    print(f"model graph replay alone: {e0.elapsed_time(e1)/50:.2f} ms (GPU time)")
    e0.record(s); [gb.replay() for _ in range(50)]; e1.record(s); e1.synchronize()
    print(f"pre+model+post graph replay alone: {e0.elapsed_time(e1)/50:.2f} ms (GPU time)")
    for name, fn in (("A lib-like", A), ("B one graph, pinned", B), ("C one graph, pageable", C)):
        med, lo, hi = wall(fn)
        print(f"{name:24s} wall {med:.2f} ms [{lo:.2f}-{hi:.2f}]", flush=True)
