"""A company site that already exists and adds long-running tasks under /jobs.

Its own routes (`/` and `/contact`) are untouched; longtask adds its pages, its API,
the worker and the dead-letter handler, and nothing outside /jobs. One route of its own
(`POST /orders/<n>/report`) starts a task from its Python code.
"""

from __future__ import annotations

import time
from typing import Any

from chalice import Chalice, Response
from longtask import File, Integer, LongTasks, Number, TaskContext

app = Chalice(app_name="acme")
tasks = LongTasks(app, url_prefix="/jobs")

# Lambda looks its handlers up by name in this module: keep these three lines.
worker = tasks.worker
dead_letters = tasks.dead_letters
reconciler = tasks.reconciler


@app.route("/")
def home() -> Response:
    page = (
        "<!doctype html><title>Acme</title><h1>Acme</h1>"
        '<p>Our reports take a while: <a href="/jobs">start one</a>.</p>'
    )
    return Response(page, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


@app.route("/orders")
def orders() -> Response:
    """The site's own page with a report button and an inline bar: the page never leaves."""
    page = ORDERS_PAGE.replace("{client}", tasks.static_url("client.js"))
    return Response(page, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


ORDERS_PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Acme orders</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<h1>Acme orders</h1>
<p><button id="report" type="button">Make the report of the last 3 days</button></p>
<p><progress id="bar" max="100" value="0" aria-label="Report progress"></progress>
<span id="words" role="status">Not started.</span></p>
<p><a id="download" hidden>Download the report</a></p>
<script src="{client}"></script>
<script>
  var button = document.getElementById("report"), bar = document.getElementById("bar");
  var words = document.getElementById("words"), download = document.getElementById("download");
  button.addEventListener("click", function () {
    button.disabled = true;
    words.textContent = "Starting…";
    longtask.start("/jobs/tasks/slow-report", {days: 3, seconds_per_day: 1}).then(function (doc) {
      longtask.follow(doc.links.self, {
        onProgress: function (d) {
          bar.value = d.progress.percent || 0;
          words.textContent = d.progress.message || d.status;
        },
        onDone: function () { bar.value = 100; words.textContent = "Done."; },
        onFailure: function (d) { words.textContent = "It " + d.status + "."; },
        onResult: function (url) { download.href = url; download.hidden = false; },
        onError: function () { words.textContent = "Connection lost; trying again…"; }
      });
    }, function (error) { words.textContent = error.message; button.disabled = false; });
  });
</script>
</html>
"""


@app.route("/contact", methods=["POST"])
def contact() -> dict[str, str]:
    return {"thanks": "we will write back"}


@app.route("/orders/{order}/report", methods=["POST"])
def order_report(order: str) -> Response:
    """The site's own button: one report per order, however often it is pressed."""
    if not order.isdigit() or len(order) > 12:
        return Response({"error": "order must be an order number"}, status_code=400)
    task = tasks.start("slow-report", idempotency_key=f"order-{order}", days=7)
    return Response("", status_code=303, headers={"Location": tasks.url_for(task)})


@tasks.task(
    "slow-report",
    title="Slow report",
    description="Sums up the orders of the last days, one day at a time.",
    params={
        "days": Integer(min=1, max=31, default=7),
        "seconds_per_day": Number(min=0, max=10, default=1),
    },
)
def slow_report(params: dict[str, Any], ctx: TaskContext) -> File:
    days = params["days"]
    lines = ["day,orders"]
    for day in range(1, days + 1):
        ctx.log_progress(f"Counting the orders of day {day}", step=day - 1, total_steps=days)
        time.sleep(params["seconds_per_day"])  # stands in for a slow query
        lines.append(f"{day},{day * 7 % 13}")
    ctx.log_progress("Done counting", step=days, total_steps=days)
    return File("\n".join(lines) + "\n", "text/csv", filename=f"orders-{days}-days.csv")
