"""The local stack as the benchmarks drive it: start, stop, HTTP, queue depth."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.cold import clean_environ
from dev.stage import ROOT

HOST = "127.0.0.1"
READY_SECONDS = 90.0
STOP_SECONDS = 20.0
_MOTO_REQUEST = re.compile(r'"[A-Z]+ \S+ HTTP/1\.[01]" \d{3}')


class StackError(RuntimeError):
    """The local stack did not start, or a benchmark run on it went wrong."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class LocalStack:
    """`python -m dev.local` with `workers` worker processes on free 127.0.0.1 ports.

    It stops on SIGTERM, and by itself if this process dies (it watches its parent)."""

    def __init__(
        self,
        workers: int,
        log_dir: Path,
        env: dict[str, str] | None = None,
        label: str = "",
    ) -> None:
        self.workers = workers
        self.env = dict(env or {})
        self.port = free_port()
        self.moto_port = free_port()
        while self.moto_port == self.port:
            self.moto_port = free_port()
        name = label or f"{workers}-workers"
        self.log_file = log_dir / f"stack-{name}.log"
        self.moto_log = log_dir / f"moto-{name}.log"
        self.env_file = log_dir / f"stack-{name}.env.json"
        self.settings: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalStack:
        env = clean_environ(
            {
                "PORT": str(self.port),
                "MOTO_PORT": str(self.moto_port),
                "WORKERS": str(self.workers),
                "PYTHONUNBUFFERED": "1",
                **self.env,
            }
        )
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dev.local",
                    "--env-file",
                    str(self.env_file),
                    "--moto-log",
                    str(self.moto_log),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_SECONDS
        while "Ready: " not in self.log_file.read_text(errors="replace"):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                self.__exit__(None, None, None)
                raise StackError(f"the local stack did not get ready:\n{tail}")
            time.sleep(0.1)
        self.settings = json.loads(self.env_file.read_text())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.settings["AWS_ENDPOINT_URL"],
            region_name=self.settings["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.settings["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.settings["AWS_SECRET_ACCESS_KEY"],
        )

    def moto_requests(self) -> int:
        """Requests moto has logged so far (werkzeug's access log)."""
        text = self.moto_log.read_text(errors="replace") if self.moto_log.exists() else ""
        return len(_MOTO_REQUEST.findall(text))

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        headers = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        try:
            connection.request(method, path, data, headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()


def wait_until_drained(stack: LocalStack, timeout: float) -> bool:
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.settings["LONGTASK_QUEUE"])["QueueUrl"]
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if all(int(attributes.get(name, 0)) == 0 for name in names):
            return True
        time.sleep(0.25)
    return False


class Backlog:
    """Admits a new task only while fewer than `limit` task messages wait or run.

    A thread reads the queue's depth every 100 ms; tasks admitted since the last reading
    count too (a few may slip through between a reading and their SendMessage)."""

    def __init__(self, stack: LocalStack, limit: int) -> None:
        self.limit = limit
        self._sqs = stack.client("sqs")
        self._url = self._sqs.get_queue_url(QueueName=stack.settings["LONGTASK_QUEUE"])["QueueUrl"]
        self._changed = threading.Condition()
        self._depth = 0
        self._admitted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="backlog", daemon=True)

    def __enter__(self) -> Backlog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def admit(self) -> None:
        with self._changed:
            while self._depth + self._admitted >= self.limit:
                self._changed.wait(0.5)
            self._admitted += 1

    def _watch(self) -> None:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        while not self._stop.is_set():
            attributes = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=names)
            depth = sum(int(attributes["Attributes"].get(name, 0)) for name in names)
            with self._changed:
                self._depth, self._admitted = depth, 0
                self._changed.notify_all()
            self._stop.wait(0.1)
