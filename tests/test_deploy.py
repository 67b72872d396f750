"""The deploy path offline: what the infra stack of a stage watches, and what `make destroy`
and `configure` do before they touch AWS."""

from __future__ import annotations

from typing import Any

from dev import stage
from dev.deploy import cli as deploy
from dev.deploy import policies
from dev.local.infra import Stack, load_template, resolve

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
