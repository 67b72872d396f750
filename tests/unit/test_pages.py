"""HTML pages: durations in words, static files that stay in their folder, escaped output."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.longtask.model import (
    ErrorInfo,
    Links,
    Progress,
    Status,
    TaskRecord,
    status_document,
)
from chalicelib.longtask.web.pages import (
    humanize_seconds,
    render_status,
    state_text,
    static_file,
    time_left,
)

ATTACK = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
TASK_ID = "kq3VhZx0Qm2b-_Yt8LpA1w"
NOW = 1_800_000_000.0


# -- durations in words --------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, ""),
        (-5, "0 s"),
        (0, "0 s"),
        (0.4, "0 s"),
        (12.4, "12 s"),
        (59, "59 s"),
        (60, "about 1 min"),
        (90.5, "about 2 min"),
        (150, "about 2 min"),
        (3000, "about 50 min"),
        (3600, "about 1 h"),
        (4800, "about 1 h 20 min"),
        (7200, "about 2 h"),
        (7260, "about 2 h 1 min"),
        (90_000, "about 25 h"),
    ],
)
def test_humanize_seconds(seconds: float | None, words: str) -> None:
    assert humanize_seconds(seconds) == words


@pytest.mark.parametrize(("seconds", "words"), [(59.6, "about 1 min"), (3590, "about 1 h")])
def test_humanize_seconds_just_under_a_boundary(seconds: float, words: str) -> None:
    assert humanize_seconds(seconds) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, ""),
        (0, "almost done"),
        (4.9, "almost done"),
        (5, "about 5 s left"),
        (7, "about 5 s left"),
        (8, "about 10 s left"),
        (42, "about 40 s left"),
        (60, "about 1 min left"),
        (600, "about 10 min left"),
        (5400, "about 1 h 30 min left"),
    ],
)
def test_time_left(seconds: float | None, words: str) -> None:
    assert time_left(seconds) == words


def test_time_left_just_under_a_minute() -> None:
    assert time_left(58) == "about 1 min left"


# -- static files -----------------------------------------------------------------------


def test_the_stylesheet_is_served_as_css() -> None:
    found = static_file("style.css")
    assert found is not None
    text, content_type = found
    assert content_type == "text/css; charset=utf-8"
    assert text.strip()


@pytest.mark.parametrize(
    "name",
    [
        "../x.css",
        "../templates/base.html",
        "../pages.py",
        "..%2Fpages.py",
        "/etc/passwd",
        "sub/style.css",
        ".hidden.css",
        "..css",
        "..",
        ".",
        "",
        "x.py",
        "style.css.py",
        "style.CSS",
        "missing.css",
        "style.css\x00.js",
    ],
)
def test_static_file_refuses_anything_outside_or_unlisted(name: str) -> None:
    assert static_file(name) is None


# -- rendering is escaped ---------------------------------------------------------------


def hostile_document(status: Status = Status.STARTED) -> dict[str, Any]:
    task = TaskRecord(
        id=TASK_ID,
        kind="report",
        params={"month": ATTACK, "note": f'"><img src=x onerror=alert(1)>{ATTACK}'},
        status=status,
        created_at=NOW - 30,
        updated_at=NOW - 1,
        started_at=NOW - 29,
        attempts=2,
        progress=Progress(
            message=f"Handling {ATTACK}", step=3, total_steps=10, at=NOW - 1, rate=0.2
        ),
        error=ErrorInfo(type=ATTACK, message=f"failed on {ATTACK}"),
    )
    own = f"/tasks/report/{TASK_ID}"
    return status_document(task, Links(self=own, result=f"{own}/result", cancel=own), NOW)


def status_page(document: dict[str, Any], title: str = "Monthly report") -> str:
    """The status page as the web layer renders it."""
    return render_status(
        document,
        title=title,
        parameters=[(name, value) for name, value in document["parameters"].items()],
        base="/api",
        refresh=None if document["done"] else 2,
    )


@pytest.mark.parametrize("status", list(Status))
def test_status_page_escapes_what_users_and_tasks_wrote(status: Status) -> None:
    page = status_page(hostile_document(status))
    assert "<script>alert" not in page
    assert "<img" not in page
    assert f"<dt>month</dt><dd>{ESCAPED}</dd>" in page
    if status not in (Status.READY, Status.DONE):  # those say "Queued…", "Finished in…"
        assert f"Handling {ESCAPED}" in page
    if status in (Status.ERROR, Status.FAILED):
        assert f"failed on {ESCAPED}" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_a_headline(status: Status) -> None:
    words = state_text(hostile_document(status))
    assert words
    assert words in status_page(hostile_document(status))


def test_a_failed_attempt_says_a_retry_is_coming() -> None:
    assert state_text(hostile_document(Status.ERROR)) == "Attempt 2 failed, trying again soon"


def test_status_page_escapes_the_title_too() -> None:
    page = status_page(hostile_document(), title=ATTACK)
    assert "<script>alert" not in page
    assert f"<h1>{ESCAPED}</h1>" in page


def test_status_page_has_no_inline_script() -> None:
    page = status_page(hostile_document())
    for tag in re.findall(r"<script\b[^>]*>", page, flags=re.IGNORECASE):
        assert "src=" in tag


def test_status_page_shows_progress_and_time_left() -> None:
    page = status_page(hostile_document())
    assert '<progress id="bar" max="100" value="30.0">' in page
    assert '<dd id="steps">3 of 10 (30 %)</dd>' in page
    assert '<dd id="elapsed">29 s</dd>' in page
    assert '<dd id="eta">about 35 s left</dd>' in page
    assert '<meta http-equiv="refresh" content="2' in page
    assert 'href="/api/static/style.css"' in page
    assert f'action="/tasks/report/{TASK_ID}/cancel"' in page
