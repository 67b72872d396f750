"""The OpenAPI description of the HTTP interface, built from the declared tasks."""

from __future__ import annotations

from typing import Any

from ..params import Param, default_label
from ..tasks import TaskDefinition
from .schemas import ERROR, STATUS_DOCUMENT, TASK_LIST


def param_schema(name: str, param: Param, form: bool = False) -> dict[str, Any]:
    """The JSON schema of one declared parameter, in a JSON body or (`form`) a form."""
    schema = param.json_schema()
    if not param.required:
        # An optional parameter sent blank (an empty form field), or null in JSON, is
        # left out, so it takes its default: the server accepts both.
        blank = [{"type": "string", "pattern": "^\\s*$"}]
        schema = {
            "anyOf": [schema, *blank, *([] if form else [{"type": "null"}])],
            "default": param.default,
        }
    # A label that only repeats the name says nothing a program does not know.
    said = param.label if param.label and param.label != default_label(name) else None
    if param.help or said:
        schema["description"] = param.help or said
    if param.example:
        schema["examples"] = [param.example]
    return schema


_HTML = {"text/html": {"schema": {"type": "string"}}}
_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An error: JSON for programs, the same words as a page for browsers."""
    answer: dict[str, Any] = {"description": description, "content": {**_ERROR_JSON, **_HTML}}
    if headers:
        answer["headers"] = headers
    return answer


def _status(
    description: str,
    headers: dict[str, Any] | None = None,
    html: bool = False,
    links: dict[str, Any] | None = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": "#/components/schemas/Status"}}
    }
    if html:
        content.update(_HTML)
    answer: dict[str, Any] = {"description": description, "content": content}
    if headers:
        answer["headers"] = headers
    if links:
        answer["links"] = links
    return answer


def _redirect(description: str) -> dict[str, Any]:
    return {
        "description": f"See Other: {description}",
        "headers": {"Location": {"schema": {"type": "string"}, "required": True}},
    }


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "poll again in"}}
_COMMON = {
    "404": _error("no such task kind or task (also for a malformed id)"),
    "405": _error(
        "method not allowed", {"Allow": {"schema": {"type": "string"}, "required": True}}
    ),
    "503": _error("longtask is not configured (a setting is missing)"),
}
_GONE = _error("past its retention")
_CROSS_SITE = _error("sent from another site (a CSRF attempt)")
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "a repeat by the same owner gets the first task back (200), not a new one",
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
}


def _with_head(get: dict[str, Any]) -> dict[str, Any]:
    """HEAD answers as GET does, without the body."""
    head = {
        **get,
        "operationId": f"head_{get['operationId']}",
        "summary": f"HEAD: {get['summary']}",
    }
    return {"get": get, "head": head}


def _start(definition: TaskDefinition) -> dict[str, Any]:
    required = [name for name, p in definition.params.items() if p.required]

    def body_schema(form: bool) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                name: param_schema(name, p, form) for name, p in definition.params.items()
            },
            "required": required,
            # Unknown names are refused (a typo is not silently ignored); names that start
            # with "_" (a form's one-time token, its submit button) are dropped.
            "patternProperties": {"^_": {}},
            "additionalProperties": False,
        }

    kind = definition.kind.replace("-", "_")
    links = {
        name: {"operationId": f"{name}_{kind}", "parameters": {"id": "$response.body#/id"}}
        for name in ("status", "result", "cancel")
    }
    return {
        "post": {
            "summary": f"Start: {definition.title}",
            "description": definition.description,
            "operationId": f"start_{kind}",
            "parameters": [_IDEMPOTENCY_KEY],
            "requestBody": {
                "required": bool(required),
                "content": {
                    "application/json": {"schema": body_schema(form=False)},
                    "application/x-www-form-urlencoded": {"schema": body_schema(form=True)},
                },
            },
            "responses": {
                "200": _status(
                    "a repeat of an earlier start (same Idempotency-Key): the first task",
                    {**_RETRY_AFTER, "Location": {"schema": {"type": "string"}}},
                    links=links,
                ),
                "202": _status(
                    "started (JSON); Location is the status URL",
                    {**_RETRY_AFTER, "Location": {"schema": {"type": "string"}}},
                    links=links,
                ),
                "303": _redirect("started (a form): the status page"),
                "400": _error("invalid parameters, per field"),
                "403": _CROSS_SITE,
                "409": _error("the Idempotency-Key started a task with other parameters"),
                "410": _error("the Idempotency-Key started a task now past its retention"),
                "413": _error("body too large"),
                "415": _error("unsupported body type"),
                "429": _error(
                    "over a quota of the owner (too_many_active, too_many_starts): the "
                    "fields name the limit, Retry-After says when to try again",
                    {"Retry-After": {"schema": {"type": "integer"}, "required": True}},
                ),
                **_COMMON,
            },
        }
    }


def _task_paths(kind: str) -> dict[str, Any]:
    base = f"/tasks/{kind}/{{id}}"
    name = kind.replace("-", "_")
    status = {
        "summary": "Status: the progress page, or the status document",
        "operationId": f"status_{name}",
        "parameters": [
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "description": "1: the page's own refresh (a done task's page, not a redirect)",
                "schema": {"type": "string"},
            }
        ],
        "responses": {
            "200": _status("the status document, or the status page", _RETRY_AFTER, html=True),
            "303": _redirect("done: a fresh presigned URL of the result"),
            "410": _GONE,
            **_COMMON,
        },
    }
    result = {
        "summary": "The result: a redirect to a fresh presigned URL",
        "operationId": f"result_{name}",
        "responses": {
            "303": _redirect("a fresh presigned URL (done), else the status page (HTML)"),
            "409": _error("not done yet; `task` holds its status"),
            "410": _GONE,
            **_COMMON,
        },
    }
    return {
        base: {
            "parameters": [_ID],
            **_with_head(status),
            "delete": {
                "summary": "Cancel (its owner only)",
                "operationId": f"cancel_{name}",
                "responses": {
                    "202": _status("cancelled"),
                    "403": _CROSS_SITE,
                    "409": _error("already finished; `task` holds its status"),
                    "410": _GONE,
                    **_COMMON,
                },
            },
        },
        f"{base}/result": {"parameters": [_ID], **_with_head(result)},
        f"{base}/cancel": {
            "parameters": [_ID],
            "post": {
                "summary": "Cancel from an HTML form (its owner only); JSON as DELETE",
                "operationId": f"cancel_form_{name}",
                "responses": {
                    "202": _status("cancelled (a client that asks for JSON)"),
                    "303": _redirect("the status page"),
                    "403": _CROSS_SITE,
                    "409": _error("already finished (JSON only; a form is sent to its page)"),
                    "410": _GONE,
                    **_COMMON,
                },
            },
        },
    }


def _pages() -> dict[str, Any]:
    """The routes that are not about one task: the start page, files, this description."""
    return {
        "/": _with_head(
            {
                "summary": "The start page: a form per task kind, the caller's recent tasks",
                "operationId": "index",
                "responses": {
                    "200": {
                        "description": "the page; a first visit also gets its owner cookie",
                        "content": _HTML,
                    },
                    **_COMMON,
                },
            }
        ),
        "/openapi.json": _with_head(
            {
                "summary": "This description",
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_COMMON,
                },
            }
        ),
        "/static/{name}": {
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            **_with_head(
                {
                    "summary": "A static file of the pages (style sheet, script)",
                    "operationId": "static",
                    "responses": {
                        "200": {
                            "description": "the file",
                            "content": {
                                "text/css": {"schema": {"type": "string"}},
                                "text/javascript": {"schema": {"type": "string"}},
                            },
                        },
                        **_COMMON,
                    },
                }
            ),
        },
    }


def openapi_document(definitions: list[TaskDefinition], server: str = "/") -> dict[str, Any]:
    paths: dict[str, Any] = {
        **_pages(),
        "/tasks": _with_head(
            {
                "summary": "The caller's tasks, newest first",
                "operationId": "list_tasks",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                    {
                        "name": "next",
                        "in": "query",
                        "description": "the `next` of the previous page; any other is a 400",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "one page of tasks",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/TaskList"}
                            }
                        },
                    },
                    "400": _error("invalid limit or cursor"),
                    **_COMMON,
                },
            }
        ),
    }
    for definition in definitions:
        paths[f"/tasks/{definition.kind}"] = _start(definition)
        paths.update(_task_paths(definition.kind))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "longtask",
            "version": "1",
            "description": "Long-running tasks: start one, follow its progress, get its result.",
        },
        "servers": [{"url": server}],
        # Who a task belongs to: the owner cookie, which the first start (or the start
        # page) sets; a caller without one is a new owner. An authorizer's principal,
        # where the host app configures one, takes its place.
        "security": [{}, {"owner": []}],
        "paths": paths,
        "components": {
            "schemas": {"Status": STATUS_DOCUMENT, "Error": ERROR, "TaskList": TASK_LIST},
            "securitySchemes": {
                "owner": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "longtask_owner",
                    "description": "the owner's random token (43 URL-safe characters)",
                }
            },
        },
    }
