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

destroy runs `chalice delete --stage <stage>`, then deletes the stack. The table and the
bucket stay (DeletionPolicy: Retain): it names them and says how to remove them.

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

from dev import stage
from dev.deploy import policies
from dev.local.stack import stack_parameters
from dev.stage import CONFIG_FILE, ROOT, TEMPLATE_FILE

# Long enough for the slowest resource (a table with an index takes a few minutes).
WAIT_SECONDS = 30 * 60
WAIT_DELAY = 5


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
    missing = [key for key in policies.OUTPUT_VARIABLES if key not in outputs]
    if missing:
        raise DeployError(f"the infra stack has no Outputs {missing}: is it an older template?")
    config = json.loads(config_file.read_text())
    if config.get("autogen_policy", True):
        raise DeployError(f'{config_file}: set "autogen_policy": false (least privilege)')
    stage_config = config["stages"][stage_name]
    variables = stage_config.setdefault("environment_variables", {})
    for output, variable in policies.OUTPUT_VARIABLES.items():
        variables[variable] = outputs[output]
    written = []
    functions = stage_config.setdefault("lambda_functions", {})
    for function in policies.FUNCTIONS:
        file_name = policies.policy_file_name(stage_name, function)
        functions.setdefault(function, {})["iam_policy_file"] = file_name
        if form == policies.CLOUDFORMATION:
            document = policies.cloudformation_policy_document(function)
        else:
            document = policies.policy_document(
                function, stage_name, outputs, account_id, region, partition, config["app_name"]
            )
        path = config_file.parent / file_name
        path.write_text(json.dumps(document, indent=2) + "\n")
        written.append(path)
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    written.append(config_file)
    return written


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
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                identity = self.session.client("sts").get_caller_identity()
            except (BotoCoreError, ClientError) as error:
                raise DeployError(f"no usable AWS credentials: {error}") from None
            self._account_id = str(identity["Account"])
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
        cloudformation.create_stack(**arguments)
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


def deploy(stage_name: str, aws: Aws) -> None:
    check_stage(stage_name)
    name = stack_name(stage_name)
    say(f"account {aws.account_id}, region {aws.region}, stack {name}")
    outputs = ensure_stack(aws.client("cloudformation"), name, parameters_for(stage_name))
    for path in write_stage(stage_name, outputs, aws.account_id, aws.region, aws.partition):
        say(f"wrote {path.relative_to(ROOT)}")
    chalice(["deploy", "--stage", stage_name], aws.region)
    say(
        f"done. Dead letters alarm to the SNS topic {outputs.get('AlarmTopicArn')}: subscribe "
        "to it (see the README). Commit .chalice/ so that the next deploy starts from it."
    )


def destroy(stage_name: str, aws: Aws, assume_yes: bool = False) -> None:
    check_stage(stage_name)
    name = stack_name(stage_name)
    cloudformation = aws.client("cloudformation")
    status = _stack_status(cloudformation, name)
    deployed = ROOT / ".chalice" / "deployed" / f"{stage_name}.json"
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
    if deployed.exists():
        chalice(["delete", "--stage", stage_name], aws.region)
    else:
        say(
            f"no {deployed.relative_to(ROOT)}: Chalice has no record of a deployment of this "
            "stage from this checkout, so there is nothing for `chalice delete` to remove"
        )
    if status is None:
        say(f"there is no stack {name}")
        return
    outputs = _outputs(cloudformation, name)
    say(f"deleting stack {name}")
    cloudformation.delete_stack(StackName=name)
    _wait(cloudformation, name, "stack_delete_complete")
    table, bucket = outputs.get("TableName", "?"), outputs.get("BucketName", "?")
    say(
        f"stack {name} is deleted. Kept on purpose (DeletionPolicy: Retain), with the task "
        f"records and results in them:\n"
        f"  DynamoDB table  {table}\n"
        f"  S3 bucket       {bucket}\n"
        "Delete them when their data is no longer needed, and before deploying this stage "
        "again (the stack creates them by these names):\n"
        f"  aws dynamodb delete-table --table-name {table} --region {aws.region}\n"
        f"  aws s3 rb s3://{bucket} --force"
    )


def configure(
    stage_name: str, aws: Aws, account_id: str | None = None, one_stack: bool = False
) -> None:
    check_stage(stage_name)
    account = account_id or aws.account_id
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
