#!/usr/bin/env python3
"""libpetmatte against the Python path users run today, side by side, in one invocation.

For each precision it runs petmatte-bench (examples/bench) and tools/bench_python_anchor.py
on the same TorchScript file, device and thread count: the cold figures as whole fresh
processes (lib and Python alternating, so a busy machine slows both alike), then the warm,
throughput, memory and 12 MP JPEG -> RGBA figures. It prints one table of medians,
min-max ranges and lib/Python ratios, and writes every sample to --out.

    python3 tools/bench.py --bench build/examples/petmatte-bench --model models/isnet-general.pt \\
        --device cpu --precision fp32 --threads 2 --runs 10 --cold-repeats 3 --out results.json

With the JPEGs it also has petmatte-bench time a 1 MP and the 12 MP JPEG to RGBA as RAW
pixels, PNG, lossless and lossy WebP (the "encoded" figure), and prints those times and
the bytes.

--encode-compare instead times the library's PNG and WebP output against Pillow's PNG
(zlib levels 6 and 1) on one photo-like 4000x3000 RGBA image with a soft alpha, in one
run, and checks that the library's PNG decodes to exactly that image:

    python3 tools/bench.py --encode-compare --bench build/examples/petmatte-bench \\
        --model build/tests/models/red32.pt --threads 2 --encode-runs 5

Needs Python 3.8+ and numpy; Pillow for the JPEGs (without it those figures are skipped)
and for --encode-compare (with scikit-image for its photo). docs/benchmarks.md says what
each figure means.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHOR = os.path.join(HERE, "bench_python_anchor.py")
ROOT = os.path.dirname(HERE)


def log(msg):
    sys.stderr.write("[bench.py] %s\n" % msg)
    sys.stderr.flush()


def summary(samples):
    s = sorted(x for x in samples if x is not None)
    n = len(s)
    if n == 0:
        return {"n": 0, "median": None, "min": None, "max": None, "samples": []}
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    return {"n": n, "median": med, "min": s[0], "max": s[-1], "samples": list(samples)}


def single(value):
    return summary([value]) if value is not None else None


# ------------------------------------------------------------------ machine


def machine_info(device):
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["lscpu_model_name"] = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    if device != "cpu":
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30).stdout
            info["gpus"] = [l.strip() for l in out.splitlines() if l.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return None


# ------------------------------------------------------------------ 12 MP JPEG


def write_photo_jpeg(path, width=4000, height=3000, quality=90):
    """A photo-like 12 MP JPEG: sky and ground gradients, sensor noise, texture, and a
    soft-edged furry blob as the subject. Returns None, or why it could not."""
    try:
        import numpy as np
        from PIL import Image
    except ImportError as e:
        return "needs numpy and Pillow (%s)" % e
    y = np.arange(height, dtype=np.float32)[:, None] / height
    x = np.arange(width, dtype=np.float32)[None, :] / width
    sky = y < 0.6
    r = np.where(sky, 90 + 80 * y, 110 - 40 * x + 30 * (y - 0.6))
    g = np.where(sky, 140 + 70 * y, 120 + 30 * x + 15 * np.sin(x * 300) * (y - 0.6))
    b = np.where(sky, 230 - 40 * y, 60 + 20 * x)
    dx, dy = (x - 0.55) / 0.28, (y - 0.52) / 0.34
    ang = np.arctan2(dy * height, dx * width)
    d = np.sqrt(dx * dx + dy * dy) / (1.0 + 0.05 * np.sin(37 * ang) + 0.02 * np.sin(173 * ang))
    a = np.clip((1.0 - d) / 0.04, 0.0, 1.0)
    shade = 0.8 + 0.2 * np.cos(dx * 2.0) * np.cos(dy * 2.0)
    fur = 12 * np.sin(ang * 400 + d * 60)
    rgb = np.empty((height, width, 3), dtype=np.float32)
    rgb[..., 0] = (1 - a) * r + a * (190 * shade + fur)
    rgb[..., 1] = (1 - a) * g + a * (140 * shade + fur)
    rgb[..., 2] = (1 - a) * b + a * (95 * shade + fur)
    rng = np.random.default_rng(12)
    rgb += rng.normal(0.0, 4.0, size=(height, width, 1)).astype(np.float32)
    img = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
    img.save(path, "JPEG", quality=quality)
    return None


def write_cutout_rgba(path, width=4000, height=3000):
    """A photo-like RGBA cut-out as raw bytes: scikit-image's cat photo scaled up (Lanczos)
    with sensor noise, through a quality-90 JPEG as a camera would store it, and an alpha
    from a blurred wobbly ellipse (a soft edge some 20 px wide, the outside fully
    transparent, the colours kept there as the library keeps them). Returns None, or why
    it could not."""
    try:
        import io
        import numpy as np
        from PIL import Image, ImageFilter
        import skimage.data
    except ImportError as e:
        return "needs numpy, Pillow and scikit-image (%s)" % e
    img = Image.fromarray(skimage.data.chelsea()).resize((width, height), Image.LANCZOS)
    a = np.asarray(img).astype(np.float32)
    a += np.random.default_rng(7).normal(0.0, 2.0, size=a.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    y = np.arange(height, dtype=np.float32)[:, None] / height
    x = np.arange(width, dtype=np.float32)[None, :] / width
    dx, dy = (x - 0.5) / 0.33, (y - 0.55) / 0.42
    ang = np.arctan2(dy, dx)
    d = np.sqrt(dx * dx + dy * dy) / (1 + 0.04 * np.sin(29 * ang) + 0.015 * np.sin(151 * ang))
    alpha = Image.fromarray((np.clip((1 - d) / 0.03, 0, 1) * 255 + 0.5).astype(np.uint8))
    alpha = np.asarray(alpha.filter(ImageFilter.GaussianBlur(6)))
    np.ascontiguousarray(np.dstack([rgb, alpha])).tofile(path)
    return None


# ------------------------------------------------------------------ runners


def run_lib(args, precision, extra, json_path):
    cmd = [args.bench, "--model", args.model, "--device", args.device, "--precision", precision,
           "--threads", str(args.threads), "--json", json_path] + extra
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError("petmatte-bench exited with %d" % p.returncode)
    with open(json_path) as f:
        return json.load(f), p.stdout


def run_anchor(args, precision, extra):
    cmd = [args.python, ANCHOR, "--model", args.model, "--device", args.device, "--precision", precision,
           "--threads", str(args.threads)] + (["--cast"] if args.python_cast else []) + extra
    t_spawn = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError("bench_python_anchor.py exited with %d: %s" % (p.returncode, " ".join(cmd)))
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["t_spawn"] = t_spawn
    res["start_to_main_ms"] = (res["t_main"] - t_spawn) * 1e3
    res["start_to_loaded_ms"] = (res["t_loaded"] - t_spawn) * 1e3
    res["start_to_first_matte_ms"] = res["start_to_loaded_ms"] + res["first_inference_ms"]
    res["command"] = cmd
    return res


def bench_precision(args, precision, jpeg, jpeg_small, tmp):
    out = {"precision": precision, "runs": args.runs, "lib": {}, "python": {}, "errors": []}
    lib_cold, py_cold = [], []
    # Cold: whole fresh processes, lib and Python alternating; one unrecorded priming
    # round first warms the page cache for both (model file, libtorch, Python modules).
    rounds = args.cold_repeats + 1 if args.cold_repeats else 0
    for i in range(rounds):
        tag = "priming round" if i == 0 else "cold %d/%d" % (i, args.cold_repeats)
        if not args.skip_lib:
            try:
                j, _ = run_lib(args, precision, ["--figures", "cold", "--cold-repeats", "1", "--cold-prime", "0",
                                                 "--runs", "1", "--concurrency", "1", "--per-thread", "1",
                                                 "--tp-repeats", "1"],
                               os.path.join(tmp, "cold-%s-%d.json" % (precision, i)))
                if i:
                    lib_cold.append(j)
                log("%s lib: first matte after %.1f ms" % (
                    tag, j["figures"]["cold.start_to_first_matte_ms"]["median"]))
            except (RuntimeError, OSError, ValueError, KeyError) as e:
                out["errors"].append("lib cold: %s" % e)
                log("lib cold failed: %s" % e)
        if not args.skip_python:
            try:
                r = run_anchor(args, precision, ["--mode", "cold"])
                if i:
                    py_cold.append(r)
                log("%s python: first matte after %.1f ms" % (tag, r["start_to_first_matte_ms"]))
            except (RuntimeError, OSError, ValueError, KeyError) as e:
                out["errors"].append("python cold: %s" % e)
                log("python cold failed: %s" % e)
    out["lib"]["cold_runs"] = lib_cold
    out["python"]["cold_runs"] = py_cold

    if not args.skip_lib:
        encoded = jpeg and not args.no_encoded
        extra = ["--figures", "warm,throughput" + (",jpeg" if jpeg else "") + (",encoded" if encoded else ""),
                 "--runs", str(args.runs),
                 "--concurrency", args.concurrency, "--per-thread", str(args.per_thread),
                 "--tp-repeats", str(args.tp_repeats), "--jpeg-runs", str(args.jpeg_runs),
                 "--clean-edges", args.clean_edges]
        if jpeg:
            extra += ["--jpeg", jpeg]
        if encoded:
            extra += ["--encoded-runs", str(args.jpeg_runs)]
            for path in (jpeg_small, jpeg):
                if path:
                    extra += ["--encoded", path]
        if args.max_batch is not None:
            extra += ["--max-batch", str(args.max_batch)]
        for setting in args.tune:
            extra += ["--tune", setting]
        try:
            j, table = run_lib(args, precision, extra, os.path.join(tmp, "warm-%s.json" % precision))
            out["lib"]["warm"] = j
            out["lib"]["table"] = table
        except (RuntimeError, OSError, ValueError) as e:
            out["errors"].append("lib warm: %s" % e)
            log("lib warm failed: %s" % e)
    if not args.skip_python:
        extra = ["--mode", "full", "--runs", str(args.runs), "--jpeg-runs", str(args.jpeg_runs)]
        if jpeg:
            extra += ["--jpeg", jpeg]
        try:
            log("python anchor, full mode (%d warm calls)" % args.runs)
            out["python"]["warm"] = run_anchor(args, precision, extra)
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            out["errors"].append("python warm: %s" % e)
            log("python warm failed: %s" % e)
    return out


# ------------------------------------------------------------------ table


def lib_fig(res, key, cold=False):
    if cold:
        vals = [r["figures"][key]["samples"][0] for r in res["lib"].get("cold_runs", []) if key in r["figures"]]
        return summary(vals) if vals else None
    fig = res["lib"].get("warm", {}).get("figures", {}).get(key)
    return summary(fig["samples"]) if fig else None


def lib_derived(res, key):
    d = res["lib"].get("warm", {}).get("derived", {}).get(key)
    return d["value"] if d else None


def py_cold(res, key):
    vals = [r.get(key) for r in res["python"].get("cold_runs", []) if r.get(key) is not None]
    return summary(vals) if vals else None


def py_warm(res, key):
    w = res["python"].get("warm") or {}
    v = w.get(key)
    if isinstance(v, dict):
        return v
    return single(v)


def rows_for(res):
    """(label, lib summary, python summary, ratio wanted)."""
    lw = res["lib"].get("warm", {})
    first50 = lib_derived(res, "warm.first50_worst_ms")
    rows = [
        ("cold: process start -> first matte (ms)", lib_fig(res, "cold.start_to_first_matte_ms", True),
         py_cold(res, "start_to_first_matte_ms"), True),
        ("cold: lib start -> READY (warmed) (ms)", lib_fig(res, "cold.start_to_ready_ms", True), None, False),
        ("cold: py start -> model loaded (ms)", None, py_cold(res, "start_to_loaded_ms"), False),
        ("cold: spawn -> main() (ms)", lib_fig(res, "cold.start_to_main_ms", True),
         py_cold(res, "start_to_main_ms"), False),
        ("cold: py import torch (ms)", None, py_cold(res, "import_torch_ms"), False),
        ("cold: model file -> device (ms)", lib_fig(res, "cold.load_ms", True), py_cold(res, "load_ms"), True),
        ("cold: lib warm-up inferences (ms)", lib_fig(res, "cold.warmup_ms", True), None, False),
        ("cold: first call after READY / load (ms)", lib_fig(res, "cold.first_call_ms", True),
         py_cold(res, "first_inference_ms"), True),
        ("warm batch 1: latency (ms)", lib_fig(res, "warm.latency_ms"), py_warm(res, "warm_latency_ms"), True),
        ("warm: py model forward only (ms)", None, py_warm(res, "forward_only_ms"), False),
        ("warm: worst of first %d calls (ms)" % min(50, res.get("runs", 50)), single(first50),
         py_warm(res, "first50_worst_ms"), True),
    ]
    lmed = (rows[8][1] or {}).get("median")
    pmed = (rows[8][2] or {}).get("median")
    rows.append(("warm: that worst / median (x)",
                 single(first50 / lmed) if first50 and lmed else None,
                 single(py_warm(res, "first50_worst_ms")["median"] / pmed)
                 if pmed and py_warm(res, "first50_worst_ms") else None, False))
    for key in sorted(lw.get("figures", {})):
        if key.startswith("throughput.") and key.endswith(".images_per_s"):
            t = key.split(".")[1][1:]
            rows.append(("throughput: %s caller(s) (img/s)" % t, lib_fig(res, key), None, False))
    w = lib_derived(res, "jpeg.width") or (res["python"].get("warm") or {}).get("jpeg_width")
    h = lib_derived(res, "jpeg.height") or (res["python"].get("warm") or {}).get("jpeg_height")
    jp = "JPEG %dx%d" % (w, h) if w and h else "JPEG"
    rows += [
        ("%s -> RGBA (ms)" % jp, lib_fig(res, "jpeg.rgba_ms"), py_warm(res, "jpeg_rgba_ms"), True),
        ("%s -> RGBA, clean_edges on (ms)" % jp, lib_fig(res, "jpeg.rgba_clean_edges_ms"), None, False),
    ]
    # The encoded figure: each image as RAW, PNG and WebP, end to end, and the bytes.
    figs = lw.get("figures", {})
    sizes = sorted({k.split(".")[1] for k in figs if k.startswith("encoded.")},
                   key=lambda wh: int(wh.split("x")[0]) * int(wh.split("x")[1]))
    names = (("raw", "RGBA RAW"), ("png", "RGBA PNG"), ("webp_lossless", "WebP lossless"), ("webp", "WebP lossy"))
    for wh in sizes:
        for key, name in names:
            rows.append(("%s -> %s (ms)" % (wh, name), lib_fig(res, "encoded.%s.%s_ms" % (wh, key)), None, False))
        for key, name in names[1:]:
            b = lib_derived(res, "encoded.%s.%s_bytes" % (wh, key))
            rows.append(("%s -> %s (MB)" % (wh, name), single(b / 1e6) if b else None, None, False))
    rows += [
        ("memory: device after runs (MiB)", lib_fig(res, "memory.device_after_runs_mib"),
         py_warm(res, "gpu_max_reserved_mib"), True),
        ("memory: device after the JPEGs (MiB)", lib_fig(res, "memory.device_after_jpeg_mib"),
         py_warm(res, "gpu_max_reserved_after_jpeg_mib"), True),
        ("memory: host peak RSS (MiB)", lib_fig(res, "memory.host_peak_rss_mib"),
         py_warm(res, "host_peak_rss_mib"), True),
    ]
    return [r for r in rows if r[1] or r[2]]


def num(v):
    a = abs(v)
    return "%.1f" % v if a >= 100 else "%.2f" % v if a >= 1 else "%.3f" % v


def fmt(s):
    if not s or s.get("median") is None:
        return "-"
    if s["n"] == 1:
        return num(s["median"])
    return "%s [%s-%s]" % (num(s["median"]), num(s["min"]), num(s["max"]))


def print_table(results, header):
    print(header)
    for res in results:
        lw = res["lib"].get("warm", {}).get("context", {})
        py = res["python"].get("warm") or (res["python"].get("cold_runs") or [{}])[0]
        graph_safe = lw.get("graph_safe")
        lib_desc = "lib: %s %s, cuda graph %s, forward streams %s, graph-safe model %s" % (
            lw.get("device"), lw.get("precision"), "on" if lw.get("cuda_graph") else "off",
            lw.get("forward_streams", "-"), "unknown" if graph_safe is None else "yes" if graph_safe else "no",
        ) if lw else "lib: -"
        py_desc = "python: %s %s%s, torch %s" % (py.get("device"), py.get("precision"),
                                                 " (%s)" % py["half_mode"] if py.get("half_mode") else "",
                                                 py.get("torch")) if py else "python: -"
        print("\n== precision %s | %s | %s" % (res["precision"], lib_desc, py_desc))
        print("%-46s %-26s %-26s %8s" % ("figure: median [min-max]", "libpetmatte", "Python torch", "lib/py"))
        table = []
        for label, lib, pyv, want_ratio in rows_for(res):
            ratio = None
            if want_ratio and lib and pyv and lib.get("median") and pyv.get("median"):
                ratio = lib["median"] / pyv["median"]
            print("%-46s %-26s %-26s %8s" % (label, fmt(lib), fmt(pyv), num(ratio) + "x" if ratio else ""))
            table.append({"figure": label, "lib": lib and {k: lib[k] for k in ("n", "median", "min", "max")},
                          "python": pyv and {k: pyv[k] for k in ("n", "median", "min", "max")}, "lib_over_python": ratio})
        for e in res["errors"]:
            print("error: %s" % e)
        bad = [r for r in [res["python"].get("warm") or {}] + (res["python"].get("cold_runs") or [])
               if r.get("output_nonfinite")]
        if bad:
            print("warning: the Python path's output held %d non-finite values of %d (%s): its timings are of a "
                  "failed computation" % (bad[0]["output_nonfinite"], bad[0]["output_values"],
                                          bad[0].get("half_mode") or bad[0].get("precision")))
        res["table"] = table
    sys.stdout.flush()


# ------------------------------------------------------------------ encode compare


def encode_compare(args):
    """The library's PNG and WebP output against Pillow's PNG on one 12 MP RGBA image.

    petmatte-bench feeds the raw RGBA to pm_remove_bg (the tiny model's matte times the
    image's alpha) and saves each encoding's output; the RAW output is the image every
    encoder here compresses. The library's encode time is its PNG (WebP) call's median
    minus its RAW call's: both build the same RGBA, only one encodes it."""
    import io
    import numpy as np
    from PIL import Image
    w, h = 4000, 3000
    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine_info("cpu")
    info["loadavg_before"] = loadavg()
    with tempfile.TemporaryDirectory(prefix="petmatte-encode-") as tmp:
        src = os.path.join(tmp, "cutout.rgba")
        log("writing a %dx%d RGBA cut-out to %s" % (w, h, src))
        why = write_cutout_rgba(src, w, h)
        if why:
            log("cannot compare: %s" % why)
            return 1
        extra = ["--figures", "encoded", "--encoded-rgba", "%dx%d:%s" % (w, h, src),
                 "--encoded-runs", str(args.encode_runs), "--save-encoded", tmp]
        if args.png_level is not None:
            extra += ["--png-level", str(args.png_level)]
        j, _ = run_lib(args, "fp32", extra, os.path.join(tmp, "encoded.json"))
        figs, derived = j["figures"], j["derived"]
        key = "encoded.%dx%d." % (w, h)
        rgba = np.fromfile(os.path.join(tmp, "0.raw.rgba"), dtype=np.uint8).reshape(h, w, 4)
        with open(os.path.join(tmp, "0.png.png"), "rb") as f:
            lib_png = f.read()
        back = np.asarray(Image.open(io.BytesIO(lib_png)))
        if back.shape != rgba.shape or not np.array_equal(back, rgba):
            log("the library's PNG does not decode to the RAW output")
            return 1
        with open(os.path.join(tmp, "0.webp_lossless.webp"), "rb") as f:
            wl = np.asarray(Image.open(io.BytesIO(f.read())).convert("RGBA"))
        visible = rgba[..., 3] > 0
        if not (np.array_equal(wl[..., 3], rgba[..., 3]) and np.array_equal(wl[visible], rgba[visible])):
            log("the library's lossless WebP differs from the RAW output where alpha > 0")
            return 1

        pil = {}
        image = Image.fromarray(rgba, "RGBA")
        for level in (6, 1):
            times, size = [], 0
            for i in range(args.encode_runs):
                buf = io.BytesIO()
                t0 = time.perf_counter()
                image.save(buf, "PNG", compress_level=level)
                times.append((time.perf_counter() - t0) * 1e3)
                size = len(buf.getvalue())
                log("Pillow level %d, run %d/%d: %.0f ms" % (level, i + 1, args.encode_runs, times[-1]))
            pil[level] = (summary(times), size)
    info["loadavg_after"] = loadavg()

    raw = summary(figs[key + "raw_ms"]["samples"])
    rows = []
    for enc, name in (("png", "libpetmatte PNG (level %s)" % ("default" if args.png_level is None
                                                             else args.png_level)),
                      ("webp_lossless", "libpetmatte WebP lossless"), ("webp", "libpetmatte WebP lossy q90")):
        call = summary(figs[key + enc + "_ms"]["samples"])
        rows.append((name + ": encode", summary([v - raw["median"] for v in call["samples"]]),
                     derived[key + enc + "_bytes"]["value"]))
        rows.append((name + ": whole call", call, None))
    rows.append(("libpetmatte RAW (no encoding): whole call", raw, None))
    for level in (6, 1):
        rows.append(("Pillow PNG, zlib level %d" % level, pil[level][0], pil[level][1]))
    p6_ms, p6_bytes = pil[6][0]["median"], pil[6][1]
    print("encoded output of a %dx%d RGBA cut-out | machine: %s, %s CPUs | %s | load average before %s, "
          "after %s | %d runs each" % (
              w, h, info.get("lscpu_model_name") or info.get("cpu_model", "?"),
              info.get("affinity_cpus", info["cpus"]), started.strftime("%Y-%m-%d %H:%M UTC"),
              info["loadavg_before"] and "%.2f" % info["loadavg_before"][0],
              info["loadavg_after"] and "%.2f" % info["loadavg_after"][0], args.encode_runs))
    print("%-52s %-26s %12s %10s %10s" % ("encoder", "time ms: median [min-max]", "bytes", "time/P6", "bytes/P6"))
    for name, t, size in rows:
        print("%-52s %-26s %12s %10s %10s" % (
            name, fmt(t), size if size else "", num(t["median"] / p6_ms) + "x",
            num(size / p6_bytes) + "x" if size else ""))
    doc = {"tool": "tools/bench.py --encode-compare", "date_utc": started.isoformat(), "argv": sys.argv,
           "machine": info, "library": j, "pillow": {str(k): {"ms": v[0], "bytes": v[1]} for k, v in pil.items()}}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    log("wrote %s" % args.out)
    return 0


# ------------------------------------------------------------------ main


def default_bench():
    for cand in ("build/examples/petmatte-bench", "build-bench/examples/petmatte-bench",
                 "build-cuda/examples/petmatte-bench"):
        p = os.path.join(ROOT, cand)
        if os.access(p, os.X_OK):
            return p
    return None


def main():
    ap = argparse.ArgumentParser(description="libpetmatte vs the Python path, same model, one invocation")
    ap.add_argument("--bench", default=default_bench(), help="petmatte-bench binary (default: found under build*/)")
    ap.add_argument("--model", required=True, help="TorchScript file, the same for both")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda:N")
    ap.add_argument("--precision", default=None,
                    help="comma list of fp32, fp16, bf16, auto (default: fp32 on cpu, fp32,fp16 on cuda)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for both (0: torch's default)")
    ap.add_argument("--runs", type=int, default=100, help="warm calls, batch 1")
    ap.add_argument("--cold-repeats", type=int, default=5, help="fresh processes per side (0: no cold figures)")
    ap.add_argument("--concurrency", default="1,2,4", help="caller threads for the lib's throughput figure")
    ap.add_argument("--per-thread", type=int, default=16, help="calls per caller per throughput round")
    ap.add_argument("--tp-repeats", type=int, default=3, help="throughput rounds per thread count")
    ap.add_argument("--jpeg", help="use this JPEG instead of generating the 12 MP one")
    ap.add_argument("--no-jpeg", action="store_true", help="skip the 12 MP JPEG figure")
    ap.add_argument("--jpeg-size", default="4000x3000", help="size of the generated JPEG, WxH (default 4000x3000)")
    ap.add_argument("--jpeg-runs", type=int, default=5, help="timed 12 MP calls per variant")
    ap.add_argument("--clean-edges", default="both", choices=["off", "on", "both"])
    ap.add_argument("--no-encoded", action="store_true",
                    help="skip the encoded figure (1 MP and 12 MP JPEG -> PNG and WebP)")
    ap.add_argument("--encode-compare", action="store_true",
                    help="only compare the library's PNG/WebP output with Pillow's PNG on a 12 MP RGBA image")
    ap.add_argument("--encode-runs", type=int, default=5, help="timed calls per encoder (--encode-compare)")
    ap.add_argument("--png-level", type=int, help="pm_remove_options.png_level for the library's PNG")
    ap.add_argument("--max-batch", type=int, help="pass to petmatte-bench (1..64)")
    ap.add_argument("--tune", action="append", default=[], metavar="KEY=VALUE",
                    help="a library tuning key, passed to petmatte-bench as is (repeatable), "
                         "e.g. cuda_graph=off, forward_streams=3; VALUE an integer or auto, on, off")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the Python anchor")
    ap.add_argument("--python-cast", action="store_true",
                    help="Python fp16/bf16 by model.half()-style casting instead of torch.autocast")
    ap.add_argument("--skip-lib", action="store_true")
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--out", default="bench-results.json", help="JSON with every sample")
    args = ap.parse_args()

    if not args.skip_lib and not (args.bench and os.access(args.bench, os.X_OK)):
        ap.error("petmatte-bench not found: build it (cmake --build BUILD --target petmatte_bench) "
                 "and pass --bench BUILD/examples/petmatte-bench")
    if not os.path.exists(args.model):
        ap.error("no model file at %s" % args.model)
    args.model = os.path.abspath(args.model)
    try:
        jw, jh = (int(v) for v in args.jpeg_size.lower().split("x"))
        if jw < 16 or jh < 16:
            raise ValueError
    except ValueError:
        ap.error("--jpeg-size '%s' is not WxH with both sides >= 16" % args.jpeg_size)
    precisions = (args.precision or ("fp32" if args.device == "cpu" else "fp32,fp16")).split(",")
    if args.encode_compare:
        return encode_compare(args)

    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine_info(args.device)
    info["loadavg_before"] = loadavg()
    with tempfile.TemporaryDirectory(prefix="petmatte-bench-") as tmp:
        jpeg = None
        if args.jpeg:
            jpeg = os.path.abspath(args.jpeg)
        elif not args.no_jpeg:
            jpeg = os.path.join(tmp, "photo-%dx%d.jpg" % (jw, jh))
            log("writing a %dx%d JPEG to %s" % (jw, jh, jpeg))
            why = write_photo_jpeg(jpeg, jw, jh)
            if why:
                log("skipping the 12 MP figure: %s" % why)
                jpeg = None
        jpeg_small = None
        if jpeg and not args.no_encoded and jw * jh >= 2000000:
            jpeg_small = os.path.join(tmp, "photo-1155x866.jpg")
            log("writing a 1155x866 (1 MP) JPEG to %s" % jpeg_small)
            if write_photo_jpeg(jpeg_small, 1155, 866):
                jpeg_small = None
        results = []
        for p in precisions:
            log("precision %s" % p)
            results.append(bench_precision(args, p, jpeg, jpeg_small, tmp))
        jpeg_bytes = os.path.getsize(jpeg) if jpeg and os.path.exists(jpeg) else None
    info["loadavg_after"] = loadavg()

    header = ("libpetmatte vs Python torch | model %s | device %s | threads %s | runs %d | cold repeats %d\n"
              "machine: %s, %s CPUs | %s | load average before %s, after %s" % (
                  os.path.basename(args.model), args.device, args.threads or "torch default", args.runs,
                  args.cold_repeats, info.get("lscpu_model_name") or info.get("cpu_model", "?"),
                  info.get("affinity_cpus", info["cpus"]), started.strftime("%Y-%m-%d %H:%M UTC"),
                  info["loadavg_before"] and "%.2f" % info["loadavg_before"][0],
                  info["loadavg_after"] and "%.2f" % info["loadavg_after"][0]))
    if info.get("gpus"):
        header += "\ngpu: " + "; ".join(info["gpus"])
    print_table(results, header)
    doc = {"tool": "tools/bench.py", "date_utc": started.isoformat(), "argv": sys.argv, "machine": info,
           "model": args.model, "device": args.device, "threads": args.threads, "jpeg_bytes": jpeg_bytes,
           "results": results}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    log("wrote %s" % args.out)
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
