"""Which browser the browser tests drive, and what happens when there is none."""

from __future__ import annotations

import pytest

from dev import chromium
from dev.chromium import Found, NoChromium, find_chromium

MANAGED = "/root/.cache/ms-playwright/chromium-1/chrome-linux/chrome"


def finder(present: set[str], on_path: dict[str, str] | None = None, env: dict | None = None):
    """find_chromium on a machine that has exactly the executables in `present`."""
    on_path = on_path or {}
    return find_chromium(
        env or {},
        which=lambda name: on_path.get(name),
        executable=lambda path: path in present,
        managed=lambda: MANAGED,
    )


def test_the_variable_wins_over_every_other_browser() -> None:
    present = {"/opt/chrome/chrome", "/usr/bin/chromium", MANAGED}
    found = finder(present, env={"LONGTASK_CHROMIUM": "/opt/chrome/chrome"})
    assert found == Found("/opt/chrome/chrome", "LONGTASK_CHROMIUM")


def test_a_variable_naming_no_browser_is_an_error_not_a_fallback() -> None:
    with pytest.raises(NoChromium, match="LONGTASK_CHROMIUM=/nowhere"):
        finder({"/usr/bin/chromium"}, env={"LONGTASK_CHROMIUM": "/nowhere"})


def test_debians_chromium_comes_before_playwrights() -> None:
    assert finder({"/usr/bin/chromium", MANAGED}) == Found("/usr/bin/chromium", "system")


@pytest.mark.parametrize("name", ["chromium", "chromium-browser", "google-chrome"])
def test_a_system_browser_on_the_path_is_found(name: str) -> None:
    path = f"/usr/local/bin/{name}"
    assert finder({path, MANAGED}, on_path={name: path}) == Found(path, "system")


def test_chromium_on_the_path_comes_before_google_chrome() -> None:
    on_path = {"google-chrome": "/bin/google-chrome", "chromium-browser": "/bin/chromium-browser"}
    found = finder(set(on_path.values()), on_path=on_path)
    assert found == Found("/bin/chromium-browser", "system")


def test_an_empty_file_over_usr_bin_chromium_does_not_count() -> None:
    # A file that is there but not executable: the case of a browser hidden by a bind mount.
    assert finder({MANAGED}) == Found(MANAGED, "playwright")


def test_playwrights_own_browser_is_the_last_resort() -> None:
    assert finder({MANAGED}) == Found(MANAGED, "playwright")


def test_no_browser_at_all_is_none() -> None:
    assert finder(set()) is None


def test_without_a_browser_ensure_tries_playwright_then_apt_then_stops_with_one_line() -> None:
    tried: list[list[str]] = []

    def fail(argv: list[str], **_: object) -> int:
        tried.append(argv)
        return 1 if "playwright" in argv or "install" in argv else 0

    with pytest.raises(NoChromium) as raised:
        chromium.ensure(find=lambda: None, run=fail, can_apt=lambda: True)
    assert [argv[1:4] for argv in tried] == [
        ["-m", "playwright", "install"],
        ["update"],
        ["install", "-y", "-q"],
    ]
    message = str(raised.value)
    assert "\n" not in message
    assert "apt-get install -y chromium" in message and "playwright install chromium" in message


def test_apt_is_only_tried_by_root() -> None:
    tried: list[list[str]] = []
    with pytest.raises(NoChromium):
        chromium.ensure(
            find=lambda: None, run=lambda argv, **_: tried.append(argv) or 1, can_apt=lambda: False
        )
    assert len(tried) == 1 and "playwright" in tried[0]


def test_a_browser_that_the_install_brought_is_used() -> None:
    found = iter([None, Found("/usr/bin/chromium", "system")])
    assert chromium.ensure(find=lambda: next(found), run=lambda argv, **_: 0) == Found(
        "/usr/bin/chromium", "system"
    )
