"""HTML pages from jinja2 templates (autoescaped), and the words they use for each state."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from ..display import ResultDisplay, format_value
from ..model import parse_iso
from .static import static_name

TEMPLATES = Path(__file__).parent / "templates"


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
    """The time left as it follows the label "Time left": "about 15 s", "almost done"."""
    if seconds is None:
        return ""
    if seconds < 5:
        return "almost done"
    fives = round(seconds / 5) * 5
    if fives < 60:
        return f"about {fives} s"
    return humanize_seconds(max(seconds, 60.0))


def ago(seconds: float) -> str:
    """How long ago, as people say it: "just now", "3 min ago", "yesterday"."""
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(round(seconds / 60), 1)} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    days = round(seconds / 86400)
    return "yesterday" if days == 1 else f"{days} days ago"


def sentence(text: str) -> str:
    """An error message as a sentence: capital first letter, a full stop at the end."""
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?…" else text + "."


def percent_text(document: dict[str, Any]) -> str:
    percent = document["progress"]["percent"]
    return "" if percent is None else f"{int(percent)} %"


def is_starting(document: dict[str, Any]) -> bool:
    """Running, but nothing reported yet: the worker is still setting out."""
    p = document["progress"]
    return document["status"] == "started" and p["step"] is None and not p["message"]


def state_text(document: dict[str, Any], max_attempts: int) -> str:
    """The headline of a status page: "Waiting for a worker", "Running", "Retrying", …"""
    status = document["status"]
    if status == "ready":
        return "Waiting for a worker"
    if status == "started":
        return "Starting" if is_starting(document) else "Running"
    if status == "error":
        return f"Retrying: attempt {document['attempts'] + 1} of {max_attempts} soon"
    return {"done": "Done", "failed": "Failed", "cancelled": "Cancelled"}[status]


def tab_title(document: dict[str, Any], title: str) -> str:
    """The browser tab's title, state first so that a narrow tab still shows it."""
    status = document["status"]
    state = {
        "ready": "Queued",
        "error": "Retrying",
        "done": "Done",
        "failed": "Failed",
        "cancelled": "Cancelled",
    }.get(status)
    if status == "started":
        state = percent_text(document) or ("Starting" if is_starting(document) else "Running")
    return f"{state} · {title}"


def status_message(document: dict[str, Any]) -> str:
    """The line under the headline."""
    status, message = document["status"], document["progress"]["message"]
    if status == "ready":
        return "Queued: it starts as soon as a worker is free."
    if status == "started":
        return str(message or "A worker has picked it up.")
    if status == "error":
        return f"Attempt {document['attempts']} failed. It will be tried again automatically."
    if status == "done":
        elapsed = document["elapsed_seconds"]
        if elapsed is None:
            return "Finished."
        return (
            "Finished in under a second."
            if elapsed < 0.5
            else f"Finished in {humanize_seconds(elapsed)}."
        )
    if status == "failed":
        attempts = document["attempts"]
        if attempts > 1:
            return f"It failed on all {attempts} attempts, so it was stopped."
        return "It could not finish, so it was stopped."
    percent = percent_text(document)
    if document["started_at"] is None:
        return "You cancelled it before it started."
    return f"You cancelled it at {percent}." if percent else "You cancelled it while it ran."


# What each chip in "Your recent tasks" says; the colour comes from its status class.
_CHIPS = {
    "ready": "Queued",
    "started": "Running",
    "error": "Retrying",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


def chip_text(document: dict[str, Any]) -> str:
    if document["status"] == "started" and document["progress"]["percent"] is not None:
        return f"Running {percent_text(document)}"
    return _CHIPS[document["status"]]


def favicon(status: str, percent: float | None = None) -> str:
    """A data: URL of the tab icon for a state: a ring that fills with progress."""
    colour = {"done": "#14532b", "failed": "#8a1a13", "error": "#8a1a13"}.get(status, "#1d4296")
    share = 1.0 if status in ("done", "failed", "cancelled", "error") else (percent or 0) / 100
    if status == "cancelled":
        colour = "#4a525c"
    dash = round(share * 87.96, 2)  # the circumference of r=14
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'>"
        "<circle cx='16' cy='16' r='14' fill='none' stroke='#d5dae1' stroke-width='4'/>"
        f"<circle cx='16' cy='16' r='14' fill='none' stroke='{colour}' stroke-width='4' "
        f"stroke-dasharray='{dash} 88' transform='rotate(-90 16 16)'/></svg>"
    )
    return "data:image/svg+xml," + quote(svg)


def form_value(value: Any) -> str:
    """A parameter as a form sends it back: the server parses it to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class ResultView:
    """The done page's result: what it shows, and the file behind the Download button."""

    display: ResultDisplay
    filename: str
    kind: str  # "CSV table", "JSON", ...
    size: str  # "1.2 KB", or "" when unknown
    download_url: str  # a presigned URL made for this answer, for the automatic download


@dataclass(frozen=True)
class Look:
    """How longtask's pages present themselves in a host app: the site's name, in the
    header and the titles, and a directory of the host's own templates, which take the
    place of longtask's of the same name (longtask's stay reachable as "longtask/<name>",
    so that a host's base.html may extend longtask's and change only some blocks)."""

    site_name: str = "longtask"
    templates: str | None = None


DEFAULT_LOOK = Look()


@cache
def _environment(templates: str | None) -> jinja2.Environment:
    ours = jinja2.FileSystemLoader(str(TEMPLATES))
    theirs = [jinja2.FileSystemLoader(templates)] if templates else []
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([*theirs, ours, jinja2.PrefixLoader({"longtask": ours})]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = humanize_seconds
    env.filters["time_left"] = time_left
    env.filters["sentence"] = sentence
    env.filters["form_value"] = form_value
    env.filters["chip"] = chip_text
    env.filters["value"] = format_value
    env.globals["static"] = static_name
    return env


def render(template: str, look: Look = DEFAULT_LOOK, **context: Any) -> str:
    page = _environment(look.templates).get_template(template)
    return page.render(site_name=look.site_name, **context)


def render_status(
    document: dict[str, Any],
    *,
    title: str,
    parameters: list[tuple[str, Any]],
    base: str = "",
    home: str = "/",
    refresh: int | None = None,
    max_attempts: int,
    result: ResultView | None = None,
    start_url: str | None = None,
    now: float | None = None,
    look: Look = DEFAULT_LOOK,
) -> str:
    """The page of one task, from its status document: its progress while it waits or
    runs, the result when it is done, what happened and what to do when it is not."""
    return render(
        "status.html",
        look,
        base=base,
        home=home,
        task=document,
        title=title,
        tab_title=tab_title(document, title),
        favicon=favicon(document["status"], document["progress"]["percent"]),
        parameters=parameters,
        state_text=state_text(document, max_attempts),
        message=status_message(document),
        refresh=refresh,
        max_attempts=max_attempts,
        result=result,
        start_url=start_url,
        retry_in=_seconds_until(document.get("retry_at"), now),
        server_now=round((now or 0) * 1000),
    )


def _seconds_until(moment: str | None, now: float | None) -> str:
    at = parse_iso(moment)
    if at is None or now is None:
        return ""
    return humanize_seconds(max(at - now, 0.0))
