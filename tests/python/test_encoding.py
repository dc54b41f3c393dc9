"""The binding's encoded outputs: PNG at every level and WebP (lossless and lossy),
decoded back with Pillow against the array output of the same call.

Run by ctest with PETMATTE_LIBRARY, PETMATTE_TEST_MODELS and PYTHONPATH=bindings/python
(tests/python.cmake). red32: alpha = the red channel at 32x32.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

LIB = os.environ.get("PETMATTE_LIBRARY")
MODELS = Path(os.environ.get("PETMATTE_TEST_MODELS", "/nonexistent"))
if not LIB or not (MODELS / "red32.pt").is_file():
    pytest.skip("needs PETMATTE_LIBRARY and PETMATTE_TEST_MODELS (run through ctest)",
                allow_module_level=True)

import petmatte  # noqa: E402
from petmatte import _native  # noqa: E402

Image = pytest.importorskip("PIL.Image")


def image():
    y, x = np.mgrid[0:32, 0:32]
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = (x * 8 + y * 3) % 256
    rgb[..., 1] = (x * 5) % 256
    rgb[..., 2] = 255 - y * 5
    return rgb


@pytest.fixture(scope="module")
def matte():
    with petmatte.Matte(MODELS / "red32.pt", device="cpu") as m:
        m.warmup()
        yield m


def decode(data, fmt):
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == fmt
        return np.asarray(im.convert("RGBA"))


def test_options_default_to_the_librarys_encoding_settings():
    o = petmatte.load_library().new_options()
    assert (o.png_level, o.webp_quality) == (-1, 90)


def test_png_levels_decode_to_the_array_output(matte):
    rgb = image()
    want = matte.remove_bg(rgb, format="array")
    for level in (None, 0, 1, 6, 12):
        got = decode(matte.remove_bg(rgb, format="png", png_level=level), "PNG")
        assert np.array_equal(got, want), level


def test_webp_lossless_is_exact_where_visible_and_lossy_keeps_the_alpha(matte):
    rgb = image()
    want = matte.remove_bg(rgb, format="array")
    visible = want[..., 3] > 0
    got = decode(matte.remove_bg(rgb, format="webp-lossless"), "WEBP")
    assert np.array_equal(got[..., 3], want[..., 3])
    assert np.array_equal(got[visible], want[visible])

    lossy = matte.remove_bg(rgb, format="webp")
    got = decode(lossy, "WEBP").astype(int)
    assert np.array_equal(got[..., 3], want[..., 3])
    solid = want[..., 3] >= 128
    assert np.abs(got[..., :3][solid] - want[..., :3][solid]).mean() <= 8
    assert len(matte.remove_bg(rgb, format="webp", webp_quality=5)) < len(lossy)

    mask = matte.remove_bg(rgb, output="mask", format="webp-lossless")
    with Image.open(io.BytesIO(mask)) as im:
        gray = np.asarray(im.convert("RGB"))
    assert all(np.array_equal(gray[..., c], want[..., 3]) for c in range(3))


def test_levels_and_qualities_out_of_range_are_invalid_arguments(matte):
    rgb = image()
    for kw in ({"png_level": 13}, {"png_level": -2}, {"webp_quality": 101}, {"webp_quality": -1}):
        with pytest.raises(petmatte.InvalidArgumentError):
            matte.remove_bg(rgb, format="webp", **kw)
    with pytest.raises(ValueError):
        matte.remove_bg(rgb, format="gif")
    assert _native.ENCODING_WEBP == 3 and _native.ENCODING_WEBP_LOSSLESS == 2
