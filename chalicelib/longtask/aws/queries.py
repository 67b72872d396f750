"""DynamoDB: the reads that span many items: a batch by ids, a page of an owner's tasks
from the owner index, and a window of failures from the sparse failed index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backends.writes import CURSOR_FIELDS, decode_cursor, encode_cursor
from ..errors import InvalidCursor
from ..model import iso
from .codec import DUE_SHARD

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

OWNER_INDEX = "by_owner"
# Sparse: only failed records carry `failed_day` (YYYY-MM-DD of finished_at), so an
# operator lists a day's failures with one query instead of scanning every task.
FAILED_INDEX = "failed"
FAILED_DAY = "failed_day"
# Sparse: only a record that has not ended carries `due_shard` and `due_at` (when the
# reconciler looks at it unless a write moves it on).
DUE_INDEX = "due"
_BATCH = 100  # BatchGetItem's most keys a request


def day_of(ts: float) -> str:
    return (iso(ts) or "")[:10]


def batch_get(client: DynamoDBClient, table: str, keys: list[str]) -> list[dict[str, Any]]:
    """Every item of `keys` that exists, read consistently, in any order."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), _BATCH):
        wanted: dict[str, Any] = {
            table: {
                "Keys": [{"id": {"S": k}} for k in keys[start : start + _BATCH]],
                "ConsistentRead": True,
            }
        }
        while wanted:
            response = client.batch_get_item(RequestItems=wanted)
            items.extend(response.get("Responses", {}).get(table, []))
            wanted = response.get("UnprocessedKeys") or {}
    return items


def owner_page(
    client: DynamoDBClient, table: str, owner: str, limit: int, cursor: str | None
) -> tuple[list[str], str | None]:
    """The ids of one page of the owner's tasks, newest first (keys-only owner index),
    and the cursor of the next page."""
    kwargs: dict[str, Any] = {}
    if cursor is not None:
        after = decode_cursor(cursor, CURSOR_FIELDS)
        if after["owner"] != owner:
            raise InvalidCursor(cursor)
        kwargs["ExclusiveStartKey"] = {name: {"S": value} for name, value in after.items()}
    response = client.query(
        TableName=table,
        IndexName=OWNER_INDEX,
        KeyConditionExpression="#owner = :owner",
        ExpressionAttributeNames={"#owner": "owner"},
        ExpressionAttributeValues={":owner": {"S": owner}},
        ScanIndexForward=False,
        Limit=limit,
        **kwargs,
    )
    ids = [item["id"]["S"] for item in response.get("Items", [])]
    last = response.get("LastEvaluatedKey")
    next_cursor = None
    if last:
        next_cursor = encode_cursor({name: last[name]["S"] for name in CURSOR_FIELDS})
    return ids, next_cursor


def failed_ids(
    client: DynamoDBClient, table: str, since: float, until: float, limit: int
) -> list[str]:
    """Ids of tasks that failed from `since` to `until`, newest first: one query per
    day of the sparse failed index, newest day first."""
    ids: list[str] = []
    day = until
    while len(ids) < limit and day_of(day) >= day_of(since):
        response = client.query(
            TableName=table,
            IndexName=FAILED_INDEX,
            KeyConditionExpression="#day = :day AND #finished BETWEEN :since AND :until",
            ExpressionAttributeNames={"#day": FAILED_DAY, "#finished": "finished_at"},
            ExpressionAttributeValues={
                ":day": {"S": day_of(day)},
                ":since": {"S": iso(since) or ""},
                ":until": {"S": iso(until) or ""},
            },
            ScanIndexForward=False,
            Limit=limit - len(ids),
        )
        ids += [item["id"]["S"] for item in response.get("Items", [])]
        day -= 86400
    return ids


def due_ids(client: DynamoDBClient, table: str, by: float, limit: int) -> list[str]:
    """Ids of records due by `by`, the longest overdue first (the due index)."""
    response = client.query(
        TableName=table,
        IndexName=DUE_INDEX,
        KeyConditionExpression="#shard = :shard AND #due <= :by",
        ExpressionAttributeNames={"#shard": DUE_SHARD, "#due": "due_at"},
        ExpressionAttributeValues={":shard": {"S": "0"}, ":by": {"N": repr(by)}},
        ScanIndexForward=True,
        Limit=limit,
    )
    return [item["id"]["S"] for item in response.get("Items", [])]
