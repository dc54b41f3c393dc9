#!/usr/bin/env python3
"""Does cuDNN autotuning lengthen the first call? One fresh process per run:

    python3 tools/gpu/cudnn_autotune.py MODEL.pt 1   # torch.backends.cudnn.benchmark on
    python3 tools/gpu/cudnn_autotune.py MODEL.pt 0   # off

Loads the TorchScript file onto cuda, fp16, channels_last, executor optimisation off,
and prints the load time, three eager calls, the CUDA graph capture and the median of
100 replays. A measurement (docs/benchmarks.md), not part of the library.
"""
import sys, time, statistics, torch
t0 = time.time()
torch.backends.cudnn.benchmark = sys.argv[2] == "1"
torch.set_grad_enabled(False)
m = torch.jit.load(sys.argv[1], map_location="cuda").half().to(memory_format=torch.channels_last)
torch._C._set_graph_executor_optimize(False)
x = torch.randn(1, 3, 1024, 1024, device="cuda").half().contiguous(memory_format=torch.channels_last)
torch.cuda.synchronize(); t1 = time.time()
out = []
for i in range(3):
    a = time.time(); m(x); torch.cuda.synchronize(); out.append((time.time() - a) * 1e3)
s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
g = torch.cuda.CUDAGraph()
a = time.time()
with torch.cuda.graph(g):
    y = m(x)
torch.cuda.synchronize(); cap = (time.time() - a) * 1e3
ts = []
for _ in range(100):
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record(); g.replay(); e1.record(); e1.synchronize(); ts.append(e0.elapsed_time(e1))
print(f"benchmark={sys.argv[2]}: load {1e3*(t1-t0):.0f} ms, eager calls {', '.join(f'{v:.0f}' for v in out)} ms, capture {cap:.0f} ms, replay median {statistics.median(ts):.2f} ms [{min(ts):.2f}-{max(ts):.2f}]", flush=True)
