"""The local stack's scheduler runs the reconciler, and it repairs what went stale on a
real moto: a task whose message was lost, a task whose worker died with its message,
and an ended task that still holds its owner's place, each then ending as it should."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunningStack, start_stack
from .test_faults import Workers, finished, record, result, start, status, until

STALE_SECONDS = 2
RECONCILE_SECONDS = 1


@pytest.fixture(scope="module")
def stale_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack without workers that takes a task for stuck 2 s after it should have moved
    on, and looks for such tasks every second."""
    running = start_stack(
        env={
            "LONGTASK_STALE_SECONDS": str(STALE_SECONDS),
            "LONGTASK_RECONCILE_SECONDS": str(RECONCILE_SECONDS),
            "LONGTASK_LEASE_SECONDS": "3",
        },
        workers=0,
        log_dir=tmp_path_factory.mktemp("stale"),
    )
    yield running
    running.stop()


def purge(stack: RunningStack) -> None:
    """Every visible message of the task queue lost (received and deleted: SQS allows a
    PurgeQueue once a minute)."""
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.env["LONGTASK_QUEUE"])["QueueUrl"]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def set_attributes(stack: RunningStack, task_id: str, **values: str | float | int) -> None:
    names = {f"#{k}": k for k in values}
    attributes = {
        f":{k}": {"S": v} if isinstance(v, str) else {"N": repr(v)} for k, v in values.items()
    }
    stack.client("dynamodb").update_item(
        TableName=stack.env["LONGTASK_TABLE"],
        Key={"id": {"S": task_id}},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=attributes,
    )


_RUN = re.compile(r'\{"_aws":\{"Timestamp":(\d+)')


def repaired(stack: RunningStack, task_id: str, words: str, stale_from: float) -> None:
    """Waits for the repair, and checks that it came within two of the reconciler's runs
    from the time the task was stale (`stale_from`): each run logs one metric line."""
    pattern = re.compile(rf"task {task_id}: .*{words}")
    match = until(
        lambda: pattern.search(stack.output()),
        10 + 4 * (STALE_SECONDS + RECONCILE_SECONDS),
        f"the reconciler's repair of {task_id} ({words})",
        stack,
    )
    before = stack.output()[: match.start()]
    runs = [int(m[1]) / 1000 for m in _RUN.finditer(before)]
    # The runs that already saw it stale and did not repair it (the repairing run's own
    # line comes after the repair's).
    missed = [at for at in runs if at >= stale_from]
    assert len(missed) <= 1, f"{len(missed)} runs saw {task_id} stale before its repair"


def test_lost_messages_and_a_dead_worker_are_repaired_and_the_tasks_end(
    stale_stack: RunningStack, tmp_path: Path
) -> None:
    lost = start(stale_stack, "primes", limit=2000)
    orphan = start(stale_stack, "primes", limit=3000)
    purge(stale_stack)  # both messages lost: nothing would ever run them
    # The second was claimed by a worker that died with its message, long ago.
    past = time.time() - 60
    set_attributes(
        stale_stack,
        orphan["id"],
        status="started",
        attempts=1,
        lease_until=past,
        due_at=past + STALE_SECONDS,
    )
    planted_at = time.time()

    stale_at = float(record(stale_stack, lost["id"])["due_at"])
    repaired(stale_stack, lost["id"], "ready and overdue .* queued again", stale_at)
    repaired(stale_stack, orphan["id"], "started and overdue .* queued again", planted_at)
    workers = Workers(stale_stack, tmp_path)
    workers.start()
    try:
        for document, limit in ((lost, 2000), (orphan, 3000)):
            final = finished(stale_stack, document, timeout=60)
            assert final["status"] == "done", final
            assert result(stale_stack, document)["limit"] == limit
        assert finished(stale_stack, orphan, 1)["attempts"] == 2  # taken over
        for document in (lost, orphan):
            assert "counted" not in record(stale_stack, document["id"])  # place back
            assert "due_at" not in record(stale_stack, document["id"])  # out of the index
    finally:
        workers.stop()


def test_an_ended_task_still_holding_its_place_gives_it_back(
    stale_stack: RunningStack,
) -> None:
    task = start(stale_stack, "primes", limit=1000)
    purge(stale_stack)
    owner = record(stale_stack, task["id"])["owner"]
    past = time.time() - 60
    # Ended by a write that did not give the place back (as an older version's did).
    set_attributes(
        stale_stack,
        task["id"],
        status="cancelled",
        finished_at="2026-01-01T00:00:00Z",
        counted=owner,
        due_at=past,
    )
    repaired(stale_stack, task["id"], "its owner's place is back", time.time())
    assert "counted" not in record(stale_stack, task["id"])


def test_a_waiting_parent_whose_wake_up_was_lost_is_resumed(
    stale_stack: RunningStack, tmp_path: Path
) -> None:
    document = start(stale_stack, "primes", limit=4000, parts=2)
    # A worker whose every SendMessage is refused: it runs the parent and both parts, but
    # the last part's report cannot wake the parent. It stops, and the part's message that
    # would have told it again is lost with the rest.
    refusing = Workers(stale_stack, tmp_path / "refusing")
    refusing.env["LONGTASK_FAULTS"] = "rate=1,lost=0,ops=SendMessage"
    (tmp_path / "refusing").mkdir()
    refusing.start()
    try:
        until(
            lambda: status(stale_stack, document)["progress"]["message"] == "2 of 2 parts done",
            60,
            "both parts' ends",
            stale_stack,
        )
    finally:
        refusing.stop()
    purge(stale_stack)
    waiting = record(stale_stack, document["id"])
    assert waiting["status"] == "started"
    repaired(
        stale_stack,
        document["id"],
        "started and overdue .* queued again",
        float(waiting["due_at"]),
    )
    workers = Workers(stale_stack, tmp_path)
    workers.start()
    try:
        final = finished(stale_stack, document, timeout=60)
        assert final["status"] == "done", final
        assert result(stale_stack, document) == {"limit": 4000, "count": 550}
    finally:
        workers.stop()
