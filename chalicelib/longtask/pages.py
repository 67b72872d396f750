"""HTML pages from jinja2 templates (autoescaped), with the filters they use."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def humanize_seconds(seconds: float | None) -> str:
    """A duration as people say it: "12 s", "about 3 min", "about 1 h 20 min"."""
    if seconds is None:
        return ""
    s = max(float(seconds), 0.0)
    if s < 60:
        return f"{round(s)} s"
    if s < 3600:
        return f"about {round(s / 60)} min"
    hours, rest = divmod(round(s / 60), 60)
    return f"about {hours} h {rest} min" if rest else f"about {hours} h"


def time_left(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 5:
        return "almost done"
    if seconds < 60:
        return f"about {round(seconds / 5) * 5 or 5} s left"
    return f"{humanize_seconds(seconds)} left"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = humanize_seconds
    env.filters["time_left"] = time_left
    return env


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def static_file(name: str) -> tuple[str, str] | None:
    """(text, content type) of a file in static/, or None; no path ever leaves it."""
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES:
        return None
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8"), STATIC_TYPES[path.suffix]
