"""Progress bookkeeping without I/O: the write throttle and the time-left estimate."""

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


class ProgressThrottle:
    """Allows one write per `interval` seconds, however often progress is logged."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last_write: float | None = None

    def due(self, now: float) -> bool:
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
    # The step under way may run late; the steps after it still take their time.
    eta = max(remaining * step_time - since, (remaining - 1) * step_time)
    return round(eta, 1)


# A client told to wait longer than this could miss a change of estimate for too long.
_MAX_POLL_SECONDS = 30


def poll_interval(elapsed_seconds: float | None, eta_seconds: float | None = None) -> int:
    """Seconds a client should wait before asking again (Retry-After).

    With an estimate: half the time left (at most 30 s) while more than 10 s are left,
    so that a client asks rarely in the middle of a long task; then just after the
    predicted end, so that it sees the end soon after it comes. Without one: 1 s at
    first, up to 5 s."""
    if eta_seconds is not None:
        if eta_seconds > 10:
            return int(min(_MAX_POLL_SECONDS, eta_seconds / 2))
        return math.ceil(eta_seconds) + 1
    if not elapsed_seconds or elapsed_seconds < 10:
        return 1
    return int(min(5, 1 + elapsed_seconds // 15))
