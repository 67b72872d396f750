"""The host app's own Python side: starting for its users (their quotas and keys), getting,
cancelling and linking a task; and a task the host started for nobody is nobody's to
cancel over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice import AuthResponse, Chalice
from chalice.app import AuthRequest
from chalice.test import Client

from chalicelib.longtask import (
    AlreadyFinished,
    KeyReused,
    LongTasks,
    QuotaExceeded,
    Settings,
    TaskNotFound,
    testing,
)
from chalicelib.longtask.model import Status

TOKENS = {"token-alice": "alice", "token-bob": "bob"}
ACTIVE = 2


def host(with_authorizer: bool) -> tuple[Chalice, LongTasks]:
    app = Chalice(app_name="host")
    authorizer = None
    if with_authorizer:

        @app.authorizer()
        def accounts(auth_request: AuthRequest) -> AuthResponse:
            principal = TOKENS.get(auth_request.token)
            return AuthResponse(routes=["*"] if principal else [], principal_id=principal or "")

        authorizer = accounts
    tasks = LongTasks(app, url_prefix="/jobs", authorizer=authorizer)

    @tasks.task("echo", params={"text": str})
    def echo(params: dict[str, Any], ctx: Any) -> str:
        return str(params["text"])

    testing.in_memory(tasks, Settings(retry_seconds=1.0, max_active_per_owner=ACTIVE))
    return app, tasks


def as_user(token: str) -> dict[str, str]:
    return {"Authorization": token, "Accept": "application/json"}


def test_a_task_the_host_starts_for_a_user_is_theirs_over_http() -> None:
    app, tasks = host(with_authorizer=True)
    task = tasks.start("echo", owner="alice", text="hi")
    with Client(app) as client:
        listed = client.http.get("/jobs/tasks", headers=as_user("token-alice"))
        assert [t["id"] for t in json.loads(listed.body)["tasks"]] == [task.id]
        others = client.http.get("/jobs/tasks", headers=as_user("token-bob"))
        assert json.loads(others.body)["tasks"] == []
        url = tasks.url_for(task)
        assert url == f"/jobs/tasks/echo/{task.id}"
        refused = client.http.delete(url, headers=as_user("token-bob"))
        assert refused.status_code == 404
        cancelled = client.http.delete(url, headers=as_user("token-alice"))
        assert cancelled.status_code == 202
    final = tasks.get(task.id)
    assert final is not None and final.status is Status.CANCELLED


def test_a_task_the_host_starts_for_nobody_cannot_be_cancelled_over_http() -> None:
    app, tasks = host(with_authorizer=False)
    task = tasks.start("echo", text="hi")
    url = tasks.url_for(task)
    with Client(app) as client:
        # Anyone with the link sees it (the id is the key), as with every public task.
        seen = client.http.get(url, headers={"Accept": "application/json"})
        assert seen.status_code == 200 and json.loads(seen.body)["id"] == task.id
        # But nobody, with no cookie or with one, cancels it.
        for headers in ({}, {"Cookie": f"longtask_owner={'x' * 43}"}):
            delete = client.http.delete(url, headers={"Accept": "application/json", **headers})
            assert delete.status_code == 404, delete.body
            form = client.http.post(f"{url}/cancel", headers=headers)
            assert form.status_code == 404, form.body
    assert tasks.get(task.id).status is Status.READY  # type: ignore[union-attr]
    # The host's own code can.
    assert tasks.cancel(task.id).status is Status.CANCELLED
    with pytest.raises(AlreadyFinished):
        tasks.cancel(task.id)
    with pytest.raises(TaskNotFound):
        tasks.cancel("A" * 22)


def test_a_host_start_repeated_with_its_key_gives_one_task() -> None:
    _, tasks = host(with_authorizer=False)
    for owner in (None, "alice"):
        first = tasks.start("echo", owner=owner, idempotency_key="order-7", text="hi")
        again = tasks.start("echo", owner=owner, idempotency_key="order-7", text="hi")
        assert again.id == first.id
        with pytest.raises(KeyReused):
            tasks.start("echo", owner=owner, idempotency_key="order-7", text="other")
    # Keys are per owner: the same key of another owner is another task.
    bobs = tasks.start("echo", owner="bob", idempotency_key="order-7", text="hi")
    assert bobs.id not in {first.id}
    testing.drain(tasks)
    assert tasks.get(bobs.id).status is Status.DONE  # type: ignore[union-attr]


def test_host_starts_for_a_user_are_held_to_their_quota_and_the_hosts_are_not() -> None:
    _, tasks = host(with_authorizer=False)
    for _ in range(ACTIVE):
        tasks.start("echo", owner="alice", text="hi")
    with pytest.raises(QuotaExceeded):
        tasks.start("echo", owner="alice", text="hi")
    for _ in range(ACTIVE + 3):
        tasks.start("echo", text="hi")  # the host's own: no quota
    testing.drain(tasks)
    tasks.start("echo", owner="alice", text="hi")  # her places are back


def test_get_knows_only_tasks() -> None:
    _, tasks = host(with_authorizer=False)
    assert tasks.get("A" * 22) is None and tasks.get("not an id") is None


def test_a_parameter_cannot_take_a_name_that_start_keeps_for_itself() -> None:
    tasks = LongTasks(Chalice(app_name="host"))
    with pytest.raises(ValueError, match="owner cannot be a parameter's name"):
        tasks.task("export", params={"owner": str})(lambda params, ctx: None)


def test_a_host_page_finds_the_client_script_by_its_hashed_name() -> None:
    app, tasks = host(with_authorizer=False)
    url = tasks.static_url("client.js")
    assert url.startswith("/jobs/static/client.") and url.endswith(".js")
    with Client(app) as client:
        served = client.http.get(url)
        assert served.status_code == 200
        assert served.headers["Content-Type"].startswith("text/javascript")
        assert "longtask = { start: start, follow: follow, cancel: cancel }" in (
            served.body.decode()
        )
    with pytest.raises(KeyError):
        tasks.static_url("nothing.js")


def test_a_program_cancelling_through_the_form_route_gets_json() -> None:
    app, tasks = host(with_authorizer=True)
    task = tasks.start("echo", owner="alice", text="hi")
    with Client(app) as client:
        answer = client.http.post(f"{tasks.url_for(task)}/cancel", headers=as_user("token-alice"))
        assert answer.status_code == 202
        assert json.loads(answer.body)["status"] == "cancelled"
        again = client.http.post(f"{tasks.url_for(task)}/cancel", headers=as_user("token-alice"))
        assert again.status_code == 409


def test_result_of_takes_the_id_an_http_start_gives() -> None:
    _, tasks = host(with_authorizer=False)
    task = tasks.start("echo", text="hi")
    testing.drain(tasks)
    assert testing.result_of(tasks, task.id) == "hi"


def test_the_pages_say_the_hosts_name_and_take_its_own_layout(tmp_path: Any) -> None:
    (tmp_path / "base.html").write_text(
        '{% extends "longtask/base.html" %}'
        '{% block site_header %}<header><a href="/">{{ site_name }}</a> · Orders</header>'
        "{% endblock %}{% block site_footer %}<footer>Acme since 1901</footer>{% endblock %}"
    )
    app = Chalice(app_name="acme")
    tasks = LongTasks(app, url_prefix="/jobs", site_name="Acme Ltd", templates=tmp_path)
    tasks.task("echo", params={"text": str})(lambda params, ctx: params["text"])
    testing.in_memory(tasks)
    task = tasks.start("echo", text="hi")
    with Client(app) as client:
        for path in ("/jobs", tasks.url_for(task), "/jobs/tasks/echo/" + "A" * 22):
            page = client.http.get(path, headers={"Accept": "text/html"}).body.decode()
            assert "<footer>Acme since 1901</footer>" in page, path  # the host's layout
            assert '<a href="/">Acme Ltd</a> · Orders' in page, path
            assert "longtask" not in page.split("<main>")[0], path  # nor in the title
    # Without a name, the pages say the app's.
    plain = Chalice(app_name="bookshop")
    LongTasks(plain).task("echo")(lambda params, ctx: None)
    with Client(plain) as client:
        assert ">bookshop</a>" in client.http.get("/").body.decode()
