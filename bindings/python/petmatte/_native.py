"""ctypes declarations of libpetmatte's C API (include/petmatte.h) and library lookup.

Everything here mirrors the header one to one; the idiomatic layer is in _matte.py
(the context), status.py (its snapshot) and images.py (images in and out).
The library is loaded with ctypes.CDLL (not PyDLL), so the GIL is released during
every foreign call and several Python threads can be inside the library at once.

ABI: every struct the caller fills starts with ``struct_size``. The ``new_*`` helpers
call the header's ``*_init_sized`` with ``ctypes.sizeof`` of the structs declared here,
so a later library that appended fields treats this binding as an older caller (its
defaults fill the fields we do not know, and pm_status writes none of them).
pm_output is allocated by the library and only grows at the end, so reading the
fields we know through a pointer is safe.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from typing import Dict, List, Optional, Tuple, Union

from .errors import PetmatteLibraryNotFound

# The ABI major version this binding was written against (PETMATTE_VERSION_MAJOR),
# and the oldest library with every call declared below (0.2.0: pm_status, pm_tune_*).
ABI_MAJOR = 0
MIN_VERSION_NUMBER = 200
# The library's SONAME: what the dynamic loader knows an installed copy by.
SONAME = "libpetmatte.so.2"

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
        ("max_batch", ctypes.c_int),
    ]


class PmStatusInfo(ctypes.Structure):
    """pm_status_info. The header lays it out with no tail padding, so
    ctypes.sizeof equals the C sizeof and struct_size names exactly these fields."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("state", ctypes.c_int),
        ("precision", ctypes.c_int),
        ("progress", ctypes.c_double),
        ("open_ms", ctypes.c_double),
        ("load_ms", ctypes.c_double),
        ("warmup_ms", ctypes.c_double),
        ("last_warmup_run_ms", ctypes.c_double),
        ("ready_unix", ctypes.c_double),
        ("warmup_runs", ctypes.c_int),
        ("random_weights", ctypes.c_int),
        ("input_width", ctypes.c_int),
        ("input_height", ctypes.c_int),
        ("images_processed", ctypes.c_uint64),
        ("forward_passes", ctypes.c_uint64),
        ("device_memory_bytes", ctypes.c_uint64),
        ("last_error_code", ctypes.c_int),
        ("max_batch", ctypes.c_int),
        ("forward_streams", ctypes.c_int),
        ("cuda_graph", ctypes.c_int),
        ("graph_safe", ctypes.c_int),
        ("frozen", ctypes.c_int),
        ("device", ctypes.c_char * 128),
        ("model_name", ctypes.c_char * 64),
        ("last_error", ctypes.c_char * 256),
        ("device_memory_peak_bytes", ctypes.c_uint64),
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
        ("png_level", ctypes.c_int),
        ("webp_quality", ctypes.c_int),
        ("background", ctypes.c_int),
        ("blur_radius", ctypes.c_float),
        ("background_image", ctypes.POINTER(PmImage)),
        ("overlay_rgb", ctypes.c_uint32),
        ("overlay_opacity", ctypes.c_float),
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
OUTPUT_RGBA, OUTPUT_MASK, OUTPUT_COMPOSITE, OUTPUT_OVERLAY = range(4)
# pm_background
BACKGROUND_COLOR, BACKGROUND_BLUR, BACKGROUND_IMAGE = range(3)
# pm_encoding
ENCODING_RAW, ENCODING_PNG, ENCODING_WEBP_LOSSLESS, ENCODING_WEBP = range(4)
# pm_tune: every key, by the name pm_tune_name gives it
TUNE_KEYS = {
    "warmup_min_runs": 1,
    "warmup_max_runs": 2,
    "warmup_tolerance_pct": 3,
    "cuda_graph": 4,
    "channels_last": 5,
    "jit_optimize": 6,
    "freeze": 7,
    "batch_wait_us": 8,
    "device_cache_mb": 9,
    "forward_streams": 10,
}

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
    "pm_tune_set": (ctypes.c_int, [ctx_p, ctypes.c_int, ctypes.c_int]),
    "pm_tune_get": (ctypes.c_int, [ctx_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]),
    "pm_tune_name": (ctypes.c_char_p, [ctypes.c_int]),
    "pm_status_info_init_sized": (None, [ctypes.POINTER(PmStatusInfo), c_size_t]),
    "pm_status": (ctypes.c_int, [ctx_p, ctypes.POINTER(PmStatusInfo)]),
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


def _version_text(number: int) -> str:
    """"0.2.0" from a PETMATTE_VERSION_NUMBER."""
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


class Library:
    """One loaded copy of libpetmatte with every prototype declared."""

    def __init__(self, cdll: ctypes.CDLL, path: str) -> None:
        self.cdll = cdll
        self.path = path
        # The version first: an older library lacks newer symbols, and "needs 0.2.0"
        # says more than a list of them.
        try:
            number_fn = cdll.pm_version_number
        except AttributeError:
            number_fn = None
        if number_fn is not None:
            number_fn.restype, number_fn.argtypes = ctypes.c_uint, []
            number = int(number_fn())
            if number // 10000 != ABI_MAJOR or number < MIN_VERSION_NUMBER:
                raise PetmatteLibraryNotFound(
                    f"{path} is libpetmatte {_version_text(number)}, but this binding needs "
                    f"{_version_text(MIN_VERSION_NUMBER)} or a later {ABI_MAJOR}.x",
                    tried=[(path, "unsupported version")],
                )
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

    def version(self) -> str:
        return self.pm_version().decode()

    def errmsg(self, ctx: Optional[int]) -> str:
        """pm_errmsg: must be called on the thread whose call just failed."""
        raw = self.pm_errmsg(ctx)
        return raw.decode("utf-8", "replace") if raw else ""

    def strerror(self, code: int) -> str:
        return self.pm_strerror(code).decode()

    def tune_name(self, key: int) -> Optional[str]:
        """pm_tune_name: the key's lower-case name, None for a key the library does not know."""
        raw = self.pm_tune_name(key)
        return raw.decode() if raw is not None else None

    # Initialised structs (the *_init() macros of the header).
    def new_params(self) -> PmParams:
        p = PmParams()
        self.pm_params_init_sized(ctypes.byref(p), ctypes.sizeof(p))
        return p

    def new_status_info(self) -> PmStatusInfo:
        s = PmStatusInfo()
        self.pm_status_info_init_sized(ctypes.byref(s), ctypes.sizeof(s))
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

LIBRARY_ENV = "PETMATTE_LIBRARY"


@functools.lru_cache(maxsize=None)
def _find_library() -> Optional[str]:
    # ctypes.util.find_library runs ldconfig/gcc: once per process is enough.
    return ctypes.util.find_library("petmatte")


def library_candidates(lib_path: Union[str, "os.PathLike[str]", None] = None) -> List[Tuple[str, str]]:
    """(candidate, where it came from), in the order :func:`load_library` tries them.

    An explicit ``lib_path`` or ``$PETMATTE_LIBRARY`` is the only candidate: a wrong
    setting is reported, never silently replaced by another copy of the library.
    """
    if lib_path is not None:
        return [(os.fspath(lib_path), "lib_path argument")]
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return [(env, LIBRARY_ENV)]
    out: List[Tuple[str, str]] = []
    found = _find_library()
    if found:
        out.append((found, 'ctypes.util.find_library("petmatte")'))
    for name in (SONAME, "libpetmatte.so"):
        if name != found:
            out.append((name, "dynamic loader search"))
    return out


def load_library(lib_path: Union[str, "os.PathLike[str]", None] = None) -> Library:
    """Loads libpetmatte once per path and declares its prototypes.

    Order: ``lib_path``; else ``$PETMATTE_LIBRARY``; else the dynamic loader:
    ``ctypes.util.find_library("petmatte")``, then ``libpetmatte.so.2`` and
    ``libpetmatte.so`` (LD_LIBRARY_PATH, ld.so.cache, /usr/local/lib after
    ``cmake --install``). ctypes.CDLL releases the GIL during every call.

    Raises:
        PetmatteLibraryNotFound: nothing loadable; lists every candidate and why it
            failed (an ImportError, not a PetmatteError: there is no C code).
    """
    tried: List[Tuple[str, str]] = []
    for candidate, origin in library_candidates(lib_path):
        with _cache_lock:
            lib = _cache.get(candidate)
            if lib is not None:
                return lib
            # A path that is not there gives a clearer message than dlopen's.
            if os.sep in candidate and not os.path.exists(candidate):
                tried.append((candidate, f"{origin}: no such file"))
                continue
            try:
                cdll = ctypes.CDLL(candidate)
            except OSError as e:
                tried.append((candidate, f"{origin}: {e}"))
                continue
            lib = Library(cdll, candidate)  # raises on missing symbols / wrong major
            _cache[candidate] = lib
            return lib
    raise PetmatteLibraryNotFound(
        "libpetmatte not found: pass lib_path=..., set PETMATTE_LIBRARY to the .so "
        "(e.g. build/lib/libpetmatte.so), or install it (cmake --install build) so that "
        f"the dynamic loader finds {SONAME}",
        tried=tried,
    )
