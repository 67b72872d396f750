"""Answers: JSON, HTML pages, redirects and errors, each with the headers it must carry."""

from __future__ import annotations

from typing import Any

from chalice import Response

from ..encoding import compact_json
from .pages import DEFAULT_LOOK, Look, render

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
NO_STORE = {"Cache-Control": "no-store"}
REASONS = {
    400: "Bad request",
    403: "Refused",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Request too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class HttpError(Exception):
    """An answer other than success: `{"error": {"code", "message", "fields"}}` or a page
    with the same words; `task` adds the status document where one is known."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, str] | None = None,
        task: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.task = task
        self.headers = headers or {}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = compact_json(body)
    return Response(body=text, status_code=status, headers={**_JSON_HEADERS, **(headers or {})})


def html_response(status: int, html: str, headers: dict[str, str] | None = None) -> Response:
    return Response(body=html, status_code=status, headers={**_HTML_HEADERS, **(headers or {})})


def redirect(location: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body="", status_code=303, headers={"Location": location, **NO_STORE, **(headers or {})}
    )


def error_response(
    error: HttpError, as_json: bool, base: str, home: str, look: Look = DEFAULT_LOOK
) -> Response:
    headers = {**NO_STORE, **error.headers}
    if as_json:
        body: dict[str, Any] = {
            "error": {"code": error.code, "message": error.message, "fields": error.fields}
        }
        if error.task is not None:
            body["task"] = error.task
        return json_response(error.status, body, headers)
    page = render(
        "error.html",
        look,
        title=REASONS.get(error.status, "Error"),
        error=error,
        base=base,
        home=home,
    )
    return html_response(error.status, page, headers)
