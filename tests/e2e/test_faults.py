"""Fault injection on the real local stack: duplicate messages, kill -9, poison tasks, a soak.

The kill -9 test kills one of the stack's own workers, which the stack replaces as
Lambda replaces a runtime that died. The other tests start the stack without workers
and run the worker processes themselves (the command and environment that the stack
gives its own), so that each test picks their number and timeout, knows which process
runs what, and reads their logs apart; the soak kills and replaces them at its own pace.
The stack's dead-letter worker stays the stack's.

Nothing here counts executions from inside a task: a run is a claim, and every claim
increments `attempts`; a result write is an S3 object tagged with its task and attempt;
each worker logs what became of each message it got ("task <id>: done").
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.longtask.aws.queue import encode_message
from chalicelib.longtask.model import TERMINAL, is_task_id
from dev.local.stack import WORKER_MIN_LIFE, child_environment
from dev.local.worker import POLL_SECONDS
from dev.stage import ROOT

from .conftest import (
    RunningStack,
    StackFactory,
    alive,
    descendants,
    inherited_environ,
    start_stack,
)

JSON = {"Accept": "application/json"}
LEASE_SECONDS = 5
# The soak's default size keeps `make test` short; SOAK_TASKS=300 is the full run.
SOAK_TASKS = int(os.environ.get("SOAK_TASKS", "60"))
CHAOS_UNTIL = 0.9  # the share of the soak's tasks that end while workers are being killed

# Starts dev.local.worker so that it gets SIGTERM when this process (more exactly, the
# thread that started it) is gone, even after kill -9: no worker outlives the tests.
_LAUNCH = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
os.execv(sys.executable, [sys.executable, "-m", "dev.local.worker", *sys.argv[2:]])
"""
_OUTCOME = re.compile(r"task (\S+): (\w+)$")


# --- worker processes -------------------------------------------------------------------


def in_invocation(pid: int) -> bool:
    """Whether a worker process is inside a Lambda invocation: dev.local.worker runs a
    watchdog thread for exactly as long as an invocation lasts, so it has two threads."""
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


class Workers:
    """Worker processes of one test, polling the task queue of `stack` as the stack's own."""

    def __init__(self, stack: RunningStack, log_dir: Path, timeout: float = 10) -> None:
        self.env = child_environment(inherited_environ(), stack.env)
        self.timeout = timeout
        self.log_dir = log_dir
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.labels: dict[int, str] = {}
        self.kills = 0
        self.kills_in_invocation = 0
        self._started = 0

    def start(self, count: int = 1) -> list[int]:
        pids = []
        for _ in range(count):
            self._started += 1
            label = f"test-worker-{self._started}"
            command = [sys.executable, "-c", _LAUNCH, str(os.getpid()), "--function", "worker"]
            command += ["--timeout", f"{self.timeout:g}", "--label", label]
            with (self.log_dir / f"{label}.log").open("wb") as output:
                process = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            self.processes[process.pid] = process
            self.labels[process.pid] = label
            pids.append(process.pid)
        return pids

    def ready(self, stack: RunningStack) -> None:
        """Waits until every running worker polls the queue (a cold start takes seconds)."""

        def polling() -> bool:
            logs = [self.log_dir / f"{self.labels[pid]}.log" for pid in self.running()]
            return all("polling" in path.read_text(errors="replace") for path in logs)

        until(polling, 60, "the workers' first poll", stack)

    def running(self) -> list[int]:
        return [pid for pid, process in self.processes.items() if process.poll() is None]

    def busy(self) -> list[int]:
        return [pid for pid in self.running() if in_invocation(pid)]

    def kill(self, pid: int) -> None:
        """kill -9, as a crash or an out-of-memory kill would end a Lambda runtime."""
        self.kills_in_invocation += in_invocation(pid)
        os.kill(pid, signal.SIGKILL)
        self.processes[pid].wait(timeout=10)
        assert not alive(pid)
        self.kills += 1

    def logged(self) -> list[tuple[str, str]]:
        """(task id, outcome) of every message the workers handled, from their logs."""
        handled = []
        for path in sorted(self.log_dir.glob("test-worker-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if match := _OUTCOME.search(line):
                    handled.append((match[1], match[2]))
        return handled

    def outcomes(self, task_id: str) -> Counter[str]:
        """What became of the messages of one task."""
        return Counter(outcome for task, outcome in self.logged() if task == task_id)

    def stop(self) -> None:
        """SIGTERM every worker, then let the long polls they leave behind run out.

        moto goes on with a ReceiveMessage whose caller is gone for up to its wait time
        and may hand a message to the closed connection; that message would then stay
        invisible for the queue's whole visibility timeout.
        """
        stopped = time.monotonic()
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        time.sleep(max(0.0, stopped + POLL_SECONDS + 0.5 - time.monotonic()))


# --- what users and operators can see -------------------------------------------------------


def start(stack: RunningStack, kind: str, **params: Any) -> dict[str, Any]:
    response = requests.post(f"{stack.url}/tasks/{kind}", json=params, headers=JSON, timeout=30)
    assert response.status_code == 202, response.text
    return dict(response.json())


def status(stack: RunningStack, document: dict[str, Any]) -> dict[str, Any]:
    response = requests.get(stack.url + document["links"]["self"], headers=JSON, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def result(stack: RunningStack, document: dict[str, Any]) -> Any:
    """The result as a user downloads it: /result, then the presigned S3 URL."""
    first = requests.get(
        stack.url + document["links"]["self"] + "/result", allow_redirects=False, timeout=30
    )
    assert first.status_code == 303, first.text
    response = requests.get(first.headers["Location"], timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def stack_log(stack: RunningStack, lines: int = 30) -> str:
    """The end of the stack's output without the app's access log."""
    output = [line for line in stack.output().splitlines() if '] "' not in line]
    return "\n".join(output[-lines:])


def until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    stack: RunningStack,
    every: float = 0.2,
) -> Any:
    """Polls `condition` until it is truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s\n{stack_log(stack)}")
        time.sleep(every)
    return value


def finished(stack: RunningStack, document: dict[str, Any], timeout: float) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        current = status(stack, document)
        return current if current["done"] else None

    return dict(until(terminal, timeout, f"the end of task {document['id']}", stack))


def record(stack: RunningStack, task_id: str) -> dict[str, Any]:
    """The task's DynamoDB item, read as the app reads it (consistent)."""
    item = stack.client("dynamodb").get_item(
        TableName=stack.env["LONGTASK_TABLE"], Key={"id": {"S": task_id}}, ConsistentRead=True
    )["Item"]
    return {key: next(iter(value.values())) for key, value in item.items()}


def messages_left(stack: RunningStack) -> dict[str, int]:
    """Visible plus in-flight messages of the task queue and of its dead-letter queue."""
    sqs = stack.client("sqs")
    counts = {}
    for name in ("LONGTASK_QUEUE", "LONGTASK_DLQ"):
        url = sqs.get_queue_url(QueueName=stack.env[name])["QueueUrl"]
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        counts[name] = sum(int(value) for value in attributes.values())
    return counts


def queues_drain(stack: RunningStack, timeout: float = 60) -> None:
    until(
        lambda: set(messages_left(stack).values()) == {0},
        timeout,
        "an empty task queue and dead-letter queue",
        stack,
    )


def result_objects(stack: RunningStack, task_id: str = "") -> dict[str, datetime]:
    """Every result object (of one task), as "results/<task id>/<attempt>" → LastModified.

    Result keys are random; each object's tags name the task and the attempt."""
    s3 = stack.client("s3")
    bucket = stack.env["LONGTASK_BUCKET"]
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="results/"):
        for item in page.get("Contents", []):
            tags = s3.get_object_tagging(Bucket=bucket, Key=item["Key"])["TagSet"]
            labels = {tag["Key"]: tag["Value"] for tag in tags}
            if task_id and labels.get("task") != task_id:
                continue
            objects[f"results/{labels['task']}/{labels['attempt']}"] = item["LastModified"]
    return objects


def figures(name: str, began: float, **numbers: Any) -> None:
    """One line of measured figures (attempts, retries, seconds) for a person reading the
    run: `pytest -s` shows them."""
    listed = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in numbers.items())
    print(f"\nFIGURES {name}: {listed}, {time.monotonic() - began:.1f} s")


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faults_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack without workers of its own: lease 5 s, 3 attempts, retries after 1 s, 2 s."""
    running = start_stack(
        env={"LONGTASK_LEASE_SECONDS": str(LEASE_SECONDS), "LONGTASK_RETRY_SECONDS": "1"},
        workers=0,
        log_dir=tmp_path_factory.mktemp("faults"),
    )
    yield running
    running.stop()


@pytest.fixture
def workers(faults_stack: RunningStack, tmp_path: Path) -> Iterator[Workers]:
    """This test's worker processes (each test leaves both queues empty behind it)."""
    pool = Workers(faults_stack, tmp_path)
    yield pool
    pool.stop()


# --- the tests ------------------------------------------------------------------------


def test_ten_extra_copies_of_a_message_run_the_task_once(
    faults_stack: RunningStack, workers: Workers
) -> None:
    stack = faults_stack
    workers.start(3)
    workers.ready(stack)
    began = time.monotonic()
    document = start(stack, "sleep", seconds=1.5)
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.env["LONGTASK_QUEUE"])["QueueUrl"]
    for _ in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=encode_message(document["id"]))

    final = finished(stack, document, 30)
    # The copies come back once the lease would have run out, find the task done and go.
    queues_drain(stack)
    assert final["status"] == "done" and final["attempts"] == 1, final
    assert result(stack, document) == {"slept": 1.5}
    assert list(result_objects(stack, document["id"])) == [f"results/{document['id']}/1"]
    handled = workers.outcomes(document["id"])
    assert handled["done"] == 1
    assert set(handled) <= {"done", "retry", "dropped"}
    assert handled.total() >= 11
    figures(
        "ten-copies",
        began,
        started=1,
        done=1,
        failed=0,
        executions=final["attempts"],
        results_written=len(result_objects(stack, document["id"])),
        deliveries=dict(handled),
    )


def test_a_task_failing_every_time_is_failed_after_the_maximum_and_leaves_no_message(
    faults_stack: RunningStack, workers: Workers
) -> None:
    stack = faults_stack
    workers.start(2)
    workers.ready(stack)
    began = time.monotonic()
    document = start(stack, "sleep", seconds=0, fail_times=3)
    final = finished(stack, document, 60)
    maximum = int(stack.env["LONGTASK_MAX_ATTEMPTS"])
    assert final["status"] == "failed" and final["attempts"] == maximum == 3, final
    assert final["error"]["type"] == "PlannedFailure"
    assert f"attempt {maximum} " in final["error"]["message"]
    page = requests.get(stack.url + document["links"]["self"], timeout=30).text
    words = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert final["error"]["message"] in words and f"It failed on all {maximum} attempts" in words
    queues_drain(stack, 30)
    assert workers.outcomes(document["id"]) == {"retry": maximum - 1, "failed": 1}
    assert result_objects(stack, document["id"]) == {}
    figures(
        "poison",
        began,
        started=1,
        done=0,
        failed=1,
        executions=final["attempts"],
        results_written=0,
    )


def test_a_worker_dying_on_every_attempt_ends_failed_through_the_dead_letter_queue(
    faults_stack: RunningStack, workers: Workers
) -> None:
    stack = faults_stack
    workers.start(2)
    workers.ready(stack)
    began = time.monotonic()
    document = start(stack, "sleep", seconds=60)
    claimed_after = []
    for attempt in (1, 2, 3):
        claim = until(
            lambda n=attempt: (
                (task := record(stack, document["id"]))
                and int(task.get("attempts", 0)) == n
                and task
            ),
            30,
            f"the claim of attempt {attempt}",
            stack,
            every=0.1,
        )
        claimed_after.append(round(time.monotonic() - began, 1))
        # Killed mid-task, once the attempt has renewed its lease with a progress write.
        until(
            lambda c=claim: record(stack, document["id"])["updated_at"] != c["updated_at"],
            10,
            f"a progress write of attempt {attempt}",
            stack,
            every=0.1,
        )
        (runner,) = until(workers.busy, 5, f"the worker of attempt {attempt}", stack)
        workers.kill(runner)
        workers.start()
    mark = len(stack.lines)
    final = finished(stack, document, 90)
    assert final["status"] == "failed" and final["attempts"] == 3, final
    assert final["error"]["type"] == "WorkerLost"
    stack.wait_for_output(rf"\[dead_letters\] .*task {document['id']}: failed", 5, start=mark)
    queues_drain(stack, 30)
    assert "done" not in workers.outcomes(document["id"])
    assert result_objects(stack, document["id"]) == {}
    figures(
        "dies-every-attempt",
        began,
        started=1,
        done=0,
        failed=1,
        executions=final["attempts"],
        results_written=0,
        kills=workers.kills,
        claims_after=claimed_after,
        failed_after=f"{time.monotonic() - began:.1f} s",
    )


def test_a_checkpointed_task_runs_across_several_invocations(
    faults_stack: RunningStack, workers: Workers
) -> None:
    stack = faults_stack
    # A 4 s Lambda keeps 2 s to hand over: a 7 s sleep needs four invocations or more.
    workers.timeout = 4
    workers.start(1)
    workers.ready(stack)
    began = time.monotonic()
    document = start(stack, "sleep", seconds=7)
    final = finished(stack, document, 60)
    assert final["status"] == "done" and final["attempts"] == 1, final
    assert final["elapsed_seconds"] >= 7 and final["progress"]["percent"] == 100.0
    assert result(stack, document) == {"slept": 7}
    assert list(result_objects(stack, document["id"])) == [f"results/{document['id']}/1"]
    handled = workers.outcomes(document["id"])
    assert handled["handed_off"] >= 2 and handled["done"] == 1, handled
    queues_drain(stack)
    figures(
        "checkpoints",
        began,
        started=1,
        done=1,
        failed=0,
        executions=final["attempts"],
        invocations=handled.total(),
        results_written=1,
    )


# --- the soak ---------------------------------------------------------------------------


def scan(stack: RunningStack) -> dict[str, dict[str, Any]]:
    """Every task record: id → status and attempts (one cheap request per 1 MB)."""
    items = {}
    pages = (
        stack.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=stack.env["LONGTASK_TABLE"],
            ConsistentRead=True,
            ProjectionExpression="#id, #status, attempts",
            ExpressionAttributeNames={"#id": "id", "#status": "status"},
        )
    )
    for page in pages:
        for item in page["Items"]:
            if not is_task_id(item["id"]["S"]):
                continue  # the table also keeps quota counts, keys and checkpoints
            items[item["id"]["S"]] = {
                "status": item["status"]["S"],
                "attempts": int(item.get("attempts", {"N": "0"})["N"]),
            }
    return items


def test_soak_tasks_submitted_at_once_while_workers_are_killed_at_random(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    # Its own stack, with 10 attempts: a task whose workers die three times in a row is
    # failed on purpose, and that chance must not decide this test. WORKER_TIMEOUT=4 only
    # sets the queue's visibility timeout (6 x 4 s): a message whose worker was killed
    # before its claim hid it comes back after 24 s instead of 60 s.
    stack = stack_factory(
        env={
            "LONGTASK_LEASE_SECONDS": str(LEASE_SECONDS),
            "LONGTASK_MAX_ATTEMPTS": "10",
            "WORKER_TIMEOUT": "4",
            # One client starts them all: the per-owner quotas must not be what is tested.
            "LONGTASK_MAX_ACTIVE_PER_OWNER": "1000",
            "LONGTASK_STARTS_PER_MINUTE": "1000",
        },
        workers=0,
    )
    # Workers of the dev stage's 10 s: a fresh worker's first invocation creates its AWS
    # clients, which on a busy 2-CPU machine took more than 4 s, again after every restart.
    pool = Workers(stack, tmp_path, timeout=10)
    chance = random.Random(4)
    plan = [round(chance.uniform(0, 2), 1) for _ in range(SOAK_TASKS)]
    try:
        pool.start(4)
        pool.ready(stack)
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as clients:
            submissions = [clients.submit(start, stack, "sleep", seconds=s) for s in plan]
            # The killer runs here, on the main thread, which started the workers (they
            # die with it): every 2 to 4 s a worker in the middle of an invocation is
            # killed and a fresh one takes its place, until every task has ended. Idle
            # workers are spared: one killed in its long poll can leave moto handing the
            # next message to its closed connection, hidden for the visibility timeout.
            # The killing stops once 90% have ended: kept up, it would only hit the last
            # few tasks again and again (each kill of a task before its claim hides its
            # message for the visibility timeout), and the test would never end.
            deadline = began + 60 + SOAK_TASKS
            next_kill = began + 2
            while True:
                failed_submissions = [f for f in submissions if f.done() and f.exception()]
                assert not failed_submissions, failed_submissions[0].exception()
                ended = [t for t in scan(stack).values() if t["status"] in TERMINAL]
                if len(ended) == SOAK_TASKS and all(f.done() for f in submissions):
                    break
                now = time.monotonic()
                if now > deadline:
                    stuck = [
                        record(stack, task_id)
                        for task_id, task in scan(stack).items()
                        if task["status"] not in TERMINAL
                    ]
                    pytest.fail(
                        f"{len(ended)} of {SOAK_TASKS} tasks ended in time; messages left "
                        f"{messages_left(stack)}, kills {pool.kills}; the others: {stuck}"
                    )
                chaos = len(ended) < CHAOS_UNTIL * SOAK_TASKS
                busy = pool.busy() if chaos and now >= next_kill else []
                if busy:
                    pool.kill(chance.choice(busy))
                    pool.start()
                    next_kill = now + chance.uniform(2, 4)
                time.sleep(0.5)
            all_ended = time.monotonic()
            tasks = [(s, f.result()) for s, f in zip(plan, submissions, strict=True)]
            when_ended = scan(stack)

            # Nothing moves once everything has ended: the leftover copies of messages
            # come back, find their tasks finished and are dropped.
            queues_drain(stack, 90)
            assert scan(stack) == when_ended
            finals = list(clients.map(lambda t: status(stack, t[1]), tasks))
            results = list(clients.map(lambda t: result(stack, t[1]), tasks))
        objects = result_objects(stack)
    finally:
        pool.stop()

    counts = Counter(final["status"] for final in finals)
    assert counts == {"done": SOAK_TASKS}, counts
    assert results == [{"slept": seconds} for seconds, _ in tasks]
    # Each task's record points at its last attempt's object; an older attempt may have
    # left one (its worker died between writing it and recording done); none is newer
    # than the last attempt, and none was written after the task was done.
    for (_, document), final in zip(tasks, finals, strict=True):
        mine = {k: v for k, v in objects.items() if k.startswith(f"results/{document['id']}/")}
        attempts = sorted(int(key.rsplit("/", 1)[1]) for key in mine)
        assert attempts and attempts[-1] == final["attempts"], (final, attempts)
        finished_at = datetime.fromisoformat(final["finished_at"])
        assert all(modified <= finished_at for modified in mine.values()), (final, mine)
    # Only a kill makes a task run again, and each kill mid-invocation at most once.
    taken_over = sum(final["attempts"] - 1 for final in finals)
    assert taken_over <= pool.kills_in_invocation
    logged_done = Counter(task for task, outcome in pool.logged() if outcome == "done")
    assert max(logged_done.values()) == 1
    figures(
        f"soak-{SOAK_TASKS}",
        began,
        started=SOAK_TASKS,
        done=counts["done"],
        failed=counts["failed"],
        executions=sum(final["attempts"] for final in finals),
        taken_over=taken_over,
        results_written=len(objects),
        orphans=len(objects) - SOAK_TASKS,
        kills=pool.kills,
        kills_in_invocation=pool.kills_in_invocation,
        deliveries=dict(Counter(outcome for _, outcome in pool.logged())),
        logged_done=sum(logged_done.values()),
        all_ended_after=f"{all_ended - began:.1f} s",
    )


# --- kill -9 of one of the stack's own workers --------------------------------------------


def test_a_worker_killed_mid_task_is_replaced_and_its_task_taken_over_after_the_lease(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(env={"LONGTASK_LEASE_SECONDS": str(LEASE_SECONDS)}, workers=2)
    began = time.monotonic()
    document = start(stack, "sleep", seconds=6)
    until(
        lambda: (status(stack, document)["progress"]["step"] or 0) >= 2,
        30,
        "two seconds of sleep",
        stack,
    )
    own = [
        pid
        for pid, command in descendants(stack.process.pid).items()
        if "dev.local.worker --function worker" in command
    ]
    (runner,) = until(lambda: [p for p in own if in_invocation(p)], 10, "the busy worker", stack)
    mark = len(stack.lines)
    killed_at = time.monotonic()
    os.kill(runner, signal.SIGKILL)
    lease_until = float(record(stack, document["id"])["lease_until"])

    # The stack goes on and replaces the dead worker, as Lambda replaces a runtime.
    stack.wait_for_output(rf"worker-\d \(pid {runner}\) exited .*started a new one", 10, mark)
    until(
        lambda: int(record(stack, document["id"])["attempts"]) == 2,
        LEASE_SECONDS + 30,
        "the takeover",
        stack,
    )
    # Not before the lease that the dead worker had renewed last had run out.
    assert time.time() >= lease_until
    taken_over_after = time.monotonic() - killed_at
    final = finished(stack, document, 60)
    assert final["status"] == "done" and final["attempts"] == 2, final
    assert result(stack, document) == {"slept": 6}
    # The killed attempt wrote nothing; the one result is the final attempt's.
    assert list(result_objects(stack, document["id"])) == [f"results/{document['id']}/2"]
    queues_drain(stack)
    assert stack.process.poll() is None
    figures(
        "kill-9-mid-task",
        began,
        started=1,
        done=1,
        failed=0,
        executions=final["attempts"],
        results_written=len(result_objects(stack, document["id"])),
        taken_over_after=f"{taken_over_after:.1f} s",
    )


# --- kill -9 during a part of a fanned-out task -------------------------------------------


def test_a_worker_killed_mid_part_is_taken_over_and_the_total_stays_exact(
    stack_factory: StackFactory,
) -> None:
    from chalicelib.longtask.backends.keys import operation_key, part_id

    stack = stack_factory(env={"LONGTASK_LEASE_SECONDS": str(LEASE_SECONDS)}, workers=2)
    began = time.monotonic()
    # The stack takes a worker that dies young for a crash loop and stops: let them age.
    until(lambda: time.monotonic() - began > WORKER_MIN_LIFE + 1, 30, "grown-up workers", stack)
    # Two parts of 25,000,000 numbers: each runs for seconds, with a block a step.
    document = start(stack, "primes", limit=50_000_000, parts=2)
    # The map is the task's first operation.
    parts = [part_id(operation_key(document["id"], 1), i) for i in range(2)]

    def part_under_way() -> str | None:
        for task_id in parts:
            try:
                part = record(stack, task_id)
            except KeyError:
                continue  # not made yet
            if part["status"] == "started":
                return task_id
        return None

    busy = until(part_under_way, 60, "a part under way", stack, every=0.05)
    own = [
        pid
        for pid, command in descendants(stack.process.pid).items()
        if "dev.local.worker --function worker" in command
    ]
    running = until(lambda: [p for p in own if in_invocation(p)], 10, "a busy worker", stack)
    for pid in running:
        os.kill(pid, signal.SIGKILL)  # whichever holds the part, it dies mid-invocation
    try:
        final = finished(stack, document, 240)
    except requests.ConnectionError:
        pytest.fail(f"the stack stopped answering:\n{stack_log(stack, 60)}")
    assert final["status"] == "done", final
    # pi(5 x 10^7): every part counted exactly once, whatever ran twice.
    assert result(stack, document) == {"limit": 50_000_000, "count": 3_001_134}
    taken_over = int(record(stack, busy)["attempts"])
    assert record(stack, busy)["status"] == "done"
    queues_drain(stack)
    figures(
        "kill-9-mid-part",
        began,
        parts=2,
        killed_workers=len(running),
        attempts_of_the_killed_part=taken_over,
    )
