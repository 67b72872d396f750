"""How a result shows on its page: a task's own display_result, or a preview by content type."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .encoding import media_type, readable_number

log = logging.getLogger(__name__)
# The page reads at most this much of a result: a preview costs one small ranged GET
# however large the result is.
PREVIEW_BYTES = 64 * 1024
_TABLE_ROWS = 20
_TEXT_LINES = 40


@dataclass(frozen=True)
class ResultDisplay:
    """What the result page shows above the download button; every part is optional.

    The template autoescapes each of them: a task cannot put markup on the page."""

    headline: str | None = None  # one sentence, e.g. "78,498 primes up to 1,000,000"
    values: tuple[tuple[str, str], ...] = ()  # labelled values
    table: tuple[tuple[str, ...], ...] = ()  # the first row is the header
    text: str | None = None  # a preview of text
    truncated: bool = False  # the table or text shows only the first part

    @property
    def empty(self) -> bool:
        return not (self.headline or self.values or self.table or self.text)


# What a task's display_result returns: a sentence, labelled values, or a ResultDisplay.
Displayed = str | Mapping[str, Any] | ResultDisplay
DisplayHook = Callable[[Any], Displayed]


def label_of(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def format_value(value: Any) -> str:
    """A value as people read it: 78,498 rather than 78498, "yes" rather than true."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return readable_number(value)
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def as_display(shown: Displayed) -> ResultDisplay:
    if isinstance(shown, ResultDisplay):
        return shown
    if isinstance(shown, str):
        return ResultDisplay(headline=shown)
    return ResultDisplay(values=tuple((label_of(k), format_value(v)) for k, v in shown.items()))


def decode_result(content_type: str, body: bytes) -> Any:
    """A whole result as the task returned it: a JSON value, text, or bytes."""
    media = media_type(content_type)
    if media == "application/json":
        return json.loads(body)
    if media.startswith("text/"):
        return body.decode("utf-8", "replace")
    return body


def _csv_table(text: str, complete: bool) -> ResultDisplay:
    lines = text.splitlines()
    if not complete and lines:
        lines = lines[:-1]  # the last line may be cut in the middle
    rows = list(csv.reader(io.StringIO("\n".join(lines[: _TABLE_ROWS + 1]))))
    more = not complete or len(lines) > _TABLE_ROWS + 1
    return ResultDisplay(table=tuple(tuple(row) for row in rows if row), truncated=more)


def _text_preview(text: str, complete: bool) -> ResultDisplay:
    lines = text.splitlines()
    shown = lines[:_TEXT_LINES]
    return ResultDisplay(text="\n".join(shown), truncated=not complete or len(lines) > len(shown))


def default_display(content_type: str, head: bytes, complete: bool) -> ResultDisplay:
    """A preview by content type: a JSON object as labelled values, CSV as a table, text
    as its first lines; anything else shows only as a file to download."""
    media = media_type(content_type)
    if media == "application/json" and complete:
        try:
            value = json.loads(head)
        except ValueError:
            return ResultDisplay()
        if isinstance(value, dict):
            return as_display(value)
        if isinstance(value, list):
            return _text_preview(json.dumps(value, indent=2, ensure_ascii=False), True)
        return ResultDisplay(headline=format_value(value))
    if not (media.startswith("text/") or media == "application/json"):
        return ResultDisplay()
    text = head.decode("utf-8", "replace")
    if media == "text/csv":
        return _csv_table(text, complete)
    return _text_preview(text, complete)


def display_of(
    hook: DisplayHook | None, content_type: str, head: bytes, complete: bool
) -> ResultDisplay:
    """What the result page shows: the task's own hook when the whole result was read,
    else (or when the hook fails) the default preview."""
    if hook is not None and complete:
        try:
            return as_display(hook(decode_result(content_type, head)))
        except Exception:  # a broken hook must not hide the download button
            log.exception("display_result failed; showing the default preview")
    return default_display(content_type, head, complete)


def human_size(size: int | None) -> str:
    """A file size as people read it: "412 bytes", "3.2 KB", "1.5 MB"."""
    if size is None:
        return ""
    if size < 1000:
        return f"{size} byte" + ("" if size == 1 else "s")
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.5 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


_KINDS = {
    "application/json": "JSON",
    "text/csv": "CSV table",
    "text/plain": "Text",
    "application/zip": "ZIP archive",
    "application/pdf": "PDF document",
}


def file_kind(content_type: str) -> str:
    media = media_type(content_type)
    return _KINDS.get(media) or media or "File"
