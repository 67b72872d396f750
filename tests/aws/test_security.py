"""Hostile input and hostile users: a table of bad requests, owners, CSRF, headers, fuzzing."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_openapi

from .conftest import OWNER, Aws, deliver, json_headers, start

pytestmark = pytest.mark.usefixtures("aws")

JSON = {"Accept": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OTHER = {"Cookie": "longtask_owner=" + "x" * 43}


def body_of(response: Any) -> Any:
    return json.loads(response.body)


# -- a table of hostile inputs, each with the answer it must get ---------------------

HOSTILE: list[tuple[str, str, str, dict[str, str], str | bytes, int]] = [
    # (name, method, path, headers, body, expected status)
    ("oversized body", "POST", "/tasks/primes", json_headers(), "x" * 70_000, 413),
    ("oversized form", "POST", "/tasks/primes", FORM, "limit=" + "9" * 70_000, 413),
    (
        "wrong type: text for a number",
        "POST",
        "/tasks/primes",
        json_headers(),
        '{"limit": "ten"}',
        400,
    ),
    (
        "wrong type: boolean for a number",
        "POST",
        "/tasks/primes",
        json_headers(),
        '{"limit": true}',
        400,
    ),
    ("wrong type: list", "POST", "/tasks/primes", json_headers(), '{"limit": [5]}', 400),
    ("wrong type: object", "POST", "/tasks/primes", json_headers(), '{"limit": {"$gt": 1}}', 400),
    ("huge number", "POST", "/tasks/primes", json_headers(), '{"limit": 1' + "0" * 400 + "}", 400),
    ("huge float", "POST", "/tasks/sleep", json_headers(), '{"seconds": 1e400}', 400),
    ("NaN", "POST", "/tasks/sleep", json_headers(), '{"seconds": NaN}', 400),
    ("negative", "POST", "/tasks/sleep", json_headers(), '{"seconds": -1}', 400),
    (
        "negative fail_times",
        "POST",
        "/tasks/sleep",
        json_headers(),
        '{"seconds": 1, "fail_times": -3}',
        400,
    ),
    ("missing field", "POST", "/tasks/report", json_headers(), "{}", 400),
    (
        "duplicated JSON field",
        "POST",
        "/tasks/primes",
        json_headers(),
        '{"limit": 5, "limit": 7}',
        400,
    ),
    ("duplicated form field", "POST", "/tasks/primes", FORM, "limit=5&limit=7", 400),
    ("field in body and query", "POST", "/tasks/primes?limit=5", FORM, "limit=7", 400),
    ("unknown field", "POST", "/tasks/primes", json_headers(), '{"limit": 5, "admin": 1}', 400),
    (
        "script tag",
        "POST",
        "/tasks/report",
        json_headers(),
        '{"month": "<script>alert(1)</script>"}',
        400,
    ),
    (
        "SQL-looking",
        "POST",
        "/tasks/report",
        json_headers(),
        '{"month": "2024-02\' OR 1=1 --"}',
        400,
    ),
    ("NoSQL-looking", "POST", "/tasks/report", json_headers(), '{"month": {"$ne": null}}', 400),
    (
        "control characters",
        "POST",
        "/tasks/report",
        json_headers(),
        '{"month": "2024-\\u0000\\u001b02"}',
        400,
    ),
    ("unicode digits", "POST", "/tasks/report", json_headers(), '{"month": "٢٠٢٤-٠٢"}', 400),
    (
        "right-to-left override",
        "POST",
        "/tasks/report",
        json_headers(),
        '{"month": "2024-\\u202e02"}',
        400,
    ),
    ("month 13", "POST", "/tasks/report", json_headers(), '{"month": "2024-13"}', 400),
    ("invalid JSON", "POST", "/tasks/primes", json_headers(), "{limit: 5}", 400),
    ("JSON but not an object", "POST", "/tasks/primes", json_headers(), '"limit"', 400),
    ("deeply nested JSON", "POST", "/tasks/primes", json_headers(), "[" * 5000 + "]" * 5000, 400),
    ("not UTF-8", "POST", "/tasks/primes", json_headers(), b"\xff\xfe{}", 400),
    (
        "XML body",
        "POST",
        "/tasks/primes",
        {"Content-Type": "application/xml", **JSON},
        "<limit>5</limit>",
        415,
    ),
    (
        "multipart body",
        "POST",
        "/tasks/primes",
        {"Content-Type": "multipart/form-data; boundary=x", **JSON},
        "--x--",
        415,
    ),
    ("unknown kind", "POST", "/tasks/rm-rf", json_headers(), "{}", 404),
    ("path traversal in id", "GET", "/tasks/primes/..%2F..%2F..%2Fetc%2Fpasswd", JSON, "", 404),
    ("dots as id", "GET", "/tasks/primes/......................", JSON, "", 404),
    ("id too long", "GET", "/tasks/primes/" + "A" * 23, JSON, "", 404),
    ("id with unicode", "GET", "/tasks/primes/" + "Ä" * 22, JSON, "", 404),
    ("id unknown", "GET", "/tasks/primes/" + "A" * 22, JSON, "", 404),
    ("result of unknown id", "GET", "/tasks/primes/" + "A" * 22 + "/result", JSON, "", 404),
    ("cancel unknown id", "DELETE", "/tasks/primes/" + "A" * 22, JSON, "", 404),
    ("wrong method", "PUT", "/tasks/primes", JSON, "", 405),
    ("wrong method on a task", "PATCH", "/tasks/primes/" + "A" * 22, JSON, "", 405),
    ("list: limit too large", "GET", "/tasks?limit=100000", JSON, "", 400),
    ("list: limit not a number", "GET", "/tasks?limit=1;DROP", JSON, "", 400),
    ("list: forged cursor", "GET", "/tasks?next=eyJpZCI6IngifQ", JSON, "", 400),
    ("static traversal", "GET", "/static/..%2Fapp.py", JSON, "", 404),
    (
        "cross-site form post",
        "POST",
        "/tasks/sleep",
        {**FORM, "Sec-Fetch-Site": "cross-site"},
        "seconds=1",
        403,
    ),
    (
        "foreign Origin",
        "POST",
        "/tasks/sleep",
        {**FORM, "Origin": "https://evil.example", "Host": "localhost"},
        "seconds=1",
        403,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "payload", "expected"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_input_gets_its_4xx_and_never_a_trace(
    client: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    payload: str | bytes,
    expected: int,
) -> None:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["body"] = payload
    response = client.http.request(method, path, **kwargs)
    assert response.status_code == expected, response.body[:300]
    text = response.body.decode("utf-8", "replace")
    assert "Traceback" not in text and 'File "' not in text
    if response.headers.get("Content-Type", "").startswith("application/json"):
        error = body_of(response)["error"]
        assert error["code"] and error["message"]
        if expected == 400 and error["code"] == "invalid_parameters":
            assert error["fields"], "a 400 names the field that was wrong"


def test_hostile_values_come_back_escaped_in_the_page(client: Any) -> None:
    payload = '<script>alert("x")</script>'
    response = client.http.post("/tasks/report", headers=FORM, body=f"month={payload}")
    page = response.body.decode()
    assert response.status_code == 400
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


# -- owners -------------------------------------------------------------------------


def test_only_the_owner_can_cancel_and_others_learn_nothing(client: Any) -> None:
    document = start(client, "sleep", {"seconds": 5})
    url = document["links"]["self"]
    stranger = client.http.delete(url, headers={**JSON, **OTHER})
    assert stranger.status_code == 404
    assert body_of(stranger)["error"]["message"] == "there is no such task"
    seen_by_stranger = body_of(client.http.get(url, headers={**JSON, **OTHER}))
    assert seen_by_stranger["links"]["cancel"] is None  # no Cancel button for them
    assert client.http.delete(url, headers=json_headers()).status_code == 202


def test_private_mode_hides_status_and_result_from_other_owners(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 0})
    deliver(aws)
    url = document["links"]["self"]
    tasks = aws.tasks
    public = tasks.settings
    tasks.use_backends(tasks.backends, dataclasses.replace(public, private=True))
    try:
        for path in (url, url + "/result"):
            assert client.http.get(path, headers={**JSON, **OTHER}).status_code == 404
            assert client.http.get(path, headers=JSON).status_code == 404  # no cookie at all
        assert client.http.get(url, headers={**JSON, **OWNER}).status_code == 200
        assert client.http.get(url + "/result", headers=OWNER).status_code == 303
    finally:
        tasks.use_backends(tasks.backends, public)


def test_the_owner_is_the_authorizers_principal_when_there_is_one(aws: Aws) -> None:
    def event(
        method: str, path: str, resource: str, params: dict[str, str], principal: str
    ) -> dict[str, Any]:
        return {
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": {"Accept": "application/json", "Content-Type": "application/json"},
            "multiValueHeaders": {},
            "queryStringParameters": None,
            "multiValueQueryStringParameters": None,
            "pathParameters": params,
            "stageVariables": None,
            "isBase64Encoded": False,
            "body": json.dumps({"seconds": 1}) if method == "POST" else None,
            "requestContext": {
                "resourcePath": resource,
                "path": path,
                "httpMethod": method,
                "stage": "api",
                "authorizer": {"principalId": principal},
            },
        }

    app = aws.app_module.app
    started = app(event("POST", "/tasks/sleep", "/tasks/{kind}", {"kind": "sleep"}, "alice"), None)
    assert started["statusCode"] == 202 and "Set-Cookie" not in started["headers"]
    task_id = json.loads(started["body"])["id"]
    params = {"kind": "sleep", "task_id": task_id}
    path = f"/tasks/sleep/{task_id}"
    by_bob = app(event("DELETE", path, "/tasks/{kind}/{task_id}", params, "bob"), None)
    assert by_bob["statusCode"] == 404
    by_alice = app(event("DELETE", path, "/tasks/{kind}/{task_id}", params, "alice"), None)
    assert by_alice["statusCode"] == 202


def test_the_stored_owner_is_a_hash_not_the_cookie(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 1})
    item = aws.dynamodb.get_item(
        TableName=aws.tasks.settings.table, Key={"id": {"S": document["id"]}}
    )["Item"]
    token = OWNER["Cookie"].split("=", 1)[1]
    assert token not in json.dumps(item)
    assert re.fullmatch(r"[0-9a-f]{64}", item["owner"]["S"])


# -- CSRF and headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Sec-Fetch-Site": "same-origin"}, 303),
        ({"Sec-Fetch-Site": "none"}, 303),  # typed into the address bar
        ({}, 303),  # not a browser (curl)
        ({"Origin": "http://testserver", "Host": "testserver"}, 303),
        ({"Sec-Fetch-Site": "same-site"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "null"}, 403),  # a sandboxed frame
        ({"Origin": "http://testserver.evil.example", "Host": "testserver"}, 403),
    ],
)
def test_form_posts_from_other_sites_are_refused(
    client: Any, headers: dict[str, str], expected: int
) -> None:
    response = client.http.post("/tasks/sleep", headers={**FORM, **headers}, body="seconds=1")
    assert response.status_code == expected


def test_cancel_from_another_site_is_refused(client: Any) -> None:
    document = start(client, "sleep", {"seconds": 5})
    response = client.http.post(
        document["links"]["self"] + "/cancel",
        headers={**FORM, **OWNER, "Sec-Fetch-Site": "cross-site"},
        body="",
    )
    assert response.status_code == 403
    status = body_of(client.http.get(document["links"]["self"], headers=JSON))["status"]
    assert status == "ready"


@pytest.mark.parametrize("path", ["/", "/tasks/nosuch", "/tasks/primes/" + "A" * 22])
def test_every_html_answer_carries_the_security_headers(client: Any, path: str) -> None:
    response = client.http.get(path)
    headers = response.headers
    assert headers["Content-Type"].startswith("text/html")
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script(client: Any) -> None:
    document = start(client, "sleep", {"seconds": 5})
    for path in ("/", document["links"]["self"]):
        page = client.http.get(path).body.decode()
        # Code comes from files; a JSON data block never runs (CSP allows no inline code).
        for tag in re.findall(r"<script[^>]*>", page):
            assert "src=" in tag or 'type="application/json"' in tag
        assert not re.search(r"\son[a-z]+=", page), "no inline event handlers"


# -- the OpenAPI description, and a fuzz test against it -----------------------------


@pytest.fixture
def openapi(client: Any) -> dict[str, Any]:
    response = client.http.get("/openapi.json")
    assert response.status_code == 200
    document = dict(body_of(response))
    validate_openapi(document)
    return document


def test_the_openapi_description_names_every_route_and_task(openapi: dict[str, Any]) -> None:
    paths = set(openapi["paths"])
    for kind in ("primes", "report", "sleep"):
        assert {f"/tasks/{kind}", f"/tasks/{kind}/{{id}}", f"/tasks/{kind}/{{id}}/result"} <= paths
    schema = openapi["paths"]["/tasks/primes"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert schema["properties"]["limit"] == {
        "type": "integer",
        "minimum": 2,
        "maximum": 50_000_000,
        "examples": ["1000000"],
    }


def _operation(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    for template, item in openapi["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        # What the server sees: no query, and no fragment (a client never sends one).
        if re.match(pattern, re.split(r"[?#]", path)[0]):
            return dict(item.get(method.lower()) or {"responses": {"405": {}}})
    return None


def check_against(openapi: dict[str, Any], method: str, path: str, response: Any) -> None:
    """The answer must be one the description lists, with a body of its schema."""
    assert response.status_code < 500, (method, path, response.body[:300])
    assert b"Traceback" not in response.body
    operation = _operation(openapi, method, path)
    if operation is not None:
        assert str(response.status_code) in operation["responses"], (
            method,
            path,
            response.status_code,
        )
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return
    body = body_of(response)
    if response.status_code >= 400:
        ref = "#/components/schemas/Error"
    elif isinstance(body, dict) and "tasks" in body:
        ref = "#/components/schemas/TaskList"
    elif isinstance(body, dict) and "openapi" in body:
        return
    else:
        ref = "#/components/schemas/Status"
    jsonschema.validate(body, {"$ref": ref, "components": openapi["components"]})


ids = st.one_of(
    st.just("A" * 22),
    st.text(alphabet="ABCxyz019_-", min_size=22, max_size=22),
    st.text(max_size=30).map(lambda t: t.replace("/", "%2F").replace("?", "%3F") or "x"),
    st.sampled_from(["..%2F..", "%00", "' OR '1'='1", "<script>", "ﬀ" * 11]),
)
kinds = st.one_of(
    st.sampled_from(["primes", "report", "sleep"]),
    st.text(alphabet="abcdefz-_.%", min_size=1, max_size=12),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.one_of(
    st.dictionaries(
        st.sampled_from(["limit", "month", "seconds", "fail_times", "_x", "zz"]),
        json_values,
        max_size=4,
    ).map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=60),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "text/xml",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "",
    ]
)
accepts = st.sampled_from(
    ["application/json", "text/html", "*/*", "application/json;q=0.1", "garbage/;;q=x", ""]
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], Any]:
    kind, task_id = draw(kinds), draw(ids)
    path = draw(
        st.sampled_from(
            [
                "/",
                "/tasks",
                f"/tasks?limit={draw(st.text(max_size=5))}",
                f"/tasks/{kind}",
                f"/tasks/{kind}/{task_id}",
                f"/tasks/{kind}/{task_id}/result",
                f"/tasks/{kind}/{task_id}/cancel",
                "/openapi.json",
            ]
        )
    )
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT"]))
    headers = {"Accept": draw(accepts)}
    content_type = draw(content_types)
    if content_type:
        headers["Content-Type"] = content_type
    if draw(st.booleans()):
        headers.update(OWNER)
    return method, path, headers, draw(bodies)


FUZZ_CASES = 300


@settings(
    max_examples=FUZZ_CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_fuzzed_requests_never_get_a_5xx_and_match_the_description(
    client: Any, openapi: dict[str, Any], request: tuple[str, str, dict[str, str], Any]
) -> None:
    method, path, headers, payload = request
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PUT"):
        kwargs["body"] = payload
    response = client.http.request(method, path, **kwargs)
    check_against(openapi, method, path, response)


def test_the_happy_paths_match_the_description_too(
    aws: Aws, client: Any, openapi: dict[str, Any]
) -> None:
    def call(method: str, path: str, **kwargs: Any) -> Iterator[Any]:
        response = client.http.request(method, path, **kwargs)
        check_against(openapi, method, path, response)
        yield response

    document = start(client, "sleep", {"seconds": 0})
    url = document["links"]["self"]
    next(call("GET", url, headers=JSON))
    next(call("GET", url + "/result", headers=JSON))
    deliver(aws)
    next(call("GET", url, headers=JSON))
    next(call("GET", url + "/result", headers=JSON))
    next(call("DELETE", url, headers=json_headers()))
    next(call("GET", "/tasks?limit=5", headers=json_headers()))
