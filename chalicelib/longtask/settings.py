"""The one reader of the environment: every setting of SPEC §2 in a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# Lambda's own limit; the lease default is "worker timeout + 30" and without a
# Lambda context (tests, local tools) we assume the longest possible invocation.
_MAX_LAMBDA_SECONDS = 900


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    table: str
    queue: str
    dead_letter_queue: str
    bucket: str
    max_attempts: int = 3
    lease_seconds: float | None = None
    progress_interval: float = 1.0
    result_url_ttl: int = 300
    retention_days: int = 7
    max_body_bytes: int = 65536
    retry_seconds: float = 10.0
    private: bool = False  # status and results for their owner only
    worker_concurrency: int | None = None  # most worker Lambdas the queue may run at once
    endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(
                    f"{name} is not set: set it in the stage's environment_variables "
                    "in .chalice/config.json (make run does this for the local stack)"
                )
            return value

        def number(name: str, default: float, kind: type[float] = float, least: float = 0) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(kind(raw))
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a {kind.__name__}") from None
            if value < least:
                raise ConfigError(f"{name}={raw!r} must be at least {least}")
            return value

        lease = number("LONGTASK_LEASE_SECONDS", 0.0, float, 1) or None
        return cls(
            table=required("LONGTASK_TABLE"),
            queue=required("LONGTASK_QUEUE"),
            dead_letter_queue=required("LONGTASK_DLQ"),
            bucket=required("LONGTASK_BUCKET"),
            max_attempts=int(number("LONGTASK_MAX_ATTEMPTS", 3, int, 1)),
            lease_seconds=lease,
            progress_interval=number("LONGTASK_PROGRESS_INTERVAL", 1.0, float, 0),
            result_url_ttl=int(number("LONGTASK_RESULT_URL_TTL", 300, int, 1)),
            retention_days=int(number("LONGTASK_RETENTION_DAYS", 7, int, 1)),
            max_body_bytes=int(number("LONGTASK_MAX_BODY_BYTES", 65536, int, 1)),
            retry_seconds=number("LONGTASK_RETRY_SECONDS", 10.0, float, 0),
            private=env.get("LONGTASK_PRIVATE", "").strip().lower() in ("1", "true", "yes"),
            worker_concurrency=int(number("LONGTASK_WORKER_CONCURRENCY", 0, int, 0)) or None,
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        )

    def lease_for(self, invocation_seconds: float | None) -> float:
        """How long a claim holds without a heartbeat (SPEC: worker timeout + 30)."""
        if self.lease_seconds is not None:
            return self.lease_seconds
        return (invocation_seconds or _MAX_LAMBDA_SECONDS) + 30

    def retry_delay(self, attempt: int) -> float:
        """Backoff before attempt `attempt + 1`: doubling, at most 15 minutes."""
        return float(min(self.retry_seconds * 2 ** max(attempt - 1, 0), 900.0))
