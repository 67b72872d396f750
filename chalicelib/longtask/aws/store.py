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
    Page,
    Release,
    applied,
    kept_apart,
    known_fields,
    new_token,
)
from ..encoding import compact_json
from ..errors import Conflict
from ..model import APART, TaskRecord
from . import admissions, queries
from .codec import item_to_record, record_to_item
from .expressions import Expression, update_of

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

    def create(self, task: TaskRecord, token: str | None = None) -> None:
        token = token or new_token()
        try:
            self.client.put_item(
                TableName=self.table,
                Item=record_to_item(task.evolve(writer=token)),
                ConditionExpression="attribute_not_exists(id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            item = _item_of(exc)
            if written_by(item, token):
                return  # this very create, retried after its answer was lost
            raise self._conflict(item, task.id) from None

    def get(self, task_id: str) -> TaskRecord | None:
        response = self.client.get_item(
            TableName=self.table, Key={"id": {"S": task_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return item_to_record(item) if item else None

    def update(
        self,
        task_id: str,
        changes: Mapping[str, Any],
        *expect: Expect,
        token: str | None = None,
    ) -> TaskRecord:
        """Applies `changes` if the record matches one of `expect`, else raises Conflict.

        The write carries `token` as the record's `writer`: botocore retries a write
        whose answer was lost with the same request, and a retry that finds its own
        token knows that the first try applied (instead of taking the refused condition
        for someone else's write)."""
        known_fields(changes)
        token = token or new_token()
        checkpoint = changes.get("checkpoint")
        if kept_apart(checkpoint):
            self._save_checkpoint(task_id, checkpoint, expect)
            changes = {**changes, "checkpoint": APART}
        release = changes.get("counted")
        write = update_of(self.table, task_id, {**changes, "writer": token}, expect)
        if isinstance(release, Release):
            self._end(write, release, token)
            # A transaction answers without the record: it is the one the caller read,
            # with these changes.
            return applied(release.task, changes, token)
        try:
            response = self.client.update_item(
                **write, ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD"
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            item = _item_of(exc)
            if written_by(item, token):
                assert item is not None
                return item_to_record(item)
            raise self._conflict(item, None) from None
        return item_to_record(response["Attributes"])

    def _end(self, write: dict[str, Any], release: Release, token: str) -> None:
        """The write that ends a counted task and gives its owner's place back: one
        transaction, so that no crash between two writes leaves the place taken."""
        record = {**write, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        try:
            items: Any = [
                {"Update": record},
                {"Update": admissions.give_back(self.table, release.owner)},
            ]
            self.client.transact_write_items(TransactItems=items, ClientRequestToken=token)
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or [{}, {}]
            mine = reasons[0]
            if mine.get("Code") == "ConditionalCheckFailed":
                item = mine.get("Item")
                if written_by(item, token):
                    return
                raise self._conflict(item, None) from None
            if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                # The owner's count expired: there is no place to give back; end it alone.
                try:
                    self.client.update_item(**record)
                except self.client.exceptions.ConditionalCheckFailedException as again:
                    if not written_by(_item_of(again), token):
                        raise self._conflict(_item_of(again), None) from None
                return
            raise

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

    def admit(self, task: TaskRecord, admission: Admission, token: str | None = None) -> None:
        token = token or new_token()
        item = record_to_item(task.evolve(counted=admission.owner, writer=token))
        admissions.admit(self.client, self.table, item, task.id, admission, token)

    def release(self, task_id: str, token: str | None = None) -> bool:
        return admissions.release(self.client, self.table, task_id, token or new_token())

    # -- operators

    def due(self, by: float, limit: int) -> list[TaskRecord]:
        return self.get_many(queries.due_ids(self.client, self.table, by, limit))

    def failed_between(self, since: float, until: float, limit: int) -> list[TaskRecord]:
        ids = queries.failed_ids(self.client, self.table, since, until, limit)
        found = [t for t in self.get_many(ids) if t.finished_at is None or t.finished_at < until]
        return found[:limit]


def _memo_value(item: Mapping[str, Any] | None) -> Any:
    if not item or "memo" not in item:
        return None
    return json.loads(item["memo"]["S"])


def written_by(item: Mapping[str, Any] | None, token: str) -> bool:
    """Whether `item` was last written by the write that `token` names."""
    return bool(item) and (item or {}).get("writer", {}).get("S") == token


def _item_of(exc: Exception) -> Mapping[str, Any] | None:
    """The record a refused condition returned (ReturnValuesOnConditionCheckFailure)."""
    item: Mapping[str, Any] | None = getattr(exc, "response", {}).get("Item")
    return item
