"""In-process moto for the benchmarks: the infra template, the app, and every AWS call counted.

The app is imported as Lambda would import it, with the prod stage's settings and the
resources of infra/template.yaml created on a fresh mock AWS. A botocore hook on the
app's own clients counts every operation they make (exact, not timed) and works out the
DynamoDB capacity units each one consumes; a second hook counts what Lambda's SQS event
source does (receive, delete), played here as tests/aws does.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any

from chalicelib.longtask.testing import LambdaContext, VirtualClock, sqs_event
from dev import stage
from dev.local.infra import load_template
from dev.stage import ROOT, TEMPLATE_FILE

REGION = "us-east-1"
STACK_STAGE = "bench"
BENCH_KIND = "bench-progress"


# --- DynamoDB capacity ---------------------------------------------------------------


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of a DynamoDB item by AWS's sizing rules (names + values; numbers ~ digits/2 + 1)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        for kind, raw in value.items():
            if kind == "S":
                size += len(str(raw).encode())
            elif kind == "N":
                digits = str(raw).lstrip("+-").lower().split("e")[0].replace(".", "")
                significant = digits.strip("0") or "0"
                size += (len(significant) + 1) // 2 + 1
            elif kind in ("BOOL", "NULL"):
                size += 1
            elif kind == "B":
                size += len(raw)
            else:  # sets, lists and maps: longtask stores none, so a rough figure will do
                size += len(repr(raw))
    return size


@dataclass(frozen=True)
class Index:
    """A global secondary index of the table, as the template declares it."""

    name: str
    keys: tuple[str, ...]
    projection: str


def template_indexes() -> list[Index]:
    table = next(
        r["Properties"]
        for r in load_template(TEMPLATE_FILE)["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::Table"
    )
    return [
        Index(
            name=gsi["IndexName"],
            keys=tuple(k["AttributeName"] for k in gsi["KeySchema"]),
            projection=gsi.get("Projection", {}).get("ProjectionType", "ALL"),
        )
        for gsi in table.get("GlobalSecondaryIndexes", [])
    ]


@dataclass
class Capacity:
    """On-demand request units: writes to the table, writes to its indexes, reads."""

    write_units: float = 0.0
    index_write_units: float = 0.0
    read_units: float = 0.0

    def __add__(self, other: Capacity) -> Capacity:
        return Capacity(
            self.write_units + other.write_units,
            self.index_write_units + other.index_write_units,
            self.read_units + other.read_units,
        )

    @property
    def all_write_units(self) -> float:
        return self.write_units + self.index_write_units


# --- counting --------------------------------------------------------------------------


@dataclass
class AwsCalls:
    """Operations made through the hooked clients, and DynamoDB's units for them."""

    indexes: list[Index] = field(default_factory=template_indexes)
    counts: Counter[str] = field(default_factory=Counter)
    capacity: Capacity = field(default_factory=Capacity)
    _params: dict[str, Any] = field(default_factory=dict)
    _sizes: dict[str, int] = field(default_factory=dict)  # last known size per item id

    def hook(self, client: Any) -> None:
        # Counted on before-call, which only requests that are sent reach: presigning a
        # URL runs the parameter build too (a hook there counts it as a GetObject).
        client.meta.events.register("before-parameter-build", self._keep_params)
        client.meta.events.register("before-call", self._count)
        if client.meta.service_model.service_name == "dynamodb":
            client.meta.events.register("after-call.dynamodb", self._after_dynamodb)

    @property
    def largest_item(self) -> int:
        """Bytes of the largest task record written or read so far (not counting the
        items that hold large checkpoints beside the records)."""
        return max((n for key, n in self._sizes.items() if "#" not in key), default=0)

    def reset(self) -> None:
        self.counts = Counter()
        self.capacity = Capacity()

    def take(self) -> tuple[Counter[str], Capacity]:
        """What was counted since the last reset; then resets."""
        counts, capacity = self.counts, self.capacity
        self.reset()
        return counts, capacity

    @contextmanager
    def aside(self, into: list[tuple[Counter[str], Capacity]]) -> Iterator[None]:
        """Counts what happens inside apart (appended to `into`), then goes on counting
        where it was, as if the inside had not happened."""
        counts, capacity = self.take()
        try:
            yield
        finally:
            into.append(self.take())
            self.counts, self.capacity = counts, capacity

    def _keep_params(self, params: dict[str, Any], **_: Any) -> None:
        self._params = params

    def _count(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1

    def _after_dynamodb(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if "Error" in parsed:
            return
        params = self._params
        if model.name == "GetItem":
            item = parsed.get("Item") or {}
            size = item_size(item)
            if item:
                self._sizes[str(item.get("id", {}).get("S", ""))] = size
            strong = 1.0 if params.get("ConsistentRead") else 0.5
            self.capacity.read_units += strong * max(1, math.ceil(size / 4096))
            return
        if model.name == "TransactWriteItems":
            self._transaction(params["TransactItems"])
            return
        if model.name == "PutItem":
            new = params.get("Item", {})
        elif model.name == "UpdateItem":
            new = parsed.get("Attributes", {})
        else:
            return
        task_id = str(params.get("Key", new).get("id", {}).get("S", ""))
        after = item_size(new)
        before = self._sizes.get(task_id, 0)
        self._sizes[task_id] = after
        # A write is billed on the larger of the item before and after it.
        self.capacity.write_units += max(1, math.ceil(max(before, after) / 1024))
        for index in self.indexes:
            if all(key in new for key in index.keys) and (
                index.projection == "ALL" or model.name == "PutItem"
            ):
                self.capacity.index_write_units += max(1, math.ceil(after / 1024))

    def _transaction(self, items: list[dict[str, Any]]) -> None:
        """A transaction bills 2 write units per KB of each item it checks or writes."""
        for item in items:
            ((kind, request),) = item.items()
            if kind == "Put":
                key = str(request["Item"]["id"]["S"])
                before = self._sizes.get(key, 0)
                after = item_size(request["Item"])
                self._sizes[key] = after
            else:
                key = str(request["Key"]["id"]["S"])
                before = after = self._sizes.get(key, 0)
            if kind == "Update":
                # What it sets, roughly: every value it names beside the key (a count it
                # adds to or a mark it removes changes the size by a few bytes only).
                values = list(request.get("ExpressionAttributeValues", {}).values())
                written = {f"a{i}": value for i, value in enumerate(values)}
                after = max(before, item_size({"id": request["Key"]["id"], **written}))
                self._sizes[key] = after
            self.capacity.write_units += 2 * max(1, math.ceil(max(before, after) / 1024))


# --- the clock the worker runs on -------------------------------------------------------


@dataclass
class Pacer:
    """How the bench task spreads its calls over its duration: on a virtual clock (runs of
    10 s take no time and the number of progress writes they make is exact) or on the real
    one (a check that the virtual figure is what really happens). `midway` is called once
    halfway through a run (e.g. to poll the task's status while it runs)."""

    clock: VirtualClock
    real: bool = False
    midway: Callable[[], None] | None = None

    def start(self) -> float:
        return time.monotonic() if self.real else self.clock.now

    def wait_until(self, start: float, offset: float) -> None:
        if not self.real:
            self.clock.now = start + offset
            return
        target = start + offset
        while (left := target - time.monotonic()) > 0:
            if left > 0.002:
                time.sleep(left - 0.001)


def register_bench_task(tasks: Any, pacer: Pacer) -> None:
    """Declares the bench-only task kind on the app's registry (app.py stays as it is)."""
    if tasks.registry.get(BENCH_KIND) is not None:
        return
    from chalicelib.longtask import Integer, Number

    def progress_calls(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
        calls, seconds = int(params["calls"]), float(params["seconds"])
        if params["checkpoint"]:
            ctx.checkpoint({"blob": "x" * int(params["checkpoint"])})
        start = pacer.start()
        for i in range(calls):
            pacer.wait_until(start, (i + 1) * seconds / calls)
            ctx.log_progress(f"Call {i + 1} of {calls}", step=i + 1, total_steps=calls)
            if i + 1 == calls // 2 and pacer.midway is not None:
                pacer.midway()
        pacer.wait_until(start, seconds)
        return {"calls": calls, "seconds": seconds}

    tasks.task(
        BENCH_KIND,
        title="Bench: progress calls",
        description="Calls log_progress `calls` times, evenly over `seconds`, after keeping "
        "a checkpoint of `checkpoint` bytes.",
        params={
            "calls": Integer(min=0, max=1_000_000),
            "seconds": Number(min=0, max=3600),
            "checkpoint": Integer(min=0, max=64_000, default=0),
        },
    )(progress_calls)


# --- the harness --------------------------------------------------------------------------


class InProcessAws:
    """`with InProcessAws() as aws:` a mock AWS holding the template's resources, and the
    app imported against it with the prod stage's settings."""

    def __init__(self) -> None:
        self.calls = AwsCalls()  # the app's own clients
        self.event_source_calls = AwsCalls()  # Lambda's side: receive and delete
        self.clock = VirtualClock(time.time())
        self.pacer = Pacer(self.clock)
        self.app_module: ModuleType | None = None
        self._saved_environ: dict[str, str] = {}
        self._mock: Any = None
        self.sqs: Any = None
        self.queue_url = ""
        self.queue_arn = ""

    @property
    def tasks(self) -> Any:
        assert self.app_module is not None
        return self.app_module.tasks

    def __enter__(self) -> InProcessAws:
        from moto import mock_aws

        from dev.local.moto_server import make_dynamodb_writes_atomic

        self._saved_environ = dict(os.environ)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        # As the local stack's moto server: atomic item writes, and transactions that copy
        # the items they touch rather than the whole table (moto's own grows with it).
        make_dynamodb_writes_atomic()
        self._mock = mock_aws()
        self._mock.start()
        try:
            self._setup()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _setup(self) -> None:
        import boto3

        cloudformation = boto3.client("cloudformation", region_name=REGION)
        # moto skips the bucket policy and the alarm (see dev/local/infra.py); none is counted here.
        logging.getLogger("moto").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Tried to parse")
            cloudformation.create_stack(
                StackName=f"longtask-{STACK_STAGE}",
                TemplateBody=TEMPLATE_FILE.read_text(),
                Parameters=[
                    {"ParameterKey": "Stage", "ParameterValue": STACK_STAGE},
                    {"ParameterKey": "VisibilityTimeout", "ParameterValue": "5400"},
                ],
            )
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in cloudformation.describe_stacks(StackName=f"longtask-{STACK_STAGE}")["Stacks"][
                0
            ].get("Outputs", [])
        }
        # The prod stage's settings (lease, progress interval...) on the mock's resources.
        os.environ.update(stage.environment("worker", "prod"))
        # Prod leaves the demo tasks out; the benchmarks run them with prod's other settings.
        os.environ["LONGTASK_DEMO_TASKS"] = "true"
        # One visitor starts every task of the benchmarks: prod's per-owner quotas would
        # refuse most of them, and they are not what is measured.
        os.environ["LONGTASK_MAX_ACTIVE_PER_OWNER"] = "1000000"
        os.environ["LONGTASK_STARTS_PER_MINUTE"] = "1000000"
        os.environ.update(
            LONGTASK_TABLE=outputs["TableName"],
            LONGTASK_QUEUE=outputs["QueueName"],
            LONGTASK_DLQ=outputs["DeadLetterQueueName"],
            LONGTASK_BUCKET=outputs["BucketName"],
        )
        self.app_module = importlib.import_module("app")
        tasks = self.tasks
        backends: Any = tasks.backends
        for client in (backends.store.client, backends.queue.client, backends.results.client):
            self.calls.hook(client)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue_url = self.sqs.get_queue_url(QueueName=outputs["QueueName"])["QueueUrl"]
        self.queue_arn = outputs["QueueArn"]
        self.event_source_calls.hook(self.sqs)
        register_bench_task(tasks, self.pacer)
        tasks.use_backends(tasks.backends, clock=self.clock)
        self.calls.reset()
        self.event_source_calls.reset()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        os.environ.clear()
        os.environ.update(self._saved_environ)

    def http_client(self) -> Any:
        """chalice.test.Client on the app, as the API Lambda would run it."""
        from chalice.test import Client

        assert self.app_module is not None
        return Client(self.app_module.app, stage_name="prod", project_dir=str(ROOT))

    def deliver(self, timeout_seconds: float = 900.0) -> str:
        """Plays Lambda's event source for one message: receive, invoke `worker`, delete on
        success. Returns "deleted", "kept" or "empty"."""
        assert self.app_module is not None
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not received:
            return "empty"
        self.clock.advance_to(time.time())
        context = LambdaContext(
            function_name="longtask-prod-worker",
            timeout_seconds=timeout_seconds,
            memory_limit_in_mb=str(stage.lambda_memory_size("worker", "prod")),
            invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:worker",
        )
        try:
            self.app_module.worker(sqs_event(received, self.queue_arn), context)
        except Exception:
            return "kept"
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=received[0]["ReceiptHandle"])
        return "deleted"
