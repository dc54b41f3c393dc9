"""The default model, models/isnet-general.pt (made by tools/setup_default_model.py).

  * its manifest says what docs/models.md says;
  * the converted TorchScript module agrees with a straightforward numpy evaluation of
    the ONNX nodes it came from (tools/isnet/onnx_numpy.py) on a 1024x1024 input: max
    absolute difference <= 1e-4;
  * the cat photo (skimage's chelsea.png, 451x300): mean alpha >= 0.9 inside a box on
    the cat's face, <= 0.1 in the background corners. Through libpetmatte (the Python
    binding over the library named by PETMATTE_LIBRARY) when that is set, else through torch directly.

Skipped, with the reason, only when the model (or, for the reference check, the
verified ONNX in models/cache/) is missing. Runs in about 1.5 min on 2 CPU cores.
"""
import json
import os
import sys
import time
import zipfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from isnet import recipe  # noqa: E402

MODEL = os.path.join(ROOT, recipe.DEFAULT_OUT)
CACHE = os.path.join(ROOT, "models", "cache")
CAT = "/usr/lib/python3/dist-packages/skimage/data/chelsea.png"

# Measured by eye on chelsea.png (451 x 300), pixel coordinates [x0, x1) x [y0, y1):
# the face from the forehead stripes to below the nose, both eyes inside.
CAT_BOX = (100, 320, 40, 260)
# The top-left, top-right and bottom-right corners are the blurred room behind the cat.
# The bottom-left corner is not background: the cat's white chest fur and whiskers run
# into it, so it is left out.
CORNER = 30
BG_CORNERS = {"top-left": (slice(0, CORNER), slice(0, CORNER)),
              "top-right": (slice(0, CORNER), slice(-CORNER, None)),
              "bottom-right": (slice(-CORNER, None), slice(-CORNER, None))}

needs_model = pytest.mark.skipif(
    not os.path.isfile(MODEL),
    reason="%s is missing: run /usr/bin/python3 tools/setup_default_model.py" % MODEL)


def manifest():
    with zipfile.ZipFile(MODEL) as z:
        name = [n for n in z.namelist() if n.endswith("/extra/petmatte.json")][0]
        return json.loads(z.read(name))


def cat_rgb():
    from PIL import Image
    return np.asarray(Image.open(CAT).convert("RGB"))


def model_input(rgb):
    """The tensor libpetmatte feeds the model: bilinear to 1024 (align_corners=False),
    (rgb/255 - mean) / std with the manifest's values."""
    import torch
    import torch.nn.functional as F
    m = manifest()["input"]
    x = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None] / 255.0
    x = F.interpolate(x, size=(m["height"], m["width"]), mode="bilinear", align_corners=False)
    mean = torch.tensor(m["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(m["std"]).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


@needs_model
def test_manifest():
    m = manifest()
    assert m["format"] == "petmatte-manifest" and m["version"] == 1
    assert m["name"] == "isnet-general"
    assert (m["input"]["width"], m["input"]["height"]) == (1024, 1024)
    assert m["input"]["mean"] == [0.5, 0.5, 0.5] and m["input"]["std"] == [1.0, 1.0, 1.0]
    assert m["output"]["activation"] == "probability"
    assert m["output"]["normalize"] == "none"
    assert m["output"]["resize"] == "bilinear"
    assert m["random_weights"] is False
    assert m["license"].startswith("MIT")
    assert recipe.SPEC in m["source"] and recipe.ONNX_SHA256 in m["source"]
    assert m["build"]["recipe"] == recipe.recipe_stamp()


@needs_model
def test_conversion_matches_numpy_reference():
    onnx_path = os.path.join(CACHE, recipe.ONNX_CACHE_NAME)
    tarball = os.path.join(CACHE, recipe.TARBALL_NAME)
    if not os.path.isfile(onnx_path) and not os.path.isfile(tarball):
        pytest.skip("neither %s nor the cached npm tarball is present: run "
                    "tools/setup_default_model.py" % onnx_path)
    import torch
    from isnet.fetch import ensure_onnx
    from isnet.onnx_numpy import Evaluator

    onnx_path = ensure_onnx(CACHE)  # hash-checked; rebuilt from the cached tarball if needed
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    # A real photo at 1024 (outputs span 0..1, so the sigmoid's whole range is compared).
    x = model_input(cat_rgb())
    model = torch.jit.load(MODEL).eval()
    with torch.no_grad():
        got = model(x)
    got = (got[0] if isinstance(got, (tuple, list)) else got).numpy()

    t = time.time()
    ref, = Evaluator(onnx_path).run({recipe.INPUT_NAME: x.numpy()}, outputs=(recipe.OUTPUT_NAME,))
    ref_s = time.time() - t
    assert got.shape == ref.shape == (1, 1, 1024, 1024)
    diff = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
    print("converted vs numpy reference at 1024: max |diff| = %.3g (reference took %.0f s; "
          "output range %.4f..%.4f)" % (diff, ref_s, ref.min(), ref.max()))
    assert ref.min() < 0.01 and ref.max() > 0.99, "the check input should span the matte's range"
    assert diff <= 1e-4


# --------------------------------------------------------------- cat photo


def alpha_through_library(libpath):
    """The cat's matte (float 0..1, H x W) from pm_remove_bg(..., output = MASK), through
    the Python binding (bindings/python)."""
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    from petmatte import Matte
    # One warm-up inference is enough here.
    with Matte(MODEL, device="cpu", cpu_threads=max(1, os.cpu_count() or 1),
               tune={"warmup_min_runs": 1, "warmup_max_runs": 1}, lib_path=libpath) as m:
        with open(CAT, "rb") as f:
            mask = m.remove_bg(f.read(), output="mask")
    assert mask.dtype == np.uint8 and mask.ndim == 2
    return mask.astype(np.float32) / 255.0


def alpha_through_torch():
    """Fallback when no library is given: what libpetmatte does, in torch."""
    import torch
    import torch.nn.functional as F
    rgb = cat_rgb()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = torch.jit.load(MODEL).eval()
    with torch.no_grad():
        y = model(model_input(rgb))
    out = manifest()["output"]
    assert out["activation"] == "probability" and out["normalize"] == "none"
    y = F.interpolate(y, size=rgb.shape[:2], mode="bilinear", align_corners=out["align_corners"])
    return y[0, 0].clamp(0, 1).numpy()


@needs_model
def test_cat_photo():
    if not os.path.isfile(CAT):
        pytest.skip("%s is missing (Debian package python3-skimage)" % CAT)
    libpath = os.environ.get("PETMATTE_LIBRARY")
    if libpath:
        alpha, how = alpha_through_library(libpath), "libpetmatte " + libpath
    else:
        alpha, how = alpha_through_torch(), "torch (PETMATTE_LIBRARY unset)"
    assert alpha.shape == (300, 451)
    x0, x1, y0, y1 = CAT_BOX
    inside = float(alpha[y0:y1, x0:x1].mean())
    corners = {k: float(alpha[s].mean()) for k, s in BG_CORNERS.items()}
    print("cat via %s: mean alpha in box x%d..%d y%d..%d = %.4f; corners %s"
          % (how, x0, x1, y0, y1, inside, {k: round(v, 4) for k, v in corners.items()}))
    assert inside >= 0.9
    for name, value in corners.items():
        assert value <= 0.1, name


def cpu_has_amx_bf16():
    """AMX-BF16 in /proc/cpuinfo: where libpetmatte's auto precision is bf16 on the CPU
    (the kernel lists the flag only when it supports the tiles' state)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


@needs_model
def test_cat_photo_in_bf16_stays_within_one_level_of_fp32():
    """Auto precision on a CPU with AMX-BF16 is bf16 (IS-Net runs NHWC): its matte may
    differ from fp32's by at most 1/255 on average."""
    if not os.path.isfile(CAT):
        pytest.skip("%s is missing (Debian package python3-skimage)" % CAT)
    libpath = os.environ.get("PETMATTE_LIBRARY")
    if not libpath:
        pytest.skip("PETMATTE_LIBRARY unset: this checks the library's bf16 path")
    if not cpu_has_amx_bf16():
        pytest.skip("this CPU has no AMX-BF16: auto precision stays fp32 here")
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    from petmatte import Matte, Precision
    with open(CAT, "rb") as f:
        cat = f.read()
    masks = {}
    for precision in ("auto", "fp32"):
        with Matte(MODEL, device="cpu", precision=precision, lib_path=libpath) as m:
            masks[precision] = m.remove_bg(cat, output="mask").astype(np.int16)
            st = m.status()
            assert st.precision == (Precision.BF16 if precision == "auto" else Precision.FP32)
            assert st.warmup_runs == 0 and st.images_processed == 1  # a cold call: no warm-up run
    diff = np.abs(masks["auto"] - masks["fp32"])
    print("cat, bf16 against fp32: mean |alpha diff| %.3f of an 8-bit level, max %d" % (diff.mean(), diff.max()))
    assert diff.mean() <= 1.0
    assert diff.max() <= 16  # no region flips


# ------------------------------------------- download checks (no model needed)


def _fake_package(path, chunks, resource_size=None, extra=None, licenses=None):
    """A tarball shaped like the npm package: chunks named by sha256 + resources.json."""
    import hashlib
    import io
    import tarfile
    entries, offset = [], 0
    for blob in chunks:
        entries.append({"hash": hashlib.sha256(blob).hexdigest(), "offsets": [offset, offset + len(blob)]})
        offset += len(blob)
    resources = {"/models/test": {"chunks": entries, "size": offset if resource_size is None else resource_size}}
    lic = licenses if licenses is not None else {"ISNET": {"license": "MIT"}}
    with tarfile.open(path, "w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for e, blob in zip(entries, chunks):
            add("package/dist/" + e["hash"], (extra or {}).get(e["hash"], blob))
        add("package/dist/resources.json", json.dumps(resources).encode())
        add("package/ThirdPartyLicenses.json", json.dumps(lic).encode())
    return entries


def test_fetch_reassembles_and_checks_chunks(tmp_path):
    from isnet import fetch
    good = tmp_path / "good.tgz"
    _fake_package(str(good), [b"a" * 1000, b"b" * 10])
    data, lic = fetch.read_package(str(good), resource="/models/test")
    assert data == b"a" * 1000 + b"b" * 10
    assert fetch.check_license(lic)["license"] == "MIT"

    bad = tmp_path / "bad.tgz"
    import hashlib
    swapped = {hashlib.sha256(b"b" * 10).hexdigest(): b"c" * 10}  # same name, other bytes
    _fake_package(str(bad), [b"a" * 1000, b"b" * 10], extra=swapped)
    with pytest.raises(fetch.FetchError, match="fails its sha256"):
        fetch.read_package(str(bad), resource="/models/test")

    short = tmp_path / "short.tgz"
    _fake_package(str(short), [b"a" * 1000], resource_size=1001)
    with pytest.raises(fetch.FetchError, match="resources.json says"):
        fetch.read_package(str(short), resource="/models/test")

    nolicense = tmp_path / "nolicense.tgz"
    _fake_package(str(nolicense), [b"a"], licenses={"ISNET": {"license": "AGPL-3.0"}})
    _, lic = fetch.read_package(str(nolicense), resource="/models/test")
    with pytest.raises(fetch.FetchError, match="MIT"):
        fetch.check_license(lic)


def test_cached_tarball_with_wrong_hash_is_not_used(tmp_path, monkeypatch):
    """A cached tarball that fails the pin is removed and fetched again; a registry whose
    integrity differs from the pin is refused with a one-line error."""
    from isnet import fetch
    cached = tmp_path / recipe.TARBALL_NAME
    cached.write_bytes(b"not the package")
    monkeypatch.setattr(fetch, "registry_integrity", lambda: "sha512-tampered==")
    with pytest.raises(fetch.FetchError, match="not the pinned") as e:
        fetch.ensure_tarball(str(tmp_path))
    assert "\n" not in str(e.value)
    assert not cached.exists()
