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


class LibraryMimic:
    """libpetmatte's warm CUDA call as it was before the ninth session's pinned
    staging, written out in Python for one file at 1024x1024 (fp16, channels_last,
    cuDNN autotuning on, executor optimisation off): pageable upload of 8-bit RGB,
    normalise, copy into the model graph's input, replay, clone, finiteness check (a
    sync), min-max, 8-bit matte, pageable download. Everything runs on
    `self.stream`; `pre`, `post` and `model` are there for other arrangements.
    Normalisation constants are fixed (mean 0.5, std 1): they do not change the timing."""

    H = W = 1024

    def __init__(self, path):
        torch.backends.cudnn.benchmark = True
        torch.set_grad_enabled(False)
        torch._C._set_graph_executor_optimize(False)
        self.model = load_like_library(path)
        self.mean = torch.tensor([0.5, 0.5, 0.5], device="cuda").view(1, 3, 1, 1)
        self.std = torch.tensor([1.0, 1.0, 1.0], device="cuda").view(1, 3, 1, 1)
        self.stream = torch.cuda.Stream()
        self.host = torch.randint(0, 256, (self.H, self.W, 3), dtype=torch.uint8)
        with torch.cuda.stream(self.stream):
            x0 = self.pre(self.host.cuda())
            for _ in range(3):
                self.model(x0)
            torch.cuda.synchronize()
            self.graph = torch.cuda.CUDAGraph()
            self.graph_in = x0.clone(memory_format=torch.preserve_format)
            with torch.cuda.graph(self.graph):
                self.graph_out = self.model(self.graph_in)
        torch.cuda.synchronize()

    def pre(self, u8):
        x = u8.permute(2, 0, 1).unsqueeze(0).float().div_(255)
        return x.sub_(self.mean).div_(self.std).half().contiguous(memory_format=torch.channels_last)

    @staticmethod
    def post(p):
        p = p.float()
        ok = torch.isfinite(p).all()
        lo, hi = p.min(), p.max()
        p = (p - lo) / (hi - lo + 1e-8)
        return (p * 255).round_().clamp_(0, 255).to(torch.uint8), ok

    def call(self, host=None):
        with torch.cuda.stream(self.stream):
            d = (self.host if host is None else host).cuda()
            self.graph_in.copy_(self.pre(d))
            self.graph.replay()
            p, ok = self.post(self.graph_out.clone())
            if not ok.item():
                raise SystemExit("nan")
            return p.cpu()
