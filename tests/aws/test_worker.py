"""The worker Lambda in process over moto: runs, results, retries, failure, checkpoints."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from typing import Any

import pytest

from chalicelib.longtask.tasks import TaskContext

from .conftest import Aws, deliver, json_headers, start, status


def result_object(aws: Aws, client: Any, document: dict[str, Any]) -> dict[str, Any]:
    """The S3 object behind the status URL's redirect, as a browser would get it."""
    response = client.http.get(document["links"]["self"])
    assert response.status_code == 303
    location = response.headers["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=300" in location
    key = location.split("?")[0].split(f"/{aws.tasks.settings.bucket}/")[-1]
    if key == location.split("?")[0]:  # virtual-hosted style: https://bucket.s3.../key
        key = location.split("?")[0].split(".amazonaws.com/")[-1]
    obj = aws.s3.get_object(Bucket=aws.tasks.settings.bucket, Key=key)
    return {
        "body": obj["Body"].read(),
        "type": obj["ContentType"],
        "disposition": obj.get("ContentDisposition"),
        "sse": obj.get("ServerSideEncryption"),
    }


def test_primes_to_a_million_ends_done_with_its_json_result(aws: Aws, client: Any) -> None:
    document = start(client, "primes", {"limit": 1_000_000})
    aws.calls.reset()
    assert deliver(aws) == ["deleted"]
    # The worker's floor: claim, PutObject, final update, with progress throttled.
    assert aws.calls.counts["PutObject"] == 1
    assert aws.calls.counts["UpdateItem"] <= 2 + 2  # claim + final + ≤1 progress write per s
    final = status(client, document)
    assert final["status"] == "done" and final["done"] is True
    assert final["progress"]["percent"] == 100.0 and final["progress"]["total_steps"] >= 10
    assert final["attempts"] == 1 and final["error"] is None
    assert final["links"]["result"] == document["links"]["self"] + "/result"
    result = result_object(aws, client, document)
    assert json.loads(result["body"]) == {"limit": 1_000_000, "count": 78498}
    assert result["type"] == "application/json"
    assert result["sse"] == "AES256"
    again = client.http.get(document["links"]["self"] + "/result")
    assert again.status_code == 303  # a fresh link every time


def test_report_is_a_csv_download_with_its_file_name(
    aws: Aws, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import demo_tasks

    monkeypatch.setattr(demo_tasks, "_REPORT_DAY_SECONDS", 0)
    document = start(client, "report", {"month": "2024-02"})
    deliver(aws)
    result = result_object(aws, client, document)
    assert result["type"].startswith("text/csv")
    assert 'filename="report-2024-02.csv"' in result["disposition"]
    rows = list(csv.reader(io.StringIO(result["body"].decode())))
    assert rows[0][0] == "date" and len(rows) == 1 + 29
    assert rows[1][0] == "2024-02-01" and rows[-1][0] == "2024-02-29"
    assert status(client, document)["progress"]["message"] == "Formatting"


def test_a_failing_attempt_is_retried_and_the_second_succeeds(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 0, "fail_times": 1})
    assert deliver(aws, max_messages=1) == ["kept"]
    between = status(client, document)
    assert between["status"] == "error" and between["done"] is False
    assert between["error"]["type"] == "PlannedFailure"
    assert "attempt 1" in between["error"]["message"]
    assert deliver(aws) == ["deleted"]
    final = status(client, document)
    assert final["status"] == "done" and final["attempts"] == 2 and final["error"] is None


def test_a_task_failing_every_time_is_failed_after_the_maximum(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 0, "fail_times": 3})
    assert deliver(aws) == ["kept", "kept", "deleted"]
    final = status(client, document)
    assert final["status"] == "failed" and final["done"] is True
    assert final["attempts"] == 3
    assert "attempt 3" in final["error"]["message"]
    assert (
        "Retry-After"
        not in client.http.get(
            document["links"]["self"], headers={"Accept": "application/json"}
        ).headers
    )
    page = client.http.get(document["links"]["self"]).body.decode()
    words = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "Failed" in words and "It failed on all 3 attempts, so it was stopped." in words
    assert "Run again" in words
    assert "refresh" not in page  # no endless spinner
    attributes = aws.sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_a_duplicate_message_after_done_runs_nothing(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 0})
    aws.tasks.backends.queue.send(document["id"])
    aws.calls.reset()
    assert deliver(aws) == ["deleted", "deleted"]
    assert aws.calls.counts["PutObject"] == 1
    assert status(client, document)["attempts"] == 1


def test_ten_concurrent_deliveries_of_one_task_run_it_once(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 0.5})
    for _ in range(9):
        aws.tasks.backends.queue.send(document["id"])
    aws.calls.reset()
    outcomes: list[str] = []
    workers = [
        threading.Thread(target=lambda: outcomes.extend(deliver(aws, max_messages=1)))
        for _ in range(10)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    final = status(client, document)
    assert final["status"] == "done" and final["attempts"] == 1
    assert aws.calls.counts["PutObject"] == 1


def test_progress_writes_are_throttled_however_often_a_task_logs(aws: Aws, client: Any) -> None:
    def chatty(params: dict[str, Any], ctx: TaskContext) -> dict[str, float]:
        # 100,000 calls spread evenly over 2 s, however fast or loaded the machine is.
        began = time.monotonic()
        for call in range(1, 100_001):
            ctx.log_progress("chatting", step=call, total_steps=100_000)
            if call % 1000 == 0:
                time.sleep(max(began + 2.0 * call / 100_000 - time.monotonic(), 0))
        return {"calls": call, "seconds": time.monotonic() - began}

    if aws.tasks.registry.get("chatty") is None:
        aws.tasks.registry.add("chatty", chatty)
    document = start(client, "chatty", {})
    aws.calls.reset()
    deliver(aws)
    assert status(client, document)["status"] == "done"
    updates = [params for name, params in aws.calls.log if name == "UpdateItem"]
    progress_writes = [
        p
        for p in updates
        if "#progress_message" in p["UpdateExpression"] and "#status" not in p["UpdateExpression"]
    ]
    ran = json.loads(result_object(aws, client, document)["body"])
    assert ran["calls"] == 100_000
    # claim + one progress write per full second (the first second counts the claim
    # as its write: 1 or 2 writes in 2 s, more only if a loaded machine made the 100,000
    # calls take longer) + the final write, which carries the last progress and, as one
    # transaction, gives the owner's place back
    assert 1 <= len(progress_writes) <= int(ran["seconds"]), (len(progress_writes), ran)
    assert len(updates) == 1 + len(progress_writes)
    assert [name for name, _ in aws.calls.log].count("TransactWriteItems") == 1


def test_a_task_continues_across_invocations_from_its_checkpoint(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 3})
    # A 2.5 s Lambda keeps 2 s to hand over: each invocation sleeps about half a second.
    outcomes = deliver(aws, timeout_seconds=2.5)
    assert len(outcomes) >= 3 and set(outcomes) == {"deleted"}
    final = status(client, document)
    assert final["status"] == "done" and final["attempts"] == 1
    assert final["elapsed_seconds"] >= 3
    result = result_object(aws, client, document)
    assert json.loads(result["body"]) == {"slept": 3}


def test_a_task_out_of_time_without_a_checkpoint_fails_with_a_clear_error(
    aws: Aws, client: Any
) -> None:
    def slow(params: dict[str, Any], ctx: TaskContext) -> str:
        for step in range(100):
            time.sleep(0.05)
            ctx.log_progress("working", step=step, total_steps=100)
        return "never"

    if aws.tasks.registry.get("slow") is None:
        aws.tasks.registry.add("slow", slow)
    document = start(client, "slow", {})
    deliver(aws, timeout_seconds=2.5)
    final = status(client, document)
    assert final["status"] == "failed" and final["attempts"] == 3
    assert final["error"]["type"] == "TimeoutError"
    assert "ctx.checkpoint" in final["error"]["message"]


def test_a_crashed_attempt_is_taken_over_once_its_lease_runs_out(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 0})
    # A worker claimed it and died: the record says started, the lease ran out.
    aws.tasks.backends.store.update(
        document["id"], {"status": "started", "attempts": 1, "lease_until": time.time() - 1}
    )
    assert deliver(aws) == ["deleted"]
    final = status(client, document)
    assert final["status"] == "done" and final["attempts"] == 2


def test_a_live_lease_sends_a_duplicate_back_to_the_queue(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 0})
    aws.tasks.backends.store.update(
        document["id"], {"status": "started", "attempts": 1, "lease_until": time.time() + 30}
    )
    assert deliver(aws, max_messages=1) == ["kept"]
    assert status(client, document)["status"] == "started"
    hidden = aws.sqs.get_queue_attributes(
        QueueUrl=aws.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
    assert hidden == "1"  # back later, once the lease would have run out


def test_the_dead_letter_handler_fails_a_task_whose_worker_died(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 0})
    aws.tasks.backends.store.update(
        document["id"], {"status": "started", "attempts": 3, "lease_until": time.time() - 1}
    )
    aws.sqs.send_message(QueueUrl=aws.dlq_url, MessageBody=json.dumps({"id": document["id"]}))
    assert deliver(aws, queue="dlq") == ["deleted"]
    final = status(client, document)
    assert final["status"] == "failed"
    assert final["error"]["type"] == "WorkerLost"


def test_cancelling_a_running_task_stops_it_at_its_next_progress(aws: Aws, client: Any) -> None:
    seen: list[int] = []

    def long(params: dict[str, Any], ctx: TaskContext) -> str:
        for step in range(1, 200):
            time.sleep(0.05)
            seen.append(step)
            if step == 10:
                client.http.delete(f"/tasks/long/{ctx_id[0]}", headers=json_headers())
            ctx.log_progress("working", step=step, total_steps=200)
        return "finished anyway"

    ctx_id: list[str] = []
    if aws.tasks.registry.get("long") is None:
        aws.tasks.registry.add("long", long)
    document = start(client, "long", {})
    ctx_id.append(document["id"])
    assert deliver(aws) == ["deleted"]
    final = status(client, document)
    assert final["status"] == "cancelled"
    assert len(seen) < 10 + 30  # stopped within about one progress interval
    assert aws.s3.list_objects_v2(Bucket=aws.tasks.settings.bucket).get("KeyCount", 0) == 0
