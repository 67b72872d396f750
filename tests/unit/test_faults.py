"""The fault layer makes calls go wrong as AWS does, reproducibly, and the memory
backends under it retry as the SDK would: a lost answer is sent again as the same
request and recognised as applied; a call refused past the retries raises what botocore
raises, which longtask takes for AWS trouble."""

from __future__ import annotations

from collections import Counter

import pytest

from chalicelib.longtask.backends import Admission, memory_backends
from chalicelib.longtask.errors import ConfigError, aws_trouble
from chalicelib.longtask.faults import Fault, FaultPlan, client_error, faulty, without_faults
from chalicelib.longtask.model import Status, TaskRecord
from chalicelib.longtask.testing import VirtualClock

NOW = 1_800_000_000.0
OWNER = "d" * 64


def task(number: int = 1) -> TaskRecord:
    return TaskRecord(
        id=f"{number:022d}", kind="primes", params={}, created_at=NOW, updated_at=NOW, owner=OWNER
    )


def test_a_plan_is_read_from_its_setting() -> None:
    plan = FaultPlan.parse("rate=0.08, lost=0.5, slow=0.1, delay=0.3, seed=7, ops=A+B")
    assert (plan.rate, plan.lost, plan.slow, plan.delay, plan.seed) == (0.08, 0.5, 0.1, 0.3, 7)
    assert plan.ops == frozenset({"A", "B"})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("rate=2", "rate must be from 0 to 1"),
        ("rate=x", "rate='x' is not a number"),
        ("often=1", "unknown entry 'often'"),
        ("lost=0.8,slow=0.5", "lost + slow must be at most 1"),
    ],
)
def test_a_wrong_plan_is_a_config_error_saying_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("+", r"\+")):
        FaultPlan.parse(text)


def test_the_same_seed_gives_the_same_faults_and_another_seed_others() -> None:
    def run(seed: int) -> list[Fault | None]:
        plan = FaultPlan(rate=0.3, seed=seed)
        return [plan.decide(op) for op in ["UpdateItem", "SendMessage"] * 200]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_the_rate_and_the_kinds_are_kept() -> None:
    plan = FaultPlan(rate=0.1, lost=0.5, slow=0.2, seed=3)
    faults = Counter(plan.decide("GetItem") for _ in range(20_000))
    faulted = 20_000 - faults[None]
    assert 1800 < faulted < 2200
    assert 0.45 < faults[Fault.LOST] / faulted < 0.55
    assert 0.15 < faults[Fault.SLOW] / faulted < 0.25
    refused = faults[Fault.THROTTLED] + faults[Fault.SERVER_ERROR] + faults[Fault.RESET]
    assert refused == faulted - faults[Fault.LOST] - faults[Fault.SLOW]
    assert sum(plan.by_kind().values()) == faulted


def test_only_the_named_operations_are_faulted() -> None:
    plan = FaultPlan(rate=1.0, ops=frozenset({"SendMessage"}))
    assert plan.decide("GetItem") is None
    assert plan.decide("SendMessage") is not None


def test_a_script_decides_the_first_calls_exactly() -> None:
    plan = FaultPlan(script={"UpdateItem": (Fault.LOST, None, Fault.THROTTLED)})
    assert [plan.decide("UpdateItem") for _ in range(4)] == [
        Fault.LOST,
        None,
        Fault.THROTTLED,
        None,
    ]
    assert plan.injected == Counter({("lost", "UpdateItem"): 1, ("throttled", "UpdateItem"): 1})


@pytest.mark.parametrize("fault", [Fault.THROTTLED, Fault.SERVER_ERROR, Fault.RESET, Fault.LOST])
def test_each_error_a_call_ends_with_is_aws_trouble(fault: Fault) -> None:
    assert aws_trouble(client_error("UpdateItem", fault))


def test_a_wrong_request_is_not_aws_trouble() -> None:
    from botocore.exceptions import ClientError

    wrong = ClientError(
        {"Error": {"Code": "ValidationException"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        "UpdateItem",
    )
    assert not aws_trouble(wrong)
    assert not aws_trouble(ValueError("bad"))


# -- the memory backends under faults ------------------------------------------------------


def test_an_update_whose_answer_was_lost_is_retried_and_recognised_as_applied() -> None:
    plain = memory_backends(VirtualClock(NOW))
    plain.store.create(task())
    plan = FaultPlan(script={"store.update": (Fault.LOST,)})
    store = faulty(plain, plan).store
    updated = store.update(task().id, {"attempts": 1})  # retried with the same token
    assert updated.attempts == 1
    assert plain.store.get(task().id).attempts == 1  # type: ignore[union-attr]
    assert plan.injected[("lost", "store.update")] == 1


def test_an_admission_and_a_release_whose_answers_were_lost_count_once() -> None:
    plain = memory_backends(VirtualClock(NOW))
    plan = FaultPlan(script={"store.admit": (Fault.LOST,), "store.release": (Fault.LOST,)})
    store = faulty(plain, plan).store
    store.admit(task(), Admission(OWNER, 5, 30, NOW))
    assert plain.store.active_count(OWNER) == 1  # type: ignore[attr-defined]
    plain.store.update(task().id, {"status": Status.DONE, "finished_at": NOW})
    assert store.release(task().id) is True  # its own release, not someone else's
    assert plain.store.active_count(OWNER) == 0  # type: ignore[attr-defined]


def test_a_call_refused_past_the_retries_raises_aws_trouble_and_changes_nothing() -> None:
    plain = memory_backends(VirtualClock(NOW))
    plain.store.create(task())
    refused = (Fault.THROTTLED, Fault.SERVER_ERROR, Fault.RESET, Fault.THROTTLED)
    store = faulty(plain, FaultPlan(script={"store.update": refused})).store
    with pytest.raises(Exception) as raised:
        store.update(task().id, {"attempts": 1})
    assert aws_trouble(raised.value)
    assert plain.store.get(task().id).attempts == 0  # type: ignore[union-attr]


def test_a_refused_call_retried_in_time_succeeds() -> None:
    plain = memory_backends(VirtualClock(NOW))
    queue = faulty(plain, FaultPlan(script={"queue.send": (Fault.THROTTLED,)})).queue
    queue.send(task().id)
    assert plain.queue.receive() is not None  # type: ignore[attr-defined]
    assert without_faults(queue) is plain.queue
