"""DynamoDB: the items that admit a start (an owner's quota counts, idempotency keys)
and the write that gives an ended task's place back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..backends import keys
from ..backends.writes import ACTIVE, COUNTED, Admission, Count
from ..errors import Conflict, OverQuota, Repeated
from ..model import TERMINAL

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


def admit(
    client: DynamoDBClient,
    table: str,
    item: dict[str, Any],
    task_id: str,
    admission: Admission,
    token: str,
) -> None:
    """One transaction: the idempotency key (if any), the owner's active count, the
    owner's starts in this minute and the record itself. DynamoDB applies all or
    none, so of fifty concurrent starts exactly the allowed number get through,
    and of two concurrent repeats of one key exactly one makes a task.

    `item` carries `token` as its writer: a retry of this very transaction after its
    answer was lost finds the record written by it, and is a success."""
    a = admission
    writes: list[dict[str, Any]] = []
    if a.key_item_id is not None:
        writes.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": {
                        "id": {"S": a.key_item_id},
                        "task_id": {"S": task_id},
                        "fingerprint": {"S": a.fingerprint},
                        "expires_at": {"N": str(a.remember_until)},
                    },
                    # Admission.key_is_free, as a condition.
                    "ConditionExpression": "attribute_not_exists(id) OR expires_at < :now",
                    "ExpressionAttributeValues": {":now": {"N": repr(a.now)}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        )
    counts = a.counts()
    writes += [_count(table, count) for count in counts]
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
        client.transact_write_items(
            TransactItems=writes,  # type: ignore[arg-type]
            ClientRequestToken=token,
        )
    except client.exceptions.TransactionCanceledException as exc:
        if _written_by(client, table, task_id, token):
            return
        reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
        failed = [r.get("Code") == "ConditionalCheckFailed" for r in reasons]
        failed += [False] * (len(writes) - len(failed))
        if a.key_item_id is not None:
            if failed[0]:
                raise _repeated(client, table, a.key_item_id, reasons[0].get("Item")) from None
            failed = failed[1:]
        for count, refused in zip(counts, failed, strict=False):
            if refused:
                raise OverQuota(count.limit) from None
        if failed[len(counts)]:
            raise Conflict(None) from None  # an id drawn twice: 128 random bits say never
        raise


def _written_by(client: DynamoDBClient, table: str, task_id: str, token: str) -> bool:
    response = client.get_item(
        TableName=table,
        Key={"id": {"S": task_id}},
        ProjectionExpression="writer",
        ConsistentRead=True,
    )
    return (response.get("Item") or {}).get("writer", {}).get("S") == token


def _count(table: str, count: Count) -> dict[str, Any]:
    """The transaction write of one count: add one while below its quota (Count.allows)."""
    counter = count.counter
    return {
        "Update": {
            "TableName": table,
            "Key": {"id": {"S": count.item_id}},
            "UpdateExpression": f"SET {counter} = if_not_exists({counter}, :zero) + :one, "
            "expires_at = :until",
            "ConditionExpression": f"attribute_not_exists({counter}) OR {counter} < :most",
            "ExpressionAttributeValues": {
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":most": {"N": str(count.most)},
                ":until": {"N": str(count.expires_at)},
            },
        }
    }


def _repeated(
    client: DynamoDBClient, table: str, key_item_id: str, item: Mapping[str, Any] | None
) -> Repeated:
    if not item:
        response = client.get_item(
            TableName=table, Key={"id": {"S": key_item_id}}, ConsistentRead=True
        )
        item = response.get("Item") or {}
    return Repeated(item["task_id"]["S"], item["fingerprint"]["S"])


def give_back(table: str, owner: str) -> dict[str, Any]:
    """The transaction write that takes one off the owner's count of active tasks."""
    return {
        "TableName": table,
        "Key": {"id": {"S": keys.owner_item_id(owner)}},
        "UpdateExpression": f"SET {ACTIVE} = {ACTIVE} - :one",
        "ConditionExpression": f"attribute_exists({ACTIVE})",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }


def release(client: DynamoDBClient, table: str, task_id: str, token: str) -> bool:
    """Removes `counted` from an ended record and takes one off its owner's active
    count, in one transaction conditioned on `counted` still being there: of any
    number of calls for one task, exactly one gives its place back. The record keeps
    `token` as its writer, and the transaction carries it as its ClientRequestToken, so
    that a retry of the call that gave the place back knows it did."""
    response = client.get_item(
        TableName=table,
        Key={"id": {"S": task_id}},
        ProjectionExpression="#status, #counted, writer",
        ExpressionAttributeNames={"#status": "status", "#counted": COUNTED},
        ConsistentRead=True,
    )
    item = response.get("Item") or {}
    owner = item.get(COUNTED, {}).get("S")
    status = item.get("status", {}).get("S")
    if owner is None:
        return item.get("writer", {}).get("S") == token  # this very release, repeated
    if status not in {s.value for s in TERMINAL}:
        return False
    terminal = {f":s{i}": {"S": s.value} for i, s in enumerate(sorted(TERMINAL))}
    try:
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"id": {"S": task_id}},
                        "UpdateExpression": (
                            "REMOVE #counted, due_at, due_shard SET writer = :token"
                        ),
                        "ConditionExpression": (
                            f"#counted = :owner AND #status IN ({', '.join(terminal)})"
                        ),
                        "ExpressionAttributeNames": {
                            "#counted": COUNTED,
                            "#status": "status",
                        },
                        "ExpressionAttributeValues": {
                            ":owner": {"S": owner},
                            ":token": {"S": token},
                            **terminal,
                        },
                    }
                },
                {"Update": give_back(table, owner)},  # type: ignore[typeddict-item]
            ],
            ClientRequestToken=token,
        )
    except client.exceptions.TransactionCanceledException:
        # Released meanwhile: by this very call (a retry after its answer was lost), or
        # by another.
        return _written_by(client, table, task_id, token)
    return True
