"""`import app` needs no environment at all: settings are read and clients made on first
use, so a host app's own tests (and tools that only inspect the app) can import it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_app_works_with_an_empty_environment() -> None:
    # PATH only: no LONGTASK_*, no AWS_* (no region, no credentials), no HOME.
    result = subprocess.run(
        [sys.executable, "-c", "import app; assert app.app.app_name == 'longtask'"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_wheel_lists_every_package_of_the_framework() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    source = ROOT / "chalicelib" / "longtask"
    present = {
        ".".join(("longtask", *init.parent.relative_to(source).parts))
        for init in source.rglob("__init__.py")
    }
    assert listed == present
