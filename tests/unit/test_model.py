"""The task record: ids, statuses and their moves, and the JSON status document that
clients read (its exact fields, nulls while unknown, ISO UTC times)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.longtask.model import (
    TERMINAL,
    TRANSITIONS,
    ErrorInfo,
    Links,
    Progress,
    ResultInfo,
    Status,
    TaskRecord,
    can_move,
    is_task_id,
    iso,
    new_task_id,
    parse_iso,
    sources_of,
    status_document,
)

CREATED = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC).timestamp()
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TASK_ID = "kq3VhZx0Qm2b-_Yt8LpA1w"


# -- ids ------------------------------------------------------------------------------


def test_new_ids_are_22_url_safe_characters() -> None:
    for _ in range(100):
        task_id = new_task_id()
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", task_id)
        assert is_task_id(task_id)


def test_new_ids_do_not_repeat() -> None:
    ids = {new_task_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_new_ids_use_the_whole_alphabet() -> None:
    # 22 base64 characters carry 128 bits only if every one of the 64 symbols occurs.
    seen = set("".join(new_task_id() for _ in range(2_000)))
    assert len(seen) == 64


@pytest.mark.parametrize(
    "text",
    [
        "",
        "../../etc",
        "../../etc/passwd/xxxxxx",  # 23 characters
        "..%2F..%2Fetc%2Fpasswd",  # 22 characters, but % is not in the alphabet
        "....................../",
        "a" * 21,
        "a" * 23,
        "kq3VhZx0Qm2b-_Yt8LpA1w\n",
        " kq3VhZx0Qm2b-_Yt8LpA1w",
        "kq3VhZx0Qm2b+/Yt8LpA1w",  # plain base64, not URL-safe
        "kq3VhZx0Qm2b-_Yt8LpA1é",
        "kq3VhZx0Qm2b-_Yt8LpA1\u0661",  # an Arabic-Indic digit
        "kq3VhZx0Qm2b-_Yt8LpA1=",
    ],
)
def test_is_task_id_refuses_anything_else(text: str) -> None:
    assert not is_task_id(text)


def test_is_task_id_accepts_a_real_id() -> None:
    assert is_task_id(TASK_ID)


# -- statuses and their moves ---------------------------------------------------------


def test_terminal_statuses() -> None:
    assert {s for s in Status if s.is_terminal} == {Status.DONE, Status.FAILED, Status.CANCELLED}
    assert frozenset({Status.DONE, Status.FAILED, Status.CANCELLED}) == TERMINAL


def test_status_values_are_the_documented_words() -> None:
    assert [s.value for s in Status] == ["ready", "started", "error", "done", "failed", "cancelled"]


def test_every_status_has_its_moves_declared() -> None:
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize("source", sorted(TERMINAL))
def test_nothing_leaves_a_finished_task(source: Status) -> None:
    for target in Status:
        assert not can_move(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (Status.READY, Status.STARTED),
        (Status.READY, Status.CANCELLED),
        (Status.READY, Status.FAILED),  # the dead-letter handler gives up on it
        (Status.STARTED, Status.STARTED),  # progress writes, a takeover after a crash
        (Status.STARTED, Status.ERROR),
        (Status.STARTED, Status.DONE),
        (Status.STARTED, Status.FAILED),
        (Status.STARTED, Status.CANCELLED),
        (Status.ERROR, Status.STARTED),  # the retry
        (Status.ERROR, Status.FAILED),
        (Status.ERROR, Status.CANCELLED),
    ],
)
def test_allowed_moves(source: Status, target: Status) -> None:
    assert can_move(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (Status.READY, Status.DONE),  # a result needs a run
        (Status.READY, Status.ERROR),
        (Status.ERROR, Status.DONE),
        (Status.STARTED, Status.READY),
        (Status.ERROR, Status.READY),
        (Status.ERROR, Status.ERROR),
    ],
)
def test_refused_moves(source: Status, target: Status) -> None:
    assert not can_move(source, target)


def test_sources_of() -> None:
    assert sources_of(Status.DONE) == {Status.STARTED}
    assert sources_of(Status.STARTED) == {Status.READY, Status.STARTED, Status.ERROR}
    assert sources_of(Status.CANCELLED) == {Status.READY, Status.STARTED, Status.ERROR}
    assert sources_of(Status.FAILED) == {Status.READY, Status.STARTED, Status.ERROR}
    assert sources_of(Status.ERROR) == {Status.STARTED}
    assert sources_of(Status.READY) == frozenset()
    for target in Status:
        assert not sources_of(target) & TERMINAL


# -- records ------------------------------------------------------------------------


def record(**changes: Any) -> TaskRecord:
    base = TaskRecord(
        id=TASK_ID,
        kind="primes",
        params={"limit": 1_000_000},
        created_at=CREATED,
        updated_at=CREATED,
    )
    return base.evolve(**changes)


# -- the status document --------------------------------------------------------------


LINKS = Links(
    self=f"/api/tasks/primes/{TASK_ID}",
    result=f"/api/tasks/primes/{TASK_ID}/result",
    cancel=f"/api/tasks/primes/{TASK_ID}",
)


def started(**changes: Any) -> TaskRecord:
    """A task 4 s into its first attempt, at block 3 of 10, a step per second so far."""
    fields: dict[str, Any] = {
        "status": Status.STARTED,
        "attempts": 1,
        "started_at": CREATED + 1,
        "updated_at": CREATED + 4,
        "progress": Progress(
            message="Sieving block 3 of 10", step=3, total_steps=10, at=CREATED + 4, rate=1.0
        ),
    }
    return record(**{**fields, **changes})


def document(task: TaskRecord, now: float | None = None) -> dict[str, Any]:
    return status_document(task, LINKS, CREATED + 5 if now is None else now)


def test_status_document_has_exactly_the_documented_shape() -> None:
    doc = document(started())
    assert list(doc) == [
        "id", "kind", "status", "done", "parameters", "progress", "attempts",
        "created_at", "started_at", "updated_at", "finished_at",
        "elapsed_seconds", "eta_seconds", "links", "error", "result", "retry_at",
    ]  # fmt: skip
    assert list(doc["progress"]) == [
        "message", "step", "total_steps", "percent", "rate", "reported_at",
    ]  # fmt: skip
    assert list(doc["links"]) == ["self", "result", "cancel"]
    assert doc == {
        "id": TASK_ID,
        "kind": "primes",
        "status": "started",
        "done": False,
        "parameters": {"limit": 1_000_000},
        "progress": {
            "message": "Sieving block 3 of 10",
            "step": 3,
            "total_steps": 10,
            "percent": 30.0,
            "rate": 1.0,
            "reported_at": "2026-11-28T10:00:04.000Z",
        },
        "attempts": 1,
        "created_at": "2026-11-28T10:00:00.000Z",
        "started_at": "2026-11-28T10:00:01.000Z",
        "updated_at": "2026-11-28T10:00:04.000Z",
        "finished_at": None,
        "elapsed_seconds": 4.0,
        "eta_seconds": 6.0,
        "links": {"self": LINKS.self, "result": None, "cancel": LINKS.cancel},
        "error": None,
        "result": None,
        "retry_at": None,
    }


def test_a_done_document_says_what_its_result_is() -> None:
    info = ResultInfo("results/abc", "text/csv", "report-2024-02.csv", 1234)
    doc = document(started(status=Status.DONE, finished_at=CREATED + 9, result=info))
    assert doc["result"] == {
        "filename": "report-2024-02.csv",
        "content_type": "text/csv",
        "size": 1234,
    }
    assert document(started(status=Status.FAILED, result=info))["result"] is None


@pytest.mark.parametrize("status", list(Status))
def test_done_is_true_exactly_for_the_three_terminal_statuses(status: Status) -> None:
    finished = CREATED + 9 if status.is_terminal else None
    doc = document(started(status=status, finished_at=finished))
    assert doc["status"] == status.value
    assert doc["done"] is (status in {Status.DONE, Status.FAILED, Status.CANCELLED})


@pytest.mark.parametrize("status", list(Status))
def test_result_link_only_when_done_and_cancel_link_only_until_finished(status: Status) -> None:
    doc = document(started(status=status))
    assert doc["links"]["self"] == LINKS.self
    assert doc["links"]["result"] == (LINKS.result if status is Status.DONE else None)
    assert doc["links"]["cancel"] == (None if status.is_terminal else LINKS.cancel)


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.STARTED])
def test_eta_only_while_started(status: Status) -> None:
    assert document(started())["eta_seconds"] is not None
    assert document(started(status=status))["eta_seconds"] is None


@pytest.mark.parametrize(
    "progress",
    [
        Progress("Thinking", step=None, total_steps=None, at=CREATED + 4, rate=1.0),
        Progress("Thinking", step=3, total_steps=None, at=CREATED + 4, rate=1.0),
        Progress("Thinking", step=None, total_steps=10, at=CREATED + 4, rate=1.0),
        Progress("Thinking", step=3, total_steps=0, at=CREATED + 4, rate=1.0),
    ],
)
def test_indeterminate_progress_has_null_percent_and_eta(progress: Progress) -> None:
    doc = document(started(progress=progress))
    assert doc["progress"]["percent"] is None
    assert doc["eta_seconds"] is None
    assert doc["progress"]["message"] == "Thinking"


def test_a_done_task_is_at_100_percent_even_if_its_steps_were_unknown() -> None:
    doc = document(started(status=Status.DONE, progress=Progress("Done"), finished_at=CREATED + 9))
    assert doc["progress"]["percent"] == 100.0


def test_a_cancelled_or_failed_task_keeps_the_percent_it_reached() -> None:
    for status in (Status.CANCELLED, Status.FAILED):
        doc = document(started(status=status, finished_at=CREATED + 9))
        assert doc["progress"]["percent"] == 30.0


@pytest.mark.parametrize(
    ("step", "total", "percent"),
    [(0, 10, 0.0), (1, 3, 33.3), (2, 3, 66.7), (10, 10, 100.0), (12, 10, 100.0), (-1, 10, 0.0)],
)
def test_percent_is_rounded_and_kept_within_0_and_100(
    step: int, total: int, percent: float
) -> None:
    assert Progress(step=step, total_steps=total).percent == percent


def test_a_queued_task_has_no_start_elapsed_or_eta() -> None:
    doc = document(record())
    assert doc["status"] == "ready"
    assert doc["started_at"] is None
    assert doc["elapsed_seconds"] is None
    assert doc["eta_seconds"] is None
    assert doc["progress"] == {
        "message": "",
        "step": None,
        "total_steps": None,
        "percent": None,
        "rate": None,
        "reported_at": None,
    }
    assert doc["attempts"] == 0


def test_a_task_waiting_for_its_retry_says_when_the_next_attempt_is_due() -> None:
    failed_once = started(status=Status.ERROR, updated_at=CREATED + 4)
    assert status_document(failed_once, LINKS, CREATED + 5, retry_delay=8.0)["retry_at"] == (
        "2026-11-28T10:00:12.000Z"
    )
    assert document(started())["retry_at"] is None  # running: no retry is due


def test_elapsed_counts_while_running_and_stops_when_finished() -> None:
    running = started()
    assert document(running, now=CREATED + 61)["elapsed_seconds"] == 60.0
    finished = started(status=Status.DONE, finished_at=CREATED + 31)
    assert document(finished, now=CREATED + 3600)["elapsed_seconds"] == 30.0


def test_error_after_a_failed_attempt() -> None:
    doc = document(started(status=Status.ERROR, error=ErrorInfo("ValueError", "bad input")))
    assert doc["error"] == {"type": "ValueError", "message": "bad input"}
    assert doc["done"] is False


def test_timestamps_are_iso_utc_with_milliseconds() -> None:
    task = started(status=Status.DONE, finished_at=CREATED + 9.25)
    doc = document(task)
    for name in ("created_at", "started_at", "updated_at", "finished_at"):
        assert TIMESTAMP.fullmatch(doc[name]), doc[name]
    assert doc["finished_at"] == "2026-11-28T10:00:09.250Z"


def test_iso_and_parse_iso_round_trip() -> None:
    assert iso(None) is None
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1.5) == "1970-01-01T00:00:01.500Z"
    assert parse_iso(iso(CREATED + 0.123)) == pytest.approx(CREATED + 0.123)
    assert parse_iso(None) is None
    assert parse_iso("") is None


def test_eta_in_the_document_follows_the_progress() -> None:
    # Same record, looked at later: the estimate counts down between progress reports.
    task = started()
    assert document(task, now=CREATED + 4)["eta_seconds"] == 7.0
    assert document(task, now=CREATED + 4.5)["eta_seconds"] == 6.5


def test_a_task_too_young_to_judge_has_no_eta() -> None:
    task = started(started_at=CREATED + 4, progress=Progress("x", 1, 10, CREATED + 4.5, 2.0))
    assert document(task, now=CREATED + 5)["eta_seconds"] is None
