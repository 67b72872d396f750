"""The local stack itself: its resources, its Lambda emulation and how it starts and stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dev import stage
from dev.local.infra import load_template
from dev.stage import ROOT, TEMPLATE_FILE

from .conftest import (
    RunningStack,
    StackFactory,
    alive,
    descendants,
    free_port,
    inherited_environ,
    start_stack,
    wait_until,
)

# --- the stack of this repository's app ------------------------------------------------


def test_prints_ready_and_serves_the_app(stack: RunningStack) -> None:
    port = stack.url.rsplit(":", 1)[1]
    assert f"Ready: http://127.0.0.1:{port}/\n" in stack.lines
    with urllib.request.urlopen(f"{stack.url}/", timeout=10) as response:
        assert response.status == 200


def test_children_use_the_created_resources_on_moto(stack: RunningStack) -> None:
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in stack.client("cloudformation").describe_stacks(StackName="longtask-dev")["Stacks"][
            0
        ]["Outputs"]
    }
    assert stack.env["LONGTASK_TABLE"] == outputs["TableName"] == "longtask-dev-tasks"
    assert stack.env["LONGTASK_QUEUE"] == outputs["QueueName"] == "longtask-dev-tasks"
    assert stack.env["LONGTASK_DLQ"] == outputs["DeadLetterQueueName"]
    assert stack.env["LONGTASK_BUCKET"] == outputs["BucketName"]
    assert stack.env["AWS_ENDPOINT_URL"] == stack.moto_url
    # The rest of the dev stage's settings, unchanged.
    for name, value in stage.environment("worker").items():
        if name not in {"LONGTASK_TABLE", "LONGTASK_QUEUE", "LONGTASK_DLQ", "LONGTASK_BUCKET"}:
            assert stack.env[name] == value


def test_table_has_the_templates_key_index_ttl_and_backups(stack: RunningStack) -> None:
    dynamodb = stack.client("dynamodb")
    table = dynamodb.describe_table(TableName=stack.env["LONGTASK_TABLE"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert {"AttributeName": "id", "AttributeType": "S"} in table["AttributeDefinitions"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_owner", "failed", "due"}
    assert indexes["by_owner"]["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    # The operator's list of failed tasks: only failed records carry failed_day.
    assert indexes["failed"]["KeySchema"] == [
        {"AttributeName": "failed_day", "KeyType": "HASH"},
        {"AttributeName": "finished_at", "KeyType": "RANGE"},
    ]
    # The reconciler's view: only records of tasks that have not ended carry due_shard.
    assert indexes["due"]["KeySchema"] == [
        {"AttributeName": "due_shard", "KeyType": "HASH"},
        {"AttributeName": "due_at", "KeyType": "RANGE"},
    ]
    assert all(i["Projection"]["ProjectionType"] == "KEYS_ONLY" for i in indexes.values())
    ttl = dynamodb.describe_time_to_live(TableName=table["TableName"])["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    backups = dynamodb.describe_continuous_backups(TableName=table["TableName"])
    recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"


def test_task_queue_redrives_to_the_dead_letter_queue(stack: RunningStack) -> None:
    sqs = stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=stack.env["LONGTASK_QUEUE"])["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName=stack.env["LONGTASK_DLQ"])["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == int(stack.env["LONGTASK_MAX_ATTEMPTS"])
    assert int(queue["VisibilityTimeout"]) == 6 * stage.lambda_timeout("worker")
    assert int(queue["MessageRetentionPeriod"]) == 4 * 24 * 3600
    assert int(dlq["MessageRetentionPeriod"]) == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] == dlq["SqsManagedSseEnabled"] == "true"


def test_results_bucket_is_private_encrypted_and_expires(stack: RunningStack) -> None:
    s3 = stack.client("s3")
    bucket = stack.env["LONGTASK_BUCKET"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    expirations = [r["Expiration"]["Days"] for r in lifecycle if "Expiration" in r]
    assert expirations == [int(stack.env["LONGTASK_RETENTION_DAYS"])]


def test_an_alarm_watches_the_dead_letter_queue(stack: RunningStack) -> None:
    alarms = stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    (alarm,) = [a for a in alarms if a["MetricName"] == "ApproximateNumberOfMessagesVisible"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": stack.env["LONGTASK_DLQ"]}]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == 0


# --- the template ----------------------------------------------------------------------


def test_template_passes_cfn_lint() -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or "cfn-lint"
    result = subprocess.run(
        [cfn_lint, str(TEMPLATE_FILE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_denies_requests_without_tls() -> None:
    # Checked in the template: the local stack leaves this policy out (see dev/local/infra.py).
    resources = load_template()["Resources"]
    (policy,) = [r for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# --- the Lambda emulation, with a probe app instead of this repository's app.py ---------

# Records every invocation in the table, so a test can see what the handlers received.
PROBE_APP = '''
"""A probe app: records what its SQS handlers receive."""
import json
import os
import time

import boto3
from chalice import Chalice

app = Chalice(app_name="longtask")
# Made at import, which Lambda does not count against the invocation's 1 s timeout.
DYNAMODB = boto3.client("dynamodb")


def record(key, **values):
    values["pid"] = os.getpid()
    DYNAMODB.put_item(
        TableName=os.environ["LONGTASK_TABLE"],
        Item={"id": {"S": key}, "data": {"S": json.dumps(values)}},
    )


@app.route("/")
def index():
    return {"probe": True}


@app.on_sqs_message(queue=os.environ["LONGTASK_QUEUE"], name="worker")
def worker(event):
    for message in event:
        raw = message.to_dict()
        count = raw["attributes"]["ApproximateReceiveCount"]
        context = message.context
        record(
            f"{message.body}#{count}",
            record=raw,
            function_name=context.function_name,
            remaining_ms=context.get_remaining_time_in_millis(),
            memory=context.memory_limit_in_mb,
            arn=context.invoked_function_arn,
        )
        if message.body.startswith("fail"):
            raise RuntimeError("the probe fails on purpose")
        if message.body.startswith("hang"):
            try:
                time.sleep(60)
            finally:
                record(f"{message.body}#finally")


@app.on_sqs_message(queue=os.environ["LONGTASK_DLQ"], name="dead_letters")
def dead_letters(event):
    for message in event:
        record(f"dead#{message.body}")
'''

PROBE_ENV = {"WORKER_TIMEOUT": "1", "LONGTASK_MAX_ATTEMPTS": "2", "LONGTASK_LEASE_SECONDS": "7"}


def probe_project(directory: Path) -> Path:
    """A copy of the local stack's files (its worker uses longtask's event builder) with the
    probe app in place of app.py."""
    for name in ("dev", "chalicelib", "infra", ".chalice"):
        shutil.copytree(ROOT / name, directory / name, ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "app.py").write_text(textwrap.dedent(PROBE_APP))
    return directory


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack of the probe app: worker timeout 1 s (visibility 6 s), 2 attempts."""
    project = probe_project(tmp_path_factory.mktemp("probe"))
    running = start_stack(env=PROBE_ENV, workers=1, project_dir=project, log_dir=project)
    yield running
    running.stop()


class Probe:
    """What the probe app recorded, and how to send it messages."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack
        self.dynamodb = stack.client("dynamodb")
        self.sqs = stack.client("sqs")
        self.queue_url = self.sqs.get_queue_url(QueueName=stack.env["LONGTASK_QUEUE"])["QueueUrl"]

    def send(self, body: str, **attributes: str) -> str:
        message_attributes = {
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        }
        return str(
            self.sqs.send_message(
                QueueUrl=self.queue_url, MessageBody=body, MessageAttributes=message_attributes
            )["MessageId"]
        )

    def recorded(self, key: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.stack.env["LONGTASK_TABLE"], Key={"id": {"S": key}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else dict(json.loads(item["data"]["S"]))

    def messages_in_queue(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


def test_overrides_reach_the_children_and_the_template(probe: RunningStack) -> None:
    assert probe.env["LONGTASK_LEASE_SECONDS"] == "7"
    assert probe.env["LONGTASK_MAX_ATTEMPTS"] == "2"
    sqs = probe.client("sqs")
    url = sqs.get_queue_url(QueueName=probe.env["LONGTASK_QUEUE"])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 2
    assert attributes["VisibilityTimeout"] == "6"  # 6 x WORKER_TIMEOUT


def test_worker_gets_the_lambda_sqs_event_and_deletes_on_success(probe: RunningStack) -> None:
    p = Probe(probe)
    message_id = p.send("hello", origin="test")
    seen = wait_until(lambda: p.recorded("hello#1"), 30, "the worker's invocation")
    record = seen["record"]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["messageId"] == message_id
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":longtask-dev-tasks")
    assert record["messageAttributes"]["origin"]["stringValue"] == "test"
    assert record["messageAttributes"]["origin"]["dataType"] == "String"
    assert seen["function_name"] == "longtask-dev-worker"
    assert seen["arn"].endswith(":function:longtask-dev-worker")
    assert 0 < seen["remaining_ms"] <= 1000
    wait_until(lambda: p.messages_in_queue() == 0, 10, "the message's deletion")


def test_failing_message_is_redelivered_then_dead_lettered(probe: RunningStack) -> None:
    p = Probe(probe)
    p.send("fail-twice")
    wait_until(lambda: p.recorded("dead#fail-twice"), 60, "the dead_letters invocation")
    # Exactly LONGTASK_MAX_ATTEMPTS deliveries to the worker, then the DLQ handler.
    assert p.recorded("fail-twice#1") and p.recorded("fail-twice#2")
    assert p.recorded("fail-twice#3") is None
    probe.wait_for_output(r"\[worker-1\] ERROR .* stay for redelivery: RuntimeError")


def test_timed_out_invocation_is_aborted_like_lambda(probe: RunningStack) -> None:
    p = Probe(probe)
    p.send("hang")
    first = wait_until(lambda: p.recorded("hang#1"), 30, "the first invocation")
    probe.wait_for_output(r"\[worker-1\] ERROR .* timed out after 1 s")
    # The runtime restarts (same process, fresh state) and gets the message again.
    second = wait_until(lambda: p.recorded("hang#2"), 30, "the redelivery")
    assert second["pid"] == first["pid"]
    wait_until(lambda: p.recorded("dead#hang"), 30, "the dead_letters invocation")
    # Lambda does not run the aborted invocation's finally blocks.
    assert p.recorded("hang#finally") is None


# --- starting and stopping -------------------------------------------------------------


def test_sigterm_stops_every_child(stack_factory: StackFactory, tmp_path: Path) -> None:
    running = stack_factory(project_dir=probe_project(tmp_path / "project"), workers=2)
    # moto, the app, two workers, the dead-letter worker and the scheduler all run once
    # Ready is printed.
    children = descendants(running.process.pid)
    assert len(children) == 6, children
    assert running.stop() == 0
    assert [c for pid, c in children.items() if alive(pid)] == []


def test_a_dying_child_stops_the_stack(stack_factory: StackFactory, tmp_path: Path) -> None:
    running = stack_factory(project_dir=probe_project(tmp_path / "project"), workers=1)
    children = descendants(running.process.pid)
    (api,) = [pid for pid, command in children.items() if "dev.local.api" in command]
    os.kill(api, signal.SIGKILL)
    running.wait_for_output(r"api \(pid \d+\) exited unexpectedly")
    assert running.stop() == 1
    assert [c for pid, c in children.items() if alive(pid)] == []


def test_make_run_takes_the_port_from_the_command_line(tmp_path: Path) -> None:
    port, moto_port = free_port(), free_port()
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}", f"MOTO_PORT={moto_port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**inherited_environ(), "WORKERS": "1"},
    )
    assert make.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240  # may have to install .venv first
    for line in make.stdout:
        lines.append(line)
        if line.startswith("Ready:") or time.monotonic() > deadline:
            break
    try:
        assert f"Ready: http://127.0.0.1:{port}/\n" in lines, "".join(lines[-30:])
        children = descendants(make.pid)
    finally:
        # GNU make passes SIGTERM on to the recipe's process, then exits by the same signal.
        make.send_signal(signal.SIGTERM)
        make.communicate(timeout=30)
    assert make.returncode in (0, -signal.SIGTERM)
    assert [c for pid, c in children.items() if alive(pid)] == []
