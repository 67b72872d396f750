"""Schemathesis against the local stack: every operation of /openapi.json, every check.

Bounded to run in about a minute: 25 examples per operation, the examples, coverage
and fuzzing phases (no stateful phase). Every check is on (Schemathesis 4's default:
`--checks all` would override the per-operation settings); the few that cannot hold
for an operation are switched off there, each with its reason, in schemathesis.toml
beside this file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunningStack, start_stack

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack of its own with no workers: the fuzzer starts hundreds of tasks (sleeps of
    up to an hour among them), which must not hold the shared stack's workers."""
    running = start_stack(workers=0, log_dir=tmp_path_factory.mktemp("schemathesis"))
    yield running
    running.stop()


def test_every_answer_matches_the_description(api_stack: RunningStack, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{api_stack.url}/openapi.json",
        "--max-examples",
        "25",
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "20261128",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
