"""The HTTP interface of SPEC §3: routes, and their HTML and JSON answers."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from chalice import Chalice, Response
from chalice.app import Request

from .model import Conflict, Links, Status, TaskRecord, is_task_id, status_document
from .openapi import openapi_document
from .pages import render, render_status, static_file
from .params import InvalidParams, validate
from .progress import poll_interval
from .request import (
    OWNER_COOKIE,
    HttpError,
    base_path,
    caller_owner,
    cross_site,
    owner_of,
    read_parameters,
    wants_json,
)

if TYPE_CHECKING:
    from .longtasks import LongTasks

log = logging.getLogger(__name__)

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_JSON_HEADERS = {
    "Content-Type": "application/json",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_REASONS = {
    400: "Bad request",
    403: "Refused",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Request too large",
    415: "Unsupported media type",
    500: "Internal error",
    503: "Service unavailable",
}
_DEFAULT_PAGE_SIZE = 20
_MAX_PAGE_SIZE = 100


# -- responses --------------------------------------------------------------


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(body=text, status_code=status, headers={**_JSON_HEADERS, **(headers or {})})


def html_response(status: int, html: str, headers: dict[str, str] | None = None) -> Response:
    return Response(body=html, status_code=status, headers={**_HTML_HEADERS, **(headers or {})})


def redirect(location: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body="",
        status_code=303,
        headers={"Location": location, "Cache-Control": "no-store", **(headers or {})},
    )


def error_body(error: HttpError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message, "fields": error.fields}}


def error_response(error: HttpError, as_json: bool, prefix: str = "") -> Response:
    headers = {"Cache-Control": "no-store"}
    if as_json:
        body = error_body(error)
        if error.task is not None:
            body["task"] = error.task
        return json_response(error.status, body, headers)
    page = render(
        "error.html",
        title=_REASONS.get(error.status, "Error"),
        error=error,
        base=prefix,
    )
    return html_response(error.status, page, headers)


class Web:
    """Binds the routes of SPEC §3 to one LongTasks and its Chalice app."""

    def __init__(self, tasks: LongTasks) -> None:
        self.tasks = tasks

    @property
    def request(self) -> Request:
        request = self.tasks.app.current_request
        assert request is not None
        return request

    def register(self, app: Chalice) -> None:
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("/", "GET", self.index),
            ("/tasks", "GET", self.list_tasks),
            ("/tasks/{kind}", "POST", self.start),
            ("/tasks/{kind}/{task_id}", "GET", self.status),
            ("/tasks/{kind}/{task_id}", "DELETE", self.cancel),
            ("/tasks/{kind}/{task_id}/result", "GET", self.result),
            ("/tasks/{kind}/{task_id}/cancel", "POST", self.cancel_form),
            ("/static/{name}", "GET", self.static),
            ("/openapi.json", "GET", self.openapi),
        ]
        for path, method, view in routes:
            # Every body type reaches the view, which answers 415 in our own format.
            app.route(path, methods=[method], content_types=["*/*"])(self._guarded(view))
        app.register_middleware(self._uniform_errors, "http")

    # -- plumbing

    def _guarded(self, view: Callable[..., Response]) -> Callable[..., Response]:
        def guarded(**kwargs: str) -> Response:
            try:
                if self.request.method in ("POST", "DELETE") and cross_site(self.request):
                    raise HttpError(403, "cross_site", "requests from other sites are refused")
                return view(**kwargs)
            except HttpError as error:
                return error_response(error, wants_json(self.request), base_path(self.request))
            except Exception:
                log.exception("unexpected error in %s", view.__name__)
                unexpected = HttpError(500, "internal_error", "something went wrong on our side")
                return error_response(unexpected, wants_json(self.request), base_path(self.request))

        guarded.__name__ = view.__name__
        return guarded

    def _uniform_errors(self, event: Request, get_response: Callable[..., Response]) -> Response:
        """Chalice answers 405 and 500 itself; give them our error format."""
        response = get_response(event)
        body = response.body
        if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
            if response.status_code == 405:
                error = HttpError(405, "method_not_allowed", "this method is not allowed here")
            else:
                error = HttpError(500, "internal_error", "something went wrong on our side")
            as_json = event is not None and wants_json(event)
            fixed = error_response(error, as_json, base_path(event) if event else "")
            fixed.headers.update({k: v for k, v in response.headers.items() if k == "Allow"})
            return fixed
        return response

    def _links(self, task: TaskRecord, prefix: str) -> Links:
        own = f"{prefix}/tasks/{quote(task.kind)}/{task.id}"
        return Links(self=own, result=f"{own}/result", cancel=own)

    def _document(self, task: TaskRecord, now: float) -> dict[str, Any]:
        document = status_document(task, self._links(task, base_path(self.request)), now)
        if task.owner != caller_owner(self.request):
            document["links"]["cancel"] = None  # only its owner may cancel a task
        return document

    def _definition(self, kind: str) -> Any:
        definition = self.tasks.registry.get(kind)
        if definition is None:
            raise HttpError(404, "not_found", f"there is no task kind {kind!r}")
        return definition

    def _load(self, kind: str, task_id: str, now: float, owner_only: bool = False) -> TaskRecord:
        """The task, if the caller may see it; others get the same 404 as for no task."""
        self._definition(kind)
        if not is_task_id(task_id):
            raise HttpError(404, "not_found", "there is no such task")
        task = self.tasks.store.get(task_id)
        if task is None or task.kind != kind:
            raise HttpError(404, "not_found", "there is no such task")
        if (owner_only or self.tasks.settings.private) and task.owner != caller_owner(self.request):
            raise HttpError(404, "not_found", "there is no such task")
        if task.expires_at is not None and task.expires_at < now:
            raise HttpError(410, "gone", "this task is past its retention and was removed")
        return task

    def _cookie(self, token: str) -> str:
        secure = (self.request.headers.get("x-forwarded-proto") or "").lower() == "https"
        path = base_path(self.request) or "/"
        return f"{OWNER_COOKIE}={token}; Path={path}; Max-Age=31536000; HttpOnly; SameSite=Lax" + (
            "; Secure" if secure else ""
        )

    # -- views

    def index(self) -> Response:
        return self._index_page(200, errors={}, values={})

    def _index_page(
        self,
        status: int,
        errors: dict[str, dict[str, str]],
        values: dict[str, dict[str, str]],
    ) -> Response:
        prefix = base_path(self.request)
        owner = caller_owner(self.request)
        recent: list[dict[str, Any]] = []
        if owner is not None:
            now = time.time()
            tasks, _ = self.tasks.store.list_by_owner(owner, 10)
            recent = [status_document(t, self._links(t, prefix), now) for t in tasks]
        page = render(
            "index.html",
            base=prefix,
            definitions=list(self.tasks.registry),
            titles={d.kind: d.title for d in self.tasks.registry},
            errors=errors,
            values=values,
            recent=recent,
        )
        return html_response(status, page, {"Cache-Control": "no-store"})

    def start(self, kind: str) -> Response:
        definition = self._definition(kind)
        as_json = wants_json(self.request)
        given = read_parameters(self.request, self.tasks.settings.max_body_bytes)
        try:
            params = validate(definition.params, given)
        except InvalidParams as exc:
            error = HttpError(
                400, "invalid_parameters", "some parameters are not valid", exc.fields
            )
            if as_json:
                return error_response(error, True)
            typed = {k: str(v[0]) for k, v in given.items() if v and isinstance(v[0], str)}
            return self._index_page(400, {kind: exc.fields}, {kind: typed})
        owner = caller_owner(self.request)
        new_cookie = None
        if owner is None:
            token = secrets.token_urlsafe(32)
            new_cookie = self._cookie(token)
            owner = owner_of(token)
        task = self.tasks.start(definition.kind, params, owner=owner)
        now = time.time()
        document = self._document(task, now)
        headers = {"Cache-Control": "no-store"}
        if new_cookie:
            headers["Set-Cookie"] = new_cookie
        if as_json:
            headers.update({"Location": document["links"]["self"], "Retry-After": "1"})
            return json_response(202, document, headers)
        return redirect(document["links"]["self"], headers)

    def status(self, kind: str, task_id: str) -> Response:
        now = time.time()
        task = self._load(kind, task_id, now)
        document = self._document(task, now)
        if wants_json(self.request):
            headers = {"Cache-Control": "no-store"}
            if not task.is_terminal:
                headers["Retry-After"] = str(poll_interval(document["elapsed_seconds"]))
            return json_response(200, document, headers)
        # A bookmarked status URL leads to the result; the page's own refresh asks
        # with ?wait=1 and gets a "Done" page that starts the download instead.
        query: Mapping[str, str] = self.request.query_params or {}
        waited = query.get("wait") == "1"
        if task.status is Status.DONE and task.result is not None and not waited:
            return redirect(self.tasks.result_url(task))
        definition = self._definition(kind)
        parameters = [
            (param.label or name.replace("_", " ").capitalize(), task.params.get(name))
            for name, param in definition.params.items()
        ]
        page = render_status(
            document,
            title=definition.title,
            parameters=parameters,
            base=base_path(self.request),
            refresh=None if task.is_terminal else poll_interval(document["elapsed_seconds"]),
            download=waited and task.status is Status.DONE,
        )
        return html_response(200, page, {"Cache-Control": "no-store"})

    def result(self, kind: str, task_id: str) -> Response:
        now = time.time()
        task = self._load(kind, task_id, now)
        if task.status is Status.DONE and task.result is not None:
            return redirect(self.tasks.result_url(task))
        document = self._document(task, now)
        if wants_json(self.request):
            error = HttpError(
                409, "not_done", f"the task is {task.status.value}, not done", task=document
            )
            return error_response(error, True)
        return redirect(document["links"]["self"])

    def _cancel(self, kind: str, task_id: str) -> TaskRecord:
        now = time.time()
        task = self._load(kind, task_id, now, owner_only=True)
        try:
            return self.tasks.cancel(task)
        except Conflict as exc:
            current = exc.current or task
            raise HttpError(
                409,
                "already_finished",
                f"the task is already {current.status.value}",
                task=self._document(current, now),
            ) from None

    def cancel(self, kind: str, task_id: str) -> Response:
        task = self._cancel(kind, task_id)
        return json_response(202, self._document(task, time.time()), {"Cache-Control": "no-store"})

    def cancel_form(self, kind: str, task_id: str) -> Response:
        try:
            task = self._cancel(kind, task_id)
        except HttpError as error:
            if error.status != 409 or wants_json(self.request):
                raise
            task = self._load(kind, task_id, time.time())
        return redirect(self._links(task, base_path(self.request)).self)

    def list_tasks(self) -> Response:
        query: Mapping[str, str] = self.request.query_params or {}
        try:
            limit = int(query.get("limit", _DEFAULT_PAGE_SIZE))
        except ValueError:
            limit = -1
        if not 1 <= limit <= _MAX_PAGE_SIZE:
            raise HttpError(
                400,
                "invalid_parameters",
                "limit is not valid",
                {"limit": f"must be a whole number from 1 to {_MAX_PAGE_SIZE}"},
            )
        after = decode_cursor(query.get("next"))
        owner = caller_owner(self.request)
        if after is not None and after["owner"]["S"] != owner:
            raise HttpError(
                400,
                "invalid_parameters",
                "next is not valid",
                {"next": "is not a cursor this service gave out"},
            )
        tasks: list[TaskRecord] = []
        last = None
        if owner is not None:
            tasks, last = self.tasks.store.list_by_owner(owner, limit, after)
        now = time.time()
        body = {
            "tasks": [self._document(t, now) for t in tasks],
            "next": encode_cursor(last) if last else None,
        }
        return json_response(200, body, {"Cache-Control": "no-store"})

    def openapi(self) -> Response:
        document = openapi_document(list(self.tasks.registry), base_path(self.request) or "/")
        return json_response(200, document, {"Cache-Control": "public, max-age=300"})

    def static(self, name: str) -> Response:
        found = static_file(name)
        if found is None:
            raise HttpError(404, "not_found", "there is no such file")
        text, content_type = found
        return Response(
            body=text,
            status_code=200,
            headers={
                "Content-Type": content_type,
                "Cache-Control": "public, max-age=300",
                "X-Content-Type-Options": "nosniff",
            },
        )


def encode_cursor(key: dict[str, Any]) -> str:
    """An opaque `next` cursor from DynamoDB's LastEvaluatedKey (ids and dates only)."""
    flat = {name: value["S"] for name, value in key.items() if "S" in value}
    return base64.urlsafe_b64encode(json.dumps(flat).encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        padded = text + "=" * (-len(text) % 4)
        flat = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(flat, dict) or set(flat) != {"id", "owner", "created_at"}:
            raise ValueError
        return {name: {"S": str(value)} for name, value in flat.items()}
    except (ValueError, binascii.Error):
        raise HttpError(
            400,
            "invalid_parameters",
            "next is not valid",
            {"next": "is not a cursor this service gave out"},
        ) from None
