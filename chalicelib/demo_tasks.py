"""The demo tasks: counting primes, a monthly CSV report, and sleeping; and `declare`,
which offers them on a LongTasks."""

from __future__ import annotations

import calendar
import csv
import io
import itertools
import math
import random
import time
from typing import Any

from .longtask import File, Integer, LongTasks, Number, Settings, TaskContext, Text


class PlannedFailure(RuntimeError):
    """The error `sleep` raises on purpose, to show retries and failure."""


# The default LONGTASK_MAX_ATTEMPTS: failing more attempts than a task gets is the same
# as failing them all, so the form offers no more.
_ATTEMPTS = Settings().max_attempts


# -- primes: a segmented sieve, one segment per progress step and checkpoint


def _small_primes(limit: int) -> list[int]:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for n in range(2, math.isqrt(limit) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit + 1, n)))
    return [n for n in range(limit + 1) if sieve[n]]


def primes_between(low: int, high: int, base: list[int]) -> int:
    """How many primes p with low <= p < high, given every prime up to sqrt(high)."""
    low = max(low, 2)
    if high <= low:
        return 0
    segment = bytearray([1]) * (high - low)
    for p in base:
        if p * p >= high:
            break
        first = max(p * p, -(-low // p) * p)
        segment[first - low :: p] = bytes(len(range(first - low, high - low, p)))
    return segment.count(1)


def count_primes(params: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    """All primes up to `limit`: in one worker, or split into `parts` ranges that
    parallel workers count (ctx.map); the count is the same either way."""
    limit, parts = params["limit"], params.get("parts", 1)
    if parts > 1:
        edges = [round(i * (limit + 1) / parts) for i in range(parts + 1)]
        ranges = [[low, high] for low, high in itertools.pairwise(edges) if high > low]
        counts = ctx.map(ranges, count_primes_between)
        return {"limit": limit, "count": sum(counts)}
    state = ctx.resume_state or {"step": 0, "count": 0}
    return {"limit": limit, "count": _sieve(0, limit + 1, ctx, state)}


def count_primes_between(item: list[int], ctx: TaskContext) -> int:
    """One part of a split count: the primes p with low <= p < high."""
    low, high = item
    return _sieve(low, high, ctx, ctx.resume_state or {"step": 0, "count": 0})


def _sieve(low: int, high: int, ctx: TaskContext, state: dict[str, int]) -> int:
    """Counts the primes in [low, high) block by block, with a progress step and a
    checkpoint per block."""
    steps = min(max(10, math.ceil((high - low - 1) / 1_000_000)), 100)
    size = math.ceil((high - low) / steps)
    base = _small_primes(math.isqrt(high) + 1)
    step, count = state["step"], state["count"]
    ctx.log_progress(f"Sieving block {step + 1} of {steps}", step=step, total_steps=steps)
    while step < steps:
        start = low + step * size
        count += primes_between(start, min(start + size, high), base)
        step += 1
        ctx.checkpoint({"step": step, "count": count})
        ctx.log_progress(
            f"Sieved block {step} of {steps}: {count:,} primes so far",
            step=step,
            total_steps=steps,
        )
    return count


# -- report: a month of deterministic synthetic invoices, summed per day

_REPORT_DAY_SECONDS = 0.1  # stands in for fetching a day of invoices from a database


def _invoices_of(day: str) -> list[int]:
    """The day's invoice amounts in cents; the same every time for the same day."""
    rng = random.Random(f"longtask-invoices-{day}")
    return [rng.randint(500, 250_000) for _ in range(rng.randint(5, 60))]


def monthly_report(params: dict[str, Any], ctx: TaskContext) -> File:
    month = params["month"]
    year, number = (int(part) for part in month.split("-"))
    days = calendar.monthrange(year, number)[1]
    state = ctx.resume_state or {"rows": []}
    rows: list[list[Any]] = state["rows"]
    invoices = sum(row[1] for row in rows)
    for day in range(len(rows) + 1, days + 1):
        date = f"{month}-{day:02d}"
        amounts = _invoices_of(date)
        time.sleep(_REPORT_DAY_SECONDS)
        invoices += len(amounts)
        rows.append([date, len(amounts), sum(amounts)])
        ctx.checkpoint({"rows": rows})
        ctx.log_progress(f"Handling {date}: so far {invoices} invoices", step=day, total_steps=days)
    ctx.log_progress("Summing up", step=days, total_steps=days)
    total = sum(row[2] for row in rows)
    ctx.log_progress("Formatting", step=days, total_steps=days)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "invoices", "total", "average", "share_of_month"])
    for date, count, cents in rows:
        writer.writerow(
            [
                date,
                count,
                f"{cents / 100:.2f}",
                f"{cents / count / 100:.2f}" if count else "0.00",
                f"{cents / total:.4f}" if total else "0.0000",
            ]
        )
    return File(out.getvalue(), content_type="text/csv", filename=f"report-{month}.csv")


# Year 0001 to 9999, month 01 to 12: the pattern alone says what a month is, so the
# OpenAPI description admits no value that the check would refuse.
MONTH_PATTERN = r"(?!0000)\d{4}-(?:0[1-9]|1[0-2])"


NOT_A_MONTH = "must be a month, YYYY-MM, e.g. 2024-02"


def valid_month(text: str) -> None:
    year, number = (int(part) for part in text.split("-"))
    if not 1 <= number <= 12 or year < 1:
        raise ValueError(NOT_A_MONTH)


# -- sleep: waits, one step per second; can fail on purpose


def sleep(params: dict[str, Any], ctx: TaskContext) -> dict[str, float]:
    seconds, fail_times = params["seconds"], params["fail_times"]
    if ctx.attempt <= fail_times:
        raise PlannedFailure(
            f"Failed on purpose: attempt {ctx.attempt} of {fail_times} set to fail, as asked."
        )
    total = max(math.ceil(seconds), 1)
    done = (ctx.resume_state or {}).get("slept", 0.0)
    ctx.log_progress(f"Slept {done:g} of {seconds:g} s", step=math.floor(done), total_steps=total)
    while done < seconds:
        nap = min(1.0, seconds - done)
        time.sleep(nap)
        done = round(done + nap, 3)
        ctx.checkpoint({"slept": done})
        ctx.log_progress(
            f"Slept {done:g} of {seconds:g} s", step=math.ceil(done), total_steps=total
        )
    return {"slept": seconds}


def primes_in_words(result: dict[str, int]) -> str:
    return f"{result['count']:,} primes up to {result['limit']:,}"


def declare(tasks: LongTasks) -> None:
    """Offers the three demo tasks on `tasks`."""
    tasks.task(
        "primes",
        title="Count primes",
        description="Counts the prime numbers up to a limit with a segmented sieve.",
        params={
            "limit": Integer(min=2, max=50_000_000, initial=1_000_000, example="1000000"),
            "parts": Integer(
                min=1, max=100, default=1, label="Parts", help="Split over this many workers."
            ),
        },
        display_result=primes_in_words,
        duration_hint="About a second per 10 million, after a worker picks it up.",
    )(count_primes)
    tasks.task(
        "report",
        title="Monthly report",
        description="Sums a month of synthetic invoices per day into a CSV file.",
        params={
            "month": Text(
                pattern=MONTH_PATTERN,
                example="2024-02",
                initial="2024-02",
                check=valid_month,
                mismatch=NOT_A_MONTH,
                input_type="month",
                help="A month, YYYY-MM.",
            )
        },
        duration_hint="About 3 s: a tenth of a second per day of the month.",
    )(monthly_report)
    tasks.task(
        "sleep",
        title="Sleep",
        description="Waits, one progress step per second; can fail on purpose to show retries.",
        params={
            "seconds": Number(min=0, max=3600, initial=10, example="30"),
            "fail_times": Integer(
                min=0,
                max=_ATTEMPTS,
                default=0,
                label="Fail the first attempts",
                help=f"0 to {_ATTEMPTS}: each failed attempt is retried after a short wait; "
                f"{_ATTEMPTS} fails the task.",
            ),
        },
        # The longest sleep plus room for slow progress writes; the worker is never
        # held past it, whatever the task does.
        max_seconds=3600 + 60,
        duration_hint="As long as you ask, plus a second or two to start.",
    )(sleep)
