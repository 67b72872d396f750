"""Benchmark 1: the AWS operations of each step of a task's life, beside their floor."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.inprocess import BENCH_KIND, Capacity, InProcessAws
from bench.report import Section, Table, Target
from chalicelib.longtask.progress import ProgressThrottle

# (log_progress calls, seconds) of the worker runs; then the 60 s task of benchmark 2, and
# the same with a checkpoint of CHECKPOINT_BYTES kept from its start.
WORKER_CASES = [(0, 1.0), (10, 1.0), (10_000, 1.0), (0, 10.0), (10, 10.0), (10_000, 10.0)]
COST_CASE = (600, 60.0)
CHECKPOINT_BYTES = 60 * 1024
# What a minute-long task may write at most, whatever its call rate (it wrote 60 before
# the write schedule followed the task's age).
MINUTE_WRITES_TARGET = 20

# Why an operation above the floor is there (it is reported, not hidden).
REASONS = {
    "GetQueueUrl": "the queue URL is looked up once per container (Lambda keeps it), "
    "because the settings name the queue (LONGTASK_QUEUE), not its URL",
    "ChangeMessageVisibility": "the claim hides the message for one lease, so that a "
    "crashed worker's task is taken over after one lease instead of the queue's "
    "visibility timeout (6 x the worker timeout)",
}


@dataclass
class Lifecycle:
    name: str
    ops: Counter[str]
    capacity: Capacity
    floor: Counter[str]
    event_source: Counter[str] = field(default_factory=Counter)
    progress_writes: int | None = None
    progress_allowed: int | None = None

    def beyond_floor(self) -> Counter[str]:
        """Operations above the floor, not counting progress writes (judged on their own)."""
        ops = Counter(self.ops)
        if self.progress_writes:
            ops["UpdateItem"] -= self.progress_writes
        return Counter({op: n - self.floor[op] for op, n in ops.items() if n > self.floor[op]})

    def below_floor(self) -> bool:
        return any(self.ops[op] < n for op, n in self.floor.items())


@dataclass
class OpsResult:
    lifecycles: list[Lifecycle]
    progress_interval: float
    lease_seconds: float
    largest_item: int  # bytes, of any task record written or read
    by_name: dict[str, Lifecycle] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {lc.name: lc for lc in self.lifecycles}


def worker_name(calls: int, seconds: float, real: bool = False, checkpoint: int = 0) -> str:
    clock = ", real clock" if real else ""
    kept = f", a {checkpoint // 1024} KB checkpoint" if checkpoint else ""
    return f"worker: {calls:,} log_progress calls over {seconds:g} s{kept}{clock}"


RUNNING_POLL = "status poll (JSON, running)"


def running_poll_name(checkpoint: int) -> str:
    return f"{RUNNING_POLL}, a {checkpoint // 1024} KB checkpoint" if checkpoint else RUNNING_POLL


def writes_allowed(seconds: float, interval: float) -> int:
    """The most progress writes the schedule lets a task of `seconds` make, whatever its
    call rate (one call every millisecond), the claim having just written."""
    throttle = ProgressThrottle(interval)
    throttle.wrote(0.0)
    writes = 0
    for ms in range(1, int(seconds * 1000) + 1):
        if throttle.due(ms / 1000, age=ms / 1000):
            throttle.wrote(ms / 1000)
            writes += 1
    return writes


def _start(client: Any, calls: int, seconds: float, checkpoint: int = 0) -> dict[str, Any]:
    response = client.http.post(
        f"/tasks/{BENCH_KIND}",
        headers={"Accept": "application/json", "Content-Type": "application/json"},
        body=json.dumps({"calls": calls, "seconds": seconds, "checkpoint": checkpoint}),
    )
    if response.status_code != 202:
        raise RuntimeError(f"start answered {response.status_code}: {response.body!r}")
    return dict(json.loads(response.body))


def measure(aws: InProcessAws, real_clock_check: bool) -> OpsResult:
    calls = aws.calls
    interval = float(aws.tasks.settings.progress_interval)
    lifecycles: list[Lifecycle] = []
    # A start writes the task with its owner's quota counts (and an idempotency key) in one
    # transaction, so that concurrent starts can never pass a quota, then queues it.
    start_floor = Counter({"TransactWriteItems": 1, "SendMessage": 1})
    read_floor = Counter({"GetItem": 1})
    with aws.http_client() as client:
        calls.reset()
        first = _start(client, 0, 1.0)
        lifecycles.append(Lifecycle("start (a container's first)", *calls.take(), start_floor))
        _start(client, 0, 1.0)
        lifecycles.append(Lifecycle("start", *calls.take(), start_floor))
        client.http.get(first["links"]["self"], headers={"Accept": "application/json"})
        lifecycles.append(Lifecycle("status poll (JSON, not done)", *calls.take(), read_floor))
        while aws.deliver() != "empty":  # run the two tasks started above
            pass

        cost_cases = [(*COST_CASE, 0), (*COST_CASE, CHECKPOINT_BYTES)]
        cases = [(n, s, 0) for n, s in WORKER_CASES] + cost_cases
        if real_clock_check:
            cases += [(n, s, 0) for n, s in WORKER_CASES if s == 1.0]
        done: dict[str, Any] = {}
        for i, (n, seconds, checkpoint) in enumerate(cases):
            real = i >= len(WORKER_CASES) + len(cost_cases)
            aws.pacer.real = real
            aws.tasks.use_backends(aws.tasks.backends, clock=time.time if real else aws.clock)
            document = _start(client, n, seconds, checkpoint)
            polled: list[tuple[Counter[str], Capacity]] = []

            def poll_while_running(
                url: str = document["links"]["self"],
                into: list[tuple[Counter[str], Capacity]] = polled,
            ) -> None:
                with calls.aside(into):
                    client.http.get(url, headers={"Accept": "application/json"})

            aws.pacer.midway = poll_while_running if (n, seconds) == COST_CASE else None
            calls.reset()
            aws.event_source_calls.reset()
            outcome = aws.deliver()
            ops, capacity = calls.take()
            event_source, _ = aws.event_source_calls.take()
            record = aws.tasks.backends.store.get(document["id"])
            calls.reset()
            if outcome != "deleted" or record is None or record.status.value != "done":
                raise RuntimeError(f"the bench task ended {outcome}, record {record}")
            writes = ops["UpdateItem"] - 1  # all but the claim
            # The claim, the result, and the one write that ends the task: a transaction,
            # since it gives the owner's place back too (the bench starts as an owner).
            floor = Counter({"UpdateItem": 1, "PutObject": 1, "TransactWriteItems": 1})
            if checkpoint:
                # Its checkpoint, written once beside the record with the first progress.
                floor["TransactWriteItems"] += 1
            lifecycles.append(
                Lifecycle(
                    worker_name(n, seconds, real, checkpoint),
                    ops,
                    capacity,
                    floor,
                    event_source=event_source,
                    progress_writes=writes,
                    progress_allowed=writes_allowed(seconds, interval) if interval else None,
                )
            )
            for poll_ops, poll_capacity in polled:
                lifecycles.append(
                    Lifecycle(running_poll_name(checkpoint), poll_ops, poll_capacity, read_floor)
                )
            done = document
        aws.pacer.midway = None
        aws.pacer.real = False
        aws.tasks.use_backends(aws.tasks.backends, clock=aws.clock)

        html = client.http.get(done["links"]["self"], headers={"Accept": "text/html"})
        if html.status_code != 200:
            raise RuntimeError(f"the result page of a done task answered {html.status_code}")
        # The page shows a preview of the result: one ranged read of its first bytes.
        page_floor = Counter({"GetItem": 1, "GetObject": 1})
        lifecycles.append(Lifecycle("result page (HTML, done)", *calls.take(), page_floor))
        program = client.http.get(done["links"]["self"], headers={"Accept": "*/*"})
        if program.status_code != 303:
            raise RuntimeError(f"the status of a done task answered {program.status_code}")
        lifecycles.append(Lifecycle("status (curl -L, done: 303 to S3)", *calls.take(), read_floor))
        result = client.http.get(
            done["links"]["self"] + "/result", headers={"Accept": "application/json"}
        )
        if result.status_code != 303 or "Signature" not in result.headers.get("Location", ""):
            raise RuntimeError(f"the result fetch answered {result.status_code}")
        lifecycles.append(Lifecycle("result fetch (303 to S3)", *calls.take(), read_floor))
    return OpsResult(
        lifecycles, interval, aws.tasks.settings.lease_for(None), aws.calls.largest_item
    )


def _ops_text(ops: Counter[str]) -> str:
    return " + ".join(f"{n} {op}" for op, n in sorted(ops.items()) if n) or "none"


def section(result: OpsResult) -> Section:
    table = Table(
        [
            "lifecycle step",
            "operations by longtask",
            "by Lambda's event source",
            "DynamoDB units (table + index writes / reads)",
            "floor",
            "vs floor",
        ]
    )
    interval = result.progress_interval
    for lc in result.lifecycles:
        floor = _ops_text(lc.floor)
        if lc.progress_allowed is not None:
            floor += f"; progress writes ≤ {lc.progress_allowed} (the schedule's most)"
        extra = lc.beyond_floor()
        verdict = "at the floor" if not extra else "+ " + _ops_text(extra)
        if lc.below_floor():
            verdict = "below the floor?"
        if lc.progress_writes is not None:
            plural = "" if lc.progress_writes == 1 else "s"
            verdict += f"; {lc.progress_writes} progress write{plural}"
            if lc.progress_allowed is not None and lc.progress_writes > lc.progress_allowed:
                verdict += " (**over**)"
        c = lc.capacity
        units = f"{c.write_units:g} + {c.index_write_units:g} W / {c.read_units:g} R"
        table.add(
            lc.name,
            _ops_text(lc.ops),
            _ops_text(lc.event_source) if lc.event_source else "",
            units,
            floor,
            verdict,
        )

    extras = Counter[str]()
    for lc in result.lifecycles:
        extras.update(lc.beyond_floor())
    notes = [f"**{op}** above the floor: {REASONS.get(op, 'unexplained')}." for op in extras]
    write_units = max(1, math.ceil(result.largest_item / 1024))
    notes.append(
        f"The largest task record here is {result.largest_item:,} bytes by DynamoDB's "
        f"sizing, so a write costs at most {write_units} unit{'s' if write_units > 1 else ''} "
        "and a read 1 unit."
    )
    notes.append(
        "The `by_owner` index holds keys only, so only the start's PutItem writes it: no "
        "later write changes a key. A large checkpoint's own item has no owner and is never "
        "in the index; a transaction bills 2 write units per KB of each item it checks or "
        "writes."
    )
    notes.append(
        "Status polls and result fetches read with ConsistentRead (1 read unit per 4 KB, "
        "not 0.5), so a poll right after a write always sees it."
    )
    worker_rows = [lc for lc in result.lifecycles if lc.progress_writes is not None]
    within = all(
        lc.progress_allowed is None or (lc.progress_writes or 0) <= lc.progress_allowed
        for lc in worker_rows
    )
    non_worker_at_floor = all(
        not (lc.beyond_floor() - Counter({"GetQueueUrl": 1}))
        for lc in result.lifecycles
        if lc.progress_writes is None
    )
    worker_extra = Counter[str]()
    for lc in worker_rows:
        worker_extra |= lc.beyond_floor()
    measured = (
        ("start, poll, result at the floor" if non_worker_at_floor else "start/poll/result over")
        + "; worker = floor"
        + (f" + {_ops_text(worker_extra)}" if worker_extra else "")
        + " per run; + 1 GetQueueUrl per container"
    )
    most = max(worker_rows, key=lambda lc: lc.progress_writes or 0)
    minute = result.by_name[worker_name(*COST_CASE)]
    kept = result.by_name[worker_name(*COST_CASE, checkpoint=CHECKPOINT_BYTES)]
    kept_poll = result.by_name[running_poll_name(CHECKPOINT_BYTES)]
    record_units = max(1, math.ceil(result.largest_item / 1024))
    targets = [
        Target("operations per lifecycle", "exactly at the floor", measured, not extras),
        Target(
            "progress writes of a 60 s task",
            f"≤ {MINUTE_WRITES_TARGET} (60 before), whatever the call rate",
            f"{minute.progress_writes} writes ({minute.name}); at most "
            f"{most.progress_writes} in any run, each within what the schedule allows",
            within and (minute.progress_writes or 0) <= MINUTE_WRITES_TARGET,
        ),
        Target(
            f"with a {CHECKPOINT_BYTES // 1024} KB checkpoint",
            "1 write unit per progress write, 1 read unit per status poll",
            f"{record_units} write unit per UpdateItem (largest record "
            f"{result.largest_item:,} bytes), {kept_poll.capacity.read_units:g} read unit per "
            f"poll; {kept.progress_writes} progress writes",
            record_units == 1 and kept_poll.capacity.read_units <= 1,
        ),
    ]
    method = f"""
Every AWS operation is counted with a botocore `before-call` hook on the app's own boto3
clients, over in-process moto holding the resources of `infra/template.yaml`, so the
figures are exact counts, not timings (`before-call` sees only requests that are sent:
presigning the result URL builds a GetObject's parameters but sends nothing). The app is
imported as Lambda imports it, with the **prod** stage's settings (progress interval
{interval:g} s, lease {result.lease_seconds:g} s). Starts, polls and result fetches go
through `chalice.test.Client`; the worker is called exactly as Lambda's SQS event source
calls it (one message, then delete on success), and the event source's own
ReceiveMessage/DeleteMessage are counted apart, since they are billed too. The worker runs
use a bench-only task kind (`{BENCH_KIND}`, registered at run time on the app's registry)
that calls `log_progress` N times evenly over D seconds on a virtual clock given to the
runner, so a 10 s run takes no time and its write count is exact; the full run repeats the
1 s cases on the real clock as a check. DynamoDB units follow AWS's sizing rules: each
write is billed on the larger of the item before and after it (1 unit per KB), each write
of an item with the `by_owner` keys also writes that index, a consistent read costs 1 unit
per 4 KB.
"""
    return Section("1. AWS operations per task lifecycle", method, [table], notes, targets)
