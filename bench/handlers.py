"""Benchmark 3: the start and status handlers against the raw boto3 calls they must make."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.inprocess import BENCH_KIND, InProcessAws
from bench.report import Section, Table, Target, median, ms, ratio
from chalicelib.longtask.testing import LambdaContext

# The bench's own kind: the prod stage, whose settings the bench uses, has no demo tasks.
KIND = BENCH_KIND
TARGET_RATIO = 1.3


@dataclass
class Timing:
    client: float  # median seconds through chalice.test.Client
    lambda_call: float  # median seconds of app(event, context), as Lambda calls it
    raw: float  # median seconds of the boto3 calls alone

    @property
    def own(self) -> float:
        """The handler's own time on top of the calls it must make (Lambda-style)."""
        return max(self.lambda_call - self.raw, 0.0)


@dataclass
class HandlerResult:
    start: Timing
    status: Timing
    iterations: int


def api_event(
    method: str,
    resource: str,
    path: str,
    params: dict[str, str],
    body: str | None,
    headers: dict[str, str],
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as AWS sends it to the API Lambda (stage `api`)."""
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/api{path}",
            "stage": "api",
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def measure(aws: InProcessAws, iterations: int, warmup: int = 10) -> HandlerResult:
    from chalicelib.longtask.model import new_task_id

    assert aws.app_module is not None
    app = aws.app_module.app
    tasks = aws.tasks
    backends: Any = tasks.backends
    dynamodb, sqs = backends.store.client, backends.queue.client
    table, queue_url = backends.store.table, backends.queue.url
    # A returning visitor: with the owner cookie, the start makes no new one.
    cookie = "longtask_owner=" + "b" * 43
    json_headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "cookie": cookie,
    }
    body = json.dumps({"calls": 0, "seconds": 1})
    context = LambdaContext("longtask-prod-api_handler", 10.0, memory_limit_in_mb="256")

    with aws.http_client() as client:
        started = json.loads(
            client.http.post(f"/tasks/{KIND}", headers=json_headers, body=body).body
        )
        status_path = started["links"]["self"]
        task_id = started["id"]
        # The raw start writes exactly the item the handler wrote, under a new id.
        item = dynamodb.get_item(TableName=table, Key={"id": {"S": task_id}})["Item"]
        start_event = api_event(
            "POST", "/tasks/{kind}", f"/tasks/{KIND}", {"kind": KIND}, body, json_headers
        )
        status_event = api_event(
            "GET",
            "/tasks/{kind}/{task_id}",
            status_path,
            {"kind": KIND, "task_id": task_id},
            None,
            {"accept": "application/json", "cookie": cookie},
        )

        def client_start() -> None:
            response = client.http.post(f"/tasks/{KIND}", headers=json_headers, body=body)
            assert response.status_code == 202, response.body

        def lambda_start() -> None:
            response = app(start_event, context)
            assert response["statusCode"] == 202, response

        def raw_start() -> None:
            new_id = new_task_id()
            dynamodb.put_item(
                TableName=table,
                Item={**item, "id": {"S": new_id}},
                ConditionExpression="attribute_not_exists(id)",
            )
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"id": new_id}))

        def client_status() -> None:
            response = client.http.get(
                status_path, headers={"Accept": "application/json", "Cookie": cookie}
            )
            assert response.status_code == 200, response.body

        def lambda_status() -> None:
            response = app(status_event, context)
            assert response["statusCode"] == 200, response

        def raw_status() -> None:
            dynamodb.get_item(TableName=table, Key={"id": {"S": task_id}}, ConsistentRead=True)

        def drain() -> None:
            # moto's SendMessage slows down as its queue grows (real SQS does not): take
            # the round's messages off again, untimed.
            messages = aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if messages:
                aws.sqs.delete_message_batch(
                    QueueUrl=aws.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )

        runs = [client_start, lambda_start, raw_start, client_status, lambda_status, raw_status]
        samples: dict[str, list[float]] = {run.__name__: [] for run in runs}
        for i in range(warmup + iterations):
            # Rotate the order so that no variant always runs first (or last) in a round.
            for run in runs[i % len(runs) :] + runs[: i % len(runs)]:
                elapsed = _timed(run)
                if i >= warmup:
                    samples[run.__name__].append(elapsed)
            drain()
    aws.calls.reset()

    def timing(kind: str) -> Timing:
        return Timing(
            median(samples[f"client_{kind}"]),
            median(samples[f"lambda_{kind}"]),
            median(samples[f"raw_{kind}"]),
        )

    return HandlerResult(timing("start"), timing("status"), iterations)


def section(result: HandlerResult) -> Section:
    table = Table(
        [
            "handler",
            "chalice.test.Client",
            "Lambda-style `app(event, context)`",
            "raw boto3 calls",
            "Client ÷ raw",
            "Lambda-style ÷ raw",
        ]
    )
    rows = [
        (f"start: POST /tasks/{KIND} (JSON)", "PutItem + SendMessage", result.start),
        (f"status: GET /tasks/{KIND}/{{id}} (JSON)", "GetItem", result.status),
    ]
    for name, calls, t in rows:
        table.add(
            name,
            ms(t.client, 2),
            ms(t.lambda_call, 2),
            f"{calls}: {ms(t.raw, 2)}",
            ratio(t.client / t.raw),
            ratio(t.lambda_call / t.raw),
        )
    worst_client = max(t.client / t.raw for _, _, t in rows)
    worst_lambda = max(t.lambda_call / t.raw for _, _, t in rows)
    notes = [
        f"The handlers' own work (routing, validation, the status document, JSON) takes "
        f"{ms(result.start.own, 2)} (start) and {ms(result.status.own, 2)} (status) "
        "Lambda-style. In-process moto answers a call in a few milliseconds here, about "
        "what DynamoDB and SQS take from a Lambda in the same region, so the ratio should "
        "carry over; it would grow if the calls were faster.",
        "chalice.test.Client adds its own cost on top: it builds the event through "
        "Chalice's local gateway and copies os.environ for each request.",
    ]
    targets = [
        Target(
            "handler overhead",
            f"≤ {TARGET_RATIO}x the raw calls",
            f"{ratio(worst_client)} through chalice.test.Client, {ratio(worst_lambda)} "
            "Lambda-style (worst of start and status)",
            worst_client <= TARGET_RATIO,
        )
    ]
    method = f"""
In one process over in-process moto, in the same run and on the same boto3 clients (the
app's own), {result.iterations} interleaved rounds (after a warm-up, order rotated each
round) time: the start handler (`POST /tasks/{KIND}`, JSON, a returning visitor's owner
cookie) and the status handler (`GET /tasks/{KIND}/{{id}}`, JSON) through
`chalice.test.Client`, the same handlers called Lambda-style (`app(event, context)` with an
API Gateway proxy event), and the raw boto3 calls they must make: PutItem of the very item
the handler writes plus SendMessage, and one consistent GetItem. Medians are reported.
"""
    return Section("3. Handler overhead", method, [table], notes, targets)
