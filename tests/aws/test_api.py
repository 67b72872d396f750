"""The HTTP interface, in process through chalice.test.Client: on moto where the answer
depends on DynamoDB, SQS or S3 (the calls made, the queue, presigned links), on the
in-memory backends where it does not."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from chalicelib.longtask.model import Status, TaskRecord

from .conftest import OWNER, Aws, Memory, deliver, json_headers, start, status


def body(response: Any) -> Any:
    return json.loads(response.body)


def test_start_records_the_task_queues_its_id_and_answers_202(aws: Aws, client: Any) -> None:
    aws.calls.reset()
    response = client.http.post(
        "/tasks/primes", headers=json_headers(), body=json.dumps({"limit": 1000})
    )
    assert response.status_code == 202
    document = body(response)
    assert response.headers["Location"] == f"/tasks/primes/{document['id']}"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Cache-Control"] == "no-store"
    assert document["status"] == "ready" and document["done"] is False
    assert document["parameters"] == {"limit": 1000, "parts": 1}  # with its default
    assert document["links"]["self"] == response.headers["Location"]
    # The floor: one transaction (the record with the owner's quota counts) and one
    # SendMessage (and the queue URL, looked up once per process: maybe by an earlier test).
    counts = dict(aws.calls.counts)
    assert counts.pop("GetQueueUrl", 0) <= 1
    assert counts == {"TransactWriteItems": 1, "SendMessage": 1}
    messages = aws.sqs.receive_message(QueueUrl=aws.queue_url)["Messages"]
    assert json.loads(messages[0]["Body"]) == {"id": document["id"]}


def test_a_form_post_redirects_to_the_status_page_and_sets_an_owner_cookie(
    memory_client: Any,
) -> None:
    response = memory_client.http.post(
        "/tasks/sleep",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body="seconds=2&fail_times=&_submit=Start",
    )
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/tasks/sleep/")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("longtask_owner=") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    page = memory_client.http.get(response.headers["Location"])
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "Waiting for a worker" in page.body.decode()


def test_parameters_may_come_in_the_query_string(memory_client: Any) -> None:
    response = memory_client.http.post(
        "/tasks/sleep?seconds=1.5", headers={"Accept": "application/json"}
    )
    assert response.status_code == 202
    assert body(response)["parameters"] == {"seconds": 1.5, "fail_times": 0}


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"limit": "many"}, "limit", "whole number"),
        # A JSON body says each value's type: digits in a string are text.
        ({"limit": "2024"}, "limit", "must be a whole number, not text"),
        ({"limit": 1}, "limit", "at least 2"),
        ({"limit": 50_000_001}, "limit", "at most 50,000,000"),
        ({}, "limit", "required"),
        ({"limit": 10, "colour": "red"}, "colour", "not a parameter"),
    ],
)
def test_invalid_parameters_answer_400_naming_the_field(
    memory_client: Any, payload: dict[str, Any], field: str, words: str
) -> None:
    response = memory_client.http.post(
        "/tasks/primes", headers=json_headers(), body=json.dumps(payload)
    )
    assert response.status_code == 400
    error = body(response)["error"]
    assert error["code"] == "invalid_parameters"
    assert words in error["fields"][field]


def test_a_wrong_form_shows_the_error_beside_the_field_and_keeps_what_was_typed(
    memory_client: Any,
) -> None:
    response = memory_client.http.post(
        "/tasks/report",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body="month=2024-13",
    )
    assert response.status_code == 400
    page = response.body.decode()
    assert 'id="report-month-error"' in page
    assert "must be a month" in page
    assert 'value="2024-13"' in page


@pytest.mark.parametrize(
    ("method", "path", "headers", "payload", "expected", "code"),
    [
        ("post", "/tasks/nosuch", {"Accept": "application/json"}, "", 404, "not_found"),
        ("get", "/tasks/primes/short", {"Accept": "application/json"}, "", 404, "not_found"),
        ("get", "/tasks/primes/" + "A" * 22, {"Accept": "application/json"}, "", 404, "not_found"),
        ("put", "/tasks/primes", {"Accept": "application/json"}, "", 405, "method_not_allowed"),
        (
            "post",
            "/tasks/primes",
            {"Content-Type": "text/xml", "Accept": "application/json"},
            "<a/>",
            415,
            "unsupported_media_type",
        ),
        ("post", "/tasks/primes", json_headers(), "{not json", 400, "invalid_json"),
        ("post", "/tasks/primes", json_headers(), "[1, 2]", 400, "invalid_json"),
        (
            "post",
            "/tasks/primes",
            json_headers(),
            json.dumps({"limit": "9" * 70000}),
            413,
            "too_large",
        ),
        ("get", "/tasks?limit=0", {"Accept": "application/json"}, "", 400, "invalid_parameters"),
        (
            "get",
            "/tasks?next=garbage",
            {"Accept": "application/json"},
            "",
            400,
            "invalid_parameters",
        ),
    ],
)
def test_bad_requests_get_a_clear_error_never_a_500(
    memory_client: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    payload: str,
    expected: int,
    code: str,
) -> None:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("post", "put"):
        kwargs["body"] = payload
    response = getattr(memory_client.http, method)(path, **kwargs)
    assert response.status_code == expected, response.body
    assert body(response)["error"]["code"] == code
    assert "Traceback" not in response.body.decode()


def test_errors_come_as_html_pages_for_browsers(memory_client: Any) -> None:
    response = memory_client.http.get("/tasks/nosuch/" + "A" * 22)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert "There is no task kind" in response.body.decode()


def test_a_malformed_id_is_refused_before_any_aws_call(aws: Aws, client: Any) -> None:
    aws.calls.reset()
    response = client.http.get(
        "/tasks/primes/..%2F..%2Fetc", headers={"Accept": "application/json"}
    )
    assert response.status_code == 404
    assert aws.calls.counts == {}


def test_the_status_of_a_waiting_task(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 3})
    aws.calls.reset()
    response = client.http.get(document["links"]["self"], headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["Retry-After"] == "1"
    assert body(response)["status"] == "ready"
    assert aws.calls.counts == {"GetItem": 1}  # a poll is one read
    page = client.http.get(document["links"]["self"])
    html = page.body.decode()
    # Without JavaScript the page refreshes itself, at its own plain address.
    assert f'<meta http-equiv="refresh" content="1;url={document["links"]["self"]}">' in html
    assert "<progress" in html and 'aria-live="polite"' in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_done_task_shows_its_result_page_to_browsers_and_redirects_programs(
    aws: Aws, client: Any
) -> None:
    # The HTML of a done task used to be a 303 to the file: a bookmark opened a blank tab
    # and downloaded. Browsers now get the result page; curl -L still gets the file.
    document = start(client, "primes", {"limit": 1_000_000})
    assert deliver(aws) == ["deleted"]
    url = document["links"]["self"]
    aws.calls.reset()
    page = client.http.get(url, headers=BROWSER)
    assert page.status_code == 200
    html = page.body.decode()
    assert "78,498 primes up to 1,000,000" in html
    assert ">Download</a>" in html and f'href="{url}/result"' in html
    assert page.headers["Cache-Control"] == "no-store"
    # One read of the record, one ranged read of the result for the preview, and the
    # presigned link for the download (signed locally, though the recorder counts it).
    assert aws.calls.counts == {"GetItem": 1, "GetObject": 2}
    (ranged,) = [p for name, p in aws.calls.log if name == "GetObject" and "Range" in p]
    assert ranged["Range"] == "bytes=0-65535"

    as_json = client.http.get(url, headers={"Accept": "application/json"})
    assert as_json.status_code == 200 and body(as_json)["status"] == "done"
    for accept in ("*/*", None):
        headers = {"Accept": accept} if accept else {}
        program = client.http.get(url, headers=headers)
        assert program.status_code == 303
        assert "X-Amz-Signature=" in program.headers["Location"]
    assert client.http.get(url + "/result", headers=BROWSER).status_code == 303


def test_a_report_shows_its_first_rows_as_a_table(aws: Aws, client: Any) -> None:
    document = start(client, "report", {"month": "2024-02"})
    assert deliver(aws) == ["deleted"]
    html = client.http.get(document["links"]["self"], headers=BROWSER).body.decode()
    assert '<th scope="col">date</th>' in html
    assert "<td>2024-02-01</td>" in html
    assert "report-2024-02.csv" in html and "CSV table" in html


def test_static_files_have_hashed_names_and_are_cached_for_good(client: Any) -> None:
    html = client.http.get("/", headers=BROWSER).body.decode()
    (css,) = re.findall(r'href="(/static/style\.[0-9a-f]{12}\.css)"', html)
    response = client.http.get(css)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert client.http.get("/static/style.css").status_code == 404


def test_the_result_of_an_unfinished_task_is_409_for_programs_and_a_redirect_for_people(
    memory_client: Any,
) -> None:
    document = start(memory_client, "sleep", {"seconds": 3})
    response = memory_client.http.get(
        document["links"]["self"] + "/result", headers={"Accept": "application/json"}
    )
    assert response.status_code == 409
    assert body(response)["task"]["status"] == "ready"
    response = memory_client.http.get(document["links"]["self"] + "/result")
    assert response.status_code == 303
    assert response.headers["Location"] == document["links"]["self"]


def test_cancel_stops_a_waiting_task_for_good(aws: Aws, client: Any) -> None:
    document = start(client, "sleep", {"seconds": 3})
    response = client.http.delete(document["links"]["self"], headers=json_headers())
    assert response.status_code == 202
    assert body(response)["status"] == "cancelled" and body(response)["done"] is True
    again = client.http.delete(document["links"]["self"], headers=json_headers())
    assert again.status_code == 409
    # Its message is still on the queue; delivering it runs nothing.
    assert deliver(aws) == ["deleted"]
    assert status(client, document)["status"] == "cancelled"
    assert aws.s3.list_objects_v2(Bucket=aws.tasks.settings.bucket).get("KeyCount", 0) == 0


def test_the_cancel_form_redirects_back_to_the_status_page(memory_client: Any) -> None:
    document = start(memory_client, "sleep", {"seconds": 3})
    response = memory_client.http.post(
        document["links"]["self"] + "/cancel",
        headers={"Content-Type": "application/x-www-form-urlencoded", **OWNER},
        body="",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == document["links"]["self"]
    page = memory_client.http.get(document["links"]["self"]).body.decode()
    assert "Cancelled" in page


def test_my_tasks_newest_first_one_page_at_a_time(memory: Memory, memory_client: Any) -> None:
    first = memory_client.http.post(
        "/tasks/sleep",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body="seconds=1",
    )
    cookie = first.headers["Set-Cookie"].split(";")[0]
    ids = [first.headers["Location"].rsplit("/", 1)[1]]
    for seconds in (2, 3):
        memory.clock.advance(0.001)  # distinct creation times, a millisecond apart
        response = memory_client.http.post(
            "/tasks/sleep",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
            body=f"seconds={seconds}",
        )
        ids.append(response.headers["Location"].rsplit("/", 1)[1])
    start(memory_client, "sleep", {"seconds": 4})  # someone else's: no cookie
    headers = {"Accept": "application/json", "Cookie": cookie}
    page1 = body(memory_client.http.get("/tasks?limit=2", headers=headers))
    assert [t["id"] for t in page1["tasks"]] == [ids[2], ids[1]]
    page2 = body(memory_client.http.get(f"/tasks?limit=2&next={page1['next']}", headers=headers))
    assert [t["id"] for t in page2["tasks"]] == [ids[0]]
    assert page2["next"] is None
    index = memory_client.http.get("/", headers={"Cookie": cookie}).body.decode()
    assert all(f"/tasks/sleep/{task_id}" in index for task_id in ids)
    assert (
        body(memory_client.http.get("/tasks", headers={"Accept": "application/json"}))["tasks"]
        == []
    )


def test_a_record_past_its_retention_is_410(memory: Memory, memory_client: Any) -> None:
    now = memory.clock()
    old = TaskRecord(
        id="B" * 22,
        kind="sleep",
        params={"seconds": 1},
        status=Status.DONE,
        created_at=now - 9 * 86400,
        updated_at=now - 9 * 86400,
        expires_at=int(now - 86400),
    )
    memory.backends.store.create(old)
    response = memory_client.http.get(
        "/tasks/sleep/" + "B" * 22, headers={"Accept": "application/json"}
    )
    assert response.status_code == 410


def test_links_keep_api_gateways_stage_prefix(memory: Memory) -> None:
    event = {
        "resource": "/tasks/{kind}",
        "path": "/tasks/sleep",
        "httpMethod": "POST",
        "headers": {"Accept": "application/json", "Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"kind": "sleep"},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/tasks/{kind}",
            "path": "/api/tasks/sleep",
            "httpMethod": "POST",
            "stage": "api",
        },
        "body": json.dumps({"seconds": 1}),
        "isBase64Encoded": False,
    }
    response = memory.app_module.app(event, None)
    assert response["statusCode"] == 202
    location = response["headers"]["Location"]
    assert location.startswith("/api/tasks/sleep/")
    assert json.loads(response["body"])["links"]["self"] == location
