"""The Python face of libpetmatte: Matte, Status and the enums."""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import os
import sys
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, Union

from . import _native
from ._native import Library, PmImage, PmOutput, load_library
from .errors import DefaultModelNotFound, ErrorCode, PetmatteError, make_error

if TYPE_CHECKING:  # only for annotations: neither is required at run time
    import numpy
    import PIL.Image

__all__ = [
    "DEFAULT_MODEL_NAME",
    "MODEL_ENV",
    "Matte",
    "Precision",
    "State",
    "Status",
    "cuda_device_count",
    "default_model_path",
    "library_version",
    "parse_color",
]

DEFAULT_MODEL_NAME = "isnet-general.pt"
MODEL_ENV = "PETMATTE_MODEL"

PathLike = Union[str, "os.PathLike[str]"]
ImageInput = Union[bytes, bytearray, memoryview, PathLike, "numpy.ndarray", "PIL.Image.Image"]
Color = Union[str, int, Sequence[int]]


class State(enum.IntEnum):
    """pm_state: where a context is in its life."""

    COLD = 0  # opened, nothing loaded
    LOADING = 1  # reading the model onto the device
    WARMING = 2  # running warm-up inferences
    READY = 3
    FAILED = 4  # the last warm-up failed: see Status.last_error


class Precision(enum.IntEnum):
    """pm_precision."""

    AUTO = 0  # fp16 on CUDA, fp32 on CPU
    FP32 = 1
    FP16 = 2
    BF16 = 3


@dataclasses.dataclass(frozen=True)
class Status:
    """A snapshot of a context (pm_status). Times are milliseconds."""

    state: State
    progress: float  # 0..1 through loading and warming; 1 when READY
    open_ms: float
    load_ms: float  # 0 until loaded
    warmup_ms: float  # 0 until READY
    warmup_runs: int
    last_warmup_run_ms: float
    ready_unix: float  # seconds since the epoch when it became READY; 0 before
    device: str  # e.g. "cpu" or "cuda:0 NVIDIA H100 80GB HBM3"
    precision: Precision  # resolved from AUTO once loading starts
    model_name: str
    input_width: int  # 0 until loaded
    input_height: int
    random_weights: bool
    images_processed: int
    device_memory_bytes: int
    last_error_code: Union[ErrorCode, int]  # the context's most recent failure; OK if none
    last_error: str  # its message, "" if none
    cuda_graph: bool  # inferences replay a captured CUDA graph
    max_batch: int  # images one forward pass may serve (1 = no batching); 0 until ready
    forward_passes: int  # forward passes for remove_bg calls since ready
    frozen: bool  # the model runs frozen (BatchNorm folded; see Matte's freeze)
    forward_streams: int  # streams forward passes run on at once (1 = one at a time); 0 until ready

    @property
    def ready(self) -> bool:
        return self.state == State.READY

    @property
    def input_size(self) -> Tuple[int, int]:
        """(width, height) of the model input; (0, 0) until loaded."""
        return (self.input_width, self.input_height)

    @property
    def state_name(self) -> str:
        """"cold", "loading", "warming", "ready" or "failed" (pm_state_name)."""
        return self.state.name.lower() if isinstance(self.state, State) else f"state {self.state}"

    @property
    def error(self) -> Optional[PetmatteError]:
        """The context's most recent failure as an exception object, or None."""
        if not self.last_error_code:
            return None
        return make_error(self.last_error_code, self.last_error)


def _enum_or_int(cls: Any, value: int) -> Any:
    try:
        return cls(value)
    except ValueError:  # a value newer than this binding
        return int(value)


def _status_from_c(s: _native.PmStatus) -> Status:
    def text(raw: bytes) -> str:
        return raw.decode("utf-8", "replace")

    return Status(
        state=_enum_or_int(State, s.state),
        progress=s.progress,
        open_ms=s.open_ms,
        load_ms=s.load_ms,
        warmup_ms=s.warmup_ms,
        warmup_runs=s.warmup_runs,
        last_warmup_run_ms=s.last_warmup_run_ms,
        ready_unix=s.ready_unix,
        device=text(s.device),
        precision=_enum_or_int(Precision, s.precision),
        model_name=text(s.model_name),
        input_width=s.input_width,
        input_height=s.input_height,
        random_weights=bool(s.random_weights),
        images_processed=s.images_processed,
        device_memory_bytes=s.device_memory_bytes,
        last_error_code=_enum_or_int(ErrorCode, s.last_error_code),
        last_error=text(s.last_error),
        cuda_graph=bool(s.cuda_graph),
        max_batch=s.max_batch,
        forward_passes=s.forward_passes,
        frozen=bool(s.frozen),
        forward_streams=s.forward_streams,
    )


# ------------------------------------------------------------- helpers


_NAMED_COLORS = {
    "white": 0xFFFFFF,
    "black": 0x000000,
    "red": 0xFF0000,
    "green": 0x00FF00,
    "blue": 0x0000FF,
    "gray": 0x808080,
    "grey": 0x808080,
}


def parse_color(color: Color) -> int:
    """0xRRGGBB from ``(r, g, b)``, ``"#rrggbb"``, ``"#rgb"``, a name
    (white, black, red, green, blue, gray/grey) or an int 0xRRGGBB."""
    if isinstance(color, bool):
        raise TypeError("background must be a colour, not a bool")
    if isinstance(color, int):
        if not 0 <= color <= 0xFFFFFF:
            raise ValueError(f"background {color:#x} is not 0xRRGGBB")
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
        raise ValueError(f"background {color!r} is not #rrggbb, #rgb or one of {sorted(_NAMED_COLORS)}")
    try:
        r, g, b = (int(v) for v in color)
    except (TypeError, ValueError):
        raise TypeError(f"background {color!r} is not (r, g, b), '#rrggbb' or 0xRRGGBB") from None
    if not all(0 <= v <= 255 for v in (r, g, b)):
        raise ValueError(f"background {tuple(color)!r}: components must be 0..255")
    return (r << 16) | (g << 8) | b


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
    """pm_version() of the loaded library, e.g. "0.1.0"."""
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
            "composite": _native.OUTPUT_COMPOSITE}
_FORMATS = ("array", "png", "pil")
# pm_pixel_format of an output -> (channels, PIL mode)
_OUT_PIXELS = {_native.FORMAT_RGBA: (4, "RGBA"), _native.FORMAT_RGB: (3, "RGB"),
               _native.FORMAT_GRAY: (1, "L")}


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


def _need_numpy():
    try:
        import numpy
    except ImportError as e:
        raise ImportError("format='array' needs numpy; install numpy or use format='png'") from e
    return numpy


def _need_pil():
    try:
        import PIL.Image
    except ImportError as e:
        raise ImportError("format='pil' needs Pillow; install Pillow or use format='png'") from e
    return PIL.Image


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
        cpu_threads: torch intra-op threads on CPU; None or 0 = torch's setting.
        warmup_min_runs, warmup_max_runs, warmup_tolerance: warm-up inferences
            always run / at most run, and the stability tolerance (defaults: min
            auto = what the device needs: 3 on CUDA, 1 on the CPU, more with
            jit_optimize; max 20; 0.15).
        cuda_graph, channels_last, jit_optimize, freeze: True / False, or None for
            the library's per-device choice (pm_params' -1 = auto). freeze: the
            model frozen in warm-up (weights as constants, BatchNorm folded into
            the convolutions); auto = off (it costs warm-up time).
        max_batch: concurrent calls gathered into one forward pass, at most
            (1..64); None = auto (1: no batching).
        batch_wait_us: how long a pass may wait for its batch to fill (0..100000
            microseconds); None = 0, never.
        device_cache_mb: CUDA memory the allocator may keep cached beyond the
            warm footprint after a call larger than the model input (0..1048576
            MiB); None = auto (4096).
        forward_streams: CUDA, one image a pass: concurrent calls' forward
            passes run on up to this many streams at once, each replaying its own
            CUDA graph (1..8); None = auto (the manifest's gpu.forward_streams,
            else 1). Not together with max_batch > 1.
        lib_path: the libpetmatte shared library to use (see load_library).

        Every None means the library's default (pm_params_init). The binding
        rejects ints that do not fit the C field (TypeError / ValueError); the
        library validates the ranges (InvalidArgumentError).

    Raises:
        PetmatteError: a subclass per pm_code, e.g. ModelIOError for a missing
            model file or InvalidArgumentError for a bad device string.
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
        warmup_min_runs: Optional[int] = None,
        warmup_max_runs: Optional[int] = None,
        warmup_tolerance: Optional[float] = None,
        cuda_graph: Optional[bool] = None,
        channels_last: Optional[bool] = None,
        jit_optimize: Optional[bool] = None,
        max_batch: Optional[int] = None,
        batch_wait_us: Optional[int] = None,
        freeze: Optional[bool] = None,
        device_cache_mb: Optional[int] = None,
        forward_streams: Optional[int] = None,
        lib_path: Optional[PathLike] = None,
    ) -> None:
        self._ctx: Optional[int] = None
        self._lib: Library = load_library(lib_path)
        path = default_model_path() if model is None else Path(os.fspath(model))
        self.model_path: Path = path
        if not isinstance(device, str):
            raise TypeError(f"device must be a str such as 'auto', 'cpu' or 'cuda:0', not {device!r}")
        self.device_request: str = device

        lib = self._lib
        params = lib.new_params()  # the library's defaults for every field
        params.model_path = os.fsencode(path)  # the struct keeps the bytes alive
        params.device = device.encode("utf-8")
        params.precision = _precision(precision)
        for name, value in (("input_size", input_size), ("cpu_threads", cpu_threads),
                            ("warmup_min_runs", warmup_min_runs),
                            ("warmup_max_runs", warmup_max_runs), ("max_batch", max_batch),
                            ("batch_wait_us", batch_wait_us), ("device_cache_mb", device_cache_mb),
                            ("forward_streams", forward_streams)):
            if value is not None:
                setattr(params, name, _c_int(name, value))
        for name, value in (("max_pixels", max_pixels), ("max_encoded_bytes", max_encoded_bytes)):
            if value is not None:
                setattr(params, name, _c_uint64(name, value))
        if warmup_tolerance is not None:
            params.warmup_tolerance = float(warmup_tolerance)
        for name, value in (("cuda_graph", cuda_graph), ("channels_last", channels_last),
                            ("jit_optimize", jit_optimize), ("freeze", freeze)):
            params_value = -1 if value is None else int(bool(value))  # -1 = auto
            setattr(params, name, params_value)
        ctx = _native.ctx_p()
        rc = lib.pm_open(ctypes.byref(params), ctypes.byref(ctx))
        if rc:
            raise make_error(rc, lib.errmsg(None))
        self._ctx = ctx.value
        # Calls in flight; close() waits for them (pm_close requires no other caller).
        self._cond = threading.Condition()
        self._active = 0
        self._finalizer = weakref.finalize(self, lib.pm_close, ctx.value)

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
        """A non-blocking snapshot (pm_get_status); never waits for a warm-up."""
        ctx = self._enter()
        try:
            return self._status(ctx)
        finally:
            self._leave()

    def _status(self, ctx: int) -> Status:
        s = self._lib.new_status()
        rc = self._lib.pm_get_status(ctx, ctypes.byref(s))
        if rc:
            self._raise(rc, ctx)
        return _status_from_c(s)

    # ---------------------------------------------------------- remove_bg

    def remove_bg(
        self,
        image: ImageInput,
        *,
        output: Optional[str] = None,
        format: Optional[str] = None,
        background: Optional[Color] = None,
        threshold: Optional[float] = None,
        invert: bool = False,
        apply_exif: bool = True,
        keep_input_alpha: bool = True,
        clean_edges: bool = False,
        bgr: bool = False,
    ) -> Any:
        """Removes the background of one image (pm_remove_bg).

        Args:
            image: encoded bytes (bytes/bytearray/memoryview: JPEG, PNG, BMP, GIF...),
                a file path (str or PathLike: its bytes are read), a numpy uint8 array
                of shape (H, W, 3) or (H, W, 4) (RGB/RGBA; (H, W) grey is expanded to
                RGB) with any strides, or a PIL image.
            output: "rgba" (the image with alpha = matte), "mask" (the matte alone) or
                "composite" (the subject over ``background``). Default "rgba", or
                "composite" when ``background`` is given.
            format: "array" (numpy uint8: (H, W, 4) for rgba, (H, W) for mask,
                (H, W, 3) for composite), "png" (PNG file bytes) or "pil" (PIL.Image in
                mode RGBA, L or RGB). Default: "pil" for a PIL image input, else "array".
            background: composite colour: (r, g, b), "#rrggbb", a name, or 0xRRGGBB;
                default white.
            threshold: None for a soft matte; 0..1: alpha = 255 where matte >= t, else 0.
            invert: alpha = 255 - matte (after the threshold).
            apply_exif: rotate JPEG bytes upright by their EXIF orientation; for a PIL
                image, PIL.ImageOps.exif_transpose is applied (raw pixels carry no EXIF).
            keep_input_alpha: multiply the matte by the input's own alpha.
            clean_edges: re-estimate colours at soft edges (rgba and composite).
            bgr: a numpy array is in BGR/BGRA channel order (OpenCV).

        Returns:
            What ``format`` asks for; the image is upright (after EXIF orientation).

        Raises:
            DecodeError, LimitError, InvalidArgumentError, ... (PetmatteError
            subclasses carrying the pm_code and the library's message); TypeError or
            ValueError for an input the binding cannot pass; ImportError when the
            requested format needs numpy or Pillow and it is missing.
        """
        if output is None:
            output = "composite" if background is not None else "rgba"
        try:
            kind = _OUTPUTS[output]
        except KeyError:
            raise ValueError(f"output {output!r} is not one of {sorted(_OUTPUTS)}") from None
        if background is not None and kind != _native.OUTPUT_COMPOSITE:
            raise ValueError(f"background is only used with output='composite', not {output!r}")
        if format is None:
            pil = sys.modules.get("PIL.Image")
            format = "pil" if pil is not None and isinstance(image, pil.Image) else "array"
        if format not in _FORMATS:
            raise ValueError(f"format {format!r} is not one of {list(_FORMATS)}")
        if format == "array":
            _need_numpy()
        elif format == "pil":
            _need_pil()

        lib = self._lib
        opts = lib.new_options()
        opts.output = kind
        opts.encoding = _native.ENCODING_PNG if format == "png" else _native.ENCODING_RAW
        if background is not None:
            opts.background_rgb = parse_color(background)
        opts.threshold = -1.0 if threshold is None else float(threshold)
        opts.invert = int(bool(invert))
        opts.apply_exif_orientation = int(bool(apply_exif))
        opts.keep_input_alpha = int(bool(keep_input_alpha))
        opts.clean_edges = int(bool(clean_edges))

        img, keepalive = _make_input(lib, image, apply_exif=apply_exif, bgr=bgr)
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
            return _convert_output(out.contents, format)
        finally:
            lib.pm_output_free(out)


# ----------------------------------------------------------- conversions


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


def _make_input(lib: Library, image: Any, *, apply_exif: bool, bgr: bool) -> Tuple[PmImage, List[Any]]:
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


def _convert_output(o: PmOutput, format: str) -> Any:
    if not o.data or o.size == 0:
        raise make_error(ErrorCode.INTERNAL, "pm_remove_bg returned an empty output")
    if format == "png":
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
        Image = _need_pil()
        return Image.frombytes(mode, (w, h), ctypes.string_at(o.data, o.size), "raw", mode, stride, 1)
    np = _need_numpy()
    buf = (ctypes.c_ubyte * o.size).from_address(ctypes.addressof(o.data.contents))
    flat = np.frombuffer(buf, dtype=np.uint8)
    shape = (h, w) if channels == 1 else (h, w, channels)
    strides = (stride, 1) if channels == 1 else (stride, channels, 1)
    # Copy out before pm_output_free; the result owns its memory.
    return np.lib.stride_tricks.as_strided(flat, shape=shape, strides=strides).copy()
