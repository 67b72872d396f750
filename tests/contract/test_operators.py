"""Both backends keep the rules of what operators and the reconciler read (failed tasks
by when they failed, records by when they are due), of checkpoints too large for the
record, and refuse a change to a field a task record does not have."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from chalicelib.longtask.backends import Conflict, Expect
from chalicelib.longtask.backends.interface import ResultStore, TaskQueue, TaskStore
from chalicelib.longtask.backends.writes import INLINE_CHECKPOINT_BYTES
from chalicelib.longtask.model import APART, Status
from tests.contract.test_backends import CREATED, Backend, backend, record

__all__ = ["backend"]  # the fixture, shared with the main suite


def fail(backend: Backend, number: int, at: float) -> None:
    task = record(number, status=Status.STARTED)
    backend.store.create(task)
    backend.store.update(task.id, {"status": Status.FAILED, "finished_at": at})


# -- failed tasks ---------------------------------------------------------------------


def test_failed_tasks_are_listed_newest_first_within_the_window(backend: Backend) -> None:
    day = 86400.0
    fail(backend, 1, CREATED + 10)
    fail(backend, 2, CREATED + 20)
    fail(backend, 3, CREATED + day + 30)  # the next day
    fail(backend, 4, CREATED + 3 * day)  # past the window
    fail(backend, 5, CREATED - 5)  # before it
    done = record(6, status=Status.STARTED)
    backend.store.create(done)
    backend.store.update(done.id, {"status": Status.DONE, "finished_at": CREATED + 15})

    found = backend.store.failed_between(CREATED, CREATED + 2 * day, limit=10)

    assert [t.id for t in found] == [record(n).id for n in (3, 2, 1)]
    assert all(t.status is Status.FAILED for t in found)


def test_failed_tasks_are_limited_to_the_newest(backend: Backend) -> None:
    for number in range(1, 5):
        fail(backend, number, CREATED + number)
    found = backend.store.failed_between(CREATED, CREATED + 100, limit=2)
    assert [t.id for t in found] == [record(4).id, record(3).id]


def test_the_end_of_the_failed_window_is_left_out(backend: Backend) -> None:
    fail(backend, 1, CREATED + 10)
    assert backend.store.failed_between(CREATED, CREATED + 10, limit=10) == []


# -- due records ----------------------------------------------------------------------


def test_due_records_come_longest_overdue_first_up_to_the_limit(backend: Backend) -> None:
    backend.store.create(record(1, due_at=CREATED + 30))
    backend.store.create(record(2, due_at=CREATED + 10))
    backend.store.create(record(3, due_at=CREATED + 20))
    backend.store.create(record(4, due_at=CREATED + 99))  # not yet due
    backend.store.create(record(5))  # never due

    assert [t.id for t in backend.store.due(CREATED + 50, limit=10)] == [
        record(n).id for n in (2, 3, 1)
    ]
    assert [t.id for t in backend.store.due(CREATED + 50, limit=1)] == [record(2).id]


def test_a_record_whose_due_time_is_removed_or_moved_is_no_longer_due(backend: Backend) -> None:
    backend.store.create(record(1, due_at=CREATED + 10))
    backend.store.create(record(2, due_at=CREATED + 10))
    backend.store.update(record(1).id, {"due_at": None})
    backend.store.update(record(2).id, {"due_at": CREATED + 500})
    assert backend.store.due(CREATED + 50, limit=10) == []
    assert [t.id for t in backend.store.due(CREATED + 500, limit=10)] == [record(2).id]


# -- checkpoints kept apart -----------------------------------------------------------


def large() -> dict[str, object]:
    return {"seen": list(range(200)), "note": "ü" * 50}


def test_a_large_checkpoint_is_kept_apart_and_read_back_whole(backend: Backend) -> None:
    task = record(1, status=Status.STARTED)
    backend.store.create(task)
    updated = backend.store.update(task.id, {"checkpoint": large()})
    assert updated.checkpoint is APART
    stored = backend.store.get(task.id)
    assert stored is not None and stored.checkpoint is APART
    assert backend.store.checkpoint(task.id) == large()


def test_a_small_checkpoint_stays_in_the_record(backend: Backend) -> None:
    task = record(1, status=Status.STARTED)
    backend.store.create(task)
    small = {"block": 3}
    assert len(str(small)) < INLINE_CHECKPOINT_BYTES
    backend.store.update(task.id, {"checkpoint": small})
    stored = backend.store.get(task.id)
    assert stored is not None and stored.checkpoint == small


def test_a_refused_write_keeps_the_checkpoint_it_would_have_replaced(backend: Backend) -> None:
    task = record(1, status=Status.STARTED, attempts=1)
    backend.store.create(task)
    backend.store.update(task.id, {"checkpoint": large()})
    with pytest.raises(Conflict):
        backend.store.update(
            task.id, {"checkpoint": {**large(), "note": "lost"}}, Expect(attempts=2)
        )
    assert backend.store.checkpoint(task.id) == large()


def test_a_task_without_a_checkpoint_apart_reads_none(backend: Backend) -> None:
    backend.store.create(record(1))
    assert backend.store.checkpoint(record(1).id) is None
    assert backend.store.checkpoint("x" * 22) is None


# -- refused changes ------------------------------------------------------------------


def test_a_field_a_record_does_not_have_is_refused_and_nothing_is_written(
    backend: Backend,
) -> None:
    task = record(1)
    backend.store.create(task)
    with pytest.raises(ValueError, match="stauts"):
        backend.store.update(task.id, {"stauts": "done", "attempts": 9})
    assert backend.store.get(task.id) == task


# -- the suite covers the whole contract ----------------------------------------------


def test_every_method_of_every_protocol_is_called_by_this_suite() -> None:
    """A method added to a Protocol without a contract test fails here."""
    called: set[str] = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                called.add(node.func.attr)
    for protocol in (TaskStore, TaskQueue, ResultStore):
        methods = {
            name
            for name, _ in inspect.getmembers(protocol, inspect.isfunction)
            if not name.startswith("_")
        }
        assert methods, protocol
        assert methods <= called, (protocol.__name__, sorted(methods - called))
