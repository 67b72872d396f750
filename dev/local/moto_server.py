"""The local stack's moto server, with DynamoDB items read and written atomically, as on AWS.

moto evaluates a ConditionExpression and then writes, without a lock, while its
server answers requests on many threads: two workers claiming one task at the same
moment could both win. On AWS a conditional write is atomic, and longtask's
"exactly one claim" rests on that, so here every DynamoDB write and read takes one lock.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

# Reads too: moto applies an update in steps, and a read between them would see half of it
# (a task "done" without its finished_at), which DynamoDB never shows.
_ATOMIC = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "get_item",
    "query",
    "scan",
)
_LOCK = threading.RLock()


def make_dynamodb_writes_atomic() -> None:
    """Serialises moto's DynamoDB item reads and writes in this process (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _ATOMIC:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_longtask_atomic", False):
            continue

        def locked(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def write(self: Any, *args: Any, **kwargs: Any) -> Any:
                with _LOCK:
                    return original(self, *args, **kwargs)

            write._longtask_atomic = True  # type: ignore[attr-defined]
            return write

        setattr(DynamoDBBackend, name, locked(method))


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    make_dynamodb_writes_atomic()
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
