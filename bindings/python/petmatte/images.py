"""Images in and out of pm_remove_bg: numpy arrays, PIL images, encoded bytes and
paths become a pm_image; a pm_output becomes an array, a PIL image or PNG bytes.

numpy and Pillow are imported only when an array or PIL image is passed or asked for.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import TYPE_CHECKING, Any, List, Sequence, Tuple, Union

from . import _native
from ._native import Library, PmImage, PmOutput
from .errors import ErrorCode, make_error

if TYPE_CHECKING:  # only for annotations: neither is required at run time
    import numpy
    import PIL.Image

__all__ = ["Color", "ENCODED_FORMATS", "FORMATS", "ImageInput", "convert_output", "make_input", "parse_color"]

PathLike = Union[str, "os.PathLike[str]"]
ImageInput = Union[bytes, bytearray, memoryview, PathLike, "numpy.ndarray", "PIL.Image.Image"]
Color = Union[str, int, Sequence[int]]

# What remove_bg can return.
FORMATS = ("array", "png", "pil", "webp", "webp-lossless")
# The formats returned as the encoded file's bytes, by their pm_encoding.
ENCODED_FORMATS = {"png": _native.ENCODING_PNG, "webp": _native.ENCODING_WEBP,
                   "webp-lossless": _native.ENCODING_WEBP_LOSSLESS}
# pm_pixel_format of an output -> (channels, PIL mode)
_OUT_PIXELS = {_native.FORMAT_RGBA: (4, "RGBA"), _native.FORMAT_RGB: (3, "RGB"),
               _native.FORMAT_GRAY: (1, "L")}

_NAMED_COLORS = {
    "white": 0xFFFFFF,
    "black": 0x000000,
    "red": 0xFF0000,
    "green": 0x00FF00,
    "blue": 0x0000FF,
    "gray": 0x808080,
    "grey": 0x808080,
}


def parse_color(color: Color, what: str = "background") -> int:
    """0xRRGGBB from ``(r, g, b)``, ``"#rrggbb"``, ``"#rgb"``, a name
    (white, black, red, green, blue, gray/grey) or an int 0xRRGGBB."""
    if isinstance(color, bool):
        raise TypeError(f"{what} must be a colour, not a bool")
    if isinstance(color, int):
        if not 0 <= color <= 0xFFFFFF:
            raise ValueError(f"{what} {color:#x} is not 0xRRGGBB")
        return color
    if isinstance(color, str):
        s = color.strip().lower()
        if s in _NAMED_COLORS:
            return _NAMED_COLORS[s]
        h = s[1:] if s.startswith("#") else s
        if len(h) == 3:
            h = "".join(ch * 2 for ch in h)
        if len(h) == 6:
            try:
                return int(h, 16)
            except ValueError:
                pass
        raise ValueError(f"{what} {color!r} is not #rrggbb, #rgb or one of {sorted(_NAMED_COLORS)}")
    try:
        r, g, b = (int(v) for v in color)
    except (TypeError, ValueError):
        raise TypeError(f"{what} {color!r} is not (r, g, b), '#rrggbb' or 0xRRGGBB") from None
    if not all(0 <= v <= 255 for v in (r, g, b)):
        raise ValueError(f"{what} {tuple(color)!r}: components must be 0..255")
    return (r << 16) | (g << 8) | b


def need_numpy() -> Any:
    try:
        import numpy
    except ImportError as e:
        raise ImportError("format='array' needs numpy; install numpy or use format='png'") from e
    return numpy


def need_pil() -> Any:
    try:
        import PIL.Image
    except ImportError as e:
        raise ImportError("format='pil' needs Pillow; install Pillow or use format='png'") from e
    return PIL.Image


def _buffer_address(buf: Any, keep: List[Any]) -> Tuple[int, int]:
    """(address, size) of a bytes-like object's memory, without copying when it can."""
    if isinstance(buf, bytes):
        keep.append(buf)
        return (ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0, len(buf))
    mv = memoryview(buf)
    if not mv.c_contiguous:
        data = mv.tobytes()
        return _buffer_address(data, keep)
    mv = mv.cast("B")
    n = mv.nbytes
    if n == 0:
        return (0, 0)
    if mv.readonly:
        return _buffer_address(mv.tobytes(), keep)
    arr = (ctypes.c_ubyte * n).from_buffer(mv)
    keep.append(arr)
    keep.append(mv)
    return (ctypes.addressof(arr), n)


def make_input(lib: Library, image: Any, *, apply_exif: bool, bgr: bool) -> Tuple[PmImage, List[Any]]:
    """A pm_image for any input remove_bg takes, and the objects that own the memory it
    points at: keep that list alive until pm_remove_bg returns."""
    img = lib.new_image()
    keep: List[Any] = []

    np = sys.modules.get("numpy")
    if np is not None and isinstance(image, np.ndarray):
        return _array_input(np, img, image, bgr, keep)
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(image, pil.Image):
        return _pil_input(img, image, apply_exif, keep)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            image = f.read()
    if isinstance(image, (bytes, bytearray, memoryview)) or hasattr(image, "__buffer__"):
        addr, size = _buffer_address(image, keep)
        img.format = _native.FORMAT_ENCODED
        img.data = addr
        img.size = size
        return img, keep
    try:
        addr, size = _buffer_address(image, keep)  # any other buffer (mmap, array.array)
    except TypeError:
        raise TypeError(
            f"remove_bg: cannot use a {type(image).__name__}: pass bytes, a path, a numpy "
            f"uint8 array (H, W, 3|4) or a PIL image") from None
    img.format = _native.FORMAT_ENCODED
    img.data = addr
    img.size = size
    return img, keep


def _array_input(np: Any, img: PmImage, arr: Any, bgr: bool, keep: List[Any]) -> Tuple[PmImage, List[Any]]:
    if arr.dtype != np.uint8:
        raise TypeError(f"remove_bg: array dtype is {arr.dtype}, need uint8")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:  # grey: the library takes RGB(A) input
        arr = np.repeat(arr[:, :, None], 3, axis=2)
        bgr = False
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"remove_bg: array shape is {arr.shape}, need (H, W, 3), (H, W, 4) "
                         f"or (H, W)")
    h, w, c = arr.shape
    s0, s1, s2 = arr.strides
    # The library takes rows `stride` bytes apart with packed pixels inside a row.
    if not (s2 == 1 and s1 == c and s0 >= w * c) or h == 0 or w == 0:
        arr = np.ascontiguousarray(arr)
    keep.append(arr)
    stride = arr.strides[0] if h > 0 else w * c
    img.format = {(3, False): _native.FORMAT_RGB, (4, False): _native.FORMAT_RGBA,
                  (3, True): _native.FORMAT_BGR, (4, True): _native.FORMAT_BGRA}[(c, bool(bgr))]
    img.data = arr.ctypes.data if arr.size else None
    img.size = stride * (h - 1) + w * c if h > 0 else 0
    img.width = w
    img.height = h
    img.stride = stride
    return img, keep


def _pil_input(img: PmImage, im: Any, apply_exif: bool, keep: List[Any]) -> Tuple[PmImage, List[Any]]:
    if apply_exif:
        from PIL import ImageOps

        im = ImageOps.exif_transpose(im)
    if im.mode not in ("RGB", "RGBA"):
        has_alpha = im.mode in ("LA", "PA", "RGBa", "La") or (
            im.mode == "P" and "transparency" in im.info)
        im = im.convert("RGBA" if has_alpha else "RGB")
    data = im.tobytes()
    keep.append(data)
    img.format = _native.FORMAT_RGBA if im.mode == "RGBA" else _native.FORMAT_RGB
    img.data = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
    img.size = len(data)
    img.width, img.height = im.size
    img.stride = 0
    return img, keep


def convert_output(o: PmOutput, format: str) -> Any:
    """A pm_output as ``format`` asks ("array", "pil", or the bytes of a "png", "webp" or
    "webp-lossless" file), copied out so that the result outlives pm_output_free."""
    if not o.data or o.size == 0:
        raise make_error(ErrorCode.INTERNAL, "pm_remove_bg returned an empty output")
    if format in ENCODED_FORMATS:
        return ctypes.string_at(o.data, o.size)
    try:
        channels, mode = _OUT_PIXELS[o.format]
    except KeyError:
        raise make_error(ErrorCode.INTERNAL, f"unexpected output pixel format {o.format}") from None
    w, h = o.width, o.height
    stride = o.stride or w * channels
    if o.size < stride * (h - 1) + w * channels:
        raise make_error(ErrorCode.INTERNAL,
                         f"output of {o.size} bytes is too small for {w}x{h}x{channels}, stride {stride}")
    if format == "pil":
        Image = need_pil()
        return Image.frombytes(mode, (w, h), ctypes.string_at(o.data, o.size), "raw", mode, stride, 1)
    np = need_numpy()
    buf = (ctypes.c_ubyte * o.size).from_address(ctypes.addressof(o.data.contents))
    flat = np.frombuffer(buf, dtype=np.uint8)
    shape = (h, w) if channels == 1 else (h, w, channels)
    strides = (stride, 1) if channels == 1 else (stride, channels, 1)
    # Copy out before pm_output_free; the result owns its memory.
    return np.lib.stride_tricks.as_strided(flat, shape=shape, strides=strides).copy()
