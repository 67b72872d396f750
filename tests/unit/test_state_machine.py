"""TRANSITIONS is the only state machine: no write of the framework names the statuses it
starts from; each derives them from its target (Expect.into) or from the record it read
(Expect.still)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chalicelib.longtask.backends import Expect
from chalicelib.longtask.model import TRANSITIONS, Status, TaskRecord, sources_of

PACKAGE = Path(__file__).resolve().parents[2] / "chalicelib" / "longtask"
# Where Expect itself is defined: the one place that turns a target into statuses.
VOCABULARY = PACKAGE / "backends" / "writes.py"


def hand_written_expectations(path: Path) -> list[int]:
    """Lines of `path` that build an Expect naming its statuses."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name == "Expect" and any(k.arg == "statuses" for k in node.keywords):
            lines.append(node.lineno)
        if name == "Expect" and node.args:
            lines.append(node.lineno)  # statuses is the first positional field
    return lines


def test_no_write_of_the_framework_names_its_source_statuses() -> None:
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != VOCABULARY and (lines := hand_written_expectations(path))
    }
    assert found == {}, f"Expect(statuses=...) written by hand; use Expect.into: {found}"


def test_the_check_finds_a_hand_written_expectation(tmp_path: Path) -> None:
    source = tmp_path / "writer.py"
    source.write_text("Expect(statuses=frozenset({Status.STARTED}), attempts=1)\n")
    assert hand_written_expectations(source) == [1]


@pytest.mark.parametrize("target", list(Status))
def test_a_write_into_a_status_holds_exactly_for_the_statuses_that_may_reach_it(
    target: Status,
) -> None:
    expect = Expect.into(target)
    for source in Status:
        task = TaskRecord(id="t" * 22, kind="k", params={}, status=source)
        assert expect.holds_for(task) == (target in TRANSITIONS[source]), source
    assert expect.statuses == sources_of(target)


def test_a_finished_task_can_be_moved_by_no_write() -> None:
    for target in Status:
        for ended in (Status.DONE, Status.FAILED, Status.CANCELLED):
            task = TaskRecord(id="t" * 22, kind="k", params={}, status=ended)
            assert not Expect.into(target).holds_for(task)
