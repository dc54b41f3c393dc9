"""The context: Matte, and the module-level calls that need no context."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import weakref
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from . import _native
from ._native import Library, PmOutput, load_library
from .errors import DefaultModelNotFound, ErrorCode, make_error
from .images import (ENCODED_FORMATS, FORMATS, Color, ImageInput, convert_output, make_input, need_numpy,
                     need_pil, parse_color)
from .status import Precision, Status, status_from_c

__all__ = [
    "DEFAULT_MODEL_NAME",
    "MODEL_ENV",
    "Matte",
    "TUNE_KEYS",
    "cuda_device_count",
    "default_model_path",
    "library_version",
]

# The keys Matte(tune=...), tune_set and tune_get take, in pm_tune order: the names
# pm_tune_name gives.
TUNE_KEYS = tuple(_native.TUNE_KEYS)

DEFAULT_MODEL_NAME = "isnet-general.pt"
MODEL_ENV = "PETMATTE_MODEL"

PathLike = Union[str, "os.PathLike[str]"]


def _source_tree_root() -> Optional[Path]:
    """The libpetmatte checkout this package sits in (bindings/python/petmatte/), if any."""
    parents = Path(__file__).resolve().parents
    if len(parents) < 4:
        return None
    root = parents[3]
    return root if (root / "include" / "petmatte.h").is_file() else None


def default_model_path() -> Path:
    """The model ``Matte(model=None)`` opens.

    1. ``$PETMATTE_MODEL`` when set (used as given: a wrong value is reported by the
       library as ModelIOError, not skipped);
    2. else, when this package runs from the libpetmatte source tree
       (``<root>/bindings/python/petmatte``), ``<root>/models/isnet-general.pt``.

    An installed package outside the source tree has no default: set
    ``PETMATTE_MODEL`` or pass ``model=``.

    Raises:
        DefaultModelNotFound: neither applies, or the source-tree model is missing
            (the message says how to make it).
    """
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    root = _source_tree_root()
    if root is None:
        raise DefaultModelNotFound(
            ErrorCode.IO,
            f"no default model: {MODEL_ENV} is not set and this petmatte package is not "
            f"running from the libpetmatte source tree; set {MODEL_ENV} or pass model=PATH",
            tried=[],
        )
    path = root / "models" / DEFAULT_MODEL_NAME
    if not path.is_file():
        raise DefaultModelNotFound(
            ErrorCode.IO,
            f"no default model: {path} does not exist and {MODEL_ENV} is not set. Make it "
            f"with `/usr/bin/python3 tools/setup_default_model.py` (or `sh scripts/quickstart.sh`) "
            f"in {root}, set {MODEL_ENV}, or pass model=PATH",
            tried=[str(path)],
        )
    return path


def library_version(lib_path: Optional[PathLike] = None) -> str:
    """pm_version() of the loaded library, e.g. "0.2.0"."""
    return load_library(lib_path).version()


def cuda_device_count(lib_path: Optional[PathLike] = None) -> int:
    """CUDA devices this build of libpetmatte can see (0 on CPU-only builds)."""
    lib = load_library(lib_path)
    n = ctypes.c_int(0)
    rc = lib.pm_cuda_device_count(ctypes.byref(n))
    if rc:
        raise make_error(rc, lib.errmsg(None))
    return n.value


_PRECISIONS = {"auto": Precision.AUTO, "fp32": Precision.FP32, "fp16": Precision.FP16,
               "bf16": Precision.BF16}
_OUTPUTS = {"rgba": _native.OUTPUT_RGBA, "mask": _native.OUTPUT_MASK,
            "composite": _native.OUTPUT_COMPOSITE, "overlay": _native.OUTPUT_OVERLAY}


def _c_int(name: str, value: Any) -> int:
    # ctypes would silently wrap an out-of-range int; refuse it instead.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not -(2 ** 31) <= value < 2 ** 31:
        raise ValueError(f"{name} {value} does not fit a C int")
    return value


def _c_uint64(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < 2 ** 64:
        raise ValueError(f"{name} {value} is not in 0..2**64-1")
    return value


def _precision(value: Union[str, int, Precision]) -> int:
    if isinstance(value, str):
        try:
            return int(_PRECISIONS[value.lower()])
        except KeyError:
            raise ValueError(f"precision {value!r} is not one of {sorted(_PRECISIONS)}") from None
    return _c_int("precision", int(value))  # the library rejects an unknown number


def _tune_key(name: Any) -> int:
    """The pm_tune value of a key name."""
    try:
        return _native.TUNE_KEYS[name]
    except (KeyError, TypeError):  # TypeError: an unhashable key
        raise ValueError(f"tune key {name!r} is not one of {', '.join(TUNE_KEYS)}") from None


def _tune_value(name: str, value: Any) -> int:
    # A bool is accepted for the on/off keys: True and False are 1 and 0.
    return _c_int(f"tune {name!r}", int(value) if isinstance(value, bool) else value)


# ---------------------------------------------------------------- Matte


class Matte:
    """One libpetmatte context: a model bound to one device.

    Opening is cheap (it validates the parameters and the model file and touches no
    device); the model is loaded by :meth:`warmup` or by the first :meth:`remove_bg`.
    Use it as a context manager, or call :meth:`close`. One Matte may be shared by
    many threads: calls release the GIL, image decoding/encoding runs in parallel and
    the library serialises the forward passes.

    Args:
        model: TorchScript file; None = :func:`default_model_path`.
        device: "auto" (CUDA 0 when present, else CPU), "cpu", "cuda" or "cuda:N".
        precision: "auto", "fp32", "fp16", "bf16" or a :class:`Precision`.
        input_size: square model input (8..8192) for a model without a manifest;
            None or 0 = the manifest's, else 1024.
        max_pixels: largest accepted image, width*height (default 100e6).
        max_encoded_bytes: largest accepted encoded image (default 256 MiB).
        cpu_threads: torch intra-op threads on CPU; None or 0 = one a physical core.
        max_batch: concurrent calls gathered into one forward pass, at most
            (1..64); 1 (default) = no batching.
        tune: [experimental] how the model runs on its device, by key (pm_tune_set,
            in the mapping's order, right after opening): {"cuda_graph": 0,
            "warmup_min_runs": 3, ...}; the keys are :data:`TUNE_KEYS`, each value
            an int (-1 = auto where the key has one). The library's defaults suit
            most hosts. Cross-key rules (forward_streams > 1 needs max_batch 1 and
            cuda_graph not 0) are checked by :meth:`warmup`.
        lib_path: the libpetmatte shared library to use (see load_library).

        Every None means the library's default (pm_params_init). The binding
        rejects ints that do not fit the C field (TypeError / ValueError); the
        library validates the ranges (InvalidArgumentError).

    Raises:
        PetmatteError: a subclass per pm_code, e.g. ModelIOError for a missing
            model file or InvalidArgumentError for a bad device string or a tune
            value out of its range.
        ValueError: a tune key that is not one of :data:`TUNE_KEYS`.
        PetmatteLibraryNotFound: libpetmatte could not be loaded.
    """

    def __init__(
        self,
        model: Optional[PathLike] = None,
        device: str = "auto",
        precision: Union[str, int, Precision] = "auto",
        input_size: Optional[int] = None,
        *,
        max_pixels: Optional[int] = None,
        max_encoded_bytes: Optional[int] = None,
        cpu_threads: Optional[int] = None,
        max_batch: int = 1,
        tune: Optional[Mapping[str, int]] = None,
        lib_path: Optional[PathLike] = None,
    ) -> None:
        self._ctx: Optional[int] = None
        self._lib: Library = load_library(lib_path)
        path = default_model_path() if model is None else Path(os.fspath(model))
        self.model_path: Path = path
        if not isinstance(device, str):
            raise TypeError(f"device must be a str such as 'auto', 'cpu' or 'cuda:0', not {device!r}")
        self.device_request: str = device
        # Checked before pm_open, so a wrong key leaves no context behind.
        if tune is not None and not isinstance(tune, Mapping):
            raise TypeError(f"tune must be a mapping such as {{'cuda_graph': 0}}, not {type(tune).__name__}")
        settings = [(_tune_key(k), _tune_value(k, v)) for k, v in (tune or {}).items()]

        lib = self._lib
        params = lib.new_params()  # the library's defaults for every field
        params.model_path = os.fsencode(path)  # the struct keeps the bytes alive
        params.device = device.encode("utf-8")
        params.precision = _precision(precision)
        params.max_batch = _c_int("max_batch", max_batch)
        for name, value in (("input_size", input_size), ("cpu_threads", cpu_threads)):
            if value is not None:
                setattr(params, name, _c_int(name, value))
        for name, value in (("max_pixels", max_pixels), ("max_encoded_bytes", max_encoded_bytes)):
            if value is not None:
                setattr(params, name, _c_uint64(name, value))
        ctx = _native.ctx_p()
        rc = lib.pm_open(ctypes.byref(params), ctypes.byref(ctx))
        if rc:
            raise make_error(rc, lib.errmsg(None))
        self._ctx = ctx.value
        # Calls in flight; close() waits for them (pm_close requires no other caller).
        self._cond = threading.Condition()
        self._active = 0
        self._finalizer = weakref.finalize(self, lib.pm_close, ctx.value)
        try:
            for key, value in settings:
                rc = lib.pm_tune_set(ctx.value, key, value)
                if rc:
                    self._raise(rc, ctx.value)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------- lifetime

    def _enter(self) -> int:
        cond = getattr(self, "_cond", None)
        if cond is None:
            raise ValueError("this Matte was never opened")
        with cond:
            if self._ctx is None:
                raise ValueError("operation on a closed Matte")
            self._active += 1
            return self._ctx

    def _leave(self) -> None:
        with self._cond:
            self._active -= 1
            if self._active == 0:
                self._cond.notify_all()

    def _raise(self, rc: int, ctx: int) -> None:
        # pm_errmsg is per thread: read on the thread whose call failed, right away.
        raise make_error(rc, self._lib.errmsg(ctx))

    def close(self) -> None:
        """Frees the context (pm_close). Waits for calls other threads have in
        flight and joins a background warm-up. Idempotent; later calls on this
        Matte raise ValueError."""
        cond = getattr(self, "_cond", None)
        if cond is None:
            return
        with cond:
            if self._ctx is None:
                return
            self._ctx = None  # no new calls from here on
            while self._active:
                cond.wait()
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._ctx is None

    def __enter__(self) -> "Matte":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<petmatte.Matte {str(self.model_path)!r} closed>"
        s = self.status()
        return (f"<petmatte.Matte {str(self.model_path)!r} {s.state_name} "
                f"device={s.device!r}>")

    # ------------------------------------------------------------ warm-up

    def warmup(self, background: bool = False) -> Status:
        """Loads the model onto the device and warms it.

        ``background=False`` (pm_warmup): blocks until READY; a READY context returns
        at once; threads calling it during a warm-up wait for that one. Raises the
        warm-up's error. ``background=True`` (pm_warmup_start): starts the warm-up on a
        library thread and returns at once; watch :meth:`status`, or call
        ``warmup()`` to wait for it. Returns the status after the call.
        """
        ctx = self._enter()
        try:
            fn = self._lib.pm_warmup_start if background else self._lib.pm_warmup
            rc = fn(ctx)
            if rc:
                self._raise(rc, ctx)
            return self._status(ctx)
        finally:
            self._leave()

    def status(self) -> Status:
        """A non-blocking snapshot (pm_status); never waits for a warm-up."""
        ctx = self._enter()
        try:
            return self._status(ctx)
        finally:
            self._leave()

    def _status(self, ctx: int) -> Status:
        s = self._lib.new_status_info()
        rc = self._lib.pm_status(ctx, ctypes.byref(s))
        if rc:
            self._raise(rc, ctx)
        return status_from_c(s)

    # ------------------------------------------------------------- tuning

    def tune_set(self, key: str, value: int) -> None:
        """[experimental] Sets one tuning key (pm_tune_set), as ``tune=`` does.

        Only before warm-up: on a cold or failed context.

        Raises:
            ValueError: ``key`` is not one of :data:`TUNE_KEYS`.
            InvalidArgumentError: ``value`` is outside the key's range.
            StateError: a warm-up is running or the context is ready (PM_ERR_STATE).
        """
        k, v = _tune_key(key), _tune_value(key, value)
        ctx = self._enter()
        try:
            rc = self._lib.pm_tune_set(ctx, k, v)
            if rc:
                self._raise(rc, ctx)
        finally:
            self._leave()

    def tune_get(self, key: str) -> int:
        """A tuning key's value (pm_tune_get): as set, or its default, before the
        context is ready (-1 = auto); once ready, the value in use, auto resolved.

        Raises:
            ValueError: ``key`` is not one of :data:`TUNE_KEYS`.
        """
        k = _tune_key(key)
        out = ctypes.c_int(0)
        ctx = self._enter()
        try:
            rc = self._lib.pm_tune_get(ctx, k, ctypes.byref(out))
            if rc:
                self._raise(rc, ctx)
        finally:
            self._leave()
        return out.value

    # ---------------------------------------------------------- remove_bg

    def remove_bg(
        self,
        image: ImageInput,
        *,
        output: Optional[str] = None,
        format: Optional[str] = None,
        background: Optional[Color] = None,
        background_image: Optional[ImageInput] = None,
        blur_radius: Optional[float] = None,
        overlay_color: Optional[Color] = None,
        overlay_opacity: Optional[float] = None,
        threshold: Optional[float] = None,
        invert: bool = False,
        apply_exif: bool = True,
        keep_input_alpha: bool = True,
        clean_edges: bool = False,
        bgr: bool = False,
        png_level: Optional[int] = None,
        webp_quality: Optional[int] = None,
    ) -> Any:
        """Removes the background of one image (pm_remove_bg).

        Args:
            image: encoded bytes (bytes/bytearray/memoryview: JPEG, PNG, BMP, GIF...),
                a file path (str or PathLike: its bytes are read), a numpy uint8 array
                of shape (H, W, 3) or (H, W, 4) (RGB/RGBA; (H, W) grey is expanded to
                RGB) with any strides, or a PIL image.
            output: "rgba" (the image with alpha = matte), "mask" (the matte alone),
                "composite" (the subject over ``background`` or ``background_image``) or
                "overlay" (the whole photo, its background tinted with ``overlay_color``:
                for reviewing a matte). Default "rgba", or "composite" when
                ``background`` or ``background_image`` is given.
            format: "array" (numpy uint8: (H, W, 4) for rgba, (H, W) for mask,
                (H, W, 3) for composite), "pil" (PIL.Image in mode RGBA, L or RGB), or a
                file's bytes: "png" (exact pixels), "webp-lossless" (every pixel with
                alpha > 0 exact; a mask as gray RGB) or "webp" (lossy at ``webp_quality``,
                alpha exact). Default: "pil" for a PIL image input, else "array".
            background: composite colour: (r, g, b), "#rrggbb", a name, or 0xRRGGBB;
                default white. "blur": the photo itself, blurred (see ``blur_radius``).
            background_image: a picture behind the subject, as ``image`` (bytes, path,
                array, PIL image; the same limits apply), scaled to cover the frame:
                aspect ratio kept, centred, the overhang cropped. Its alpha is ignored.
            blur_radius: with background="blur": the Gaussian's standard deviation in
                pixels, 0..256; None or 0: 1% of the longer side, at least 2.
            overlay_color: the tint of output="overlay", as ``background``; None: #78FF9B.
            overlay_opacity: the tint's weight over the background, 0..1; None: 0.5.
            threshold: None for a soft matte; 0..1: alpha = 255 where matte >= t, else 0.
            invert: alpha = 255 - matte (after the threshold).
            apply_exif: rotate JPEG bytes upright by their EXIF orientation; for a PIL
                image, PIL.ImageOps.exif_transpose is applied (raw pixels carry no EXIF).
            keep_input_alpha: multiply the matte by the input's own alpha.
            clean_edges: re-estimate colours at soft edges (rgba, composite, overlay).
            bgr: a numpy array is in BGR/BGRA channel order (OpenCV).
            png_level: PNG compression effort, 0 (stored) .. 12 (smallest); None: the
                library's default (1, the fastest that compresses).
            webp_quality: quality of format="webp", 0..100; None: 90.

        Returns:
            What ``format`` asks for; the image is upright (after EXIF orientation).

        Raises:
            DecodeError, LimitError, InvalidArgumentError, ... (PetmatteError
            subclasses carrying the pm_code and the library's message); TypeError or
            ValueError for an input the binding cannot pass; ImportError when the
            requested format needs numpy or Pillow and it is missing.
        """
        if output is None:
            output = "composite" if background is not None or background_image is not None else "rgba"
        try:
            kind = _OUTPUTS[output]
        except KeyError:
            raise ValueError(f"output {output!r} is not one of {sorted(_OUTPUTS)}") from None
        if (background is not None or background_image is not None) and kind != _native.OUTPUT_COMPOSITE:
            raise ValueError(f"background and background_image are only used with output='composite', "
                             f"not {output!r}")
        if background is not None and background_image is not None:
            raise ValueError("give background or background_image, not both")
        blur = isinstance(background, str) and background.strip().lower() == "blur"
        if blur_radius is not None and not blur:
            raise ValueError("blur_radius is only used with background='blur'")
        if (overlay_color is not None or overlay_opacity is not None) and kind != _native.OUTPUT_OVERLAY:
            raise ValueError(f"overlay_color and overlay_opacity are only used with output='overlay', "
                             f"not {output!r}")
        if format is None:
            pil = sys.modules.get("PIL.Image")
            format = "pil" if pil is not None and isinstance(image, pil.Image) else "array"
        if format not in FORMATS:
            raise ValueError(f"format {format!r} is not one of {list(FORMATS)}")
        if format == "array":
            need_numpy()
        elif format == "pil":
            need_pil()

        lib = self._lib
        opts = lib.new_options()
        opts.output = kind
        opts.encoding = ENCODED_FORMATS.get(format, _native.ENCODING_RAW)
        if png_level is not None:
            opts.png_level = int(png_level)
        if webp_quality is not None:
            opts.webp_quality = int(webp_quality)
        if blur:
            opts.background = _native.BACKGROUND_BLUR
            opts.blur_radius = 0.0 if blur_radius is None else float(blur_radius)
        elif background is not None:
            opts.background_rgb = parse_color(background)
        if overlay_color is not None:
            opts.overlay_rgb = parse_color(overlay_color, "overlay_color")
        if overlay_opacity is not None:
            opts.overlay_opacity = float(overlay_opacity)
        opts.threshold = -1.0 if threshold is None else float(threshold)
        opts.invert = int(bool(invert))
        opts.apply_exif_orientation = int(bool(apply_exif))
        opts.keep_input_alpha = int(bool(keep_input_alpha))
        opts.clean_edges = int(bool(clean_edges))

        img, keepalive = make_input(lib, image, apply_exif=apply_exif, bgr=bgr)
        if background_image is not None:
            picture, keep_picture = make_input(lib, background_image, apply_exif=apply_exif, bgr=bgr)
            keepalive = [keepalive, picture, keep_picture]
            opts.background = _native.BACKGROUND_IMAGE
            opts.background_image = ctypes.pointer(picture)
        out = ctypes.POINTER(PmOutput)()
        ctx = self._enter()
        try:
            rc = lib.pm_remove_bg(ctx, ctypes.byref(img), ctypes.byref(opts), ctypes.byref(out))
            if rc:
                self._raise(rc, ctx)
        finally:
            self._leave()
            del keepalive
        if not out:
            raise make_error(ErrorCode.INTERNAL, "pm_remove_bg returned PM_OK and no output")
        try:
            return convert_output(out.contents, format)
        finally:
            lib.pm_output_free(out)
