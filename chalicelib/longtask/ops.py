"""The operator's command: list failed tasks, start one of them again.

    python -m longtask.ops failed [--since 1d] [--limit 100]
    python -m longtask.ops retry TASK_ID

(`python -m chalicelib.longtask.ops` in this repository.) It reads the same LONGTASK_*
settings and AWS credentials as the functions, from the environment.

A retry is a new task with the failed one's kind, parameters and owner, not the old
record set back to ready: the failed record stays as it was, the evidence of what went
wrong (its error, its attempts), and a finished task never changes state again, which
is what keeps a late worker from ever reviving or overwriting one. The owner finds the
new task at the top of their list.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from .backends import Backends
from .errors import NotFailed, TaskNotFound
from .model import iso
from .service import TaskService
from .settings import ConfigError, Settings
from .tasks import TaskRegistry

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float) -> float:
    """`1d`, `12h`, `30m`, `90s`, `2w` before now, or a UTC date or time (`2026-11-28`)."""
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if match:
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since {text!r}: give an age such as 1d, 12h, 30m, or a date such as 2026-11-28"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m longtask.ops", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    failed = commands.add_parser("failed", help="list the tasks that failed since a moment")
    failed.add_argument("--since", default="1d", help="an age (1d, 12h, 30m) or a date; 1d")
    failed.add_argument("--limit", type=int, default=100, help="at most this many; 100")
    retry = commands.add_parser("retry", help="start a failed task again, as a new task")
    retry.add_argument("task_id")
    return parser


def main(
    argv: list[str] | None = None,
    *,
    backends: Callable[[Settings], Backends] | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Runs one command; 0 on success, 1 when the task cannot be retried, 2 on bad usage."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if backends is None:
            from .aws import aws_backends

            backends = aws_backends
        made = backends(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    service = TaskService(TaskRegistry(), lambda: settings, lambda: made, clock)
    if args.command == "failed":
        now = clock()
        try:
            since = parse_since(args.since, now)
        except argparse.ArgumentTypeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        tasks = service.failed_between(since, now + 1, max(1, min(args.limit, 100)))
        for task in tasks:
            error = f"{task.error.type}: {task.error.message}" if task.error else ""
            print(f"{task.id}  {task.kind}  {iso(task.finished_at)}  {error}")
        print(f"{len(tasks)} failed task(s) since {iso(since)}", file=sys.stderr)
        return 0
    try:
        new = service.retry(args.task_id)
    except TaskNotFound:
        print(f"error: there is no task {args.task_id}", file=sys.stderr)
        return 1
    except NotFailed as exc:
        print(f"error: task {args.task_id} is {exc.task.status.value}, not failed", file=sys.stderr)
        return 1
    print(new.id)
    print(f"queued {new.kind} again as task {new.id}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
