"""Benchmark 4: cold start, as `import app` in a fresh interpreter, and the deployment package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Section, Table, Target, median, ms, ratio
from dev import stage
from dev.stage import ROOT

IMPORT_TARGET = 1.2
PACKAGE_TARGET_BYTES = 1_000_000
PACKAGE_SECONDS = 300.0
_CODE = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
_NOT_INHERITED = ("LONGTASK_", "AWS_", "PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")
BARE = "import chalice, boto3, jinja2"
APP = "import app"
APP_AND_BOTO3 = "import app, boto3"
RESOURCE_NAMES = {
    "LONGTASK_TABLE": "longtask-bench-tasks",
    "LONGTASK_QUEUE": "longtask-bench-tasks",
    "LONGTASK_DLQ": "longtask-bench-dead-letters",
    "LONGTASK_BUCKET": "longtask-bench-results",
}


@dataclass
class ImportResult:
    samples: dict[str, list[float]]  # label → seconds
    runs: int

    def median(self, label: str) -> float:
        return median(self.samples[label])


@dataclass
class PackageResult:
    zip_bytes: int | None
    seconds: float
    offline: bool
    files: int = 0
    by_part: Counter[str] = field(default_factory=Counter)  # compressed bytes by top folder
    error: str = ""


def clean_environ(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """This process's environment without settings that would change what is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.update(extra)
    return env


def _import_seconds(statement: str, env: Mapping[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _CODE.format(statement)],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"`{statement}` failed in a fresh interpreter:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def measure_imports(runs: int) -> ImportResult:
    """Medians of `runs` fresh interpreters per variant, interleaved, bytecode cached.

    Each variant gets its own bytecode cache (PYTHONPYCACHEPREFIX), filled by one
    untimed run first; the last variant compiles the app's own modules every time, as
    on Lambda, where the package holds no .pyc and /var/task is read-only.
    """
    # The prod stage's settings; the resource names only have to be there (no call is made).
    app_settings = {**RESOURCE_NAMES, **stage.environment("api_handler", "prod")}
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="longtask-bench-pyc-") as cache:
        warm = clean_environ({**app_settings, "PYTHONPYCACHEPREFIX": f"{cache}/warm"})
        deps_only = clean_environ({**app_settings, "PYTHONPYCACHEPREFIX": f"{cache}/deps"})
        uncached = {**deps_only, "PYTHONDONTWRITEBYTECODE": "1"}
        variants = [
            (f"`{BARE}`", BARE, warm),
            (f"`{APP}`", APP, warm),
            (f"`{APP_AND_BOTO3}` (boto3 is imported on the first AWS call)", APP_AND_BOTO3, warm),
            (f"`{APP}`, the app's own modules without .pyc (as on Lambda)", APP, uncached),
        ]
        _import_seconds(f"{BARE}; import app", warm)
        _import_seconds(BARE, deps_only)
        for i in range(runs):
            order = variants[i % len(variants) :] + variants[: i % len(variants)]
            for label, statement, env in order:
                samples.setdefault(label, []).append(_import_seconds(statement, env))
    return ImportResult({label: samples[label] for label, _, _ in variants}, runs)


def _offline_prefix() -> list[str]:
    """`unshare -rn` (a network namespace with no interfaces) where it works, else []."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10, check=False)
    return [unshare, "-rn"] if probe.returncode == 0 else []


def measure_package() -> PackageResult:
    """`chalice package --stage dev` on a copy of the project, without network if possible."""
    chalice = Path(sys.executable).parent / "chalice"
    offline = _offline_prefix()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="longtask-bench-package-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        # A copy, so that chalice's cache (.chalice/deployments) never lands in the repo.
        shutil.copy2(ROOT / "app.py", project)
        shutil.copy2(ROOT / "requirements.txt", project)
        shutil.copytree(
            ROOT / "chalicelib",
            project / "chalicelib",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        # config.json and the IAM policy files it names; not chalice's caches.
        shutil.copytree(
            ROOT / ".chalice",
            project / ".chalice",
            ignore=shutil.ignore_patterns("deployments", "deployed", "venv"),
        )
        out = Path(tmp) / "out"
        # PIP_RETRIES=0: without network pip gives up on the index at once and uses what
        # it finds locally (its find-links / cache) instead of retrying for a minute.
        env = clean_environ(
            {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "PIP_RETRIES": "0"}
        )
        try:
            done = subprocess.run(
                [*offline, str(chalice), "package", "--stage", "dev", str(out)],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=PACKAGE_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return PackageResult(
                None,
                time.monotonic() - started,
                bool(offline),
                error=f"timed out after {PACKAGE_SECONDS:.0f} s",
            )
        seconds = time.monotonic() - started
        archive = out / "deployment.zip"
        if done.returncode != 0 or not archive.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return PackageResult(None, seconds, bool(offline), error=" / ".join(tail))
        parts: Counter[str] = Counter()
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
            for info in infos:
                top = info.filename.split("/", 1)[0]
                top = top.split("-")[0] if top.endswith(".dist-info") else top
                parts[top] += info.compress_size
        return PackageResult(archive.stat().st_size, seconds, bool(offline), len(infos), parts)


def section(imports: ImportResult | None, package: PackageResult | None) -> Section:
    tables: list[Table] = []
    targets: list[Target] = []
    notes: list[str] = []
    if imports is not None:
        table = Table(["import in a fresh interpreter", "median", "min", "÷ bare imports"])
        bare = imports.median(f"`{BARE}`")
        for label, values in imports.samples.items():
            table.add(label, ms(median(values)), ms(min(values)), ratio(median(values) / bare))
        tables.append(table)
        app_ratio = imports.median(f"`{APP}`") / bare
        targets.append(
            Target(
                "`import app`",
                f"≤ {IMPORT_TARGET}x chalice + boto3 + jinja2",
                ratio(app_ratio),
                app_ratio <= IMPORT_TARGET,
            )
        )
        notes.append(
            "`import app` does not import boto3: clients are made on first use, so "
            "the API Lambda's cold start pays for boto3 only with its first AWS call "
            "(the third row)."
        )
    if package is not None:
        table = Table(["`chalice package --stage dev`", "value"])
        if package.zip_bytes is None:
            table.add("deployment.zip", f"not built: {package.error}")
        else:
            table.add("deployment.zip", f"{package.zip_bytes:,} bytes ({package.files} files)")
            for part, size in package.by_part.most_common():
                table.add(f"… {part}", f"{size:,} bytes compressed")
        table.add(
            "network",
            "none (run under `unshare -rn`)"
            if package.offline
            else "not isolated (`unshare -rn` not available here)",
        )
        table.add("time", f"{package.seconds:.1f} s")
        tables.append(table)
        zip_bytes = package.zip_bytes
        targets.append(
            Target(
                "deployment package",
                "≤ 1 MB zipped",
                "not built" if zip_bytes is None else f"{zip_bytes:,} bytes",
                None if zip_bytes is None else zip_bytes <= PACKAGE_TARGET_BYTES,
            )
        )
        notes.append(
            "boto3 is not in the package: the Lambda runtime provides it "
            "(requirements.txt holds only jinja2). `chalice package` needs the wheels "
            "of requirements.txt: without network, pip must find them locally "
            "(its find-links or cache); chalice then keeps the built zip in "
            ".chalice/deployments/ for the next run."
        )
    runs = imports.runs if imports else 0
    method = f"""
Import time is measured inside fresh interpreters (`python -c`, timed around the import
statement with `time.perf_counter`), {runs} per variant, interleaved, with the prod stage's
environment variables set and no AWS endpoint. Each variant has its own warm bytecode cache
(`PYTHONPYCACHEPREFIX`, filled by an untimed run), except the last row, which keeps only
the dependencies' cache and compiles app.py and chalicelib on every run, as a Lambda does
from a zip without .pyc. The package is built by `chalice package --stage dev` on a copy of
app.py, chalicelib/, requirements.txt and .chalice/ (config and policies), without network where
`unshare -rn` works.
"""
    return Section("4. Cold start and package size", method, tables, notes, targets)
