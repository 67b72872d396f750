"""Emulates Lambda's SQS event source mapping: polls a queue, calls a Chalice SQS handler.

What Lambda does, and so what this does:
- long-polls the queue that app.py registered for the function (`@app.on_sqs_message`),
  receiving up to the registration's batch_size messages;
- calls the handler that Lambda would import (the registration's handler string, e.g.
  `app.worker`) with the real SQS event and a Lambda context;
- on a normal return, deletes every message of the batch. Chalice creates the event
  source mapping without `FunctionResponseTypes: ReportBatchItemFailures`, so Lambda
  ignores a returned `batchItemFailures` and so does this (with a warning): a handler
  keeps a message for redelivery by raising;
- on an exception, deletes nothing: SQS shows the messages again after the queue's
  visibility timeout and moves them to the dead-letter queue after maxReceiveCount;
- on a timeout, aborts the invocation without running any of its `finally` blocks and
  starts a fresh runtime (here: re-executes this process), deleting nothing.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from chalice import Chalice
from chalice.app import SQSEventConfig

from chalicelib.longtask.testing import LambdaContext, sqs_event
from dev import stage
from dev.stage import ROOT

log = logging.getLogger("dev.local.worker")

# Short, so that SIGTERM never waits long for a poll to end.
POLL_SECONDS = 2
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


class Shutdown(BaseException):
    """SIGTERM or SIGINT: stop polling (a BaseException so no handler swallows it)."""


@dataclass(frozen=True)
class EventSource:
    """One `@app.on_sqs_message` registration, resolved as Lambda would resolve it."""

    function_name: str
    handler: Callable[[dict[str, Any], Any], Any]
    handler_string: str
    queue_name: str
    batch_size: int


def find_event_source(app: Chalice, function_name: str) -> EventSource:
    """The SQS registration of `function_name` in `app`, with the handler Lambda imports."""
    sources = [s for s in app.event_sources if isinstance(s, SQSEventConfig)]
    matches = [s for s in sources if s.name == function_name]
    if not matches:
        names = ", ".join(s.name for s in sources) or "none"
        raise SystemExit(
            f"app.py registers no @app.on_sqs_message function named {function_name!r} "
            f"(registered: {names})"
        )
    source = matches[0]
    # Lambda imports the handler by this string ("app.worker"); an object that only the
    # app knows (not a module attribute) would fail there, so it fails here too.
    module_name, _, attribute = source.handler_string.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(handler):
        raise SystemExit(
            f"Lambda would not find the handler {source.handler_string} of function "
            f"{function_name!r}: {module_name}.py has no callable {attribute!r}"
        )
    queue = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
    return EventSource(
        function_name=function_name,
        handler=handler,
        handler_string=source.handler_string,
        queue_name=queue,
        batch_size=min(max(source.batch_size, 1), 10),
    )


class Poller:
    """The event source mapping of one function: receive, invoke, delete."""

    def __init__(
        self,
        source: EventSource,
        sqs: Any,
        timeout: float,
        memory_size: int,
        deployed_name: str,
    ) -> None:
        self.source = source
        self.sqs = sqs
        self.timeout = timeout
        self.memory_size = memory_size
        self.deployed_name = deployed_name
        self.queue_url: str = sqs.get_queue_url(QueueName=source.queue_name)["QueueUrl"]
        self.queue_arn: str = sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self._invocation_lock = threading.Lock()
        self._invocation_over = True

    def run_forever(self) -> None:
        log.info(
            "polling %s for %s (batch %d, timeout %g s)",
            self.source.queue_name,
            self.source.handler_string,
            self.source.batch_size,
            self.timeout,
        )
        while True:
            messages = self._receive()
            if messages:
                self.invoke(messages)

    def _receive(self) -> list[dict[str, Any]]:
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.source.batch_size,
                WaitTimeSeconds=POLL_SECONDS,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except (BotoCoreError, ClientError) as error:
            # Lambda's poller retries too; the stack notices if moto itself is gone.
            log.warning("ReceiveMessage failed, retrying: %s", error)
            time.sleep(1)
            return []
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def invoke(self, messages: list[dict[str, Any]]) -> bool:
        """One invocation; True when the handler returned normally."""
        context = LambdaContext(
            function_name=self.deployed_name,
            timeout_seconds=self.timeout,
            memory_limit_in_mb=str(self.memory_size),
        )
        ids = [m["MessageId"] for m in messages]
        watchdog = threading.Timer(self.timeout, self._time_out, args=(context, ids))
        watchdog.daemon = True
        with self._invocation_lock:
            self._invocation_over = False
        watchdog.start()
        started = time.monotonic()
        failure: Exception | None = None
        details = ""
        try:
            result = self.source.handler(sqs_event(messages, self.queue_arn), context)
        except Exception as error:
            failure = error
            details = traceback.format_exc().rstrip()
        finally:
            with self._invocation_lock:
                self._invocation_over = True
            watchdog.cancel()
        if failure is not None and type(failure).__name__ == "RetryLater":
            # The handler keeps the message on purpose (a backoff, or a task that another
            # worker runs): an expected redelivery, not an error worth a traceback.
            log.info("invocation %s: %s", context.aws_request_id, failure)
            return False
        if failure is not None:
            log.error(
                "invocation %s failed after %.2f s, messages %s stay for redelivery: %s: %s\n%s",
                context.aws_request_id,
                time.monotonic() - started,
                ", ".join(ids),
                type(failure).__name__,
                failure,
                details,
            )
            return False
        if isinstance(result, dict) and result.get("batchItemFailures"):
            log.warning(
                "the handler returned batchItemFailures, which Lambda ignores for a Chalice "
                "SQS event source (no ReportBatchItemFailures); deleting the whole batch. "
                "Raise an exception to keep messages for redelivery."
            )
        self._delete(messages)
        return True

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        for failure in response.get("Failed", []):
            log.warning("DeleteMessage failed: %s", failure)

    def _time_out(self, context: LambdaContext, ids: list[str]) -> None:
        """Runs on the watchdog thread when an invocation outlives the timeout."""
        with self._invocation_lock:
            if self._invocation_over:
                return
            main = sys._current_frames().get(threading.main_thread().ident or 0)
            where = "".join(traceback.format_stack(main)) if main else "(unknown)\n"
            log.error(
                "invocation %s timed out after %g s, messages %s stay for redelivery and "
                "the runtime restarts; the handler was at:\n%s",
                context.aws_request_id,
                self.timeout,
                ", ".join(ids),
                where.rstrip(),
            )
            restart_runtime()


def restart_runtime() -> None:
    """Replace this process by a fresh one, as Lambda does after a timeout: no `finally`
    of the aborted invocation runs and no state of it survives (same pid, so the stack
    keeps supervising it)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execv(sys.executable, [sys.executable, "-m", "dev.local.worker", *sys.argv[1:]])


def _shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown


def begin(label: str) -> None:
    """What a local function process does first, as Lambda's runtime would: log lines
    prefixed by `label`, SIGTERM and SIGINT raise Shutdown, and app.py is importable."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"[{label}] %(levelname)s %(name)s: %(message)s",
    )
    # botocore logs every credential and endpoint lookup at INFO.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--function", default="worker", help="the Lambda function name in app.py (worker)"
    )
    parser.add_argument("--stage", default="dev")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds before an invocation is aborted (default: its lambda_timeout)",
    )
    parser.add_argument("--label", default=None, help="prefix of this process's log lines")
    args = parser.parse_args(argv)

    begin(args.label or args.function)
    try:
        app = importlib.import_module("app").app
        source = find_event_source(app, args.function)
        config = stage.chalice_config(args.function, args.stage)
        poller = Poller(
            source,
            # AWS_ENDPOINT_URL and the credentials come from the environment, as in Lambda.
            boto3.client("sqs", region_name=os.environ.get("AWS_DEFAULT_REGION", REGION)),
            timeout=args.timeout or stage.lambda_timeout(args.function, args.stage),
            memory_size=stage.lambda_memory_size(args.function, args.stage),
            # Chalice deploys the function as <app_name>-<stage>-<name>.
            deployed_name=f"{config.app_name}-{args.stage}-{args.function}",
        )
        poller.run_forever()
    except Shutdown:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
