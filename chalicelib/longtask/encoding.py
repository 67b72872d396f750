"""How longtask writes values down and reads their labels: compact, strict JSON (no NaN
or infinity, which JSON has no words for and other readers refuse), numbers for people,
and media types."""

from __future__ import annotations

import json
from typing import Any


def compact_json(value: Any, *, sort_keys: bool = False) -> str:
    """`value` as the shortest JSON text; ValueError for NaN or infinity, TypeError for
    anything JSON cannot hold."""
    return json.dumps(
        value, allow_nan=False, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
    )


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, lower case, without its parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def readable_number(value: float) -> str:
    """A number as people read it: 78,498 rather than 78498, but a number under 10,000
    with its digits together (a year stays 2024); at most six significant digits."""
    if isinstance(value, float) and abs(value) >= 1e15:
        return f"{value:g}"
    grouping = "," if abs(value) >= 10_000 else ""
    if isinstance(value, int):
        return f"{value:{grouping}}"
    return f"{value:{grouping}.6g}"
