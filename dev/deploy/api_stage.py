"""What `make deploy` sets on the API after `chalice deploy`: limits, access logs, log retention.

Chalice 1.34 deploys the REST API and its stage but offers none of these, so they are
applied here with the API Gateway and CloudWatch Logs APIs, from the stage's
`"operations"` block of .chalice/config.json (Chalice ignores keys it does not know):

    "operations": {"throttle_rate": 50, "throttle_burst": 100, "quota_per_day": 100000,
                   "access_logs": true, "log_retention_in_days": 30}

Every step is idempotent, so each deploy puts the stage back to what the config says.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dev.stage import CONFIG_FILE, ROOT

# One line per request, JSON, without the query string or any header that could carry a
# credential: the owner cookie and status URLs stay out of the logs.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "time": "$context.requestTime",
        "method": "$context.httpMethod",
        "resource": "$context.resourcePath",
        "status": "$context.status",
        "length": "$context.responseLength",
        "latency": "$context.responseLatency",
        "error": "$context.error.messageString",
    }
)


@dataclass(frozen=True)
class Operations:
    """A stage's limits and logging. Defaults: what a small public site needs."""

    throttle_rate: float = 50.0  # requests per second over the whole stage
    throttle_burst: int = 100
    quota_per_day: int = 100_000  # per API key of the usage plan
    access_logs: bool = True
    log_retention_in_days: int = 30

    @classmethod
    def of_stage(cls, stage_name: str, config_file: Path = CONFIG_FILE) -> Operations:
        config = json.loads(config_file.read_text())
        values = config["stages"][stage_name].get("operations", {})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{config_file}: stage {stage_name} has unknown operations {unknown}")
        return cls(**values)


def deployed_file(stage_name: str) -> Path:
    """Chalice's record of what it deployed for the stage (its API id, its functions)."""
    return ROOT / ".chalice" / "deployed" / f"{stage_name}.json"


def deployed_resource(stage_name: str, name: str) -> dict[str, Any]:
    """A resource of the stage's deployed record (`rest_api`, `api_handler`, ...)."""
    record = json.loads(deployed_file(stage_name).read_text())
    for resource in record.get("resources", []):
        if resource.get("name") == name:
            return dict(resource)
    raise KeyError(f"{deployed_file(stage_name)} names no {name}")


def keep_logs(logs: Any, group: str, days: int) -> None:
    """Creates the log group if Lambda or API Gateway has not yet, then sets its retention."""
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    logs.put_retention_policy(logGroupName=group, retentionInDays=days)


def apply(
    stage_name: str,
    apigateway: Any,
    logs: Any,
    region: str,
    account_id: str,
    partition: str,
    say: Callable[[str], None],
    config_file: Path = CONFIG_FILE,
) -> None:
    operations = Operations.of_stage(stage_name, config_file)
    config = json.loads(config_file.read_text())
    api_stage = config["stages"][stage_name].get("api_gateway_stage", "api")
    api_id = deployed_resource(stage_name, "rest_api")["rest_api_id"]
    api_function = deployed_resource(stage_name, "api_handler")["lambda_arn"].rsplit(":", 1)[-1]

    # Chalice names the API function's log group after the function's resource name, not
    # after the function, so the group that Lambda writes to would never expire.
    keep_logs(logs, f"/aws/lambda/{api_function}", operations.log_retention_in_days)
    say(f"logs of {api_function} kept {operations.log_retention_in_days} days")

    # The stage's throttle limits every caller together; without it one client can use the
    # account's whole API Gateway and Lambda concurrency.
    patches = [
        {
            "op": "replace",
            "path": "/*/*/throttling/rateLimit",
            "value": str(operations.throttle_rate),
        },
        {
            "op": "replace",
            "path": "/*/*/throttling/burstLimit",
            "value": str(operations.throttle_burst),
        },
    ]
    if operations.access_logs:
        if apigateway.get_account().get("cloudwatchRoleArn"):
            group = f"/aws/apigateway/{config['app_name']}-{stage_name}-access"
            keep_logs(logs, group, operations.log_retention_in_days)
            arn = f"arn:{partition}:logs:{region}:{account_id}:log-group:{group}"
            patches += [
                {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": arn},
                {"op": "replace", "path": "/accessLogSettings/format", "value": ACCESS_LOG_FORMAT},
            ]
            say(f"access logs of the API to {group}")
        else:
            say(
                "no access logs: API Gateway has no CloudWatch Logs role in this account and "
                "region. Set one once (README, Deploy), then deploy again"
            )
    apigateway.update_stage(restApiId=api_id, stageName=api_stage, patchOperations=patches)
    say(
        f"stage {api_stage} throttled to {operations.throttle_rate:g}/s, "
        f"bursts of {operations.throttle_burst}"
    )
    ensure_usage_plan(
        apigateway, f"{config['app_name']}-{stage_name}", api_id, api_stage, operations
    )


def ensure_usage_plan(
    apigateway: Any, name: str, api_id: str, api_stage: str, operations: Operations
) -> str:
    """The stage's usage plan (throttle and daily quota per API key); returns its id."""
    throttle = {"rateLimit": operations.throttle_rate, "burstLimit": operations.throttle_burst}
    quota = {"limit": operations.quota_per_day, "period": "DAY"}
    stage = {"apiId": api_id, "stage": api_stage}
    plans = apigateway.get_usage_plans(limit=500)["items"]
    existing = [p for p in plans if p["name"] == name]
    if not existing:
        plan = apigateway.create_usage_plan(
            name=name, throttle=throttle, quota=quota, apiStages=[stage]
        )
        return str(plan["id"])
    plan = existing[0]
    patches = [
        {"op": "replace", "path": "/throttle/rateLimit", "value": str(throttle["rateLimit"])},
        {"op": "replace", "path": "/throttle/burstLimit", "value": str(throttle["burstLimit"])},
        {"op": "replace", "path": "/quota/limit", "value": str(quota["limit"])},
        {"op": "replace", "path": "/quota/period", "value": "DAY"},
    ]
    if stage not in [{"apiId": s["apiId"], "stage": s["stage"]} for s in plan.get("apiStages", [])]:
        # A new REST API (its record was lost) replaces the old one in the plan.
        patches.append({"op": "add", "path": "/apiStages", "value": f"{api_id}:{api_stage}"})
    apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=patches)
    return str(plan["id"])
