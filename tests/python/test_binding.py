"""Tests of the ctypes binding (bindings/python/petmatte) against the built library.

Run by ctest (tests/python.cmake) with PETMATTE_LIBRARY=<built .so>,
PETMATTE_TEST_MODELS=<folder written by tests/models/make_test_models.py> and
PYTHONPATH=bindings/python. The test models have outputs that are known functions of
their input (red32: alpha = the red channel at 32x32), so pixels are asserted exactly.
"""

from __future__ import annotations

import ctypes
import io
import os
import pickle
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
LIB = os.environ.get("PETMATTE_LIBRARY")
MODELS = Path(os.environ.get("PETMATTE_TEST_MODELS", "/nonexistent"))

if not LIB or not (MODELS / "red32.pt").is_file():
    pytest.skip("needs PETMATTE_LIBRARY and PETMATTE_TEST_MODELS (run through ctest)",
                allow_module_level=True)

import petmatte  # noqa: E402
from petmatte import _native, images  # noqa: E402
from petmatte import ErrorCode, Matte, Precision, State  # noqa: E402

PIL_Image = pytest.importorskip("PIL.Image")

RED32 = MODELS / "red32.pt"
SLOW96 = MODELS / "slow96.pt"


def rng_image(h, w, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def ppm(arr: np.ndarray) -> bytes:
    """Binary PPM (P6) bytes of an (H, W, 3) array: an encoded format without PIL."""
    h, w, _ = arr.shape
    return b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(arr).tobytes()


def run_python(code: str, env_changes: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def red():
    with Matte(RED32, device="cpu") as m:
        m.warmup()
        yield m


# ------------------------------------------------------------------ library, ABI


def test_version_comes_from_the_library():
    lib = petmatte.load_library()
    assert lib.path == LIB
    v = petmatte.__version__
    assert v == lib.pm_version().decode() == petmatte.library_version()
    major, minor, patch = (int(x) for x in re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", v).groups())
    assert lib.pm_version_number() == major * 10000 + minor * 100 + patch
    header = (ROOT / "include" / "petmatte.h").read_text()
    for part, value in (("MAJOR", major), ("MINOR", minor), ("PATCH", patch)):
        assert re.search(rf"#define PETMATTE_VERSION_{part} {value}\b", header)


def test_error_codes_match_the_header_and_each_has_a_subclass():
    header = (ROOT / "include" / "petmatte.h").read_text()
    codes = {m.group(1): int(m.group(2))
             for m in re.finditer(r"\bPM_(OK|ERR_\w+) = (\d+)", header)}
    assert {("PM_" + c.name if c.name == "OK" else "PM_ERR_" + c.name): int(c)
            for c in ErrorCode} == {"PM_" + k: v for k, v in codes.items()}
    classes = set()
    lib = petmatte.load_library()
    for code in ErrorCode:
        if code == ErrorCode.OK:
            continue
        cls = petmatte.error_class(code)
        assert cls is not petmatte.PetmatteError and issubclass(cls, petmatte.PetmatteError)
        classes.add(cls)
        err = cls(code, "msg")
        assert err.code is code and err.message == "msg"
        assert f"PM_ERR_{code.name}={int(code)}" in str(err)
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is cls and again.code == code and again.message == "msg"
        assert lib.strerror(code) != lib.strerror(99)  # the library knows every code
    assert len(classes) == len(ErrorCode) - 1  # one distinct class per error code
    unknown = petmatte.error_class(99)(99, "future")
    assert type(unknown) is petmatte.PetmatteError and unknown.code == 99
    assert issubclass(petmatte.InvalidArgumentError, ValueError)
    assert issubclass(petmatte.ModelIOError, OSError)


# Every struct the binding declares, by its C name; the C program below prints the
# header's offset of each field the binding declares and each struct's sizeof.
_STRUCTS = {"pm_params": _native.PmParams, "pm_status_info": _native.PmStatusInfo,
            "pm_image": _native.PmImage, "pm_remove_options": _native.PmRemoveOptions,
            "pm_output": _native.PmOutput}


def _layout_program() -> str:
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "petmatte.h"',
             "int main(void) {"]
    for name, cls in _STRUCTS.items():
        lines.append(f'    printf("{name} sizeof %zu\\n", sizeof({name}));')
        for field, *_ in cls._fields_:
            lines.append(f'    printf("{name} {field} %zu\\n", offsetof({name}, {field}));')
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


def test_struct_layouts_match_the_header(tmp_path):
    # A field the header lacks fails to compile, one out of order has the wrong
    # offset, and one the binding lacks changes sizeof (the header's structs have no
    # tail padding, so even a missing last field shows).
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to read the header's layouts")
    src = tmp_path / "layout.c"
    src.write_text(_layout_program())
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", str(ROOT / "include"), str(src), "-o", str(exe)],
                   check=True, capture_output=True)
    seen = {name: set() for name in _STRUCTS}
    for line in subprocess.run([str(exe)], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        struct, field, value = line.split()
        cls = _STRUCTS[struct]
        if field == "sizeof":
            assert ctypes.sizeof(cls) == int(value), struct
        else:
            assert getattr(cls, field).offset == int(value), f"{struct}.{field}"
            seen[struct].add(field)
    for name, cls in _STRUCTS.items():
        assert seen[name] == {f[0] for f in cls._fields_}, name


def test_tune_keys_match_the_header_and_the_librarys_names():
    header = (ROOT / "include" / "petmatte.h").read_text()
    declared = {m.group(1).lower(): int(m.group(2))
                for m in re.finditer(r"\bPM_TUNE_(\w+) = (\d+)", header)}
    assert declared == _native.TUNE_KEYS
    assert petmatte.TUNE_KEYS == tuple(sorted(declared, key=declared.get))
    lib = petmatte.load_library()
    for name, key in _native.TUNE_KEYS.items():
        assert lib.tune_name(key) == name
    assert lib.tune_name(0) is None and lib.tune_name(max(declared.values()) + 1) is None


def test_init_sized_fills_the_library_defaults():
    lib = petmatte.load_library()
    p = lib.new_params()
    assert p.struct_size == ctypes.sizeof(_native.PmParams)
    assert p.device == b"auto" and p.model_path is None
    assert (p.precision, p.input_size, p.cpu_threads, p.max_batch) == (0, 0, 0, 1)
    assert p.max_pixels == 100_000_000 and p.max_encoded_bytes == 256 << 20
    s = lib.new_status_info()
    assert s.struct_size == ctypes.sizeof(_native.PmStatusInfo)
    o = lib.new_options()
    assert (o.output, o.encoding, o.background_rgb) == (0, 0, 0xFFFFFF)
    assert o.threshold == -1.0
    assert (o.invert, o.apply_exif_orientation, o.keep_input_alpha, o.clean_edges) == (0, 1, 1, 0)
    assert (o.background, o.blur_radius, bool(o.background_image)) == (0, 0.0, False)
    assert (o.overlay_rgb, o.overlay_opacity) == (0x78FF9B, 0.5)
    i = lib.new_image()
    assert i.struct_size == ctypes.sizeof(_native.PmImage) and i.format == 0


def test_status_writes_nothing_past_a_shorter_struct_size():
    # What an older caller relies on: a struct_size that stops before graph_safe gets
    # the fields before it and not one byte more.
    lib = petmatte.load_library()
    cut = _native.PmStatusInfo.graph_safe.offset
    size = ctypes.sizeof(_native.PmStatusInfo)
    buf = (ctypes.c_ubyte * size)(*([0xA5] * size))
    info = ctypes.cast(buf, ctypes.POINTER(_native.PmStatusInfo))
    lib.pm_status_info_init_sized(info, cut)
    with Matte(RED32, device="cpu") as m:
        m.warmup()
        assert lib.pm_status(m._ctx, info) == 0
    assert info.contents.struct_size == cut and info.contents.state == State.READY
    assert info.contents.cuda_graph == 0 and info.contents.input_width == 32
    assert bytes(buf[cut:]) == b"\xa5" * (len(buf) - cut)


# --------------------------------------------------------------- library lookup


def test_explicit_lib_path_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PETMATTE_LIBRARY", str(tmp_path / "nope.so"))
    assert petmatte.load_library(LIB).path == LIB
    with Matte(RED32, device="cpu", lib_path=Path(LIB)) as m:
        assert m.status().state is State.COLD


def test_missing_library_gives_a_clear_error(monkeypatch, tmp_path):
    missing = tmp_path / "libpetmatte.so"
    with pytest.raises(petmatte.PetmatteLibraryNotFound) as ei:
        petmatte.load_library(missing)
    assert ei.value.tried == [(str(missing), "lib_path argument: no such file")]
    assert str(missing) in str(ei.value) and "PETMATTE_LIBRARY" in str(ei.value)
    assert isinstance(ei.value, ImportError)

    monkeypatch.setenv("PETMATTE_LIBRARY", str(missing))
    with pytest.raises(petmatte.PetmatteLibraryNotFound) as ei:
        Matte(RED32)
    assert ei.value.tried == [(str(missing), "PETMATTE_LIBRARY: no such file")]

    not_a_lib = tmp_path / "garbage.so"
    not_a_lib.write_bytes(b"not an ELF file")
    with pytest.raises(petmatte.PetmatteLibraryNotFound, match="garbage.so"):
        petmatte.load_library(not_a_lib)


def test_loader_search_without_the_environment_variable():
    # Without PETMATTE_LIBRARY: the dynamic loader (here through LD_LIBRARY_PATH) finds
    # the library by its SONAME; with nothing on the search path, a clear error lists the names.
    code = ("import petmatte\n"
            "try:\n"
            "    lib = petmatte.load_library()\n"
            "    print('LOADED', lib.path, petmatte.__version__)\n"
            "except petmatte.PetmatteLibraryNotFound as e:\n"
            "    print('NOTFOUND', [c for c, _ in e.tried])\n")
    libdir = str(Path(LIB).resolve().parent)
    assert (Path(libdir) / _native.SONAME).exists()  # the name the build gives it
    r = run_python(code, {"PETMATTE_LIBRARY": None, "LD_LIBRARY_PATH": libdir})
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[0] == "LOADED" and out[1] in (_native.SONAME, "libpetmatte.so")
    assert out[2] == petmatte.__version__

    if petmatte._native._find_library() is None:  # not installed system-wide
        r = run_python(code, {"PETMATTE_LIBRARY": None, "LD_LIBRARY_PATH": None})
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("NOTFOUND")
        assert _native.SONAME in r.stdout


def test_numpy_and_pil_are_optional():
    # Importing petmatte imports neither; with both blocked, bytes in -> PNG out works
    # and asking for an array says numpy is needed.
    code = (
        "import sys\n"
        "import petmatte\n"
        "assert 'numpy' not in sys.modules and 'PIL' not in sys.modules, 'eager import'\n"
        "sys.modules['numpy'] = None; sys.modules['PIL'] = None\n"
        "ppm = b'P6\\n2 1\\n255\\n' + bytes([255, 0, 0, 0, 255, 0])\n"
        f"with petmatte.Matte({str(RED32)!r}, device='cpu') as m:\n"
        "    png = m.remove_bg(ppm, format='png', output='mask')\n"
        "    assert png[:8] == b'\\x89PNG\\r\\n\\x1a\\n', png[:8]\n"
        "    try:\n"
        "        m.remove_bg(ppm)\n"
        "    except ImportError as e:\n"
        "        assert 'numpy' in str(e)\n"
        "        print('OK')\n"
    )
    r = run_python(code, {})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "OK"


# --------------------------------------------------------- default model (None)


def test_default_model_from_environment_then_source_tree(monkeypatch, tmp_path):
    monkeypatch.setenv("PETMATTE_MODEL", str(RED32))
    assert petmatte.default_model_path() == RED32
    with Matte(device="cpu") as m:
        assert m.model_path == RED32
        assert m.status().model_name == "red32.pt"  # the file name until loaded

    monkeypatch.setenv("PETMATTE_MODEL", str(tmp_path / "missing.pt"))
    with pytest.raises(petmatte.ModelIOError) as ei:  # used as given, reported by pm_open
        Matte(device="cpu")
    assert ei.value.code is ErrorCode.IO and "missing.pt" in ei.value.message

    monkeypatch.delenv("PETMATTE_MODEL")
    source_model = ROOT / "models" / "isnet-general.pt"
    if source_model.is_file():
        assert petmatte.default_model_path() == source_model
    else:
        with pytest.raises(petmatte.DefaultModelNotFound) as ei:
            petmatte.default_model_path()
        assert ei.value.tried == [str(source_model)]
        assert ei.value.code is ErrorCode.IO and "PETMATTE_MODEL" in ei.value.message
        assert isinstance(ei.value, petmatte.ModelIOError)


# -------------------------------------------------------------- open, status


def test_status_cold_then_ready(red):
    with Matte(RED32, device="cpu") as m:
        s = m.status()
        assert isinstance(s, petmatte.Status)
        assert s.state is State.COLD and s.state_name == "cold" and not s.ready
        assert s.device == "cpu" and s.model_name == "red32.pt"
        assert s.input_size == (0, 0) and s.load_ms == 0 and s.progress == 0
        assert s.open_ms > 0 and s.error is None and s.last_error_code is ErrorCode.OK

        before = time.time()
        s = m.warmup()
        assert s.state is State.READY and s.ready and s.progress == 1.0
        assert s.model_name == "red32" and s.input_size == (32, 32)  # from the manifest
        assert s.precision is Precision.FP32  # AUTO resolved on the CPU
        assert s.warmup_runs == 1  # auto on the CPU: one inference
        assert s.load_ms > 0 and s.warmup_ms > 0
        assert before - 1 <= s.ready_unix <= time.time() + 1
        assert s.images_processed == 0 and s.device_memory_bytes == 0 and not s.cuda_graph
        assert s.device_memory_peak_bytes == 0
        assert m.warmup() == s  # READY: returns at once, nothing changes

        m.remove_bg(rng_image(4, 4))
        assert m.status().images_processed == 1
        assert "ready" in repr(m)


def test_context_manager_closes():
    with Matte(RED32, device="cpu") as m:
        assert not m.closed
    assert m.closed and "closed" in repr(m)
    with pytest.raises(ValueError, match="closed"):
        m.status()
    with pytest.raises(ValueError, match="closed"):
        m.remove_bg(rng_image(2, 2))
    m.close()  # idempotent


def test_warmup_in_background_then_wait():
    with Matte(SLOW96, device="cpu", tune={"warmup_min_runs": 3, "warmup_max_runs": 4}) as m:
        s = m.warmup(background=True)  # returns at once: the library's thread warms
        assert s.state in (State.LOADING, State.WARMING, State.READY)
        s = m.warmup()  # joins the running warm-up
        assert s.state is State.READY and 3 <= s.warmup_runs <= 4
        assert s.input_size == (96, 96) and s.model_name == "slow96"


def test_parameters_reach_the_library():
    with Matte(MODELS / "red_no_manifest.pt", device="cpu", input_size=16,
               tune={"warmup_min_runs": 1, "warmup_max_runs": 1}) as m:
        s = m.warmup()
        assert s.input_size == (16, 16) and s.warmup_runs == 1


def test_open_errors_carry_code_and_message(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(petmatte.ModelIOError) as ei:
        Matte(missing, device="cpu")
    assert ei.value.code is ErrorCode.IO and str(missing) in ei.value.message
    assert isinstance(ei.value, OSError)

    with pytest.raises(petmatte.InvalidArgumentError) as ei:
        Matte(RED32, device="gpu")
    assert ei.value.code is ErrorCode.INVALID_ARGUMENT and '"gpu"' in ei.value.message

    with pytest.raises(petmatte.InvalidArgumentError, match="input_size 4"):
        Matte(RED32, device="cpu", input_size=4)
    with pytest.raises(petmatte.InvalidArgumentError, match="precision 7"):
        Matte(RED32, device="cpu", precision=7)
    with pytest.raises(ValueError, match="precision 'fp64'"):  # caught by the binding
        Matte(RED32, precision="fp64")
    with pytest.raises(ValueError, match="max_pixels"):  # would wrap in a uint64_t
        Matte(RED32, max_pixels=-1)
    with pytest.raises(ValueError, match="cpu_threads"):  # would wrap in a C int
        Matte(RED32, cpu_threads=2 ** 32 + 1)

    if petmatte.cuda_device_count() == 0:
        with pytest.raises(petmatte.DeviceError) as ei:
            Matte(RED32, device="cuda:0")
        assert ei.value.code is ErrorCode.DEVICE


@pytest.mark.parametrize("name", ["wrong_shape.pt", "empty.pt", "not_torchscript.pt",
                                  "truncated.pt"])
def test_bad_models_fail_warmup_with_model_error(name):
    with Matte(MODELS / name, device="cpu") as m:  # opening touches no device: fine
        with pytest.raises(petmatte.ModelError) as ei:
            m.warmup()
        assert ei.value.code is ErrorCode.MODEL and ei.value.message
        s = m.status()
        assert s.state is State.FAILED and s.last_error_code is ErrorCode.MODEL
        assert s.last_error == ei.value.message[:255]
        assert isinstance(s.error, petmatte.ModelError)
        with pytest.raises(petmatte.ModelError):  # remove_bg warms first: same failure
            m.remove_bg(rng_image(4, 4))


def test_wrong_shape_message():
    with Matte(MODELS / "wrong_shape.pt", device="cpu") as m:
        with pytest.raises(petmatte.ModelError, match=r"shape \[1, 3, 32, 32\]"):
            m.warmup()


def test_inference_error_from_the_model():
    with Matte(MODELS / "throws_on_flat.pt", device="cpu") as m:
        assert m.warmup().state is State.READY  # warm-up uses textured input
        with pytest.raises(petmatte.InferenceError) as ei:
            # At the model's size, so not resampled: resampling can leave it a few ulps off flat.
            m.remove_bg(np.full((32, 32, 3), 9, np.uint8))
        assert ei.value.code is ErrorCode.INFERENCE
        assert "refuses a flat image" in ei.value.message
        s = m.status()
        assert s.state is State.READY and s.last_error_code is ErrorCode.INFERENCE
        assert m.remove_bg(rng_image(8, 8)).shape == (8, 8, 4)  # the context still works


def test_decode_and_limit_errors(red):
    with pytest.raises(petmatte.DecodeError) as ei:
        red.remove_bg(b"this is not an image at all")
    assert ei.value.code is ErrorCode.DECODE and isinstance(ei.value, ValueError)
    with pytest.raises(petmatte.InvalidArgumentError, match="size is 0"):
        red.remove_bg(b"")
    with pytest.raises(petmatte.InvalidArgumentError, match="threshold"):
        red.remove_bg(rng_image(4, 4), threshold=2.0)

    with Matte(RED32, device="cpu", max_pixels=100, max_encoded_bytes=200) as m:
        assert m.remove_bg(rng_image(10, 10)).shape == (10, 10, 4)
        with pytest.raises(petmatte.LimitError) as ei:
            m.remove_bg(rng_image(10, 11))
        assert ei.value.code is ErrorCode.LIMIT and "110 pixels" in ei.value.message
        with pytest.raises(petmatte.LimitError, match="max_encoded_bytes"):
            m.remove_bg(ppm(rng_image(9, 9)))  # 243 bytes of pixels


def test_binding_rejects_what_it_cannot_pass(red):
    with pytest.raises(TypeError, match="uint8"):
        red.remove_bg(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(4, 4, 2\)"):
        red.remove_bg(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError, match="cannot use a int"):
        red.remove_bg(42)
    with pytest.raises(ValueError, match="output"):
        red.remove_bg(rng_image(4, 4), output="alpha")
    with pytest.raises(ValueError, match="format"):
        red.remove_bg(rng_image(4, 4), format="jpeg")
    with pytest.raises(ValueError, match="composite"):
        red.remove_bg(rng_image(4, 4), output="mask", background="red")
    with pytest.raises(FileNotFoundError):
        red.remove_bg("/nonexistent/cat.jpg")


# ------------------------------------------------------------------ pixels


def test_rgba_alpha_is_the_red_channel(red):
    a = rng_image(32, 32)
    out = red.remove_bg(a)
    assert out.shape == (32, 32, 4) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out[..., :3], a)
    np.testing.assert_array_equal(out[..., 3], a[..., 0])
    mask = red.remove_bg(a, output="mask")
    assert mask.shape == (32, 32)
    np.testing.assert_array_equal(mask, a[..., 0])


def test_strided_arrays(red):
    big = rng_image(64, 96, seed=3)
    view = big[::2, ::3]  # pixel stride 9 bytes, not 3: the binding copies
    assert view.strides == (2 * 96 * 3, 9, 1)
    np.testing.assert_array_equal(red.remove_bg(view)[..., 3], view[..., 0])

    padded = rng_image(32, 40, seed=4)[:, :32]  # packed pixels, rows 120 bytes apart
    img, keep = images.make_input(red._lib, padded, apply_exif=True, bgr=False)
    assert img.stride == 120 and img.data == padded.ctypes.data  # passed as is, no copy
    assert img.size == 31 * 120 + 32 * 3 and (img.width, img.height) == (32, 32)
    out = red.remove_bg(padded)
    np.testing.assert_array_equal(out[..., 3], padded[..., 0])
    np.testing.assert_array_equal(out[..., :3], padded)

    flipped = padded[::-1]  # negative row stride: copied
    np.testing.assert_array_equal(red.remove_bg(flipped)[..., 3], flipped[..., 0])
    swapped = padded[..., ::-1]  # BGR view of the same memory: red is now blue
    np.testing.assert_array_equal(red.remove_bg(swapped)[..., 3], padded[..., 2])
    fortran = np.asfortranarray(padded)
    np.testing.assert_array_equal(red.remove_bg(fortran)[..., 3], padded[..., 0])


def test_bgr_rgba_and_grey_arrays(red):
    a = rng_image(32, 32, seed=5)
    out = red.remove_bg(a[..., ::-1].copy(), bgr=True)  # OpenCV order in, RGB out
    np.testing.assert_array_equal(out[..., :3], a)
    np.testing.assert_array_equal(out[..., 3], a[..., 0])

    rgba = np.dstack([np.full((8, 8), 255, np.uint8), np.zeros((8, 8, 2), np.uint8),
                      np.full((8, 8), 128, np.uint8)])
    assert (red.remove_bg(rgba)[..., 3] == 128).all()  # matte 255 * input alpha 128/255
    assert (red.remove_bg(rgba, keep_input_alpha=False)[..., 3] == 255).all()

    grey = rng_image(32, 32, 1, seed=6)[..., 0]
    out = red.remove_bg(grey)
    np.testing.assert_array_equal(out[..., 3], grey)
    np.testing.assert_array_equal(out[..., 1], grey)


def test_threshold_and_invert(red):
    a = np.zeros((32, 32, 3), np.uint8)
    a[:, :, 0] = np.array([0, 100, 127, 128, 129, 200, 254, 255] * 4, np.uint8)
    soft = red.remove_bg(a, output="mask")
    np.testing.assert_array_equal(soft, a[..., 0])
    hard = red.remove_bg(a, output="mask", threshold=0.5)  # matte >= 128
    np.testing.assert_array_equal(hard, np.where(a[..., 0] >= 128, 255, 0))
    inv = red.remove_bg(a, output="mask", threshold=0.5, invert=True)
    np.testing.assert_array_equal(inv, 255 - hard)
    np.testing.assert_array_equal(red.remove_bg(a, output="mask", invert=True), 255 - a[..., 0])


def test_composite_over_a_colour(red):
    a = np.zeros((32, 32, 3), np.uint8)
    a[:, :16] = (255, 10, 20)  # matte 255: the subject stays
    a[:, 16:] = (0, 200, 30)  # matte 0: the background colour shows
    for colour in ((0, 0, 255), "#0000ff", "#00f", "blue", 0x0000FF):
        out = red.remove_bg(a, background=colour)
        assert out.shape == (32, 32, 3)
        assert (out[:, :16] == (255, 10, 20)).all() and (out[:, 16:] == (0, 0, 255)).all()
    white = red.remove_bg(a, output="composite")  # default background: white
    assert (white[:, 16:] == 255).all()
    with pytest.raises(ValueError):
        red.remove_bg(a, background="#12345")
    with pytest.raises(ValueError):
        red.remove_bg(a, background=(0, 0, 256))


def test_blur_picture_and_overlay_backgrounds(red, tmp_path):
    a = np.zeros((32, 32, 3), np.uint8)
    a[:, :16] = (255, 10, 20)  # matte 255: the subject stays
    a[:, 16:] = (0, 200, 30)  # matte 0: the background shows
    a[::2, 16:, 1] = 100  # stripes for the blur to smooth
    blurred = red.remove_bg(a, background="blur", blur_radius=3)
    assert (blurred[:, :16] == a[:, :16]).all()
    green = blurred[4:28, 24:, 1].astype(int)
    assert green.std() < a[4:28, 24:, 1].std() / 4 and abs(green.mean() - 150) <= 2
    auto = red.remove_bg(a, background="BLUR")
    assert (auto[:, :16] == a[:, :16]).all() and not (auto == blurred).all()

    # A picture covering the frame: a 20x60 (tall) one shows its middle band.
    pic = np.zeros((60, 20, 3), np.uint8)
    pic[:20] = (255, 0, 0)
    pic[20:40] = (10, 20, 30)
    pic[40:] = (0, 0, 255)
    path = tmp_path / "pic.png"
    PIL_Image.fromarray(pic).save(path)
    for source in (pic, str(path), path.read_bytes(), PIL_Image.fromarray(pic)):
        out = red.remove_bg(a, background_image=source)
        assert out.shape == (32, 32, 3)
        assert (out[:, :16] == a[:, :16]).all() and (out[:, 16:] == (10, 20, 30)).all()

    over = red.remove_bg(a, output="overlay", overlay_color="#0000ff", overlay_opacity=0.25)
    want = np.floor(a[:, 16:] * 0.75 + np.array([0, 0, 255]) * 0.25 + 0.5)
    assert (over[:, :16] == a[:, :16]).all() and (np.abs(over[:, 16:] - want) <= 1).all()
    assert red.remove_bg(a, output="overlay", format="pil").mode == "RGB"

    with pytest.raises(ValueError):
        red.remove_bg(a, background="red", blur_radius=3)
    with pytest.raises(ValueError):
        red.remove_bg(a, background="red", background_image=pic)
    with pytest.raises(ValueError):
        red.remove_bg(a, overlay_opacity=0.3)
    with pytest.raises(ValueError):
        red.remove_bg(a, output="overlay", overlay_color="nocolour")
    with pytest.raises(petmatte.InvalidArgumentError):
        red.remove_bg(a, background="blur", blur_radius=300)
    with pytest.raises(petmatte.InvalidArgumentError):
        red.remove_bg(a, output="overlay", overlay_opacity=1.5)
    with pytest.raises(petmatte.DecodeError, match="background image"):
        red.remove_bg(a, background_image=b"not a picture")


def test_clean_edges_keeps_the_matte_and_opaque_colours(red):
    a = rng_image(32, 32, seed=7)
    plain = red.remove_bg(a)
    clean = red.remove_bg(a, clean_edges=True)
    np.testing.assert_array_equal(clean[..., 3], plain[..., 3])
    opaque = plain[..., 3] == 255
    np.testing.assert_array_equal(clean[opaque], plain[opaque])
    soft = (plain[..., 3] > 0) & (plain[..., 3] < 255)
    assert (clean[soft][:, :3] != plain[soft][:, :3]).any()  # colours re-estimated


def test_png_and_pil_outputs(red):
    a = rng_image(32, 32, seed=8)
    png = red.remove_bg(a, format="png")
    assert isinstance(png, bytes) and png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = PIL_Image.open(io.BytesIO(png))
    assert decoded.mode == "RGBA" and decoded.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(decoded), red.remove_bg(a))

    im = red.remove_bg(a, format="pil")
    assert isinstance(im, PIL_Image.Image) and im.mode == "RGBA" and im.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(im)[..., 3], a[..., 0])
    mask = red.remove_bg(a, output="mask", format="pil")
    assert mask.mode == "L"
    np.testing.assert_array_equal(np.asarray(mask), a[..., 0])
    comp = red.remove_bg(a[:, :17], output="composite", format="pil")  # odd width
    assert comp.mode == "RGB" and comp.size == (17, 32)


def test_encoded_bytes_paths_and_pil_inputs(red, tmp_path):
    a = rng_image(32, 32, seed=9)
    expected = red.remove_bg(a)
    data = ppm(a)
    for given in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(red.remove_bg(given), expected)

    path = tmp_path / "in.png"
    PIL_Image.fromarray(a).save(path)
    np.testing.assert_array_equal(red.remove_bg(path), expected)  # PathLike
    np.testing.assert_array_equal(red.remove_bg(str(path)), expected)  # str

    im = PIL_Image.fromarray(a)
    out = red.remove_bg(im)  # PIL in: PIL out by default
    assert isinstance(out, PIL_Image.Image) and out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out), expected)
    np.testing.assert_array_equal(red.remove_bg(im, format="array"), expected)
    grey = im.convert("L")
    np.testing.assert_array_equal(red.remove_bg(grey, output="mask", format="array"),
                                  np.asarray(grey))


def test_exif_orientation_option(red):
    im = PIL_Image.fromarray(rng_image(20, 40, seed=10))  # 40 wide, 20 high
    exif = PIL_Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    jpeg = buf.getvalue()
    assert red.remove_bg(jpeg).shape == (40, 20, 4)  # upright
    assert red.remove_bg(jpeg, apply_exif=False).shape == (20, 40, 4)


# ----------------------------------------------------------- threads, the GIL


def test_gil_released_two_threads_overlap_in_remove_bg():
    """Thread A calls remove_bg on a cold context (so the call loads and warms the
    model first). The main thread watches status() until it reports LOADING or
    WARMING, states that exist only inside A's call, then makes its own remove_bg
    call. Had the binding held the GIL across A's call, the main thread could not
    have run between those states (it would only ever see COLD, then READY); so
    seeing them proves the release. The two calls' timestamped intervals must then
    intersect: both threads were inside the library at once."""
    big = rng_image(1536, 1536, seed=11)
    small = rng_image(64, 64, seed=12)
    with Matte(SLOW96, device="cpu", tune={"warmup_min_runs": 6, "warmup_max_runs": 6}) as m:
        span_a = []
        errors = []

        def thread_a():
            try:
                t0 = time.perf_counter()
                out = m.remove_bg(big, output="mask")
                span_a.append((t0, time.perf_counter()))
                assert out.shape == (1536, 1536)
            except BaseException as e:  # reported below
                errors.append(e)

        a = threading.Thread(target=thread_a)
        a.start()
        seen = State.COLD
        while a.is_alive():
            seen = m.status().state
            if seen is not State.COLD:
                break
        b0 = time.perf_counter()
        out = m.remove_bg(small, output="mask")
        b1 = time.perf_counter()
        a.join(60)
        assert not errors, errors
        assert seen in (State.LOADING, State.WARMING), seen
        assert out.shape == (64, 64)
        (a0, a1), = span_a
        assert max(a0, b0) < min(a1, b1), f"A {a0:.4f}..{a1:.4f}, B {b0:.4f}..{b1:.4f}"
        assert m.status().images_processed == 2


def test_concurrent_calls_give_the_right_pixels(red):
    images = [rng_image(32, 32, seed=20 + i) for i in range(4)]
    results = {}

    def work(i):
        results[i] = [red.remove_bg(images[i], output="mask") for _ in range(5)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, outs in results.items():
        for out in outs:
            np.testing.assert_array_equal(out, images[i][..., 0])
    assert len(results) == 4


def test_gil_released_during_warmup():
    """The main thread sees LOADING or WARMING while another thread is inside
    pm_warmup: it could not run at all between those states if the GIL were held."""
    with Matte(SLOW96, device="cpu", tune={"warmup_min_runs": 4, "warmup_max_runs": 4}) as m:
        done = threading.Event()
        result = []
        t = threading.Thread(target=lambda: (result.append(m.warmup()), done.set()))
        t.start()
        seen = set()
        while not done.is_set():
            seen.add(m.status().state)
        t.join()
        assert result[0].state is State.READY
        assert seen & {State.LOADING, State.WARMING}, seen


def test_close_waits_for_calls_in_flight():
    m = Matte(SLOW96, device="cpu", tune={"warmup_min_runs": 2, "warmup_max_runs": 2})
    result = []
    t = threading.Thread(target=lambda: result.append(m.warmup()))
    t.start()
    while m.status().state is State.COLD and t.is_alive():
        pass
    m.close()  # waits for the warm-up above before pm_close
    t.join()
    assert m.closed and result and result[0].state is State.READY


def test_max_batch_gathers_concurrent_calls_and_status_counts_passes():
    images = [rng_image(32, 32, seed=s) for s in range(6)]  # red32's input size: no resampling
    with Matte(RED32, device="cpu", cpu_threads=1, max_batch=3, tune={"batch_wait_us": 100_000}) as m:
        m.warmup()
        assert m.status().max_batch == 3 and m.status().forward_passes == 0
        barrier = threading.Barrier(len(images))
        outs = [None] * len(images)

        def one(i):
            barrier.wait()
            outs[i] = m.remove_bg(images[i], output="mask")

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(images))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for img, mask in zip(images, outs):  # each caller gets its own image's matte
            np.testing.assert_array_equal(mask, img[..., 0])
        st = m.status()
        assert st.images_processed == len(images)
        assert 2 <= st.forward_passes < len(images)  # at most 3 images a pass


def test_freeze_folds_batchnorm_keeps_the_matte_and_shows_in_status():
    conv_bn = MODELS / "conv_bn.pt"
    img = rng_image(32, 32)
    mattes = {}
    for freeze in (False, True):
        with Matte(conv_bn, device="cpu", cpu_threads=1, tune={"freeze": int(freeze)}) as m:
            m.warmup()
            assert m.status().frozen is freeze
            assert m.tune_get("freeze") == int(freeze)
            mattes[freeze] = m.remove_bg(img, output="mask")
    a = mattes[False].astype(np.int16)
    b = mattes[True].astype(np.int16)
    assert a.max() - a.min() >= 20 and np.abs(a - b).max() <= 1
    with Matte(MODELS / "picks_by_name.pt", device="cpu", tune={"freeze": 1}) as m:
        with pytest.raises(petmatte.UnsupportedError, match="cannot freeze"):
            m.warmup()


@pytest.mark.parametrize("key,value", [
    ("device_cache_mb", -2), ("device_cache_mb", 1048577), ("freeze", 2), ("forward_streams", 0),
    ("forward_streams", 9), ("batch_wait_us", -1), ("batch_wait_us", 100_001),
    ("warmup_tolerance_pct", 0), ("warmup_max_runs", 0), ("warmup_min_runs", 1001),
    ("cuda_graph", -2)])
def test_tune_values_out_of_range_are_invalid_argument_from_the_library(key, value):
    with pytest.raises(petmatte.InvalidArgumentError, match=key) as ei:
        Matte(RED32, device="cpu", tune={key: value})
    assert ei.value.code is ErrorCode.INVALID_ARGUMENT
    with Matte(RED32, device="cpu") as m:  # the same through tune_set; the value stays
        before = m.tune_get(key)
        with pytest.raises(petmatte.InvalidArgumentError, match=key):
            m.tune_set(key, value)
        assert m.tune_get(key) == before


def test_tune_values_the_binding_cannot_pass_are_refused_before_the_library():
    with pytest.raises(TypeError, match="cuda_graph"):
        Matte(RED32, device="cpu", tune={"cuda_graph": "off"})
    with pytest.raises(ValueError, match="does not fit a C int"):
        Matte(RED32, device="cpu", tune={"batch_wait_us": 2 ** 31})
    with pytest.raises(TypeError, match="mapping"):
        Matte(RED32, device="cpu", tune=[("cuda_graph", 0)])


def test_forward_streams_beside_batching_or_without_graphs_fails_warmup():
    for max_batch, tune, says in ((2, {"forward_streams": 2}, "choose one"),
                                  (1, {"forward_streams": 2, "cuda_graph": 0}, "CUDA graphs")):
        with Matte(RED32, device="cpu", max_batch=max_batch, tune=tune) as m:
            with pytest.raises(petmatte.InvalidArgumentError, match=says):
                m.warmup()
            assert m.status().state is State.FAILED
            m.tune_set("forward_streams", 1)  # a FAILED context takes tuning again
            assert m.warmup().state is State.READY


def test_warmup_max_runs_caps_min_runs():
    with Matte(RED32, device="cpu", tune={"warmup_min_runs": 5, "warmup_max_runs": 2}) as m:
        assert m.warmup().warmup_runs == 2


def test_forward_streams_status_shows_one_stream_on_the_cpu():
    with Matte(RED32, device="cpu", cpu_threads=1, tune={"forward_streams": 4}) as m:
        assert m.status().forward_streams == 0  # until ready
        assert m.warmup().forward_streams == 1
        img = rng_image(32, 32)
        np.testing.assert_array_equal(m.remove_bg(img, output="mask"), img[..., 0])


def test_max_batch_out_of_range_is_invalid_argument():
    for max_batch in (0, 65, -1):
        with pytest.raises(petmatte.InvalidArgumentError, match="max_batch"):
            Matte(RED32, device="cpu", max_batch=max_batch)
    with Matte(RED32, device="cpu") as m:
        assert m.warmup().max_batch == 1  # the default: no batching


# ------------------------------------------------------------------ tuning


def test_tune_defaults_before_warmup_then_resolved_once_ready():
    with Matte(RED32, device="cpu", cpu_threads=1) as m:
        assert {k: m.tune_get(k) for k in petmatte.TUNE_KEYS} == {
            "warmup_min_runs": 0, "warmup_max_runs": 20, "warmup_tolerance_pct": 15,
            "cuda_graph": -1, "channels_last": -1, "jit_optimize": -1, "freeze": -1,
            "batch_wait_us": 0, "device_cache_mb": -1, "forward_streams": -1}
        m.warmup()
        ready = {k: m.tune_get(k) for k in petmatte.TUNE_KEYS}
        assert -1 not in ready.values(), ready  # auto resolved
        # The CPU's choices the header documents: no graph, contiguous, plain, unfrozen.
        assert (ready["cuda_graph"], ready["channels_last"], ready["jit_optimize"],
                ready["freeze"]) == (0, 0, 0, 0)
        assert ready["forward_streams"] == m.status().forward_streams == 1


def test_tune_sets_keys_and_tune_get_reads_them_back():
    tune = {"warmup_min_runs": 2, "warmup_max_runs": 3, "warmup_tolerance_pct": 40,
            "cuda_graph": 0, "channels_last": 1, "jit_optimize": 0, "freeze": 0,
            "batch_wait_us": 250, "device_cache_mb": 64, "forward_streams": 1}
    assert set(tune) == set(petmatte.TUNE_KEYS)
    with Matte(RED32, device="cpu", cpu_threads=1, tune=tune) as m:
        assert {k: m.tune_get(k) for k in tune} == tune
        m.tune_set("warmup_max_runs", 4)
        m.tune_set("channels_last", False)  # a bool is its int
        assert (m.tune_get("warmup_max_runs"), m.tune_get("channels_last")) == (4, 0)
        s = m.warmup()
        assert 2 <= s.warmup_runs <= 4  # the library used the keys
        assert m.tune_get("warmup_min_runs") == 2 and m.tune_get("cuda_graph") == 0
        img = rng_image(32, 32)
        np.testing.assert_array_equal(m.remove_bg(img, output="mask"), img[..., 0])


def test_unknown_tune_key_raises_value_error_naming_the_valid_keys():
    for bad in ("cuda_graphs", "CUDA_GRAPH", "warmup_tolerance", ""):
        with pytest.raises(ValueError) as ei:
            Matte(RED32, device="cpu", tune={"warmup_min_runs": 1, bad: 0})
        assert not isinstance(ei.value, petmatte.PetmatteError)  # the binding's check
        assert repr(bad) in str(ei.value)
        assert all(k in str(ei.value) for k in petmatte.TUNE_KEYS)
    with Matte(RED32, device="cpu") as m:
        with pytest.raises(ValueError, match="forward_streams"):
            m.tune_get("streams")
        with pytest.raises(ValueError, match="cuda_graph"):
            m.tune_set("graph", 0)


def test_tune_once_warm_raises_state_error():
    with Matte(RED32, device="cpu", tune={"cuda_graph": 0}) as m:
        m.warmup()
        with pytest.raises(petmatte.StateError) as ei:
            m.tune_set("cuda_graph", 1)
        assert ei.value.code is ErrorCode.STATE and int(ei.value.code) == 13
        assert ei.value.message
        assert m.tune_get("cuda_graph") == 0  # unchanged, and the context still works
        assert m.status().state is State.READY
        img = rng_image(32, 32)
        np.testing.assert_array_equal(m.remove_bg(img, output="mask"), img[..., 0])


def test_tune_while_warming_raises_state_error():
    with Matte(SLOW96, device="cpu", tune={"warmup_min_runs": 20, "warmup_max_runs": 20}) as m:
        m.warmup(background=True)
        while m.status().state is State.COLD:
            time.sleep(0.001)
        with pytest.raises(petmatte.StateError):
            m.tune_set("warmup_max_runs", 25)
        assert m.warmup().state is State.READY and m.status().warmup_runs == 20


def test_graph_safe_is_unknown_until_loaded_then_found_for_every_model():
    # red32 only slices its input: no value decides its control flow. throws_on_flat
    # raises when the image is flat: a value-dependent raise a CUDA graph would skip.
    for name, safe in (("red32.pt", 1), ("throws_on_flat.pt", 0)):
        with Matte(MODELS / name, device="cpu") as m:
            assert m.status().graph_safe == -1
            s = m.warmup()
            assert s.graph_safe == safe, name
            assert not s.cuda_graph  # the CPU never captures
