"""Benchmark 6: how right the time-left estimate is, on synthetic tasks and a virtual clock."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from bench.report import Section, Table
from chalicelib.longtask.testing import VirtualClock

MILESTONES = (25, 50, 75)
START = 1_800_000_000.0  # any epoch second will do; the clock is virtual
INTERVAL = 1.0


def profiles() -> dict[str, list[float]]:
    """Seconds per step of each synthetic task (100 steps, 100 s in all)."""
    noisy = random.Random(7)
    return {
        "steady: 100 steps of 1 s": [1.0] * 100,
        "uneven: 50 steps of 0.5 s, then 50 of 1.5 s": [0.5] * 50 + [1.5] * 50,
        "noisy: 100 steps of 0.2 to 1.8 s at random": [noisy.uniform(0.2, 1.8) for _ in range(100)],
    }


@dataclass
class Estimate:
    percent: int
    at: float  # seconds since the task started
    eta: float | None
    actual: float

    @property
    def error(self) -> float | None:
        return None if self.eta is None else self.eta - self.actual


def simulate(durations: list[float]) -> list[Estimate]:
    """Runs a task that takes `durations` through the real runner on an in-memory store and
    a virtual clock; at the first stored progress of each milestone, reads the status
    document's eta_seconds as a poll at that moment would."""
    from chalicelib.longtask.backends import MemoryQueue, MemoryResults, MemoryTaskStore
    from chalicelib.longtask.model import Links, Status, TaskRecord, new_task_id, status_document
    from chalicelib.longtask.runner import Runner
    from chalicelib.longtask.settings import Settings
    from chalicelib.longtask.tasks import TaskRegistry

    clock = VirtualClock(START)
    store = MemoryTaskStore()
    task_id = new_task_id()
    links = Links(self="/", result="/", cancel="/")
    total, steps = sum(durations), len(durations)
    found: list[Estimate] = []

    def synthetic(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
        started = clock.now
        ctx.log_progress("Starting", step=0, total_steps=steps)
        for i, seconds in enumerate(durations):
            clock.now += seconds
            ctx.log_progress(f"Step {i + 1}", step=i + 1, total_steps=steps)
            record = store.get(task_id)
            assert record is not None
            shown = record.progress.percent or 0.0
            for milestone in MILESTONES[len(found) :]:
                if shown < milestone:
                    break
                eta = status_document(record, links, clock.now)["eta_seconds"]
                found.append(
                    Estimate(milestone, clock.now - started, eta, started + total - clock.now)
                )
        return {}

    registry = TaskRegistry()
    registry.add("synthetic", synthetic)
    store.create(
        TaskRecord(
            id=task_id,
            kind="synthetic",
            params={},
            status=Status.READY,
            created_at=START,
            updated_at=START,
        )
    )
    settings = Settings(
        table="-",
        queue="-",
        dead_letter_queue="-",
        bucket="-",
        progress_interval=INTERVAL,
        lease_seconds=930,
    )
    Runner(registry, store, MemoryQueue(), MemoryResults(), settings, clock=clock).run(
        task_id, "receipt"
    )
    return found


def _cell(estimate: Estimate | None) -> str:
    if estimate is None:
        return "not reached"
    if estimate.eta is None or estimate.error is None:
        return f"no estimate (true {estimate.actual:.0f} s)"
    share = estimate.error / estimate.actual if estimate.actual else 0.0
    return (
        f"{estimate.eta:.0f} s for {estimate.actual:.0f} s: {estimate.error:+.0f} s ({share:+.0%})"
    )


def measure() -> dict[str, list[Estimate]]:
    return {name: simulate(durations) for name, durations in profiles().items()}


def section(result: dict[str, list[Estimate]]) -> Section:
    table = Table(
        [
            "synthetic task (100 s in all)",
            *(f"at {m} %: estimate for the true time left" for m in MILESTONES),
        ]
    )
    for name, estimates in result.items():
        by_percent = {e.percent: e for e in estimates}
        table.add(name, *(_cell(by_percent.get(m)) for m in MILESTONES))
    notes = [
        "The estimate follows a smoothed rate of steps per second whose memory grows with "
        "the task (progress.update_rate), so it cannot foresee a task whose later steps "
        "are slower: the uneven task is underestimated in its fast half and caught up "
        "with in its slow half.",
    ]
    method = f"""
Each synthetic task runs through the real runner (`Runner`, `RunContext.log_progress` with
its write schedule: every {INTERVAL:g} s at first, slower as the task ages) on the in-memory
store, on a virtual clock; it reports every step. The estimate is what a status poll shows
(`status_document` → `progress.estimate_eta`) the first time the stored progress reaches
25, 50 and 75 %, set against the true time left at that moment. The noisy task's step
times are seeded, so every run gives the same figures.
"""
    return Section("6. ETA accuracy", method, [table], notes)
