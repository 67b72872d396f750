"""What CloudFormation would get: `chalice package --stage prod`, alone and merged with the
infra template (the one-stack variant), run offline on a copy of the project.

The prod stage is written first as `python -m dev.deploy configure --stage prod` would
for account 123456789012 in us-east-1; nothing here talks to AWS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from dev.deploy import cli as deploy
from dev.deploy import policies
from dev.local.infra import load_template
from dev.stage import ROOT

STAGE = "prod"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
FUNCTIONS = policies.CLOUDFORMATION_IDS  # function → logical id in the packaged template
INFRA_IDS = {"TableArn": "Tasks", "QueueArn": "TaskQueue", "DeadLetterQueueArn": "DeadLetterQueue"}


def _copy_project(target: Path, form: str) -> Path:
    for name in ("app.py", "requirements.txt"):
        shutil.copy(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("chalicelib", "infra"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    (target / ".chalice").mkdir()
    shutil.copy(ROOT / ".chalice" / "config.json", target / ".chalice" / "config.json")
    cache = ROOT / ".chalice" / "deployments"
    if cache.is_dir():
        # Chalice's own cache of the dependencies, keyed by requirements.txt: without it
        # the first package runs `pip download` (PyPI or pip's configured local index).
        shutil.copytree(cache, target / ".chalice" / "deployments")
    outputs = policies.expected_outputs(STAGE, ACCOUNT_ID, REGION)
    deploy.write_stage(
        STAGE,
        outputs,
        ACCOUNT_ID,
        REGION,
        config_file=target / ".chalice" / "config.json",
        form=form,
    )
    return target


def _package(project: Path, *extra: str) -> Path:
    out = project / "out"
    # Only what packaging needs: no credentials, no endpoint, none of a test's LONGTASK_*.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "LONGTASK_")) and k not in ("AWS_PROFILE",)
    }
    env.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    command = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())"]
    command += ["package", "--stage", STAGE, *extra, str(out)]
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def one_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`chalice package --stage prod --merge-template infra/template.yaml out/`."""
    project = _copy_project(tmp_path_factory.mktemp("one-stack"), policies.CLOUDFORMATION)
    out = _package(project, "--merge-template", "infra/template.yaml")
    return out


@pytest.fixture(scope="module")
def template(one_stack: Path) -> dict[str, Any]:
    # A YAML merge template makes Chalice write YAML.
    return load_template(one_stack / "sam.yaml")


@pytest.fixture(scope="module")
def stage_config() -> dict[str, Any]:
    return dict(json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][STAGE])


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or "cfn-lint"
    return subprocess.run([cfn_lint, str(path)], capture_output=True, text=True, timeout=300)


def test_the_one_stack_template_passes_cfn_lint(one_stack: Path) -> None:
    result = cfn_lint(one_stack / "sam.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_chalice_deploy_policies_package_and_pass_cfn_lint(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The literal form, as `make deploy` leaves the stage: a plain `chalice package` of it.
    project = _copy_project(tmp_path_factory.mktemp("literal"), policies.LITERAL)
    out = _package(project)
    result = cfn_lint(out / "sam.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_queue_feeds_its_function_one_message_at_a_time(template: dict[str, Any]) -> None:
    names = policies.expected_outputs(STAGE, ACCOUNT_ID, REGION)
    resources = template["Resources"]
    for function, queue in (("Worker", "QueueName"), ("DeadLetters", "DeadLetterQueueName")):
        (event,) = resources[function]["Properties"]["Events"].values()
        assert event["Type"] == "SQS"
        source = event["Properties"]
        # Batch size 1: the handler keeps a message by raising (no partial batch
        # responses, so no FunctionResponseTypes), which must not re-run other tasks.
        assert source["BatchSize"] == 1
        assert "FunctionResponseTypes" not in source
        if function == "Worker":
            # The poller never runs more workers than are reserved: a throttled
            # delivery would count as a receive and push tasks to the DLQ unrun.
            reserved = resources[function]["Properties"]["ReservedConcurrentExecutions"]
            assert source["ScalingConfig"] == {"MaximumConcurrency": reserved}
        arn = source["Queue"]["Fn::Sub"]
        assert arn.endswith(f":{names[queue]}"), arn
        # The very queue that the merged infra template creates for this stage.
        infra_queue = "TaskQueue" if queue == "QueueName" else "DeadLetterQueue"
        assert resources[infra_queue]["Properties"]["QueueName"] == {
            "Fn::Sub": names[queue].replace(f"-{STAGE}-", "-${Stage}-")
        }


def test_the_functions_get_the_stages_settings_names_and_timeouts(
    template: dict[str, Any], stage_config: dict[str, Any]
) -> None:
    names = policies.expected_outputs(STAGE, ACCOUNT_ID, REGION)
    for function, logical_id in FUNCTIONS.items():
        properties = template["Resources"][logical_id]["Properties"]
        variables = properties["Environment"]["Variables"]
        for key, value in stage_config["environment_variables"].items():
            assert variables[key] == value, f"{logical_id}: {key}"
        for output, variable in policies.OUTPUT_VARIABLES.items():
            assert variables[variable] == names[output], f"{logical_id}: {variable}"
        settings = stage_config["lambda_functions"][function]
        assert properties["Timeout"] == settings["lambda_timeout"]
        assert properties["MemorySize"] == settings["lambda_memory_size"]
        expected_reserved = settings.get("reserved_concurrency")
        assert properties.get("ReservedConcurrentExecutions") == expected_reserved
    worker = template["Resources"]["Worker"]["Properties"]
    assert worker["Timeout"] == 900 and worker["ReservedConcurrentExecutions"] >= 1


def _references(value: Any) -> set[str]:
    """The logical ids that `${Id.Attribute}` in Fn::Sub strings point at."""
    text = json.dumps(value)
    return set(re.findall(r"\$\{([A-Za-z0-9]+)\.[A-Za-z]+\}", text))


def test_the_roles_grant_on_the_merged_infra_resources_what_make_deploy_grants(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    names = policies.expected_outputs(STAGE, ACCOUNT_ID, REGION)
    stack = "longtask-prod-app"
    for function, logical_id in FUNCTIONS.items():
        role = resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        (inline,) = resources[role]["Properties"]["Policies"]
        document = inline["PolicyDocument"]
        # References, so that CloudFormation creates the role after what it names.
        referenced = _references(document)
        assert referenced and referenced <= set(resources), referenced
        # Resolved for one account, the same grants as the policy `make deploy` writes.
        resolved = json.dumps(document)
        for output, infra_id in {**INFRA_IDS, "BucketArn": "Results"}.items():
            resolved = resolved.replace("${" + infra_id + ".Arn}", names[output])
        for pseudo, value in {
            "${AWS::Partition}": "aws",
            "${AWS::Region}": REGION,
            "${AWS::AccountId}": ACCOUNT_ID,
            "${AWS::StackName}": stack,
        }.items():
            resolved = resolved.replace(pseudo, value)
        one_stack = {
            s["Sid"]: (s["Action"], [r["Fn::Sub"] for r in s["Resource"]])
            for s in json.loads(resolved)["Statement"]
        }
        literal = policies.policy_document(
            function, STAGE, names, ACCOUNT_ID, REGION, app=policies.app_name()
        )
        two_stacks = {s["Sid"]: (s["Action"], s["Resource"]) for s in literal["Statement"]}
        assert one_stack.keys() == two_stacks.keys()
        for sid, (actions, arns) in two_stacks.items():
            if sid == "OwnLogs":
                # CloudFormation names the function: <stack>-<logical id>-<suffix>.
                group = f"log-group:/aws/lambda/{stack}-{logical_id}-*"
                assert all(group in arn for arn in one_stack[sid][1]), one_stack[sid]
            else:
                assert one_stack[sid] == (actions, arns), sid


def test_the_stage_asks_the_infra_template_for_what_its_functions_need(
    template: dict[str, Any], stage_config: dict[str, Any]
) -> None:
    parameters = deploy.parameters_for(STAGE)
    declared = template["Parameters"]
    assert set(parameters) <= set(declared)
    assert {k for k, v in declared.items() if "Default" not in v} <= set(parameters)
    functions = stage_config["lambda_functions"]
    variables = stage_config["environment_variables"]
    # AWS: a queue's visibility at least 6 x the timeout of the function it feeds.
    assert int(parameters["VisibilityTimeout"]) >= 6 * functions["worker"]["lambda_timeout"]
    assert (
        int(parameters["DeadLetterVisibilityTimeout"])
        >= 6 * functions["dead_letters"]["lambda_timeout"]
    )
    assert parameters["MaxAttempts"] == variables["LONGTASK_MAX_ATTEMPTS"]
    assert parameters["RetentionDays"] == variables["LONGTASK_RETENTION_DAYS"]
    assert parameters["Stage"] == STAGE


def test_the_package_holds_the_app_and_no_development_tooling(one_stack: Path) -> None:
    with zipfile.ZipFile(one_stack / "deployment.zip") as package:
        names = package.namelist()
    assert "app.py" in names and "chalicelib/longtask/runner.py" in names
    assert any(name.startswith("jinja2/") for name in names)
    assert not [n for n in names if n.startswith(("dev/", "tests/", "infra/", ".chalice/"))]


def test_the_queue_functions_logs_expire_after_the_stages_retention(
    template: dict[str, Any], stage_config: dict[str, Any]
) -> None:
    # Without a log group in the template, Lambda creates one that never expires.
    resources = template["Resources"]
    groups = {
        r["Properties"]["LogGroupName"]["Fn::Sub"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    for function in ("worker", "dead_letters"):
        group = groups[f"/aws/lambda/${{{FUNCTIONS[function]}}}"]
        days = stage_config["lambda_functions"][function]["log_retention_in_days"]
        assert group["RetentionInDays"] == days == 30
    # Chalice 1.34 packages the API handler's group as a reference to a resource that does
    # not exist (`${ApiHandler}`), so the stage leaves it out; every group names a function.
    assert all(name.removeprefix("/aws/lambda/${")[:-1] in resources for name in groups)
