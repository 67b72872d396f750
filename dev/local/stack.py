"""The local stack of `make run`: moto, the resources of infra/, the HTTP app and its workers.

    python -m dev.local [--env-file PATH]

Reads PORT (8000), MOTO_PORT (5000), WORKERS (2) and WORKER_TIMEOUT (the dev stage's
worker lambda_timeout) from the environment; LONGTASK_* variables there override the dev
stage's environment_variables. Prints `Ready: http://127.0.0.1:PORT/` once the app answers,
then runs until SIGINT or SIGTERM (exit 0) or until a child process dies (exit 1).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from dev import stage
from dev.local import infra
from dev.local.children import Children
from dev.stage import ROOT

HOST = "127.0.0.1"
STACK_NAME = "longtask-dev"
REGION = "us-east-1"
STARTUP_SECONDS = 60.0

# Variables that could point the children at a real AWS account instead of moto.
_AWS_LEAKS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


class StackFailed(RuntimeError):
    """The stack could not start, or a part of it died."""


class Stopped(Exception):
    """A stop was requested while the stack was starting."""


class StopRequest:
    """Set by SIGINT or SIGTERM, or seen when the process that started the stack is gone
    (pytest or make killed), so that the stack never outlives whoever ran it. Polled, not
    a thread: the stack stays single-threaded, as die_with_parent() requires."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._parent = os.getppid()
        self.reason = ""

    def set(self, reason: str) -> None:
        self.reason = reason
        self._event.set()

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; True once a stop is requested."""
        if os.getppid() != self._parent and not self._event.is_set():
            self.set("the process that started the stack has exited")
        return self._event.wait(seconds)


# A worker that dies sooner after its start is broken (say, app.py does not import).
WORKER_MIN_LIFE = 2.0


def log(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


# --- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    port: int
    moto_port: int
    workers: int
    worker_timeout: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Options:
        def number(name: str, default: float, kind: type = int, least: float = 0) -> float:
            raw = environ.get(name, "").strip()
            try:
                value = kind(raw) if raw else default
            except ValueError:
                raise StackFailed(f"{name}={raw!r} is not a {kind.__name__}") from None
            if value < least:
                raise StackFailed(f"{name}={raw!r} must be at least {least}")
            return value

        return cls(
            port=int(number("PORT", 8000, int, 1)),
            moto_port=int(number("MOTO_PORT", 5000, int, 1)),
            workers=int(number("WORKERS", 2, int, 0)),
            worker_timeout=number("WORKER_TIMEOUT", stage.lambda_timeout("worker"), float, 1),
        )


def app_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The dev stage's environment_variables, overridden by LONGTASK_* set in `environ`."""
    settings = stage.environment("worker")
    settings.update({k: v for k, v in environ.items() if k.startswith("LONGTASK_")})
    return settings


def stack_parameters(settings: Mapping[str, str], worker_timeout: float) -> dict[str, str]:
    """The template's parameters for these settings."""
    return {
        "Stage": "dev",
        "MaxAttempts": settings.get("LONGTASK_MAX_ATTEMPTS", "3"),
        "RetentionDays": settings.get("LONGTASK_RETENTION_DAYS", "7"),
        # AWS's advice for an SQS event source: at least 6 x the function's timeout.
        "VisibilityTimeout": str(math.ceil(6 * worker_timeout)),
        "OldestTaskAlarmSeconds": str(oldest_task_seconds(settings, worker_timeout)),
    }


# The runner's longest backoff between two attempts.
MAX_RETRY_DELAY = 900.0
# CloudWatch samples the queue's age every minute and the alarm looks at five-minute
# maxima, so a shorter threshold would only measure the sampling.
LEAST_ALARM_AGE = 300


def oldest_task_seconds(settings: Mapping[str, str], worker_timeout: float) -> int:
    """How old a task's message can get without anything being wrong: every attempt holds
    it for a lease, and each retry waits its doubling backoff (as the runner does)."""
    attempts = int(settings.get("LONGTASK_MAX_ATTEMPTS", "3"))
    lease = float(settings.get("LONGTASK_LEASE_SECONDS") or worker_timeout + 30)
    retry = float(settings.get("LONGTASK_RETRY_SECONDS", "10"))
    backoffs = sum(
        min(retry * 2 ** (attempt - 1), MAX_RETRY_DELAY) for attempt in range(1, attempts)
    )
    return max(LEAST_ALARM_AGE, math.ceil(attempts * lease + float(backoffs)))


def child_settings(
    settings: Mapping[str, str], outputs: Mapping[str, str], endpoint_url: str
) -> dict[str, str]:
    """What the app and the workers get on top of the environment: the settings, the
    names of the resources actually created, and AWS pointed at moto."""
    result = dict(settings)
    result.update(
        LONGTASK_TABLE=outputs["TableName"],
        LONGTASK_QUEUE=outputs["QueueName"],
        LONGTASK_DLQ=outputs["DeadLetterQueueName"],
        LONGTASK_BUCKET=outputs["BucketName"],
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )
    return result


def child_environment(environ: Mapping[str, str], settings: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in environ.items()
        # A service-specific endpoint (AWS_ENDPOINT_URL_S3) would win over AWS_ENDPOINT_URL.
        if k not in _AWS_LEAKS and not k.startswith("AWS_ENDPOINT_URL_")
    }
    env.update(settings)
    # The developer's ~/.aws files must not add profiles, regions or endpoints either.
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    return env


# --- waiting ---------------------------------------------------------------------------


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers themselves do: connections of a stack that just stopped linger
        # in TIME_WAIT, which must not count as "in use"; only a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, urllib.error.URLError):
        return None


def _wait_for(
    what: str,
    ready: Callable[[], bool],
    children: Children,
    stop: StopRequest,
    timeout: float = STARTUP_SECONDS,
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        dead = children.first_dead()
        if dead is not None:
            raise StackFailed(
                f"{dead.label} exited with code {dead.process.returncode} while waiting for {what}"
            )
        if time.monotonic() > deadline:
            raise StackFailed(f"{what} did not happen within {timeout:.0f} s")
        if stop.wait(0.1):
            raise Stopped


# --- the stack -------------------------------------------------------------------------


def start(
    options: Options,
    children: Children,
    stop: StopRequest,
    env_file: Path | None = None,
    moto_log: Path | None = None,
) -> None:
    """Start everything and return once the app answers `GET /` with 200."""
    for name, port in (("PORT", options.port), ("MOTO_PORT", options.moto_port)):
        if not _port_is_free(port):
            raise StackFailed(
                f"127.0.0.1:{port} is in use (another `make run`?); choose another {name}"
            )

    moto_url = f"http://{HOST}:{options.moto_port}"
    default_log = Path(tempfile.gettempdir()) / f"longtask-moto-{options.moto_port}.log"
    moto_log_path = moto_log or default_log
    with moto_log_path.open("wb") as moto_output:
        children.start(
            "moto",
            # moto's own server, with DynamoDB's conditional writes made atomic as on AWS.
            [
                sys.executable,
                "-m",
                "dev.local.moto_server",
                "-H",
                HOST,
                "-p",
                str(options.moto_port),
            ],
            os.environ,
            output=moto_output,
        )
    log(f"moto server on {moto_url} (log: {moto_log_path})")
    _wait_for(
        "the moto server to answer",
        lambda: _http_status(f"{moto_url}/moto-api/") is not None,
        children,
        stop,
    )

    settings = app_settings(os.environ)
    parameters = stack_parameters(settings, options.worker_timeout)
    stack = infra.create_stack(moto_url, STACK_NAME, parameters)
    log(f"created stack {STACK_NAME} with {parameters}")
    extra = child_settings(settings, stack.outputs, moto_url)
    env = child_environment(os.environ, extra)

    python = sys.executable
    children.start(
        "api", [python, "-m", "dev.local.api", "--host", HOST, "--port", str(options.port)], env
    )
    for i in range(1, options.workers + 1):
        command = [python, "-m", "dev.local.worker", "--function", "worker"]
        command += ["--timeout", f"{options.worker_timeout:g}", "--label", f"worker-{i}"]
        children.start(f"worker-{i}", command, env, restartable=True)
    children.start(
        "dead_letters",
        [python, "-m", "dev.local.worker", "--function", "dead_letters", "--label", "dead_letters"],
        env,
        restartable=True,
    )
    children.start("scheduler", [python, "-m", "dev.local.scheduler"], env)

    app_url = f"http://{HOST}:{options.port}/"
    _wait_for(
        "the app to answer GET / with 200", lambda: _http_status(app_url) == 200, children, stop
    )
    if env_file is not None:
        env_file.write_text(json.dumps(extra, indent=2, sort_keys=True) + "\n")
    print(f"Ready: {app_url}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="write the variables given to the app and workers here (JSON) before Ready",
    )
    parser.add_argument(
        "--moto-log",
        type=Path,
        default=None,
        help="where the moto server's request log goes (default: a file in the temp dir)",
    )
    args = parser.parse_args(argv)

    stop = StopRequest()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    children = Children(ROOT, log)
    try:
        options = Options.from_env(os.environ)
        started_at = time.monotonic()
        start(options, children, stop, args.env_file, args.moto_log)
        log(f"ready after {time.monotonic() - started_at:.1f} s; Ctrl-C stops the stack")
        while not stop.wait(0.2):
            dead = children.first_dead()
            if dead is None:
                continue
            who, code = f"{dead.label} (pid {dead.process.pid})", dead.process.returncode
            # A worker that dies is replaced, as Lambda replaces a runtime that died; one
            # that dies as it starts would only die again, and so would moto or the API.
            if not dead.restartable or time.monotonic() - dead.started_at < WORKER_MIN_LIFE:
                raise StackFailed(f"{who} exited unexpectedly with code {code}")
            fresh = children.restart(dead)
            log(f"{who} exited with code {code}; started a new one (pid {fresh.process.pid})")
        log(f"stopping ({stop.reason})")
        return 0
    except Stopped:
        log(f"stopped while starting ({stop.reason})")
        return 0
    except (StackFailed, infra.StackError) as error:
        log(f"error: {error}; stopping the stack")
        return 1
    finally:
        children.stop()


if __name__ == "__main__":
    sys.exit(main())
