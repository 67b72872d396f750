"""`make deploy` and `make destroy`: the infra stack on CloudFormation, the Chalice app on top.

    python -m dev.deploy deploy    --stage prod
    python -m dev.deploy destroy   --stage prod [--yes]
    python -m dev.deploy configure --stage prod [--one-stack] [--account-id ID] [--region R]

deploy creates or updates the CloudFormation stack `longtask-<stage>` from
infra/template.yaml, with parameters taken from the stage in .chalice/config.json (attempts,
retention, queue visibility from the functions' timeouts), waits for it, and writes its
Outputs into the stage: the four LONGTASK_* resource names into environment_variables and
the resource ARNs into .chalice/policy-<stage>-<function>.json. Then it runs
`chalice deploy --stage <stage>`.

deploy then applies what Chalice cannot (dev/deploy/api_stage.py): the stage's throttle,
its usage plan, API access logs and the API function's log retention. The stack is created
with termination protection.

destroy refuses to start without .chalice/deployed/<stage>.json (Chalice's record of the
API and functions), asks, runs `chalice delete --stage <stage>`, turns off the stack's
termination protection and deletes it. The table and the bucket stay (DeletionPolicy:
Retain): it names them and says how to remove them.

The dev stage is the local stack's: deploy and configure refuse it for any account but
moto's, so that its committed policy files never name a real account.

configure writes what deploy would, without creating anything: the names that the
template gives with Stage=<stage> in the credentials' account (or --account-id) and
region, and the policies. With --one-stack it prepares the one-stack variant,
`chalice package --stage <stage> --merge-template infra/template.yaml out/`: the policies
then come in CloudFormation form (references to the merged template's resources), which
`chalice deploy` cannot use; `deploy` rewrites them.

Needs only AWS credentials and a region in the environment (AWS_PROFILE, or
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; AWS_REGION or AWS_DEFAULT_REGION).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chalicelib.longtask.deploy import stage as longtask_stage
from chalicelib.longtask.deploy.cli import credentials_account
from chalicelib.longtask.errors import ConfigError
from dev import stage
from dev.deploy import api_stage, policies
from dev.local.stack import stack_parameters
from dev.stage import CONFIG_FILE, ROOT, TEMPLATE_FILE

# Long enough for the slowest resource (a table with an index takes a few minutes).
WAIT_SECONDS = 30 * 60
WAIT_DELAY = 5
# The stage of `make run`, configured for moto's account.
LOCAL_STAGE = "dev"


class DeployError(RuntimeError):
    """What went wrong, in words that say what to do."""


def say(message: str) -> None:
    print(f"[deploy] {message}", file=sys.stderr, flush=True)


def stack_name(stage_name: str) -> str:
    return f"longtask-{stage_name}"


# --- what the stage asks for ------------------------------------------------------------


def parameters_for(stage_name: str) -> dict[str, str]:
    """The infra template's parameters that the stage's config implies."""
    settings = stage.environment("worker", stage_name)
    worker_timeout = stage.lambda_timeout("worker", stage_name)
    parameters = stack_parameters(settings, worker_timeout)
    parameters["Stage"] = stage_name
    dead_letters_timeout = stage.lambda_timeout("dead_letters", stage_name)
    parameters["DeadLetterVisibilityTimeout"] = str(math.ceil(6 * dead_letters_timeout))
    # What the alarms watch: the API and the worker by the names `chalice deploy` gives.
    api = stage.chalice_config("api_handler", stage_name)
    parameters["AppName"] = api.app_name
    parameters["ApiStageName"] = api.api_gateway_stage
    return parameters


def check_stage(stage_name: str, config_file: Path = CONFIG_FILE) -> None:
    config = json.loads(config_file.read_text())
    if stage_name not in config.get("stages", {}):
        known = ", ".join(sorted(config.get("stages", {})))
        raise DeployError(f"{config_file} has no stage {stage_name!r} (it has: {known})")
    if not stage_name.replace("-", "").isalnum() or stage_name != stage_name.lower():
        raise DeployError(f"stage {stage_name!r}: use lower-case letters, digits and '-'")


# --- writing the stage's names and policies ---------------------------------------------


def write_stage(
    stage_name: str,
    outputs: Mapping[str, str],
    account_id: str,
    region: str,
    partition: str = "aws",
    config_file: Path = CONFIG_FILE,
    form: str = policies.LITERAL,
) -> list[Path]:
    """Writes the resource names into the stage's environment_variables and a policy
    file per function, literal or in CloudFormation form; returns the files written."""
    try:
        return longtask_stage.write_stage(
            config_file, stage_name, outputs, account_id, region, partition, form
        )
    except ConfigError as error:
        raise DeployError(str(error)) from None


# --- AWS --------------------------------------------------------------------------------


class Aws:
    """The caller's AWS session: the account, region and partition that everything uses."""

    def __init__(self, region: str | None = None) -> None:
        import boto3

        # boto3 reads AWS_DEFAULT_REGION and the profile; Lambda and most CI set AWS_REGION.
        region = region or os.environ.get("AWS_REGION") or None
        self.session: Any = boto3.session.Session(region_name=region)
        if not self.session.region_name:
            raise DeployError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)")
        self.region: str = self.session.region_name
        self.partition: str = self.session.get_partition_for_region(self.region)
        self._account_id: str | None = None

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            try:
                self._account_id = credentials_account(self.session)
            except ConfigError as error:
                raise DeployError(str(error)) from None
        return self._account_id

    def client(self, service: str) -> Any:
        return self.session.client(service)


def _stack_status(cloudformation: Any, name: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return str(stacks[0]["StackStatus"])


def _outputs(cloudformation: Any, name: str) -> dict[str, str]:
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _wait(cloudformation: Any, name: str, waiter_name: str) -> None:
    from botocore.exceptions import WaiterError

    waiter = cloudformation.get_waiter(waiter_name)
    try:
        waiter.wait(
            StackName=name,
            WaiterConfig={"Delay": WAIT_DELAY, "MaxAttempts": WAIT_SECONDS // WAIT_DELAY},
        )
    except WaiterError as error:
        reasons = [
            f"  {e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
            for e in cloudformation.describe_stack_events(StackName=name)["StackEvents"][:50]
            if e["ResourceStatus"].endswith("_FAILED")
        ]
        details = "\n".join(reversed(reasons)) or f"  {error}"
        raise DeployError(f"stack {name} did not get there ({waiter_name}):\n{details}") from None


def ensure_stack(cloudformation: Any, name: str, parameters: Mapping[str, str]) -> dict[str, str]:
    """Creates the stack or updates it to the template; returns its Outputs."""
    from botocore.exceptions import ClientError

    arguments: dict[str, Any] = {
        "StackName": name,
        "TemplateBody": TEMPLATE_FILE.read_text(),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Tags": [{"Key": "app", "Value": "longtask"}, {"Key": "stack", "Value": name}],
    }
    status = _stack_status(cloudformation, name)
    if status is None:
        say(f"creating stack {name} with {dict(parameters)}")
        # Termination protection: deleting the stack takes `make destroy`, which asks first.
        cloudformation.create_stack(**arguments, EnableTerminationProtection=True)
        _wait(cloudformation, name, "stack_create_complete")
    elif status == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"stack {name} failed to create before and cannot be updated; see its events in "
            "the CloudFormation console, then `make destroy` this stage and deploy again"
        )
    elif status.endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {name} is busy ({status}); deploy again once it is done")
    else:
        say(f"updating stack {name} ({status}) with {dict(parameters)}")
        cloudformation.update_termination_protection(
            StackName=name, EnableTerminationProtection=True
        )
        try:
            cloudformation.update_stack(**arguments)
        except ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
            say(f"stack {name} is up to date")
        else:
            _wait(cloudformation, name, "stack_update_complete")
    return _outputs(cloudformation, name)


def chalice(arguments: Sequence[str], region: str) -> None:
    """Runs the venv's Chalice CLI on this project, in the deploy's region."""
    command = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())"]
    command += ["--project-dir", str(ROOT), *arguments]
    # Chalice's boto3 session reads AWS_DEFAULT_REGION, not AWS_REGION.
    env = {**os.environ, "AWS_DEFAULT_REGION": region}
    say("running chalice " + " ".join(arguments))
    if subprocess.run(command, cwd=ROOT, env=env, check=False).returncode != 0:
        raise DeployError(f"chalice {' '.join(arguments)} failed (its output is above)")


# --- the commands ---------------------------------------------------------------------


def check_real_account(stage_name: str, account_id: str) -> None:
    """The dev stage is the local stack's: its policy files are committed for moto's
    account, and tests compare them. A real account gets a stage of its own."""
    if stage_name == LOCAL_STAGE and account_id != policies.LOCAL_ACCOUNT_ID:
        raise DeployError(
            f"stage {LOCAL_STAGE} is the local stack's (account {policies.LOCAL_ACCOUNT_ID}); "
            f"nothing was written. For account {account_id} add a stage of its own to "
            f'{CONFIG_FILE.relative_to(ROOT)} (copy "{LOCAL_STAGE}" as, say, "test") and use '
            "--stage test"
        )


def deploy(stage_name: str, aws: Aws) -> None:
    check_stage(stage_name)
    check_real_account(stage_name, aws.account_id)
    name = stack_name(stage_name)
    say(f"account {aws.account_id}, region {aws.region}, stack {name}")
    outputs = ensure_stack(aws.client("cloudformation"), name, parameters_for(stage_name))
    for path in write_stage(stage_name, outputs, aws.account_id, aws.region, aws.partition):
        say(f"wrote {path.relative_to(ROOT)}")
    chalice(["deploy", "--stage", stage_name], aws.region)
    api_stage.apply(
        stage_name,
        aws.client("apigateway"),
        aws.client("logs"),
        aws.region,
        aws.account_id,
        aws.partition,
        say,
    )
    say(
        f"done. The stage's alarms go to the SNS topic {outputs.get('AlarmTopicArn')}: "
        "subscribe to it (see the README). Commit .chalice/, with "
        f"{api_stage.deployed_file(stage_name).relative_to(ROOT)}: without it the next deploy "
        "creates a new API (a new URL) and `make destroy` refuses to run."
    )


def destroy(stage_name: str, aws: Aws, assume_yes: bool = False) -> None:
    check_stage(stage_name)
    deployed = api_stage.deployed_file(stage_name)
    if not deployed.exists():
        # Without Chalice's record `chalice delete` removes nothing, and deleting only the
        # stack would leave the API and the functions running on a stack that is gone.
        raise DeployError(
            f"no {deployed.relative_to(ROOT)}, so Chalice does not know what it deployed for "
            f"stage {stage_name}; nothing was deleted. Restore it (git checkout, or the "
            "machine that deployed), or delete the REST API and the functions "
            f"{policies.app_name()}-{stage_name}* in the console first, then run this again"
        )
    name = stack_name(stage_name)
    cloudformation = aws.client("cloudformation")
    status = _stack_status(cloudformation, name)
    what = f"the API and functions of stage {stage_name} ({deployed.relative_to(ROOT)})"
    if status is not None:
        what += f" and stack {name}"
    if not assume_yes:
        if not sys.stdin.isatty():
            raise DeployError("destroy asks first; without a terminal pass --yes")
        answer = input(
            f"Delete {what} in account {aws.account_id}, region {aws.region}? "
            f"Type the stage name to confirm: "
        )
        if answer.strip() != stage_name:
            raise DeployError("not confirmed; nothing was deleted")
    chalice(["delete", "--stage", stage_name], aws.region)
    if status is None:
        say(f"there is no stack {name}")
        return
    outputs = _outputs(cloudformation, name)
    say(f"turning off the termination protection of stack {name}, then deleting it")
    cloudformation.update_termination_protection(StackName=name, EnableTerminationProtection=False)
    cloudformation.delete_stack(StackName=name)
    _wait(cloudformation, name, "stack_delete_complete")
    table, bucket = outputs.get("TableName", "?"), outputs.get("BucketName", "?")
    say(
        f"stack {name} is deleted. Kept on purpose (DeletionPolicy: Retain), with the task "
        f"records and results in them:\n"
        f"  DynamoDB table  {table}\n"
        f"  S3 bucket       {bucket}\n"
        "Delete them when their data is no longer needed, and before deploying this stage "
        "again (the stack creates them by these names); the table has deletion protection:\n"
        f"  aws dynamodb update-table --table-name {table} --no-deletion-protection-enabled "
        f"--region {aws.region}\n"
        f"  aws dynamodb delete-table --table-name {table} --region {aws.region}\n"
        f"  aws s3 rb s3://{bucket} --force"
    )


def configure(
    stage_name: str, aws: Aws, account_id: str | None = None, one_stack: bool = False
) -> None:
    check_stage(stage_name)
    account = account_id or aws.account_id
    check_real_account(stage_name, account)
    outputs = policies.expected_outputs(stage_name, account, aws.region, aws.partition)
    form = policies.CLOUDFORMATION if one_stack else policies.LITERAL
    for path in write_stage(stage_name, outputs, account, aws.region, aws.partition, form=form):
        say(f"wrote {path.relative_to(ROOT)}")
    say(
        f"stage {stage_name} names what infra/template.yaml creates with Stage={stage_name} "
        f"in account {account}, region {aws.region}"
    )
    if one_stack:
        say(
            "next:\n"
            f"  chalice package --stage {stage_name} --merge-template infra/template.yaml out/\n"
            "  aws cloudformation package --template-file out/sam.yaml --s3-bucket <artifacts> "
            "--output-template-file out/packaged.yaml\n"
            "  aws cloudformation deploy --template-file out/packaged.yaml --stack-name "
            "<name> --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND "
            f"--parameter-overrides {_overrides(parameters_for(stage_name))}"
        )


def _overrides(parameters: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in parameters.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["deploy", "destroy", "configure"])
    parser.add_argument("--stage", required=True, help="a stage of .chalice/config.json")
    parser.add_argument("--region", help="default: AWS_REGION / AWS_DEFAULT_REGION / profile")
    parser.add_argument("--account-id", help="configure only: instead of asking STS")
    parser.add_argument(
        "--one-stack",
        action="store_true",
        help="configure only: policies for chalice package --merge-template",
    )
    parser.add_argument("--yes", action="store_true", help="destroy only: do not ask")
    args = parser.parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        aws = Aws(args.region)
        if args.command == "deploy":
            deploy(args.stage, aws)
        elif args.command == "destroy":
            destroy(args.stage, aws, args.yes)
        else:
            configure(args.stage, aws, args.account_id, args.one_stack)
    except (DeployError, BotoCoreError, ClientError) as error:
        say(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
