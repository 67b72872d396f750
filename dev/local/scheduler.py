"""Emulates EventBridge: calls each `@app.schedule` handler of app.py at its rate.

Longtask's reconciler (the schedule named `reconciler`) runs every
LONGTASK_RECONCILE_SECONDS instead of each minute, so that a local stack repairs what
went stale quickly; every other `Rate(...)` schedule runs at its own rate, and a cron
expression is listed as not emulated. As Lambda does, each handler is imported by its
registration's handler string (`app.reconciler`) and gets a scheduled event and a Lambda
context; a handler that raises is logged and called again at its next tick. An app
without schedules leaves this process idle.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalice.app import Rate, ScheduledEventConfig

from chalicelib.longtask.settings import Settings
from chalicelib.longtask.testing import ACCOUNT, REGION, LambdaContext
from dev.local.worker import Shutdown, begin

log = logging.getLogger("dev.local.scheduler")

RECONCILER = "reconciler"
_UNIT_SECONDS = {Rate.MINUTES: 60, Rate.HOURS: 3600, Rate.DAYS: 86400}
# The longest a tick waits: SIGTERM ends the process at once anyway.
IDLE_SECONDS = 3600.0


@dataclass
class Schedule:
    name: str
    handler: Any
    every: float
    next_at: float = 0.0


def scheduled_event(rule: str) -> dict[str, Any]:
    """What EventBridge passes to a function on a schedule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


def handler_of(source: ScheduledEventConfig) -> Any:
    """The handler Lambda would import for a schedule."""
    module_name, _, attribute = source.handler_string.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(handler):
        raise SystemExit(
            f"Lambda would not find the handler {source.handler_string}: "
            f"{module_name}.py has no callable {attribute!r}"
        )
    return handler


def schedules(app: Any, reconcile_seconds: float) -> list[Schedule]:
    """Each schedule of `app` this process emulates, first due one period from now."""
    found = []
    for source in app.event_sources:
        if not isinstance(source, ScheduledEventConfig):
            continue
        expression = source.schedule_expression
        if source.name == RECONCILER:
            every = reconcile_seconds
        elif isinstance(expression, Rate):
            every = float(expression.value * _UNIT_SECONDS[expression.unit])
        else:
            log.info("%s runs on %r on AWS; not emulated here", source.name, expression)
            continue
        found.append(Schedule(source.name, handler_of(source), every, time.monotonic() + every))
    return found


def tick(due: list[Schedule]) -> None:
    """Calls each schedule that is due, and sets when it is due again."""
    now = time.monotonic()
    for schedule in due:
        if schedule.next_at > now:
            continue
        schedule.next_at = now + schedule.every
        try:
            schedule.handler(scheduled_event(schedule.name), LambdaContext(schedule.name, 60.0))
        except Exception:
            log.exception("%s failed; it runs again in %g s", schedule.name, schedule.every)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="scheduler", help="prefix of this process's log lines")
    args = parser.parse_args(argv)
    begin(args.label)
    try:
        app = importlib.import_module("app").app
        due = schedules(app, Settings.from_env().reconcile_seconds)
        for schedule in due:
            log.info("calling %s every %g s", schedule.name, schedule.every)
        while True:
            wait = min((s.next_at for s in due), default=time.monotonic() + IDLE_SECONDS)
            time.sleep(max(wait - time.monotonic(), 0.0))
            tick(due)
    except Shutdown:
        return 0


if __name__ == "__main__":
    sys.exit(main())
