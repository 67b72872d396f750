"""Every exception longtask raises: what a host app can meet, with the HTTP answer each
one becomes, the signals between the stores and the service, and the control flow that
unwinds a running task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import TaskRecord


class LongtaskError(Exception):
    """The root of every error a host app can meet from longtask.

    `status` and `code` are the HTTP answer: the web layer turns any of these into
    `{"error": {"code", "message", "fields"}}` (or a page with the same words), adding
    `fields`, `headers` and the status document of `task` where the error has them.
    """

    status: int = 500
    code: str = "internal_error"
    fields: dict[str, str]
    headers: dict[str, str]
    task: TaskRecord | None

    def __init__(
        self,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        task: TaskRecord | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}
        self.task = task


class ConfigError(LongtaskError, RuntimeError):
    """A required setting is missing or malformed."""

    status = 503
    code = "not_configured"


class InvalidParams(LongtaskError, ValueError):
    """One or more parameters are wrong; `fields` maps each name to what is wrong."""

    status = 400
    code = "invalid_parameters"

    def __init__(self, fields: dict[str, str], message: str | None = None) -> None:
        details = "; ".join(f"{name}: {problem}" for name, problem in fields.items())
        super().__init__(details, fields)
        self.message = message or "some parameters are not valid"


class InvalidCursor(LongtaskError, ValueError):
    """A `next` cursor that this store did not give out (or not to this owner)."""

    status = 400
    code = "invalid_parameters"

    def __init__(self, cursor: str) -> None:
        super().__init__("next is not valid", {"next": "is not a cursor this service gave out"})
        self.cursor = cursor


class UnknownKind(LongtaskError, LookupError):
    """No task of this kind is declared."""

    status = 404
    code = "not_found"

    def __init__(self, kind: str) -> None:
        super().__init__(f"there is no task kind {kind!r}")
        self.kind = kind


class TaskNotFound(LongtaskError, LookupError):
    """No such task, or not one the caller may see (the two look the same)."""

    status = 404
    code = "not_found"

    def __init__(self, task_id: str) -> None:
        super().__init__("there is no such task")
        self.task_id = task_id


class TaskGone(LongtaskError, LookupError):
    """The task was kept for its retention and is past it."""

    status = 410
    code = "gone"

    def __init__(self, task_id: str) -> None:
        super().__init__("this task is past its retention and was removed")
        self.task_id = task_id


class AlreadyFinished(LongtaskError):
    """The task has ended; `task` is how it ended."""

    status = 409
    code = "already_finished"

    task: TaskRecord

    def __init__(self, task: TaskRecord) -> None:
        super().__init__(f"the task is already {task.status.value}", task=task)


class NotDone(LongtaskError):
    """The task has no result yet; `task` is how it is now."""

    status = 409
    code = "not_done"

    task: TaskRecord

    def __init__(self, task: TaskRecord) -> None:
        super().__init__(f"the task is {task.status.value}, not done", task=task)


class NotFailed(LongtaskError):
    """Only a failed task can be retried; `task` is how it is now."""

    status = 409
    code = "not_failed"

    task: TaskRecord

    def __init__(self, task: TaskRecord) -> None:
        super().__init__(f"the task is {task.status.value}, not failed", task=task)


class KeyReused(LongtaskError):
    """An idempotency key that started `task` with other parameters."""

    status = 409
    code = "key_reused"

    task: TaskRecord

    def __init__(self, task: TaskRecord) -> None:
        super().__init__(
            "this idempotency key already started a task with other parameters",
            {"Idempotency-Key": "was used before with other parameters"},
            task=task,
        )


class AwsUnavailable(LongtaskError):
    """AWS stayed throttled or unreachable past the SDK's retries: nothing is wrong with
    the request, and the same request later will likely succeed."""

    status = 503
    code = "aws_unavailable"
    RETRY_AFTER = 5

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__(
            "the service is busy right now; try again in a few seconds",
            headers={"Retry-After": str(self.RETRY_AFTER)},
        )
        self.cause = cause


# Error codes of AWS answers that mean "busy or broken for now", not "wrong request".
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "TransactionInProgressException",
        "SlowDown",
        "InternalError",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# botocore's exceptions for a call that got no answer (a refused or reset connection,
# a timeout), by name: the framework reads them without importing botocore.
_NO_ANSWER = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ProxyConnectionError",
        "HTTPClientError",
    }
)


def aws_trouble(exc: BaseException) -> bool:
    """Whether `exc` is AWS being busy or out of reach past the SDK's retries (worth
    trying again later), rather than a wrong request or a bug."""
    if isinstance(exc, AwsUnavailable):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in _TRANSIENT_CODES or int(status) >= 500
    return any(kind.__name__ in _NO_ANSWER for kind in type(exc).__mro__)


# The quotas a start may be over: the setting that was reached, its error code, and
# what the answer says ({allowed} and {retry_after} filled in).
QUOTAS: dict[str, tuple[str, str]] = {
    "max_active_per_owner": (
        "too_many_active",
        "you have {allowed} tasks queued or running, the most allowed at once; "
        "start another when one of them has ended (try again in {retry_after} s)",
    ),
    "starts_per_minute": (
        "too_many_starts",
        "you have started {allowed} tasks this minute, the most allowed; "
        "try again in {retry_after} s",
    ),
}


class QuotaExceeded(LongtaskError):
    """A start over one of the owner's quotas: `limit` names the setting, `allowed` its
    value, `retry_after` the seconds after which trying again may succeed."""

    status = 429

    def __init__(self, limit: str, allowed: int, retry_after: int) -> None:
        self.code, message = QUOTAS[limit]
        super().__init__(
            message.format(allowed=allowed, retry_after=retry_after),
            {"limit": limit, limit: str(allowed), "retry_after": str(retry_after)},
            {"Retry-After": str(retry_after)},
        )
        self.limit = limit
        self.allowed = allowed
        self.retry_after = retry_after


class PartFailed(LongtaskError):
    """Parts of a map failed for good; the task fails without another attempt, since
    every attempt would replay the same failed parts."""

    final = True


class NotFoundByName(LongtaskError, ValueError):
    """ctx.map was given a function that another worker cannot find by its name (a lambda,
    a nested function): every attempt would fail alike, so the task fails at once."""

    final = True


class NonDeterministic(LongtaskError):
    """A replay of a task function no longer matches what its earlier run recorded (other
    operations, or other items): the task fails, since no attempt could continue it."""

    final = True


# -- signals between the stores and the service ------------------------------------


class Conflict(LongtaskError):
    """The record was not in an expected state; `current` is what it is (None: missing)."""

    status = 409
    code = "conflict"

    def __init__(self, current: TaskRecord | None) -> None:
        super().__init__(f"task is {current.status.value if current else 'missing'}")
        self.current = current


class OverQuota(LongtaskError):
    """A start the owner's quota refuses; `limit` names the setting that was reached."""

    ACTIVE = "max_active_per_owner"
    STARTS = "starts_per_minute"

    def __init__(self, limit: str) -> None:
        super().__init__(f"over the quota {limit}")
        self.limit = limit


class Repeated(LongtaskError):
    """The idempotency key of a start was used before: `task_id` is the task that start
    made, `fingerprint` what it was started with."""

    def __init__(self, task_id: str, fingerprint: str) -> None:
        super().__init__(f"this key already started task {task_id}")
        self.task_id = task_id
        self.fingerprint = fingerprint


class RetryLater(LongtaskError):
    """Leaves the SQS message on the queue: it comes back after the visibility we set.

    The worker reads one message per invocation (batch size 1), so raising can
    never make another task of the same batch run again.
    """


# -- control flow: raised inside a task's call stack to unwind it --------------------


class Unwind(BaseException):
    """The root of what unwinds a running task function. A BaseException, so that a
    task's own `except Exception` cannot swallow it."""


class TaskCancelled(Unwind):
    """Raised inside a running task when it has been cancelled."""


class OutOfTime(Unwind):
    """The invocation is nearly over and the task has no checkpoint to continue from."""


class HandOff(Unwind):
    """The invocation is nearly over: continue from the checkpoint in the next one."""


class OverTimeLimit(Unwind):
    """The task has run longer than its kind's max_seconds."""


class LostClaim(Unwind):
    """Another worker took the task over (this one was silent past its lease)."""


class Bookkeeping(Unwind):
    """A call longtask makes for the running task (its progress, a step's result, a
    map's state) failed with AWS trouble: the attempt stops, not by the task's fault."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"AWS trouble: {cause}")
        self.cause = cause


class WaitForParts(Unwind):
    """The parent ends its invocation until its parts have finished."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"{done} of {total} parts done")
        self.done = done
        self.total = total


def describe(error: LongtaskError) -> dict[str, Any]:
    """The `error` object of a JSON answer."""
    return {"code": error.code, "message": error.message, "fields": error.fields}
