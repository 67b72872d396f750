"""For tests of apps that use longtask: in-memory backends, a virtual clock, Lambda-shaped
SQS events, and a way to run a task to its end in the test's own process.

    from longtask import testing

    def test_report(app_module):
        testing.in_memory(app_module.tasks)
        task = testing.run_task(app_module.tasks, "report", month="2024-02")
        assert task.status == "done"
        assert testing.result_of(app_module.tasks, task).startswith(b"day,")

HTTP tests go through `chalice.test.Client(app)` as usual: with `in_memory` no AWS (and
no moto) is involved. The worker and dead-letter handlers are the app's real ones, called
with the events Lambda would pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .aws.queue import encode_message
from .backends import (
    Backends,
    Clock,
    MemoryQueue,
    MemoryResults,
    MemoryTaskStore,
    Received,
    memory_backends,
)
from .faults import FaultPlan, faulty, without_faults
from .longtasks import LongTasks
from .model import TaskRecord
from .settings import Settings

__all__ = [
    "FaultPlan",
    "LambdaContext",
    "MemoryQueue",
    "MemoryResults",
    "MemoryTaskStore",
    "VirtualClock",
    "drain",
    "in_memory",
    "memory_backends",
    "result_of",
    "run_task",
    "sqs_event",
]

REGION = "us-east-1"
ACCOUNT = "123456789012"


class VirtualClock:
    """Time that moves only when told to: `clock()` reads it, `advance(s)` moves it."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def advance_to(self, moment: float) -> None:
        self.now = max(self.now, moment)


@dataclass
class LambdaContext:
    """The attributes and the method of the Lambda Python runtime's context object."""

    function_name: str = "worker"
    timeout_seconds: float = 900.0
    clock: Clock = time.monotonic
    # The runtime fills this from AWS_LAMBDA_FUNCTION_MEMORY_SIZE, so it is a string.
    memory_limit_in_mb: str = "128"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = self.clock() + self.timeout_seconds
        self.invoked_function_arn = self.invoked_function_arn or (
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        )
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{os.getpid()}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self.clock()) * 1000))


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def sqs_event(messages: Sequence[Mapping[str, Any]], arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source passes for messages as ReceiveMessage
    returns them (MessageId, ReceiptHandle, Body, MD5OfBody, Attributes, ...)."""
    return {"Records": [_record(m, arn) for m in messages]}


def _record(message: Mapping[str, Any], arn: str) -> dict[str, Any]:
    import base64

    def attribute(value: Mapping[str, Any]) -> dict[str, Any]:
        # The event spells SQS's attribute fields in camelCase and base64-encodes binaries.
        out: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        if "StringValue" in value:
            out["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        return out

    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": REGION,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _as_message(received: Received, clock: Clock) -> dict[str, Any]:
    body = encode_message(received.task_id)
    return {
        "MessageId": received.receipt_handle.split("-", 1)[0],
        "ReceiptHandle": received.receipt_handle,
        "Body": body,
        "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "Attributes": {
            "ApproximateReceiveCount": str(received.receives),
            "SentTimestamp": str(int(clock() * 1000)),
        },
    }


# -- running tasks in the test's process ------------------------------------------------


def in_memory(
    tasks: LongTasks,
    settings: Settings | None = None,
    clock: Clock | None = None,
    faults: FaultPlan | None = None,
) -> Backends:
    """Puts `tasks` on fresh in-memory backends and returns them; with `settings`
    (default: the defaults with a 1 s retry backoff) and `clock` (e.g. a VirtualClock).
    The queue moves a message to its dead letters after LONGTASK_MAX_ATTEMPTS
    receives, as the infra's redrive policy does.

    With `faults`, every call the app makes meets them (faults.py); what this returns
    are the backends without faults, to look at what was stored."""
    settings = settings or Settings(retry_seconds=1.0)
    backends = memory_backends(clock or tasks.clock, max_receives=settings.max_attempts)
    used = backends if faults is None else faulty(backends, faults)
    tasks.use_backends(used, settings, clock)
    return backends


def drain(
    tasks: LongTasks,
    *,
    clock: VirtualClock | None = None,
    timeout_seconds: float = 60.0,
    invocation_seconds: float = 900.0,
    max_deliveries: int = 10_000,
) -> int:
    """Delivers every queued message to the app's worker (and dead letters to its
    dead-letter handler) as Lambda would, until both queues are empty or it made
    `max_deliveries` deliveries; returns how many it made. Messages that wait (a
    retry's backoff, a lease) are waited for: with a VirtualClock (given, or the one
    `in_memory` installed) by moving it, otherwise by sleeping, at most
    `timeout_seconds` in all."""
    if clock is None and isinstance(tasks.clock, VirtualClock):
        clock = tasks.clock
    queue = without_faults(tasks.backends.queue)
    if not isinstance(queue, MemoryQueue):
        raise TypeError("drain() needs the in-memory backends: call testing.in_memory first")
    queues = [(queue, tasks.worker, "worker")]
    if queue.dead_letters is not None:
        queues.append((queue.dead_letters, tasks.dead_letters, "dead_letters"))
    deadline = time.monotonic() + timeout_seconds
    deliveries = 0
    while deliveries < max_deliveries:
        delivered = False
        for source, handler, name in queues:
            received = source.receive()
            if received is None:
                continue
            delivered = True
            deliveries += 1
            message = _as_message(received, source.clock)
            context = LambdaContext(name, invocation_seconds, clock=source.clock)
            try:
                handler(sqs_event([message], queue_arn(name)), context)
            except Exception:
                continue  # Lambda leaves the message: it comes back after its visibility
            source.delete(received.receipt_handle)
        if delivered:
            continue
        waits = [w for w in (q.next_visible_at() for q, _, _ in queues) if w is not None]
        if not waits:
            return deliveries
        if time.monotonic() > deadline:
            raise TimeoutError(f"messages still queued after {timeout_seconds} s")
        if clock is not None:
            clock.advance_to(min(waits))
        else:
            time.sleep(min(max(min(waits) - queue.clock(), 0.01), 0.5))
    return deliveries


def run_task(
    tasks: LongTasks, kind: str, /, *, clock: VirtualClock | None = None, **params: Any
) -> TaskRecord:
    """Starts a task of `kind` (validated as over HTTP), delivers messages until the
    queues are empty, and returns the task's final record. Needs `in_memory(tasks)`."""
    task = tasks.start(kind, **params)
    drain(tasks, clock=clock)
    final: TaskRecord | None = without_faults(tasks.backends.store).get(task.id)
    assert final is not None
    return final


def result_of(tasks: LongTasks, task: TaskRecord | str) -> Any:
    """A done task's result as stored: a JSON value decoded, text as str, else bytes.
    `task` is its record or its id (as an HTTP start's document gives it)."""
    if isinstance(task, str):
        found: TaskRecord | None = without_faults(tasks.backends.store).get(task)
        if found is None:
            raise ValueError(f"there is no task {task!r}")
        return result_of(tasks, found)
    if task.result is None:
        raise ValueError(f"task {task.id} is {task.status.value}, it has no result")
    results = without_faults(tasks.backends.results)
    if not isinstance(results, MemoryResults):
        raise TypeError("result_of() needs the in-memory backends: call testing.in_memory first")
    body, content_type, _ = results.objects[task.result.key]
    media = content_type.split(";", 1)[0].strip()
    if media == "application/json":
        return json.loads(body)
    if media.startswith("text/"):
        return body.decode("utf-8")
    return body
