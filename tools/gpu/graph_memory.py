"""graph_memory.py - device memory of a captured fp16 forward pass, by allocator setting.

    python3 tools/gpu/graph_memory.py MODEL.pt [--size 1024]

In fresh processes, with PYTORCH_CUDA_ALLOC_CONF unset and then set to
expandable_segments:True: load onto the GPU, fp16, NHWC weights, two eager passes,
capture one CUDA graph (private pool, as libpetmatte does), emptyCache, three replays.
Prints reserved and allocated MiB after capture and the allocator's peak, and the
replay median. A measurement (docs/benchmarks.md), not a test.
"""
import argparse
import os
import subprocess
import sys

CHILD = r'''
import json, sys, time, torch
path, size = sys.argv[1], int(sys.argv[2])
torch.backends.cudnn.benchmark = True
m = torch.jit.load(path, map_location="cuda").eval()
for p in list(m.parameters()) + list(m.buffers()):
    if p.is_floating_point():
        p.data = p.data.half()
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
x = torch.rand(1, 3, size, size, device="cuda", dtype=torch.half).contiguous(memory_format=torch.channels_last)
s = torch.cuda.Stream()
s.wait_stream(torch.cuda.current_stream())
with torch.no_grad(), torch.cuda.stream(s):
    for _ in range(2):
        m(x)
torch.cuda.current_stream().wait_stream(s)
torch.cuda.synchronize()
g = torch.cuda.CUDAGraph()
with torch.no_grad(), torch.cuda.graph(g):
    out = m(x)
torch.cuda.synchronize()
torch.cuda.empty_cache()
st = torch.cuda.memory_stats()
times = []
for _ in range(7):
    t0 = time.perf_counter(); g.replay(); torch.cuda.synchronize(); times.append((time.perf_counter() - t0) * 1e3)
times.sort()
mib = 1 << 20
print(json.dumps({"reserved": round(st["reserved_bytes.all.current"] / mib), "allocated": round(st["allocated_bytes.all.current"] / mib),
                  "peak allocated": round(st["allocated_bytes.all.peak"] / mib), "peak reserved": round(st["reserved_bytes.all.peak"] / mib),
                  "replay ms": round(times[3], 2)}))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    for conf in ("", "expandable_segments:True"):
        env = dict(os.environ)
        env.pop("PYTORCH_CUDA_ALLOC_CONF", None)
        if conf:
            env["PYTORCH_CUDA_ALLOC_CONF"] = conf
        r = subprocess.run([sys.executable, "-c", CHILD, args.model, str(args.size)], env=env,
                           capture_output=True, text=True, timeout=300)
        line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()[-400:]
        print(f"{conf or 'default':26s} {line}", flush=True)


if __name__ == "__main__":
    main()
