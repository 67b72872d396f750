"""Progress: writes stay rare however chatty a task is, and the time left is honest."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from chalicelib.longtask.progress import (
    ProgressThrottle,
    estimate_eta,
    poll_interval,
    update_rate,
    write_interval,
)

START = 1_800_000_000.0  # a fake clock's epoch seconds when the task started running

# -- the write throttle -----------------------------------------------------------------


def test_a_chatty_task_writes_at_most_once_a_second() -> None:
    throttle = ProgressThrottle(interval=1.0)
    calls, span = 100_000, 2.0
    writes = []
    for i in range(calls):
        now = START + span * i / (calls - 1)  # the last call lands exactly 2 s in
        if throttle.due(now):
            throttle.wrote(now)
            writes.append(now - START)
    assert 2 <= len(writes) <= 3
    assert writes[0] == 0.0  # the first progress is shown at once
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(writes))


def test_throttle_allows_the_next_write_once_the_interval_has_passed() -> None:
    throttle = ProgressThrottle(interval=1.0)
    assert throttle.due(START)
    throttle.wrote(START)
    assert not throttle.due(START + 0.999)
    assert throttle.due(START + 1.0)


def test_throttle_with_zero_interval_writes_every_time() -> None:
    throttle = ProgressThrottle(interval=0.0)
    for i in range(5):
        assert throttle.due(START + i * 0.001)
        throttle.wrote(START + i * 0.001)


# -- the write schedule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "seconds"),
    [(0, 1.0), (3, 1.0), (5, 1.0), (7.5, 1.5), (10, 2.0), (20, 4.0), (25, 5.0), (3600, 5.0)],
)
def test_writes_slow_down_with_age_to_one_every_five_seconds(age: float, seconds: float) -> None:
    assert write_interval(age, least=1.0) == pytest.approx(seconds)


def test_the_configured_interval_stays_the_least_wait() -> None:
    assert write_interval(0, least=2.5) == 2.5
    assert write_interval(20, least=2.5) == 4.0
    assert write_interval(3600, least=8.0) == 8.0
    assert write_interval(0, least=0.0) == 0.0


def progress_writes(seconds: float, calls_per_second: float, least: float = 1.0) -> list[float]:
    """When a task that logs progress evenly writes it, on the schedule by its age."""
    throttle = ProgressThrottle(least)
    throttle.wrote(0.0)  # the claim
    writes = []
    calls = round(seconds * calls_per_second)
    for i in range(1, calls + 1):
        now = i / calls_per_second
        if throttle.due(now, age=now):
            throttle.wrote(now)
            writes.append(now)
    return writes


@pytest.mark.parametrize("calls_per_second", [1, 10, 1000])
def test_a_minute_long_task_writes_its_progress_at_most_twenty_times(
    calls_per_second: float,
) -> None:
    writes = progress_writes(60, calls_per_second)
    assert len(writes) <= 20
    assert writes[:5] == [1.0, 2.0, 3.0, 4.0, 5.0]  # every second while the task is young
    gaps = [b - a for a, b in itertools.pairwise([0.0, *writes])]
    assert max(gaps) <= 5.0 + 1 / calls_per_second  # never staler than 5 s (and a call)


def test_an_hour_long_task_writes_about_every_five_seconds() -> None:
    writes = progress_writes(3600, 1)
    assert 700 <= len(writes) <= 730


def test_throttle_without_an_age_keeps_the_plain_interval() -> None:
    throttle = ProgressThrottle(interval=1.0)
    throttle.wrote(START)
    assert throttle.due(START + 1.0)
    assert not throttle.due(START + 1.0, age=20.0)  # 4 s at that age
    assert throttle.due(START + 4.0, age=20.0)
    assert throttle.allowed(START + 1.0) and not throttle.allowed(START + 0.5)


# -- the ETA on synthetic timelines -----------------------------------------------------


@dataclass(frozen=True)
class Sample:
    step: int
    eta: float | None
    truth: float  # the real seconds left at that moment

    @property
    def error(self) -> float:
        """Relative error of the estimate against the real time left."""
        assert self.eta is not None
        return (self.eta - self.truth) / self.truth


def run_timeline(step_seconds: Sequence[float], look_after: float = 0.0) -> dict[int, Sample]:
    """Plays a task whose step k takes step_seconds[k-1], as the runner feeds progress.

    After each reported step the status page is looked at `look_after` of the next
    step's duration later; returns what it showed, by step.
    """
    total = len(step_seconds)
    times = [START]
    for seconds in step_seconds:
        times.append(times[-1] + seconds)
    end = times[-1]
    rate = None
    previous_step: int | None = None
    previous_at: float | None = None
    # The runner's first report is step 0, right at the start: it sets no rate.
    rate = update_rate(rate, previous_step, previous_at, 0, START, START)
    previous_step, previous_at = 0, START
    shown: dict[int, Sample] = {}
    for step in range(1, total):
        reported = times[step]
        rate = update_rate(rate, previous_step, previous_at, step, reported, START)
        previous_step, previous_at = step, reported
        now = reported + look_after * (times[step + 1] - reported)
        eta = estimate_eta(step, total, rate, reported, now, START)
        shown[step] = Sample(step, eta, end - now)
    return shown


# Measured errors, for the record (relative, + means the estimate is too long):
#   steady 60 steps of 1 s:       0.0 % at 25, 50 and 75 %
#   alternating 0.5 s / 1.5 s:    -8.8 % / +2.7 % / -5.8 % at 25 / 50 / 75 %
#   alternating 1.5 s / 0.5 s:    +7.2 % / -3.7 % / +5.5 %
#   2 s → 0.5 s, then 0.5 s:      +130 % / +72 % / +25 %   (too long, shrinking)
#   each step 5 % faster:         +211 % / +207 % / +214 %  (gap in seconds shrinks)
ACCEPTED_ERROR = 0.15


@pytest.mark.parametrize("look_after", [0.0, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("share", [0.25, 0.5, 0.75])
def test_steady_task_estimate_is_right(share: float, look_after: float) -> None:
    shown = run_timeline([1.0] * 60, look_after)
    sample = shown[round(share * 60)]
    assert abs(sample.error) <= ACCEPTED_ERROR
    assert sample.eta == pytest.approx(sample.truth, abs=0.1)


@pytest.mark.parametrize("slow_first", [False, True])
@pytest.mark.parametrize("look_after", [0.0, 0.5])
def test_uneven_steps_estimate_within_15_percent_at_half_way(
    slow_first: bool, look_after: float
) -> None:
    fast, slow = 0.5, 1.5
    pattern = (slow, fast) if slow_first else (fast, slow)
    shown = run_timeline([pattern[i % 2] for i in range(60)], look_after)
    assert abs(shown[30].error) <= ACCEPTED_ERROR
    # Not just at half way: the estimate does not swing with each step.
    for step in (15, 45):
        assert abs(shown[step].error) <= ACCEPTED_ERROR


def test_accelerating_task_estimate_comes_closer_to_the_truth() -> None:
    # Step times shrink from 2 s to 0.5 s over the first half, then stay at 0.5 s
    # (say, caches warming up). An estimate from the speed so far is too long at
    # first; it must keep moving toward the real time left as the speed shows.
    steps = [2.0 - 1.5 * i / 29 for i in range(30)] + [0.5] * 30
    shown = run_timeline(steps)
    samples = [shown[step] for step in range(5, 60, 5)]
    assert all(s.eta is not None and s.eta >= s.truth for s in samples)
    gaps = [s.eta - s.truth for s in samples if s.eta is not None]
    assert gaps == sorted(gaps, reverse=True)  # the gap in seconds shrinks every time
    errors = [shown[step].error for step in (15, 30, 45)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < errors[0] / 2


def test_ever_accelerating_task_estimate_gap_shrinks() -> None:
    # Every step 5 % faster than the one before: the estimate stays pessimistic,
    # but what it is off by shrinks with every step.
    shown = run_timeline([2.0 * 0.95**i for i in range(60)])
    samples = [shown[step] for step in range(5, 60, 5)]
    gaps = [s.eta - s.truth for s in samples if s.eta is not None]
    assert len(gaps) == len(samples)
    assert all(gap > 0 for gap in gaps)
    assert gaps == sorted(gaps, reverse=True)


def test_stalled_task_has_no_estimate() -> None:
    rate = 1.0  # one step a second so far
    reported = START + 30
    assert estimate_eta(30, 60, rate, reported, reported + 5, START) is not None
    assert estimate_eta(30, 60, rate, reported, reported + 60, START) is None
    assert estimate_eta(30, 60, rate, reported, reported + 3600, START) is None


def test_a_slow_but_steady_task_is_not_called_stalled() -> None:
    rate = 1 / 60  # one step a minute
    reported = START + 600
    eta = estimate_eta(10, 20, rate, reported, reported + 45, START)
    assert eta == pytest.approx(10 * 60 - 45)


def test_the_time_since_the_last_written_step_counts_off_the_rest_never_below_zero() -> None:
    # Writes grow sparse as a task ages: 8 s after step 50 of 60 (1 s a step), the task
    # has gone on at its rate, so about 2 s are left, not 10.
    assert estimate_eta(50, 60, 1.0, START + 50, START + 58, START) == pytest.approx(2.0)
    assert estimate_eta(58, 60, 1.0, START + 58, START + 61, START) == 0.0
    # Silent past the stall rule (4 step times, at least 10 s): no number at all.
    assert estimate_eta(50, 60, 1.0, START + 50, START + 61, START) is None


@pytest.mark.parametrize(
    ("step", "total"),
    [(None, 60), (30, None), (None, None), (30, 0)],
)
def test_indeterminate_progress_has_no_estimate(step: int | None, total: int | None) -> None:
    assert estimate_eta(step, total, 1.0, START + 30, START + 30, START) is None


def test_indeterminate_progress_has_no_rate() -> None:
    assert update_rate(1.0, 3, START + 3, None, START + 4, START) is None


def test_no_rate_yet_means_no_estimate() -> None:
    assert estimate_eta(0, 60, None, START, START + 5, START) is None
    assert estimate_eta(5, 60, 0.0, START + 5, START + 5, START) is None
    assert estimate_eta(5, 60, 1.0, None, START + 5, START) is None


def test_too_young_task_has_no_estimate() -> None:
    assert estimate_eta(1, 60, 1.0, START + 1, START + 1.9, START) is None
    assert estimate_eta(2, 60, 1.0, START + 2, START + 2, START) is not None


def test_finished_steps_estimate_zero() -> None:
    assert estimate_eta(60, 60, 1.0, START + 60, START + 60, START) == 0.0
    assert estimate_eta(61, 60, 1.0, START + 60, START + 60, START) == 0.0


def test_first_rate_is_measured_from_the_start_of_the_run() -> None:
    assert update_rate(None, None, None, 4, START + 2, START) == pytest.approx(2.0)


def test_a_repeated_or_backward_step_keeps_the_rate() -> None:
    assert update_rate(1.5, 10, START + 10, 10, START + 12, START) == 1.5
    assert update_rate(1.5, 10, START + 10, 8, START + 12, START) == 1.5
    assert update_rate(1.5, 10, START + 10, 11, START + 10, START) == 1.5  # no time passed


def test_one_slow_step_does_not_throw_a_long_task_off() -> None:
    rate = None
    previous, at = 0, START
    for step in range(1, 301):  # five minutes at a step a second
        rate = update_rate(rate, previous, at, step, START + step, START)
        previous, at = step, START + step
    rate = update_rate(rate, previous, at, 301, at + 10, START)  # one step takes 10 s
    assert rate is not None
    assert 0.8 <= rate <= 1.0


@pytest.mark.parametrize(
    ("elapsed", "seconds"),
    [
        (None, 1),
        (0, 1),
        (1.9, 1),
        (2, 1),
        (5, 3),
        (10, 6),
        (30, 10),
        (50, 10),
        (3600, 10),
        (10**6, 10),
    ],
)
def test_poll_interval_starts_fast_and_backs_off_with_the_tasks_age(
    elapsed: float | None, seconds: int
) -> None:
    assert poll_interval(elapsed) == seconds


def test_poll_interval_never_decreases_as_a_task_ages() -> None:
    intervals = [poll_interval(t / 10) for t in range(0, 2000)]
    assert intervals == sorted(intervals)
    assert min(intervals) == 1 and max(intervals) == 10


@pytest.mark.parametrize(("eta", "seconds"), [(0.0, 1), (0.4, 1), (1.0, 2), (3.7, 4), (9.5, 10)])
def test_the_next_poll_lands_just_after_the_estimated_end(eta: float, seconds: int) -> None:
    assert poll_interval(40, eta) == seconds


@pytest.mark.parametrize(("eta", "seconds"), [(11, 5), (57, 28), (100, 30), (10**5, 30)])
def test_mid_task_a_client_asks_at_half_the_time_left(eta: float, seconds: int) -> None:
    assert poll_interval(40, eta) == seconds


def page_polls(task_seconds: float) -> list[float]:
    """When a page loaded as the task starts polls a steady task (its ETA exact)."""
    t, polls = 1.0, []
    while True:
        polls.append(t)
        if t >= task_seconds:
            return polls
        t += poll_interval(t, task_seconds - t if t >= 2 else None)


@pytest.mark.parametrize(("task_seconds", "most"), [(5, 5), (10, 6), (60, 10), (3600, 130)])
def test_a_page_polls_a_steady_task_rarely_and_sees_it_end_within_a_second(
    task_seconds: float, most: int
) -> None:
    polls = page_polls(task_seconds)
    assert len(polls) <= most
    assert polls[-1] - task_seconds <= 1.0
