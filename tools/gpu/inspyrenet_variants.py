#!/usr/bin/env python3
"""Where InSPyReNet Swin-B's GPU time goes, and what each known speed-up is worth.

Runs libpetmatte's own InSPyReNet module (tools/inspyrenet, random weights, 1024x1024,
batch 1) on a CUDA device in several forms and prints, for each, the median forward
time of a CUDA graph replay, device memory, and the largest difference from the
first form's output:

  nchw           as exported (BatchNorm folded into the convolutions)
  cl             weights and input in channels_last (NHWC) order
  cl:bn          the same with the BatchNorm layers kept (the checkpoint's form)
  cl:matmul      cl with Swin's window attention as matmul + bias + mask + softmax +
                 matmul instead of scaled_dot_product_attention
  cl:conv1x1     cl with the 1x1 convolutions as cuDNN convolutions instead of
                 matrix products (pointwise_conv)
  cl:before      cl:s7 with both (the exporter's form before the seventh session)
  cl:s7          cl without the eighth session's rewrites (InSPyReNet.set_rewrites):
                 the seventh session's export
  cl:-resize, cl:-context, cl:-axial
                 cl without that one rewrite
  <fastest>:frozen  the fastest one traced, after torch.jit.freeze and
                    torch.jit.optimize_for_inference

(A third form, Swin's window attention through scaled_dot_product_attention, measured
34.06 ms against 30.60 ms on an H100 and was removed from the module: see
docs/benchmarks.md.)

Then a split of the fastest eager form (backbone alone vs the whole model) and the
top kernels by GPU time from torch.profiler. Usage (a CUDA PyTorch 2.x):

    python3 tools/gpu/inspyrenet_variants.py [--precision fp16] [--runs 50] [--skip-profile] [--ops]
        [--forms nchw,cl,cl:bn,cl:matmul,cl:conv1x1,cl:before,cl:s7,cl:-resize,cl:-context,cl:-axial]

Not a test: a measurement to decide what the exporter and the library do.
"""
import argparse
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from inspyrenet import InSPyReNet, inspyrenet_swinb, randomize_  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_util import graph_median_ms  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


ALL = InSPyReNet.REWRITES


def build(dtype, channels_last, fold=True, attention="sdpa", pointwise=True, rewrites=ALL):
    m = inspyrenet_swinb()
    randomize_(m, 0)
    m.eval()
    if fold:
        m.fold_batchnorm()
    m.prepare(1024, 1024)
    m.set_attention(attention).set_pointwise(pointwise).set_rewrites(rewrites)
    m = m.to("cuda", dtype)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--precision", default="fp16", choices=sorted(DTYPES))
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--skip-profile", action="store_true")
    p.add_argument("--ops", action="store_true",
                   help="also the top operators by GPU time, by source line and by input shape")
    p.add_argument("--forms", default="nchw,cl,cl:bn,cl:matmul,cl:conv1x1,cl:before,cl:s7",
                   help="module forms to time (default: all)")
    args = p.parse_args()
    dtype = DTYPES[args.precision]
    torch.backends.cudnn.benchmark = True
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {args.precision}, "
          f"1x3x1024x1024, median of {args.runs} graph replays", flush=True)
    x0 = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    rows, ref = [], None
    # name -> (channels_last, BatchNorm folded as the exporter does, attention, 1x1 as products,
    #          the eighth session's rewrites)
    forms = {"nchw": (False, True, "sdpa", True, ALL), "cl": (True, True, "sdpa", True, ALL),
             "cl:bn": (True, False, "sdpa", True, ALL), "cl:matmul": (True, True, "matmul", True, ALL),
             "cl:conv1x1": (True, True, "sdpa", False, ALL), "cl:before": (True, True, "matmul", False, ()),
             "cl:s7": (True, True, "sdpa", True, ())}
    for name in ALL:
        forms[f"cl:-{name}"] = (True, True, "sdpa", True, tuple(r for r in ALL if r != name))
    forms = {k: v for k, v in forms.items() if k in args.forms.split(",")}
    for name, form in forms.items():
        cl = form[0]
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        t = time.time()
        m = build(dtype, *form)
        x = x0.to("cuda", dtype)
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            med, lo, hi, out = graph_median_ms(m, x, args.runs)
        except Exception as e:  # a form that cannot run is a result too
            print(f"{name}: failed: {str(e).splitlines()[0]}", flush=True)
            continue
        peak = torch.cuda.max_memory_allocated() / 2**20
        if ref is None:
            ref = out
        diff = (out - ref).abs().max().item()
        rows.append((name, med, lo, hi, peak, diff, time.time() - t))
        print(f"{name:18s} {med:8.2f} ms [{lo:.2f}-{hi:.2f}]  peak {peak:7.0f} MiB  "
              f"max|d| vs first {diff:.2e}  ({time.time() - t:.1f} s)", flush=True)
        del m

    best = min(rows, key=lambda r: r[1])[0]
    cl = forms[best][0]
    m = build(dtype, *forms[best])
    x = x0.to("cuda", dtype)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    # The same module traced, frozen and optimised for inference, as a runtime could.
    try:
        t = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(m, x, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        prep = time.time() - t
        torch.cuda.reset_peak_memory_stats()
        med, lo, hi, out = graph_median_ms(frozen, x, args.runs)
        peak = torch.cuda.max_memory_allocated() / 2**20
        print(f"{best + ':frozen':18s} {med:8.2f} ms [{lo:.2f}-{hi:.2f}]  peak {peak:7.0f} MiB  "
              f"max|d| vs first {(out - ref).abs().max().item():.2e}  (trace+freeze {prep:.1f} s)",
              flush=True)
        del traced, frozen
    except Exception as e:
        print(f"{best}:frozen failed: {str(e).splitlines()[0]}", flush=True)

    med_bb = graph_median_ms(m.backbone, x, args.runs)[0]
    full = [r for r in rows if r[0] == best][0][1]
    print(f"split of {best}: backbone {med_bb:.2f} ms, decoder and pyramid {full - med_bb:.2f} ms", flush=True)

    if args.skip_profile:
        return
    from torch.profiler import ProfilerActivity, profile
    for _ in range(2):
        m(x)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            m(x)
        torch.cuda.synchronize()
    print(f"top kernels of {best} (eager, 3 forwards):")
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=25, max_name_column_width=70))
    if args.ops:
        print_ops(m, x)


def print_ops(m, x):
    """The operators behind the GPU time, so the exporter can be changed where it
    matters: grouped by the module source line that called them, then by input shape."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True,
                 with_stack=True) as prof:
        for _ in range(2):
            m(x)
        torch.cuda.synchronize()
    print("top operators of 2 eager forwards, by calling source line:")
    print(prof.key_averages(group_by_stack_n=3).table(
        sort_by="self_cuda_time_total", row_limit=45, max_name_column_width=40, max_src_column_width=90))
    print("top operators of 2 eager forwards, by input shape:")
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cuda_time_total", row_limit=45, max_name_column_width=40, max_shapes_column_width=90))


if __name__ == "__main__":
    main()
