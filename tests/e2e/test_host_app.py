"""examples/host_app on the local stack over HTTP: its own pages answer as they did, and
its task runs under /jobs from start to downloaded result."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from dev.stage import ROOT

from .browser_support import SECOND, browser, contexts, page
from .conftest import RunningStack, start_stack
from .test_demo_tasks import JSON, download, wait_until_finished

__all__ = ["browser", "contexts", "page"]


def host_project(directory: Path) -> Path:
    """The local stack's files with the host app as app.py, and longtask beside it where
    an installed (or vendored, as Chalice packages vendor/) copy would be found."""
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("dev", "chalicelib", "infra", ".chalice"):
        shutil.copytree(ROOT / name, directory / name, ignore=ignore)
    shutil.copytree(ROOT / "chalicelib" / "longtask", directory / "longtask", ignore=ignore)
    shutil.copy(ROOT / "examples" / "host_app" / "app.py", directory / "app.py")
    return directory


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    project = host_project(tmp_path_factory.mktemp("host_app"))
    running = start_stack(workers=1, project_dir=project, log_dir=project)
    yield running
    assert running.stop() == 0, running.tail()


def test_its_own_home_page_is_unchanged(host: RunningStack) -> None:
    response = requests.get(f"{host.url}/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>Acme</h1>" in response.text
    assert "Content-Security-Policy" not in response.headers  # longtask's pages have one


def test_its_own_405_is_chalices(host: RunningStack) -> None:
    response = requests.get(f"{host.url}/contact", timeout=10)
    assert response.status_code == 405
    refused = {"Code": "MethodNotAllowedError", "Message": "Unsupported method: GET"}
    assert response.json() == refused
    assert requests.post(f"{host.url}/contact", timeout=10).json() == {
        "thanks": "we will write back"
    }


def test_nothing_of_longtask_outside_jobs(host: RunningStack) -> None:
    for path in ("/tasks", "/openapi.json", "/static/style.css"):
        assert requests.get(host.url + path, timeout=10).status_code == 403  # no such route


def test_the_slow_report_runs_under_jobs_with_progress_to_its_result(host: RunningStack) -> None:
    page = requests.get(f"{host.url}/jobs", timeout=10)
    assert page.status_code == 200 and 'action="/jobs/tasks/slow-report"' in page.text
    started = requests.post(
        f"{host.url}/jobs/tasks/slow-report",
        json={"days": 4, "seconds_per_day": 1},
        headers=JSON,
        timeout=10,
    )
    assert started.status_code == 202, started.text
    document = started.json()
    assert started.headers["Location"] == document["links"]["self"]
    assert document["links"]["self"].startswith("/jobs/tasks/slow-report/")

    final = wait_until_finished(host, document)
    assert final["status"] == "done", final
    # The page's poller saw it running part of the way, not only queued and then done.
    assert "started" in final["seen"]
    assert any(step is not None and 0 < step < 4 for step in final["steps"]), final["steps"]
    assert final["progress"]["percent"] == 100.0

    result = download(host, document)
    assert result.headers["Content-Type"].startswith("text/csv")
    assert 'filename="orders-4-days.csv"' in result.headers["Content-Disposition"]
    assert result.text == "day,orders\n1,7\n2,1\n3,8\n4,2\n"


def test_its_own_page_shows_a_report_inline_from_start_to_download(
    host: RunningStack, page: Page
) -> None:
    """The site's /orders page, with longtask's client.js: a button, a bar, a message and
    a download link, and the page never leaves."""
    page.goto(f"{host.url}/orders")
    address = page.url
    bar, words = page.locator("#bar"), page.locator("#words")
    page.locator("#report").click()
    # Midway: the task's own words, and a bar between empty and full.
    expect(words).to_contain_text("Counting the orders of day", timeout=30 * SECOND)
    page.wait_for_function(
        "() => { const v = document.getElementById('bar').value; return v > 0 && v < 100; }",
        timeout=30 * SECOND,
    )
    link = page.locator("#download")
    expect(link).to_be_visible(timeout=60 * SECOND)
    expect(words).to_have_text("Done.")
    assert bar.evaluate("b => b.value") == 100
    assert page.url == address  # the bar lived in the site's own page
    href = link.get_attribute("href") or ""
    assert href.startswith("/jobs/tasks/slow-report/") and href.endswith("/result")
    with page.expect_download() as downloaded:
        link.click()
    assert downloaded.value.suggested_filename == "orders-3-days.csv"
