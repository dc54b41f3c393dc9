#!/usr/bin/env python3
"""What a fusing compiler makes of InSPyReNet: libpetmatte's module (random weights,
1024x1024, fp16, channels_last) through torch.compile (TorchInductor), against the
same module in the form the exporter writes, both timed as CUDA graph replays in one
process at one batch size.

The question it answers: do the ≤ 10 ms (batch 1) and ≤ 4 ms/img (concurrent
callers) targets of issue 5 lie within reach of generated, fused kernels at all? If
Inductor misses them too, no export format the library could load (AOTInductor
packages included) would meet them.

    python3 tools/gpu/inspyrenet_inductor.py [--form plain|rewrites] [--batch 1]
        [--runs 50] [--mode default|max-autotune-no-cudagraphs] [--no-freezing]
        [--timing-lock FILE]

Forms given to Inductor:
  plain     BatchNorm kept, 1x1 convolutions as convolutions, none of the eighth
            session's rewrites: the checkpoint's operations, for Inductor to fold
            and fuse itself
  rewrites  the exporter's operations (1x1 as products, context sums, axial mix,
            resizes by products), BatchNorm kept
The baseline is always the exporter's form (BatchNorm folded, fused conv + bias +
ReLU), eager. --timing-lock serialises the timed sections of several copies of this
script run side by side (compiling is CPU work; timing needs the GPU alone).

TorchScript is switched off in this process (PYTORCH_JIT=0) so that the module's
scripted helpers are plain Python for Dynamo to trace. A measurement, not part of
the library; needs a CUDA PyTorch 2.x with Triton.
"""
import os

os.environ["PYTORCH_JIT"] = "0"  # before torch: @torch.jit.script becomes a no-op

import argparse  # noqa: E402
import contextlib  # noqa: E402
import fcntl  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_util import graph_median_ms  # noqa: E402
from inspyrenet import InSPyReNet  # noqa: E402
from inspyrenet_variants import build  # noqa: E402


def compiler_form(form):
    """The module handed to Inductor, fp16 NHWC: BatchNorm kept (Inductor folds it
    itself) and no fused conv + bias + ReLU call, in `form`'s operations."""
    rewrites = InSPyReNet.REWRITES if form == "rewrites" else ()
    return build(torch.float16, True, fold=False, pointwise=form == "rewrites", rewrites=rewrites)


def sample_input(batch):
    x = torch.randn(batch, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    return x.to("cuda", torch.float16).contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def gpu_alone(path):
    """Holds an exclusive lock on path (when given) while the GPU is being timed."""
    if not path:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def report(label, batch, med, lo, hi, extra=""):
    per = f", {med / batch:.2f} ms/img" if batch > 1 else ""
    print(f"{label:<44} {med:7.2f} ms [{lo:.2f}-{hi:.2f}]{per}{extra}", flush=True)


def time_exporters_form(x, runs, lock, label):
    """Times the exporter's form (BatchNorm folded, fused conv + bias + ReLU, the
    eighth session's rewrites), eager, as CUDA graph replays on x; prints the median and
    peak memory, frees the module and returns its output (float32)."""
    base = build(torch.float16, True)
    with gpu_alone(lock):
        torch.cuda.reset_peak_memory_stats()
        med, lo, hi, ref = graph_median_ms(base, x, runs)
        report(label, x.shape[0], med, lo, hi, f", peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    del base
    torch.cuda.empty_cache()
    return ref


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--form", default="plain", choices=["plain", "rewrites"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--mode", default="default", choices=["default", "max-autotune-no-cudagraphs"])
    p.add_argument("--no-freezing", action="store_true")
    p.add_argument("--timing-lock", default="")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    torch.backends.cudnn.benchmark = True
    torch._inductor.config.freezing = not args.no_freezing
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, fp16 NHWC, "
          f"batch {args.batch}, form {args.form}, mode {args.mode}, "
          f"freezing {'off' if args.no_freezing else 'on'}, median of {args.runs} graph replays", flush=True)
    x = sample_input(args.batch)
    ref = time_exporters_form(x, args.runs, args.timing_lock, "exporter's form, eager")
    compiled = torch.compile(compiler_form(args.form), mode=None if args.mode == "default" else args.mode, fullgraph=True)
    t = time.time()
    try:
        out = compiled(x)
    except Exception as e:  # noqa: BLE001 - a compile failure is a result to print
        print(f"compile failed after {time.time() - t:.1f} s: {type(e).__name__}: "
              f"{str(e).splitlines()[0] if str(e) else ''}", flush=True)
        sys.exit(1)
    torch.cuda.synchronize()
    print(f"compile + first call {time.time() - t:.1f} s", flush=True)
    out = out[0] if isinstance(out, (list, tuple)) else out
    print(f"max|inductor - exporter's form| {(out.float() - ref).abs().max().item():.3e}", flush=True)
    with gpu_alone(args.timing_lock):
        torch.cuda.reset_peak_memory_stats()
        med, lo, hi, _ = graph_median_ms(compiled, x, args.runs)
        report(f"inductor ({args.form})", args.batch, med, lo, hi,
               f", peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
