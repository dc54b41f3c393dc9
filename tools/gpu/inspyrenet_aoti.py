#!/usr/bin/env python3
"""What an ahead-of-time compiled InSPyReNet would run at: torch.export of libpetmatte's
module (random weights, 1024x1024, fp16, channels_last, a fixed batch), compiled with
AOTInductor into a .pt2 package, then run from C++ in fresh processes
(tools/gpu/aoti_run.cpp) — beside the module in the form the exporter writes, timed as
CUDA graph replays in this process.

    python3 tools/gpu/inspyrenet_aoti.py --out /tmp/insp.pt2 --runner ./aoti_run
        [--form plain|rewrites] [--batch 1] [--starts 3] [--runs 100]
        [--max-autotune] [--no-freezing] [--timing-lock FILE]

Forms: see tools/gpu/inspyrenet_inductor.py (plain: the checkpoint's operations;
rewrites: the exporter's). The package is loaded from C++ only: inside a Python
process, loading one segfaults in the package's std::regex code on the device's
torch 2.11.0+cu130, even for a four-layer network (docs/benchmarks.md, tenth
session). A measurement, not part of the library; needs a CUDA PyTorch >= 2.6 with
Triton.
"""
import os

os.environ["PYTORCH_JIT"] = "0"  # before torch: the module's scripted helpers as Python

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inspyrenet_inductor import compiler_form, gpu_alone, sample_input, time_exporters_form  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--runner", default="", help="the built tools/gpu/aoti_run.cpp; without it, compile only")
    p.add_argument("--form", default="rewrites", choices=["plain", "rewrites"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--starts", type=int, default=3, help="fresh processes that load and time the package")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--max-autotune", action="store_true")
    p.add_argument("--no-freezing", action="store_true")
    p.add_argument("--timing-lock", default="", help="as in inspyrenet_inductor.py")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    torch.backends.cudnn.benchmark = True
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, fp16 NHWC, batch {args.batch}, "
          f"form {args.form}, Inductor layout optimisation "
          f"{'on' if torch._inductor.config.layout_optimization else 'off'}", flush=True)
    x = sample_input(args.batch)
    time_exporters_form(x, 50, args.timing_lock, "exporter's form, eager, this process")
    m = compiler_form(args.form)
    t = time.time()
    ep = torch.export.export(m, (x,))
    t_export = time.time() - t
    configs = {"freezing": not args.no_freezing}
    if args.max_autotune:
        configs["max_autotune"] = True
    t = time.time()
    path = torch._inductor.aoti_compile_and_package(ep, package_path=args.out, inductor_configs=configs)
    print(f"export {t_export:.1f} s, AOTInductor compile {time.time() - t:.1f} s (freezing "
          f"{'off' if args.no_freezing else 'on'}{', max-autotune' if args.max_autotune else ''}), "
          f"package {os.path.getsize(path) / 2**20:.0f} MiB", flush=True)
    del m, ep
    torch.cuda.empty_cache()
    if not args.runner:
        return
    for i in range(args.starts):
        with gpu_alone(args.timing_lock):
            r = subprocess.run([args.runner, path, str(args.batch), str(args.runs)], capture_output=True, text=True)
        print(f"C++ start {i + 1} (exit {r.returncode}):\n{r.stdout.rstrip()}", flush=True)
        if r.returncode != 0:
            print(r.stderr[-2000:], flush=True)
            sys.exit(1)


if __name__ == "__main__":
    main()
