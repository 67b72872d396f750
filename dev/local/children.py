"""The local stack's child processes: own process groups, stopped in order, never orphaned."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STOP_SECONDS = 5.0


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the child when its parent dies, even by
    SIGKILL, so that no child outlives the stack. None where prctl is not available.
    Only for a single-threaded parent: preexec_fn is unsafe when other threads run."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl
    pr_set_pdeathsig = 1

    def set_parent_death_signal() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return set_parent_death_signal


@dataclass
class Child:
    label: str
    process: subprocess.Popen[bytes]
    command: list[str]
    env: dict[str, str]
    restartable: bool = False  # a worker: replaced when it dies, as Lambda replaces a runtime
    started_at: float = field(default_factory=time.monotonic)


class Children:
    """The stack's child processes, each in its own process group."""

    def __init__(self, cwd: Path, log: Callable[[str], None]) -> None:
        self.started: list[Child] = []
        self._cwd = cwd
        self._log = log
        self._preexec = die_with_parent()

    def start(
        self,
        label: str,
        command: list[str],
        env: Mapping[str, str],
        output: IO[bytes] | None = None,
        restartable: bool = False,
    ) -> Child:
        process = subprocess.Popen(
            command,
            cwd=self._cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            # Its own group: Ctrl-C in the terminal reaches only the stack, which then
            # stops the children in order, and killpg also reaches their own children.
            process_group=0,
            preexec_fn=self._preexec,
        )
        child = Child(label, process, list(command), dict(env), restartable)
        self.started.append(child)
        return child

    def restart(self, child: Child) -> Child:
        """A new process in place of a dead one, with the same command and environment."""
        self.started.remove(child)
        return self.start(child.label, child.command, child.env, restartable=child.restartable)

    def first_dead(self) -> Child | None:
        return next((c for c in self.started if c.process.poll() is not None), None)

    def stop(self, labels_last: tuple[str, ...] = ("moto",)) -> None:
        """SIGTERM every child's group, the ones in `labels_last` after the others have
        exited (the workers should not see moto vanish); SIGKILL what is left."""
        first = [c for c in self.started if c.label not in labels_last]
        last = [c for c in self.started if c.label in labels_last]
        for group in (first, last):
            for child in group:
                _signal_group(child.process, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            for child in group:
                try:
                    child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._log(
                        f"{child.label} (pid {child.process.pid}) ignored SIGTERM; killing it"
                    )
                    _signal_group(child.process, signal.SIGKILL)
                    child.process.wait()
                # Grandchildren of a child that has already exited are still in its group.
                _signal_group(child.process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
