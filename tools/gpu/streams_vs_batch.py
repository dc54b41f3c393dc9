#!/usr/bin/env python3
"""Concurrent callers on one GPU: is it better to replay one CUDA graph per image on
several streams at once (one graph and memory pool per stream), or to batch images into
one graph? Runs a TorchScript file the way libpetmatte does (fp16 weights, NHWC weights
and input when --channels-last, executor optimisation off, cuDNN autotuning) and times,
for the forward pass alone:

  serial      one stream, one batch-1 graph replayed back to back (libpetmatte today
              with max_batch 1: the passes queue on the model's stream)
  S streams   S batch-1 graphs, one per stream, replayed round-robin so S passes can
              run at once
  batch B     one graph of B images

and prints ms per image, images/s, the ratio to serial, and the memory each set of
graphs holds.

    python3 tools/gpu/streams_vs_batch.py MODEL.pt [--streams 2,3,4] [--batch 2,4]
        [--images 400] [--no-channels-last]

A measurement for docs/benchmarks.md, not part of the library.
"""
import argparse
import json
import time
import os
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_util import load_like_library  # noqa: E402


def manifest(path):
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith("/extra/petmatte.json"):
                text = z.read(name).decode("utf-8")
                return json.loads(text) if text.strip() else {}
    return {}


def input_size(path):
    m = manifest(path)
    inp = m.get("input", {})
    return int(inp.get("height", 1024)), int(inp.get("width", 1024))


def capture(model, x, stream, pool):
    """A graph of model(x) on `stream` in `pool`; its static input and output."""
    static_in = x.clone(memory_format=torch.preserve_format)
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        model(static_in)  # one more eager pass on this stream (allocator cache, handles)
    stream.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, pool=pool, stream=stream):
        out = model(static_in)
    stream.synchronize()
    return g, static_in, out


def reserved_mib():
    torch.cuda.synchronize()
    return torch.cuda.memory_reserved() / 2**20


def time_round_robin(graphs, streams, images):
    """Replays graphs[i % S] on streams[i % S] `images` times; ms a replay."""
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(images):
        k = i % len(graphs)
        with torch.cuda.stream(streams[k]):
            graphs[k].replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1e3 / images


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--streams", default="2,3,4")
    p.add_argument("--batch", default="2,4")
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-channels-last", action="store_true")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    torch.backends.cudnn.benchmark = True
    torch._C._set_graph_executor_optimize(False)
    cl = not args.no_channels_last
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = load_like_library(args.model, channels_last=cl)
    h, w = input_size(args.model)
    gen = torch.Generator().manual_seed(0)

    def example(n):
        return torch.randn(n, 3, h, w, generator=gen).to("cuda", torch.float16).contiguous(memory_format=fmt)

    x1 = example(1)
    for _ in range(3):
        model(x1)
    torch.cuda.synchronize()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {args.model}, {h}x{w}, fp16, "
          f"{'NHWC' if cl else 'NCHW'}, {args.images} images a figure, best of {args.repeats}", flush=True)
    rows = []
    base_mib = reserved_mib()
    # Graphs for the largest stream count; smaller counts use a prefix of them.
    s_max = max([1] + [int(s) for s in args.streams.split(",") if s])
    graphs, streams, mem = [], [], []
    for k in range(s_max):
        s = torch.cuda.Stream()
        g, _, _ = capture(model, x1, s, torch.cuda.graph_pool_handle())
        graphs.append(g)
        streams.append(s)
        mem.append(reserved_mib() - base_mib)
    for k in range(s_max):  # warm every graph once
        with torch.cuda.stream(streams[k]):
            graphs[k].replay()
    torch.cuda.synchronize()
    serial = min(time_round_robin(graphs[:1], streams[:1], args.images) for _ in range(args.repeats))
    rows.append(("serial (1 stream, batch 1)", serial, mem[0]))
    for s in [int(v) for v in args.streams.split(",") if v]:
        ms = min(time_round_robin(graphs[:s], streams[:s], args.images) for _ in range(args.repeats))
        rows.append((f"{s} streams, batch 1", ms, mem[s - 1]))
    del graphs
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    for b in [int(v) for v in args.batch.split(",") if v]:
        xb = example(b)
        for _ in range(2):
            model(xb)
        before = reserved_mib()
        s = torch.cuda.Stream()
        g, _, _ = capture(model, xb, s, torch.cuda.graph_pool_handle())
        with torch.cuda.stream(s):
            g.replay()
        per = min(time_round_robin([g], [s], max(1, args.images // b)) for _ in range(args.repeats)) / b
        rows.append((f"batch {b} (1 stream)", per, reserved_mib() - before))
        del g
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    print(f"{'form':30s} {'ms/img':>8s} {'img/s':>8s} {'vs serial':>10s} {'graph memory (MiB)':>20s}")
    for name, ms, mib in rows:
        print(f"{name:30s} {ms:8.3f} {1e3 / ms:8.1f} {serial / ms:9.2f}x {mib:20.0f}")


if __name__ == "__main__":
    main()
