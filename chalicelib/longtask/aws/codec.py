"""DynamoDB's wire shapes of a task record: each field as attributes, and back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..backends.writes import RECORD_FIELDS
from ..encoding import compact_json
from ..model import (
    APART,
    ErrorInfo,
    PartOf,
    Progress,
    ResultInfo,
    Status,
    TaskRecord,
    iso,
    parse_iso,
)

# Each record field as DynamoDB attributes: name, type, and how to turn the
# field into attribute values and back.
_TIME_FIELDS = ("created_at", "updated_at", "started_at", "finished_at")


def encode(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value)}
    return {"S": str(value)}


def decode(attr: Mapping[str, Any]) -> Any:
    if "S" in attr:
        return attr["S"]
    if "N" in attr:
        text = attr["N"]
        return float(text) if any(c in text for c in ".eE") else int(text)
    if "BOOL" in attr:
        return attr["BOOL"]
    return None


# The partition key of the due index (one partition: a task that has not ended is in it
# until it ends, sorted by `due_at`).
DUE_SHARD = "due_shard"


def field_attributes(name: str, value: Any) -> dict[str, Any]:
    """The attributes that hold one TaskRecord field (None means: remove them)."""
    if name not in RECORD_FIELDS:
        raise ValueError(f"a task record has no field {name}")
    if name in _TIME_FIELDS:
        return {name: iso(value)}
    if name == "status":
        return {"status": Status(value).value}
    if name == "params":
        return {name: None if value is None else compact_json(value)}
    if name == "checkpoint":
        # The record holds a small checkpoint itself, or says that it is kept apart.
        if value is APART:
            return {"checkpoint": None, "checkpoint_apart": True}
        text = None if value is None else compact_json(value)
        return {"checkpoint": text, "checkpoint_apart": None}
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
    if name == "due_at":
        # The due index is sparse: only a record that has not ended is in it.
        return {"due_at": value, DUE_SHARD: None if value is None else "0"}
    if name == "part":
        m: PartOf | None = value
        return {
            "parent": m and m.parent,
            "part": m and m.index,
            "part_map": m and m.map,
            "part_function": m and m.function,
            "part_item": None if m is None or m.item_at else compact_json(m.item),
            "part_item_at": m and m.item_at,
        }
    return {name: value}


def record_to_item(task: TaskRecord) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name in TaskRecord.__dataclass_fields__:
        for attr, value in field_attributes(name, getattr(task, name)).items():
            if value is not None:
                item[attr] = encode(value)
    return item


def item_to_record(item: Mapping[str, Any]) -> TaskRecord:
    a = {key: decode(value) for key, value in item.items()}
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
        checkpoint=(
            APART
            if a.get("checkpoint_apart")
            else json.loads(a["checkpoint"])
            if "checkpoint" in a
            else None
        ),
        resume=bool(a.get("resume", False)),
        requeues=int(a.get("requeues", 0)),
        expires_at=a.get("expires_at"),
        counted=a.get("counted"),
        due_at=a.get("due_at"),
        writer=a.get("writer"),
        part=(
            PartOf(
                a["parent"],
                a["part_map"],
                int(a["part"]),
                a["part_function"],
                json.loads(a["part_item"]) if "part_item" in a else None,
                a.get("part_item_at"),
            )
            if "parent" in a
            else None
        ),
    )
