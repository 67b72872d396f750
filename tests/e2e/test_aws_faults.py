"""AWS on a bad day, on the real local stack: every process's AWS clients meet injected
faults (LONGTASK_FAULTS: 8 % of calls, half of them applied with their answer lost),
workers are killed mid-invocation, and a polite client retries what answered 5xx with
the same Idempotency-Key. Every task must still end, right, once, and give back its
owner's place; nobody may see a 500.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.faults import MIX
from chalicelib.demo_tasks import _invoices_of
from chalicelib.longtask.model import TERMINAL

from .conftest import RunningStack, StackFactory
from .test_faults import LEASE_SECONDS, Workers, figures, scan

# FAULTS_SEED=n picks another run of the same plan (each seed is reproducible);
# FAULTS_RATE=0.25 a harder day.
SEED = int(os.environ.get("FAULTS_SEED", "19"))
FAULTS = f"rate={os.environ.get('FAULTS_RATE', '0.08')},lost=0.5,seed={SEED}"
OWNERS = 6
MAX_ACTIVE = 5
JSON = {"Accept": "application/json"}
# Each owner starts one of each kind of MIX, as many as its quota of active tasks allows.
assert len(MIX) == MAX_ACTIVE
_FAULT_LINE = re.compile(r"injected fault: (\w+) (\S+)")


def prime_count(limit: int) -> int:
    sieve = bytearray([1]) * (limit + 1)
    sieve[:2] = b"\0\0"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, limit + 1, n)))
    return sum(sieve)


def expected(kind: str, params: dict[str, Any]) -> Any:
    if kind == "primes":
        return {"limit": params["limit"], "count": prime_count(params["limit"])}
    if kind == "sleep":
        return {"slept": params["seconds"]}
    days = 29  # 2024-02
    return [len(_invoices_of(f"2024-02-{day:02d}")) for day in range(1, days + 1)]


class PoliteClient:
    """A program as the README asks it to be: it retries a 5xx after its Retry-After,
    a start with the same Idempotency-Key, and remembers every status it was answered."""

    def __init__(self, stack: RunningStack) -> None:
        self.url = stack.url
        self.answers: Counter[int] = Counter()
        self.busy = 0  # 503s with Retry-After

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        deadline = time.monotonic() + 120
        while True:
            response = requests.request(method, self.url + path, timeout=30, **kwargs)
            self.answers[response.status_code] += 1
            if response.status_code < 500 or time.monotonic() > deadline:
                return response
            if response.status_code == 503:
                assert response.headers.get("Retry-After"), response.text
                assert response.json()["error"]["code"] == "aws_unavailable", response.text
                self.busy += 1
            time.sleep(min(float(response.headers.get("Retry-After", 1)), 1.0))

    def start(self, owner: str, kind: str, params: dict[str, Any]) -> requests.Response:
        headers = {**JSON, "Cookie": f"longtask_owner={owner}"}
        headers["Idempotency-Key"] = uuid.uuid4().hex
        return self.call("POST", f"/tasks/{kind}", json=params, headers=headers)

    def status(self, document: dict[str, Any]) -> dict[str, Any]:
        response = self.call("GET", document["links"]["self"], headers=JSON)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def result(self, document: dict[str, Any]) -> bytes:
        first = self.call("GET", document["links"]["self"] + "/result", allow_redirects=False)
        assert first.status_code == 303, first.text
        download = requests.get(first.headers["Location"], timeout=30)
        assert download.status_code == 200, download.text
        return download.content


def faults_logged(stack: RunningStack, logs: Path) -> Counter[tuple[str, str]]:
    """Every fault injected, by kind and operation, in every process of the run."""
    text = stack.output() + "".join(
        path.read_text(errors="replace") for path in logs.glob("test-worker-*.log")
    )
    return Counter((m[1], m[2]) for m in _FAULT_LINE.finditer(text))


def test_every_task_ends_right_and_once_under_aws_faults_and_kills(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = stack_factory(
        env={
            "LONGTASK_FAULTS": FAULTS,
            "LONGTASK_LEASE_SECONDS": str(LEASE_SECONDS),
            "LONGTASK_RETRY_SECONDS": "1",
            "LONGTASK_MAX_ATTEMPTS": "10",  # kills must not be what fails a task
            "LONGTASK_MAX_ACTIVE_PER_OWNER": str(MAX_ACTIVE),
            "LONGTASK_STARTS_PER_MINUTE": "1000",
            "LONGTASK_STALE_SECONDS": "10",
            "LONGTASK_RECONCILE_SECONDS": "3",
            "WORKER_TIMEOUT": "4",
        },
        workers=0,
    )
    client = PoliteClient(stack)
    owners = [f"{n:043d}" for n in range(1, OWNERS + 1)]
    plan = [(owner, kind, params) for owner in owners for kind, params in MIX]
    pool = Workers(stack, tmp_path, timeout=10)
    chance = random.Random(SEED)
    try:
        pool.start(4)
        pool.ready(stack)
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as threads:
            answers = list(threads.map(lambda p: client.start(*p), plan))
            assert [a.status_code for a in answers] == [202] * len(plan), [
                (a.status_code, a.text) for a in answers if a.status_code != 202
            ]
            documents = [a.json() for a in answers]
            # One task per key, each a task of its own.
            assert len({d["id"] for d in documents}) == len(plan)
            deadline, next_kill = began + 240, began + 2
            while True:
                records = scan(stack)
                ended = [d for d in documents if records[d["id"]]["status"] in TERMINAL]
                if len(ended) == len(plan):
                    break
                now = time.monotonic()
                if now > deadline:
                    stuck = [records[d["id"]] | d for d in documents if d not in ended]
                    pytest.fail(f"{len(ended)} of {len(plan)} ended; the others: {stuck}")
                if len(ended) < 0.8 * len(plan) and now >= next_kill and (busy := pool.busy()):
                    pool.kill(chance.choice(busy))
                    pool.start()
                    next_kill = now + chance.uniform(3, 5)
                time.sleep(0.5)
            all_ended = time.monotonic() - began
            finals = list(threads.map(client.status, documents))
            results = list(threads.map(client.result, documents))
    finally:
        pool.stop()

    assert Counter(f["status"] for f in finals) == {"done": len(plan)}, finals
    for (_, kind, params), body in zip(plan, results, strict=True):
        if kind == "report":
            rows = list(csv.reader(io.StringIO(body.decode())))[1:]
            assert [int(row[1]) for row in rows] == expected(kind, params)
        else:
            assert json.loads(body) == expected(kind, params)
    # No task made twice by a retried start: the records are these tasks and their parts.
    parts = sum(params.get("parts", 1) for _, _, params in plan if params.get("parts", 1) > 1)
    assert len(scan(stack)) == len(plan) + parts

    # Every place is back: with no workers left, each owner is admitted exactly its
    # quota again, and refused one more.
    for owner in owners:
        again = [client.start(owner, "sleep", {"seconds": 1}) for _ in range(MAX_ACTIVE + 1)]
        assert [a.status_code for a in again] == [202] * MAX_ACTIVE + [429], owner

    assert client.answers[500] == 0, client.answers
    assert "Traceback" not in stack.output()
    faults = faults_logged(stack, tmp_path)
    kinds = Counter[str]()
    for (kind, _), count in faults.items():
        kinds[kind] += count
    assert kinds["lost"] > 10 and kinds.total() > 40, faults  # the faults did happen
    figures(
        "aws-faults",
        began,
        tasks=len(plan),
        done=len(plan),
        faults=dict(kinds),
        faults_by_op=dict(Counter(op for (_, op), n in faults.items() for _ in range(n))),
        attempts_per_task=round(sum(f["attempts"] for f in finals) / len(plan), 2),
        kills=pool.kills,
        answers=dict(client.answers),
        all_ended_after=f"{all_ended:.1f} s",
    )
