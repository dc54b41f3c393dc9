"""What a context reports about itself: State, Precision and the Status snapshot (pm_status)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Optional, Tuple, Union

from . import _native
from .errors import ErrorCode, PetmatteError, make_error

__all__ = ["Precision", "State", "Status", "status_from_c"]


class State(enum.IntEnum):
    """pm_state: where a context is in its life."""

    COLD = 0  # opened, nothing loaded
    LOADING = 1  # reading the model onto the device
    WARMING = 2  # running warm-up inferences
    READY = 3
    FAILED = 4  # the last warm-up failed: see Status.last_error


class Precision(enum.IntEnum):
    """pm_precision."""

    AUTO = 0  # fp16 on CUDA; on the CPU bf16 with AMX and an NHWC model, else fp32
    FP32 = 1
    FP16 = 2
    BF16 = 3


@dataclasses.dataclass(frozen=True)
class Status:
    """A snapshot of a context (pm_status), in the header's field order. Times are
    milliseconds."""

    state: State
    precision: Precision  # resolved from AUTO once loading starts
    progress: float  # 0..1 through loading and warming; 1 when READY
    open_ms: float
    load_ms: float  # 0 until loaded
    warmup_ms: float  # 0 until READY
    last_warmup_run_ms: float
    ready_unix: float  # seconds since the epoch when it became READY; 0 before
    warmup_runs: int
    random_weights: bool
    input_width: int  # 0 until loaded
    input_height: int
    images_processed: int
    forward_passes: int  # forward passes for remove_bg calls since ready
    device_memory_bytes: int
    last_error_code: Union[ErrorCode, int]  # the context's most recent failure; OK if none
    max_batch: int  # images one forward pass may serve (1 = no batching); 0 until ready
    forward_streams: int  # streams forward passes run on at once (1 = one at a time); 0 until ready
    cuda_graph: bool  # forward passes replay a captured CUDA graph
    graph_safe: int  # 1: control flow does not depend on tensor values; 0: it does; -1 until loaded
    frozen: bool  # the model runs frozen (tune key "freeze")
    device: str  # e.g. "cpu" or "cuda:0 NVIDIA H100 80GB HBM3"
    model_name: str
    last_error: str  # the most recent failure's message, "" if none
    device_memory_peak_bytes: int  # the most the process's CUDA allocator held on the device at once

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


def enum_or_int(cls: Any, value: int) -> Any:
    """cls(value), or the plain int for a value newer than this binding."""
    try:
        return cls(value)
    except ValueError:
        return int(value)


def status_from_c(s: _native.PmStatusInfo) -> Status:
    def text(raw: bytes) -> str:
        return raw.decode("utf-8", "replace")

    return Status(
        state=enum_or_int(State, s.state),
        precision=enum_or_int(Precision, s.precision),
        progress=s.progress,
        open_ms=s.open_ms,
        load_ms=s.load_ms,
        warmup_ms=s.warmup_ms,
        last_warmup_run_ms=s.last_warmup_run_ms,
        ready_unix=s.ready_unix,
        warmup_runs=s.warmup_runs,
        random_weights=bool(s.random_weights),
        input_width=s.input_width,
        input_height=s.input_height,
        images_processed=s.images_processed,
        forward_passes=s.forward_passes,
        device_memory_bytes=s.device_memory_bytes,
        last_error_code=enum_or_int(ErrorCode, s.last_error_code),
        max_batch=s.max_batch,
        forward_streams=s.forward_streams,
        cuda_graph=bool(s.cuda_graph),
        graph_safe=s.graph_safe,
        frozen=bool(s.frozen),
        device=text(s.device),
        model_name=text(s.model_name),
        last_error=text(s.last_error),
        device_memory_peak_bytes=s.device_memory_peak_bytes,
    )
