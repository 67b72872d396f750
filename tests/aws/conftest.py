"""In-process moto: the infra template created on a fresh mock AWS for every test."""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chalicelib.longtask import testing
from chalicelib.longtask.aws import aws_backends
from chalicelib.longtask.backends import Backends
from chalicelib.longtask.settings import Settings
from chalicelib.longtask.testing import LambdaContext

ROOT = Path(__file__).resolve().parents[2]
STAGE = "awstest"
NAMES = {
    "LONGTASK_TABLE": f"longtask-{STAGE}-tasks",
    "LONGTASK_QUEUE": f"longtask-{STAGE}-tasks",
    "LONGTASK_DLQ": f"longtask-{STAGE}-dead-letters",
    "LONGTASK_BUCKET": f"longtask-{STAGE}-results-123456789012",
}
# Set before app.py is imported: LongTasks reads its settings when it is built.
os.environ.update(
    {
        **NAMES,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LONGTASK_MAX_ATTEMPTS": "3",
        "LONGTASK_PROGRESS_INTERVAL": "1.0",
        "LONGTASK_RETRY_SECONDS": "0",
        "LONGTASK_LEASE_SECONDS": "30",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)


@dataclass
class AwsCalls:
    """Every AWS operation the code made, counted through a botocore event hook."""

    counts: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.counts[model.name] += 1
        self.log.append((model.name, params))

    def reset(self) -> None:
        self.counts.clear()
        self.log.clear()


CALLS = AwsCalls()
_HOOKED: list[Any] = []


@dataclass
class Aws:
    tasks: Any  # the app's LongTasks
    app_module: Any
    sqs: Any
    s3: Any
    dynamodb: Any
    calls: AwsCalls

    @property
    def queue_url(self) -> str:
        return str(self.sqs.get_queue_url(QueueName=NAMES["LONGTASK_QUEUE"])["QueueUrl"])

    @property
    def dlq_url(self) -> str:
        return str(self.sqs.get_queue_url(QueueName=NAMES["LONGTASK_DLQ"])["QueueUrl"])


@functools.cache
def moto_client(service: str) -> Any:
    """Test-side clients, kept across tests: a client outlives one mock AWS."""
    import boto3

    return boto3.client(service)


def create_infra(cloudformation: Any = None) -> None:
    """The resources of infra/template.yaml, as a stack on the current mock AWS (or on
    the moto that `cloudformation` is a client of)."""
    (cloudformation or moto_client("cloudformation")).create_stack(
        StackName=f"longtask-{STAGE}",
        TemplateBody=(ROOT / "infra" / "template.yaml").read_text(),
        Parameters=[
            {"ParameterKey": "Stage", "ParameterValue": STAGE},
            {"ParameterKey": "MaxAttempts", "ParameterValue": "3"},
            {"ParameterKey": "VisibilityTimeout", "ParameterValue": "60"},
        ],
    )


@functools.cache
def _aws_backends(settings: Settings) -> Backends:
    return aws_backends(settings)


@pytest.fixture
def aws() -> Iterator[Aws]:
    from moto import mock_aws

    from dev.local.moto_server import make_dynamodb_writes_atomic

    make_dynamodb_writes_atomic()  # as on AWS, where a conditional write is atomic
    with mock_aws():
        create_infra()
        import app as app_module

        tasks = app_module.tasks
        # The app's clients are made once and kept, as on Lambda; each test still sees
        # a fresh mock AWS through them (and gets them back from a memory test).
        settings = Settings.from_env()
        tasks.use_backends(_aws_backends(settings), settings, clock=time.time)
        backends: Any = tasks.backends
        for client in (backends.store.client, backends.queue.client, backends.results.client):
            if client not in _HOOKED:
                client.meta.events.register("before-parameter-build", CALLS.record)
                _HOOKED.append(client)
        CALLS.reset()
        calls = CALLS
        yield Aws(
            tasks=tasks,
            app_module=app_module,
            sqs=moto_client("sqs"),
            s3=moto_client("s3"),
            dynamodb=moto_client("dynamodb"),
            calls=calls,
        )


@pytest.fixture
def client(aws: Aws) -> Iterator[Any]:
    from chalice.test import Client

    with Client(aws.app_module.app, stage_name="dev", project_dir=str(ROOT)) as test_client:
        yield test_client


@dataclass
class Memory:
    tasks: Any  # the app's LongTasks, on fresh in-memory backends
    app_module: Any
    backends: Backends
    clock: testing.VirtualClock


@pytest.fixture
def memory() -> Iterator[Memory]:
    """The same app with the same settings on longtask.testing's in-memory backends: for
    HTTP behaviour that does not depend on DynamoDB, SQS or S3 (tests/contract holds the
    backends to the same rules), without moto's cost. Fresh backends for every test, as
    the aws fixture installs its own at the start of each of its tests."""
    import app as app_module

    clock = testing.VirtualClock()
    backends = testing.in_memory(app_module.tasks, Settings.from_env(), clock)
    yield Memory(app_module.tasks, app_module, backends, clock)


@pytest.fixture
def memory_client(memory: Memory) -> Iterator[Any]:
    from chalice.test import Client

    with Client(memory.app_module.app, stage_name="dev", project_dir=str(ROOT)) as test_client:
        yield test_client


# The test's own owner cookie, as a browser or `curl -b` would send it back.
OWNER = {"Cookie": "longtask_owner=" + "o" * 43}


def json_headers() -> dict[str, str]:
    return {"Accept": "application/json", "Content-Type": "application/json", **OWNER}


def start(client: Any, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    response = client.http.post(f"/tasks/{kind}", headers=json_headers(), body=json.dumps(params))
    assert response.status_code == 202, response.body
    return dict(json.loads(response.body))


def status(client: Any, document: dict[str, Any]) -> dict[str, Any]:
    response = client.http.get(document["links"]["self"], headers={"Accept": "application/json"})
    assert response.status_code == 200, response.body
    return dict(json.loads(response.body))


def event_of(message: dict[str, Any], queue: str) -> dict[str, Any]:
    """The event Lambda's SQS event source makes of one received message."""
    return testing.sqs_event([message], testing.queue_arn(queue))


def deliver(
    aws: Aws, queue: str = "tasks", max_messages: int = 50, timeout_seconds: float = 60
) -> list[str]:
    """Plays Lambda's SQS event source: receive, invoke the handler, delete on success.

    Returns what happened to each message ("deleted" or "kept").
    """
    url = aws.queue_url if queue == "tasks" else aws.dlq_url
    function = "worker" if queue == "tasks" else "dead_letters"
    handler = getattr(aws.app_module, function)
    outcomes = []
    for _ in range(max_messages):
        received = aws.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"]
        ).get("Messages", [])
        if not received:
            break
        message = received[0]
        event = event_of(message, queue)
        try:
            handler(event, LambdaContext(function, timeout_seconds))
        except Exception:
            outcomes.append("kept")
            continue
        aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        outcomes.append("deleted")
    return outcomes
