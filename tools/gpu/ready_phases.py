"""ready_phases.py - where a cold start's time goes, phase by phase, in fresh processes.

    python3 tools/gpu/ready_phases.py MODEL.pt [--channels-last 0|1] [--repeats 2]

Each variant runs in its own fresh process (after `import torch`, which loads the same
shared libraries the library links) and prints milliseconds per phase:
  sequential   context init; jit.load onto the GPU; fp16; channels_last; first forward
               (cudnn.benchmark on, as libpetmatte sets it); then the eager median of 10
  bench_off    the same with cudnn.benchmark off (first forward and eager median)
  prewarm      context init; a tiny fp16 conv + matmul (loads cuDNN and cuBLAS);
               jit.load onto the CPU; .to(cuda); fp16; channels_last; first forward
  profile      (with --profile-first, instead of the others) the sequential steps, with
               the first forward under torch.profiler: its operators by CPU time, to
               see what a first inference spends on autotuning, library set-up and
               kernel loading
A measurement (docs/benchmarks.md), not a test.
"""
import argparse
import subprocess
import sys

CHILD = r'''
import json, sys, time
t_start = time.perf_counter()
import torch
variant, path, cl = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
def mark(name, t0):
    torch.cuda.synchronize()
    out[name] = round((time.perf_counter() - t0) * 1e3, 1)
    return time.perf_counter()
torch.backends.cudnn.benchmark = variant != "bench_off"
t = time.perf_counter()
torch.empty(1, device="cuda")
t = mark("context", t)
if variant == "prewarm":
    x = torch.randn(1, 8, 32, 32, device="cuda", dtype=torch.half).contiguous(memory_format=torch.channels_last)
    w = torch.randn(8, 8, 3, 3, device="cuda", dtype=torch.half).contiguous(memory_format=torch.channels_last)
    torch.nn.functional.conv2d(x, w, padding=1)
    a = torch.randn(64, 64, device="cuda", dtype=torch.half)
    a @ a
    t = mark("cudnn+cublas warm", t)
    m = torch.jit.load(path, map_location="cpu")
    t = mark("jit.load to cpu", t)
    m = m.to("cuda")
    t = mark("to cuda", t)
else:
    m = torch.jit.load(path, map_location="cuda")
    t = mark("jit.load to cuda", t)
m = m.eval().half()
t = mark("half", t)
if cl:
    m = m.to(memory_format=torch.channels_last)
    t = mark("channels_last", t)
size = 1024
x = torch.rand(1, 3, size, size, device="cuda", dtype=torch.half)
if cl:
    x = x.contiguous(memory_format=torch.channels_last)
with torch.no_grad():
    if variant == "profile":
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            m(x)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30,
                                        max_name_column_width=60), file=sys.stderr)
    else:
        m(x)
    t = mark("first forward", t)
    m(x); m(x)
    t = mark("forwards 2-3", t)
    times = []
    for _ in range(10):
        t0 = time.perf_counter(); m(x); torch.cuda.synchronize(); times.append((time.perf_counter() - t0) * 1e3)
times.sort()
out["eager median"] = round(times[5], 2)
out["total since import"] = round((time.perf_counter() - t_start) * 1e3, 1)
print(json.dumps(out))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--channels-last", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--profile-first", action="store_true",
                    help="one process whose first forward runs under torch.profiler")
    args = ap.parse_args()

    def child(variant):
        return subprocess.run([sys.executable, "-c", CHILD, variant, args.model, str(args.channels_last)],
                              capture_output=True, text=True, timeout=300)

    if args.profile_first:
        r = child("profile")
        print(r.stderr[-12000:])
        print(f"profile     {r.stdout.strip()}", flush=True)
        return
    for variant in ("sequential", "bench_off", "prewarm"):
        for _ in range(args.repeats):
            r = child(variant)
            line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()[-300:]
            print(f"{variant:11s} {line}", flush=True)


if __name__ == "__main__":
    main()
