"""How longtask writes values down and reads their labels: compact, strict JSON (no NaN
or infinity, which JSON has no words for and other readers refuse), and media types."""

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
