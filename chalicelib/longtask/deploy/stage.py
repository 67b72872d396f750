"""A stage of an app's .chalice/config.json made ready for longtask: the resources' names in
its environment, and each of longtask's functions on its own least-privilege policy file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import policies


def _read(config_file: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{config_file} does not exist: run this in the app's directory (beside app.py)"
        ) from None
    except ValueError as error:
        raise ConfigError(f"{config_file} is not JSON: {error}") from None
    return config


def _stage_of(config: dict[str, Any], stage: str, config_file: Path) -> dict[str, Any]:
    stages = config.get("stages") or {}
    if stage not in stages:
        known = ", ".join(sorted(stages)) or "none"
        raise ConfigError(f"{config_file} has no stage {stage!r} (it has: {known})")
    return dict(stages[stage])


def stage_names(config_file: Path, stage: str) -> dict[str, str]:
    """The resources' names that the stage's environment_variables give (the stage's own
    or the file's), as the infra stack's Outputs call them; ConfigError names each one
    missing."""
    config = _read(config_file)
    variables = {
        **(config.get("environment_variables") or {}),
        **(_stage_of(config, stage, config_file).get("environment_variables") or {}),
    }
    missing = [v for v in policies.OUTPUT_VARIABLES.values() if not variables.get(v)]
    if missing:
        raise ConfigError(
            f"{config_file}: stage {stage!r} sets no {', '.join(missing)} in its "
            "environment_variables (the names of the resources that longtask uses)"
        )
    return {output: str(variables[v]) for output, v in policies.OUTPUT_VARIABLES.items()}


def write_stage(
    config_file: Path,
    stage: str,
    outputs: Mapping[str, str],
    account_id: str,
    region: str,
    partition: str = "aws",
    form: str = policies.LITERAL,
) -> list[Path]:
    """Writes the resources' names (from `outputs`) into the stage's
    environment_variables, a policy file per function of longtask beside the config,
    literal or in CloudFormation form, and points each function at its file with
    Chalice's own policy generation off; returns the files written."""
    missing = [key for key in policies.OUTPUT_VARIABLES if key not in outputs]
    if missing:
        raise ConfigError(f"no {', '.join(missing)} among the resources' names and ARNs")
    config = _read(config_file)
    stage_config = config["stages"][stage] = _stage_of(config, stage, config_file)
    if config.get("autogen_policy", True) is not False:
        # Chalice's generated policy knows nothing of DynamoDB, SQS or S3.
        stage_config["autogen_policy"] = False
    variables = stage_config.setdefault("environment_variables", {})
    for output, variable in policies.OUTPUT_VARIABLES.items():
        variables[variable] = outputs[output]
    written = []
    functions = stage_config.setdefault("lambda_functions", {})
    for function in policies.FUNCTIONS:
        file_name = policies.policy_file_name(stage, function)
        functions.setdefault(function, {})["iam_policy_file"] = file_name
        if form == policies.CLOUDFORMATION:
            document = policies.cloudformation_policy_document(function)
        else:
            document = policies.policy_document(
                function, stage, outputs, account_id, region, partition, app=config["app_name"]
            )
        path = config_file.parent / file_name
        path.write_text(json.dumps(document, indent=2) + "\n")
        written.append(path)
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    written.append(config_file)
    return written
