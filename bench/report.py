"""The benchmark report: sections of markdown tables, targets, and number formatting."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str = ""

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"**{self.title}**", ""] if self.title else []
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in self.rows)
        return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class Target:
    """One target of the benchmarks and where this run landed."""

    name: str
    wanted: str
    measured: str
    met: bool | None  # None: not measured in this run


@dataclass
class Section:
    title: str
    method: str  # markdown, written to BENCHMARKS.md only
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # markdown bullets under the tables
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0

    def markdown(self, with_method: bool) -> str:
        parts = [f"## {self.title}", ""]
        if with_method and self.method:
            parts += [self.method.strip(), ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        if self.notes:
            parts += [f"- {note}" for note in self.notes] + [""]
        return "\n".join(parts)


def targets_table(targets: Iterable[Target]) -> Table:
    table = Table(["target", "wanted", "this run", "verdict"])
    for t in targets:
        verdict = "not measured" if t.met is None else ("met" if t.met else "**missed**")
        table.add(t.name, t.wanted, t.measured, verdict)
    return table


# --- numbers ---------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between the closest ranks, of the values that are
    numbers; nan if there are none."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ms(seconds: float, digits: int = 1) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1000:,.{digits}f} ms"


def us(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1e6:,.0f} µs"


def dollars(amount: float) -> str:
    if amount == 0:
        return "$0"
    if abs(amount) >= 100:
        return f"${amount:,.0f}"
    if abs(amount) >= 0.01:
        return f"${amount:,.2f}"
    return f"${amount:.2g}"


def ratio(value: float) -> str:
    return "n/a" if math.isnan(value) or math.isinf(value) else f"{value:.2f}x"
