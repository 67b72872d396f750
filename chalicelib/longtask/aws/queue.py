"""SQS: the task queue carries nothing but task ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

# SQS's own ceiling for a message's visibility timeout (12 hours).
MAX_VISIBILITY_SECONDS = 12 * 60 * 60
# SQS's ceiling for DelaySeconds.
MAX_DELAY_SECONDS = 15 * 60


def fair_group(owner: str) -> str:
    """The MessageGroupId of an owner's messages: SQS fair queues share the workers
    among groups, so a quiet owner's task is not stuck behind a noisy owner's backlog.
    Hashed, so that the queue's metadata does not carry who the owner is."""
    return hashlib.sha256(f"longtask-owner:{owner}".encode()).hexdigest()[:32]


def _grouped(owner: str | None) -> dict[str, Any]:
    return {} if owner is None else {"MessageGroupId": fair_group(owner)}


def encode_message(task_id: str) -> str:
    return json.dumps({"id": task_id})


def decode_message(body: str) -> str | None:
    """The task id in a message body, or None for a body that is not ours."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    task_id = data.get("id") if isinstance(data, dict) else None
    return task_id if isinstance(task_id, str) else None


class SqsTaskQueue:
    """One SQS queue, by name; its URL is looked up once, on first use."""

    def __init__(self, client: SQSClient, name: str) -> None:
        self.client = client
        self.name = name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self.client.get_queue_url(QueueName=self.name)["QueueUrl"]
        return self._url

    def send(self, task_id: str, delay_seconds: int = 0, owner: str | None = None) -> None:
        self.client.send_message(
            QueueUrl=self.url,
            MessageBody=encode_message(task_id),
            DelaySeconds=max(0, min(int(delay_seconds), MAX_DELAY_SECONDS)),
            **_grouped(owner),
        )

    def send_many(self, task_ids: Sequence[str], owner: str | None = None) -> None:
        """SendMessageBatch, ten at a time (SQS's ceiling for one batch)."""
        ids = list(task_ids)
        for start in range(0, len(ids), 10):
            entries: list[Any] = [
                {"Id": str(n), "MessageBody": encode_message(task_id), **_grouped(owner)}
                for n, task_id in enumerate(ids[start : start + 10])
            ]
            response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            if response.get("Failed"):
                failed = ", ".join(f["Id"] for f in response["Failed"])
                raise RuntimeError(f"SQS refused messages {failed} of a batch")

    def show_again_in(self, receipt_handle: str, seconds: float) -> None:
        """Makes a received message visible again in `seconds` (a backoff, or a lease)."""
        self.client.change_message_visibility(
            QueueUrl=self.url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(int(seconds), MAX_VISIBILITY_SECONDS)),
        )
