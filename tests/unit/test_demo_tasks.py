"""The demo tasks (primes, report, sleep), run inline with a fake context: right answers,
honest progress."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib import demo_tasks
from chalicelib.longtask.tasks import File, encode_result


@dataclass
class FakeContext:
    """The `ctx` a task gets, recording what the task told it."""

    attempt: int = 1
    resume_state: Any = None
    cancelled: bool = False
    progress: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    checkpoints: list[Any] = field(default_factory=list)

    def log_progress(
        self, message: str, step: int | None = None, total_steps: int | None = None
    ) -> None:
        self.progress.append((message, step, total_steps))

    def checkpoint(self, state: Any) -> None:
        # Stored as JSON, as the real context does: later changes by the task don't leak in.
        self.checkpoints.append(json.loads(json.dumps(state)))

    @property
    def steps(self) -> list[int | None]:
        return [step for _, step, _ in self.progress]

    @property
    def totals(self) -> set[int | None]:
        return {total for _, _, total in self.progress}


def naive_prime_count(low: int, high: int) -> int:
    """Primes p with low <= p < high, by trial division."""
    return sum(1 for n in range(max(low, 2), high) if all(n % d for d in range(2, int(n**0.5) + 1)))


def naive_primes_up_to(limit: int) -> list[int]:
    return [n for n in range(2, limit + 1) if all(n % d for d in range(2, int(n**0.5) + 1))]


# -- primes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "count"),
    [(2, 1), (3, 2), (10, 4), (100, 25), (1000, 168), (7919, 1000), (10**6, 78498)],
)
def test_primes_counts_are_right(limit: int, count: int) -> None:
    assert demo_tasks.count_primes({"limit": limit}, FakeContext()) == {
        "limit": limit,
        "count": count,
    }


def test_primes_counts_match_a_naive_count_for_every_small_limit() -> None:
    # Ten segments of every size, so primes land on every kind of segment border.
    for limit in range(2, 400):
        got = demo_tasks.count_primes({"limit": limit}, FakeContext())["count"]
        assert got == naive_prime_count(2, limit + 1), limit


def test_primes_between_matches_a_naive_count_on_random_ranges() -> None:
    rng = random.Random(20261128)
    for _ in range(500):
        low = rng.randrange(0, 3000)
        high = low + rng.randrange(0, 300)
        base = naive_primes_up_to(int(high**0.5) + 1)
        assert demo_tasks.primes_between(low, high, base) == naive_prime_count(low, high), (
            low,
            high,
        )


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (0, 0), (0, 1), (0, 2), (0, 3), (2, 3), (3, 3), (5, 2),
        (48, 50), (49, 50), (49, 49), (50, 49), (120, 121), (121, 122), (121, 169), (169, 170),
        (960, 962), (961, 962), (1000, 1010),
    ],
)  # fmt: skip
def test_primes_between_at_borders_and_prime_squares(low: int, high: int) -> None:
    base = naive_primes_up_to(int(max(high, 0) ** 0.5) + 1)
    assert demo_tasks.primes_between(low, high, base) == naive_prime_count(low, high)


@pytest.mark.parametrize("limit", [2, 1000, 10**6])
def test_primes_progress_has_at_least_ten_steps_that_reach_the_total(limit: int) -> None:
    ctx = FakeContext()
    demo_tasks.count_primes({"limit": limit}, ctx)
    (total,) = ctx.totals
    assert total is not None and total >= 10
    assert ctx.steps == list(range(total + 1))  # step 0 at once, then every block
    assert ctx.steps[-1] == total
    assert all(message for message, _, _ in ctx.progress)


def test_the_largest_limit_moves_in_blocks_of_a_million() -> None:
    # Only the plan matters here, not sieving fifty million numbers: resume at the end.
    ctx = FakeContext(resume_state={"step": 49, "count": 0})
    demo_tasks.count_primes({"limit": 50_000_000}, ctx)
    assert ctx.totals == {50}
    assert ctx.steps == [49, 50]
    assert ctx.progress[0][0] == "Sieving block 50 of 50"


def test_primes_checkpoints_after_every_block() -> None:
    ctx = FakeContext()
    demo_tasks.count_primes({"limit": 1000}, ctx)
    assert [c["step"] for c in ctx.checkpoints] == list(range(1, 11))
    assert ctx.checkpoints[-1]["count"] == 168


def test_primes_resumed_halfway_gives_the_same_count_without_starting_over() -> None:
    first = FakeContext()
    full = demo_tasks.count_primes({"limit": 10**6}, first)
    halfway = first.checkpoints[len(first.checkpoints) // 2 - 1]
    assert halfway["step"] == 5

    second = FakeContext(attempt=2, resume_state=halfway)
    assert (
        demo_tasks.count_primes({"limit": 10**6}, second)
        == full
        == {
            "limit": 10**6,
            "count": 78498,
        }
    )
    assert second.steps == [5, 6, 7, 8, 9, 10]
    assert second.progress[0][0] == "Sieving block 6 of 10"


# -- report -----------------------------------------------------------------------------


@pytest.fixture
def instant_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_tasks, "_REPORT_DAY_SECONDS", 0)


def run_report(month: str, ctx: FakeContext | None = None) -> tuple[File, FakeContext]:
    ctx = ctx or FakeContext()
    result = demo_tasks.monthly_report({"month": month}, ctx)
    assert isinstance(result, File)
    return result, ctx


def rows_of(report: File) -> list[list[str]]:
    assert isinstance(report.body, str)
    return list(csv.reader(io.StringIO(report.body)))


@pytest.mark.usefixtures("instant_days")
def test_report_is_a_csv_with_a_header_and_one_line_per_day() -> None:
    report, _ = run_report("2024-02")
    assert report.content_type == "text/csv"
    assert report.filename == "report-2024-02.csv"
    assert encode_result(report).content_type == "text/csv; charset=utf-8"
    lines = report.body.splitlines()
    assert len(lines) == 1 + 29  # a leap year's February
    rows = rows_of(report)
    assert rows[0] == ["date", "invoices", "total", "average", "share_of_month"]
    assert [row[0] for row in rows[1:]] == [f"2024-02-{day:02d}" for day in range(1, 30)]
    for _date, invoices, total, average, share in rows[1:]:
        assert int(invoices) >= 1
        assert re.fullmatch(r"\d+\.\d\d", total)
        assert float(average) == pytest.approx(float(total) / int(invoices), abs=0.01)
        assert 0 < float(share) < 1
    assert sum(float(row[4]) for row in rows[1:]) == pytest.approx(1, abs=0.001)


@pytest.mark.usefixtures("instant_days")
@pytest.mark.parametrize(("month", "days"), [("2023-02", 28), ("2024-04", 30), ("2024-12", 31)])
def test_report_has_a_line_for_every_day_of_the_month(month: str, days: int) -> None:
    report, _ = run_report(month)
    assert len(rows_of(report)) == 1 + days


@pytest.mark.usefixtures("instant_days")
def test_report_is_the_same_every_time() -> None:
    assert run_report("2024-02")[0] == run_report("2024-02")[0]
    assert run_report("2024-02")[0].body != run_report("2024-03")[0].body


@pytest.mark.usefixtures("instant_days")
def test_report_progress_one_step_per_day_saying_the_day_and_the_invoices_so_far() -> None:
    report, ctx = run_report("2024-02")
    invoices = [int(row[1]) for row in rows_of(report)[1:]]
    handling = ctx.progress[:-2]
    assert len(handling) == 29
    so_far = 0
    for day, (message, step, total) in enumerate(handling, start=1):
        so_far += invoices[day - 1]
        assert message == f"Handling 2024-02-{day:02d}: so far {so_far} invoices"
        assert (step, total) == (day, 29)
    assert ctx.progress[-2:] == [("Summing up", 29, 29), ("Formatting", 29, 29)]


@pytest.mark.usefixtures("instant_days")
def test_report_resumed_from_a_checkpoint_is_the_same_report() -> None:
    whole, first = run_report("2024-02")
    assert len(first.checkpoints) == 29
    after_14_days = first.checkpoints[13]
    resumed, second = run_report("2024-02", FakeContext(attempt=2, resume_state=after_14_days))
    assert resumed == whole
    handled = [m for m, _, _ in second.progress if m.startswith("Handling")]
    assert handled[0].startswith("Handling 2024-02-15: so far ")
    assert len(handled) == 15
    # The invoices counted before the handover still count.
    assert handled[-1] == first.progress[28][0]


def test_report_waits_per_day_like_a_database_would(monkeypatch: pytest.MonkeyPatch) -> None:
    naps: list[float] = []
    monkeypatch.setattr(demo_tasks.time, "sleep", naps.append)
    run_report("2024-02")
    assert naps == [demo_tasks._REPORT_DAY_SECONDS] * 29


@pytest.mark.parametrize("month", ["2024-13", "2024-00", "0000-01", "2024-99"])
def test_valid_month_refuses_months_that_do_not_exist(month: str) -> None:
    with pytest.raises(ValueError, match="must be a month"):
        demo_tasks.valid_month(month)


@pytest.mark.parametrize("month", ["2024-01", "2024-02", "2024-12", "0001-06", "9999-12"])
def test_valid_month_accepts_real_months(month: str) -> None:
    demo_tasks.valid_month(month)


# -- sleep ------------------------------------------------------------------------------


@pytest.fixture
def naps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(demo_tasks.time, "sleep", recorded.append)
    return recorded


def test_sleep_zero_seconds_returns_at_once(naps: list[float]) -> None:
    ctx = FakeContext()
    assert demo_tasks.sleep({"seconds": 0, "fail_times": 0}, ctx) == {"slept": 0}
    assert naps == []
    assert ctx.progress == [("Slept 0 of 0 s", 0, 1)]


def test_sleep_one_progress_step_per_second(naps: list[float]) -> None:
    ctx = FakeContext()
    assert demo_tasks.sleep({"seconds": 3, "fail_times": 0}, ctx) == {"slept": 3}
    assert naps == [1.0, 1.0, 1.0]
    assert ctx.progress == [
        ("Slept 0 of 3 s", 0, 3),
        ("Slept 1 of 3 s", 1, 3),
        ("Slept 2 of 3 s", 2, 3),
        ("Slept 3 of 3 s", 3, 3),
    ]


def test_sleep_a_fraction_of_a_second(naps: list[float]) -> None:
    ctx = FakeContext()
    assert demo_tasks.sleep({"seconds": 2.5, "fail_times": 0}, ctx) == {"slept": 2.5}
    assert naps == [1.0, 1.0, 0.5]
    assert ctx.steps == [0, 1, 2, 3]
    assert ctx.totals == {3}


def test_sleep_fails_on_purpose_on_the_first_attempts(naps: list[float]) -> None:
    params = {"seconds": 2, "fail_times": 2}
    for attempt in (1, 2):
        ctx = FakeContext(attempt=attempt)
        with pytest.raises(Exception, match=f"on purpose: attempt {attempt} of 2"):
            demo_tasks.sleep(params, ctx)
        assert ctx.progress == []
    assert naps == []
    assert demo_tasks.sleep(params, FakeContext(attempt=3)) == {"slept": 2}
    assert naps == [1.0, 1.0]


def test_sleep_resumes_from_a_checkpoint(naps: list[float]) -> None:
    first = FakeContext()
    demo_tasks.sleep({"seconds": 5, "fail_times": 0}, first)
    assert first.checkpoints == [{"slept": float(s)} for s in range(1, 6)]
    naps.clear()

    second = FakeContext(attempt=2, resume_state={"slept": 3.0})
    assert demo_tasks.sleep({"seconds": 5, "fail_times": 0}, second) == {"slept": 5}
    assert naps == [1.0, 1.0]
    assert second.steps == [3, 4, 5]
    assert second.progress[0][0] == "Slept 3 of 5 s"
