"""LongTasks: plugs the routes, the worker and the dead-letter handler into a Chalice app."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from chalice import Chalice
from chalice.app import SQSEvent

from .model import ErrorInfo, Expect, Status, TaskRecord, is_task_id, new_task_id, sources_of
from .params import Param
from .queue import TaskQueue, decode_message
from .results import ResultStore
from .runner import Outcome, Runner
from .settings import Settings
from .store import TaskStore
from .tasks import TaskFunction, TaskRegistry
from .web import Web

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Leaves the SQS message on the queue: it comes back after the visibility we set.

    The worker reads one message per invocation (batch size 1), so raising can
    never make another task of the same batch run again.
    """


class LongTasks:
    """The framework's one public object: `tasks = LongTasks(app)`, then `@tasks.task(...)`.

    Lambda finds event handlers as module attributes of app.py, so app.py binds
    `worker = tasks.worker` and `dead_letters = tasks.dead_letters`.
    """

    def __init__(self, app: Chalice, settings: Settings | None = None) -> None:
        self.app = app
        self.settings = settings or Settings.from_env()
        # Task outcomes are worth a line in the logs; Lambda's root logger would
        # otherwise drop INFO.
        logging.getLogger("chalicelib.longtask").setLevel(logging.INFO)
        self.registry = TaskRegistry()
        Web(self).register(app)

        def worker(event: SQSEvent) -> None:
            self._each_message(event, self.runner.run)

        def dead_letters(event: SQSEvent) -> None:
            self._each_message(event, lambda task_id, *_: self.runner.dead_letter(task_id))

        # Batch size 1 on purpose: Chalice 1.34 cannot turn on
        # ReportBatchItemFailures, so a failed message can only be kept by
        # raising, which would re-run every other task of a larger batch.
        # The poller's own concurrency cap matches the worker's reserved
        # concurrency: a throttled delivery would still count as a receive and
        # could push a task that never ran into the dead-letter queue.
        self.worker = app.on_sqs_message(
            queue=self.settings.queue,
            batch_size=1,
            name="worker",
            maximum_concurrency=self.settings.worker_concurrency,
        )(worker)
        self.dead_letters = app.on_sqs_message(
            queue=self.settings.dead_letter_queue, batch_size=1, name="dead_letters"
        )(dead_letters)

    # -- declaring tasks

    def task(
        self,
        kind: str,
        *,
        title: str | None = None,
        description: str | None = None,
        params: Mapping[str, Param | type] | None = None,
    ) -> Callable[[TaskFunction], TaskFunction]:
        """Declares a task kind: `@tasks.task("primes", params={"limit": Integer(min=2)})`."""

        def register(function: TaskFunction) -> TaskFunction:
            self.registry.add(kind, function, title=title, description=description, params=params)
            return function

        return register

    # -- AWS, built on first use so that importing app.py makes no client

    def _client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard"},
            signature_version="s3v4" if service == "s3" else None,
            s3={"addressing_style": "path"} if self.settings.endpoint_url else {},
        )
        session: Any = boto3.session.Session()
        return session.client(service, endpoint_url=self.settings.endpoint_url, config=config)

    @cached_property
    def store(self) -> TaskStore:
        return TaskStore(self._client("dynamodb"), self.settings.table)

    @cached_property
    def queue(self) -> TaskQueue:
        return TaskQueue(self._client("sqs"), self.settings.queue)

    @cached_property
    def results(self) -> ResultStore:
        return ResultStore(self._client("s3"), self.settings.bucket)

    @cached_property
    def runner(self) -> Runner:
        return Runner(self.registry, self.store, self.queue, self.results, self.settings)

    # -- what the routes do

    def start(self, kind: str, params: dict[str, Any], owner: str | None = None) -> TaskRecord:
        """Records a validated task as ready and queues its id."""
        now = time.time()
        task = TaskRecord(
            id=new_task_id(),
            kind=kind,
            params=params,
            status=Status.READY,
            created_at=now,
            updated_at=now,
            owner=owner,
            expires_at=int(now + self.settings.retention_days * 86400),
        )
        self.store.create(task)
        try:
            self.queue.send(task.id)
        except Exception:
            # Without its message the task would wait forever: say so instead.
            log.exception("task %s: could not queue it", task.id)
            self.store.update(
                task.id,
                {
                    "status": Status.FAILED,
                    "finished_at": time.time(),
                    "error": ErrorInfo(
                        "QueueError", "the task could not be queued; start it again"
                    ),
                },
            )
            raise
        return task

    def cancel(self, task: TaskRecord) -> TaskRecord:
        """Cancels a task that has not finished; a running one stops at its next progress."""
        now = time.time()
        return self.store.update(
            task.id,
            {"status": Status.CANCELLED, "finished_at": now, "updated_at": now},
            Expect(statuses=sources_of(Status.CANCELLED)),
        )

    def result_url(self, task: TaskRecord) -> str:
        assert task.result is not None
        return self.results.url(task.result.key, self.settings.result_url_ttl)

    # -- the Lambda handlers' loop

    def _each_message(self, event: SQSEvent, handle: Callable[..., Outcome]) -> None:
        context = event.context
        remaining = None
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):

            def remaining() -> float:
                return float(context.get_remaining_time_in_millis()) / 1000.0

        kept = []
        for record in event:
            task_id = decode_message(record.body)
            if task_id is None or not is_task_id(task_id):
                log.warning("dropping a message that is not a task id: %.100r", record.body)
                continue
            outcome = handle(task_id, record.receipt_handle, remaining)
            log.info("task %s: %s", task_id, outcome.value)
            if outcome.keeps_message:
                kept.append(task_id)
        if kept:
            raise RetryLater(f"task(s) {', '.join(kept)} will be delivered again")
