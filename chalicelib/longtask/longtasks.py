"""LongTasks: mounts the routes, the worker and the dead-letter handler in a Chalice app."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chalice import Chalice
from chalice.app import CloudWatchEvent, Rate, SQSEvent

from .aws import aws_backends
from .aws.queue import decode_message
from .backends import Backends, Clock
from .backends.keys import principal_owner
from .display import DisplayHook
from .errors import Bookkeeping, RetryLater, aws_trouble
from .model import TaskRecord, is_task_id
from .params import Param
from .reconciler import BATCH, Reconciler, Repairs
from .runner import Outcome, Runner
from .service import TaskService
from .settings import EventSources, Settings
from .tasks import TaskFunction, TaskRegistry
from .web.pages import Look
from .web.routes import Routes
from .web.static import static_name

log = logging.getLogger(__name__)


class LongTasks:
    """The framework's one public object: `tasks = LongTasks(app)`, then `@tasks.task(...)`.

    Lambda finds event handlers as module attributes of app.py, so app.py binds
    `worker = tasks.worker`, `dead_letters = tasks.dead_letters` and
    `reconciler = tasks.reconciler`.

    `url_prefix` mounts every route under a path of the host app ("/jobs"); longtask
    adds nothing outside it and leaves the host's own routes and answers alone.
    `authorizer` (a Chalice authorizer: IAM, Cognito or the host's own) guards every
    route; the principal it names is then the owner of the caller's tasks.
    `site_name` is what the pages call the site, in their header and titles (default:
    the Chalice app's name); `templates` a directory of the host's own templates, each
    used in place of longtask's of the same name (base.html for the layout; longtask's
    own stay reachable as "longtask/base.html", to extend).
    `settings` and `backends` default to the environment and to DynamoDB, SQS and S3,
    both made on first use; `longtask.testing` passes in-memory backends instead.
    """

    def __init__(
        self,
        app: Chalice,
        *,
        url_prefix: str = "",
        authorizer: Any = None,
        site_name: str | None = None,
        templates: str | Path | None = None,
        settings: Settings | None = None,
        backends: Backends | None = None,
        clock: Clock = time.time,
    ) -> None:
        if url_prefix and (not url_prefix.startswith("/") or url_prefix.endswith("/")):
            raise ValueError(f"url_prefix {url_prefix!r}: start it with / and end it without")
        self.app = app
        self.url_prefix = url_prefix
        self.clock = clock
        self._settings = settings
        self._backends = backends
        self._runner: Runner | None = None
        self._lock = threading.Lock()
        # Task outcomes are worth a line in the logs; Lambda's root logger would
        # otherwise drop INFO.
        logging.getLogger(__package__).setLevel(logging.INFO)
        self.registry = TaskRegistry()
        self.service = TaskService(
            self.registry, lambda: self.settings, lambda: self.backends, clock
        )
        look = Look(site_name or app.app_name, None if templates is None else str(templates))
        routes = Routes(self.service, url_prefix, authorizer, look)
        app.register_blueprint(routes.blueprint, url_prefix=url_prefix or None)

        def worker(event: SQSEvent) -> None:
            self._each_message(event, self.runner.run)

        def dead_letters(event: SQSEvent) -> None:
            self._each_message(event, lambda task_id, *_: self.runner.dead_letter(task_id))

        sources = EventSources.of(settings) if settings else EventSources.from_env()
        # Batch size 1 on purpose: Chalice 1.34 cannot turn on
        # ReportBatchItemFailures, so a failed message can only be kept by
        # raising, which would re-run every other task of a larger batch.
        # The poller's own concurrency cap matches the worker's reserved
        # concurrency: a throttled delivery would still count as a receive and
        # could push a task that never ran into the dead-letter queue.
        self.worker = app.on_sqs_message(
            queue=sources.queue,
            batch_size=1,
            name="worker",
            maximum_concurrency=sources.worker_concurrency,
        )(worker)
        self.dead_letters = app.on_sqs_message(
            queue=sources.dead_letter_queue,
            batch_size=1,
            name="dead_letters",
        )(dead_letters)

        def reconciler(event: CloudWatchEvent) -> None:
            self.reconcile()

        # Every minute: what went stale is repaired within about `stale_seconds` plus a
        # minute, and a quiet stage costs one Query a minute.
        self.reconciler = app.schedule(Rate(1, unit=Rate.MINUTES), name="reconciler")(reconciler)

    # -- declaring and starting tasks

    def task(
        self,
        kind: str,
        *,
        title: str | None = None,
        description: str | None = None,
        params: Mapping[str, Param | type] | None = None,
        max_seconds: float | None = None,
        display_result: DisplayHook | None = None,
        duration_hint: str | None = None,
    ) -> Callable[[TaskFunction], TaskFunction]:
        """Declares a task kind: `@tasks.task("primes", params={"limit": Integer(min=2)})`.

        `max_seconds` caps its running time from its first start: past it, the task
        fails at its next progress report instead of holding a worker.
        `display_result(result)` says how the result page shows a result: a sentence, a
        dict of labelled values or a ResultDisplay (the default shows JSON objects as
        labelled values and text or CSV as a preview). `duration_hint` tells the start
        form's reader how long the task takes ("About 5 s per million")."""

        def register(function: TaskFunction) -> TaskFunction:
            self.registry.add(
                kind,
                function,
                title=title,
                description=description,
                params=params,
                max_seconds=max_seconds,
                display_result=display_result,
                duration_hint=duration_hint,
            )
            return function

        return register

    def start(
        self,
        kind: str,
        /,
        *,
        owner: str | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> TaskRecord:
        """Starts a task from the host's own code, validated exactly as an HTTP start is
        (InvalidParams names each wrong field).

        `owner` names the host's user, as an authorizer's principal does: the task is
        theirs, counted in their quotas (QuotaExceeded), and listed, seen and cancelled
        over HTTP by the caller the authorizer names so. Without one the task is the
        host's: no quota, and no caller can cancel it (the host can, with `cancel`).
        A repeat with the same `idempotency_key` (and owner) gets the first task back;
        with other parameters, KeyReused."""
        given = {name: [value] for name, value in params.items()}
        who = None if owner is None else principal_owner(owner)
        return self.service.start_request(kind, given, who, idempotency_key).task

    def get(self, task_id: str) -> TaskRecord | None:
        """The task's record, whoever owns it; None if there is no such task."""
        return self.service.get(task_id)

    def cancel(self, task_id: str) -> TaskRecord:
        """Cancels the task, whoever owns it; a running one stops at its next progress
        report. TaskNotFound, or AlreadyFinished once it has ended."""
        return self.service.cancel_any(task_id)

    def static_url(self, name: str) -> str:
        """The path of one of longtask's static files under the mount, by its
        content-hashed name: `tasks.static_url("client.js")` for a host page's script
        (KeyError for a file longtask does not have)."""
        return f"{self.url_prefix}/static/{static_name(name)}"

    def url_for(self, task: TaskRecord) -> str:
        """The path of the task's status page (and JSON) in the app, under the mount:
        "/jobs/tasks/<kind>/<id>" (behind API Gateway's default URL, after its stage)."""
        return f"{self.url_prefix}/tasks/{quote(task.kind)}/{task.id}"

    # -- settings and backends, on first use

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    @property
    def backends(self) -> Backends:
        if self._backends is None:
            with self._lock:
                if self._backends is None:
                    self._backends = aws_backends(self.settings)
        return self._backends

    def use_backends(
        self, backends: Backends, settings: Settings | None = None, clock: Clock | None = None
    ) -> None:
        """Swaps in other backends (and settings, and a clock), e.g. in-memory ones for tests."""
        with self._lock:
            self._backends = backends
            if settings is not None:
                self._settings = settings
            if clock is not None:
                self.clock = self.service.clock = clock
            self._runner = None

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            backends = self.backends
            self._runner = Runner(
                self.registry,
                backends.store,
                backends.queue,
                backends.results,
                self.settings,
                clock=self.clock,
                release=self.service.release,
            )
        return self._runner

    def reconcile(self, limit: int = BATCH) -> Repairs:
        """Repairs what went stale (see reconciler.py); the schedule calls it each minute."""
        return Reconciler(self.backends, self.settings, self.clock).run(limit)

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
            try:
                outcome = handle(task_id, record.receipt_handle, remaining)
            except (Exception, Bookkeeping) as exc:
                if not aws_trouble(getattr(exc, "cause", exc)):
                    raise
                # Not the task's fault: its message comes back (after the visibility
                # the claim set) and the delivery tries again.
                log.warning("task %s: AWS trouble (%s); its message comes back", task_id, exc)
                kept.append(task_id)
                continue
            log.info("task %s: %s", task_id, outcome.value)
            if outcome.keeps_message:
                kept.append(task_id)
        if kept:
            raise RetryLater(f"task(s) {', '.join(kept)} will be delivered again")
