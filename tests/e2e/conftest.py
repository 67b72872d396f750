"""Fixtures that run the local stack (`python -m dev.local`) as a user's `make run` would."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from dev.stage import ROOT

HERE = Path(__file__).resolve().parent
READY_SECONDS = 120.0
STOP_SECONDS = 20.0
_NOT_INHERITED = ("LONGTASK_", "AWS_", "PORT", "MOTO_PORT", "WORKERS", "WORKER_TIMEOUT")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an end-to-end test (`pytest -m "not e2e"` skips them)."""
    for item in items:
        if Path(item.path).is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


def inherited_environ() -> dict[str, str]:
    """This process's environment without the stack's settings: what other tests' fixtures
    put into os.environ (tests/aws sets LONGTASK_* and AWS_*) must not leak into a stack."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}


def free_port() -> int:
    """A port that nothing listens on now (the kernel's choice, so parallel runs differ)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid` (pid → command line), read from /proc."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        # The command name in stat is in parentheses and may hold spaces: split after it.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        commands[int(entry.name)] = command
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = commands[child]
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class RunningStack:
    """A local stack started by a test: where it listens and what its children were given."""

    url: str  # the app's base URL without a trailing slash, e.g. http://127.0.0.1:8123
    moto_url: str
    process: subprocess.Popen[str]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)  # LONGTASK_*, AWS_* as the children got them
    lines: list[str] = field(default_factory=list)  # everything printed so far, stderr included
    _new_line: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _reader: threading.Thread = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Read all the time: a full pipe would block the stack and its children.
        self._reader = threading.Thread(target=self._read, name=self.url, daemon=True)
        self._reader.start()

    def client(self, service: str) -> Any:
        """A boto3 client for this stack's moto server."""
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.moto_url,
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def output(self) -> str:
        with self._new_line:
            return "".join(self.lines)

    def wait_for_output(self, pattern: str, timeout: float = 30.0, start: int = 0) -> re.Match[str]:
        """The first line from index `start` on that matches `pattern` (a regex), waiting
        for it to be printed; fails after `timeout` seconds or if the stack exits first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = start
        with self._new_line:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                if not self._reader.is_alive():
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._new_line.wait(min(remaining, 0.5))
        pytest.fail(
            f"the stack did not print /{pattern}/ within {timeout:.0f} s; "
            f"its output ends with:\n{self.tail()}"
        )

    def tail(self, n: int = 40) -> str:
        with self._new_line:
            return "".join(self.lines[-n:])

    def stop(self, timeout: float = STOP_SECONDS) -> int:
        """SIGTERM the stack and return its exit code; kill it and fail if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the stack did not stop within {timeout:.0f} s of SIGTERM")
        self._reader.join(timeout=5)
        return code

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.log_file.open("w") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                with self._new_line:
                    self.lines.append(line)
                    self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()


def start_stack(
    env: Mapping[str, str] | None = None,
    workers: int = 2,
    project_dir: Path = ROOT,
    log_dir: Path | None = None,
    ready_timeout: float = READY_SECONDS,
) -> RunningStack:
    """Start `python -m dev.local` in `project_dir` on free ports and wait for Ready."""
    port, moto_port = free_port(), free_port()
    while moto_port == port:
        moto_port = free_port()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="longtask-stack-"))
    env_file = log_dir / f"stack-{port}.env.json"
    moto_log = str(log_dir / f"moto-{moto_port}.log")
    child_env = inherited_environ()
    child_env.update(PORT=str(port), MOTO_PORT=str(moto_port), WORKERS=str(workers))
    child_env.update(env or {})
    child_env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "dev.local", "--env-file", str(env_file), "--moto-log", moto_log],
        cwd=project_dir,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # No preexec_fn here (pytest has threads): the stack stops by itself, and so all
        # its children, when it sees that its parent, this process, is gone.
    )
    stack = RunningStack(
        url=f"http://127.0.0.1:{port}",
        moto_url=f"http://127.0.0.1:{moto_port}",
        process=process,
        log_file=log_dir / f"stack-{port}.log",
    )
    try:
        stack.wait_for_output(r"^Ready: ", timeout=ready_timeout)
    except BaseException:
        stack.stop()
        raise
    stack.env = json.loads(env_file.read_text())
    return stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The local stack of this repository's app.py, shared by the whole session."""
    running = start_stack(log_dir=tmp_path_factory.mktemp("stack"))
    yield running
    code = running.stop()
    assert code == 0, f"the stack exited with {code} on SIGTERM:\n{running.tail()}"


StackFactory = Callable[..., RunningStack]


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[StackFactory]:
    """Starts extra stacks with their own environment, e.g. for fault injection:
    `stack_factory(env={"LONGTASK_LEASE_SECONDS": "5"}, workers=1)`. Each is stopped at
    the end of the test (a test may stop one itself to look at how it ended)."""
    started: list[RunningStack] = []

    def start(**kwargs: Any) -> RunningStack:
        kwargs.setdefault("log_dir", tmp_path)
        running = start_stack(**kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
