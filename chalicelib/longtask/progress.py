"""Progress bookkeeping without I/O: the write schedule, the time-left estimate and the
poll schedule."""

from __future__ import annotations

import math

# The estimate follows an exponentially weighted rate of steps per second whose
# memory grows with the task: short tasks react fast, long ones are not thrown off
# by one slow step.
_MIN_SMOOTHING_SECONDS = 3.0
_SMOOTHING_SHARE_OF_ELAPSED = 0.25
# Too young to judge: before this many seconds of running an estimate is a guess.
_MIN_AGE_SECONDS = 2.0
# Stalled: no step for this many times the usual step time (and at least the
# grace below) makes the estimate unknown rather than a made-up number.
_STALL_FACTOR = 4.0
_STALL_GRACE_SECONDS = 10.0


# How often a running task's progress is written, by its age: every LONGTASK_PROGRESS_INTERVAL
# while a person is likely watching the first seconds, then a fifth of the age, never more
# than every 5 s. Readers poll less often than that as a task ages (poll_interval), so
# the extra writes of a fixed 1 s pace were never read; and 5 s stays well inside the
# ETA's stall grace, so a poll never takes a task that writes on schedule for stalled.
_WRITE_SHARE_OF_AGE = 0.2
_MAX_WRITE_INTERVAL = 5.0


def write_interval(age: float, least: float) -> float:
    """Seconds between two progress writes of a task that has run `age` seconds;
    never less than `least` (LONGTASK_PROGRESS_INTERVAL)."""
    return max(least, min(_WRITE_SHARE_OF_AGE * max(age, 0.0), _MAX_WRITE_INTERVAL))


class ProgressThrottle:
    """Allows one write per interval, however often progress is logged: `interval` when
    no age is given, else write_interval(age, interval)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last_write: float | None = None

    def due(self, now: float, age: float | None = None) -> bool:
        if self._last_write is None:
            return True
        wait = self.interval if age is None else write_interval(age, self.interval)
        return now - self._last_write >= wait

    def allowed(self, now: float) -> bool:
        """Whether the least interval has passed (a change worth showing may go now)."""
        return self._last_write is None or now - self._last_write >= self.interval

    def wrote(self, now: float) -> None:
        self._last_write = now


def update_rate(
    rate: float | None,
    previous_step: int | None,
    previous_at: float | None,
    step: int | None,
    now: float,
    started_at: float,
) -> float | None:
    """The smoothed steps-per-second after the task reported `step` at `now`."""
    if step is None:
        return None
    if previous_step is None or previous_at is None:
        # The first sample measures from the start of the run.
        previous_step, previous_at = 0, started_at
    dt = now - previous_at
    if step <= previous_step or dt <= 0:
        return rate
    instant = (step - previous_step) / dt
    if rate is None:
        return instant
    tau = max(_MIN_SMOOTHING_SECONDS, _SMOOTHING_SHARE_OF_ELAPSED * (now - started_at))
    weight = 1.0 - math.exp(-dt / tau)
    return rate + weight * (instant - rate)


def estimate_eta(
    step: int | None,
    total_steps: int | None,
    rate: float | None,
    reported_at: float | None,
    now: float,
    started_at: float | None = None,
) -> float | None:
    """Seconds left, or None where an honest number cannot be given."""
    if step is None or not total_steps or not rate or rate <= 0 or reported_at is None:
        return None
    if started_at is not None and now - started_at < _MIN_AGE_SECONDS:
        return None
    remaining = max(total_steps - step, 0)
    if remaining == 0:
        return 0.0
    step_time = 1.0 / rate
    since = max(now - reported_at, 0.0)
    if since > max(_STALL_FACTOR * step_time, _STALL_GRACE_SECONDS):
        return None
    # The record shows the last step written, and writes grow sparse as a task ages: at
    # the usual rate the task has gone on since, so the time since counts off the rest.
    # (A step that runs late makes this short; past the stall rule above it is None.)
    eta = max(remaining * step_time - since, 0.0)
    return round(eta, 1)


# With an estimate a client asks at half the time left, so it asks rarely in the middle
# of a long task, and once the end is near, on the first whole second after it, so
# "done" shows about a second late. Without one it asks as a share of the task's age, at
# most every 10 s: a task that cannot say when it ends is still seen to end soon.
_POLL_SHARE_OF_AGE = 0.6
_NEAR_END_SECONDS = 10
_MAX_POLL_SECONDS = 30
_MAX_BLIND_POLL_SECONDS = 10


def poll_interval(elapsed_seconds: float | None, eta_seconds: float | None = None) -> int:
    """Seconds a client should wait before asking again (Retry-After)."""
    if eta_seconds is not None and elapsed_seconds:
        if eta_seconds > _NEAR_END_SECONDS:
            return int(min(eta_seconds / 2, _MAX_POLL_SECONDS))
        return math.floor(max(eta_seconds, 0.0)) + 1
    if not elapsed_seconds or elapsed_seconds < _MIN_AGE_SECONDS:
        return 1
    return min(max(round(_POLL_SHARE_OF_AGE * elapsed_seconds), 1), _MAX_BLIND_POLL_SECONDS)
