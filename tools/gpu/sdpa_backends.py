#!/usr/bin/env python3
"""What each scaled_dot_product_attention backend costs InSPyReNet's Swin-B windows
at a 1024x1024 input (fp16, 144 tokens a window, head size 32, a float mask): the
first call of each shape in a fresh process after the CUDA context and cuDNN's handle
exist (what a cold start pays on top: kernel compilation or loading, plan building) and the steady time per call (CUDA graph
replays), with the calls a forward pass makes of each.

    python3 tools/gpu/sdpa_backends.py [--backends default,cudnn,efficient] [--runs 50]

"default" is the backend PyTorch picks itself (what libpetmatte's export runs).
Each backend runs in its own process. A measurement (docs/benchmarks.md).
"""
import argparse
import json
import subprocess
import sys

CHILD = r'''
import json, sys, time, statistics, torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
backend, runs = sys.argv[1], int(sys.argv[2])
# The context and cuDNN's handle first (libpetmatte's load makes both, and the model's
# convolutions would load cuDNN anyway): only the attention's own first costs remain.
F.conv2d(torch.zeros(1, 8, 16, 16, device="cuda", dtype=torch.half), torch.zeros(8, 8, 3, 3, device="cuda", dtype=torch.half))
torch.cuda.synchronize()
n, d = 144, 32
# (stage, windows, heads, calls of each kind per forward pass) for Swin-B at 1024x1024
stages = [(1, 484, 4, 1), (2, 121, 8, 1), (3, 36, 16, 9), (4, 9, 32, 1)]
ctx = sdpa_kernel([getattr(SDPBackend, {"cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                                        "math": "MATH"}[backend])]) if backend != "default" else None
def call_for(bw, heads, shifted):
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(bw, heads, n, d, device="cuda", dtype=torch.half, generator=g) for _ in range(3))
    bias = torch.randn(1, heads, n, n, device="cuda", dtype=torch.half, generator=g)
    if shifted:
        mask = torch.randn(bw, 1, n, n, device="cuda", dtype=torch.half, generator=g)
        m = bias + mask
    else:
        m = bias.expand(bw, heads, n, n)
    return lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=m)
out = {"first_ms": {}, "steady_us": {}, "per_forward_us": 0.0, "first_total_ms": 0.0}
if ctx is not None:
    ctx.__enter__()
for stage, bw, heads, count in stages:
    for shifted in (False, True):
        key = f"s{stage}{'-shifted' if shifted else ''}"
        fn = call_for(bw, heads, shifted)
        t = time.perf_counter(); fn(); torch.cuda.synchronize()
        out["first_ms"][key] = round((time.perf_counter() - t) * 1e3, 2)
        out["first_total_ms"] += out["first_ms"][key]
        s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3): fn()
        torch.cuda.current_stream().wait_stream(s); torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(10): fn()
        times = []
        for _ in range(runs):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(); graph.replay(); b.record(); b.synchronize()
            times.append(a.elapsed_time(b) * 100.0)  # us per call (10 calls a replay)
        out["steady_us"][key] = round(statistics.median(times), 1)
        out["per_forward_us"] += count * out["steady_us"][key]
print(json.dumps(out))
'''

ap = argparse.ArgumentParser()
ap.add_argument("--backends", default="default,cudnn,efficient")
ap.add_argument("--runs", type=int, default=50)
args = ap.parse_args()
for backend in args.backends.split(","):
    p = subprocess.run([sys.executable, "-c", CHILD, backend, str(args.runs)], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"{backend}: failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
        continue
    r = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"{backend}: first calls {r['first_total_ms']:.1f} ms in all, steady {r['per_forward_us'] / 1e3:.3f} ms "
          f"per forward pass")
    for key in r["first_ms"]:
        print(f"  {key:12} first {r['first_ms'][key]:8.2f} ms   steady {r['steady_us'][key]:7.1f} us")
