"""How longtask writes JSON down: compact, and strict (no NaN or infinity, which JSON
has no words for and other readers refuse)."""

from __future__ import annotations

import json
from typing import Any


def compact_json(value: Any, *, sort_keys: bool = False) -> str:
    """`value` as the shortest JSON text; ValueError for NaN or infinity, TypeError for
    anything JSON cannot hold."""
    return json.dumps(
        value, allow_nan=False, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
    )
