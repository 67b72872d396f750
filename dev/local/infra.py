"""Creates infra/template.yaml as a CloudFormation stack on moto, then applies what moto skips.

moto's CloudFormation creates the table, both queues and the bucket, but (moto 5.2.5)
ignores some of their properties and whole resource types. So that the local stack still
has every setting of the one template, `complete_stack` reads those properties from the
same template and applies them through the services' own APIs:

    AWS::DynamoDB::Table      TimeToLiveSpecification, PointInTimeRecoverySpecification
    AWS::S3::Bucket           PublicAccessBlockConfiguration, OwnershipControls,
                              LifecycleConfiguration
    AWS::CloudWatch::Alarm    (not supported: the whole resource)

Conditions are evaluated as far as the template uses them (Fn::Equals, Fn::Not, Fn::If).

One resource stays out on purpose: AWS::S3::BucketPolicy (also skipped by moto). Its
only statement denies requests without TLS, and the local stack speaks plain HTTP on
127.0.0.1; moto 5.2.5 moreover evaluates a Deny whose condition does not match as a
denial, so with that policy every S3 request to moto fails with 403.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

from dev.stage import TEMPLATE_FILE

REGION = "us-east-1"

# Resource types that the local stack leaves out on purpose (see the module docstring).
NOT_APPLIED_LOCALLY = frozenset({"AWS::S3::BucketPolicy"})


class StackError(RuntimeError):
    """The stack could not be created or completed on moto."""


# --- reading the template -------------------------------------------------------------


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (`!Ref x` → `{"Ref": "x"}`)."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref" or tag_suffix == "Condition":
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE_FILE) -> dict[str, Any]:
    """The template as plain data, intrinsics in their long form."""
    with path.open() as f:
        template = yaml.load(f, Loader=_TemplateLoader)
    if not isinstance(template, dict):
        raise StackError(f"{path} is not a CloudFormation template")
    return template


# --- creating the stack ---------------------------------------------------------------


@dataclass
class Stack:
    """A created stack: its parameters, the physical id of each resource, its outputs."""

    name: str
    template: dict[str, Any]
    parameters: dict[str, str]
    physical_ids: dict[str, str]
    outputs: dict[str, str]
    account_id: str
    region: str = REGION
    skipped_by_cloudformation: list[str] = field(default_factory=list)


def _client(service: str, endpoint_url: str) -> Any:
    # The stubs type boto3.client() per literal service name; these are several services.
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def create_stack(
    endpoint_url: str,
    name: str,
    parameters: Mapping[str, str],
    template_file: Path = TEMPLATE_FILE,
    timeout: float = 60.0,
) -> Stack:
    """Create the stack on the moto server at `endpoint_url`, wait for CREATE_COMPLETE,
    then apply what moto's CloudFormation skipped (see the module docstring)."""
    template = load_template(template_file)
    cloudformation = _client("cloudformation", endpoint_url)
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=template_file.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
    )
    deadline = time.monotonic() + timeout
    while True:
        description = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        status = description["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if not status.endswith("_IN_PROGRESS"):
            reason = description.get("StackStatusReason", "no reason given")
            raise StackError(f"stack {name} ended in {status}: {reason}")
        if time.monotonic() > deadline:
            raise StackError(f"stack {name} still {status} after {timeout:.0f} s")
        time.sleep(0.1)

    resources = cloudformation.describe_stack_resources(StackName=name)["StackResources"]
    # moto lists a resource it skipped without a logical id; those are the ones to complete.
    physical_ids = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources
        if "LogicalResourceId" in r and "PhysicalResourceId" in r
    }
    declared = template.get("Parameters", {})
    resolved_parameters = {k: str(v.get("Default", "")) for k, v in declared.items()}
    resolved_parameters.update({k: str(v) for k, v in parameters.items()})
    stack = Stack(
        name=name,
        template=template,
        parameters=resolved_parameters,
        physical_ids=physical_ids,
        outputs={o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])},
        account_id=_client("sts", endpoint_url).get_caller_identity()["Account"],
        skipped_by_cloudformation=[
            logical_id for logical_id in template["Resources"] if logical_id not in physical_ids
        ],
    )
    complete_stack(stack, endpoint_url)
    return stack


# --- resolving intrinsics for the properties applied by hand --------------------------


def _resource_name(stack: Stack, logical_id: str) -> str:
    """The resource's name, whether moto created it (physical id) or it names itself."""
    if logical_id in stack.physical_ids:
        physical = stack.physical_ids[logical_id]
        # A queue's physical id is its URL; its name is the last path segment.
        return physical.rsplit("/", 1)[-1]
    raise StackError(f"cannot resolve a reference to {logical_id}: moto did not create it")


def _get_att(stack: Stack, logical_id: str, attribute: str) -> str:
    kind = stack.template["Resources"][logical_id]["Type"]
    name = _resource_name(stack, logical_id)
    arns = {
        "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
        "AWS::SQS::Queue": f"arn:aws:sqs:{stack.region}:{stack.account_id}:{name}",
        "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{stack.region}:{stack.account_id}:table/{name}",
    }
    if attribute == "Arn" and kind in arns:
        return arns[kind]
    if attribute == "QueueName" and kind == "AWS::SQS::Queue":
        return name
    raise StackError(f"dev/local/infra.py cannot resolve !GetAtt {logical_id}.{attribute} yet")


def _ref(stack: Stack, name: str) -> str:
    pseudo = {
        "AWS::AccountId": stack.account_id,
        "AWS::Region": stack.region,
        "AWS::StackName": stack.name,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }
    if name in pseudo:
        return pseudo[name]
    if name in stack.parameters:
        return stack.parameters[name]
    return _resource_name(stack, name)


def _sub(stack: Stack, text: str, variables: Mapping[str, str]) -> str:
    out, rest = [], text
    while "${" in rest:
        before, _, after = rest.partition("${")
        expression, _, rest = after.partition("}")
        out.append(before)
        if expression.startswith("!"):
            out.append("${" + expression[1:] + "}")
        elif expression in variables:
            out.append(variables[expression])
        elif "." in expression and not expression.startswith("AWS::"):
            logical_id, attribute = expression.split(".", 1)
            out.append(_get_att(stack, logical_id, attribute))
        else:
            out.append(_ref(stack, expression))
    return "".join(out) + rest


def resolve(stack: Stack, value: Any) -> Any:
    """`value` with Ref, Fn::GetAtt and Fn::Sub replaced by what they stand for here."""
    if isinstance(value, list):
        return [resolve(stack, v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return _ref(stack, value["Ref"])
    if set(value) == {"Fn::GetAtt"}:
        logical_id, attribute = value["Fn::GetAtt"]
        return _get_att(stack, logical_id, attribute)
    if set(value) == {"Fn::Sub"}:
        argument = value["Fn::Sub"]
        if isinstance(argument, str):
            return _sub(stack, argument, {})
        text, variables = argument
        return _sub(stack, text, {k: str(resolve(stack, v)) for k, v in variables.items()})
    if set(value) == {"Fn::If"}:
        condition, if_true, if_false = value["Fn::If"]
        return resolve(stack, if_true if condition_holds(stack, condition) else if_false)
    if len(value) == 1 and next(iter(value)).startswith("Fn::"):
        raise StackError(f"dev/local/infra.py cannot resolve {next(iter(value))} yet")
    return {k: resolve(stack, v) for k, v in value.items()}


def condition_holds(stack: Stack, name: str) -> bool:
    """The value of a condition of the template's Conditions section."""
    return _evaluate(stack, stack.template.get("Conditions", {})[name])


def _evaluate(stack: Stack, expression: Any) -> bool:
    (function, argument), *rest = expression.items()
    if rest:
        raise StackError(f"not a condition function: {expression}")
    if function == "Condition":
        return condition_holds(stack, argument)
    if function == "Fn::Equals":
        left, right = (resolve(stack, a) for a in argument)
        return bool(str(left) == str(right))
    if function == "Fn::Not":
        return not _evaluate(stack, argument[0])
    raise StackError(f"dev/local/infra.py cannot evaluate {function} in a condition yet")


# --- applying what moto's CloudFormation skipped ---------------------------------------


def _complete_table(stack: Stack, clients: _Clients, name: str, props: dict[str, Any]) -> None:
    dynamodb = clients("dynamodb")
    if "TimeToLiveSpecification" in props:
        spec = props["TimeToLiveSpecification"]
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={
                "AttributeName": spec["AttributeName"],
                "Enabled": _bool(spec["Enabled"]),
            },
        )
    if "PointInTimeRecoverySpecification" in props:
        enabled = props["PointInTimeRecoverySpecification"].get("PointInTimeRecoveryEnabled")
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": _bool(enabled)},
        )


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule of CloudFormation's LifecycleConfiguration in the S3 API's shape."""
    out: dict[str, Any] = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
    unknown = set(rule) - {
        "Id",
        "Status",
        "Prefix",
        "ExpirationInDays",
        "AbortIncompleteMultipartUpload",
    }
    if unknown:
        raise StackError(
            f"dev/local/infra.py does not apply lifecycle rule keys {sorted(unknown)} yet"
        )
    return out


def _complete_bucket(stack: Stack, clients: _Clients, name: str, props: dict[str, Any]) -> None:
    s3 = clients("s3")
    if "PublicAccessBlockConfiguration" in props:
        block = {k: _bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()}
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if "LifecycleConfiguration" in props:
        rules = [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})


def _create_alarm(stack: Stack, clients: _Clients, props: dict[str, Any]) -> None:
    numbers: dict[str, Callable[[Any], Any]] = {
        "Period": int,
        "EvaluationPeriods": int,
        "DatapointsToAlarm": int,
        "Threshold": float,
    }
    arguments = {k: numbers.get(k, _same)(v) for k, v in props.items()}
    arguments.setdefault("AlarmName", f"{stack.name}-alarm")
    clients("cloudwatch").put_metric_alarm(**arguments)


def _same(value: Any) -> Any:
    return value


def _bool(value: Any) -> bool:
    # YAML gives booleans, but a template may also say "true" as a string.
    return value if isinstance(value, bool) else str(value).lower() == "true"


class _Clients:
    """boto3 clients for the moto server, made on first use."""

    def __init__(self, endpoint_url: str) -> None:
        self._endpoint_url = endpoint_url
        self._made: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = _client(service, self._endpoint_url)
        return self._made[service]


def complete_stack(stack: Stack, endpoint_url: str) -> None:
    """Apply the template's properties and resources that moto's CloudFormation skips."""
    clients = _Clients(endpoint_url)
    for logical_id, resource in stack.template["Resources"].items():
        if "Condition" in resource:
            raise StackError(f"dev/local/infra.py does not evaluate Conditions yet ({logical_id})")
        kind = resource["Type"]
        if kind in NOT_APPLIED_LOCALLY:
            continue
        props = resolve(stack, resource.get("Properties", {}))
        if kind == "AWS::DynamoDB::Table":
            _complete_table(stack, clients, _resource_name(stack, logical_id), props)
        elif kind == "AWS::S3::Bucket":
            _complete_bucket(stack, clients, _resource_name(stack, logical_id), props)
        elif logical_id not in stack.skipped_by_cloudformation:
            continue
        elif kind == "AWS::CloudWatch::Alarm":
            _create_alarm(stack, clients, props)
        else:
            raise StackError(
                f"moto's CloudFormation skipped {logical_id} ({kind}) and dev/local/infra.py "
                "does not create that type by hand yet"
            )
