"""DynamoDB condition and update expressions, every value and name escaped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..backends.writes import Expect, IfMissing, Increment, Release
from ..model import Status
from .codec import encode, field_attributes
from .queries import FAILED_DAY, day_of


class Expression:
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
        self.values[key] = encode(value)
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
        if expect.leased is not None:
            exists = "attribute_exists" if expect.leased else "attribute_not_exists"
            parts.append(f"{exists}({self.name('lease_until')})")
        if expect.lease_expired_by is not None:
            lease = self.name("lease_until")
            parts.append(
                f"(attribute_not_exists({lease}) OR {lease} <= "
                f"{self.value(expect.lease_expired_by)})"
            )
        if expect.step_below is not None:
            step = self.name("progress_step")
            parts.append(
                f"(attribute_not_exists({step}) OR {step} < {self.value(expect.step_below)})"
            )
        if expect.due_at is not None:
            parts.append(f"{self.name('due_at')} = {self.value(expect.due_at)}")
        if expect.resume is True:
            parts.append(f"{self.name('resume')} = {self.value(True)}")
        elif expect.resume is False:
            parts.append(f"attribute_not_exists({self.name('resume')})")
        return " AND ".join(parts) or f"attribute_exists({self.name('id')})"


def update_of(
    table: str, task_id: str, changes: Mapping[str, Any], expect: tuple[Expect, ...]
) -> dict[str, Any]:
    """The UpdateItem request (without its ReturnValues) of a conditional write."""
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
        if isinstance(value, Release):
            value = None
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
    write: dict[str, Any] = {
        "TableName": table,
        "Key": {"id": {"S": task_id}},
        "UpdateExpression": update,
        "ConditionExpression": expr.condition(expect),
        "ExpressionAttributeNames": expr.names,
    }
    # DynamoDB refuses an empty map of values (a change that only removes attributes).
    if expr.values:
        write["ExpressionAttributeValues"] = expr.values
    return write
