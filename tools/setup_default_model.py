#!/usr/bin/python3
"""Makes libpetmatte's default model, models/isnet-general.pt, from the npm registry.

    /usr/bin/python3 tools/setup_default_model.py [--out PATH] [--force] [--cache DIR] [--quiet]

Steps, each checked:
  1. `npm pack @imgly/background-removal-data@1.4.5` into models/cache/ (reused when the
     cached tarball's sha512 matches the pinned one; the registry's dist.integrity must
     equal the pin too);
  2. the "/models/medium" chunks read from the tarball (sha256 of each = its name; total
     size and sha256 pinned) and joined into models/cache/isnet-medium-1.4.5.onnx;
  3. the ONNX graph converted to a float32 torch module (tools/isnet/onnx_torch.py),
     traced at 1x3x1024x1024 and saved with the petmatte manifest as the extra file
     "petmatte.json", written to a temporary file and renamed into place.

Idempotent: when the output exists, is a sound archive and its manifest records the
current recipe stamp, nothing is done. Any failure prints one line and exits non-zero,
leaving no partial model behind.
"""
import argparse
import json
import os
import sys
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from isnet import recipe  # noqa: E402  (no torch: the up-to-date check stays fast)
from isnet.fetch import FetchError, ensure_onnx, replaced_atomically  # noqa: E402


def log(msg):
    print("setup_default_model: " + msg, flush=True)


def read_manifest(path):
    """The petmatte.json of a TorchScript archive (read with zipfile, no torch), or None."""
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith("/extra/petmatte.json") or name == "extra/petmatte.json":
                    return json.loads(z.read(name).decode("utf-8"))
    except (OSError, zipfile.BadZipFile, ValueError, KeyError):
        return None
    return None


def archive_sound(path):
    """Every member's CRC checks out (catches truncation and corruption)."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError):
        return False


def up_to_date(path):
    if not os.path.isfile(path):
        return False
    m = read_manifest(path)
    stamp = (m or {}).get("build", {}).get("recipe") if isinstance(m, dict) else None
    return stamp == recipe.recipe_stamp() and archive_sound(path)


def convert(onnx_path, out, quiet=False):
    import torch  # imported here: only a conversion needs it
    from isnet.onnx_torch import convert as onnx_to_torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t = time.time()
    module = onnx_to_torch(onnx_path, output=recipe.OUTPUT_NAME, input_name=recipe.INPUT_NAME)
    log("converted the ONNX graph (%d ops kept) in %.1f s" % (len(module._steps), time.time() - t))
    example = torch.zeros(1, 3, recipe.SIZE, recipe.SIZE)
    t = time.time()
    with torch.no_grad():
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings: the shape arithmetic is fixed at 1024
            traced = torch.jit.trace(module, example, check_trace=False)
        y = traced(example)
    if tuple(y.shape) != (1, 1, recipe.SIZE, recipe.SIZE) or not bool(torch.isfinite(y).all()):
        raise RuntimeError("the traced model's output is %s, not a finite 1x1x%dx%d matte"
                           % (tuple(y.shape), recipe.SIZE, recipe.SIZE))
    log("traced at 1x3x%dx%d in %.1f s" % (recipe.SIZE, recipe.SIZE, time.time() - t))
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    with replaced_atomically(out, "." + os.path.basename(out) + ".") as tmp:
        torch.jit.save(traced, tmp, _extra_files={"petmatte.json": recipe.manifest_text()})
        check = read_manifest(tmp)
        if not check or check.get("build", {}).get("recipe") != recipe.recipe_stamp():
            raise RuntimeError("the saved archive does not carry its manifest")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, recipe.DEFAULT_OUT),
                    help="where to write the TorchScript model (default: %(default)s)")
    ap.add_argument("--cache", default=os.path.join(ROOT, "models", "cache"),
                    help="download cache folder (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="convert again even if the output is up to date")
    ap.add_argument("--quiet", action="store_true", help="print errors only")
    args = ap.parse_args(argv)

    global log
    if args.quiet:
        log = lambda msg: None  # noqa: E731

    t0 = time.time()
    out = os.path.abspath(args.out)
    if not args.force and up_to_date(out):
        log("%s is up to date (%s, recipe %s)" % (out, recipe.MODEL_NAME, recipe.recipe_stamp()[:12]))
        return 0
    try:
        onnx_path = ensure_onnx(os.path.abspath(args.cache), progress=log)
        log("verified %s (sha256 %s...)" % (onnx_path, recipe.ONNX_SHA256[:16]))
        convert(onnx_path, out)
    except FetchError as e:
        print("setup_default_model: error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("setup_default_model: error: interrupted; no model written", file=sys.stderr)
        return 130
    except Exception as e:  # one line, whatever went wrong
        msg = str(e).strip().splitlines()
        print("setup_default_model: error: %s: %s" % (type(e).__name__, msg[0] if msg else ""),
              file=sys.stderr)
        return 1
    log("wrote %s (%.0f MB) in %.1f s" % (out, os.path.getsize(out) / 1e6, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
