"""What several tools/gpu measurements share: timing a callable through CUDA graph
replays, and loading a TorchScript file the way libpetmatte runs it. Imported by the
scripts beside it (run them from anywhere: each puts its own folder on sys.path)."""
import statistics

import torch


def graph_median_ms(fn, x, runs, reps=1):
    """Median, min and max ms of one call of fn(x), from `runs` replays of a CUDA graph
    that holds `reps` calls (several, so that launch gaps do not dominate small ops),
    after three eager calls on a side stream; and the captured output (the first if a
    tuple), as float32."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn(x)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            out = fn(x)
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / reps)
    result = out[0] if isinstance(out, (list, tuple)) else out
    return statistics.median(times), min(times), max(times), result.float().clone()


def load_like_library(path, channels_last=True):
    """The file on cuda:0 as libpetmatte runs it: loaded on the CPU and then moved, so a
    traced file's 0-dim constants stay on the CPU (libpetmatte moves them there: on the
    GPU every shape computation would synchronise, and a capture would fail); floating
    weights and buffers in fp16; with channels_last, the 4-d parameters (convolution
    weights) in NHWC order, and nothing else."""
    model = torch.jit.load(path, map_location="cpu").eval().to("cuda").half()
    if channels_last:
        for t in model.parameters():
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)
    return model
