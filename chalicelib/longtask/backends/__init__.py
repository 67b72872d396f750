"""The storage interface, its write vocabulary, and the memory twin of the AWS backends."""

from ..errors import Conflict, InvalidCursor, OverQuota, Repeated
from .interface import Backends, Clock, ResultStore, TaskQueue, TaskStore
from .memory import MemoryQueue, MemoryResults, MemoryTaskStore, Received, memory_backends
from .writes import (
    INLINE_CHECKPOINT_BYTES,
    Admission,
    Expect,
    IfMissing,
    Increment,
    Page,
    kept_apart,
)

__all__ = [
    "INLINE_CHECKPOINT_BYTES",
    "Admission",
    "Backends",
    "Clock",
    "Conflict",
    "Expect",
    "IfMissing",
    "Increment",
    "InvalidCursor",
    "MemoryQueue",
    "MemoryResults",
    "MemoryTaskStore",
    "OverQuota",
    "Page",
    "Received",
    "Repeated",
    "ResultStore",
    "TaskQueue",
    "TaskStore",
    "kept_apart",
    "memory_backends",
]
