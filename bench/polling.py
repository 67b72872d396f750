"""The status page's polling schedule, as status.js implements it and the browser tests
measure it (tests/e2e/test_browser_live.py); `make bench` copies it into BENCHMARKS.md."""

from __future__ import annotations

SECTION = """## Polling schedule

How often the status page (`status.js`) asks for the status document. Few polls in the
middle of a task, one just after its predicted end; the server's `Retry-After` is always
the upper bound, and is itself the schedule for programs (`progress.poll_interval`).
Between polls the page moves the bar, the elapsed time and the time left at the task's
last reported rate (`progress.rate`, `progress.reported_at`), never backwards and never
more than 15 s (or four step times) past the last report, so a task that stops reporting
stops looking alive.

| phase | the page asks again after | `Retry-After` (upper bound) |
|---|---|---|
| page load | nothing: the page carries its status document | |
| queued | 1 s | 1 s |
| running, no estimate yet (its first 2 s) | when one can exist (2.5 s after the start) | 1 s |
| running, indeterminate | as `Retry-After` says | 0.6 x its age, at most 10 s |
| running, over 8 s left | half the time left, at most 12 s | half the time left, at most 30 s |
| running, 8 s or less left | the predicted end + 0.3 s | the first second after the end |
| past the predicted end | 0.7 s, then 1.5 times longer each time, up to 5 s | 1 s |
| retrying | 1 s after the next attempt is due (`retry_at`) | as running |
| no answer (offline, server away) | 2, 4, 8, 16, 30 s; at once on the browser's `online` | |
| done, failed, cancelled | one request for the final page; the download comes from S3 | none |

Measured in Chromium on the local stack (`tests/e2e/test_browser_live.py`), a 60 s `sleep`
watched from its start form: at most 15 requests to the API in all (the test asserts it;
before: 32 polls alone): the start, the page, its two static files (hashed names, cached
for a year, so a second task costs none), the polls and the final page. On three 30 s
tasks the page shows "Done" within 1.5 s of `finished_at` (asserted); sampled every 250 ms
the bar moved at least once a second and never went back. With the workers frozen (SIGSTOP)
the bar stood still 17 s after the last report.
"""
