"""The deploy path offline: what the infra stack of a stage watches, and what `make destroy`
and `configure` do before they touch AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.longtask.reconciler import Repairs
from dev import stage
from dev.deploy import api_stage, policies
from dev.deploy import cli as deploy
from dev.local.infra import Stack, load_template, resolve
from dev.stage import CONFIG_FILE, TEMPLATE_FILE

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


def _alarms(stage_name: str) -> dict[str, dict[str, Any]]:
    """The stage's alarms as CloudFormation creates them with the parameters deploy passes."""
    template = load_template()
    parameters = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
    parameters.update(deploy.parameters_for(stage_name))
    names = policies.expected_outputs(stage_name, ACCOUNT_ID, REGION)
    stack = Stack(
        name=deploy.stack_name(stage_name),
        template=template,
        parameters=parameters,
        physical_ids={
            "TaskQueue": names["QueueName"],
            "DeadLetterQueue": names["DeadLetterQueueName"],
            "AlarmTopic": names["AlarmTopicArn"],
            "Tasks": names["TableName"],
        },
        outputs={},
        account_id=ACCOUNT_ID,
        region=REGION,
    )
    return {
        logical_id: resolve(stack, resource["Properties"])
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def _watched(alarm: dict[str, Any]) -> tuple[str, str, str]:
    dimensions = ",".join(f"{d['Name']}={d['Value']}" for d in alarm["Dimensions"])
    return alarm["Namespace"], alarm["MetricName"], dimensions


def test_the_alarms_watch_the_api_worker_and_queue_that_chalice_deploy_creates() -> None:
    alarms = _alarms("prod")
    app = policies.app_name()
    worker = policies.function_name("worker", "prod", app)
    watched = {_watched(alarm) for alarm in alarms.values()}
    api = f"ApiName={app},Stage={stage.chalice_config('api_handler', 'prod').api_gateway_stage}"
    assert ("AWS/ApiGateway", "5XXError", api) in watched
    assert ("AWS/Lambda", "Errors", f"FunctionName={worker}") in watched
    assert ("AWS/Lambda", "Throttles", f"FunctionName={worker}") in watched
    queue = "QueueName=longtask-prod-tasks"
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue) in watched
    # The reconciler's repairs, under the dimension its metrics log line names.
    table = policies.expected_outputs("prod", ACCOUNT_ID, REGION)["TableName"]
    assert ("longtask", "Repairs", f"Table={table}") in watched
    line = json.loads(Repairs().metrics(table, 0.0))
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "longtask" and directive["Dimensions"] == [["Table"]]
    assert line["Table"] == table and "Repairs" in line
    # Every alarm tells the stage's topic, the one the README says to subscribe to.
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:longtask-prod-alarms"]


def test_a_queued_task_alarms_only_once_its_attempts_and_backoffs_cannot_explain_its_age() -> None:
    (age,) = [a for a in _alarms("prod").values() if _watched(a)[1].startswith("ApproximateAge")]
    worker_timeout = stage.lambda_timeout("worker", "prod")
    attempts = int(stage.environment("worker", "prod")["LONGTASK_MAX_ATTEMPTS"])
    # Each attempt may hold the message for a whole invocation; 900 s x 3 + the backoffs
    # is still legitimate, two hours of waiting is not.
    assert attempts * worker_timeout < float(age["Threshold"]) < 2 * 3600


@pytest.fixture
def moto_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[deploy.Aws]:
    from moto import mock_aws

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield deploy.Aws(REGION)


def test_destroy_without_chalices_record_deletes_nothing_and_says_why(
    moto_account: deploy.Aws,
) -> None:
    stage_name = "prod"
    assert not api_stage.deployed_file(stage_name).exists()
    cloudformation = moto_account.client("cloudformation")
    cloudformation.create_stack(
        StackName=deploy.stack_name(stage_name),
        TemplateBody=TEMPLATE_FILE.read_text(),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage_name}],
        EnableTerminationProtection=True,
    )
    with pytest.raises(deploy.DeployError, match="nothing was deleted") as refused:
        deploy.destroy(stage_name, moto_account, assume_yes=True)
    assert ".chalice/deployed/prod.json" in str(refused.value)
    (stack,) = cloudformation.describe_stacks(StackName=deploy.stack_name(stage_name))["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_a_real_account_never_rewrites_the_committed_dev_policies(
    moto_account: deploy.Aws,
) -> None:
    committed = {p: p.read_text() for p in CONFIG_FILE.parent.glob("*.json")}
    with pytest.raises(deploy.DeployError, match="nothing was written"):
        deploy.configure("dev", moto_account, account_id="111122223333")
    assert {p: p.read_text() for p in CONFIG_FILE.parent.glob("*.json")} == committed
