"""The exception hierarchy: one class per pm_code, all under PetmatteError.

Every exception raised for a failed library call carries the C code (``.code``, an
:class:`ErrorCode`) and the library's message (``.message``, from pm_errmsg). Where a
built-in exception means the same thing, the class also derives from it, so
``except ValueError`` or ``except MemoryError`` work as a Python user expects.
"""

from __future__ import annotations

import enum
from typing import Dict, List, Optional, Tuple, Type


class ErrorCode(enum.IntEnum):
    """pm_code. Values are stable; new codes are appended."""

    OK = 0
    INVALID_ARGUMENT = 1
    NO_MEMORY = 2
    IO = 3
    DEVICE = 4
    MODEL = 5
    DECODE = 6
    LIMIT = 7
    INFERENCE = 8
    DEVICE_OUT_OF_MEMORY = 9
    UNSUPPORTED = 10
    CANCELLED = 11
    INTERNAL = 12
    STATE = 13


class PetmatteError(Exception):
    """A libpetmatte call failed.

    Attributes:
        code: the pm_code, as an :class:`ErrorCode` (a plain int for a code newer
            than this binding).
        message: the library's one-line message (pm_errmsg).
    """

    code: int
    message: str

    def __init__(self, code: int, message: str) -> None:
        try:
            code = ErrorCode(code)
        except ValueError:
            code = int(code)
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        name = self.code.name if isinstance(self.code, ErrorCode) else "UNKNOWN"
        return f"{self.message} [PM_ERR_{name}={int(self.code)}]"

    def __reduce__(self):  # pickle (multiprocessing) keeps the subclass and fields
        return (self.__class__, (int(self.code), self.message))


class InvalidArgumentError(PetmatteError, ValueError):
    """PM_ERR_INVALID_ARGUMENT: a bad parameter, size, enum or device string."""


class NoMemoryError(PetmatteError, MemoryError):
    """PM_ERR_NO_MEMORY: a host allocation failed."""


class ModelIOError(PetmatteError, OSError):
    """PM_ERR_IO: the model file is missing or unreadable."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.errno = None  # a pm_code is not an errno
        self.strerror = message


class DeviceError(PetmatteError):
    """PM_ERR_DEVICE: the requested device is not present or not usable."""


class ModelError(PetmatteError):
    """PM_ERR_MODEL: not TorchScript, truncated, bad manifest or wrong output."""


class DecodeError(PetmatteError, ValueError):
    """PM_ERR_DECODE: the image bytes are corrupt or in an unsupported format."""


class LimitError(PetmatteError, ValueError):
    """PM_ERR_LIMIT: the input is over max_pixels or max_encoded_bytes."""


class InferenceError(PetmatteError):
    """PM_ERR_INFERENCE: the model failed while running."""


class DeviceOutOfMemoryError(PetmatteError):
    """PM_ERR_DEVICE_OUT_OF_MEMORY: the device ran out of memory; later calls may work."""


class UnsupportedError(PetmatteError):
    """PM_ERR_UNSUPPORTED: a valid request this build or device cannot do."""


class CancelledError(PetmatteError):
    """PM_ERR_CANCELLED: warm-up stopped because the context is closing."""


class InternalError(PetmatteError):
    """PM_ERR_INTERNAL: a bug in libpetmatte; please report it with the message."""


class StateError(PetmatteError):
    """PM_ERR_STATE: the call is not valid in the context's current state (tuning
    while a warm-up runs or once the context is ready)."""


_BY_CODE: Dict[int, Type[PetmatteError]] = {
    ErrorCode.INVALID_ARGUMENT: InvalidArgumentError,
    ErrorCode.NO_MEMORY: NoMemoryError,
    ErrorCode.IO: ModelIOError,
    ErrorCode.DEVICE: DeviceError,
    ErrorCode.MODEL: ModelError,
    ErrorCode.DECODE: DecodeError,
    ErrorCode.LIMIT: LimitError,
    ErrorCode.INFERENCE: InferenceError,
    ErrorCode.DEVICE_OUT_OF_MEMORY: DeviceOutOfMemoryError,
    ErrorCode.UNSUPPORTED: UnsupportedError,
    ErrorCode.CANCELLED: CancelledError,
    ErrorCode.INTERNAL: InternalError,
    ErrorCode.STATE: StateError,
}


def error_class(code: int) -> Type[PetmatteError]:
    """The exception class for a pm_code (PetmatteError for unknown codes)."""
    return _BY_CODE.get(int(code), PetmatteError)


def make_error(code: int, message: str) -> PetmatteError:
    return error_class(code)(code, message)


class DefaultModelNotFound(ModelIOError):
    """``model=None`` and no default model file exists (code PM_ERR_IO).

    Attributes:
        tried: the paths that were looked at.
    """

    def __init__(self, code: int = ErrorCode.IO, message: str = "", tried: Optional[List[str]] = None):
        super().__init__(code, message)
        self.tried = list(tried or [])

    def __reduce__(self):
        return (self.__class__, (int(self.code), self.message, self.tried))


class PetmatteLibraryNotFound(ImportError):
    """libpetmatte.so could not be loaded. Not a PetmatteError: there is no C code.

    Attributes:
        tried: (candidate, reason) for every place that was tried.
    """

    def __init__(self, message: str, tried: Optional[List[Tuple[str, str]]] = None) -> None:
        self.tried = list(tried or [])
        lines = [message]
        for candidate, why in self.tried:
            lines.append(f"  tried {candidate}: {why}")
        super().__init__("\n".join(lines))
