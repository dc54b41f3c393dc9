"""petmatte: Python binding (ctypes) for libpetmatte, an embeddable background remover.

    import petmatte

    with petmatte.Matte("model.pt") as m:     # model=None: the default model
        m.warmup()                            # optional: the first remove_bg warms too
        rgba = m.remove_bg("cat.jpg")         # numpy (H, W, 4) uint8
        png = m.remove_bg(jpeg_bytes, format="png", background="#ffffff")
        print(m.status().device)

    # [experimental] device tuning by key (TUNE_KEYS), before warm-up:
    m = petmatte.Matte("model.pt", device="cuda", tune={"cuda_graph": 0})

Importing this package loads nothing: libpetmatte is loaded on first use (a Matte, or
``petmatte.__version__``), and numpy / Pillow only matter when you pass or ask for
arrays / PIL images. ``__version__`` is the loaded library's pm_version();
``binding_version`` is this package's.
"""

from __future__ import annotations

from typing import Any

from ._matte import (
    DEFAULT_MODEL_NAME,
    MODEL_ENV,
    TUNE_KEYS,
    Matte,
    cuda_device_count,
    default_model_path,
    library_version,
)
from ._native import library_candidates, load_library
from .errors import (
    CancelledError,
    DecodeError,
    DefaultModelNotFound,
    DeviceError,
    DeviceOutOfMemoryError,
    ErrorCode,
    InferenceError,
    InternalError,
    InvalidArgumentError,
    LimitError,
    ModelError,
    ModelIOError,
    NoMemoryError,
    PetmatteError,
    PetmatteLibraryNotFound,
    StateError,
    UnsupportedError,
    error_class,
)
from .images import parse_color
from .status import Precision, State, Status

binding_version = "0.2.0"

__all__ = [
    "DEFAULT_MODEL_NAME",
    "MODEL_ENV",
    "CancelledError",
    "DecodeError",
    "DefaultModelNotFound",
    "DeviceError",
    "DeviceOutOfMemoryError",
    "ErrorCode",
    "InferenceError",
    "InternalError",
    "InvalidArgumentError",
    "LimitError",
    "Matte",
    "ModelError",
    "ModelIOError",
    "NoMemoryError",
    "PetmatteError",
    "PetmatteLibraryNotFound",
    "Precision",
    "State",
    "StateError",
    "Status",
    "TUNE_KEYS",
    "UnsupportedError",
    "binding_version",
    "cuda_device_count",
    "default_model_path",
    "error_class",
    "library_candidates",
    "library_version",
    "load_library",
    "parse_color",
]


def __getattr__(name: str) -> Any:
    # PEP 562: __version__ comes from the library, loaded only when asked for.
    if name == "__version__":
        return load_library().version()
    raise AttributeError(f"module 'petmatte' has no attribute {name!r}")
