"""Both backends admit a start by the same rules: an owner's active tasks and starts per
minute are capped, an idempotency key starts one task while it is remembered, a refused
start leaves nothing behind, and an ended task's place comes back exactly once."""

from __future__ import annotations

import sys

import pytest

from chalicelib.longtask.backends import Admission, Conflict, OverQuota, Repeated
from chalicelib.longtask.model import Status
from tests.contract.test_backends import CREATED, OTHER, OWNER, Backend, backend, record

__all__ = ["backend"]  # the fixture, shared with the main suite

UNLIMITED = sys.maxsize


def admission(
    max_active: int = UNLIMITED,
    starts_per_minute: int = UNLIMITED,
    now: float = CREATED,
    key: str | None = None,
    owner: str = OWNER,
) -> Admission:
    return Admission(
        owner,
        max_active,
        starts_per_minute,
        now,
        key=key,
        fingerprint=f"primes:{key}",
        remember_until=int(now) + 600,
    )


def end(backend: Backend, task_id: str) -> None:
    backend.store.update(task_id, {"status": Status.DONE, "finished_at": CREATED + 5})


def test_an_admitted_task_is_stored_counted_for_its_owner(backend: Backend) -> None:
    task = record(1)
    backend.store.admit(task, admission())
    stored = backend.store.get(task.id)
    assert stored is not None
    assert stored.counted == OWNER
    assert stored.evolve(counted=None) == task


def test_an_owner_at_the_active_limit_is_refused_naming_it(backend: Backend) -> None:
    backend.store.admit(record(1), admission(max_active=2))
    backend.store.admit(record(2), admission(max_active=2))
    with pytest.raises(OverQuota) as refused:
        backend.store.admit(record(3), admission(max_active=2))
    assert refused.value.limit == OverQuota.ACTIVE
    assert backend.store.get(record(3).id) is None


def test_the_active_limit_is_counted_per_owner(backend: Backend) -> None:
    backend.store.admit(record(1), admission(max_active=1))
    backend.store.admit(record(2, owner=OTHER), admission(max_active=1, owner=OTHER))
    assert backend.store.get(record(2).id) is not None


def test_a_released_place_admits_the_next_task(backend: Backend) -> None:
    backend.store.admit(record(1), admission(max_active=1))
    end(backend, record(1).id)
    assert backend.store.release(record(1).id) is True
    backend.store.admit(record(2), admission(max_active=1))
    assert backend.store.get(record(2).id) is not None


def test_a_place_is_given_back_only_once(backend: Backend) -> None:
    backend.store.admit(record(1), admission(max_active=2))
    backend.store.admit(record(2), admission(max_active=2))
    end(backend, record(1).id)
    assert backend.store.release(record(1).id) is True
    assert backend.store.release(record(1).id) is False
    backend.store.admit(record(3), admission(max_active=2))
    with pytest.raises(OverQuota):
        backend.store.admit(record(4), admission(max_active=2))


def test_release_changes_nothing_for_a_live_uncounted_or_missing_task(backend: Backend) -> None:
    backend.store.admit(record(1), admission(max_active=1))
    backend.store.create(record(2, status=Status.DONE, finished_at=CREATED + 1))
    assert backend.store.release(record(1).id) is False  # still queued
    assert backend.store.release(record(2).id) is False  # never counted
    assert backend.store.release("x" * 22) is False
    with pytest.raises(OverQuota):
        backend.store.admit(record(3), admission(max_active=1))


def test_starts_are_capped_per_minute_and_the_next_minute_starts_afresh(
    backend: Backend,
) -> None:
    backend.store.admit(record(1), admission(starts_per_minute=2))
    backend.store.admit(record(2), admission(starts_per_minute=2))
    with pytest.raises(OverQuota) as refused:
        backend.store.admit(record(3), admission(starts_per_minute=2))
    assert refused.value.limit == OverQuota.STARTS
    backend.store.admit(record(3), admission(starts_per_minute=2, now=CREATED + 60))
    assert backend.store.get(record(3).id) is not None


def test_a_key_that_started_a_task_names_it_and_what_it_was_started_with(
    backend: Backend,
) -> None:
    backend.store.admit(record(1), admission(key="k" * 64))
    with pytest.raises(Repeated) as repeated:
        backend.store.admit(record(2), admission(key="k" * 64, now=CREATED + 1))
    assert repeated.value.task_id == record(1).id
    assert repeated.value.fingerprint == f"primes:{'k' * 64}"
    assert backend.store.get(record(2).id) is None


def test_a_repeated_key_is_answered_before_the_quota(backend: Backend) -> None:
    backend.store.admit(record(1), admission(max_active=1, key="k" * 64))
    with pytest.raises(Repeated):
        backend.store.admit(record(2), admission(max_active=1, key="k" * 64))


def test_a_key_past_its_time_starts_a_new_task(backend: Backend) -> None:
    backend.store.admit(record(1), admission(key="k" * 64))
    backend.store.admit(record(2), admission(key="k" * 64, now=CREATED + 601))
    assert backend.store.get(record(2).id) is not None


def test_a_refused_start_leaves_its_key_and_counts_untouched(backend: Backend) -> None:
    backend.store.admit(record(1), admission(max_active=1))
    with pytest.raises(OverQuota):
        backend.store.admit(record(2), admission(max_active=1, key="k" * 64))
    end(backend, record(1).id)
    backend.store.release(record(1).id)
    # the key was not taken by the refused start, and it took no place
    backend.store.admit(record(3), admission(max_active=1, key="k" * 64))
    assert backend.store.get(record(3).id) is not None


def test_admitting_an_existing_id_is_a_conflict_that_keeps_the_first(backend: Backend) -> None:
    first = record(1)
    backend.store.admit(first, admission())
    with pytest.raises(Conflict):
        backend.store.admit(first.evolve(kind="sleep"), admission())
    stored = backend.store.get(first.id)
    assert stored is not None and stored.kind == "primes"
