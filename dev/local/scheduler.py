"""Emulates an EventBridge schedule: calls a Chalice `@app.schedule` handler every so often.

The local stack runs the reconciler this way, every LONGTASK_RECONCILE_SECONDS (on AWS a
rule invokes it each minute). As Lambda does, it imports the handler by the registration's
handler string (`app.reconciler`) and passes a scheduled event and a Lambda context; a
handler that raises is logged and called again at the next tick.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from chalice.app import ScheduledEventConfig

from chalicelib.longtask.settings import Settings
from chalicelib.longtask.testing import ACCOUNT, REGION, LambdaContext
from dev.stage import ROOT

log = logging.getLogger("dev.local.scheduler")


class Shutdown(BaseException):
    """SIGTERM or SIGINT: stop ticking."""


def _shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown()


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


def find_schedule(app: Any, function_name: str) -> Any:
    """The handler Lambda would import for the `@app.schedule` named `function_name`."""
    sources = [s for s in app.event_sources if isinstance(s, ScheduledEventConfig)]
    matches = [s for s in sources if s.name == function_name]
    if not matches:
        names = ", ".join(s.name for s in sources) or "none"
        raise SystemExit(f"app.py schedules no function {function_name!r} (scheduled: {names})")
    module_name, _, attribute = matches[0].handler_string.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(handler):
        raise SystemExit(
            f"Lambda would not find the handler {matches[0].handler_string}: "
            f"{module_name}.py has no callable {attribute!r}"
        )
    return handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", default="reconciler")
    parser.add_argument("--every", type=float, default=None, help="seconds between two calls")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"[{args.function}] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    every = args.every or Settings.from_env().reconcile_seconds
    try:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        app = importlib.import_module("app").app
        handler = find_schedule(app, args.function)
        log.info("calling %s every %g s", args.function, every)
        while True:
            time.sleep(every)
            try:
                handler(scheduled_event(args.function), LambdaContext(args.function, 60.0))
            except Exception:
                log.exception("%s failed; it runs again in %g s", args.function, every)
    except Shutdown:
        return 0


if __name__ == "__main__":
    sys.exit(main())
