"""The longtask Chalice app: the routes, the worker, and the tasks it offers.

Add a task of your own in three steps: write a function of (params, ctx) that
calls ctx.log_progress(message, step, total_steps) now and then and returns its
result; declare it, e.g.

    @tasks.task("thumbnails", title="Make thumbnails", params={"album": Text()})
    def thumbnails(params, ctx):
        ...
        return File(zip_bytes, "application/zip", filename="thumbnails.zip")

and start it with POST /tasks/thumbnails. The demo tasks below are declared the
same way; their code is in chalicelib/demo_tasks.py.
"""

from chalice import Chalice

from chalicelib import demo_tasks
from chalicelib.longtask import Integer, LongTasks, Number, Text

app = Chalice(app_name="longtask")
tasks = LongTasks(app)  # adds the routes of SPEC §3, the worker and the dead-letter handler

# Lambda looks its handlers up by name in this module: keep these two lines.
worker = tasks.worker
dead_letters = tasks.dead_letters

tasks.task(
    "primes",
    title="Count primes",
    description="Counts the prime numbers up to a limit with a segmented sieve.",
    params={"limit": Integer(min=2, max=50_000_000, example="1000000")},
)(demo_tasks.count_primes)

tasks.task(
    "report",
    title="Monthly report",
    description="Sums a month of synthetic invoices per day into a CSV file.",
    params={"month": Text(pattern=r"\d{4}-\d{2}", example="2024-02", check=demo_tasks.valid_month)},
)(demo_tasks.monthly_report)

tasks.task(
    "sleep",
    title="Sleep",
    description="Waits, one progress step per second; can fail on purpose to show retries.",
    params={
        "seconds": Number(min=0, max=3600, example="30"),
        "fail_times": Integer(min=0, max=100, default=0, label="Fail the first attempts"),
    },
)(demo_tasks.sleep)
