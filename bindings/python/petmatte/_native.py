"""ctypes declarations of libpetmatte's C API (include/petmatte.h) and library lookup.

Everything here mirrors the header one to one; the idiomatic layer is in _matte.py.
The library is loaded with ctypes.CDLL (not PyDLL), so the GIL is released during
every foreign call and several Python threads can be inside the library at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from .errors import PetmatteLibraryNotFound

# The ABI major version this binding was written against (PETMATTE_VERSION_MAJOR).
ABI_MAJOR = 0

c_size_t = ctypes.c_size_t


# ----------------------------------------------------------------- structs


class PmParams(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("model_path", ctypes.c_char_p),
        ("device", ctypes.c_char_p),
        ("precision", ctypes.c_int),
        ("input_size", ctypes.c_int),
        ("max_pixels", ctypes.c_uint64),
        ("max_encoded_bytes", ctypes.c_uint64),
        ("cpu_threads", ctypes.c_int),
        ("warmup_min_runs", ctypes.c_int),
        ("warmup_max_runs", ctypes.c_int),
        ("warmup_tolerance", ctypes.c_double),
    ]


class PmStatus(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("state", ctypes.c_int),
        ("progress", ctypes.c_double),
        ("open_ms", ctypes.c_double),
        ("load_ms", ctypes.c_double),
        ("warmup_ms", ctypes.c_double),
        ("warmup_runs", ctypes.c_int),
        ("last_warmup_run_ms", ctypes.c_double),
        ("ready_unix", ctypes.c_double),
        ("device", ctypes.c_char * 128),
        ("precision", ctypes.c_int),
        ("model_name", ctypes.c_char * 64),
        ("input_width", ctypes.c_int),
        ("input_height", ctypes.c_int),
        ("random_weights", ctypes.c_int),
        ("images_processed", ctypes.c_uint64),
        ("device_memory_bytes", ctypes.c_uint64),
        ("last_error_code", ctypes.c_int),
        ("last_error", ctypes.c_char * 256),
    ]


class PmImage(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("format", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("size", c_size_t),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("stride", c_size_t),
    ]


class PmRemoveOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("output", ctypes.c_int),
        ("encoding", ctypes.c_int),
        ("background_rgb", ctypes.c_uint32),
        ("threshold", ctypes.c_float),
        ("invert", ctypes.c_int),
        ("apply_exif_orientation", ctypes.c_int),
        ("keep_input_alpha", ctypes.c_int),
        ("clean_edges", ctypes.c_int),
    ]


class PmOutput(ctypes.Structure):
    """Allocated by the library; only ever grows at the end, so reading the
    fields we know through a pointer is safe against a newer library."""

    _fields_ = [
        ("encoding", ctypes.c_int),
        ("format", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("stride", c_size_t),
        ("data", ctypes.POINTER(ctypes.c_ubyte)),
        ("size", c_size_t),
    ]


# pm_pixel_format
FORMAT_ENCODED, FORMAT_RGB, FORMAT_RGBA, FORMAT_BGR, FORMAT_BGRA, FORMAT_GRAY = range(6)
# pm_output_kind
OUTPUT_RGBA, OUTPUT_MASK, OUTPUT_COMPOSITE = range(3)
# pm_encoding
ENCODING_RAW, ENCODING_PNG = range(2)

ctx_p = ctypes.c_void_p  # pm_ctx * (opaque)

_PROTOTYPES = {
    # name: (restype, argtypes)
    "pm_strerror": (ctypes.c_char_p, [ctypes.c_int]),
    "pm_version": (ctypes.c_char_p, []),
    "pm_version_number": (ctypes.c_uint, []),
    "pm_params_init_sized": (None, [ctypes.POINTER(PmParams), c_size_t]),
    "pm_open": (ctypes.c_int, [ctypes.POINTER(PmParams), ctypes.POINTER(ctx_p)]),
    "pm_warmup": (ctypes.c_int, [ctx_p]),
    "pm_warmup_start": (ctypes.c_int, [ctx_p]),
    "pm_close": (None, [ctx_p]),
    "pm_errmsg": (ctypes.c_char_p, [ctx_p]),
    "pm_status_init_sized": (None, [ctypes.POINTER(PmStatus), c_size_t]),
    "pm_get_status": (ctypes.c_int, [ctx_p, ctypes.POINTER(PmStatus)]),
    "pm_state_name": (ctypes.c_char_p, [ctypes.c_int]),
    "pm_precision_name": (ctypes.c_char_p, [ctypes.c_int]),
    "pm_image_init_sized": (None, [ctypes.POINTER(PmImage), c_size_t]),
    "pm_remove_options_init_sized": (None, [ctypes.POINTER(PmRemoveOptions), c_size_t]),
    "pm_remove_bg": (
        ctypes.c_int,
        [ctx_p, ctypes.POINTER(PmImage), ctypes.POINTER(PmRemoveOptions),
         ctypes.POINTER(ctypes.POINTER(PmOutput))],
    ),
    "pm_output_free": (None, [ctypes.POINTER(PmOutput)]),
    "pm_cuda_device_count": (ctypes.c_int, [ctypes.POINTER(ctypes.c_int)]),
}


class Library:
    """One loaded copy of libpetmatte with every prototype declared."""

    def __init__(self, cdll: ctypes.CDLL, path: str) -> None:
        self.cdll = cdll
        self.path = path
        missing = []
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        if missing:
            raise PetmatteLibraryNotFound(
                f"{path} is not a usable libpetmatte: missing symbols {', '.join(missing)}",
                tried=[(path, "missing symbols")],
            )
        number = int(self.pm_version_number())
        if number // 10000 != ABI_MAJOR:
            raise PetmatteLibraryNotFound(
                f"{path} is libpetmatte {self.version()}, but this binding needs major version "
                f"{ABI_MAJOR}",
                tried=[(path, "wrong major version")],
            )

    def version(self) -> str:
        return self.pm_version().decode()

    def errmsg(self, ctx: Optional[int]) -> str:
        """pm_errmsg: must be called on the thread whose call just failed."""
        raw = self.pm_errmsg(ctx)
        return raw.decode("utf-8", "replace") if raw else ""

    def strerror(self, code: int) -> str:
        return self.pm_strerror(code).decode()

    # Initialised structs (the *_init() macros of the header).
    def new_params(self) -> PmParams:
        p = PmParams()
        self.pm_params_init_sized(ctypes.byref(p), ctypes.sizeof(p))
        return p

    def new_status(self) -> PmStatus:
        s = PmStatus()
        self.pm_status_init_sized(ctypes.byref(s), ctypes.sizeof(s))
        return s

    def new_image(self) -> PmImage:
        i = PmImage()
        self.pm_image_init_sized(ctypes.byref(i), ctypes.sizeof(i))
        return i

    def new_options(self) -> PmRemoveOptions:
        o = PmRemoveOptions()
        self.pm_remove_options_init_sized(ctypes.byref(o), ctypes.sizeof(o))
        return o


_cache: Dict[str, Library] = {}
_cache_lock = threading.Lock()
_default: Optional[Library] = None


def _source_tree_root() -> Optional[Path]:
    """The libpetmatte checkout this file sits in (bindings/python/petmatte/), if any."""
    try:
        root = Path(__file__).resolve().parents[3]
    except IndexError:
        return None
    return root if (root / "include" / "petmatte.h").is_file() else None


def library_candidates(lib_path: Union[str, os.PathLike, None] = None) -> List[Tuple[str, str]]:
    """(candidate, where it came from) in the order load_library tries them."""
    out: List[Tuple[str, str]] = []
    if lib_path is not None:
        return [(os.fspath(lib_path), "lib_path argument")]
    env = os.environ.get("PETMATTE_LIBRARY")
    if env:
        return [(env, "PETMATTE_LIBRARY")]
    found = ctypes.util.find_library("petmatte")
    if found:
        out.append((found, 'ctypes.util.find_library("petmatte")'))
    for name in ("libpetmatte.so.1", "libpetmatte.so"):
        if name != found:
            out.append((name, "dynamic loader search"))
    root = _source_tree_root()
    if root is not None:
        out.append((str(root / "build" / "lib" / "libpetmatte.so"), "source tree build"))
    return out


def load_library(lib_path: Union[str, os.PathLike, None] = None) -> Library:
    """Loads libpetmatte (cached per path).

    Order: ``lib_path``; else ``$PETMATTE_LIBRARY``; else
    ``ctypes.util.find_library("petmatte")``, ``libpetmatte.so.1`` and
    ``libpetmatte.so`` through the dynamic loader; else the source tree's
    ``build/lib/libpetmatte.so``. An explicit path or the environment variable
    is final: no fallback hides a wrong setting.

    Raises:
        PetmatteLibraryNotFound: listing every candidate and why it failed.
    """
    global _default
    if lib_path is None and _default is not None and not os.environ.get("PETMATTE_LIBRARY"):
        return _default
    tried: List[Tuple[str, str]] = []
    for candidate, origin in library_candidates(lib_path):
        with _cache_lock:
            if candidate in _cache:
                lib = _cache[candidate]
                break
            # A path that is not there gives a clearer message than dlopen's.
            if os.sep in candidate and not os.path.exists(candidate):
                tried.append((candidate, f"{origin}: no such file"))
                continue
            try:
                cdll = ctypes.CDLL(candidate)
            except OSError as e:
                tried.append((candidate, f"{origin}: {e}"))
                continue
            lib = Library(cdll, candidate)
            _cache[candidate] = lib
            break
    else:
        raise PetmatteLibraryNotFound(
            "libpetmatte not found; pass lib_path=..., set PETMATTE_LIBRARY to the .so, or "
            "install it (cmake --install build) so the dynamic loader finds libpetmatte.so.1",
            tried=tried,
        )
    if lib_path is None and not os.environ.get("PETMATTE_LIBRARY"):
        _default = lib
    return lib
