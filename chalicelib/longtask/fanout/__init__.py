"""Fan-out and memoized steps: `ctx.map` runs a function on each item as a part of its own,
in parallel workers; `ctx.step` runs a function once per task. Both replay: after a
hand-over, a takeover or the wait for its parts, the task function runs again from the
top and every finished step and map returns what it recorded instead of running again.

operations.py identifies them by position and detects a changed program, steps.py and
maps.py are the two operations, parts.py is what a part's worker does, values.py keeps
JSON values of any size.
"""

from __future__ import annotations

from .maps import MAX_PARTS, PartFailure, count_ended, queued_by, run_map, waiting_progress
from .operations import Operation, Operations
from .parts import Part, function_ref, resolve
from .steps import step

__all__ = [
    "MAX_PARTS",
    "Operation",
    "Operations",
    "Part",
    "PartFailure",
    "count_ended",
    "function_ref",
    "queued_by",
    "resolve",
    "run_map",
    "step",
    "waiting_progress",
]
