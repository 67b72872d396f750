"""One suite, every backend: the in-memory backends of `longtask.testing` keep exactly the
rules of DynamoDB, SQS and S3 (on in-process moto, with the table of infra/template.yaml),
so a test that passes on memory means the same on AWS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.longtask.aws.queue import decode_message
from chalicelib.longtask.backends import (
    Backends,
    Conflict,
    Expect,
    IfMissing,
    Increment,
    InvalidCursor,
    MemoryQueue,
    memory_backends,
)
from chalicelib.longtask.backends.writes import encode_cursor
from chalicelib.longtask.model import ErrorInfo, Progress, ResultInfo, Status, TaskRecord
from chalicelib.longtask.settings import Settings
from chalicelib.longtask.testing import VirtualClock

CREATED = 1_800_000_000.0
OWNER = "a" * 64
OTHER = "b" * 64


@dataclass
class Backend:
    """The backends under test, and how a worker receives from their queue."""

    name: str
    backends: Backends
    sqs: Any = None  # the SQS client (moto) or None (memory)

    @property
    def store(self) -> Any:
        return self.backends.store

    def receive(self) -> tuple[str, str] | None:
        """The next visible message as (task id, receipt handle), now hidden; or None."""
        received = self.receive_grouped()
        return None if received is None else received[:2]

    def receive_grouped(self) -> tuple[str, str, str | None] | None:
        """(task id, receipt handle, group) of the next visible message; or None."""
        queue = self.backends.queue
        if isinstance(queue, MemoryQueue):
            got = queue.receive()
            return None if got is None else (got.task_id, got.receipt_handle, got.group)
        messages = self.sqs.receive_message(
            QueueUrl=queue.url, WaitTimeSeconds=0, MessageSystemAttributeNames=["MessageGroupId"]
        ).get("Messages", [])
        if not messages:
            return None
        task_id = decode_message(messages[0]["Body"])
        assert task_id is not None
        group = messages[0].get("Attributes", {}).get("MessageGroupId")
        return task_id, messages[0]["ReceiptHandle"], group


@pytest.fixture(params=["memory", "moto"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", memory_backends(VirtualClock(CREATED)))
        return
    from moto import mock_aws

    from chalicelib.longtask.aws.queue import SqsTaskQueue
    from chalicelib.longtask.aws.results import S3ResultStore
    from chalicelib.longtask.aws.store import DynamoTaskStore
    from tests.aws.conftest import NAMES, create_infra, moto_client

    with mock_aws():
        create_infra()
        backends = Backends(
            DynamoTaskStore(
                moto_client("dynamodb"), NAMES["LONGTASK_TABLE"], Settings().retention_seconds
            ),
            SqsTaskQueue(moto_client("sqs"), NAMES["LONGTASK_QUEUE"]),
            S3ResultStore(moto_client("s3"), NAMES["LONGTASK_BUCKET"]),
        )
        yield Backend("moto", backends, moto_client("sqs"))


def record(number: int = 0, **changes: Any) -> TaskRecord:
    task = TaskRecord(
        id=f"{number:022d}",
        kind="primes",
        params={"limit": 1000},
        created_at=CREATED + number,
        updated_at=CREATED + number,
        owner=OWNER,
    )
    return task.evolve(**changes)


# -- records --------------------------------------------------------------------------


def test_a_record_comes_back_as_it_was_stored(backend: Backend) -> None:
    task = record(
        status=Status.STARTED,
        params={"limit": 1000, "name": "ü", "ratio": 0.5},
        started_at=CREATED + 1.25,
        attempts=2,
        progress=Progress("Sieving block 3 of 10", 3, 10, at=CREATED + 4.5, rate=0.75),
        error=ErrorInfo("ValueError", "went wrong"),
        result=ResultInfo("results/abc", "text/csv; charset=utf-8", "report.csv"),
        lease_until=CREATED + 60.5,
        checkpoint={"block": 3, "sums": [1, 2]},
        resume=True,
        requeues=1,
        expires_at=int(CREATED) + 86400,
    )
    backend.store.create(task)
    assert backend.store.get(task.id) == task


def test_a_missing_record_is_none(backend: Backend) -> None:
    assert backend.store.get("x" * 22) is None


def test_creating_an_existing_id_is_a_conflict_that_keeps_the_first(backend: Backend) -> None:
    first = record()
    backend.store.create(first)
    with pytest.raises(Conflict) as conflict:
        backend.store.create(first.evolve(kind="sleep"))
    assert backend.store.get(first.id) == first
    assert conflict.value.current == first


def test_an_update_returns_the_new_record_and_stores_it(backend: Backend) -> None:
    backend.store.create(record())
    updated = backend.store.update(
        record().id, {"status": Status.STARTED, "attempts": 1, "started_at": CREATED + 2}
    )
    assert (updated.status, updated.attempts, updated.started_at) == (
        Status.STARTED,
        1,
        CREATED + 2,
    )
    assert backend.store.get(updated.id) == updated


def test_none_removes_a_field(backend: Backend) -> None:
    backend.store.create(record(error=ErrorInfo("E", "m"), lease_until=CREATED + 9))
    changes = {"error": None, "lease_until": None, "updated_at": CREATED + 10}
    updated = backend.store.update(record().id, changes)
    assert (updated.error, updated.lease_until) == (None, None)
    assert backend.store.get(updated.id) == updated


def test_an_update_may_only_remove_fields(backend: Backend) -> None:
    backend.store.create(record(lease_until=CREATED + 9))
    assert backend.store.update(record().id, {"lease_until": None}).lease_until is None


def test_updating_a_missing_record_is_a_conflict_with_none(backend: Backend) -> None:
    with pytest.raises(Conflict) as conflict:
        backend.store.update("x" * 22, {"attempts": 1})
    assert conflict.value.current is None
    with pytest.raises(Conflict) as conflict:
        backend.store.update("x" * 22, {"attempts": 1}, Expect(statuses=frozenset(Status)))
    assert conflict.value.current is None
    assert backend.store.get("x" * 22) is None  # an update never creates a record


# Each case: the record as stored, an expectation, and whether a write expecting it goes in.
LEASE = CREATED + 100
EXPECTATIONS = {
    "no expectation holds for anything": ({}, Expect(), True),
    "status is one of": (
        {"status": Status.STARTED},
        Expect(statuses=frozenset({Status.READY, Status.STARTED})),
        True,
    ),
    "status is none of": (
        {"status": Status.CANCELLED},
        Expect(statuses=frozenset({Status.READY, Status.STARTED})),
        False,
    ),
    "attempts equal": ({"attempts": 2}, Expect(attempts=2), True),
    "an older attempt lost its claim": ({"attempts": 2}, Expect(attempts=1), False),
    "attempts below": ({"attempts": 2}, Expect(attempts_below=3), True),
    "attempts used up": ({"attempts": 2}, Expect(attempts_below=2), False),
    "no lease": ({"lease_until": None}, Expect(lease_expired_by=LEASE), True),
    "lease ran out": ({"lease_until": LEASE - 1}, Expect(lease_expired_by=LEASE), True),
    "lease runs out now": ({"lease_until": LEASE}, Expect(lease_expired_by=LEASE), True),
    "lease still live": ({"lease_until": LEASE + 1}, Expect(lease_expired_by=LEASE), False),
    "handed over": ({"resume": True}, Expect(resume=True), True),
    "not handed over": ({"resume": False}, Expect(resume=True), False),
    "not handed over, as expected": ({"resume": False}, Expect(resume=False), True),
    "handed over, unexpected": ({"resume": True}, Expect(resume=False), False),
    "every part must hold": (
        {"status": Status.STARTED, "attempts": 2},
        Expect(statuses=frozenset({Status.STARTED}), attempts=1),
        False,
    ),
    "all parts hold": (
        {"status": Status.STARTED, "attempts": 1},
        Expect(statuses=frozenset({Status.STARTED}), attempts=1),
        True,
    ),
}


@pytest.mark.parametrize(("stored", "expect", "holds"), EXPECTATIONS.values(), ids=EXPECTATIONS)
def test_a_conditional_write_goes_in_exactly_when_its_expectation_holds(
    backend: Backend, stored: dict[str, Any], expect: Expect, holds: bool
) -> None:
    task = record(**stored)
    backend.store.create(task)
    # The pure predicate and both backends agree.
    assert expect.holds_for(task) is holds
    if holds:
        assert backend.store.update(task.id, {"requeues": 5}, expect).requeues == 5
    else:
        with pytest.raises(Conflict) as conflict:
            backend.store.update(task.id, {"requeues": 5}, expect)
        assert conflict.value.current == task  # what it is, to decide what to do next
        assert backend.store.get(task.id) == task


def test_a_write_with_alternatives_goes_in_when_any_holds(backend: Backend) -> None:
    backend.store.create(record(status=Status.ERROR, attempts=1))
    ready = Expect(statuses=frozenset({Status.READY}))
    retry = Expect(statuses=frozenset({Status.ERROR}), attempts=1)
    assert backend.store.update(record().id, {"attempts": 2}, ready, retry).attempts == 2
    with pytest.raises(Conflict):
        backend.store.update(record().id, {"attempts": 3}, ready, retry)  # now neither


def test_increment_adds_to_the_stored_value_not_to_one_read_earlier(backend: Backend) -> None:
    backend.store.create(record(attempts=1))
    backend.store.update(record().id, {"attempts": Increment()})
    updated = backend.store.update(record().id, {"attempts": Increment(2), "requeues": Increment()})
    assert (updated.attempts, updated.requeues) == (4, 1)  # requeues was never written


def test_if_missing_writes_only_where_there_is_no_value(backend: Backend) -> None:
    backend.store.create(record())
    first = backend.store.update(record().id, {"started_at": IfMissing(CREATED + 1)})
    again = backend.store.update(record().id, {"started_at": IfMissing(CREATED + 9)})
    assert first.started_at == again.started_at == CREATED + 1


# -- an owner's tasks ---------------------------------------------------------------


def test_an_owners_tasks_come_newest_first_a_page_at_a_time(backend: Backend) -> None:
    for number in range(5):
        backend.store.create(record(number))
    backend.store.create(record(9, owner=OTHER))
    backend.store.create(record(8, owner=None))
    pages, cursor = [], None
    while True:
        page = backend.store.list_by_owner(OWNER, 2, cursor)
        pages.append([task.id for task in page.tasks])
        cursor = page.next
        if cursor is None:
            break
    assert pages == [[record(4).id, record(3).id], [record(2).id, record(1).id], [record(0).id]]
    assert backend.store.list_by_owner(OWNER, 10).tasks[0] == record(4)  # whole records
    assert backend.store.list_by_owner("c" * 64, 10).tasks == []


def test_a_cursor_of_another_owner_is_refused(backend: Backend) -> None:
    for number in range(3):
        backend.store.create(record(number))
    cursor = backend.store.list_by_owner(OWNER, 1).next
    assert cursor is not None
    with pytest.raises(InvalidCursor):
        backend.store.list_by_owner(OTHER, 1, cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "%%%",
        encode_cursor({"owner": "", "created_at": "", "id": ""}),
        encode_cursor({"owner": OWNER, "created_at": "", "id": ""}),
        encode_cursor({"owner": OWNER}),
        encode_cursor({"owner": OWNER, "created_at": "x", "id": "y", "more": "z"}),
    ],
    ids=["garbage", "empty", "not-base64", "empty-keys", "some-keys-empty", "few", "many"],
)
def test_a_cursor_this_store_did_not_give_out_is_refused(backend: Backend, cursor: str) -> None:
    backend.store.create(record())
    with pytest.raises(InvalidCursor):
        backend.store.list_by_owner(OWNER, 1, cursor)


# -- results --------------------------------------------------------------------------


def test_a_result_is_read_back_up_to_a_limit_and_linked(backend: Backend) -> None:
    results = backend.backends.results
    body = b"day,orders\n1,7\n"
    results.put("results/k1", body, "text/csv", "report.csv", record().id, 1)
    assert results.read("results/k1", 4) == b"day,"
    assert results.read("results/k1", 1000) == body
    link = results.url("results/k1", 300)
    assert "results/k1" in link


# -- memos: what fan-out keeps beside the records ------------------------------------


def test_many_records_come_back_in_the_order_asked_without_the_missing(backend: Backend) -> None:
    for number in range(3):
        backend.store.create(record(number))
    ids = [record(n).id for n in (2, 7, 0)]
    assert [t.id for t in backend.store.get_many(ids)] == [record(2).id, record(0).id]


def test_the_first_memo_written_wins(backend: Backend) -> None:
    store = backend.store
    assert store.memo_get("t#step:a") is None
    assert store.memo_put("t#step:a", {"value": [1, 2]}) == {"value": [1, 2]}
    assert store.memo_put("t#step:a", {"value": "late"}) == {"value": [1, 2]}
    assert store.memo_get("t#step:a") == {"value": [1, 2]}
    assert store.memo_get_many(["t#step:a", "t#step:b"]) == {"t#step:a": {"value": [1, 2]}}


def test_a_member_added_twice_counts_once(backend: Backend) -> None:
    store = backend.store
    store.memo_put("t#map1", {"total": 3})
    assert store.memo_add("t#map1", 0) == (1, {"total": 3})
    assert store.memo_add("t#map1", 2) == (2, {"total": 3})
    assert store.memo_add("t#map1", 0) == (2, {"total": 3})  # a repeated report


# -- the queue ------------------------------------------------------------------------


def test_a_batch_of_ids_is_received_one_message_each(backend: Backend) -> None:
    ids = [record(n).id for n in range(12)]  # more than one SQS batch
    backend.backends.queue.send_many(ids)
    received = set()
    while (message := backend.receive()) is not None:
        received.add(message[0])
    assert received == set(ids)


def test_messages_are_grouped_by_their_owner(backend: Backend) -> None:
    queue = backend.backends.queue
    queue.send("a1", owner="alice")
    queue.send_many(["a2", "a3"], owner="alice")
    queue.send("b1", delay_seconds=0, owner="bob")
    queue.send("n1")
    groups = {}
    while (message := backend.receive_grouped()) is not None:
        groups[message[0]] = message[2]
    assert groups.keys() == {"a1", "a2", "a3", "b1", "n1"}
    assert groups["a1"] == groups["a2"] == groups["a3"] is not None
    assert groups["b1"] not in (None, groups["a1"])
    assert groups["n1"] is None  # nobody's in particular: its own group, for SQS
    if backend.sqs is not None:
        assert "alice" not in str(groups["a1"])  # the queue's metadata does not name owners


def test_a_sent_id_is_received_and_hidden_until_shown_again(backend: Backend) -> None:
    backend.backends.queue.send(record().id)
    received = backend.receive()
    assert received is not None and received[0] == record().id
    assert backend.receive() is None  # hidden while a worker has it
    backend.backends.queue.show_again_in(received[1], 0)
    again = backend.receive()
    assert again is not None and again[0] == record().id


def test_show_again_in_keeps_a_message_hidden(backend: Backend) -> None:
    backend.backends.queue.send(record().id)
    received = backend.receive()
    assert received is not None
    backend.backends.queue.show_again_in(received[1], 600)
    assert backend.receive() is None


def test_a_delayed_message_is_not_received_before_its_delay(backend: Backend) -> None:
    backend.backends.queue.send(record().id, delay_seconds=60)
    assert backend.receive() is None


# The memory queue's own rules, which SQS keeps without being asked (moto cannot move time).


def memory_queue(max_receives: int | None = None) -> tuple[MemoryQueue, VirtualClock]:
    clock = VirtualClock(CREATED)
    return MemoryQueue(clock, 60, max_receives, dead_letters=MemoryQueue(clock)), clock


def test_memory_a_delayed_message_shows_after_its_delay() -> None:
    queue, clock = memory_queue()
    queue.send("t1", delay_seconds=30)
    clock.advance(29)
    assert queue.receive() is None
    clock.advance(1)
    assert queue.receive() is not None


def test_memory_an_undeleted_message_comes_back_after_its_visibility() -> None:
    queue, clock = memory_queue()
    queue.send("t1")
    first = queue.receive()
    assert first is not None and first.receives == 1
    clock.advance(59)
    assert queue.receive() is None
    clock.advance(1)
    second = queue.receive()
    assert second is not None and second.receives == 2
    assert second.receipt_handle != first.receipt_handle


def test_memory_a_deleted_message_is_gone() -> None:
    queue, clock = memory_queue()
    queue.send("t1")
    received = queue.receive()
    assert received is not None
    queue.delete(received.receipt_handle)
    clock.advance(3600)
    assert queue.receive() is None and len(queue) == 0


def test_memory_a_message_received_too_often_moves_to_the_dead_letters() -> None:
    queue, clock = memory_queue(max_receives=2)
    queue.send("t1")
    for _ in range(2):
        assert queue.receive() is not None
        clock.advance(60)
    assert queue.receive() is None  # a third receive would pass the maximum
    assert queue.dead_letters is not None
    dead = queue.dead_letters.receive()
    assert dead is not None and dead.task_id == "t1"
