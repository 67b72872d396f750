"""`ctx.step`: a function run once per task, its result kept for every later run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .operations import Operations


def step(ops: Operations, name: str, fn: Callable[[], Any]) -> Any:
    """The kept result of this step if an earlier run finished it; else runs `fn` and
    keeps its result. Two racing runs agree: the first result kept wins."""
    operation = ops.next("step", name)
    stored = ops.recorded(operation)
    if stored is not None:
        return ops.values.unpack(stored)
    kept = ops.record(operation, ops.values.pack(fn(), operation.key))
    return ops.values.unpack(kept)
