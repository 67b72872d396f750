"""Finds a Chromium for the browser tests, or installs one: `python -m dev.chromium`.

The order: LONGTASK_CHROMIUM if set, a system Chromium, then Playwright's own managed
browser. With none of them, `make test` installs one (Playwright's download, or Debian's
package where that cannot download and we are root with apt-get), and otherwise stops
with one line that says what to run. A browser test never skips for want of a browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

ENV_VARIABLE = "LONGTASK_CHROMIUM"
SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome")
SYSTEM_PATHS = ("/usr/bin/chromium",)
PLAYWRIGHT_INSTALL = (sys.executable, "-m", "playwright", "install", "chromium")
APT_INSTALL = ("apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium")
HOW_TO_GET_ONE = (
    "no Chromium for the browser tests: run `sudo apt-get install -y chromium` "
    "(or `.venv/bin/python -m playwright install chromium`), or set "
    f"{ENV_VARIABLE}=/path/to/chrome"
)


class NoChromium(RuntimeError):
    """No browser was found, and none could be installed."""


@dataclass(frozen=True)
class Found:
    path: str
    source: str  # where it came from, for the line `make test` prints


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _playwright_managed() -> str | None:
    """Where Playwright keeps its own Chromium (whether or not it was downloaded)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        return str(playwright.chromium.executable_path)


def find_chromium(
    environ: Mapping[str, str] | None = None,
    *,
    which: Callable[[str], str | None] = shutil.which,
    executable: Callable[[str], bool] = _executable,
    managed: Callable[[], str | None] = _playwright_managed,
) -> Found | None:
    """The browser the tests should drive, in the documented order, or None.

    A LONGTASK_CHROMIUM that names no executable is an error, not a reason to
    look elsewhere: the user asked for that browser.
    """
    env = os.environ if environ is None else environ
    chosen = env.get(ENV_VARIABLE, "").strip()
    if chosen:
        if not executable(chosen):
            raise NoChromium(f"{ENV_VARIABLE}={chosen} is not an executable file")
        return Found(chosen, ENV_VARIABLE)
    for path in SYSTEM_PATHS:
        if executable(path):
            return Found(path, "system")
    for name in SYSTEM_NAMES:
        on_path = which(name)
        if on_path and executable(on_path):
            return Found(on_path, "system")
    own = managed()
    if own and executable(own):
        return Found(own, "playwright")
    return None


def _can_apt() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def install(
    run: Callable[..., int] = subprocess.call, can_apt: Callable[[], bool] = _can_apt
) -> None:
    """Tries Playwright's download, then (as root on Debian/Ubuntu) Debian's package."""
    print("make test: no Chromium found; installing Playwright's", file=sys.stderr)
    if run(list(PLAYWRIGHT_INSTALL)) == 0:
        return
    if can_apt():
        print("make test: that download failed; installing Debian's chromium", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if run(["apt-get", "update"], env=env) == 0:
            run(list(APT_INSTALL), env=env)


def ensure(
    find: Callable[[], Found | None] = find_chromium,
    run: Callable[..., int] = subprocess.call,
    can_apt: Callable[[], bool] = _can_apt,
) -> Found:
    """A browser, installed if need be; NoChromium with what to run if there is none."""
    found = find()
    if found is None:
        install(run, can_apt)
        found = find()
    if found is None:
        raise NoChromium(HOW_TO_GET_ONE)
    return found


def main() -> int:
    try:
        found = ensure()
    except NoChromium as error:
        print(f"make test: {error}", file=sys.stderr)
        return 1
    print(f"Chromium for the browser tests: {found.path} ({found.source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
