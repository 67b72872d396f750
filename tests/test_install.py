"""`pip install` gives a working `longtask`: the wheel holds the templates and static files,
declares its dependencies, and a Chalice app in a fresh virtualenv can declare, run and
show a task with nothing from this repository on its path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "chalicelib" / "longtask"

# A host app and its test in one, run by the fresh virtualenv's Python.
PROBE = r"""
import re

import longtask
from chalice import Chalice
from chalice.test import Client
from longtask import Integer, LongTasks, testing

assert "site-packages" in longtask.__file__, longtask.__file__
app = Chalice(app_name="probe")
tasks = LongTasks(app, url_prefix="/jobs")


@tasks.task("double", title="Double it", params={"n": Integer(min=0)})
def double(params, ctx):
    ctx.log_progress("Doubling", step=0, total_steps=1)
    return {"n": params["n"] * 2}


testing.in_memory(tasks)
task = testing.run_task(tasks, "double", n=21)
assert task.status == "done", task
assert testing.result_of(tasks, task) == {"n": 42}
with Client(app) as client:
    page = client.http.get("/jobs")
    html = page.body.decode()
    assert page.status_code == 200 and 'action="/jobs/tasks/double"' in html, html
    assert "Double it" in html
    # The stylesheet the page links to (its name carries a hash of its bytes).
    stylesheet = re.search(r'href="(/jobs/static/style\.[0-9a-f]+\.css)"', html)
    assert stylesheet, html
    assert client.http.get(stylesheet[1]).status_code == 200
print("ok")
"""


def run(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy, so that setuptools' build/ and egg-info never land in the tree.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        SOURCE, source / "chalicelib" / "longtask", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, source, cwd=source)
    (built,) = out.glob("chalice_longtask-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with Chalice (as a host app has it), the wheel and what it
    declares (jinja2) installed from the index; this process's pip installs into it,
    which skips ensurepip."""
    where = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", where, cwd=where)
    python = where / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q"]
    run(*pip, wheel, "chalice>=1.34,<2", cwd=where)
    return python


def test_the_wheel_holds_the_templates_and_static_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("templates", "static"):
        files = [p.name for p in (SOURCE / "web" / kind).iterdir() if p.is_file()]
        assert files
        for name in files:
            assert f"longtask/web/{kind}/{name}" in names
    assert not any(name.startswith(("chalicelib/", "dev/", "tests/")) for name in names)


def test_it_imports_in_a_fresh_virtualenv(venv: Path, tmp_path: Path) -> None:
    # An empty environment and a directory without this repository: the installed copy.
    imports = "import longtask; from longtask import testing; print(longtask.__file__)"
    result = run(venv, "-c", imports, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert str(venv.parent.parent) in result.stdout


def test_a_host_app_declares_runs_and_shows_a_task(venv: Path, tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(PROBE))
    assert run(venv, script, cwd=tmp_path).stdout.strip() == "ok"


def test_the_installed_package_writes_a_host_stages_policies(venv: Path, tmp_path: Path) -> None:
    (tmp_path / ".chalice").mkdir()
    names = {
        "LONGTASK_TABLE": "t",
        "LONGTASK_QUEUE": "q",
        "LONGTASK_DLQ": "d",
        "LONGTASK_BUCKET": "b",
    }
    config = {
        "version": "2.0",
        "app_name": "shop",
        "stages": {"prod": {"environment_variables": names}},
    }
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    command = ["-m", "longtask", "policies", "--stage", "prod", "--account-id", "111122223333"]
    result = run(
        venv, *command, "--region", "us-east-1", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}
    )
    assert "next: chalice deploy --stage prod" in result.stdout
    worker = json.loads((tmp_path / ".chalice" / "policy-prod-worker.json").read_text())
    arns = {arn for statement in worker["Statement"] for arn in statement["Resource"]}
    assert "arn:aws:dynamodb:us-east-1:111122223333:table/t" in arns


# What a host app's deployment zip may weigh with longtask in its requirements.txt.
PACKAGE_BYTES = 1_000_000


def test_a_host_apps_deployment_package_stays_small(wheel: Path, tmp_path: Path) -> None:
    """`chalice package` of a host app whose requirements.txt names the wheel: longtask and
    jinja2 go in; Chalice (beyond the runtime Chalice adds itself) and botocore do not."""
    host = ROOT / "examples" / "host_app"
    project = tmp_path / "host"
    (project / ".chalice").mkdir(parents=True)
    shutil.copy(host / "app.py", project / "app.py")
    shutil.copy(host / ".chalice" / "config.json", project / ".chalice" / "config.json")
    (project / "requirements.txt").write_text(f"{wheel}\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(SOURCE.parent),  # for Chalice to import app.py, as if installed
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},
    }
    chalice = "import sys; from chalice.cli import main; sys.exit(main())"
    run(sys.executable, "-c", chalice, "package", "--stage", "dev", "out", cwd=project, env=env)
    package = project / "out" / "deployment.zip"
    names = zipfile.ZipFile(package).namelist()
    assert "longtask/__init__.py" in names and "jinja2/__init__.py" in names
    assert not [n for n in names if n.startswith(("botocore/", "boto3/", "pip/", "setuptools/"))]
    assert not [n for n in names if n.startswith("chalice/") and n not in CHALICE_RUNTIME]
    assert package.stat().st_size <= PACKAGE_BYTES, package.stat().st_size


# The part of Chalice that its deploy puts in every package, the app's runtime.
CHALICE_RUNTIME = {"chalice/__init__.py", "chalice/app.py", "chalice/app.pyi"}
