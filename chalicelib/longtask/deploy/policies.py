"""What each Lambda function of an app that mounts longtask may do in AWS: its
least-privilege IAM policy, per stage.

Chalice deploys with `autogen_policy: false`, so every function's role gets exactly the
policy file that `iam_policy_file` names in .chalice/config.json. Those files are written
from the grants below (`python -m longtask policies`), never by hand, so the one list here
is what to review; the tests run a task's whole life on moto, record every AWS call each
function makes, and fail on a call that no grant allows and on a grant no call uses.

A policy file comes in one of two forms:
- literal, for `chalice deploy` next to the resources' own stack: their ARNs;
- CloudFormation, for `chalice package --merge-template <the infra template>` (one stack):
  `Fn::Sub` references to the merged template's resources, so that each role, and after it
  the function and its queue subscription, is created after what it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# The functions of an app that mounts longtask: Chalice's API handler, the two SQS
# handlers and the schedule.
FUNCTIONS = ("api_handler", "worker", "dead_letters", "reconciler")

# The environment variable that each name Output of the infra stack fills in.
OUTPUT_VARIABLES = {
    "TableName": "LONGTASK_TABLE",
    "QueueName": "LONGTASK_QUEUE",
    "DeadLetterQueueName": "LONGTASK_DLQ",
    "BucketName": "LONGTASK_BUCKET",
}


@dataclass(frozen=True)
class Grant:
    """One policy statement. Resources are patterns over the infra stack's Outputs (as
    `{TableArn}`) and `{LogGroupArn}`, the function's own log group."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]


# What Lambda's SQS event source does with the function's role: it polls the queue and
# deletes a message after the handler returned (AWSLambdaSQSQueueExecutionRole, scoped
# to one queue). Lambda checks ReceiveMessage when it creates the mapping.
SQS_EVENT_SOURCE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")

# Lambda writes the function's logs with its role. The ":*" form is AWS's own: log
# streams are named below their group, and CreateLogGroup is checked against either form.
_LOGS = Grant(
    "OwnLogs",
    ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"),
    ("{LogGroupArn}", "{LogGroupArn}:*"),
)

GRANTS: dict[str, tuple[Grant, ...]] = {
    # Start (PutItem, SendMessage), status (GetItem), cancel (UpdateItem, also to mark a
    # task failed whose message could not be sent), the caller's list (Query on the owner
    # index only), presigned result links (a URL signed by the API's role works only
    # while that role may GetObject) and the result page's preview, a ranged GetObject
    # of a result's first bytes.
    "api_handler": (
        Grant(
            "TaskRecords",
            (
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ),
            ("{TableArn}",),
        ),
        Grant("TasksByOwner", ("dynamodb:Query",), ("{TableArn}/index/by_owner",)),
        Grant("QueueTasks", ("sqs:GetQueueUrl", "sqs:SendMessage"), ("{QueueArn}",)),
        Grant("PresignResultDownloads", ("s3:GetObject",), ("{BucketArn}/results/*",)),
        _LOGS,
    ),
    # Claim, progress, finish (UpdateItem), look at a task it cannot claim or that may be
    # cancelled (GetItem), hide its message for a lease or a backoff
    # (ChangeMessageVisibility), queue a checkpointed continuation (SendMessage), write
    # the result. A large checkpoint is written to its own item in a transaction that
    # checks the record is still the attempt's (ConditionCheckItem + UpdateItem). A task
    # that fans out makes its parts (PutItem), queues them (SendMessage in batches), and
    # reads them and their results back (BatchGetItem; GetObject for a large item or
    # result, which travels through the bucket).
    "worker": (
        Grant(
            "TaskRecords",
            (
                "dynamodb:BatchGetItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ),
            ("{TableArn}",),
        ),
        Grant(
            "TaskQueue",
            ("sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:SendMessage"),
            ("{QueueArn}",),
        ),
        Grant("TaskQueueEventSource", SQS_EVENT_SOURCE_ACTIONS, ("{QueueArn}",)),
        Grant(
            "Results",
            ("s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"),
            ("{BucketArn}/results/*",),
        ),
        _LOGS,
    ),
    # Marks the task of a dead letter failed, unless it finished or still runs; queues it
    # again (SendMessage) when it has attempts left.
    "dead_letters": (
        Grant("TaskRecords", ("dynamodb:GetItem", "dynamodb:UpdateItem"), ("{TableArn}",)),
        Grant("RequeueTasks", ("sqs:GetQueueUrl", "sqs:SendMessage"), ("{QueueArn}",)),
        Grant("DeadLetterEventSource", SQS_EVENT_SOURCE_ACTIONS, ("{DeadLetterQueueArn}",)),
        _LOGS,
    ),
    # Reads what is overdue (Query on the due index only, then the records by id), moves
    # a record's due time or gives an ended task's place back (UpdateItem, alone or in a
    # transaction; GetItem first for the place), and queues a stuck task (SendMessage).
    "reconciler": (
        Grant(
            "TaskRecords",
            ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"),
            ("{TableArn}",),
        ),
        Grant("DueTasks", ("dynamodb:Query",), ("{TableArn}/index/due",)),
        Grant("RequeueTasks", ("sqs:GetQueueUrl", "sqs:SendMessage"), ("{QueueArn}",)),
        _LOGS,
    ),
}


# The one-stack form of each placeholder: the merged infra template's resources.
_CLOUDFORMATION_FORMS = {
    "TableArn": "${Tasks.Arn}",
    "QueueArn": "${TaskQueue.Arn}",
    "DeadLetterQueueArn": "${DeadLetterQueue.Arn}",
    "BucketArn": "${Results.Arn}",
}

# The functions' logical ids in the template that `chalice package` writes.
CLOUDFORMATION_IDS = {
    "api_handler": "APIHandler",
    "worker": "Worker",
    "dead_letters": "DeadLetters",
    "reconciler": "Reconciler",
}

LITERAL = "literal"
CLOUDFORMATION = "cloudformation"


# --- names and ARNs --------------------------------------------------------------------


def function_name(function: str, stage: str, app: str) -> str:
    """The Lambda function's name as Chalice gives it (the API handler has no suffix)."""
    return f"{app}-{stage}" if function == "api_handler" else f"{app}-{stage}-{function}"


def log_group_arn(
    function: str, stage: str, app: str, account_id: str, region: str, partition: str = "aws"
) -> str:
    name = function_name(function, stage, app)
    return f"arn:{partition}:logs:{region}:{account_id}:log-group:/aws/lambda/{name}"


def resource_arns(
    names: Mapping[str, str], account_id: str, region: str, partition: str = "aws"
) -> dict[str, str]:
    """The ARNs of the resources that `names` (TableName, QueueName, DeadLetterQueueName,
    BucketName, as the infra stack's Outputs call them) name, beside the names."""
    table, queue = names["TableName"], names["QueueName"]
    dead_letters, bucket = names["DeadLetterQueueName"], names["BucketName"]
    return {
        **names,
        "TableArn": f"arn:{partition}:dynamodb:{region}:{account_id}:table/{table}",
        "QueueArn": f"arn:{partition}:sqs:{region}:{account_id}:{queue}",
        "DeadLetterQueueArn": f"arn:{partition}:sqs:{region}:{account_id}:{dead_letters}",
        "BucketArn": f"arn:{partition}:s3:::{bucket}",
    }


# --- documents --------------------------------------------------------------------------


def policy_document(
    function: str,
    stage: str,
    outputs: Mapping[str, str],
    account_id: str,
    region: str,
    partition: str = "aws",
    *,
    app: str,
) -> dict[str, Any]:
    """The IAM policy of `function` in `stage`, literal: for the infra stack with these
    Outputs, deployed by `chalice deploy`."""
    values = dict(outputs)
    values["LogGroupArn"] = log_group_arn(function, stage, app, account_id, region, partition)
    return _document(function, lambda pattern: pattern.format_map(values))


def cloudformation_policy_document(function: str) -> dict[str, Any]:
    """The IAM policy of `function` for the one-stack template of `chalice package
    --merge-template infra/template.yaml`: references instead of ARNs.

    There CloudFormation names the function itself, `<stack>-<logical id>-<suffix>`, and
    the role cannot name its function's log group exactly: the function depends on the role,
    so a reference back would be a cycle. The suffix is the one wildcard.
    """
    forms = dict(_CLOUDFORMATION_FORMS)
    forms["LogGroupArn"] = (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        f"/aws/lambda/${{AWS::StackName}}-{CLOUDFORMATION_IDS[function]}-*"
    )
    return _document(function, lambda pattern: {"Fn::Sub": pattern.format_map(forms)})


def _document(function: str, resource: Callable[[str], Any]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": grant.sid,
                "Effect": "Allow",
                "Action": list(grant.actions),
                "Resource": [resource(pattern) for pattern in grant.resources],
            }
            for grant in GRANTS[function]
        ],
    }


def policy_file_name(stage: str, function: str) -> str:
    """The file, relative to .chalice/ as `iam_policy_file` is, that holds the policy."""
    return f"policy-{stage}-{function}.json"
