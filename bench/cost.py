"""Benchmark 2: cost per million tasks from the counted operations and AWS's public prices."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.handlers import HandlerResult
from bench.ops import (
    CHECKPOINT_BYTES,
    COST_CASE,
    Lifecycle,
    OpsResult,
    running_poll_name,
    worker_name,
)
from bench.report import Section, Table, Target, dollars
from chalicelib.longtask.progress import poll_interval, write_interval
from dev import stage

REGION = "us-east-1"
PRICES_AS_OF = "2026-11-28"
MILLION = 1_000_000

# Billed Lambda time per AWS call made inside a handler: a same-region DynamoDB, SQS or S3
# request takes a few milliseconds; 10 ms is a round, cautious figure (an assumption).
AWS_CALL_SECONDS = 0.010
# The status page polls the JSON status 1 s after it loads, then waits Retry-After
# seconds (progress.poll_interval, from the task's age and its time-left estimate); the
# page's script may ask sooner, never later, so this is the most a page asks.
FIRST_POLL_SECONDS = 1.0
# style.css and status.js: content-hashed and cached for a year, so a returning visitor
# fetches neither; counted here as a first visit does.
STATIC_FILES = 2
SFN_TRANSITIONS = 4  # MarkStarted (DynamoDB), Run (Lambda), MarkDone (DynamoDB), Succeed

SQS_OPS = ("SendMessage", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility")
# This bench's figures for the same 60 s task before progress writes and polls followed
# the task's age (its run of 2026-11-28 02:34 UTC): 60 progress writes, 32 polls.
BEFORE_PER_MILLION = 208.0
BEFORE_API_REQUESTS = 37
TARGET_PER_MILLION = 100.0


@dataclass(frozen=True)
class Price:
    what: str
    shown: str  # the price as the pricing page states it
    usd: float  # per unit
    source: str


PRICES = {
    "apigw": Price(
        "API Gateway REST API requests",
        "$3.50 per million (first 333 M a month)",
        3.50 / MILLION,
        "https://aws.amazon.com/api-gateway/pricing/",
    ),
    "lambda_request": Price(
        "Lambda requests",
        "$0.20 per million",
        0.20 / MILLION,
        "https://aws.amazon.com/lambda/pricing/",
    ),
    "lambda_gbs": Price(
        "Lambda duration (x86)",
        "$0.0000166667 per GB-second",
        0.0000166667,
        "https://aws.amazon.com/lambda/pricing/",
    ),
    "wru": Price(
        "DynamoDB write request units",
        "$0.625 per million (on-demand)",
        0.625 / MILLION,
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "rru": Price(
        "DynamoDB read request units",
        "$0.125 per million (on-demand)",
        0.125 / MILLION,
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "sqs": Price(
        "SQS requests (standard queue)",
        "$0.40 per million",
        0.40 / MILLION,
        "https://aws.amazon.com/sqs/pricing/",
    ),
    "s3_put": Price(
        "S3 PUT requests", "$0.005 per 1,000", 0.005 / 1000, "https://aws.amazon.com/s3/pricing/"
    ),
    "s3_get": Price(
        "S3 GET requests", "$0.0004 per 1,000", 0.0004 / 1000, "https://aws.amazon.com/s3/pricing/"
    ),
    "sfn": Price(
        "Step Functions state transitions (standard)",
        "$0.025 per 1,000",
        0.025 / 1000,
        "https://aws.amazon.com/step-functions/pricing/",
    ),
}


def browser_polls(task_seconds: float, claim_delay: float = 0.0) -> list[float]:
    """When a browser on the status page polls a task of `task_seconds` (seconds after the
    page loaded), following Retry-After from progress.poll_interval; the last poll sees done.
    The task is steady, so its estimate of the time left is exact (benchmark 6), and the
    status document gives none during its first 2 s."""
    times: list[float] = []
    t = FIRST_POLL_SECONDS
    end = claim_delay + task_seconds
    while True:
        times.append(t)
        if t >= end:
            return times
        elapsed = t - claim_delay if t >= claim_delay else None
        eta = end - t if elapsed is not None and elapsed >= 2 else None
        t += poll_interval(elapsed, eta)


@dataclass
class Bill:
    """Quantities per task, by price key."""

    quantities: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, amount: float) -> None:
        self.quantities[key] = self.quantities.get(key, 0.0) + amount

    def get(self, key: str) -> float:
        return self.quantities.get(key, 0.0)

    def per_million(self, key: str) -> float:
        return self.get(key) * PRICES[key].usd * MILLION

    def total_per_million(self) -> float:
        return sum(self.per_million(key) for key in self.quantities)


def _lambda_gb_seconds(own: float, aws_calls: int, memory_mb: int) -> float:
    billed = math.ceil((own + aws_calls * AWS_CALL_SECONDS) * 1000) / 1000  # 1 ms steps
    return billed * memory_mb / 1024


@dataclass
class CostResult:
    longtask: Bill
    with_checkpoint: Bill  # the same task keeping a CHECKPOINT_BYTES checkpoint
    step_functions: Bill
    polls: list[float]
    task_seconds: float
    api_requests: int
    task_compute_per_million: float
    api_memory: int
    worker_memory: int
    progress_interval: float


def compute(ops: OpsResult, handlers: HandlerResult | None) -> CostResult:
    calls, seconds = COST_CASE
    start = ops.by_name["start"]
    worker = ops.by_name[worker_name(calls, seconds)]
    poll = ops.by_name["status poll (JSON, not done)"]
    api_memory = stage.lambda_memory_size("api_handler", "prod")
    worker_memory = stage.lambda_memory_size("worker", "prod")
    start_own = handlers.start.own if handlers else 0.001
    status_own = handlers.status.own if handlers else 0.001

    polls = browser_polls(seconds)
    reads = 1 + len(polls) + 1  # the status page, its polls, the result link
    api_requests = 1 + 1 + STATIC_FILES + len(polls) + 1
    start_calls = sum(start.ops.values())
    poll_calls = sum(poll.ops.values())
    api_gbs = _lambda_gb_seconds(start_own, start_calls, api_memory)
    api_gbs += STATIC_FILES * _lambda_gb_seconds(status_own, 0, api_memory)
    api_gbs += reads * _lambda_gb_seconds(status_own, poll_calls, api_memory)

    def bill(worker: Lifecycle, poll: Lifecycle) -> Bill:
        ours = Bill()
        ours.add("apigw", api_requests)
        ours.add("lambda_request", api_requests + 1)
        worker_calls = sum(worker.ops.values())
        ours.add("lambda_gbs", api_gbs + _lambda_gb_seconds(0, worker_calls, worker_memory))
        ours.add("wru", start.capacity.all_write_units + worker.capacity.all_write_units)
        ours.add("rru", reads * poll.capacity.read_units)
        sqs = sum((start.ops + worker.ops + worker.event_source)[op] for op in SQS_OPS)
        ours.add("sqs", sqs)
        ours.add("s3_put", worker.ops["PutObject"])
        ours.add("s3_get", 1)
        return ours

    ours = bill(worker, ops.by_name[running_poll_name(0)])
    kept = bill(
        ops.by_name[worker_name(calls, seconds, checkpoint=CHECKPOINT_BYTES)],
        ops.by_name[running_poll_name(CHECKPOINT_BYTES)],
    )

    # The same steps as a Step Functions standard workflow: the start handler calls
    # StartExecution instead of SendMessage; the claim and the final update become
    # DynamoDB states (same write units); the Lambda state runs the task, writing the
    # same progress and the result. No SQS, no lease.
    sfn = Bill()
    sfn.add("apigw", api_requests)
    sfn.add("lambda_request", api_requests + 1)
    in_lambda = worker.ops["UpdateItem"] - 2 + worker.ops["PutObject"]
    sfn.add("lambda_gbs", api_gbs + _lambda_gb_seconds(0, in_lambda, worker_memory))
    sfn.add("wru", ours.get("wru"))
    sfn.add("rru", ours.get("rru"))
    sfn.add("s3_put", worker.ops["PutObject"])
    sfn.add("s3_get", 1)
    sfn.add("sfn", SFN_TRANSITIONS)

    compute_per_million = seconds * worker_memory / 1024 * PRICES["lambda_gbs"].usd * MILLION
    return CostResult(
        ours,
        kept,
        sfn,
        polls,
        seconds,
        api_requests,
        compute_per_million,
        api_memory,
        worker_memory,
        ops.progress_interval,
    )


def _quantity(value: float) -> str:
    return f"{value:,.4f}".rstrip("0").rstrip(".") if value else "0"


def section(result: CostResult, ops: OpsResult) -> Section:
    kb = CHECKPOINT_BYTES // 1024
    table = Table(
        [
            "item",
            "price (us-east-1)",
            "longtask: per task",
            "longtask: per million",
            f"with a {kb} KB checkpoint: per task",
            f"with a {kb} KB checkpoint: per million",
            "Step Functions: per task",
            "Step Functions: per million",
        ]
    )
    ours, kept, sfn = result.longtask, result.with_checkpoint, result.step_functions
    for key, price in PRICES.items():
        if not ours.get(key) and not sfn.get(key):
            continue
        table.add(
            price.what,
            price.shown,
            _quantity(ours.get(key)),
            dollars(ours.per_million(key)),
            _quantity(kept.get(key)),
            dollars(kept.per_million(key)),
            _quantity(sfn.get(key)),
            dollars(sfn.per_million(key)),
        )
    ours_total = ours.total_per_million()
    kept_total = kept.total_per_million()
    sfn_total = sfn.total_per_million()
    table.add(
        "**total**",
        "",
        "",
        f"**{dollars(ours_total)}**",
        "",
        f"**{dollars(kept_total)}**",
        "",
        f"**{dollars(sfn_total)}**",
    )
    table.add(
        "before progress writes and polls followed the task's age",
        "",
        f"{BEFORE_API_REQUESTS} API requests",
        dollars(BEFORE_PER_MILLION),
        "",
        "",
        "",
        "",
    )

    poll_times = ", ".join(f"{t:g}" for t in result.polls)
    schedule = Table(
        ["what a browser does for a 60 s task", "requests"],
        title="The polling pattern priced above",
    )
    schedule.add("POST the start form (303 to the status page)", 1)
    schedule.add("GET the status page, and its style.css and status.js", 1 + STATIC_FILES)
    schedule.add(
        f"status.js polls the JSON status at t = {poll_times} s "
        f"(Retry-After from progress.poll_interval)",
        len(result.polls),
    )
    schedule.add(
        "GET the result link (303 to a presigned S3 URL), then the S3 object", "1 + 1 S3 GET"
    )
    schedule.add("**API requests per task**", f"**{result.api_requests}**")

    least = result.progress_interval
    rhythm = Table(
        [
            "task's age",
            "progress written at most every",
            "Retry-After (no estimate)",
            "Retry-After when the estimate says 3.5 s left",
        ],
        title="Who reads what, when: the write and poll schedules by the task's age",
    )
    for age in (0, 2, 5, 10, 15, 20, 25, 50, 3600):
        rhythm.add(
            f"{age:g} s",
            f"{write_interval(age, least):g} s",
            f"{poll_interval(age):g} s",
            f"{poll_interval(age, 3.5):g} s",
        )

    api_share = result.longtask.per_million("apigw") / ours_total if ours_total else 0.0
    lambda_saved = result.longtask.per_million("lambda_gbs") - result.step_functions.per_million(
        "lambda_gbs"
    )
    calls, seconds = COST_CASE
    worker = ops.by_name[worker_name(calls, seconds)]
    notes = [
        f"Not in the totals: the task's own compute, {seconds:g} s at "
        f"{result.worker_memory} MB = {dollars(result.task_compute_per_million)} per million "
        "tasks, the same for both designs.",
        f"Step Functions costs {dollars(sfn_total - ours_total)} more per million tasks: "
        f"its {SFN_TRANSITIONS} transitions ({dollars(result.step_functions.per_million('sfn'))})"
        f" replace {_quantity(result.longtask.get('sqs'))} SQS requests "
        f"({dollars(result.longtask.per_million('sqs'))}) and the worker's claim, lease and "
        f"final calls ({dollars(lambda_saved)} of Lambda time); the rest is the same. Even a "
        "one-state workflow would cost more in transitions than longtask's queue.",
        f"API Gateway is {api_share:.0%} of longtask's bill: the browser's "
        f"{result.api_requests} requests. Polling less often, or an HTTP API "
        "($1.00 per million instead of $3.50; Chalice deploys a REST API), is where "
        "money is.",
        f"{worker.progress_writes} of the worker's {worker.ops['UpdateItem']} UpdateItems "
        f"are progress writes; DynamoDB writes are "
        f"{dollars(result.longtask.per_million('wru'))} of the total (the `by_owner` index "
        "holds keys only, so only the start writes it). Each progress write's "
        f"latency is also worker Lambda time ({AWS_CALL_SECONDS * 1000:g} ms assumed).",
        f"With a {CHECKPOINT_BYTES // 1024} KB checkpoint kept from the start, every poll "
        "still reads 1 unit and every UpdateItem writes 1: the checkpoint has its own item, "
        "written once, in a transaction that checks the attempt still holds the task (2 "
        f"units per KB): {_quantity(kept.get('wru') - ours.get('wru'))} more write units, "
        f"{dollars(kept.per_million('wru') - ours.per_million('wru'))} per million. Before, "
        "the checkpoint sat in the record: each of 60 progress writes cost about 60 units "
        "and each poll 15.",
        "Fixed, not per task: Lambda's SQS event source long-polls each queue even when "
        "idle (about 5 pollers x 3 empty receives a minute ≈ 650,000 requests, $0.26 a "
        "month per queue); storage of records and results for the 7-day retention is "
        "not counted.",
    ]
    prices = ", ".join(sorted({p.source for p in PRICES.values()}))
    method = f"""
Region {REGION}; prices as published on AWS's pricing pages, assumed current on
{PRICES_AS_OF} (DynamoDB on-demand at its November 2024 prices); free tiers ignored.
Sources: {prices}.

Quantities per task come from benchmark 1: the warm start, the worker run of a {seconds:g} s
task that calls `log_progress` {calls} times, the status poll and the result fetch, with
their DynamoDB units; SQS counts include the event source's ReceiveMessage and
DeleteMessage; GetQueueUrl (once per container) is left out. The browser is the live
status page: it loads the page and its two static files, then status.js polls the JSON
status following `Retry-After` (`progress.poll_interval`), and opens the result when done.
Lambda time per API request is the handler's own time measured in benchmark 3 plus
{AWS_CALL_SECONDS * 1000:g} ms per AWS call it makes (assumed), at the prod stage's memory
({result.api_memory} MB API, {result.worker_memory} MB worker), billed in 1 ms steps.
The Step Functions design makes the same steps: the start handler writes the record and
calls StartExecution; the workflow marks the task started and done with DynamoDB states
and runs the task in a Lambda state that writes the same progress and result:
{SFN_TRANSITIONS} state transitions per task.
"""
    targets = [
        Target(
            "cost per million 60 s tasks watched in a browser",
            f"≤ {dollars(TARGET_PER_MILLION)} ({dollars(BEFORE_PER_MILLION)} before; "
            f"Step Functions {dollars(sfn_total)})",
            f"{dollars(ours_total)}; {dollars(kept_total)} with a {kb} KB checkpoint; "
            f"{result.api_requests} API requests",
            ours_total <= TARGET_PER_MILLION,
        )
    ]
    return Section("2. Cost per million tasks", method, [table, schedule, rhythm], notes, targets)
