"""What a task is: its declaration, the context it runs with, and what it may return."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .display import DisplayHook
from .encoding import media_type
from .params import Param, declare


class TaskContext(Protocol):
    """What a running task can do besides computing: report progress, keep a checkpoint,
    notice a cancel."""

    attempt: int  # 1 on the first attempt, 2 on the first retry, ...
    resume_state: Any  # the last checkpoint of an earlier invocation, or None

    def log_progress(
        self, message: str, step: int | None = None, total_steps: int | None = None
    ) -> None:
        """Reports progress; call it as often as you like, writes are throttled.

        Raises TaskCancelled when the user cancelled the task. When the Lambda
        invocation runs short, a task that has a checkpoint is handed over to
        the next invocation from here.
        """

    def checkpoint(self, state: Any) -> None:
        """Keeps a small JSON state that a later invocation resumes from."""

    @property
    def cancelled(self) -> bool:
        """Whether the user cancelled the task (checked at most once per interval)."""

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        """Runs `fn()` once per task; a later run of the task gets its kept result."""

    def map(
        self,
        items: Iterable[Any],
        fn: Callable[[Any, Any], Any],
        *,
        max_parallel: int | None = None,
        tolerate: int = 0,
    ) -> list[Any]:
        """Runs `fn(item, ctx)` on each item in parallel workers; the results in order (a
        PartFailure for each of at most `tolerate` parts that failed for good)."""


TaskFunction = Callable[[dict[str, Any], TaskContext], Any]


@dataclass(frozen=True)
class File:
    """A result with its own content type and download name (e.g. a CSV report)."""

    body: bytes | str
    content_type: str = "application/octet-stream"
    filename: str | None = None


@dataclass(frozen=True)
class EncodedResult:
    body: bytes
    content_type: str
    filename: str | None


def encode_result(value: Any) -> EncodedResult:
    """The bytes stored in S3 for what a task returned: no pickle, JSON or text only."""
    if isinstance(value, File):
        if isinstance(value.body, bytes):
            return EncodedResult(value.body, value.content_type, value.filename)
        # Text is stored as UTF-8, so the label says UTF-8 whatever charset was given.
        media = media_type(value.content_type)
        return EncodedResult(value.body.encode(), f"{media}; charset=utf-8", value.filename)
    if isinstance(value, bytes):
        return EncodedResult(value, "application/octet-stream", None)
    if isinstance(value, str):
        return EncodedResult(value.encode(), "text/plain; charset=utf-8", None)
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"a task must return str, bytes, File or a JSON value, not {type(value).__name__}"
        ) from exc
    return EncodedResult(text.encode(), "application/json", None)


_EXTENSIONS = {"application/json": ".json", "text/plain": ".txt", "text/csv": ".csv"}


def download_name(result: EncodedResult, stem: str) -> str:
    """The file name a result downloads as: the task's own, or the stem and a suffix."""
    if result.filename:
        return result.filename
    return stem + _EXTENSIONS.get(media_type(result.content_type), ".bin")


@dataclass(frozen=True)
class TaskDefinition:
    kind: str
    function: TaskFunction
    title: str
    description: str
    params: dict[str, Param]
    max_seconds: float | None = None  # the longest it may run, from its first start
    display_result: DisplayHook | None = None  # how its result page shows the result
    duration_hint: str | None = None  # what the start form says about how long it takes


# The names `LongTasks.start` keeps for itself beside a task's parameters.
RESERVED_PARAMS = frozenset({"owner", "idempotency_key"})


class TaskRegistry:
    """The task kinds an app offers, in the order they were declared."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskDefinition] = {}

    def add(
        self,
        kind: str,
        function: TaskFunction,
        *,
        title: str | None = None,
        description: str | None = None,
        params: Mapping[str, Param | type] | None = None,
        max_seconds: float | None = None,
        display_result: DisplayHook | None = None,
        duration_hint: str | None = None,
    ) -> TaskDefinition:
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"task kind {kind!r}: max_seconds must be more than 0")
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,39}", kind):
            raise ValueError(f"task kind {kind!r}: use lower case letters, digits and -")
        if kind in self._tasks:
            raise ValueError(f"task kind {kind!r} is declared twice")
        taken = sorted(set(params or {}) & RESERVED_PARAMS)
        if taken:
            raise ValueError(
                f"task kind {kind!r}: {', '.join(taken)} cannot be a parameter's name "
                "(tasks.start takes it for itself)"
            )
        doc = (function.__doc__ or "").strip()
        definition = TaskDefinition(
            kind=kind,
            function=function,
            title=title or kind.capitalize(),
            description=description if description is not None else doc,
            params=declare(params or {}),
            max_seconds=max_seconds,
            display_result=display_result,
            duration_hint=duration_hint,
        )
        self._tasks[kind] = definition
        return definition

    def get(self, kind: str) -> TaskDefinition | None:
        return self._tasks.get(kind)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)
