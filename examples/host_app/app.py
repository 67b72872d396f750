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
