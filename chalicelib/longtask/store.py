"""DynamoDB: task records in and out, every change a conditional write."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .backends import (
    Conflict,
    Expect,
    IfMissing,
    Increment,
    InvalidCursor,
    Page,
    decode_cursor,
    encode_cursor,
)
from .model import ErrorInfo, Progress, ResultInfo, Status, TaskRecord, iso, parse_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

OWNER_INDEX = "by_owner"
# A page of the owner index ends at a key of the table and the index: these three.
_CURSOR_FIELDS = frozenset({"owner", "created_at", "id"})


# Each record field as DynamoDB attributes: name, type, and how to turn the
# field into attribute values and back.
_TIME_FIELDS = ("created_at", "updated_at", "started_at", "finished_at")


def _encode(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value)}
    return {"S": str(value)}


def _decode(attr: Mapping[str, Any]) -> Any:
    if "S" in attr:
        return attr["S"]
    if "N" in attr:
        text = attr["N"]
        return float(text) if any(c in text for c in ".eE") else int(text)
    if "BOOL" in attr:
        return attr["BOOL"]
    return None


def field_attributes(name: str, value: Any) -> dict[str, Any]:
    """The attributes that hold one TaskRecord field (None means: remove them)."""
    if name in _TIME_FIELDS:
        return {name: iso(value)}
    if name == "status":
        return {"status": Status(value).value}
    if name in ("params", "checkpoint"):
        return {name: None if value is None else json.dumps(value, separators=(",", ":"))}
    if name == "progress":
        p: Progress = value
        return {
            "progress_message": p.message or None,
            "progress_step": p.step,
            "progress_total": p.total_steps,
            "progress_at": p.at,
            "progress_rate": p.rate,
        }
    if name == "error":
        e: ErrorInfo | None = value
        return {"error_type": e and e.type, "error_message": e and e.message}
    if name == "result":
        r: ResultInfo | None = value
        return {
            "result_key": r and r.key,
            "result_type": r and r.content_type,
            "result_filename": r and r.filename,
            "result_size": r and r.size,
        }
    if name == "resume":
        return {"resume": value or None}
    return {name: value}


def record_to_item(task: TaskRecord) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name in TaskRecord.__dataclass_fields__:
        for attr, value in field_attributes(name, getattr(task, name)).items():
            if value is not None:
                item[attr] = _encode(value)
    return item


def item_to_record(item: Mapping[str, Any]) -> TaskRecord:
    a = {key: _decode(value) for key, value in item.items()}
    return TaskRecord(
        id=a["id"],
        kind=a["kind"],
        params=json.loads(a.get("params") or "{}"),
        status=Status(a["status"]),
        created_at=parse_iso(a.get("created_at")) or 0.0,
        updated_at=parse_iso(a.get("updated_at")) or 0.0,
        started_at=parse_iso(a.get("started_at")),
        finished_at=parse_iso(a.get("finished_at")),
        attempts=int(a.get("attempts", 0)),
        owner=a.get("owner"),
        progress=Progress(
            message=a.get("progress_message", ""),
            step=a.get("progress_step"),
            total_steps=a.get("progress_total"),
            at=a.get("progress_at"),
            rate=a.get("progress_rate"),
        ),
        error=ErrorInfo(a["error_type"], a.get("error_message", "")) if "error_type" in a else None,
        result=(
            ResultInfo(
                a["result_key"],
                a.get("result_type", ""),
                a.get("result_filename"),
                a.get("result_size"),
            )
            if "result_key" in a
            else None
        ),
        lease_until=a.get("lease_until"),
        checkpoint=json.loads(a["checkpoint"]) if "checkpoint" in a else None,
        resume=bool(a.get("resume", False)),
        requeues=int(a.get("requeues", 0)),
        expires_at=a.get("expires_at"),
    )


class _Expression:
    """Collects placeholders so that every value and name goes in escaped."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attr: str) -> str:
        key = f"#{attr}"
        self.names[key] = attr
        return key

    def value(self, value: Any) -> str:
        key = f":v{len(self.values)}"
        self.values[key] = _encode(value)
        return key

    def condition(self, alternatives: tuple[Expect, ...]) -> str:
        clauses = [self._clause(expect) for expect in alternatives]
        exists = f"attribute_exists({self.name('id')})"
        if not clauses:
            return exists
        if len(clauses) == 1:
            return f"{exists} AND {clauses[0]}"
        # AND binds tighter than OR, and DynamoDB refuses redundant parentheses.
        return f"{exists} AND ({' OR '.join(clauses)})"

    def _clause(self, expect: Expect) -> str:
        parts = []
        if expect.statuses is not None:
            options = ", ".join(self.value(s.value) for s in sorted(expect.statuses))
            parts.append(f"{self.name('status')} IN ({options})")
        if expect.attempts is not None:
            parts.append(f"{self.name('attempts')} = {self.value(expect.attempts)}")
        if expect.attempts_below is not None:
            attempts = self.name("attempts")
            parts.append(
                f"(attribute_not_exists({attempts}) OR "
                f"{attempts} < {self.value(expect.attempts_below)})"
            )
        if expect.lease_expired_by is not None:
            lease = self.name("lease_until")
            parts.append(
                f"(attribute_not_exists({lease}) OR {lease} <= "
                f"{self.value(expect.lease_expired_by)})"
            )
        if expect.resume is True:
            parts.append(f"{self.name('resume')} = {self.value(True)}")
        elif expect.resume is False:
            parts.append(f"attribute_not_exists({self.name('resume')})")
        return " AND ".join(parts) or f"attribute_exists({self.name('id')})"


class DynamoTaskStore:
    """Task records in one DynamoDB table (partition key `id`)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    def create(self, task: TaskRecord) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=record_to_item(task),
            ConditionExpression="attribute_not_exists(id)",
        )

    def get(self, task_id: str) -> TaskRecord | None:
        response = self.client.get_item(
            TableName=self.table, Key={"id": {"S": task_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return item_to_record(item) if item else None

    def update(self, task_id: str, changes: Mapping[str, Any], *expect: Expect) -> TaskRecord:
        """Applies `changes` if the record matches one of `expect`, else raises Conflict."""
        expr = _Expression()
        sets: list[str] = []
        removes: list[str] = []
        for field, value in changes.items():
            if isinstance(value, Increment):
                sets.append(
                    f"{expr.name(field)} = if_not_exists({expr.name(field)}, "
                    f"{expr.value(0)}) + {expr.value(value.by)}"
                )
                continue
            if isinstance(value, IfMissing):
                for attr, attr_value in field_attributes(field, value.value).items():
                    if attr_value is not None:
                        sets.append(
                            f"{expr.name(attr)} = if_not_exists({expr.name(attr)}, "
                            f"{expr.value(attr_value)})"
                        )
                continue
            for attr, attr_value in field_attributes(field, value).items():
                if attr_value is None:
                    removes.append(expr.name(attr))
                else:
                    sets.append(f"{expr.name(attr)} = {expr.value(attr_value)}")
        update = " ".join(
            part
            for part in (
                f"SET {', '.join(sets)}" if sets else "",
                f"REMOVE {', '.join(removes)}" if removes else "",
            )
            if part
        )
        condition = expr.condition(expect)
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": task_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=expr.names,
                ExpressionAttributeValues=expr.values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            item = getattr(exc, "response", {}).get("Item")
            raise Conflict(item_to_record(item) if item else None) from None
        return item_to_record(response["Attributes"])

    def list_by_owner(self, owner: str, limit: int, cursor: str | None = None) -> Page:
        """The owner's tasks, newest first, from the keys-only owner index."""
        kwargs: dict[str, Any] = {}
        if cursor is not None:
            after = decode_cursor(cursor, _CURSOR_FIELDS)
            if after["owner"] != owner:
                raise InvalidCursor(cursor)
            kwargs["ExclusiveStartKey"] = {name: {"S": value} for name, value in after.items()}
        response = self.client.query(
            TableName=self.table,
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
            next_cursor = encode_cursor({name: last[name]["S"] for name in _CURSOR_FIELDS})
        return Page(self._get_many(ids), next_cursor)

    def _get_many(self, ids: list[str]) -> list[TaskRecord]:
        """The records of `ids` (at most 100), in that order; ones gone meanwhile left out."""
        if not ids:
            return []
        found: dict[str, TaskRecord] = {}
        wanted: dict[str, Any] = {
            self.table: {"Keys": [{"id": {"S": i}} for i in ids], "ConsistentRead": True}
        }
        while wanted:
            response = self.client.batch_get_item(RequestItems=wanted)
            for item in response.get("Responses", {}).get(self.table, []):
                task = item_to_record(item)
                found[task.id] = task
            wanted = response.get("UnprocessedKeys") or {}
        return [found[i] for i in ids if i in found]
