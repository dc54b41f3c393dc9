"""Traces an exporter's module into a TorchScript file with its manifest, and checks
the file: the one step tools/export_inspyrenet.py and tools/export_birefnet.py share."""
import json
import os
import time
import warnings

import torch


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
