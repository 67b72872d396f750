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
| running, over 8 s left | half the time left, at most 12 s | half the time left, at most 30 s |
| running, 8 s or less left | the predicted end + 0.3 s | the predicted end + 1 s |
| past the predicted end | 0.7 s, then 1.5 times longer each time, up to 5 s | 1 to 5 s |
| retrying | 1 s after the next attempt is due (`retry_at`) | as running |
| no answer (offline, server away) | 2, 4, 8, 16, 30 s; at once on the browser's `online` | |
| done, failed, cancelled | one request for the final page; the download comes from S3 | none |

Measured in Chromium on the local stack (`tests/e2e/test_browser_live.py`), a 60 s `sleep`
watched from its start form: **13 to 14 requests** to the API in all (two runs; target
≤ 15, before: 32 polls alone): the start, the page, its two static files (hashed names,
cached for a year, so a second task costs none), 8 or 9 polls (t ≈ 1, 2, 3, 15, 27, 39, 50,
56, 62 s) and the final page. The page shows "Done" 0.29 to 0.39 s after `finished_at` on
three 30 s tasks, in each of two runs (p95 0.39 s, target 1.5 s); sampled every 250 ms the
bar moved at least once a second and never went back. With the workers frozen (SIGSTOP)
the bar stood still 17 s after the last report.
"""
