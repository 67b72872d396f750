"""A host app that puts a custom Chalice authorizer in front of a mounted LongTasks: the
authorizer refuses strangers, and its principal owns the caller's tasks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice import AuthResponse, Chalice
from chalice.app import AuthRequest
from chalice.test import Client

from chalicelib.longtask import LongTasks, Settings, testing

TOKENS = {"token-alice": "alice", "token-bob": "bob"}


def make_app(private: bool) -> Chalice:
    app = Chalice(app_name="host")

    @app.authorizer()
    def accounts(auth_request: AuthRequest) -> AuthResponse:
        principal = TOKENS.get(auth_request.token)
        return AuthResponse(routes=["*"] if principal else [], principal_id=principal or "")

    tasks = LongTasks(app, url_prefix="/jobs", authorizer=accounts)

    @tasks.task("echo", params={"text": str})
    def echo(params: dict[str, Any], ctx: Any) -> str:
        return str(params["text"])

    testing.in_memory(tasks, Settings(retry_seconds=1.0, private=private))
    return app


@pytest.fixture(params=[False, True], ids=["public", "private"])
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    with Client(make_app(private=request.param)) as test_client:
        yield test_client


def as_user(token: str) -> dict[str, str]:
    return {
        "Authorization": token,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }


def test_the_authorizers_principal_owns_the_task_and_strangers_are_refused(client: Client) -> None:
    started = client.http.post(
        "/jobs/tasks/echo", headers=as_user("token-alice"), body='{"text": "hi"}'
    )
    assert started.status_code == 202
    assert "Set-Cookie" not in started.headers  # the principal is the owner, not a cookie
    task = json.loads(started.body)
    url = task["links"]["self"]
    assert url.startswith("/jobs/tasks/echo/")

    # Without a token the authorizer refuses before longtask is reached.
    assert client.http.get(url, headers={"Accept": "application/json"}).status_code == 401
    anonymous = client.http.post(
        "/jobs/tasks/echo", headers={"Content-Type": "application/json"}, body="{}"
    )
    assert anonymous.status_code == 401

    # Bob is a known user but not the owner: he cannot cancel it, nor find it in his list.
    assert client.http.delete(url, headers=as_user("token-bob")).status_code == 404
    bobs = json.loads(client.http.get("/jobs/tasks", headers=as_user("token-bob")).body)
    assert bobs["tasks"] == []
    alices = json.loads(client.http.get("/jobs/tasks", headers=as_user("token-alice")).body)
    assert [t["id"] for t in alices["tasks"]] == [task["id"]]
    assert client.http.delete(url, headers=as_user("token-alice")).status_code == 202


def test_in_private_mode_only_the_principal_sees_the_status() -> None:
    with Client(make_app(private=True)) as client:
        started = client.http.post(
            "/jobs/tasks/echo", headers=as_user("token-alice"), body='{"text": "hi"}'
        )
        url = json.loads(started.body)["links"]["self"]
        assert client.http.get(url, headers=as_user("token-bob")).status_code == 404
        assert client.http.get(url, headers=as_user("token-alice")).status_code == 200
