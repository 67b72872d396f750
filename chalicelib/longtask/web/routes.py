"""The HTTP interface on a Chalice Blueprint: every route under the mount's prefix, each
view parsing the request, calling the TaskService and rendering its answer."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from chalice import Blueprint, Response

from ..display import PREVIEW_BYTES, display_of, file_kind, human_size
from ..errors import AlreadyFinished, InvalidParams, NotDone
from ..model import Status, TaskRecord, status_document
from ..progress import poll_interval
from ..service import TaskService
from .mounted import MountedViews
from .openapi import openapi_document
from .pages import DEFAULT_LOOK, Look, ResultView, ago, render_status
from .request import (
    caller_owner,
    idempotency_key,
    owner_of,
    prefers_html,
    read_parameters,
    wants_json,
)
from .responses import (
    NO_STORE,
    HttpError,
    html_response,
    json_response,
    redirect,
)
from .static import CACHE_FOREVER, static_file

log = logging.getLogger(__name__)

_DEFAULT_PAGE_SIZE = 20
_MAX_PAGE_SIZE = 100
# Every method API Gateway routes; the ones a path does not serve answer 405 in our format.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Routes(MountedViews):
    """The views of one LongTasks, registered on a Blueprint that the host app mounts."""

    def __init__(
        self,
        service: TaskService,
        url_prefix: str,
        authorizer: Any = None,
        look: Look = DEFAULT_LOOK,
    ) -> None:
        self.service = service
        self.look = look
        self.url_prefix = url_prefix
        self.blueprint = Blueprint(__name__)
        table: list[tuple[str, dict[str, Callable[..., Response]]]] = [
            ("/", {"GET": self.index}),
            ("/tasks", {"GET": self.list_tasks}),
            ("/tasks/{kind}", {"POST": self.start}),
            ("/tasks/{kind}/{task_id}", {"GET": self.status, "DELETE": self.cancel}),
            ("/tasks/{kind}/{task_id}/result", {"GET": self.result}),
            ("/tasks/{kind}/{task_id}/cancel", {"POST": self.cancel_form}),
            ("/static/{name}", {"GET": self.static}),
            ("/openapi.json", {"GET": self.openapi}),
        ]
        for path, views in table:
            if "GET" in views:
                views["HEAD"] = views["GET"]
            allowed = ", ".join(m for m in _METHODS if m in views)
            for method in _METHODS:
                view = views.get(method) or self._not_allowed(allowed)
                # Every body type reaches the view, which answers 415 in our own format.
                # With an authorizer, API Gateway refuses a caller it does not accept
                # before any view runs, and the principal it names is the owner.
                extra = {"authorizer": authorizer} if authorizer is not None else {}
                self.blueprint.route(path, methods=[method], content_types=["*/*"], **extra)(
                    self._guarded(view, path, method)
                )

    # -- views

    def index(self) -> Response:
        return self._index_page(200, errors={}, values={})

    def _owner_or_new(self) -> tuple[str, str | None]:
        """The caller's owner, or a new one with the cookie that names it from now on."""
        owner = caller_owner(self.request)
        if owner is not None:
            return owner, None
        token = secrets.token_urlsafe(32)
        return str(owner_of(token)), self._cookie(token)

    def _index_page(
        self,
        status: int,
        errors: dict[str, dict[str, str]],
        values: dict[str, dict[str, str]],
    ) -> Response:
        owner = caller_owner(self.request)
        now = self.service.clock()
        recent = [
            (self._document(t, now), ago(now - t.created_at))
            for t in self.service.list_tasks(owner, 10, None).tasks
        ]
        registry = self.service.registry
        page = self._render(
            "index.html",
            definitions=list(registry),
            titles={d.kind: d.title for d in registry},
            errors=errors,
            values=values,
            recent=recent,
            # One-time tokens: a form sent twice (a double click, a reload) starts one
            # task. They are idempotency keys of the owner, so the page sets the owner
            # cookie now; else two posts of a first visit would be two owners.
            tokens={d.kind: secrets.token_urlsafe(16) for d in registry},
        )
        headers = dict(NO_STORE)
        if owner is None and self.request.method in ("GET", "HEAD"):
            headers["Set-Cookie"] = self._owner_or_new()[1] or ""
        return html_response(status, page, headers)

    def start(self, kind: str) -> Response:
        self.service.definition(kind)
        as_json = wants_json(self.request)
        given = read_parameters(self.request, self.service.settings.max_body_bytes)
        key = idempotency_key(self.request, given)
        owner, new_cookie = self._owner_or_new()
        try:
            started = self.service.start_request(kind, given, owner, key)
        except InvalidParams as exc:
            if as_json:
                raise
            # A person gets the form again, with what they typed and what is wrong.
            typed = {k: str(v[0]) for k, v in given.items() if v and isinstance(v[0], str)}
            return self._index_page(400, {kind: exc.fields}, {kind: typed})
        # The new owner is the caller from now on, though its cookie arrives only
        # with the next request: the answer already offers it the cancel link.
        task = started.task
        document = status_document(task, self.mount.task_links(task), self.service.clock())
        headers = dict(NO_STORE)
        if new_cookie:
            headers["Set-Cookie"] = new_cookie
        if as_json:
            headers["Location"] = document["links"]["self"]
            if not task.is_terminal:
                headers["Retry-After"] = "1"
            # A repeat is not a new resource: 200 with the task the first start made.
            return json_response(200 if started.repeated else 202, document, headers)
        return redirect(document["links"]["self"], headers)

    def status(self, kind: str, task_id: str) -> Response:
        task = self.service.find(kind, task_id, caller_owner(self.request))
        now = self.service.clock()
        document = self._document(task, now)
        retry_after = None
        if not task.is_terminal:
            retry_after = poll_interval(document["elapsed_seconds"], document["eta_seconds"])
        if wants_json(self.request):
            headers = dict(NO_STORE)
            if retry_after is not None:
                headers["Retry-After"] = str(retry_after)
            return json_response(200, document, headers)
        done = task.status is Status.DONE and task.result is not None
        # People get the result page; programs that follow redirects (curl -L) the file.
        if done and not prefers_html(self.request):
            return redirect(self.service.result_url(task))
        definition = self.service.definition(kind)
        parameters = [
            (param.label or name, task.params.get(name))
            for name, param in definition.params.items()
        ]
        mount = self.mount
        page = render_status(
            document,
            title=definition.title,
            parameters=parameters,
            base=mount.base,
            home=mount.home,
            refresh=retry_after,
            max_attempts=self.service.settings.max_attempts,
            result=self._result_view(task) if done else None,
            start_url=f"{mount.base}/tasks/{quote(kind)}",
            now=now,
            look=self.look,
        )
        return html_response(200, page, NO_STORE)

    def _result_view(self, task: TaskRecord) -> ResultView:
        """What the done page shows of the result: a preview from its first bytes."""
        assert task.result is not None
        info = task.result
        head = self.service.result_head(task, PREVIEW_BYTES)
        complete = len(head) < PREVIEW_BYTES or info.size == len(head)
        hook = self.service.definition(task.kind).display_result
        return ResultView(
            display=display_of(hook, info.content_type, head, complete),
            filename=info.filename or "result",
            kind=file_kind(info.content_type),
            size=human_size(info.size),
            download_url=self.service.result_url(task),
        )

    def result(self, kind: str, task_id: str) -> Response:
        task = self.service.find(kind, task_id, caller_owner(self.request))
        if task.status is Status.DONE and task.result is not None:
            return redirect(self.service.result_url(task))
        if wants_json(self.request):
            raise NotDone(task)
        return redirect(self.mount.task_links(task).self)

    def cancel(self, kind: str, task_id: str) -> Response:
        task = self.service.cancel(kind, task_id, caller_owner(self.request))
        return json_response(202, self._document(task, self.service.clock()), NO_STORE)

    def cancel_form(self, kind: str, task_id: str) -> Response:
        if wants_json(self.request):
            return self.cancel(kind, task_id)  # a program gets what DELETE answers
        try:
            task = self.service.cancel(kind, task_id, caller_owner(self.request))
        except AlreadyFinished:
            task = self.service.find(kind, task_id, caller_owner(self.request))
        return redirect(self.mount.task_links(task).self)

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
        page = self.service.list_tasks(caller_owner(self.request), limit, query.get("next") or None)
        now = self.service.clock()
        body = {"tasks": [self._document(t, now) for t in page.tasks], "next": page.next}
        return json_response(200, body, NO_STORE)

    def openapi(self) -> Response:
        document = openapi_document(list(self.service.registry), self.mount.home)
        return json_response(200, document, {"Cache-Control": "public, max-age=300"})

    def static(self, name: str) -> Response:
        found = static_file(name)
        if found is None:
            raise HttpError(404, "not_found", "there is no such file")
        return Response(
            body=found.text,
            status_code=200,
            headers={
                "Content-Type": found.content_type,
                "Cache-Control": CACHE_FOREVER,
                "X-Content-Type-Options": "nosniff",
            },
        )
