"""Benchmark 8: the same mixed tasks on a local stack without faults and with AWS faults
injected into every process's clients: what the faults cost, and what repaired them."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.localstack import LocalStack, StackError
from bench.report import Section, Table, percentile
from bench.stack import stamp

FAULTS = "rate=0.08,lost=0.5,seed=7"
WORKERS = 4
CLIENTS = 8
# One of each, in turn: a count in one worker and in four parts, a checkpointed report,
# a sleep, and a sleep that fails its first attempt.
MIX: list[tuple[str, dict[str, Any]]] = [
    ("primes", {"limit": 300_000}),
    ("primes", {"limit": 400_000, "parts": 4}),
    ("report", {"month": "2024-02"}),
    ("sleep", {"seconds": 2}),
    ("sleep", {"seconds": 1, "fail_times": 1}),
]
# The same settings in both runs, so that only the faults differ: short leases and
# retries, and a reconciler that runs every 3 s and repairs what is 10 s overdue.
SETTINGS = {
    "LONGTASK_LEASE_SECONDS": "10",
    "LONGTASK_RETRY_SECONDS": "1",
    "LONGTASK_MAX_ACTIVE_PER_OWNER": "1000",
    "LONGTASK_STARTS_PER_MINUTE": "1000",
    "LONGTASK_STALE_SECONDS": "10",
    "LONGTASK_RECONCILE_SECONDS": "3",
}
_FAULT = re.compile(r"injected fault: (\w+) (\S+)")
_METRICS = re.compile(r'\{"_aws".*\}')


@dataclass
class FaultRun:
    name: str
    faults_plan: str
    tasks: int = 0
    done: int = 0
    latencies: list[float] = field(default_factory=list)  # created → finished, seconds
    attempts: list[int] = field(default_factory=list)
    faults: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, operation)
    repairs: Counter[str] = field(default_factory=Counter)
    answers: Counter[int] = field(default_factory=Counter)  # HTTP statuses the client got
    seconds: float = math.nan


class _Client:
    """A polite program: retries a 5xx after its Retry-After (a start with the same
    Idempotency-Key), and counts every answer."""

    def __init__(self, stack: LocalStack, run: FaultRun) -> None:
        self.stack, self.run = stack, run

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while True:
            status, document = self.stack.request(method, path, body, headers)
            self.run.answers[status] += 1
            if status < 500:
                return document
            if time.monotonic() > deadline:
                raise StackError(f"{method} {path} answered {status} for 2 minutes")
            time.sleep(1.0)

    def task(self, n: int) -> dict[str, Any]:
        kind, params = MIX[n % len(MIX)]
        key = uuid.uuid4().hex
        document = self.call("POST", f"/tasks/{kind}", params, **{"Idempotency-Key": key})
        path = document["links"]["self"]
        deadline = time.monotonic() + 300
        while not document.get("done"):
            if time.monotonic() > deadline:
                raise StackError(f"task {document['id']} did not end within 5 minutes")
            time.sleep(0.2)
            document = self.call("GET", path)
        return document


def _read_log(run: FaultRun, stack: LocalStack) -> None:
    text = stack.log_file.read_text(errors="replace")
    run.faults = Counter((m[1], m[2]) for m in _FAULT.finditer(text))
    for line in _METRICS.findall(text):
        document = json.loads(line)
        for name, value in document.items():
            if name not in ("_aws", "Table", "Repairs", "LookedAt") and value:
                run.repairs[name] += int(value)


def measure_run(
    name: str, plan: str, tasks: int, log_dir: Path, log: Callable[[str], None]
) -> FaultRun:
    run = FaultRun(name, plan, tasks)
    env = dict(SETTINGS)
    if plan:
        env["LONGTASK_FAULTS"] = plan
    with LocalStack(WORKERS, log_dir, env, label=name.replace(" ", "-")) as stack:
        client = _Client(stack, run)
        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as threads:
            finals = list(threads.map(client.task, range(tasks)))
        run.seconds = time.monotonic() - started
        _read_log(run, stack)
    for final in finals:
        run.done += final["status"] == "done"
        run.attempts.append(int(final["attempts"]))
        run.latencies.append(stamp(final["finished_at"]) - stamp(final["created_at"]))
    log(
        f"{name}: {run.done} of {tasks} done in {run.seconds:.1f} s, "
        f"{run.faults.total()} faults, repairs {dict(run.repairs)}"
    )
    return run


def measure(tasks: int, log_dir: Path, log: Callable[[str], None]) -> list[FaultRun]:
    return [
        measure_run("no faults", "", tasks, log_dir, log),
        measure_run("faults", FAULTS, tasks, log_dir, log),
    ]


def _seconds(values: list[float], p: float) -> str:
    return f"{percentile(values, p):.2f} s" if values else "n/a"


def section(runs: list[FaultRun]) -> Section:
    table = Table(
        [
            "run",
            "tasks",
            "done",
            "faults injected",
            "lost answers",
            "repairs by the reconciler",
            "503s to the client",
            "500s",
            "attempts per task",
            "start → done p50 / p95 / max",
            "wall time",
        ]
    )
    for run in runs:
        kinds = Counter[str]()
        for (kind, _), count in run.faults.items():
            kinds[kind] += count
        repairs = ", ".join(f"{n} {name.lower()}" for name, n in sorted(run.repairs.items()))
        table.add(
            run.name + (f" (`{run.faults_plan}`)" if run.faults_plan else ""),
            run.tasks,
            run.done,
            kinds.total(),
            kinds["lost"],
            repairs or "none",
            run.answers[503],
            run.answers[500],
            f"{sum(run.attempts) / max(len(run.attempts), 1):.2f}",
            " / ".join(_seconds(run.latencies, p) for p in (50, 95, 100)),
            f"{run.seconds:.1f} s",
        )
    tables = [table]
    faulted = [run for run in runs if run.faults]
    if faulted:
        by_op = Table(["operation", "throttled", "500", "reset", "lost", "slow"])
        counts = faulted[-1].faults
        for op in sorted(
            {op for _, op in counts}, key=lambda o: -sum(counts[k, o] for k, _ in counts)
        ):
            by_op.add(
                op,
                *(
                    counts[kind, op]
                    for kind in ("throttled", "server_error", "reset", "lost", "slow")
                ),
            )
        by_op.title = "Faults by operation (the faulted run)"
        tables.append(by_op)
    notes = []
    if len(runs) == 2 and runs[0].latencies and runs[1].latencies:
        extra = percentile(runs[1].latencies, 50) - percentile(runs[0].latencies, 50)
        tail = percentile(runs[1].latencies, 95) - percentile(runs[0].latencies, 95)
        notes.append(
            f"What the faults cost: {extra:+.2f} s at the median and {tail:+.2f} s at p95 "
            "from start to done; every task ended `done` in both runs"
            if all(r.done == r.tasks for r in runs)
            else f"What the faults cost: {extra:+.2f} s at the median; some tasks did not end done"
        )
    return Section(
        "8. Under AWS faults",
        METHOD.format(faults=FAULTS, workers=WORKERS, clients=CLIENTS),
        tables,
        notes,
    )


METHOD = """
Two fresh local stacks ({workers} workers each) run the same tasks, five kinds in turn:
primes up to 300,000 in one worker, primes up to 400,000 in 4 parts, the February report
(29 checkpoints), a 2 s sleep and a 1 s sleep that fails its first attempt. {clients}
clients start them at once over HTTP and poll each to its end, retrying a 5xx after a
second (a start with the same Idempotency-Key). The second stack's processes, the API,
the workers, the dead-letter worker and the reconciler, all run with
`LONGTASK_FAULTS={faults}`: 8 % of their AWS calls fail, half refused before AWS acts
(throttled, a 500, a reset connection) and half applied with the answer lost; botocore's
standard retries then do what they do on AWS. Every injected fault is a log line, and the
reconciler's repairs are its metric lines, so both are counted from the stack's log.
Start → done is the record's `created_at` to `finished_at`.
"""
