"""What every view of a mount shares: where the mount is for this request, how any error
answers (one mapping from LongtaskError to HTTP), and how a task looks to this caller."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from chalice import Blueprint, Response
from chalice.app import Request

from ..errors import AwsUnavailable, ConfigError, LongtaskError, aws_trouble
from ..model import Links, Status, TaskRecord, status_document
from ..service import TaskService
from .pages import Look, render
from .request import OWNER_COOKIE, base_path, caller_owner, cross_site, wants_json
from .responses import HttpError, error_response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mount:
    """Where longtask's pages are for one request: API Gateway's stage prefix (``/api``,
    or none on a custom domain or locally) followed by the host app's url_prefix."""

    base: str  # no trailing slash: "" at the root, "/api/jobs" behind a stage
    mounted: bool  # under a url_prefix (its start page is `base` itself, not `base/`)

    @property
    def home(self) -> str:
        return self.base if self.mounted else f"{self.base}/"

    def task_links(self, task: TaskRecord) -> Links:
        own = f"{self.base}/tasks/{quote(task.kind)}/{task.id}"
        return Links(self=own, result=f"{own}/result", cancel=own)


class MountedViews:
    """The plumbing of the views of one LongTasks on its Blueprint."""

    service: TaskService
    url_prefix: str
    blueprint: Blueprint
    look: Look

    # -- plumbing

    @property
    def request(self) -> Request:
        return self.blueprint.current_request

    @property
    def mount(self) -> Mount:
        return Mount(base_path(self.request) + self.url_prefix, bool(self.url_prefix))

    def _guarded(
        self, view: Callable[..., Response], path: str, method: str
    ) -> Callable[..., Response]:
        def guarded(**kwargs: str) -> Response:
            request = self.request
            try:
                if request.method in ("POST", "DELETE") and cross_site(request):
                    raise HttpError(403, "cross_site", "requests from other sites are refused")
                response = view(**kwargs)
            except HttpError as error:
                response = self._error(error)
            except LongtaskError as exc:
                response = self._error(self._answer(exc))
            except Exception as exc:
                if aws_trouble(exc):
                    # Busy, not broken: a 503 that says when to try again.
                    log.warning("AWS trouble in %s %s: %s", method, path, exc)
                    response = self._error(self._answer(AwsUnavailable(exc)))
                else:
                    log.exception("unexpected error in %s %s", method, path)
                    response = self._error(
                        HttpError(500, "internal_error", "something went wrong on our side")
                    )
            if request.method == "HEAD":
                response.body = ""
            return response

        # Chalice names each route's view after its function: one name per path and method.
        guarded.__name__ = f"longtask_{method.lower()}_{_slug(path)}"
        return guarded

    def _not_allowed(self, allowed: str) -> Callable[..., Response]:
        def not_allowed(**_: str) -> Response:
            raise HttpError(
                405,
                "method_not_allowed",
                "this method is not allowed here",
                headers={"Allow": allowed},
            )

        return not_allowed

    def _answer(self, error: LongtaskError) -> HttpError:
        """The HTTP answer of any longtask error: its own status, code, words and fields,
        with the status document of the task it is about."""
        message = error.message
        if isinstance(error, ConfigError):
            log.error("longtask is not configured: %s", error)
            message = f"longtask is not configured: {error}"
        task = None
        if error.task is not None:
            task = self._document(error.task, self.service.clock())
        return HttpError(error.status, error.code, message, error.fields, task, error.headers)

    def _error(self, error: HttpError) -> Response:
        mount = self.mount
        return error_response(error, wants_json(self.request), mount.base, mount.home, self.look)

    def _document(self, task: TaskRecord, now: float) -> dict[str, Any]:
        retry_delay = None
        if task.status is Status.ERROR:
            retry_delay = self.service.settings.retry_delay(task.attempts)
        document = status_document(task, self.mount.task_links(task), now, retry_delay)
        if task.owner != caller_owner(self.request):
            document["links"]["cancel"] = None  # only its owner may cancel a task
        return document

    def _cookie(self, token: str) -> str:
        secure = (self.request.headers.get("x-forwarded-proto") or "").lower() == "https"
        path = self.mount.base or "/"
        return f"{OWNER_COOKIE}={token}; Path={path}; Max-Age=31536000; HttpOnly; SameSite=Lax" + (
            "; Secure" if secure else ""
        )

    def _render(self, template: str, **context: Any) -> str:
        mount = self.mount
        return render(template, self.look, base=mount.base, home=mount.home, **context)


def _slug(path: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in path).strip("_") or "index"
