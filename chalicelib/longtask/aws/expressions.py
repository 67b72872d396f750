"""DynamoDB condition and update expressions, every value and name escaped."""

from __future__ import annotations

from typing import Any

from ..backends.writes import Expect
from .codec import encode


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
        if expect.resume is True:
            parts.append(f"{self.name('resume')} = {self.value(True)}")
        elif expect.resume is False:
            parts.append(f"attribute_not_exists({self.name('resume')})")
        return " AND ".join(parts) or f"attribute_exists({self.name('id')})"
