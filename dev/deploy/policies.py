"""This repository's stages of the policies that longtask.deploy.policies writes: the
names its infra template gives, and moto's account for the local stack."""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib.longtask.deploy.policies import (
    CLOUDFORMATION,
    CLOUDFORMATION_IDS,
    FUNCTIONS,
    GRANTS,
    LITERAL,
    OUTPUT_VARIABLES,
    SQS_EVENT_SOURCE_ACTIONS,
    Grant,
    cloudformation_policy_document,
    function_name,
    log_group_arn,
    policy_document,
    policy_file_name,
    resource_arns,
)
from dev.local.infra import REGION, Stack, load_template, resolve
from dev.stage import CONFIG_FILE, TEMPLATE_FILE

__all__ = [
    "CLOUDFORMATION",
    "CLOUDFORMATION_IDS",
    "FUNCTIONS",
    "GRANTS",
    "LITERAL",
    "LOCAL_ACCOUNT_ID",
    "LOCAL_REGION",
    "OUTPUT_VARIABLES",
    "SQS_EVENT_SOURCE_ACTIONS",
    "Grant",
    "app_name",
    "cloudformation_policy_document",
    "expected_outputs",
    "function_name",
    "log_group_arn",
    "policy_document",
    "policy_file_name",
]

# The account and region of every moto backend, so of the local stack's resources.
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = REGION


def app_name(config_file: Path = CONFIG_FILE) -> str:
    return str(json.loads(config_file.read_text())["app_name"])


def expected_outputs(
    stage: str,
    account_id: str,
    region: str,
    partition: str = "aws",
    template_file: Path = TEMPLATE_FILE,
) -> dict[str, str]:
    """The infra stack's Outputs for `stage`, computed from the template's own naming
    without creating anything: what `dev.deploy.cli configure` writes for the one-stack
    variant, where the stack does not exist yet."""
    template = load_template(template_file)
    parameters = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
    parameters["Stage"] = stage
    stack = Stack(
        name=f"longtask-{stage}",
        template=template,
        parameters=parameters,
        physical_ids={},
        outputs={},
        account_id=account_id,
        region=region,
    )
    resources = template["Resources"]

    def named(logical_id: str, name_property: str) -> str:
        return str(resolve(stack, resources[logical_id]["Properties"][name_property]))

    table = named("Tasks", "TableName")
    queue = named("TaskQueue", "QueueName")
    dead_letters = named("DeadLetterQueue", "QueueName")
    bucket = named("Results", "BucketName")
    topic = named("AlarmTopic", "TopicName")
    names = {
        "TableName": table,
        "QueueName": queue,
        "DeadLetterQueueName": dead_letters,
        "BucketName": bucket,
    }
    return {
        **resource_arns(names, account_id, region, partition),
        "AlarmTopicArn": f"arn:{partition}:sns:{region}:{account_id}:{topic}",
    }
