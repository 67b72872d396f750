"""`make bench` cannot rot: its quick mode runs every benchmark at tiny sizes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.run import TITLES
from dev.stage import ROOT

from .conftest import inherited_environ

# Quick mode takes well under a minute on an idle machine; a busy CI box gets slack.
QUICK_SECONDS = 240


def test_quick_bench_prints_and_writes_every_table(tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        env=inherited_environ(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=QUICK_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    written = output.read_text()
    for text in (done.stdout, written):
        assert "## Targets" in text
        for title in TITLES.values():
            assert f"## {title}" in text
        assert "**failed**" not in text and "| failed" not in text
        # A few figures that must come out of the run, not a template.
        assert "| start | 1 SendMessage + 1 TransactWriteItems |" in text
        assert "| status poll (JSON, not done) | 1 GetItem |" in text
        assert "deployment.zip |" in text and "not built" not in text
        # A steady task's estimate is exact wherever the stored progress first passes 25 %.
        assert re.search(r"\| steady: 100 steps of 1 s \| (\d+) s for \1 s: \+0 s", text)
        assert "| cost per million 60 s tasks watched in a browser |" in text
        assert "| faults (`rate=0.08,lost=0.5," in text
    # The file has the method too; what is printed is the tables.
    assert "Every AWS operation is counted" in written
    assert "Every AWS operation is counted" not in done.stdout
