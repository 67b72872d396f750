"""Least privilege, checked against the code: every AWS call of a task's life is allowed by
the policy file of the function that made it, and every line of those files is used.

The lifecycle runs in process on moto (start, status polls, progress, a checkpoint
hand-off, the result link, a duplicate delivery, cancel while running, a task that fails
every attempt, a dead letter, stale records repaired). A botocore hook on the app's
clients records each call with the function that made it (a thread-local label: the API
routes, `worker`, `dead_letters` or `reconciler`). The policies are the files `make
deploy` writes for the prod stage, written here by the same code from the Outputs of the
stack that conftest created on moto.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chalice.app import SQSEventConfig

from chalicelib.longtask.aws.queue import encode_message
from dev.deploy import cli as deploy
from dev.deploy import policies
from dev.local.scheduler import scheduled_event
from dev.stage import CONFIG_FILE

from .conftest import OWNER, STAGE, Aws, deliver, json_headers, start

ACCOUNT_ID = policies.LOCAL_ACCOUNT_ID
REGION = policies.LOCAL_REGION
POLICY_STAGE = "prod"


@dataclass(frozen=True)
class Call:
    function: str
    action: str  # as IAM names it: "dynamodb:GetItem"
    resource: str  # the ARN that IAM checks
    how: str  # "call", "presigned", or why a call not seen in process is implied


def resource_arn(service: str, operation: str, params: dict[str, Any]) -> str:
    """The resource that IAM authorizes a call against."""
    if service == "dynamodb" and len(params.get("RequestItems", {})) == 1:
        # A batch is authorized against each table it names; ours names one.
        (name,) = params["RequestItems"]
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
    if service == "dynamodb" and "TableName" in params:
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{params['TableName']}"
        return f"{table}/index/{params['IndexName']}" if "IndexName" in params else table
    if service == "sqs" and ("QueueUrl" in params or "QueueName" in params):
        name = params.get("QueueName") or params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
    if service == "s3" and "Bucket" in params:
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        return f"{bucket}/{params['Key']}" if "Key" in params else bucket
    # A call this test has not met yet: no policy names this, so the check below fails.
    return f"<the resource of {service}:{operation}: teach resource_arn() which one IAM checks>"


TRANSACTION_ACTIONS = {
    "ConditionCheck": "ConditionCheckItem",
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
}


class Recorder:
    """A botocore `before-parameter-build` hook that notes who called what."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def acting_as(self, function: str) -> Iterator[None]:
        previous = getattr(self._local, "function", None)
        self._local.function = function
        try:
            yield
        finally:
            self._local.function = previous

    def __call__(self, model: Any, params: dict[str, Any], context: Any = None, **_: Any) -> None:
        service = model.service_model.signing_name
        if service == "dynamodb" and model.name == "TransactWriteItems":
            # IAM authorizes a transaction item by item, each as its own action.
            for item in params["TransactItems"]:
                ((kind, request),) = item.items()
                action = TRANSACTION_ACTIONS[kind]
                with self._lock:
                    self.calls.append(
                        Call(
                            function=getattr(self._local, "function", None) or "<no function>",
                            action=f"dynamodb:{action}",
                            resource=resource_arn(service, action, request),
                            how="in a transaction",
                        )
                    )
            return
        call = Call(
            function=getattr(self._local, "function", None) or "<no function>",
            action=f"{service}:{model.name}",
            resource=resource_arn(service, model.name, params),
            how="presigned" if (context or {}).get("is_presign_request") else "call",
        )
        with self._lock:
            if call.action == "dynamodb:TransactWriteItems":
                # IAM has no action for a transaction: each of its writes is authorized
                # as the single-item call it stands for (PutItem, UpdateItem, ...).
                for item in params["TransactItems"]:
                    ((kind, write),) = item.items()
                    action = f"dynamodb:{kind}Item"  # PutItem, UpdateItem, ConditionCheckItem
                    resource = resource_arn(service, kind, write)
                    self.calls.append(dataclasses.replace(call, action=action, resource=resource))
                return
            self.calls.append(call)
            # IAM authorizes a batch of messages as sqs:SendMessage (there is no
            # sqs:SendMessageBatch action).
            if call.action == "sqs:SendMessageBatch":
                self.calls[-1] = dataclasses.replace(call, action="sqs:SendMessage")
            # IAM authorizes a PutObject that carries tags as s3:PutObjectTagging too.
            if call.action == "s3:PutObject" and params.get("Tagging"):
                self.calls.append(dataclasses.replace(call, action="s3:PutObjectTagging"))


@pytest.fixture
def recorder(aws: Aws) -> Iterator[Recorder]:
    recorder = Recorder()
    clients = [
        aws.tasks.backends.store.client,
        aws.tasks.backends.queue.client,
        aws.tasks.backends.results.client,
    ]
    for client in clients:
        client.meta.events.register("before-parameter-build", recorder)
    try:
        yield recorder
    finally:
        for client in clients:
            client.meta.events.unregister("before-parameter-build", recorder)


@pytest.fixture
def stack_outputs(aws: Aws) -> dict[str, str]:
    """The Outputs of the stack that conftest created from infra/template.yaml."""
    import boto3

    description = boto3.client("cloudformation").describe_stacks(StackName=f"longtask-{STAGE}")
    return {o["OutputKey"]: o["OutputValue"] for o in description["Stacks"][0]["Outputs"]}


@pytest.fixture
def policy_files(tmp_path: Path, stack_outputs: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What `make deploy` writes for the prod stage, given this stack's Outputs."""
    config = tmp_path / ".chalice" / "config.json"
    config.parent.mkdir()
    shutil.copy(CONFIG_FILE, config)
    deploy.write_stage(POLICY_STAGE, stack_outputs, ACCOUNT_ID, REGION, config_file=config)
    written = json.loads(config.read_text())["stages"][POLICY_STAGE]
    assert written["environment_variables"]["LONGTASK_BUCKET"] == stack_outputs["BucketName"]
    files = {}
    for function in policies.FUNCTIONS:
        name = written["lambda_functions"][function]["iam_policy_file"]
        files[function] = json.loads((config.parent / name).read_text())
    return files


# --- the lifecycle ------------------------------------------------------------------------


def _record(aws: Aws, task_id: str) -> dict[str, Any]:
    item = aws.dynamodb.get_item(
        TableName=aws.tasks.settings.table, Key={"id": {"S": task_id}}, ConsistentRead=True
    )
    return dict(item.get("Item", {}))


def sized(length: int, ctx: Any) -> str:
    """A part of the fan-out task below: its result is `length` characters long."""
    return "x" * length


def fan_out(params: dict[str, Any], ctx: Any) -> list[int]:
    """Maps over a small and a large item, so that a part's result goes through S3."""
    return [len(text) for text in ctx.map([10, 20_000], sized)]


def run_lifecycle(aws: Aws, client: Any, recorder: Recorder) -> None:
    mine = {"Accept": "application/json", **OWNER}
    if aws.tasks.registry.get("policy-fan-out") is None:
        aws.tasks.registry.add("policy-fan-out", fan_out)

    # Start a task, poll it, see it in the index and the list of my tasks.
    with recorder.acting_as("api_handler"):
        document = start(client, "sleep", {"seconds": 1.5})
        assert client.http.get(document["links"]["self"], headers=mine).status_code == 200
        assert client.http.get("/", headers=OWNER).status_code == 200
        assert client.http.get("/tasks", headers=mine).status_code == 200

    # The first invocation runs out of time after one step and hands over its checkpoint
    # (progress, a new message); the second finishes and writes the result.
    with recorder.acting_as("worker"):
        assert deliver(aws, max_messages=1, timeout_seconds=2.5) == ["deleted"]
    with recorder.acting_as("api_handler"):
        polled = json.loads(client.http.get(document["links"]["self"], headers=mine).body)
        assert polled["status"] == "started" and polled["progress"]["step"] == 1
    with recorder.acting_as("worker"):
        assert deliver(aws, max_messages=1) == ["deleted"]
    with recorder.acting_as("api_handler"):
        page = client.http.get(document["links"]["self"], headers=OWNER)
        assert page.status_code == 303 and "Signature=" in page.headers["Location"]
        result = client.http.get(document["links"]["self"] + "/result", headers=mine)
        assert result.status_code == 303

    # A task that fans out: the parent makes its parts (PutItem) and queues them
    # (SendMessageBatch), each part keeps its result (a memo, or S3 when large), the last
    # part queues the parent, which reads the parts and their results (BatchGetItem,
    # GetObject).
    with recorder.acting_as("api_handler"):
        fanned = start(client, "policy-fan-out", {})
    with recorder.acting_as("worker"):
        assert deliver(aws) == ["deleted"] * 4
    assert _record(aws, fanned["id"])["status"] == {"S": "done"}

    # A task whose checkpoint outgrows the record: written to its own item, in a
    # transaction that checks the attempt still holds the task.
    with recorder.acting_as("api_handler"):
        report = start(client, "report", {"month": "2024-02"})
    with recorder.acting_as("worker"):
        assert deliver(aws, max_messages=1) == ["deleted"]
    assert _record(aws, report["id"])["status"] == {"S": "done"}

    # A task that fails every attempt: retried, then failed.
    with recorder.acting_as("api_handler"):
        failing = start(client, "sleep", {"seconds": 0, "fail_times": 3})
    with recorder.acting_as("worker"):
        assert deliver(aws) == ["kept", "kept", "deleted"]
    assert _record(aws, failing["id"])["status"] == {"S": "failed"}

    # SQS moves a message to the dead-letter queue (done here by hand, as the redrive
    # does). While its task has attempts left, dead_letters queues it again ...
    with recorder.acting_as("api_handler"):
        lost = start(client, "sleep", {"seconds": 1})
    (message,) = aws.sqs.receive_message(QueueUrl=aws.queue_url)["Messages"]
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=message["Body"])
    aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=message["ReceiptHandle"])
    with recorder.acting_as("dead_letters"):
        assert deliver(aws, "dead_letters") == ["deleted"]
    assert _record(aws, lost["id"])["status"] == {"S": "ready"}
    with recorder.acting_as("worker"):
        assert deliver(aws) == ["deleted"]
    assert _record(aws, lost["id"])["status"] == {"S": "done"}
    # ... and once its worker died on the last attempt, dead_letters fails it.
    with recorder.acting_as("api_handler"):
        dead = start(client, "sleep", {"seconds": 1})
    aws.dynamodb.update_item(  # the test's own client: set up, not a call of the app's
        TableName=aws.tasks.settings.table,
        Key={"id": {"S": dead["id"]}},
        UpdateExpression="SET #status = :started, attempts = :three, lease_until = :past",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={
            ":started": {"S": "started"},
            ":three": {"N": "3"},
            ":past": {"N": str(time.time() - 1)},
        },
    )
    (message,) = aws.sqs.receive_message(QueueUrl=aws.queue_url)["Messages"]
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=message["Body"])
    aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=message["ReceiptHandle"])
    with recorder.acting_as("dead_letters"):
        assert deliver(aws, "dead_letters") == ["deleted"]
    assert _record(aws, dead["id"])["status"] == {"S": "failed"}

    # A message delivered twice while its task runs, then the task cancelled by its owner.
    with recorder.acting_as("api_handler"):
        running = start(client, "sleep", {"seconds": 3})
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=encode_message(running["id"]))
    outcomes: list[str] = []

    def first_delivery() -> None:
        with recorder.acting_as("worker"):
            outcomes.extend(deliver(aws, max_messages=1))

    thread = threading.Thread(target=first_delivery)
    thread.start()
    deadline = time.monotonic() + 10
    while _record(aws, running["id"]).get("status") != {"S": "started"}:
        assert time.monotonic() < deadline, "the first delivery never claimed the task"
        time.sleep(0.05)
    with recorder.acting_as("worker"):
        assert deliver(aws, max_messages=1) == ["kept"]  # the duplicate waits for the lease
    with recorder.acting_as("api_handler"):
        cancel = client.http.delete(running["links"]["self"], headers=json_headers())
        assert cancel.status_code == 202, cancel.body
    thread.join(timeout=20)
    assert outcomes == ["deleted"]
    assert _record(aws, running["id"])["status"] == {"S": "cancelled"}

    # What went stale, repaired by the reconciler: a task whose message was lost, queued
    # again; an ended task that still holds its owner's place, which it gives back.
    with recorder.acting_as("api_handler"):
        stuck = start(client, "sleep", {"seconds": 0})
        ended = start(client, "sleep", {"seconds": 0})
    for message in aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10)[
        "Messages"
    ]:
        aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=message["ReceiptHandle"])
    for task_id, status in ((stuck["id"], "ready"), (ended["id"], "done")):
        aws.dynamodb.update_item(  # set up with the test's own client
            TableName=aws.tasks.settings.table,
            Key={"id": {"S": task_id}},
            UpdateExpression="SET #status = :status, due_at = :past",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":status": {"S": status},
                ":past": {"N": str(time.time() - 1)},
            },
        )
    with recorder.acting_as("reconciler"):
        aws.app_module.reconciler(scheduled_event("reconciler"), None)
    assert "counted" not in _record(aws, ended["id"])
    with recorder.acting_as("worker"):
        assert deliver(aws) == ["deleted"]
    assert _record(aws, stuck["id"])["status"] == {"S": "done"}


def implied_calls(app: Any, seen: list[Call]) -> list[Call]:
    """Calls that a deployed function makes but the in-process run cannot show."""
    implied = []
    # Lambda's SQS event source polls and deletes with the function's role.
    for source in app.event_sources:
        if isinstance(source, SQSEventConfig):
            queue = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{source.queue}"
            for action in policies.SQS_EVENT_SOURCE_ACTIONS:
                implied.append(Call(source.name, action, queue, "SQS event source"))
    # Lambda writes each function's logs with its role.
    app_name = policies.app_name()
    for function in policies.FUNCTIONS:
        group = policies.log_group_arn(function, POLICY_STAGE, app_name, ACCOUNT_ID, REGION)
        implied.append(Call(function, "logs:CreateLogGroup", group, "Lambda runtime"))
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            stream = f"{group}:log-stream:2026/01/01/[$LATEST]0123abcd"
            implied.append(Call(function, action, stream, "Lambda runtime"))
    # Queues are named in the settings; each new Lambda container looks the URL up once.
    # In process, the first function to use a queue cached its URL for the others.
    looked_up = {(c.function, c.resource) for c in seen if c.action == "sqs:GetQueueUrl"}
    for call in seen:
        if call.action.startswith("sqs:") and (call.function, call.resource) not in looked_up:
            looked_up.add((call.function, call.resource))
            implied.append(Call(call.function, "sqs:GetQueueUrl", call.resource, "URL lookup"))
    return implied


# --- IAM's matching, as far as these policies use it -----------------------------------


def _matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    # IAM's wildcards are * and ?; fnmatch's [...] never occurs in these ARNs.
    return fnmatch.fnmatchcase(value, pattern)


def allowing(policy: dict[str, Any], action: str, resource: str) -> list[str]:
    """The Sids of the statements that allow `action` on `resource`."""
    sids = []
    for statement in policy["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}, statement
        assert statement["Effect"] == "Allow", statement
        actions = statement["Action"]
        resources = statement["Resource"]
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if any(_matches(a, action, ignore_case=True) for a in actions) and any(
            _matches(r, resource) for r in resources
        ):
            sids.append(statement["Sid"])
    return sids


def table(calls: list[Call], files: dict[str, dict[str, Any]]) -> str:
    rows = sorted({(c.function, c.action, c.resource, c.how) for c in calls})
    lines = ["function | action | resource | how | allowed by"]
    for function, action, resource, how in rows:
        sids = ", ".join(allowing(files[function], action, resource)) or "NOTHING"
        lines.append(f"{function} | {action} | {resource} | {how} | {sids}")
    return "\n".join(lines)


# --- the tests ----------------------------------------------------------------------------


def test_the_template_names_its_outputs_as_the_deploy_code_expects(
    stack_outputs: dict[str, str],
) -> None:
    # The one-stack variant writes names computed from the template without a stack.
    assert policies.expected_outputs(STAGE, ACCOUNT_ID, REGION) == stack_outputs


def test_every_aws_call_is_allowed_to_the_function_that_makes_it_and_nothing_more(
    aws: Aws, client: Any, recorder: Recorder, policy_files: dict[str, dict[str, Any]]
) -> None:
    run_lifecycle(aws, client, recorder)
    seen = list(recorder.calls)
    calls = seen + implied_calls(aws.app_module.app, seen)
    print("\n" + table(calls, policy_files))

    strays = [c for c in calls if c.function not in policy_files]
    assert not strays, f"AWS calls outside any function: {strays}"
    denied = {c for c in calls if not allowing(policy_files[c.function], c.action, c.resource)}
    assert not denied, "calls that the function's policy does not allow (add a grant in " + (
        "dev/deploy/policies.py if the call is meant to be):\n"
        + "\n".join(f"  {c.function}: {c.action} on {c.resource} ({c.how})" for c in denied)
    )

    unused = []
    for function, policy in policy_files.items():
        mine = [c for c in calls if c.function == function]
        for statement in policy["Statement"]:
            for action in statement["Action"]:
                if not any(
                    statement["Sid"] in allowing(policy, action, c.resource)
                    and _matches(action, c.action, ignore_case=True)
                    for c in mine
                ):
                    unused.append(f"{function}: {statement['Sid']} {action}")
    assert not unused, "grants that no call uses (remove them, least privilege):\n" + "\n".join(
        unused
    )


def test_policies_name_only_this_stages_resources(
    policy_files: dict[str, dict[str, Any]], stack_outputs: dict[str, str]
) -> None:
    ours = [v for k, v in stack_outputs.items() if k.endswith("Arn")]
    for function, policy in policy_files.items():
        for statement in policy["Statement"]:
            for action in statement["Action"]:
                assert "*" not in action, f"{function}: {action}"
            for resource in statement["Resource"]:
                if statement["Sid"] == "OwnLogs":
                    # A log stream's name is the one part AWS makes up: ":*" after the group.
                    assert "*" not in resource.removesuffix(":*"), resource
                    name = policies.function_name(function, POLICY_STAGE, policies.app_name())
                    assert resource.removesuffix(":*").endswith(f":log-group:/aws/lambda/{name}")
                    continue
                assert any(resource.startswith(arn) for arn in ours), resource
                # Results are the one set of objects, under their prefix.
                assert "*" not in resource.removesuffix("/results/*"), resource


def test_the_committed_dev_policies_are_what_deploy_writes_for_the_local_stack() -> None:
    config = json.loads(CONFIG_FILE.read_text())
    assert config["autogen_policy"] is False
    outputs = policies.expected_outputs("dev", ACCOUNT_ID, REGION)
    for stage_name, stage_config in config["stages"].items():
        for function in policies.FUNCTIONS:
            name = stage_config["lambda_functions"][function]["iam_policy_file"]
            assert name == policies.policy_file_name(stage_name, function)
    for function in policies.FUNCTIONS:
        path = CONFIG_FILE.parent / policies.policy_file_name("dev", function)
        expected = policies.policy_document(
            function, "dev", outputs, ACCOUNT_ID, REGION, app=policies.app_name()
        )
        assert json.loads(path.read_text()) == expected, (
            f"{path.name} is stale: python -m dev.deploy configure --stage dev "
            "--account-id 123456789012 --region us-east-1 rewrites it"
        )
