"""The OpenAPI description of the HTTP interface, built from the declared tasks."""

from __future__ import annotations

from typing import Any

from ..params import Boolean, Integer, Number, Param, Text
from ..tasks import TaskDefinition

_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_STRING = {"type": ["string", "null"]}

STATUS_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "kind",
        "status",
        "done",
        "parameters",
        "progress",
        "attempts",
        "created_at",
        "started_at",
        "updated_at",
        "finished_at",
        "elapsed_seconds",
        "eta_seconds",
        "links",
        "error",
    ],
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"},
        "kind": {"type": "string"},
        "status": {
            "type": "string",
            "enum": ["ready", "started", "error", "done", "failed", "cancelled"],
        },
        "done": {"type": "boolean"},
        "parameters": {"type": "object"},
        "progress": {
            "type": "object",
            "required": ["message", "step", "total_steps", "percent"],
            "properties": {
                "message": {"type": "string"},
                "step": {"type": ["integer", "null"]},
                "total_steps": {"type": ["integer", "null"]},
                "percent": _NULLABLE_NUMBER,
                "rate": {
                    **_NULLABLE_NUMBER,
                    "description": "smoothed steps per second, null until known",
                },
                "reported_at": {
                    **_NULLABLE_STRING,
                    "description": "when the task last reported progress",
                },
            },
        },
        "attempts": {"type": "integer", "minimum": 0},
        "created_at": {"type": "string"},
        "started_at": _NULLABLE_STRING,
        "updated_at": {"type": "string"},
        "finished_at": _NULLABLE_STRING,
        "elapsed_seconds": _NULLABLE_NUMBER,
        "eta_seconds": _NULLABLE_NUMBER,
        "links": {
            "type": "object",
            "required": ["self", "result", "cancel"],
            "properties": {
                "self": {"type": "string"},
                "result": _NULLABLE_STRING,
                "cancel": _NULLABLE_STRING,
            },
        },
        "retry_at": {
            **_NULLABLE_STRING,
            "description": "while status is error: when the next attempt is due",
        },
        "error": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["type", "message"],
                    "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                },
            ]
        },
    },
}

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "task": {"$ref": "#/components/schemas/Status"},
    },
}

TASK_LIST: dict[str, Any] = {
    "type": "object",
    "required": ["tasks", "next"],
    "properties": {
        "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Status"}},
        "next": _NULLABLE_STRING,
    },
}


def param_schema(param: Param) -> dict[str, Any]:
    """The JSON schema of one declared parameter."""
    schema: dict[str, Any]
    if isinstance(param, Integer):
        schema = {"type": "integer"}
    elif isinstance(param, Number):
        schema = {"type": "number"}
    elif isinstance(param, Boolean):
        schema = {"type": "boolean"}
    else:
        schema = {"type": "string"}
    if isinstance(param, Integer | Number):
        if param.min is not None:
            schema["minimum"] = param.min
        if param.max is not None:
            schema["maximum"] = param.max
    if isinstance(param, Text):
        schema["maxLength"] = param.max_length
        if param.pattern:
            schema["pattern"] = f"^(?:{param.pattern})$"
    if not param.required:
        schema["default"] = param.default
    if param.help or param.label:
        schema["description"] = param.help or param.label
    if param.example:
        schema["examples"] = [param.example]
    return schema


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _status(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


_REDIRECT = {"description": "See Other: the Location header says where"}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "poll again in"}}
_COMMON = {
    "404": _error("no such task kind or task (also for a malformed id)"),
    "405": _error("method not allowed"),
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _start(definition: TaskDefinition) -> dict[str, Any]:
    body_schema = {
        "type": "object",
        "properties": {name: param_schema(p) for name, p in definition.params.items()},
        "required": [name for name, p in definition.params.items() if p.required],
        "additionalProperties": False,
    }
    return {
        "post": {
            "summary": f"Start: {definition.title}",
            "description": definition.description,
            "operationId": f"start_{definition.kind.replace('-', '_')}",
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {"schema": body_schema},
                    "application/x-www-form-urlencoded": {"schema": body_schema},
                },
            },
            "responses": {
                "202": _status(
                    "started (JSON); Location is the status URL",
                    {**_RETRY_AFTER, "Location": {"schema": {"type": "string"}}},
                ),
                "303": _REDIRECT,
                "400": _error("invalid parameters, per field"),
                "403": _error("a cross-site form post"),
                "413": _error("body too large"),
                "415": _error("unsupported body type"),
                **_COMMON,
            },
        }
    }


def _task_paths(kind: str) -> dict[str, Any]:
    base = f"/tasks/{kind}/{{id}}"
    return {
        base: {
            "parameters": [_ID],
            "get": {
                "summary": "Status: the progress page, or the status document",
                "operationId": f"status_{kind.replace('-', '_')}",
                "responses": {
                    "200": _status("the status document", _RETRY_AFTER),
                    "303": _REDIRECT,
                    "410": _error("past its retention"),
                    **_COMMON,
                },
            },
            "delete": {
                "summary": "Cancel (its owner only)",
                "operationId": f"cancel_{kind.replace('-', '_')}",
                "responses": {
                    "202": _status("cancelled"),
                    "403": _error("a cross-site request"),
                    "409": _error("already finished"),
                    "410": _error("past its retention"),
                    **_COMMON,
                },
            },
        },
        f"{base}/result": {
            "parameters": [_ID],
            "get": {
                "summary": "The result: a redirect to a fresh presigned URL",
                "operationId": f"result_{kind.replace('-', '_')}",
                "responses": {
                    "303": _REDIRECT,
                    "409": _error("not done yet; `task` holds its status"),
                    "410": _error("past its retention"),
                    **_COMMON,
                },
            },
        },
    }


def openapi_document(definitions: list[TaskDefinition], server: str = "/") -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/tasks": {
            "get": {
                "summary": "The caller's tasks, newest first",
                "operationId": "list_tasks",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                    {"name": "next", "in": "query", "schema": {"type": "string"}},
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
                    "405": _error("method not allowed"),
                },
            }
        }
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
        "paths": paths,
        "components": {
            "schemas": {"Status": STATUS_DOCUMENT, "Error": ERROR, "TaskList": TASK_LIST}
        },
    }
