"""Fault injection: AWS on a bad day, on purpose, seeded and reproducible.

A FaultPlan makes a share of the calls to AWS go wrong in one of the ways they do:

- refused before AWS acts (THROTTLED, a 500, a connection RESET): nothing was applied;
- LOST: AWS applied the call and the answer never came back (a read timeout);
- SLOW: the call succeeds, late.

On the AWS clients (`inject(client, plan)`, botocore's `before-send` hook) the SDK's
own retries then do what they do on AWS: a refused call is sent again, and a call whose
answer was lost is sent again as the same request, which finds its own write applied.
On the memory backends (`faulty(backends, plan)`) a small stand-in for those retries
does the same, so fast tests meet the same faults. A call still failing after the
retries raises the error botocore raises, and longtask treats both alike.

Whether the n-th call of an operation is faulted, and how, depends only on the seed,
the operation and n: a run with the same plan and the same calls meets the same faults.

Set LONGTASK_FAULTS (e.g. `rate=0.08,lost=0.5,seed=7`) for the functions of a local
stack; in tests, give a FaultPlan to `longtask.testing.in_memory(..., faults=plan)`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .backends import Backends
from .backends.writes import new_token
from .errors import ConfigError

log = logging.getLogger(__name__)


class Fault(StrEnum):
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    RESET = "reset"
    LOST = "lost"
    SLOW = "slow"

    @property
    def applied(self) -> bool:
        """Whether AWS applied the call (the caller cannot tell)."""
        return self in (Fault.LOST, Fault.SLOW)


_REFUSED = (Fault.THROTTLED, Fault.SERVER_ERROR, Fault.RESET)

# The attempts botocore's standard retry mode makes of one call (DynamoDB gets one more).
SDK_ATTEMPTS = {"store": 4, "queue": 3, "results": 3}


def _share(*parts: object) -> float:
    """A number in [0, 1) that depends only on `parts`."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:7], "big") / float(1 << 56)


@dataclass
class FaultPlan:
    """Which share of calls go wrong, and how.

    `rate` of the calls of `ops` (every operation when empty) are faulted; of those,
    `lost` lose their answer after AWS applied them, `slow` succeed `delay` seconds late,
    and the rest are refused (throttled, a 500 or a reset connection, in turn).
    """

    rate: float = 0.0
    lost: float = 0.5
    slow: float = 0.0
    delay: float = 0.2
    seed: int = 0
    ops: frozenset[str] = frozenset()
    # The next calls of an operation, one by one (None: no fault), before `rate` applies:
    # for a test that needs one exact fault at one exact call (consumed as they happen).
    script: dict[str, tuple[Fault | None, ...]] = field(default_factory=dict)
    injected: Counter[tuple[str, str]] = field(default_factory=Counter, compare=False)
    _calls: Counter[str] = field(default_factory=Counter, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("rate", "lost", "slow"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"LONGTASK_FAULTS: {name} must be from 0 to 1, not {value}")
        if self.lost + self.slow > 1.0:
            raise ConfigError("LONGTASK_FAULTS: lost + slow must be at most 1")

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """`rate=0.08,lost=0.5,slow=0.1,delay=0.2,seed=7,ops=UpdateItem+SendMessage`."""
        values: dict[str, Any] = {}
        for entry in filter(None, (e.strip() for e in text.split(","))):
            name, _, value = entry.partition("=")
            name = name.strip()
            try:
                if name in ("rate", "lost", "slow", "delay"):
                    values[name] = float(value)
                elif name == "seed":
                    values[name] = int(value)
                elif name == "ops":
                    values[name] = frozenset(filter(None, value.strip().split("+")))
                else:
                    raise ConfigError(
                        f"LONGTASK_FAULTS: unknown entry {name!r} "
                        "(rate, lost, slow, delay, seed, ops)"
                    )
            except ValueError:
                raise ConfigError(f"LONGTASK_FAULTS: {name}={value!r} is not a number") from None
        return cls(**values)

    @property
    def active(self) -> bool:
        return self.rate > 0 or bool(self.script)

    def decide(self, op: str) -> Fault | None:
        """What goes wrong with this call of `op` (None: nothing), and count it."""
        if not self.active or (self.ops and op not in self.ops and op not in self.script):
            return None
        with self._lock:
            self._calls[op] += 1
            n = self._calls[op]
            scripted = self.script.get(op, ())
            if scripted:
                fault, self.script[op] = scripted[0], scripted[1:]
            elif not self.ops or op in self.ops:
                fault = self._drawn(op, n)
            else:
                fault = None
            if fault is not None:
                self.injected[(fault.value, op)] += 1
        if fault is not None:
            # One line per fault, so that a run of several processes can be added up.
            log.info("injected fault: %s %s", fault.value, op)
        return fault

    def _drawn(self, op: str, n: int) -> Fault | None:
        if _share(self.seed, op, n, "fault?") >= self.rate:
            return None
        how = _share(self.seed, op, n, "how")
        if how < self.lost:
            return Fault.LOST
        if how < self.lost + self.slow:
            return Fault.SLOW
        return _REFUSED[n % len(_REFUSED)]

    def by_kind(self) -> Counter[str]:
        kinds: Counter[str] = Counter()
        for (kind, _), count in self.injected.items():
            kinds[kind] += count
        return kinds


# -- the errors AWS calls end with -------------------------------------------------------


def client_error(op: str, fault: Fault) -> Exception:
    """The exception botocore raises for a call refused that way, past its retries."""
    from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

    if fault is Fault.LOST:
        return ReadTimeoutError(endpoint_url=f"fault://{op}", error="answer lost")
    if fault is Fault.RESET:
        return ConnectionClosedError(endpoint_url=f"fault://{op}")
    code, status = (
        ("ThrottlingException", 400) if fault is Fault.THROTTLED else ("InternalServerError", 500)
    )
    response: Any = {
        "Error": {"Code": code, "Message": f"injected: {fault.value}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, op)


# -- on the AWS clients ----------------------------------------------------------------------


class _Body:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self.content


def _refusal(protocol: str, url: str, fault: Fault) -> Any:
    """The HTTP answer AWS gives a refused call, in the client's protocol."""
    from botocore.awsrequest import AWSResponse

    if protocol.startswith("rest-xml") or protocol == "query":
        code = "SlowDown" if fault is Fault.THROTTLED else "InternalError"
        status = 503 if fault is Fault.THROTTLED else 500
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        headers = {"Content-Type": "application/xml"}
    else:
        code = "ThrottlingException" if fault is Fault.THROTTLED else "InternalServerError"
        status = 400 if fault is Fault.THROTTLED else 500
        body = json.dumps({"__type": code, "message": "injected"}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0"}
    response: Any = AWSResponse
    return response(url, status, headers, _Body(body))


def inject(client: Any, plan: FaultPlan) -> Any:
    """Makes `client` meet the faults of `plan` on every call it sends (and returns it)."""
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

    protocol = client.meta.service_model.protocol
    endpoint = client._endpoint  # the same HTTP session the client sends with

    def before_send(request: Any, event_name: str, **_: Any) -> Any:
        op = event_name.rsplit(".", 1)[-1]
        fault = plan.decide(op)
        if fault is None:
            return None
        if fault is Fault.SLOW:
            time.sleep(plan.delay)
            return None
        if fault is Fault.LOST:
            endpoint.http_session.send(request)  # applied; the answer is dropped
            raise ReadTimeoutError(endpoint_url=request.url, error="injected: answer lost")
        if fault is Fault.RESET:
            raise ConnectionClosedError(endpoint_url=request.url)
        return _refusal(protocol, request.url, fault)

    client.meta.events.register("before-send", before_send)
    return client


# -- on the memory backends ------------------------------------------------------------------


class _Faulty:
    """A backend whose calls meet the faults of a plan, retried as the SDK would."""

    def __init__(self, inner: Any, plan: FaultPlan, prefix: str, sleep: Callable[[float], None]):
        self.without_faults = inner
        self._inner = inner
        self._plan = plan
        self._prefix = prefix
        self._sleep = sleep

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name.startswith("_") or not callable(target):
            return target
        op = f"{self._prefix}.{name}"
        plan, sleep = self._plan, self._sleep

        def call(*args: Any, **kwargs: Any) -> Any:
            if name in _TOKEN_WRITES and kwargs.get("token") is None:
                # A retry resends the same request: the token is drawn once, before it.
                kwargs["token"] = new_token()
            error: Exception | None = None
            for _ in range(SDK_ATTEMPTS[self._prefix]):
                fault = plan.decide(op)
                if fault in _REFUSED:
                    assert fault is not None
                    error = client_error(op, fault)
                    continue
                if fault is Fault.SLOW:
                    sleep(plan.delay)
                result = target(*args, **kwargs)
                if fault is Fault.LOST:
                    error = client_error(op, fault)
                    continue
                return result
            assert error is not None
            raise error

        return call


# The store writes that name themselves with a token (see TaskStore).
_TOKEN_WRITES = frozenset({"create", "update", "admit", "release"})


def faulty(
    backends: Backends, plan: FaultPlan, sleep: Callable[[float], None] = lambda s: None
) -> Backends:
    """`backends` whose every call meets the faults of `plan` (operations are named
    `store.update`, `queue.send`, `results.put`, ...)."""
    return Backends(
        _Faulty(backends.store, plan, "store", sleep),
        _Faulty(backends.queue, plan, "queue", sleep),
        _Faulty(backends.results, plan, "results", sleep),
    )


def without_faults(backend: Any) -> Any:
    """The backend itself, if `faulty` wrapped it."""
    return getattr(backend, "without_faults", backend)
