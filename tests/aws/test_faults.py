"""Fault injection in process: one message delivered many times at once, workers that die.

The worker Lambda runs on threads over moto, as `deliver()` plays it, but with the
faults put in on purpose: copies of one message handed to concurrent invocations, and
a "worker" that dies inside the task (a BaseException that no handler catches, so the
invocation ends as a killed runtime would: no write after the claim, message kept).
Executions are counted by the task itself, result writes by the botocore hook.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.longtask import Number, TaskContext

from .conftest import Aws, LambdaContext, deliver, event_of, start, status

DEADLINE_SECONDS = 30.0


class WorkerDied(BaseException):
    """Stands in for kill -9: unwinds past every handler, nothing after it is written."""


@dataclasses.dataclass
class Executions:
    """What the test task kinds record about their runs."""

    count: int = 0
    attempts: list[int] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def ran(self, ctx: TaskContext) -> None:
        with self.lock:
            self.count += 1
            self.attempts.append(ctx.attempt)


EXECUTIONS = Executions()


def counted(params: dict[str, Any], ctx: TaskContext) -> dict[str, float]:
    """Counts its execution, then works for `seconds` with progress every 0.1 s."""
    EXECUTIONS.ran(ctx)
    deadline = time.monotonic() + params["seconds"]
    while time.monotonic() < deadline:
        time.sleep(0.1)
        ctx.log_progress("working")
    return {"worked": params["seconds"]}


def dies(params: dict[str, Any], ctx: TaskContext) -> None:
    """Counts its execution, works `seconds` with progress, then its worker dies."""
    EXECUTIONS.ran(ctx)
    deadline = time.monotonic() + params["seconds"]
    while time.monotonic() < deadline:
        time.sleep(0.05)
        ctx.log_progress("working")
    raise WorkerDied


@pytest.fixture
def kinds(aws: Aws) -> Iterator[Executions]:
    """The test task kinds, declared on the app once; a fresh execution count per test."""
    for kind, function in (("fault-counted", counted), ("fault-dies", dies)):
        if aws.tasks.registry.get(kind) is None:
            aws.tasks.registry.add(kind, function, params={"seconds": Number(min=0, max=60)})
    EXECUTIONS.count = 0
    EXECUTIONS.attempts.clear()
    yield EXECUTIONS


def short_lease(aws: Aws, monkeypatch: pytest.MonkeyPatch, seconds: float, **more: Any) -> None:
    """A lease of `seconds` (the suite's is 30) so that a takeover happens within the test."""
    settings = dataclasses.replace(aws.tasks.settings, lease_seconds=seconds, **more)
    monkeypatch.setattr(aws.tasks.runner, "settings", settings)


def invoke(aws: Aws, message: dict[str, Any], queue: str = "tasks") -> str:
    """One Lambda invocation for one received message: "deleted", "kept" or "died"."""
    url = aws.queue_url if queue == "tasks" else aws.dlq_url
    function = "worker" if queue == "tasks" else "dead_letters"
    handler = getattr(aws.app_module, function)
    try:
        handler(event_of(message, queue), LambdaContext(function, 60))
    except WorkerDied:
        return "died"
    except Exception:
        return "kept"
    aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return "deleted"


def receive(aws: Aws, queue: str = "tasks") -> dict[str, Any] | None:
    url = aws.queue_url if queue == "tasks" else aws.dlq_url
    messages = aws.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"]
    ).get("Messages", [])
    return messages[0] if messages else None


def messages_left(aws: Aws) -> dict[str, int]:
    """Visible and in-flight messages of the task queue and the DLQ."""
    counts = {}
    for name, url in (("queue", aws.queue_url), ("dlq", aws.dlq_url)):
        attributes = aws.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        counts[name] = sum(int(value) for value in attributes.values())
    return counts


def result_attempts(aws: Aws, task_id: str) -> list[int]:
    """The attempts that wrote a result object for the task (its S3 tags say whose)."""
    bucket = aws.tasks.settings.bucket
    listing = aws.s3.list_objects_v2(Bucket=bucket, Prefix="results/")
    attempts = []
    for item in listing.get("Contents", []):
        tags = aws.s3.get_object_tagging(Bucket=bucket, Key=item["Key"])["TagSet"]
        labels = {tag["Key"]: tag["Value"] for tag in tags}
        if labels.get("task") == task_id:
            attempts.append(int(labels["attempt"]))
    return sorted(attempts)


def until(condition: Callable[[], Any], what: str, timeout: float = DEADLINE_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)
    return value


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One invocation: which queue, what became of the message, the task before it."""

    queue: str
    outcome: str
    status: str
    attempts: int


def play_lambda(
    aws: Aws, task_id: str, stop: Callable[[list[Delivery]], bool] = lambda _: False
) -> list[Delivery]:
    """Lambda's event sources on both queues, invocation after invocation, until the task
    has ended and no message is left (or `stop` says so); returns every invocation."""
    deliveries: list[Delivery] = []

    def settled() -> bool:
        for queue in ("tasks", "dlq"):
            message = receive(aws, queue)
            if message is not None:
                before = aws.tasks.backends.store.get(task_id)
                outcome = invoke(aws, message, queue)
                deliveries.append(Delivery(queue, outcome, before.status.value, before.attempts))
        if stop(deliveries):
            return True
        task = aws.tasks.backends.store.get(task_id)
        return bool(task and task.is_terminal and messages_left(aws) == {"queue": 0, "dlq": 0})

    until(settled, "the task's end with no message left")
    return deliveries


def tally(deliveries: list[Delivery]) -> Counter[str]:
    return Counter(f"{d.queue}:{d.outcome}" for d in deliveries)


@pytest.mark.parametrize("copies", [2, 10])
def test_copies_of_one_message_delivered_at_once_run_the_task_once(
    aws: Aws, client: Any, kinds: Executions, monkeypatch: pytest.MonkeyPatch, copies: int
) -> None:
    short_lease(aws, monkeypatch, 2)
    began = time.monotonic()
    document = start(client, "fault-counted", {"seconds": 1})
    for _ in range(copies - 1):
        aws.tasks.backends.queue.send(document["id"])
    messages: list[dict[str, Any]] = []

    def received_every_copy() -> bool:
        message = receive(aws)
        if message is not None:
            messages.append(message)
        return len(messages) == copies

    until(received_every_copy, f"receiving the {copies} copies")
    aws.calls.reset()

    # Every copy in its own invocation, all let go at the same instant.
    gate = threading.Barrier(copies)
    outcomes: list[str] = []

    def lambda_invocation(message: dict[str, Any]) -> None:
        gate.wait()
        outcomes.append(invoke(aws, message))

    threads = [threading.Thread(target=lambda_invocation, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_SECONDS)
    # One invocation ran the task; each duplicate found its live lease and went back.
    assert sorted(outcomes) == ["deleted"] + ["kept"] * (copies - 1)
    assert kinds.count == 1 and aws.calls.counts["PutObject"] == 1

    # The duplicates come back once that lease would have run out, find it done, go away.
    later = play_lambda(aws, document["id"])
    assert tally(later) == {"tasks:deleted": copies - 1}
    final = status(client, document)
    assert final["status"] == "done" and final["attempts"] == 1
    assert kinds.count == 1 and aws.calls.counts["PutObject"] == 1
    assert result_attempts(aws, document["id"]) == [1]
    print(
        f"\nFIGURES copies={copies}: started 1, done 1, failed 0, executions {kinds.count}, "
        f"results written {aws.calls.counts['PutObject']}, deliveries {copies + len(later)}, "
        f"{time.monotonic() - began:.1f} s"
    )


def test_a_worker_dying_right_after_each_claim_fails_the_task_after_the_maximum(
    aws: Aws, client: Any, kinds: Executions, monkeypatch: pytest.MonkeyPatch
) -> None:
    short_lease(aws, monkeypatch, 1)
    began = time.monotonic()
    document = start(client, "fault-dies", {"seconds": 0})
    seen = tally(play_lambda(aws, document["id"]))
    final = status(client, document)
    # Three attempts, each taken over after its lease; then SQS's redrive and the
    # dead-letter handler, which records what the workers never could.
    assert kinds.attempts == [1, 2, 3]
    assert seen == {"tasks:died": 3, "dlq:deleted": 1}
    assert final["status"] == "failed" and final["attempts"] == 3
    assert final["error"]["type"] == "WorkerLost"
    assert result_attempts(aws, document["id"]) == []
    print(
        f"\nFIGURES dies-after-claim: started 1, done 0, failed 1, executions {kinds.count}, "
        f"results written 0, deliveries {dict(seen)}, {time.monotonic() - began:.1f} s"
    )


def test_a_worker_dying_mid_task_on_every_attempt_still_gets_every_attempt(
    aws: Aws, client: Any, kinds: Executions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lease 2 s, progress every 0.1 s: the worker dies 1.9 s into each attempt, after
    # many progress writes, as a real crash mid-task would. (Before the fix of 99378f1
    # the lease then ran about 0.8 s past the message's visibility, every time.)
    short_lease(aws, monkeypatch, 2, progress_interval=0.1)
    began = time.monotonic()
    document = start(client, "fault-dies", {"seconds": 1.9})
    deliveries = play_lambda(aws, document["id"], stop=lambda d: bool(d) and d[-1].queue == "dlq")
    print(
        f"\nFIGURES dies-mid-task: started 1, executions {kinds.count}, results written 0, "
        f"deliveries {[(d.queue, d.outcome, d.status, d.attempts) for d in deliveries]}, "
        f"{time.monotonic() - began:.1f} s"
    )
    # SQS may give up on the message only once every attempt has run (and died).
    assert deliveries[-1].queue == "dlq" and deliveries[-1].attempts == 3
    deliveries += play_lambda(aws, document["id"])
    final = status(client, document)
    assert final["status"] == "failed" and final["error"]["type"] == "WorkerLost"
    assert final["attempts"] == 3 and kinds.attempts == [1, 2, 3]


def test_a_worker_dying_between_its_claim_and_hiding_the_message_is_replaced_after_a_lease(
    aws: Aws, client: Any, kinds: Executions, monkeypatch: pytest.MonkeyPatch
) -> None:
    short_lease(aws, monkeypatch, 1)
    document = start(client, "fault-counted", {"seconds": 0})
    armed = [True]

    def die_after_the_claim(http_response: Any, **_: Any) -> None:
        if armed[0] and http_response.status_code == 200:
            armed[0] = False
            raise WorkerDied

    # The claim is the first UpdateItem of an invocation.
    events = aws.tasks.backends.store.client.meta.events
    events.register("after-call.dynamodb.UpdateItem", die_after_the_claim)
    try:
        message = receive(aws)
        assert message is not None and invoke(aws, message) == "died"
    finally:
        events.unregister("after-call.dynamodb.UpdateItem", die_after_the_claim)
    task = aws.tasks.backends.store.get(document["id"])
    assert task is not None and task.attempts == 1 and kinds.count == 0
    # As after any crash, the next delivery should come once the lease has run out.
    again = until(lambda: receive(aws), "the message's return after the lease", timeout=4)
    assert invoke(aws, again) == "deleted"
    final = status(client, document)
    assert final["status"] == "done" and final["attempts"] == 2


def test_a_dead_lettered_copy_does_not_fail_a_task_that_has_attempts_left(
    aws: Aws, client: Any
) -> None:
    document = start(client, "sleep", {"seconds": 0, "fail_times": 1})
    assert deliver(aws, max_messages=1) == ["kept"]  # attempt 1 failed, its retry is queued
    # A copy of the task's message that SQS gave up on (a duplicate delivered while the
    # task ran under a live lease, maxReceiveCount times) reaches the DLQ handler now.
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=json.dumps({"id": document["id"]}))
    assert deliver(aws, queue="dlq") == ["deleted"]
    play_lambda(aws, document["id"])
    final = status(client, document)
    assert final["status"] == "done" and final["attempts"] == 2, final


def test_a_task_failing_every_time_leaves_no_message_behind(
    aws: Aws, client: Any, kinds: Executions
) -> None:
    began = time.monotonic()
    document = start(client, "sleep", {"seconds": 0, "fail_times": 3})
    assert deliver(aws) == ["kept", "kept", "deleted"]
    final = status(client, document)
    assert final["status"] == "failed" and final["attempts"] == 3
    assert final["error"]["type"] == "PlannedFailure"
    assert "attempt 3" in final["error"]["message"]
    assert messages_left(aws) == {"queue": 0, "dlq": 0}
    print(
        f"\nFIGURES poison: started 1, done 0, failed 1, executions {final['attempts']}, "
        f"results written {len(result_attempts(aws, document['id']))}, "
        f"{time.monotonic() - began:.1f} s"
    )
