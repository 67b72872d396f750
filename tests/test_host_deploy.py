"""A host app's stage made deployable from its own directory: `python -m longtask policies`
gives each function longtask adds the policy it needs, and `chalice package` of the host
app then gives every role what a task's life calls (no AWS involved)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.longtask.deploy import policies
from dev.stage import ROOT

HOST = ROOT / "examples" / "host_app"
ACCOUNT_ID = "210987654321"
REGION = "eu-west-1"


def host_copy(target: Path) -> Path:
    """The host app alone, where `longtask` is an installed package (not a checkout)."""
    shutil.copy(HOST / "app.py", target / "app.py")
    (target / ".chalice").mkdir()
    shutil.copy(HOST / ".chalice" / "config.json", target / ".chalice" / "config.json")
    return target


def run(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LONGTASK_"))}
    # As if installed: `import longtask` finds the framework, and nothing of this repository.
    env.update(
        PYTHONPATH=str(ROOT / "chalicelib"),
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION=REGION,
    )
    return subprocess.run(
        [sys.executable, *command],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def policies_command(project: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(project, "-m", "longtask", "policies", "--stage", "dev", *extra)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    project = host_copy(tmp_path_factory.mktemp("host"))
    done = policies_command(project, "--account-id", ACCOUNT_ID)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "next: chalice deploy --stage dev" in done.stdout
    chalice = "import sys; from chalice.cli import main; sys.exit(main())"
    out = project / "out"
    package = run(project, "-c", chalice, "package", "--stage", "dev", str(out))
    assert package.returncode == 0, package.stdout + package.stderr
    return project, json.loads((out / "sam.json").read_text())


def test_each_function_gets_longtasks_policy_for_the_hosts_resources(
    packaged: tuple[Path, dict[str, Any]],
) -> None:
    project, _ = packaged
    config = json.loads((project / ".chalice" / "config.json").read_text())
    stage = config["stages"]["dev"]
    assert stage["autogen_policy"] is False
    names = {
        "TableName": "acme-dev-tasks",
        "QueueName": "acme-dev-tasks",
        "DeadLetterQueueName": "acme-dev-dead-letters",
        "BucketName": "acme-dev-results-123456789012",
    }
    outputs = policies.resource_arns(names, ACCOUNT_ID, REGION)
    for function in policies.FUNCTIONS:
        file_name = stage["lambda_functions"][function]["iam_policy_file"]
        written = json.loads((project / ".chalice" / file_name).read_text())
        # The same grants as the demo's, whose every call tests/aws/test_policy.py checks.
        assert written == policies.policy_document(
            function, "dev", outputs, ACCOUNT_ID, REGION, app="acme"
        )
    # The host's own settings stay as they were.
    assert stage["lambda_functions"]["worker"]["lambda_timeout"] == 900


def test_the_packaged_roles_allow_what_a_task_needs(packaged: tuple[Path, dict[str, Any]]) -> None:
    _, template = packaged
    resources = template["Resources"]
    allowed: dict[str, set[tuple[str, str]]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        pairs = set()
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                for action in statement["Action"]:
                    for arn in statement["Resource"]:
                        pairs.add((action, arn))
        allowed[logical_id] = pairs
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/acme-dev-tasks"
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:acme-dev-tasks"
    bucket = "arn:aws:s3:::acme-dev-results-123456789012/results/*"
    roles = {f: resources[f"{policies.CLOUDFORMATION_IDS[f]}"] for f in ("api_handler", "worker")}
    role_of = {
        function: function_resource["Properties"]["Role"]["Fn::GetAtt"][0]
        for function, function_resource in roles.items()
    }
    api, worker = allowed[role_of["api_handler"]], allowed[role_of["worker"]]
    assert {("dynamodb:PutItem", table), ("dynamodb:GetItem", table)} <= api
    assert ("sqs:SendMessage", queue) in api and ("s3:GetObject", bucket) in api
    assert {("dynamodb:UpdateItem", table), ("s3:PutObject", bucket)} <= worker
    assert ("sqs:ReceiveMessage", queue) in worker  # the event source, with the role
    # Least privilege: nothing on every resource.
    assert not any(arn == "*" for pairs in allowed.values() for _, arn in pairs)


def test_a_stage_without_the_resources_names_is_refused_naming_them(tmp_path: Path) -> None:
    project = host_copy(tmp_path)
    config_file = project / ".chalice" / "config.json"
    config = json.loads(config_file.read_text())
    del config["stages"]["dev"]["environment_variables"]["LONGTASK_BUCKET"]
    config_file.write_text(json.dumps(config))
    done = policies_command(project, "--account-id", ACCOUNT_ID)
    assert done.returncode == 2
    assert "LONGTASK_BUCKET" in done.stderr and "Traceback" not in done.stderr
    missing = policies_command(project, "--account-id", ACCOUNT_ID, "--stage", "prod")
    assert missing.returncode == 2 and "no stage 'prod'" in missing.stderr
