"""HTML pages: durations in words, every state in words, the result page, static files under
hashed names that stay in their folder, escaped output."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.longtask.display import ResultDisplay
from chalicelib.longtask.model import (
    ErrorInfo,
    Links,
    Progress,
    Status,
    TaskRecord,
    status_document,
)
from chalicelib.longtask.web.pages import (
    ResultView,
    ago,
    humanize_seconds,
    render_status,
    state_text,
    status_message,
    tab_title,
    time_left,
)
from chalicelib.longtask.web.static import CACHE_FOREVER, static_file, static_name

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
        (5, "about 5 s"),
        (7, "about 5 s"),
        (8, "about 10 s"),
        (42, "about 40 s"),
        (60, "about 1 min"),
        (600, "about 10 min"),
        (5400, "about 1 h 30 min"),
    ],
)
def test_time_left_follows_its_label_without_saying_left_again(
    seconds: float | None, words: str
) -> None:
    assert time_left(seconds) == words


def test_time_left_just_under_a_minute() -> None:
    assert time_left(58) == "about 1 min"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (3, "just now"),
        (50, "1 min ago"),
        (600, "10 min ago"),
        (7300, "2 h ago"),
        (86400 * 1.2, "yesterday"),
        (86400 * 3, "3 days ago"),
    ],
)
def test_recent_tasks_say_how_long_ago(seconds: float, words: str) -> None:
    assert ago(seconds) == words


# -- static files -----------------------------------------------------------------------


def test_the_stylesheet_is_served_under_a_name_made_of_its_content() -> None:
    served = static_name("style.css")
    assert re.fullmatch(r"style\.[0-9a-f]{12}\.css", served)
    found = static_file(served)
    assert found is not None
    assert found.content_type == "text/css; charset=utf-8"
    assert found.text.strip()
    assert CACHE_FOREVER == "public, max-age=31536000, immutable"


def test_an_unhashed_or_outdated_name_is_not_served() -> None:
    assert static_file("style.css") is None
    assert static_file("status.js") is None
    assert static_file("style.000000000000.css") is None


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
        start_url="/api/tasks/report",
        now=NOW,
        max_attempts=3,
    )


@pytest.mark.parametrize("status", list(Status))
def test_status_page_escapes_what_users_and_tasks_wrote(status: Status) -> None:
    page = status_page(hostile_document(status))
    assert "<script>alert" not in page
    assert "<img" not in page
    assert f"<dt>month</dt><dd>{ESCAPED}</dd>" in page
    if status is Status.STARTED:  # the other states say what they are in their own words
        assert f"Handling {ESCAPED}" in page
    if status in (Status.ERROR, Status.FAILED):
        assert f"Failed on {ESCAPED}" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_a_headline(status: Status) -> None:
    words = state_text(hostile_document(status), max_attempts=3)
    assert words
    assert words in status_page(hostile_document(status))


def test_a_failed_attempt_says_which_attempt_comes_next_and_when() -> None:
    document = hostile_document(Status.ERROR)
    assert state_text(document, max_attempts=3) == "Retrying: attempt 3 of 3 soon"
    assert status_message(document) == "Attempt 2 failed. It will be tried again automatically."
    page = status_page(document)
    assert '<dd id="retry-in"' in page


def test_the_tab_title_starts_with_the_progress() -> None:
    assert tab_title(hostile_document(Status.STARTED), "Count primes") == "30 % · Count primes"
    assert tab_title(hostile_document(Status.READY), "Count primes") == "Queued · Count primes"
    assert tab_title(hostile_document(Status.DONE), "Count primes") == "Done · Count primes"


def test_a_failed_task_says_what_happened_and_offers_to_run_it_again() -> None:
    document = hostile_document(Status.FAILED)
    assert status_message(document) == "It failed on all 2 attempts, so it was stopped."
    page = status_page(document)
    assert '<form method="post" action="/api/tasks/report">' in page
    assert '<input type="hidden" name="month" value="&lt;script&gt;' in page
    assert ">Run again</button>" in page
    assert "<p></p>" not in page  # no empty line under the headline


def test_a_cancelled_task_offers_to_start_again() -> None:
    page = status_page(hostile_document(Status.CANCELLED))
    assert ">Start again</button>" in page
    assert "You cancelled it at 30 %." in page


def test_cancel_asks_before_it_acts_without_javascript_too() -> None:
    page = status_page(hostile_document(Status.STARTED))
    question = page.index('<details class="cancel" id="cancel">')
    assert page.index("Stop this task?", question) < page.index("Yes, cancel it", question)


def test_the_done_page_shows_the_result_the_file_and_a_download_button() -> None:
    document = hostile_document(Status.DONE)
    view = ResultView(
        display=ResultDisplay(headline=f"78,498 primes {ATTACK}", values=(("Limit", "1,000"),)),
        filename="primes.json",
        kind="JSON",
        size="31 bytes",
        download_url="https://s3.example/results/x?X-Amz-Signature=1&a=b",
    )
    page = render_status(
        document, title="Count primes", parameters=[], result=view, now=NOW, max_attempts=3
    )
    assert f'<p class="result-headline" id="result-headline">78,498 primes {ESCAPED}</p>' in page
    assert "<dt>Limit</dt><dd>1,000</dd>" in page
    assert "primes.json" in page and "JSON · 31 bytes" in page
    assert f'<a class="button" id="result-link" href="/tasks/report/{TASK_ID}/result">' in page
    assert 'data-download-url="https://s3.example/results/x?X-Amz-Signature=1&amp;a=b"' in page
    assert "Elapsed" not in page  # "Finished in 29 s." says it once
    assert '<meta http-equiv="refresh"' not in page


def test_status_page_escapes_the_title_too() -> None:
    page = status_page(hostile_document(), title=ATTACK)
    assert "<script>alert" not in page
    assert f'<h1 id="title">{ESCAPED}</h1>' in page


def test_status_page_has_no_inline_script() -> None:
    page = status_page(hostile_document())
    # A script element is code from a file, or data (application/json) that never runs.
    for tag in re.findall(r"<script\b[^>]*>", page, flags=re.IGNORECASE):
        assert "src=" in tag or 'type="application/json"' in tag


def test_status_page_shows_progress_and_time_left() -> None:
    page = status_page(hostile_document())
    assert '<progress id="bar" max="100" value="30.0" aria-labelledby="state"' in page
    assert 'aria-valuetext="30 %, about 35 s left"' in page
    assert '<dd id="steps">3 of 10</dd>' in page
    assert '<dd id="elapsed">29 s</dd>' in page
    assert '<dd id="eta">about 35 s</dd>' in page
    # Without JavaScript the page refreshes itself to its own plain address.
    assert f'<meta http-equiv="refresh" content="2;url=/tasks/report/{TASK_ID}">' in page
    assert f'href="/api/static/{static_name("style.css")}"' in page
    assert f'src="/api/static/{static_name("status.js")}"' in page
    assert f'action="/tasks/report/{TASK_ID}/cancel"' in page


def test_the_status_document_is_embedded_as_data_that_cannot_break_out() -> None:
    page = status_page(hostile_document())
    start = page.index('<script type="application/json" id="status-document"')
    block = page[start : page.index("</script>", start)]
    assert "<script>" not in block[10:] and "\\u003cscript\\u003e" in block
