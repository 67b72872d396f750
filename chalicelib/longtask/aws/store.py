"""DynamoDB: task records in and out, every change a conditional write."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..backends import keys
from ..backends.writes import (
    Admission,
    Expect,
    IfMissing,
    Increment,
    Page,
    kept_apart,
)
from ..encoding import compact_json
from ..errors import Conflict
from ..model import APART, Status, TaskRecord
from . import admissions, queries
from .codec import RECORD_FIELDS, field_attributes, item_to_record, record_to_item
from .expressions import Expression
from .queries import FAILED_DAY, day_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class DynamoTaskStore:
    """Task records in one DynamoDB table (partition key `id`)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        retention_seconds: float,
    ) -> None:
        self.client = client
        self.table = table
        self.retention_seconds = retention_seconds

    def create(self, task: TaskRecord) -> None:
        try:
            self.client.put_item(
                TableName=self.table,
                Item=record_to_item(task),
                ConditionExpression="attribute_not_exists(id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            raise self._conflict(_item_of(exc), task.id) from None

    def get(self, task_id: str) -> TaskRecord | None:
        response = self.client.get_item(
            TableName=self.table, Key={"id": {"S": task_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return item_to_record(item) if item else None

    def update(self, task_id: str, changes: Mapping[str, Any], *expect: Expect) -> TaskRecord:
        """Applies `changes` if the record matches one of `expect`, else raises Conflict."""
        unknown = set(changes) - RECORD_FIELDS
        if unknown:
            raise ValueError(f"a task record has no field {', '.join(sorted(unknown))}")
        checkpoint = changes.get("checkpoint")
        if kept_apart(checkpoint):
            self._save_checkpoint(task_id, checkpoint, expect)
            changes = {**changes, "checkpoint": APART}
        expr = Expression()
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
        finished = changes.get("finished_at")
        if changes.get("status") == Status.FAILED and isinstance(finished, int | float):
            sets.append(f"{expr.name(FAILED_DAY)} = {expr.value(day_of(finished))}")
        update = " ".join(
            part
            for part in (
                f"SET {', '.join(sets)}" if sets else "",
                f"REMOVE {', '.join(removes)}" if removes else "",
            )
            if part
        )
        condition = expr.condition(expect)
        # DynamoDB refuses an empty map of values (a change that only removes attributes).
        values: Any = {"ExpressionAttributeValues": expr.values} if expr.values else {}
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": task_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=expr.names,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **values,
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            raise self._conflict(_item_of(exc), None) from None
        return item_to_record(response["Attributes"])

    def _conflict(self, item: Mapping[str, Any] | None, read_again: str | None) -> Conflict:
        """The Conflict of a refused condition, with the record as DynamoDB returned it
        (or as read now, for `read_again`'s id, where the refusal did not return it)."""
        if item:
            return Conflict(item_to_record(item))
        return Conflict(self.get(read_again) if read_again else None)

    def _save_checkpoint(self, task_id: str, checkpoint: Any, expect: tuple[Expect, ...]) -> None:
        """Writes a large checkpoint to its own item if the record matches one of `expect`.

        One transaction, so that a worker that lost the task can never overwrite the
        state its successor resumes from. It goes before the record's own update, which
        then points to it: if that update never happens, the record still names the
        checkpoint it had (inline or the previous one apart), which the task also made.
        A finished task's checkpoint item is not deleted (that would cost as much as
        writing it); it expires after the retention, as the record does.
        """
        check = Expression()
        condition: Any = {
            "TableName": self.table,
            "Key": {"id": {"S": task_id}},
            "ConditionExpression": check.condition(expect),
            "ExpressionAttributeNames": check.names,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if check.values:
            condition["ExpressionAttributeValues"] = check.values
        state = Expression()
        expires_at = int(time.time() + self.retention_seconds)
        update = (
            f"SET {state.name('checkpoint')} = {state.value(compact_json(checkpoint))}, "
            f"{state.name('expires_at')} = {state.value(expires_at)}"
        )
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {"ConditionCheck": condition},
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"id": {"S": keys.checkpoint_item_id(task_id)}},
                            "UpdateExpression": update,
                            "ExpressionAttributeNames": state.names,
                            "ExpressionAttributeValues": state.values,
                        }
                    },
                ]
            )
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or [{}]
            if reasons[0].get("Code") != "ConditionalCheckFailed":
                raise
            raise self._conflict(reasons[0].get("Item"), task_id) from None

    def checkpoint(self, task_id: str) -> Any:
        response = self.client.get_item(
            TableName=self.table,
            Key={"id": {"S": keys.checkpoint_item_id(task_id)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return json.loads(item["checkpoint"]["S"]) if item else None

    def get_many(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        """The records of `task_ids`, in that order; ones that do not exist left out."""
        items = queries.batch_get(self.client, self.table, list(task_ids))
        found = {item["id"]["S"]: item_to_record(item) for item in items}
        return [found[i] for i in task_ids if i in found]

    def list_by_owner(self, owner: str, limit: int, cursor: str | None = None) -> Page:
        ids, next_cursor = queries.owner_page(self.client, self.table, owner, limit, cursor)
        return Page(self.get_many(ids), next_cursor)

    # -- memos: items whose id is the memo's key (never a task id), the value as JSON

    def memo_get(self, key: str) -> Any:
        response = self.client.get_item(
            TableName=self.table, Key={"id": {"S": key}}, ConsistentRead=True
        )
        return _memo_value(response.get("Item"))

    def memo_get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        values = {}
        for item in queries.batch_get(self.client, self.table, list(keys)):
            if "memo" in item:
                values[item["id"]["S"]] = _memo_value(item)
        return values

    def memo_put(self, key: str, value: Any, expires_at: int | None = None) -> Any:
        text = compact_json(value)
        names = {"#memo": "memo"}
        values: dict[str, Any] = {":memo": {"S": text}}
        update = "SET #memo = :memo"
        if expires_at is not None:
            names["#expires"] = "expires_at"
            values[":expires"] = {"N": str(int(expires_at))}
            update += ", #expires = :expires"
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": key}},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(#memo)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            return _memo_value(getattr(exc, "response", {}).get("Item"))
        return json.loads(text)

    def memo_add(self, key: str, member: int) -> tuple[int, Any]:
        # ADD to a number set is idempotent: a repeated report of one member counts once.
        response = self.client.update_item(
            TableName=self.table,
            Key={"id": {"S": key}},
            UpdateExpression="ADD #members :member",
            ExpressionAttributeNames={"#members": "members"},
            ExpressionAttributeValues={":member": {"NS": [str(member)]}},
            ReturnValues="ALL_NEW",
        )
        item = response["Attributes"]
        return len(item.get("members", {}).get("NS", [])), _memo_value(item)

    # -- quotas and idempotency (the wire shapes are in admissions.py)

    def admit(self, task: TaskRecord, admission: Admission) -> None:
        admissions.admit(self.client, self.table, record_to_item(task), task.id, admission)

    def release(self, task_id: str) -> bool:
        return admissions.release(self.client, self.table, task_id)

    # -- operators

    def failed_between(self, since: float, until: float, limit: int) -> list[TaskRecord]:
        ids = queries.failed_ids(self.client, self.table, since, until, limit)
        found = [t for t in self.get_many(ids) if t.finished_at is None or t.finished_at < until]
        return found[:limit]


def _memo_value(item: Mapping[str, Any] | None) -> Any:
    if not item or "memo" not in item:
        return None
    return json.loads(item["memo"]["S"])


def _item_of(exc: Exception) -> Mapping[str, Any] | None:
    """The record a refused condition returned (ReturnValuesOnConditionCheckFailure)."""
    item: Mapping[str, Any] | None = getattr(exc, "response", {}).get("Item")
    return item
