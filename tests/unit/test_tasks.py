"""What a task may return, and how task kinds are declared."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from chalicelib.longtask.errors import TaskCancelled
from chalicelib.longtask.params import Boolean, Integer, Number, Text
from chalicelib.longtask.tasks import (
    File,
    TaskContext,
    TaskRegistry,
    download_name,
    encode_result,
)

# -- results ---------------------------------------------------------------------------


def test_a_dict_is_stored_as_json() -> None:
    result = encode_result({"limit": 1000, "count": 168, "note": "π ≈ 3.14"})
    assert result.content_type == "application/json"
    assert result.filename is None
    assert json.loads(result.body) == {"limit": 1000, "count": 168, "note": "π ≈ 3.14"}
    assert "π".encode() in result.body  # UTF-8 as is, no \\u escapes


@pytest.mark.parametrize("value", [[1, 2, 3], [], 42, 2.5, True, None, {"nested": [{"a": None}]}])
def test_other_json_values_are_stored_as_json(value: Any) -> None:
    result = encode_result(value)
    assert result.content_type == "application/json"
    assert json.loads(result.body) == value


def test_a_string_is_stored_as_utf8_text() -> None:
    result = encode_result("héllo\nwörld")
    assert result.content_type == "text/plain; charset=utf-8"
    assert result.body.decode("utf-8") == "héllo\nwörld"
    assert result.filename is None


def test_bytes_are_stored_as_they_are() -> None:
    body = bytes(range(256))
    result = encode_result(body)
    assert result.body == body
    assert result.content_type == "application/octet-stream"


def test_a_text_file_keeps_its_type_and_name_and_says_its_charset() -> None:
    result = encode_result(File("date,total\n2024-02-01,5\n", "text/csv", "report-2024-02.csv"))
    assert result.body == b"date,total\n2024-02-01,5\n"
    assert result.content_type == "text/csv; charset=utf-8"
    assert result.filename == "report-2024-02.csv"


def test_a_binary_file_keeps_its_type_and_name() -> None:
    result = encode_result(File(b"PK\x03\x04", "application/zip", "thumbnails.zip"))
    assert result.body == b"PK\x03\x04"
    assert result.content_type == "application/zip"
    assert result.filename == "thumbnails.zip"


def test_a_file_defaults_to_an_anonymous_download() -> None:
    result = encode_result(File(b"\x00\x01"))
    assert result.content_type == "application/octet-stream"
    assert result.filename is None


def test_a_text_file_with_utf8_charset_is_left_alone() -> None:
    result = encode_result(File("é", "text/plain; charset=utf-8"))
    assert result.content_type == "text/plain; charset=utf-8"
    assert result.body == "é".encode()


def test_a_text_file_is_labelled_with_the_charset_it_is_encoded_in() -> None:
    result = encode_result(File("é", "text/plain; charset=iso-8859-1"))
    charset = result.content_type.split("charset=", 1)[1]
    assert result.body.decode(charset) == "é"


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        object(),
        float("nan"),
        float("inf"),
        {"count": float("nan")},
        [1, {2, 3}],
        {"when": date(2024, 2, 1)},
        len,
    ],
    ids=["set", "object", "nan", "inf", "nan-inside", "set-inside", "date", "function"],
)
def test_values_that_are_not_json_are_refused_with_a_clear_message(value: Any) -> None:
    with pytest.raises(TypeError, match="must return str, bytes, File or a JSON value"):
        encode_result(value)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ({"count": 4}, "primes-kq3V.json"),
        ("text", "primes-kq3V.txt"),
        (b"\x00", "primes-kq3V.bin"),
        (File("a,b\n", "text/csv"), "primes-kq3V.csv"),
        (File("a,b\n", "text/csv", "report-2024-02.csv"), "report-2024-02.csv"),
        (File(b"PK", "application/zip", "thumbnails.zip"), "thumbnails.zip"),
    ],
)
def test_every_result_downloads_with_a_file_name(value: Any, name: str) -> None:
    assert download_name(encode_result(value), "primes-kq3V") == name


# -- cancellation ------------------------------------------------------------------------


def test_a_tasks_own_except_exception_does_not_swallow_a_cancel() -> None:
    def careless_task() -> str:
        try:
            raise TaskCancelled()
        except Exception:
            return "swallowed"

    with pytest.raises(TaskCancelled):
        careless_task()


# -- the registry -----------------------------------------------------------------------


def count_primes(params: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    """Counts the primes up to a limit.

    With a segmented sieve.
    """
    return {"count": 0}


def undocumented(params: dict[str, Any], ctx: TaskContext) -> None:
    return None


@pytest.mark.parametrize(
    "kind",
    [
        "",
        "Primes",
        "PRIMES",
        "1primes",
        "-primes",
        "pri mes",
        "pri_mes",
        "../x",
        "a/b",
        "x.y",
        "prímes",
        "primes\n",
        "x" * 41,
    ],
)
def test_bad_kind_names_are_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="task kind"):
        TaskRegistry().add(kind, count_primes)


@pytest.mark.parametrize("kind", ["a", "primes", "make-thumbnails", "v2", "x" * 40])
def test_good_kind_names(kind: str) -> None:
    registry = TaskRegistry()
    registry.add(kind, count_primes)
    assert registry.get(kind) is not None


def test_a_kind_declared_twice_is_refused() -> None:
    registry = TaskRegistry()
    registry.add("primes", count_primes)
    with pytest.raises(ValueError, match="declared twice"):
        registry.add("primes", undocumented)
    assert registry.get("primes").function is count_primes  # type: ignore[union-attr]


def test_shorthand_params_become_declared_params() -> None:
    definition = TaskRegistry().add(
        "mixed", count_primes, params={"limit": int, "ratio": float, "name": str, "fast": bool}
    )
    kinds = {name: type(param) for name, param in definition.params.items()}
    assert kinds == {"limit": Integer, "ratio": Number, "name": Text, "fast": Boolean}


def test_full_params_are_kept() -> None:
    limit = Integer(min=2, max=50_000_000)
    definition = TaskRegistry().add("primes", count_primes, params={"limit": limit})
    assert definition.params == {"limit": Integer(min=2, max=50_000_000, label="Limit")}


def test_no_params_means_none() -> None:
    assert TaskRegistry().add("noop", undocumented).params == {}


def test_bad_params_are_refused_when_declared() -> None:
    with pytest.raises(TypeError):
        TaskRegistry().add("bad", count_primes, params={"limit": list})
    with pytest.raises(ValueError):
        TaskRegistry().add("bad", count_primes, params={"Limit": int})


def test_description_comes_from_the_docstring_unless_given() -> None:
    registry = TaskRegistry()
    documented = registry.add("primes", count_primes)
    assert documented.description.startswith("Counts the primes up to a limit.")
    assert documented.description.endswith("With a segmented sieve.")
    assert registry.add("given", count_primes, description="Mine.").description == "Mine."
    assert registry.add("empty", count_primes, description="").description == ""
    assert registry.add("bare", undocumented).description == ""


def test_title_defaults_to_the_kind() -> None:
    registry = TaskRegistry()
    assert registry.add("primes", count_primes).title == "Primes"
    assert registry.add("report", count_primes, title="Monthly report").title == "Monthly report"


def test_kinds_are_listed_in_the_order_declared() -> None:
    registry = TaskRegistry()
    for kind in ("sleep", "primes", "report"):
        registry.add(kind, undocumented)
    assert [d.kind for d in registry] == ["sleep", "primes", "report"]
    assert len(registry) == 3
    assert registry.get("unknown") is None
