"""The Chalice stages of .chalice/config.json as the local stack needs them."""

from __future__ import annotations

import json
from pathlib import Path

from chalice.config import Config
from chalice.constants import DEFAULT_LAMBDA_MEMORY_SIZE, DEFAULT_LAMBDA_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = ROOT / ".chalice" / "config.json"
TEMPLATE_FILE = ROOT / "infra" / "template.yaml"


def chalice_config(
    function_name: str, stage: str = "dev", config_file: Path = CONFIG_FILE
) -> Config:
    """Chalice's own view of one function in one stage, so that the lookup rules
    (top level, then stage, then `lambda_functions`) are exactly those of `chalice deploy`."""
    with config_file.open() as f:
        config_from_disk = json.load(f)
    if stage not in config_from_disk.get("stages", {}):
        raise ValueError(f"{config_file} has no stage {stage!r}")
    return Config(
        chalice_stage=stage,
        function_name=function_name,
        config_from_disk=config_from_disk,
        user_provided_params={"project_dir": str(config_file.parent.parent)},
    )


def environment(function_name: str, stage: str = "dev") -> dict[str, str]:
    """The environment variables that the function gets in `stage`."""
    variables = chalice_config(function_name, stage).environment_variables
    return {k: str(v) for k, v in variables.items()}


def lambda_timeout(function_name: str, stage: str = "dev") -> int:
    """The function's timeout in seconds (Chalice's default when the config sets none)."""
    return int(chalice_config(function_name, stage).lambda_timeout or DEFAULT_LAMBDA_TIMEOUT)


def lambda_memory_size(function_name: str, stage: str = "dev") -> int:
    """The function's memory in MB (Chalice's default when the config sets none)."""
    size = chalice_config(function_name, stage).lambda_memory_size
    return int(size or DEFAULT_LAMBDA_MEMORY_SIZE)
