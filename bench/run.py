"""`make bench`: what a task costs on AWS and how fast longtask is, written to BENCHMARKS.md.

    python -m bench [--quick] [--output PATH] [--only 1,3,...]

Runs the benchmarks and prints their tables; a full run takes a few minutes
and writes BENCHMARKS.md (method and numbers). --quick uses tiny sizes (under a minute) and
writes a file only when --output is given. Everything runs on this machine: in-process moto,
fresh interpreters, and local stacks on 127.0.0.1 that stop with the bench.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import cold as cold_bench
from bench import cost as cost_bench
from bench import eta as eta_bench
from bench import fanout as fanout_bench
from bench import faults as faults_bench
from bench import handlers as handlers_bench
from bench import ops as ops_bench
from bench import stack as stack_bench
from bench.inprocess import InProcessAws
from bench.polling import SECTION as POLLING_SCHEDULE
from bench.report import Section, targets_table
from dev.stage import ROOT

DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"
TITLES = {
    1: "1. AWS operations per task lifecycle",
    2: "2. Cost per million tasks",
    3: "3. Handler overhead",
    4: "4. Cold start and package size",
    5: "5. Local stack throughput and latency",
    6: "6. ETA accuracy",
    7: "7. Fan-out",
    8: "8. Under AWS faults",
}


@dataclass(frozen=True)
class Sizes:
    handler_rounds: int
    import_runs: int
    worker_counts: tuple[int, ...]
    stack_tasks: int
    paced_tasks: int
    real_clock_check: bool
    fanout_limit: int
    fanout_parts: tuple[int, ...]
    fault_tasks: int


FULL = Sizes(300, 10, (1, 2, 4), 500, 100, True, 50_000_000, (1, 8), 60)
QUICK = Sizes(10, 3, (1,), 10, 4, False, 200_000, (1, 2), 10)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Runs:
    """Runs each benchmark once, timing it; a failure becomes the section's only note."""

    def __init__(self) -> None:
        self.sections: dict[int, Section] = {}
        self.failed = False

    def run(self, number: int, build: Callable[[], Section]) -> None:
        log(f"{TITLES[number]} …")
        started = time.monotonic()
        try:
            section = build()
        except Exception as error:  # a benchmark that breaks must not hide the others
            self.failed = True
            log("".join(traceback.format_exception(error)).rstrip())
            section = Section(TITLES[number], "", notes=[f"**failed**: {error!r}"])
        section.seconds = time.monotonic() - started
        self.sections[number] = section
        log(f"{TITLES[number]}: {section.seconds:.1f} s")


def run_all(sizes: Sizes, only: set[int]) -> Runs:
    """Runs the chosen benchmarks; 2 prices the results of 1 and 3, so it runs them too."""
    runs = Runs()
    if 2 in only:
        only = only | {1, 3}
    ops: ops_bench.OpsResult | None = None
    handlers: handlers_bench.HandlerResult | None = None

    def lifecycles(aws: InProcessAws) -> Section:
        nonlocal ops
        ops = ops_bench.measure(aws, sizes.real_clock_check)
        return ops_bench.section(ops)

    def overhead(aws: InProcessAws) -> Section:
        nonlocal handlers
        handlers = handlers_bench.measure(aws, sizes.handler_rounds)
        return handlers_bench.section(handlers)

    def cost() -> Section:
        if ops is None:
            raise RuntimeError("benchmark 1 failed, so there are no counts to price")
        return cost_bench.section(cost_bench.compute(ops, handlers), ops)

    def fanout() -> Section:
        with tempfile.TemporaryDirectory(prefix="longtask-bench-") as logs:
            result = fanout_bench.measure(
                sizes.fanout_limit, list(sizes.fanout_parts), 2, Path(logs), log
            )
        return fanout_bench.section(result)

    def under_faults() -> Section:
        with tempfile.TemporaryDirectory(prefix="longtask-bench-") as logs:
            results = faults_bench.measure(sizes.fault_tasks, Path(logs), log)
        runs.failed |= any(run.done < run.tasks for run in results)
        return faults_bench.section(results)

    def stack() -> Section:
        with tempfile.TemporaryDirectory(prefix="longtask-bench-") as logs:
            results = stack_bench.measure(
                list(sizes.worker_counts), sizes.stack_tasks, sizes.paced_tasks, Path(logs), log
            )
        runs.failed |= any(run.error for run in results)
        return stack_bench.section(results)

    if only & {1, 3}:
        try:
            with InProcessAws() as aws:
                for number, build in ((1, lifecycles), (3, overhead)):
                    if number in only:
                        runs.run(number, functools.partial(build, aws))
        except Exception as error:  # the harness itself failed to start
            for number in only & {1, 3}:
                runs.run(number, functools.partial(_raise, error))
    if 2 in only:
        runs.run(2, cost)
    if 4 in only:
        runs.run(
            4,
            lambda: cold_bench.section(
                cold_bench.measure_imports(sizes.import_runs), cold_bench.measure_package()
            ),
        )
    if 5 in only:
        runs.run(5, stack)
    if 6 in only:
        runs.run(6, lambda: eta_bench.section(eta_bench.measure()))
    if 7 in only:
        runs.run(7, fanout)
    if 8 in only:
        runs.run(8, under_faults)
    return runs


def _raise(error: Exception) -> Section:
    raise error


def report(
    runs: Runs,
    sizes: Sizes,
    quick: bool,
    started: datetime,
    seconds: float,
    load: tuple[float, float],
    with_method: bool,
) -> str:
    cores = os.cpu_count()
    mode = (
        " in **quick** mode (tiny sizes: the numbers only show that the code runs)" if quick else ""
    )
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` (`python -m bench`){mode} on "
        f"{started:%Y-%m-%d %H:%M} UTC, on a machine with {cores} cores "
        f"({platform.system()} {platform.machine()}, Python {platform.python_version()}); "
        f"the run took {seconds / 60:.1f} min. Load average {load[0]:.1f} at the start and "
        f"{load[1]:.1f} at the end: the timed benchmarks (3, 4, 5) share the machine with "
        "whatever else runs on it; the counts (1, 2) and the ETA figures (6) are exact.",
        "",
        f"Sizes: {sizes.handler_rounds} handler rounds, {sizes.import_runs} imports per "
        f"variant, local stack with {', '.join(map(str, sizes.worker_counts))} worker(s) "
        f"and {sizes.stack_tasks} tasks (+ {sizes.paced_tasks} paced).",
        "",
        "## Targets",
        "",
        targets_table(
            t for n in sorted(runs.sections) for t in runs.sections[n].targets
        ).markdown(),
        "",
    ]
    for number in sorted(runs.sections):
        lines.append(runs.sections[number].markdown(with_method))
    if with_method:
        lines.append(POLLING_SCHEDULE)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, well under a minute (a check that the code runs)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"where to write the report (default: {DEFAULT_OUTPUT.name} "
        "for a full run, no file for --quick)",
    )
    parser.add_argument(
        "--only",
        default=",".join(str(n) for n in TITLES),
        help="comma-separated benchmark numbers to run (default: all)",
    )
    args = parser.parse_args(argv)
    try:
        only = {int(n) for n in args.only.split(",") if n.strip()}
    except ValueError:
        parser.error("--only takes numbers, e.g. --only 1,2")
    if not only or not only <= set(TITLES):
        parser.error(f"--only takes numbers from 1 to {len(TITLES)}")
    sizes = QUICK if args.quick else FULL
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)

    started = datetime.now(UTC)
    clock = time.monotonic()
    load_before = os.getloadavg()[0]
    runs = run_all(sizes, only)
    seconds = time.monotonic() - clock
    load = (load_before, os.getloadavg()[0])

    print(report(runs, sizes, args.quick, started, seconds, load, with_method=False))
    if output is not None:
        output.write_text(report(runs, sizes, args.quick, started, seconds, load, with_method=True))
        log(f"wrote {output}")
    log(f"done in {seconds:.0f} s")
    return 1 if runs.failed else 0


if __name__ == "__main__":
    sys.exit(main())
