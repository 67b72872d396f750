"""The local scheduler calls what EventBridge would: each `@app.schedule` at its rate,
longtask's reconciler every LONGTASK_RECONCILE_SECONDS, and a failing handler again."""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from chalice import Chalice, Cron, Rate

from dev.local import scheduler


@pytest.fixture
def app_module() -> Iterator[tuple[Chalice, list[str]]]:
    """An importable module `scheduled_app` with an app and a log of the calls."""
    app = Chalice(app_name="scheduled")
    calls: list[str] = []
    module = types.ModuleType("scheduled_app")

    @app.schedule(Rate(1, Rate.MINUTES), name="reconciler")
    def reconciler(event: Any) -> None:
        calls.append("reconciler")

    @app.schedule(Rate(2, Rate.HOURS), name="report")
    def report(event: Any) -> None:
        calls.append("report")
        raise RuntimeError("report broke")

    @app.schedule(Cron(0, 10, "*", "*", "?", "*"), name="nightly")
    def nightly(event: Any) -> None:
        calls.append("nightly")

    for source in app.event_sources:
        source.handler_string = f"scheduled_app.{source.name}"
    module.reconciler, module.report, module.nightly = reconciler, report, nightly  # type: ignore[attr-defined]
    sys.modules["scheduled_app"] = module
    yield app, calls
    del sys.modules["scheduled_app"]


def test_the_reconciler_runs_at_the_local_interval_and_others_at_their_rate(
    app_module: tuple[Chalice, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = app_module
    with caplog.at_level(logging.INFO):
        found = {s.name: s.every for s in scheduler.schedules(app, reconcile_seconds=2.5)}
    assert found == {"reconciler": 2.5, "report": 7200.0}
    assert "nightly runs on" in caplog.text  # a cron expression is said to be left out


def test_a_tick_calls_what_is_due_with_a_scheduled_event_and_survives_a_failure(
    app_module: tuple[Chalice, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    app, calls = app_module
    due = scheduler.schedules(app, reconcile_seconds=1)
    for schedule in due:
        schedule.next_at = 0.0
    scheduler.tick(due)
    assert sorted(calls) == ["reconciler", "report"]
    assert "report failed; it runs again in 7200 s" in caplog.text
    scheduler.tick(due)  # neither is due again yet
    assert len(calls) == 2


def test_a_scheduled_event_is_what_eventbridge_sends() -> None:
    event = scheduler.scheduled_event("reconciler")
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["resources"][0].endswith(":rule/reconciler")
