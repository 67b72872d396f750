"""Both backends keep the rules that make a task end whatever AWS does: a write made
again with its own token (a retry after a lost answer) is recognised as applied, the write
that ends a counted task gives its owner's place back in the same atomic step, and the
records that have not ended are listed by when they are due."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from chalicelib.longtask.backends import Admission, Conflict, Expect, MemoryTaskStore, keys
from chalicelib.longtask.backends.writes import ACTIVE, ending
from chalicelib.longtask.model import Status
from tests.contract.test_backends import CREATED, OWNER, Backend, backend, record

__all__ = ["backend"]  # the fixture, shared with the main suite


def active(store: Any, owner: str) -> int:
    """How many of the owner's tasks hold a place in their quota."""
    if isinstance(store, MemoryTaskStore):
        return store.active_count(owner)
    item = store.client.get_item(
        TableName=store.table, Key={"id": {"S": keys.owner_item_id(owner)}}, ConsistentRead=True
    ).get("Item", {})
    return int(item.get(ACTIVE, {}).get("N", 0))


def admitted(backend: Backend, number: int = 0, token: str | None = None) -> Any:
    task = record(number, due_at=CREATED + 100)
    admission = Admission(OWNER, sys.maxsize, sys.maxsize, CREATED, remember_until=2_000_000_000)
    backend.store.admit(task, admission, token=token)
    stored = backend.store.get(task.id)
    assert stored is not None and stored.counted == OWNER
    return stored


def test_an_update_repeated_with_its_token_after_it_applied_returns_the_record(
    backend: Backend,
) -> None:
    task = record(1, status=Status.STARTED, attempts=1, lease_until=CREATED + 60)
    backend.store.create(task)
    done = {"status": Status.DONE, "finished_at": CREATED + 5, "lease_until": None}
    expect = Expect.into(Status.DONE, attempts=1, leased=True)
    first = backend.store.update(task.id, done, expect, token="retried-write")
    # The same request again, as botocore sends it when the first answer was lost: its
    # condition no longer holds, but the record says this very write made it so.
    again = backend.store.update(task.id, done, expect, token="retried-write")
    assert again == first and again.status is Status.DONE
    with pytest.raises(Conflict) as refused:
        backend.store.update(task.id, done, expect, token="another-write")
    assert refused.value.current == first


def test_a_create_repeated_with_its_token_is_no_conflict(backend: Backend) -> None:
    task = record(2)
    backend.store.create(task, token="retried-create")
    backend.store.create(task, token="retried-create")
    with pytest.raises(Conflict):
        backend.store.create(task, token="another-create")
    assert backend.store.get(task.id) == task


def test_an_admission_repeated_with_its_token_counts_once(backend: Backend) -> None:
    first = admitted(backend, 3, token="retried-admit")
    admission = Admission(OWNER, sys.maxsize, sys.maxsize, CREATED, remember_until=2_000_000_000)
    backend.store.admit(record(3, due_at=CREATED + 100), admission, token="retried-admit")
    assert active(backend.store, OWNER) == 1
    assert backend.store.get(first.id) == first


def test_the_write_that_ends_a_counted_task_gives_its_place_back_once(backend: Backend) -> None:
    task = admitted(backend, 4)
    assert active(backend.store, OWNER) == 1
    changes = ending(task, {"status": Status.CANCELLED, "finished_at": CREATED + 9})
    ended = backend.store.update(task.id, changes, Expect.into(Status.CANCELLED), token="end")
    assert ended.status is Status.CANCELLED and ended.counted is None and ended.due_at is None
    assert active(backend.store, OWNER) == 0
    # A retry of the same end, and another end: neither gives a second place back.
    backend.store.update(task.id, changes, Expect.into(Status.CANCELLED), token="end")
    with pytest.raises(Conflict):
        backend.store.update(task.id, changes, Expect.into(Status.CANCELLED), token="other")
    assert active(backend.store, OWNER) == 0
    stored = backend.store.get(task.id)
    assert stored is not None and stored.counted is None
    assert backend.store.release(task.id) is False  # nothing left to give back


def test_records_not_ended_are_listed_by_when_they_are_due(backend: Backend) -> None:
    for number, due in ((5, 30.0), (6, 10.0), (7, 20.0), (8, 99.0)):
        backend.store.create(record(number, due_at=CREATED + due))
    backend.store.create(record(9))  # never due: not in the list
    due = backend.store.due(CREATED + 30, 10)
    assert [t.id for t in due] == [record(n).id for n in (6, 7, 5)]
    assert [t.id for t in backend.store.due(CREATED + 30, 2)] == [record(n).id for n in (6, 7)]
    ended = ending(record(6), {"status": Status.CANCELLED})
    backend.store.update(record(6).id, ended, Expect.into(Status.CANCELLED))
    assert [t.id for t in backend.store.due(CREATED + 30, 10)] == [record(n).id for n in (7, 5)]
