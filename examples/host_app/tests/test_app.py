"""The host app's tests, on longtask's in-memory backends: no AWS, no moto, no server.

In your own project these start with `from app import app, tasks`; in this repository
the demo owns the module name `app`, so the example is imported by its package path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice import Chalice
from chalice.test import Client
from longtask import testing

from examples.host_app import app as host

PROJECT = Path(__file__).resolve().parents[1]
JSON = {"Accept": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def client() -> Iterator[Any]:
    testing.in_memory(host.tasks)  # fresh backends for every test
    with Client(host.app, stage_name="dev", project_dir=str(PROJECT)) as test_client:
        yield test_client


@pytest.fixture
def bare_client() -> Iterator[Any]:
    """The same site without longtask: what its own routes answered before."""
    bare = Chalice(app_name="acme")
    bare.route("/")(host.home)
    bare.route("/contact", methods=["POST"])(host.contact)
    with Client(bare, stage_name="dev", project_dir=str(PROJECT)) as test_client:
        yield test_client


def under_jobs(path: str) -> bool:
    return path == "/jobs" or path.startswith("/jobs/")


def body(response: Any) -> Any:
    return json.loads(response.body)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/"),
        ("head", "/"),
        ("put", "/"),
        ("post", "/contact"),
        ("get", "/contact"),  # Chalice's own 405
        ("delete", "/contact"),
        ("get", "/tasks"),  # longtask's paths at the root are not there
        ("post", "/tasks/slow-report"),
        ("get", "/openapi.json"),
        ("get", "/static/style.css"),
        ("get", "/jobsx"),
    ],
)
def test_the_sites_own_answers_are_unchanged(
    client: Any, bare_client: Any, method: str, path: str
) -> None:
    mounted = getattr(client.http, method)(path)
    bare = getattr(bare_client.http, method)(path)
    assert (mounted.status_code, mounted.body) == (bare.status_code, bare.body)
    volatile = {"x-amzn-RequestId"}  # a fresh id per answer
    assert {k: v for k, v in mounted.headers.items() if k not in volatile} == {
        k: v for k, v in bare.headers.items() if k not in volatile
    }


def test_its_own_pages_are_still_its_own(client: Any) -> None:
    home = client.http.get("/")
    assert home.status_code == 200
    assert "<h1>Acme</h1>" in home.body.decode()
    wrong = client.http.get("/contact")
    assert wrong.status_code == 405
    assert body(wrong) == {"Code": "MethodNotAllowedError", "Message": "Unsupported method: GET"}


def test_longtask_adds_routes_only_under_jobs() -> None:
    added = set(host.app.routes) - {"/", "/contact", "/orders", "/orders/{order}/report"}
    assert added and all(map(under_jobs, added)), added
    functions = {source.name for source in host.app.event_sources}
    assert functions == {"worker", "dead_letters", "reconciler"}


def test_the_start_page_is_at_jobs_with_its_links_under_jobs(client: Any) -> None:
    page = client.http.get("/jobs")
    assert page.status_code == 200
    html = page.body.decode()
    assert "Slow report" in html
    assert 'action="/jobs/tasks/slow-report"' in html
    # Every link, form and file of the page (the favicon is an inline `data:` URL).
    references = re.findall(r'(?:href|src|action)="(/[^"#]*)"', html)
    assert references and all(map(under_jobs, references)), references
    for static in (r for r in references if "/static/" in r):
        assert client.http.get(static).status_code == 200


def test_a_form_start_redirects_under_jobs_and_scopes_its_cookie_to_jobs(client: Any) -> None:
    response = client.http.post(
        "/jobs/tasks/slow-report", headers=FORM, body="days=3&seconds_per_day=0"
    )
    assert response.status_code == 303
    assert re.fullmatch(r"/jobs/tasks/slow-report/[A-Za-z0-9_-]{22}", response.headers["Location"])
    cookie = response.headers["Set-Cookie"]
    assert "; Path=/jobs;" in cookie and "HttpOnly" in cookie
    page = client.http.get(response.headers["Location"])
    assert page.status_code == 200 and "Slow report" in page.body.decode()
    references = re.findall(r'(?:href|src|action|url)=["]?(/[^"#?]*)', page.body.decode())
    assert references and all(map(under_jobs, references)), references


def test_a_task_runs_to_its_result_with_every_link_under_jobs(client: Any) -> None:
    started = client.http.post(
        "/jobs/tasks/slow-report",
        headers={**JSON, "Content-Type": "application/json"},
        body=json.dumps({"days": 4, "seconds_per_day": 0}),
    )
    assert started.status_code == 202
    document = body(started)
    location = started.headers["Location"]
    assert location == document["links"]["self"] == f"/jobs/tasks/slow-report/{document['id']}"
    assert document["links"]["cancel"] == location

    testing.drain(host.tasks)  # the worker runs it, as Lambda would

    done = body(client.http.get(location, headers=JSON))
    assert done["status"] == "done"
    assert done["progress"]["percent"] == 100.0
    assert done["links"]["result"] == f"{location}/result"
    download = client.http.get(done["links"]["result"])
    assert download.status_code == 303
    assert download.headers["Location"].startswith("memory://")


def test_wrong_methods_under_jobs_get_longtasks_own_405(client: Any) -> None:
    response = client.http.put("/jobs/tasks/slow-report", headers=JSON)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert body(response)["error"]["code"] == "method_not_allowed"


def test_my_tasks_and_the_api_description_are_under_jobs(client: Any) -> None:
    started = client.http.post("/jobs/tasks/slow-report", headers=FORM, body="days=1")
    cookie = started.headers["Set-Cookie"].split(";")[0]
    mine = body(client.http.get("/jobs/tasks", headers={**JSON, "Cookie": cookie}))
    assert [t["links"]["self"] for t in mine["tasks"]] == [started.headers["Location"]]
    openapi = body(client.http.get("/jobs/openapi.json"))
    assert openapi["servers"] == [{"url": "/jobs"}]
    assert "/tasks/slow-report" in openapi["paths"]


def test_the_report_task_in_python_without_http() -> None:
    testing.in_memory(host.tasks)
    task = testing.run_task(host.tasks, "slow-report", days=3, seconds_per_day=0)
    assert task.status == "done"
    assert testing.result_of(host.tasks, task) == "day,orders\n1,7\n2,1\n3,8\n"
    assert task.result is not None and task.result.filename == "orders-3-days.csv"


def test_the_sites_own_button_starts_one_report_per_order(client: Any) -> None:
    first = client.http.post("/orders/42/report")
    again = client.http.post("/orders/42/report")
    assert first.status_code == again.status_code == 303
    assert first.headers["Location"] == again.headers["Location"]
    assert first.headers["Location"].startswith("/jobs/tasks/slow-report/")
    other = client.http.post("/orders/43/report")
    assert other.headers["Location"] != first.headers["Location"]
    assert client.http.post("/orders/nope/report").status_code == 400
    page = client.http.get(first.headers["Location"], headers=JSON)
    assert page.status_code == 200 and body(page)["status"] == "ready"
