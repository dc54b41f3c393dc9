#!/usr/bin/env python3
"""Where a warm libpetmatte call spends its time on a GPU: the library's own calls
profiled from Python (torch.profiler, CUPTI), with Torch imported first so that the
library and this script share one libtorch and the profiler sees every CUDA runtime
call and every kernel the library makes.

    PYTHONPATH=bindings/python PETMATTE_LIBRARY=build-gpu/lib/libpetmatte.so \\
        python3 tools/gpu/library_profile.py MODEL.pt [--runs 100] [--profiled 20] [--mimic]

Input: raw 8-bit RGB at the model's input size, output the raw mask (what
petmatte-bench's warm figure times). With --mimic, the library's steps as they were
before the ninth session's pinned staging, written out in Python
(gpu_util.LibraryMimic, pipeline_overhead.py's "A"), instead of the library.
Prints the unprofiled median before and after profiling; for the profiled call with
the median wall time, the host's CUDA runtime calls (> 15 us), the GPU's busy spans
(kernels and copies less than 5 us apart merged) and the GPU's idle time; then totals
over all profiled calls. A measurement (docs/benchmarks.md), not part of the library.
"""
import argparse, os, statistics, sys, time
import numpy as np
import torch  # first: the library then binds to this process's libtorch
from torch.profiler import ProfilerActivity, profile, record_function
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--runs", type=int, default=100, help="unprofiled warm calls timed")
ap.add_argument("--profiled", type=int, default=20, help="calls under the profiler")
ap.add_argument("--device", default="cuda:0")
ap.add_argument("--forward-streams", type=int, default=None)
ap.add_argument("--mimic", action="store_true", help="the library's (pre-staging) steps in Python, not the library")
args = ap.parse_args()

if args.mimic:
    from gpu_util import LibraryMimic
    mimic = LibraryMimic(args.model)
    call = mimic.call
    print(f"mimic: {args.model} at {mimic.W}x{mimic.H} on {torch.cuda.get_device_name()}")
else:
    import petmatte
    m = petmatte.Matte(args.model, device=args.device, forward_streams=args.forward_streams)
    st = m.warmup()
    h, w = st.input_size
    img = np.ascontiguousarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    print(f"READY on {st.device}, {w}x{h}, warm-up {st.warmup_runs} runs in {st.warmup_ms:.0f} ms")

    def call():
        return m.remove_bg(img, output="mask")


def timed(label):
    walls = []
    for _ in range(args.runs):
        t = time.perf_counter()
        call()
        walls.append((time.perf_counter() - t) * 1e3)
    print(f"unprofiled, {label}: {args.runs} calls, median {statistics.median(walls):.2f} ms "
          f"[{min(walls):.2f}-{max(walls):.2f}]")


for _ in range(20):
    call()
timed("before profiling")

with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for i in range(args.profiled):
        with record_function(f"pm_call_{i}"):
            call()

timed("after profiling")
CPU, CUDA = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA
events = list(prof.events())
# Each call's range appears twice: on the host (CPU) and as an annotation on the GPU.
calls = sorted((e for e in events if e.device_type == CPU and e.name.startswith("pm_call_")),
               key=lambda e: e.time_range.start)
gpu = sorted((e for e in events if e.device_type == CUDA and not e.name.startswith("pm_call_")),
             key=lambda e: e.time_range.start)
runtime = sorted((e for e in events if e.device_type == CPU and e.name.startswith("cu")),
                 key=lambda e: e.time_range.start)


def within(evs, c):
    return [e for e in evs if c.time_range.start <= e.time_range.start < c.time_range.end]


def spans(kernels, gap_us=5.0):
    """Merges GPU activities into busy spans: [start, end, count, first name, last name]."""
    out = []
    for k in kernels:
        s, e = k.time_range.start, k.time_range.end
        if out and s <= out[-1][1] + gap_us:
            out[-1][1] = max(out[-1][1], e)
            out[-1][2] += 1
            out[-1][4] = k.name
        else:
            out.append([s, e, 1, k.name, k.name])
    return out


def short(name, n=48):
    return name if len(name) <= n else name[: n - 3] + "..."


per_call = []
for c in calls:
    ks = within(gpu, c)
    sp = spans(ks)
    busy = sum(e - s for s, e, *_ in sp)
    per_call.append((c.time_range.end - c.time_range.start, busy, c, ks, sp))
per_call.sort(key=lambda r: r[0])
wall, busy, c, ks, sp = per_call[len(per_call) // 2]
t0 = c.time_range.start
print(f"\nmedian profiled call: wall {wall / 1e3:.2f} ms, GPU busy {busy / 1e3:.2f} ms, "
      f"GPU idle inside the call {(wall - busy) / 1e3:.2f} ms, {len(ks)} GPU activities")
rows = [(e.time_range.start - t0, e.time_range.end - e.time_range.start, "host", e.name)
        for e in within(runtime, c) if e.time_range.end - e.time_range.start > 15]
rows += [(s - t0, e - s, "GPU", f"{n} x {short(a, 30)} .. {short(b, 30)}" if n > 1 else short(a))
         for s, e, n, a, b in sp]
print(f"{'start us':>9} {'dur us':>9}  where  what")
for start, dur, where, what in sorted(rows):
    print(f"{start:9.0f} {dur:9.0f}  {where:5}  {what}")

print("\nover all profiled calls (medians):")
print(f"  wall {statistics.median(r[0] for r in per_call) / 1e3:.2f} ms, "
      f"GPU busy {statistics.median(r[1] for r in per_call) / 1e3:.2f} ms")
by_name = {}
for r in per_call:
    for e in within(runtime, r[2]):
        by_name.setdefault(e.name, []).append(e.time_range.end - e.time_range.start)
print(f"  {'CUDA runtime call':40} {'calls/call':>10} {'us/call':>9}")
for name, ds in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:14]:
    print(f"  {short(name, 40):40} {len(ds) / len(per_call):10.1f} {sum(ds) / len(per_call):9.0f}")
gpu_by = {}
for r in per_call:
    for k in r[3]:
        gpu_by.setdefault(k.name, []).append(k.time_range.end - k.time_range.start)
print(f"  {'GPU activity (top by time)':40} {'n/call':>10} {'us/call':>9}")
for name, ds in sorted(gpu_by.items(), key=lambda kv: -sum(kv[1]))[:12]:
    print(f"  {short(name, 40):40} {len(ds) / len(per_call):10.1f} {sum(ds) / len(per_call):9.0f}")
print("\nhost operators (self CPU time, all profiled calls):")
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=40))
if not args.mimic:
    m.close()
