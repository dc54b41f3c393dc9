#!/usr/bin/env python3
"""The Python path users run today, on the same TorchScript file as petmatte-bench.

One fresh process: `import torch`, torch.jit.load onto the device, the first matte, and
(--mode full) warm figures. What it runs per image is what a user writes: numpy uint8
pixels -> tensor -> [resize] -> normalise -> model (eager fp32, or torch.autocast for
fp16/bf16) -> activation / min-max from the model's petmatte.json -> [resize back] ->
uint8 numpy matte. The manifest rules are the library's (docs/manifest.md), so both
compute the same thing.

Prints one JSON object on stdout. Absolute times are time.time() seconds, so a parent
that noted time.time() just before spawning this process can subtract (tools/bench.py
does); `start_to_first_matte_ms_proc` is the same span measured from the kernel's
process start time (/proc/self/stat, 10 ms resolution) for standalone use.

Needs only torch and numpy (Pillow for --jpeg). Works with Debian 12's torch 1.13 and
numpy 1.24, and with torch 2.x / numpy 2.x.
"""
import time

T_MAIN = time.time()  # first thing: before any heavy import

import argparse
import io
import json
import os
import sys
import zipfile

DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)
FIRST_CALLS = 50


def process_age_s():
    """Seconds since the kernel started this process (/proc; 10 ms resolution)."""
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        # Field 22 (starttime, clock ticks after boot); the command name (field 2) may
        # hold spaces, so count from the closing parenthesis.
        fields = stat[stat.rindex(")") + 2:].split()
        start_ticks = int(fields[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def proc_status_mib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def read_manifest(path):
    """The model's petmatte.json, read straight from the zip (no torch needed)."""
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith("/extra/petmatte.json"):
                    return json.loads(z.read(name).decode("utf-8"))
    except (OSError, zipfile.BadZipFile, ValueError):
        pass
    return None


def model_config(path, input_size):
    m = read_manifest(path) or {}
    inp = m.get("input", {})
    out = m.get("output", {})
    size = input_size or 1024
    return {
        "name": m.get("name", os.path.basename(path)),
        "width": int(inp.get("width", size)),
        "height": int(inp.get("height", size)),
        "mean": tuple(inp.get("mean", DEFAULT_MEAN)),
        "std": tuple(inp.get("std", DEFAULT_STD)),
        "logit": out.get("activation", "probability") == "logit",
        "minmax": out.get("normalize", "minmax") == "minmax",
        "align_corners": bool(out.get("align_corners", True)),
        "random_weights": bool(m.get("random_weights", False)),
        "manifest": bool(m),
    }


def make_photo(np, w, h):
    """Photo-like uint8 RGB: sky and ground gradients, noise, a soft furry blob."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    fy, fx = y / h, x / w
    sky = fy < 0.6
    r = np.where(sky, 90 + 80 * fy, 110 - 40 * fx + 30 * (fy - 0.6))
    g = np.where(sky, 140 + 70 * fy, 120 + 30 * fx)
    b = np.where(sky, 230 - 40 * fy, 60 + 20 * fx)
    dx, dy = (x - 0.55 * w) / (0.28 * w), (y - 0.52 * h) / (0.34 * h)
    ang = np.arctan2(dy, dx)
    d = np.sqrt(dx * dx + dy * dy) / (1.0 + 0.06 * np.sin(37 * ang) + 0.03 * np.sin(91 * ang))
    a = np.clip((1.0 - d) / 0.08, 0.0, 1.0)
    shade = 0.75 + 0.125 * (1.0 - dy)
    rgb = np.stack([(1 - a) * r + a * 200 * shade, (1 - a) * g + a * 150 * shade, (1 - a) * b + a * 100 * shade], -1)
    rng = np.random.default_rng(0)
    rgb += rng.uniform(-6.0, 6.0, size=(h, w, 1)).astype(np.float32)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


class Pipeline:
    """uint8 HxWx3 numpy -> uint8 HxW numpy matte, the way a Python user writes it."""

    def __init__(self, torch, model, cfg, device, precision, cast):
        self.torch, self.model, self.cfg, self.device = torch, model, cfg, device
        F = torch.nn.functional
        self.F = F
        self.mean = torch.tensor(cfg["mean"], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=device).view(1, 3, 1, 1)
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.cast = cast and self.dtype is not None
        self.autocast = self.dtype is not None and not cast
        if self.cast:
            self.model = model.to(self.dtype)

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def model_input(self, rgb):
        torch, F, cfg = self.torch, self.F, self.cfg
        x = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        if x.shape[2] != cfg["height"] or x.shape[3] != cfg["width"]:
            x = F.interpolate(x, size=(cfg["height"], cfg["width"]), mode="bilinear", align_corners=False,
                              antialias=x.shape[2] > cfg["height"] or x.shape[3] > cfg["width"])
        x = (x - self.mean) / self.std
        return x.to(self.dtype) if self.cast else x

    def forward(self, x):
        torch = self.torch
        if self.autocast:
            with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                out = self.model(x)
        else:
            out = self.model(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        elif isinstance(out, dict):
            out = out["pred"] if "pred" in out else next(iter(out.values()))
        return out

    def matte(self, rgb):
        torch, F, cfg = self.torch, self.F, self.cfg
        with torch.inference_mode():
            p = self.forward(self.model_input(rgb)).float()
            if p.dim() == 3:
                p = p.unsqueeze(1)
            if cfg["logit"]:
                p = p.sigmoid()
            if cfg["minmax"]:
                p = (p - p.min()) / (p.max() - p.min() + 1e-8)
            h, w = rgb.shape[0], rgb.shape[1]
            if p.shape[2] != h or p.shape[3] != w:
                p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=cfg["align_corners"])
            return p.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)[0, 0].cpu().numpy()

    def forward_only_ms(self, x):
        with self.torch.inference_mode():
            self.sync()
            t0 = time.perf_counter()
            self.forward(x)
            self.sync()
            return (time.perf_counter() - t0) * 1e3


def timed(fn, *args):
    t0 = time.perf_counter()
    r = fn(*args)
    return (time.perf_counter() - t0) * 1e3, r


def rgba_from_jpeg(np, Image, ImageOps, pipe, data):
    """JPEG bytes -> RGBA uint8 pixels (alpha = matte), EXIF-upright like the library."""
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im).convert("RGB")
    rgb = np.array(im)  # a writable copy, as the usual snippets make
    mask = pipe.matte(rgb)
    rgba = np.empty((rgb.shape[0], rgb.shape[1], 4), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = mask
    return rgba


def summary(samples):
    s = sorted(samples)
    n = len(s)
    if n == 0:
        return {"n": 0, "median": None, "min": None, "max": None, "samples": []}
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    return {"n": n, "median": med, "min": s[0], "max": s[-1], "samples": list(samples)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    ap.add_argument("--cast", action="store_true",
                    help="fp16/bf16 by casting the model and input (model.half()) instead of torch.autocast")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--input-size", type=int, default=0, help="input side for a model without a manifest")
    ap.add_argument("--mode", default="full", choices=["cold", "full"],
                    help="cold: up to the first matte only; full: also the warm figures")
    ap.add_argument("--runs", type=int, default=100, help="warm calls after the first (full mode)")
    ap.add_argument("--jpeg", help="JPEG for the end-to-end figure (full mode; needs Pillow)")
    ap.add_argument("--jpeg-runs", type=int, default=5)
    args = ap.parse_args()

    res = {"tool": "bench_python_anchor", "t_main": T_MAIN, "python": sys.version.split()[0],
           "mode": args.mode, "threads": args.threads}
    t0 = time.time()
    import numpy as np
    import torch
    t_imported = time.time()
    res["import_torch_ms"] = (t_imported - t0) * 1e3  # numpy included: torch imports it anyway
    res["torch"] = torch.__version__
    res["numpy"] = np.__version__
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    res["torch_threads"] = torch.get_num_threads()

    dev = args.device
    if dev == "auto":
        dev = "cuda:0" if torch.cuda.is_available() else "cpu"
    device = torch.device(dev)
    precision = args.precision
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    res["device"] = dev
    res["precision"] = precision
    res["half_mode"] = None if precision == "fp32" else ("cast" if args.cast else "autocast")
    cfg = model_config(args.model, args.input_size)
    res["model"] = {k: cfg[k] for k in ("name", "width", "height", "manifest", "random_weights")}

    # torch.jit.load straight onto the device, as users do; eval() is a no-op for most
    # exported files but is what the snippets say.
    t_load0 = time.time()
    model = torch.jit.load(args.model, map_location=device)
    model.eval()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t_loaded = time.time()
    res["load_ms"] = (t_loaded - t_load0) * 1e3
    res["t_loaded"] = t_loaded
    if device.type == "cuda":
        res["device_name"] = torch.cuda.get_device_name(device)

    pipe = Pipeline(torch, model, cfg, device, precision, args.cast)
    # Made outside the timed span (the library's child does the same).
    gen_ms, rgb = timed(make_photo, np, cfg["width"], cfg["height"])
    first_ms, mask = timed(pipe.matte, rgb)
    age_ms = process_age_s() * 1e3
    res["first_inference_ms"] = first_ms
    # Start -> first matte without the test image's making (as in petmatte-bench).
    res["start_to_first_matte_ms_proc"] = age_ms - gen_ms
    res["main_to_first_matte_ms"] = (t_loaded - T_MAIN) * 1e3 + first_ms
    res["mask_mean"] = float(mask.mean())
    if device.type == "cuda":
        res["gpu_reserved_after_first_mib"] = torch.cuda.memory_reserved(device) / 1048576.0

    if args.mode == "full":
        lat = [timed(pipe.matte, rgb)[0] for _ in range(args.runs)]
        res["warm_latency_ms"] = summary(lat)
        first = lat[:FIRST_CALLS]
        res["first50_worst_ms"] = max(first) if first else None
        res["first50_count"] = len(first)
        with torch.inference_mode():
            x = pipe.model_input(rgb)
        fwd = [pipe.forward_only_ms(x) for _ in range(max(1, min(args.runs, 50)))]
        res["forward_only_ms"] = summary(fwd)
        if device.type == "cuda":
            res["gpu_max_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 1048576.0
            res["gpu_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 1048576.0
        if args.jpeg:
            try:
                from PIL import Image, ImageOps
            except ImportError:
                res["jpeg_error"] = "Pillow is not installed"
            else:
                with open(args.jpeg, "rb") as f:
                    data = f.read()
                rgba = rgba_from_jpeg(np, Image, ImageOps, pipe, data)  # untimed first call
                res["jpeg_width"], res["jpeg_height"] = int(rgba.shape[1]), int(rgba.shape[0])
                res["jpeg_rgba_ms"] = summary(
                    [timed(rgba_from_jpeg, np, Image, ImageOps, pipe, data)[0] for _ in range(args.jpeg_runs)])
                if device.type == "cuda":
                    res["gpu_max_reserved_after_jpeg_mib"] = torch.cuda.max_memory_reserved(device) / 1048576.0
    # Whether the output was usable: under fp16 a model can overflow (inf, then NaN)
    # and still be timed; bench.py says so instead of letting it pass as a speed.
    with torch.inference_mode():
        out = pipe.forward(pipe.model_input(rgb)).float()
        res["output_values"] = int(out.numel())
        res["output_nonfinite"] = int((~torch.isfinite(out)).sum().item())
    res["host_rss_mib"] = proc_status_mib("VmRSS")
    res["host_peak_rss_mib"] = proc_status_mib("VmHWM")
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
