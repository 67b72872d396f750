"""The pages' static files under content-hashed names, so that browsers may keep them for good."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# A hashed name never changes content, so a year (the most HTTP caches honour) is safe;
# `immutable` spares even the revalidation on reload.
CACHE_FOREVER = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class StaticFile:
    name: str  # as in static/, e.g. "status.js"
    hashed: str  # as served, e.g. "status.3f2a9c1d0b7e.js"
    text: str
    content_type: str


def _load() -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    for path in sorted(STATIC.iterdir()):
        if path.suffix not in STATIC_TYPES or path.name.startswith("."):
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:12]
        hashed = f"{path.stem}.{digest}{path.suffix}"
        files[hashed] = StaticFile(
            path.name, hashed, data.decode("utf-8"), STATIC_TYPES[path.suffix]
        )
    return files


# Computed at import, from the bytes that will be served: a changed file gets a new name
# in the same deployment that changes it.
_BY_HASHED_NAME = _load()
_HASHED_NAME = {f.name: f.hashed for f in _BY_HASHED_NAME.values()}


def static_name(name: str) -> str:
    """The served name of a file in static/: `static_name("status.js")` is
    "status.<hash>.js" (KeyError for a file that is not there)."""
    return _HASHED_NAME[name]


def static_file(served_name: str) -> StaticFile | None:
    """The file served under `served_name`, or None: only hashed names of files that are
    in static/ are served, so no path ever leaves it and an old hash is not found."""
    return _BY_HASHED_NAME.get(served_name)
