"""The one reader of the environment: every LONGTASK_* setting in a frozen object.

Nothing here runs at import: LongTasks reads the settings on first use, so a host app
(and its tests) can import without any of them set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError

# Lambda's own limit; the lease default is "worker timeout + 30" and without a
# Lambda context (tests, local tools) we assume the longest possible invocation.
_MAX_LAMBDA_SECONDS = 900

# The AWS resources, by the variable that names each.
RESOURCE_VARIABLES = {
    "table": "LONGTASK_TABLE",
    "queue": "LONGTASK_QUEUE",
    "dead_letter_queue": "LONGTASK_DLQ",
    "bucket": "LONGTASK_BUCKET",
}


def missing(variable: str) -> ConfigError:
    return ConfigError(
        f"{variable} is not set: give it to the function's environment (the stage's "
        "environment_variables in the app's .chalice/config.json)"
    )


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("1", "true", "yes", "0", "false", "no"):
        raise ConfigError(f"{name}={raw!r} is not true or false")
    return raw in ("1", "true", "yes")


def _number(env: Mapping[str, str], name: str, kind: type, least: float) -> float | None:
    """The number a variable holds, None when it is unset; ConfigError when it is not a
    `kind` of at least `least`."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(kind(raw))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {kind.__name__}") from None
    if value < least:
        raise ConfigError(f"{name}={raw!r} must be at least {least:g}")
    return value


def demo_tasks_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """LONGTASK_DEMO_TASKS, read when app.py declares its tasks (default: true)."""
    return _flag(os.environ if environ is None else environ, "LONGTASK_DEMO_TASKS", True)


def worker_concurrency(environ: Mapping[str, str]) -> int | None:
    """LONGTASK_WORKER_CONCURRENCY: the most worker Lambdas the queue may run at once
    (None: no cap). Chalice's event source needs at least 2."""
    value = _number(environ, "LONGTASK_WORKER_CONCURRENCY", int, 0)
    return int(value) if value else None


@dataclass(frozen=True)
class EventSources:
    """What the worker functions listen to, as `chalice deploy` and `chalice package` see
    it when they import app.py with the stage's environment_variables set.

    Without a variable (a host app's unit tests, a plain `import app`) the queue name
    says what is missing, so that a deploy without it fails on a queue that cannot
    exist instead of deploying something half-configured.
    """

    queue: str
    dead_letter_queue: str
    worker_concurrency: int | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EventSources:
        env = os.environ if environ is None else environ

        def queue(field: str) -> str:
            variable = RESOURCE_VARIABLES[field]
            return env.get(variable, "").strip() or f"{variable}-is-not-set"

        return cls(queue("queue"), queue("dead_letter_queue"), worker_concurrency(env))

    @classmethod
    def of(cls, settings: Settings) -> EventSources:
        fallback = cls.from_env({})
        return cls(
            settings.queue or fallback.queue,
            settings.dead_letter_queue or fallback.dead_letter_queue,
            settings.worker_concurrency,
        )


# The numeric settings: field, variable, type, least value. Their defaults are the
# fields' own, below.
_NUMBERS: tuple[tuple[str, str, type, float], ...] = (
    ("max_attempts", "LONGTASK_MAX_ATTEMPTS", int, 1),
    ("lease_seconds", "LONGTASK_LEASE_SECONDS", float, 1),
    ("progress_interval", "LONGTASK_PROGRESS_INTERVAL", float, 0),
    ("result_url_ttl", "LONGTASK_RESULT_URL_TTL", int, 1),
    ("retention_days", "LONGTASK_RETENTION_DAYS", int, 1),
    ("max_body_bytes", "LONGTASK_MAX_BODY_BYTES", int, 1),
    ("retry_seconds", "LONGTASK_RETRY_SECONDS", float, 0),
    ("max_active_per_owner", "LONGTASK_MAX_ACTIVE_PER_OWNER", int, 1),
    ("starts_per_minute", "LONGTASK_STARTS_PER_MINUTE", int, 1),
    ("stale_seconds", "LONGTASK_STALE_SECONDS", float, 1),
    ("reconcile_seconds", "LONGTASK_RECONCILE_SECONDS", float, 1),
)


@dataclass(frozen=True)
class Settings:
    """Every setting, with its one default. Derived values are properties."""

    # The AWS resources; only the AWS backends need them (the in-memory ones do not).
    table: str | None = None
    queue: str | None = None
    dead_letter_queue: str | None = None
    bucket: str | None = None
    max_attempts: int = 3
    lease_seconds: float | None = None  # None: the worker's timeout + 30 s
    progress_interval: float = 1.0
    result_url_ttl: int = 300
    retention_days: int = 7
    max_body_bytes: int = 65536
    retry_seconds: float = 10.0
    private: bool = False  # status and results for their owner only
    worker_concurrency: int | None = None  # most worker Lambdas the queue may run at once
    max_active_per_owner: int = 5  # tasks one owner may have queued or running
    starts_per_minute: int = 30  # starts one owner may make in a minute
    # How long past the time a task should have moved on (been claimed, taken over,
    # retried, continued) the reconciler takes it for stuck and repairs it.
    stale_seconds: float = 120.0
    # How often the local stack runs the reconciler (on AWS a schedule runs it each minute).
    reconcile_seconds: float = 60.0
    endpoint_url: str | None = None
    # Fault injection on the AWS clients (faults.py), for a local stack or a test stage:
    # e.g. "rate=0.08,lost=0.5,seed=7". Unset on a real stage.
    faults: str | None = None

    def resource(self, name: str) -> str:
        """The name of one AWS resource; ConfigError naming its variable if unset."""
        value: str | None = getattr(self, name)
        if not value:
            raise missing(RESOURCE_VARIABLES[name])
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        given: dict[str, object] = {
            field: env.get(variable, "").strip() or None
            for field, variable in RESOURCE_VARIABLES.items()
        }
        for field, variable, kind, least in _NUMBERS:
            value = _number(env, variable, kind, least)
            if value is not None:
                given[field] = kind(value)
        given["private"] = _flag(env, "LONGTASK_PRIVATE", cls.private)
        given["worker_concurrency"] = worker_concurrency(env)
        given["endpoint_url"] = env.get("AWS_ENDPOINT_URL") or None
        faults = env.get("LONGTASK_FAULTS", "").strip() or None
        if faults is not None:
            from .faults import FaultPlan

            FaultPlan.parse(faults)  # a malformed plan is a ConfigError now, not at a call
        given["faults"] = faults
        return cls(**given)  # type: ignore[arg-type]

    @property
    def retention_seconds(self) -> int:
        """How long records and results are kept, in seconds."""
        return self.retention_days * 86400

    def lease_for(self, invocation_seconds: float | None) -> float:
        """How long a claim holds without a heartbeat: the worker's timeout + 30 s."""
        if self.lease_seconds is not None:
            return self.lease_seconds
        return (invocation_seconds or _MAX_LAMBDA_SECONDS) + 30

    def due(self, moves_on_by: float) -> float:
        """When the reconciler looks at a task that should move on by `moves_on_by`."""
        return moves_on_by + self.stale_seconds

    def retry_delay(self, attempt: int) -> float:
        """Backoff before attempt `attempt + 1`: doubling, at most 15 minutes."""
        return float(min(self.retry_seconds * 2 ** max(attempt - 1, 0), 900.0))
