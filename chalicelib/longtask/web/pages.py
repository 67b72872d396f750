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
    whole = round(max(float(seconds), 0.0))
    if whole < 60:
        return f"{whole} s"
    minutes = round(whole / 60)
    if minutes < 60:
        return f"about {minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"about {hours} h {rest} min" if rest else f"about {hours} h"


def time_left(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 5:
        return "almost done"
    fives = round(seconds / 5) * 5
    if fives < 60:
        return f"about {fives} s left"
    return f"{humanize_seconds(max(seconds, 60.0))} left"


_STATES = {
    "ready": "Waiting for a worker…",
    "started": "Running",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


def state_text(document: dict[str, Any]) -> str:
    """The headline of a status page, e.g. "Running" or "Attempt 1 failed, …"."""
    if document["status"] == "error":
        return f"Attempt {document['attempts']} failed, trying again soon"
    return _STATES[document["status"]]


def status_message(document: dict[str, Any]) -> str:
    """The line under the headline: the task's own message while it runs."""
    status, message = document["status"], document["progress"]["message"]
    if status == "ready":
        return "Queued: it starts as soon as a worker is free."
    if status == "done":
        elapsed = document["elapsed_seconds"]
        return f"Finished in {humanize_seconds(elapsed)}." if elapsed is not None else "Finished."
    if status == "cancelled" and not message:
        return "Cancelled before it started."
    return str(message or ("Starting…" if status == "started" else ""))


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


def render_status(
    document: dict[str, Any],
    *,
    title: str,
    parameters: list[tuple[str, Any]],
    base: str = "",
    home: str = "/",
    refresh: int | None = None,
    download: bool = False,
) -> str:
    """The status page of one task, from its status document."""
    return render(
        "status.html",
        base=base,
        home=home,
        task=document,
        title=title,
        parameters=parameters,
        state_text=state_text(document),
        message=status_message(document),
        refresh=refresh,
        download=download,
    )


STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def static_file(name: str) -> tuple[str, str] | None:
    """(text, content type) of a file in static/, or None; no path ever leaves it."""
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES:
        return None
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8"), STATIC_TYPES[path.suffix]
