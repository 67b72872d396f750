"""Declared task parameters: strict parsing, validation per field, and form hints."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .encoding import compact_json, readable_number
from .errors import InvalidParams

_REQUIRED = object()
# Longer raw values are refused before any parsing, so that e.g. a megabyte of
# digits costs nothing.
_MAX_RAW_NUMBER_CHARS = 40
# The parameters live in the task record, which every status poll reads and every
# progress write rewrites, each billed on the whole record: capped, they keep it within
# a read unit and about one write unit. Declared fields (numbers, flags, short texts)
# fit easily; a large input belongs in S3, passed by its key.
MAX_PARAMS_BYTES = 1024


@dataclass(frozen=True)
class Param:
    """Base of every parameter type: a label, an optional default, a help text."""

    default: Any = _REQUIRED
    label: str | None = None
    help: str | None = None
    example: str | None = None  # shown as the form field's placeholder
    # What the form's field starts with, for a required parameter too: a start form
    # should work with one click, while programs must still say what they want.
    initial: Any = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def parse(self, raw: Any) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of a value the server accepts for this parameter."""
        return {"type": "string"}

    def hint(self) -> str:
        """What the form says under the field: the help text, or the accepted values."""
        return self.help or ""

    def html_input(self) -> dict[str, Any]:
        """Attributes of the HTML <input> that asks for this parameter."""
        return {
            "type": "text",
            "required": self.required,
            "placeholder": f"e.g. {self.example}" if self.example else None,
            "value": self.initial if self.required else self.default,
            "min": None,
            "max": None,
            "step": None,
            "pattern": None,
            "maxlength": None,
            "checked": False,
        }


class JsonText(str):
    """A value that came as a JSON string: a JSON body says what type each value is, so
    "2024" there is text, never a number or a boolean (a form's values are all text)."""


def _number_text(raw: Any, what: str = "a number") -> str:
    if isinstance(raw, JsonText):
        raise ValueError(f"must be {what}, not text")
    if not isinstance(raw, str):
        raise ValueError(f"must be {what}")
    text = raw.strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > _MAX_RAW_NUMBER_CHARS:
        raise ValueError("is too long to be a number")
    return text


def _range_hint(kind: str, least: float | None, most: float | None) -> str:
    if least is not None and most is not None:
        return f"{kind} from {readable_number(least)} to {readable_number(most)}."
    if least is not None:
        return f"{kind} of at least {readable_number(least)}."
    if most is not None:
        return f"{kind} of at most {readable_number(most)}."
    return f"{kind}."


def _check_range(value: float, least: float | None, most: float | None) -> None:
    if least is not None and value < least:
        raise ValueError(f"must be at least {readable_number(least)}")
    if most is not None and value > most:
        raise ValueError(f"must be at most {readable_number(most)}")


def _with_range(schema: dict[str, Any], least: float | None, most: float | None) -> dict[str, Any]:
    if least is not None:
        schema["minimum"] = least
    if most is not None:
        schema["maximum"] = most
    return schema


@dataclass(frozen=True)
class Integer(Param):
    min: int | None = None
    max: int | None = None

    def parse(self, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError("must be a whole number")
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError("must be a whole number")
            value = int(raw)
        else:
            text = _number_text(raw, "a whole number").replace("_", "x")  # int() takes 1_000
            if not re.fullmatch(r"[+-]?[0-9]+", text):
                raise ValueError("must be a whole number")
            value = int(text)
        _check_range(value, self.min, self.max)
        return value

    def json_schema(self) -> dict[str, Any]:
        return _with_range({"type": "integer"}, self.min, self.max)

    def hint(self) -> str:
        return self.help or _range_hint("A whole number", self.min, self.max)

    def html_input(self) -> dict[str, Any]:
        return {
            **super().html_input(),
            "type": "number",
            "min": self.min,
            "max": self.max,
            "step": 1,
        }


@dataclass(frozen=True)
class Number(Param):
    min: float | None = None
    max: float | None = None

    def parse(self, raw: Any) -> float | int:
        if isinstance(raw, bool):
            raise ValueError("must be a number")
        if isinstance(raw, int | float):
            value: float | int = raw
        else:
            text = _number_text(raw)
            if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
                raise ValueError("must be a number")
            value = float(text)
            if value.is_integer() and abs(value) < 2**53:
                value = int(value)
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise ValueError("must be a finite number")
        _check_range(value, self.min, self.max)
        return value

    def json_schema(self) -> dict[str, Any]:
        return _with_range({"type": "number"}, self.min, self.max)

    def hint(self) -> str:
        return self.help or _range_hint("A number", self.min, self.max)

    def html_input(self) -> dict[str, Any]:
        return {
            **super().html_input(),
            "type": "number",
            "min": self.min,
            "max": self.max,
            "step": "any",
        }


@dataclass(frozen=True)
class Text(Param):
    pattern: str | None = None
    max_length: int = 200
    check: Callable[[str], None] | None = field(default=None, compare=False)
    mismatch: str | None = None  # what to say when the pattern does not match
    # The form's <input type>: "month" gives a month picker where browsers have one
    # (its value is YYYY-MM), "email", "date", ...; the server's parsing stays the same.
    input_type: str = "text"

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise ValueError("must be text")
        text = raw.strip()
        if self.required and not text:
            raise ValueError("is required")
        if len(text) > self.max_length:
            raise ValueError(f"must be at most {self.max_length} characters")
        if any(unicodedata.category(c) == "Cc" for c in text):
            raise ValueError("must not contain control characters")
        # ASCII matching, as the browser's pattern attribute does: \d is 0-9 only.
        if self.pattern and not re.fullmatch(self.pattern, text, re.ASCII):
            raise ValueError(self.mismatch or f"must look like {self.example or self.pattern}")
        if self.check is not None:
            self.check(text)
        return text

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.pattern:
            # The server strips surrounding white space before it matches.
            schema["pattern"] = f"^\\s*(?:{self.pattern})\\s*$"
        return schema

    def hint(self) -> str:
        if self.help:
            return self.help
        return f"Like {self.example}." if self.example else ""

    def html_input(self) -> dict[str, Any]:
        return {
            **super().html_input(),
            "type": self.input_type,
            "pattern": self.pattern,
            "maxlength": self.max_length,
        }


@dataclass(frozen=True)
class Boolean(Param):
    default: Any = False

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def parse(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, JsonText):
            raise ValueError("must be true or false, not text")
        if isinstance(raw, str) and raw.strip().lower() in {"true", "on", "1", "yes"}:
            return True
        if isinstance(raw, str) and raw.strip().lower() in {"false", "off", "0", "no", ""}:
            return False
        raise ValueError("must be true or false")

    def html_input(self) -> dict[str, Any]:
        return {**super().html_input(), "type": "checkbox", "checked": bool(self.default)}


_PLAIN_TYPES: dict[type, Callable[[], Param]] = {
    int: Integer,
    float: Number,
    str: Text,
    bool: Boolean,
}


def default_label(name: str) -> str:
    """What a parameter is called where its declaration gives no label: "fail_times" →
    "Fail times"."""
    return name.replace("_", " ").capitalize()


def declare(spec: Mapping[str, Param | type]) -> dict[str, Param]:
    """Accepts `{"limit": int}` shorthand beside full `Integer(min=2)` declarations, and
    gives every parameter its label (from its name where none is given), once."""
    declared: dict[str, Param] = {}
    for name, kind in spec.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
            raise ValueError(f"parameter name {name!r}: use lower case letters, digits and _")
        if isinstance(kind, Param):
            param = kind
        elif kind in _PLAIN_TYPES:
            param = _PLAIN_TYPES[kind]()
        else:
            raise TypeError(f"parameter {name!r}: {kind!r} is not a Param or int/float/str/bool")
        declared[name] = replace(param, label=param.label or default_label(name))
    return declared


def validate(declared: Mapping[str, Param], given: Mapping[str, list[Any]]) -> dict[str, Any]:
    """The parsed parameters, or InvalidParams naming every wrong field.

    `given` maps each name to every value it came with, so that a field sent twice
    is an error rather than a silent pick. Names starting with "_" are dropped (a
    form's submit button and hidden fields); other unknown names are refused, so a
    typo is not silently ignored.
    """
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, raws in given.items():
        if name.startswith("_"):
            continue
        if name not in declared:
            problems[name[:64]] = "is not a parameter of this task"
        elif len(raws) != 1:
            problems[name] = "was given more than once"
    for name, param in declared.items():
        if name in problems:
            continue
        raws = given.get(name, [])
        if not raws or raws[0] is None or (isinstance(raws[0], str) and not raws[0].strip()):
            if param.required:
                problems[name] = "is required"
            else:
                values[name] = param.default
            continue
        try:
            values[name] = param.parse(raws[0])
        except ValueError as exc:
            problems[name] = str(exc)
    if not problems and values:
        sizes = {name: len(json.dumps(value).encode()) for name, value in values.items()}
        if len(compact_json(values).encode()) > MAX_PARAMS_BYTES:
            largest = max(sizes, key=sizes.__getitem__)
            problems[largest] = (
                f"makes the parameters longer than {MAX_PARAMS_BYTES} bytes in all; "
                "pass large inputs by reference"
            )
    if problems:
        raise InvalidParams(problems)
    return values
