"""What tools/export_inspyrenet.py and tools/export_birefnet.py share: the manifest of a
probability-map model, and tracing its module into a TorchScript file that is checked."""
import json
import os
import time
import warnings

import torch


def add_output_options(p) -> None:
    """The options every exporter takes after its own: --precision (files are fp32),
    --name, --out, --no-verify. check_output_options tests them after parsing."""
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                   help="only fp32 is written: libpetmatte converts to fp16/bf16 at load "
                        "(pm_params.precision), so one fp32 file serves all three")
    p.add_argument("--name", help="model name in the manifest (at most 63 bytes)")
    p.add_argument("--out", required=True, help="output TorchScript file")
    p.add_argument("--no-verify", action="store_true", help="skip re-loading and running the written file")


def check_output_options(p, args) -> None:
    """Stops with p.error for a precision other than fp32 or a name over 63 bytes."""
    if args.precision != "fp32":
        p.error(f"--precision {args.precision}: files are written in fp32; ask libpetmatte for "
                f"{args.precision} when loading (pm_params.precision / --precision), it converts the "
                "weights at load")
    if args.name and len(args.name.encode()) > 63:
        p.error("--name is longer than 63 bytes")


def manifest_json(name: str, width: int, height: int, mean, std, normalize: str, random_weights: bool,
                  source: str, license_text: str, extra: dict) -> str:
    """The petmatte.json of a model that outputs a probability map, resized back to the
    image with bilinear align_corners=True (both upstreams do); normalize is "minmax"
    (InSPyReNet) or "none" (BiRefNet)."""
    m = {
        "format": "petmatte-manifest",
        "version": 1,
        "name": name,
        "input": {"width": width, "height": height, "mean": mean, "std": std},
        "output": {"activation": "probability", "normalize": normalize, "resize": "bilinear",
                   "align_corners": True},
        # NHWC weights and input on a GPU: cuDNN's convolutions are faster in that
        # order; the modules reshape (never view) activations, so either memory order
        # gives the same result.
        "gpu": {"channels_last": True},
        "random_weights": random_weights,
        "source": source,
        "license": license_text,
    }
    m.update(extra)
    return json.dumps(m, indent=2)


def trace_to_file(model, width: int, height: int, manifest: str, out: str, verify: bool = True,
                  log=print) -> torch.jit.ScriptModule:
    """Traces model at [1, 3, height, width], saves it with the manifest, and (verify)
    loads the file back and checks it against the eager module on a fixed input."""
    example = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = None
        if verify:
            t = time.time()
            reference = model(example)
            log(f"eager forward: {time.time() - t:.1f} s")
        t = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, example, check_trace=False)
        log(f"traced at [1, 3, {height}, {width}]: {time.time() - t:.1f} s")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.jit.save(traced, out, _extra_files={"petmatte.json": manifest})
    log(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")
    if verify:
        files = {"petmatte.json": ""}
        loaded = torch.jit.load(out, map_location="cpu", _extra_files=files)
        if json.loads(files["petmatte.json"]) != json.loads(manifest):
            raise SystemExit("verify: the manifest did not survive the round trip")
        with torch.no_grad():
            t = time.time()
            got = loaded(example)
            log(f"loaded file forward: {time.time() - t:.1f} s")
        if tuple(got.shape) != (1, 1, height, width) or not bool(torch.isfinite(got).all()):
            raise SystemExit(f"verify: output shape {list(got.shape)} or values are wrong")
        diff = (got - reference).abs().max().item()
        if diff > 1e-4:
            raise SystemExit(f"verify: the loaded file differs from the eager module by {diff}")
        log(f"verified: output [1, 1, {height}, {width}], max |file - eager| = {diff:.3g}")
    return traced
