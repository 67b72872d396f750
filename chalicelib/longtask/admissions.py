"""DynamoDB: the items that admit a start (an owner's quota counts, idempotency keys)
and the write that gives an ended task's place back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .backends import Admission, Conflict, OverQuota, Repeated
from .model import TERMINAL

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

# Quota and idempotency items share the table. Their ids hold "#", which no task id
# does, and they carry no `owner`, so they never show up in the owner index.
# `counted` on a task record names the owner item whose active count holds it.
COUNTED = "counted"


def owner_item_id(owner: str) -> str:
    return f"owner#{owner}"


def starts_item_id(owner: str, minute: int) -> str:
    return f"starts#{owner}#{minute}"


def key_item_id(key: str) -> str:
    return f"start#{key}"


def admit(
    client: DynamoDBClient, table: str, item: dict[str, Any], task_id: str, admission: Admission
) -> None:
    """One transaction: the idempotency key (if any), the owner's active count, the
    owner's starts in this minute and the record itself. DynamoDB applies all or
    none, so of fifty concurrent starts exactly the allowed number get through,
    and of two concurrent repeats of one key exactly one makes a task."""
    a = admission
    item = {**item}
    item[COUNTED] = {"S": a.owner}
    writes: list[dict[str, Any]] = []
    if a.key is not None:
        writes.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": {
                        "id": {"S": key_item_id(a.key)},
                        "task_id": {"S": task_id},
                        "fingerprint": {"S": a.fingerprint},
                        "expires_at": {"N": str(a.remember_until)},
                    },
                    # A key past its time may be used again (TTL deletes lazily).
                    "ConditionExpression": "attribute_not_exists(id) OR expires_at < :now",
                    "ExpressionAttributeValues": {":now": {"N": repr(a.now)}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        )
    # An owner who stops coming leaves no count behind: it expires a day after the
    # last of their tasks does (a release that finds it gone changes nothing).
    writes.append(
        _count(table, owner_item_id(a.owner), "active", a.max_active, a.remember_until + 86400)
    )
    # A minute's count is kept an hour past its minute, then DynamoDB's TTL removes it.
    minute_ends = (a.minute + 61) * 60
    writes.append(
        _count(table, starts_item_id(a.owner, a.minute), "starts", a.starts_per_minute, minute_ends)
    )
    writes.append(
        {
            "Put": {
                "TableName": table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(id)",
            }
        }
    )
    try:
        client.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]
    except client.exceptions.TransactionCanceledException as exc:
        reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
        failed = [r.get("Code") == "ConditionalCheckFailed" for r in reasons]
        failed += [False] * (len(writes) - len(failed))
        if a.key is not None:
            if failed[0]:
                raise _repeated(client, table, a.key, reasons[0].get("Item")) from None
            failed = failed[1:]
        if failed[0]:
            raise OverQuota(OverQuota.ACTIVE) from None
        if failed[1]:
            raise OverQuota(OverQuota.STARTS) from None
        if failed[2]:
            raise Conflict(None) from None  # an id drawn twice: 128 random bits say never
        raise


def _count(table: str, item_id: str, counter: str, most: int, until: int) -> dict[str, Any]:
    """The transaction write that adds one to `counter` of an item while it is below `most`."""
    return {
        "Update": {
            "TableName": table,
            "Key": {"id": {"S": item_id}},
            "UpdateExpression": f"SET {counter} = if_not_exists({counter}, :zero) + :one, "
            "expires_at = :until",
            "ConditionExpression": f"attribute_not_exists({counter}) OR {counter} < :most",
            "ExpressionAttributeValues": {
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":most": {"N": str(most)},
                ":until": {"N": str(until)},
            },
        }
    }


def _repeated(
    client: DynamoDBClient, table: str, key: str, item: Mapping[str, Any] | None
) -> Repeated:
    if not item:
        response = client.get_item(
            TableName=table, Key={"id": {"S": key_item_id(key)}}, ConsistentRead=True
        )
        item = response.get("Item") or {}
    return Repeated(item["task_id"]["S"], item["fingerprint"]["S"])


def release(client: DynamoDBClient, table: str, task_id: str) -> bool:
    """Removes `counted` from an ended record and takes one off its owner's active
    count, in one transaction conditioned on `counted` still being there: of any
    number of calls for one task, exactly one gives its place back."""
    response = client.get_item(
        TableName=table,
        Key={"id": {"S": task_id}},
        ProjectionExpression="#status, #counted",
        ExpressionAttributeNames={"#status": "status", "#counted": COUNTED},
        ConsistentRead=True,
    )
    item = response.get("Item") or {}
    owner = item.get(COUNTED, {}).get("S")
    status = item.get("status", {}).get("S")
    if owner is None or status not in {s.value for s in TERMINAL}:
        return False
    terminal = {f":s{i}": {"S": s.value} for i, s in enumerate(sorted(TERMINAL))}
    try:
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"id": {"S": task_id}},
                        "UpdateExpression": "REMOVE #counted",
                        "ConditionExpression": (
                            f"#counted = :owner AND #status IN ({', '.join(terminal)})"
                        ),
                        "ExpressionAttributeNames": {
                            "#counted": COUNTED,
                            "#status": "status",
                        },
                        "ExpressionAttributeValues": {":owner": {"S": owner}, **terminal},
                    }
                },
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"id": {"S": owner_item_id(owner)}},
                        "UpdateExpression": "SET active = active - :one",
                        "ConditionExpression": "attribute_exists(active)",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )
    except client.exceptions.TransactionCanceledException:
        return False  # released meanwhile by another call
    return True
