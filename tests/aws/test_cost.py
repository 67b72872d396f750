"""What watching a task costs in DynamoDB: few progress writes, and a record that stays
within one write unit and one read unit whatever checkpoint the task keeps.

moto answers ReturnConsumedCapacity with a constant (0.5 or 1 unit, whatever the size),
so the units here are worked out by AWS's sizing rules (bench.inprocess.item_size) from
the items moto returns: a write is billed per KB of the larger of the item before and
after it, a consistent read per 4 KB.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from bench.inprocess import item_size
from chalicelib.longtask import Integer
from chalicelib.longtask.backends import Conflict, Expect
from chalicelib.longtask.backends.keys import checkpoint_item_id
from chalicelib.longtask.model import APART
from chalicelib.longtask.testing import VirtualClock

from .conftest import OWNER, Aws, deliver, start

KIND = "watched-minute"
BIG = 60 * 1024  # bytes of checkpoint, near the 64 KB a task may keep


class DynamoDBLedger:
    """The app's DynamoDB calls with the size of the item each one was billed on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self._sizes: dict[str, int] = {}
        self._params: dict[str, Any] = {}

    def ask_for_capacity(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("GetItem", "UpdateItem"):
            params["ReturnConsumedCapacity"] = "TOTAL"
        self._params = params

    def after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if "Error" in parsed:
            return
        key = self._params.get("Key", {}).get("id", {}).get("S", "")
        if model.name == "GetItem":
            self.calls.append(("GetItem", item_size(parsed.get("Item") or {})))
        elif model.name == "UpdateItem":
            after = item_size(parsed.get("Attributes") or {})
            billed = max(after, self._sizes.get(key, 0))
            self._sizes[key] = after
            self.calls.append(("UpdateItem", billed))
        elif model.name == "TransactWriteItems":
            self.calls.append(("TransactWriteItems", 0))

    def read_units(self) -> list[int]:
        return [max(1, math.ceil(size / 4096)) for op, size in self.calls if op == "GetItem"]

    def write_units(self) -> list[int]:
        return [max(1, math.ceil(size / 1024)) for op, size in self.calls if op == "UpdateItem"]

    def count(self, op: str) -> int:
        return sum(1 for name, _ in self.calls if name == op)


@pytest.fixture
def ledger(aws: Aws) -> Iterator[DynamoDBLedger]:
    ledger = DynamoDBLedger()
    dynamodb = aws.tasks.backends.store.client
    dynamodb.meta.events.register("before-parameter-build.dynamodb", ledger.ask_for_capacity)
    dynamodb.meta.events.register("after-call.dynamodb", ledger.after)
    try:
        yield ledger
    finally:
        dynamodb.meta.events.unregister("before-parameter-build.dynamodb", ledger.ask_for_capacity)
        dynamodb.meta.events.unregister("after-call.dynamodb", ledger.after)


@pytest.fixture
def clock(aws: Aws) -> VirtualClock:
    """The worker's clock: a minute of progress takes no time."""
    clock = VirtualClock()
    aws.tasks.use_backends(aws.tasks.backends, clock=clock)
    return clock


# What the task kind below runs with in the current test (the kind is registered once on
# the app, which outlives a test).
_CURRENT: dict[str, Any] = {}


def minute(params: dict[str, Any], ctx: Any) -> dict[str, int]:
    """Runs `seconds` on the virtual clock and logs progress every second, keeping a
    checkpoint of `checkpoint` bytes from the first second; polls its status halfway."""
    clock, client, seen = _CURRENT["clock"], _CURRENT["client"], _CURRENT["seen"]
    seconds, size = params["seconds"], params["checkpoint"]
    for second in range(1, seconds + 1):
        clock.advance(1)
        if size:
            ctx.checkpoint({"second": second, "blob": "x" * size})
        ctx.log_progress(f"second {second}", step=second, total_steps=seconds)
        if second == seconds // 2:
            seen["status"] = client.http.get(seen["self"], headers=OWNER)
    return {"seconds": seconds}


@pytest.fixture
def watched(aws: Aws, clock: VirtualClock, client: Any) -> dict[str, Any]:
    """What the watched task saw: its status poll halfway through."""
    if aws.tasks.registry.get(KIND) is None:
        aws.tasks.task(
            KIND,
            title="A watched minute",
            params={"seconds": Integer(min=1, max=600), "checkpoint": Integer(min=0, max=BIG)},
        )(minute)
    seen: dict[str, Any] = {}
    _CURRENT.update(clock=clock, client=client, seen=seen)
    return seen


def run(aws: Aws, client: Any, watched: dict[str, Any], **params: int) -> dict[str, Any]:
    document = start(client, KIND, params)
    watched["self"] = document["links"]["self"]
    # A Lambda's 15 minutes: its deadline is counted on the virtual clock.
    assert deliver(aws, max_messages=1, timeout_seconds=900) == ["deleted"]
    return document


def test_a_minute_long_task_makes_at_most_twenty_progress_writes(
    aws: Aws, client: Any, watched: dict[str, Any], ledger: DynamoDBLedger
) -> None:
    run(aws, client, watched, seconds=60, checkpoint=0)
    # Not the claim; the final write is the transaction that also gives the place back.
    progress_writes = ledger.count("UpdateItem") - 1
    assert 10 <= progress_writes <= 20
    assert watched["status"].status_code == 200


def test_with_a_60_kb_checkpoint_polls_and_progress_writes_still_cost_one_unit(
    aws: Aws, client: Any, watched: dict[str, Any], ledger: DynamoDBLedger
) -> None:
    document = run(aws, client, watched, seconds=60, checkpoint=BIG)
    assert watched["status"].status_code == 200
    # The status poll halfway through read the record alone: 1 read unit. Nothing reads
    # the ended task: the write that ended it gave its owner's place back.
    assert ledger.count("GetItem") == 1
    assert ledger.read_units() == [1]
    # Every UpdateItem (claim, progress) was billed 1 write unit; the checkpoint, which
    # changed every second, went to its own item with the progress writes.
    assert set(ledger.write_units()) == {1}
    # One transaction per progress write (the checkpoint), besides the start's (the
    # record with its owner's counts) and the end's (the record, the owner's place).
    checkpoint_writes = ledger.count("UpdateItem") - 1  # not the claim
    assert ledger.count("TransactWriteItems") == checkpoint_writes + 2
    saved = aws.dynamodb.get_item(
        TableName=aws.tasks.settings.table,
        Key={"id": {"S": checkpoint_item_id(document["id"])}},
        ConsistentRead=True,
    )["Item"]
    assert item_size(saved) > BIG
    assert "owner" not in saved  # never in the owner index


def test_a_large_checkpoint_is_read_back_by_the_worker_that_resumes(aws: Aws) -> None:
    store = aws.tasks.backends.store
    document = start_ready(aws)
    claimed = store.update(document, {"attempts": 1, "status": "started"})
    big = {"blob": "y" * BIG}
    record = store.update(document, {"checkpoint": big}, Expect(attempts=claimed.attempts))
    assert record.checkpoint is APART
    assert store.get(document).checkpoint is APART
    assert store.checkpoint(document) == big
    # A worker that no longer holds the task cannot overwrite it.
    with pytest.raises(Conflict):
        store.update(document, {"checkpoint": {"blob": "z" * BIG}}, Expect(attempts=7))
    assert store.checkpoint(document) == big
    # A small one goes back into the record; a finished task keeps none.
    assert store.update(document, {"checkpoint": {"at": 3}}).checkpoint == {"at": 3}
    assert store.update(document, {"checkpoint": None}).checkpoint is None


def start_ready(aws: Aws) -> str:
    from chalicelib.longtask.model import TaskRecord, new_task_id

    task_id = new_task_id()
    aws.tasks.backends.store.create(TaskRecord(id=task_id, kind=KIND, params={}))
    return task_id
