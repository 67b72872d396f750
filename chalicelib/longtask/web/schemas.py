"""The JSON Schemas of what the HTTP interface answers: the status document, an error, a
page of tasks (declarative data, shared by the OpenAPI document and the tests)."""

from __future__ import annotations

from typing import Any

from ..model import ID_PATTERN, Status

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
        "id": {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"},
        "kind": {"type": "string"},
        "status": {
            "type": "string",
            "enum": [status.value for status in Status],
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
        "result": {
            "description": "once done: the result's download name, media type and bytes",
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["filename", "content_type", "size"],
                    "properties": {
                        "filename": _NULLABLE_STRING,
                        "content_type": {"type": "string"},
                        "size": {"type": ["integer", "null"], "minimum": 0},
                    },
                },
            ],
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
