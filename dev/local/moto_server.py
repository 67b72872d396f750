"""The local stack's moto server, with DynamoDB items read and written atomically, as on AWS.

moto evaluates a ConditionExpression and then writes, without a lock, while its
server answers requests on many threads: two workers claiming one task at the same
moment could both win. On AWS a conditional write is atomic, and longtask's
"exactly one claim" rests on that, so here every DynamoDB write and read takes one lock.

moto ignores TransactWriteItems' ClientRequestToken; DynamoDB keeps each token for ten
minutes and answers a repeat of the same transaction with success without applying it
again (a retry after a lost answer), and a repeat with other items with an error. Here
too.

moto also backs up the whole table before each TransactWriteItems (a deep copy per
operation), so a start, which is one transaction, grew slower with every task the table
held: 3 starts a second after a few hundred tasks. Here a transaction keeps a copy of the
items it touches only, and puts them back if it is cancelled.
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
    _transactions_copy_only_their_items()
    _transactions_idempotent_by_token()


# How long DynamoDB remembers a transaction's ClientRequestToken.
TOKEN_SECONDS = 600


def _transactions_idempotent_by_token() -> None:
    import hashlib
    import json
    import time

    from moto.dynamodb.exceptions import DynamodbException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.transact_write_items
    if getattr(original, "_longtask_tokens", False):
        return
    seen: dict[str, tuple[str, float, Any]] = {}  # token -> items digest, when, answer

    @functools.wraps(original)
    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return original(self)
        digest = hashlib.sha256(
            json.dumps(self.body["TransactItems"], sort_keys=True).encode()
        ).hexdigest()
        with _LOCK:
            now = time.monotonic()
            for old in [t for t, (_, at, _) in seen.items() if now - at > TOKEN_SECONDS]:
                del seen[old]
            if token in seen:
                first, _, answer = seen[token]
                if first != digest:
                    raise DynamodbException(
                        "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                        "this ClientRequestToken was used with other items",
                    )
                return answer
            answer = original(self)
            seen[token] = (digest, now, answer)
            return answer

    transact_write_items._longtask_tokens = True  # type: ignore[attr-defined]
    DynamoHandler.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _transactions_copy_only_their_items() -> None:
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    if getattr(models, "_longtask_cheap_copies", False):
        return

    class _TablesKeptAsTheyAre:
        """The `copy` module as moto's DynamoDB backend sees it: tables are not copied
        (the transaction below keeps its own items instead); anything else is."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = _TablesKeptAsTheyAre  # type: ignore[assignment]
    original = DynamoDBBackend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _LOCK:
            kept = []
            for entry in transact_items:
                _, op = next(iter(entry.items()))
                table = self.tables.get(op.get("TableName"))
                if table is None or table.has_range_key:
                    continue  # moto's own answer (no such table) or a shape longtask has not
                attrs = op.get("Item") or op.get("Key") or {}
                if table.hash_key_attr not in attrs:
                    continue
                key = DynamoType(attrs[table.hash_key_attr])
                kept.append((table, key, copy.deepcopy(table.items.get(key))))
            try:
                original(self, transact_items)
            except Exception:
                for table, key, before in reversed(kept):
                    if before is None:
                        table.items.pop(key, None)
                    else:
                        table.items[key] = before
                raise

    transact_write_items._longtask_atomic = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    models._longtask_cheap_copies = True  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    make_dynamodb_writes_atomic()
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
