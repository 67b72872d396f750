"""Declared parameters: what a start request may send, and what it gets refused for."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.longtask.params import (
    Boolean,
    Integer,
    InvalidParams,
    Number,
    Param,
    Text,
    declare,
    validate,
)

REFUSED = object()  # the table's "expected" for a value that must be refused


def outcome(param: Param, raw: Any) -> Any:
    """The parsed value, or REFUSED when validate() names the field."""
    try:
        return validate({"x": param}, {"x": [raw]})["x"]
    except InvalidParams as exc:
        assert set(exc.fields) == {"x"}
        assert exc.fields["x"]
        return REFUSED


def short(value: Any) -> str:
    """A readable test id even for a 5,000-digit value."""
    if value is REFUSED:
        return "refused"
    text = ascii(value)
    return text if len(text) <= 24 else f"{text[:12]}...{len(text)}chars"


def same(got: Any, expected: Any) -> bool:
    """Equal and of the same type: 1 is not True, 3.0 is not 3."""
    return got is expected or (type(got) is type(expected) and got == expected)


# -- the table of hostile values, per type ---------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12", 12),
        (" 12 ", 12),
        ("\t12\n", 12),
        ("+7", 7),
        ("-5", -5),
        ("007", 7),
        (12, 12),
        (3.0, 3),
        (3.5, REFUSED),
        ("3.5", REFUSED),
        ("3.0", REFUSED),
        (True, REFUSED),
        (False, REFUSED),
        ("9" * 5000, REFUSED),
        ("9" * 41, REFUSED),
        ("1" + "0" * 30, 10**30),
        (10**30, 10**30),
        ("1e400", REFUSED),
        ("1e3", REFUSED),
        ("NaN", REFUSED),
        ("nan", REFUSED),
        ("inf", REFUSED),
        ("-inf", REFUSED),
        ("Infinity", REFUSED),
        (float("nan"), REFUSED),
        (float("inf"), REFUSED),
        (float("-inf"), REFUSED),
        ("1_000", REFUSED),
        ("1,000", REFUSED),
        ("0x10", REFUSED),
        ("12abc", REFUSED),
        ("- 5", REFUSED),
        ([1], REFUSED),
        ([], REFUSED),
        ({"a": 1}, REFUSED),
        ("12\x00", REFUSED),
        ("<script>alert(1)</script>", REFUSED),
        ("x" * 10_000, REFUSED),
        ("", REFUSED),
        ("   ", REFUSED),
        (None, REFUSED),
        ("١٢٣", REFUSED),
        ("\uff11\uff12", REFUSED),
    ],
    ids=short,
)
def test_integer_hostile_values(raw: Any, expected: Any) -> None:
    assert same(outcome(Integer(), raw), expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2", 2),
        ("50000000", 50_000_000),
        ("1", REFUSED),
        ("0", REFUSED),
        ("-1", REFUSED),
        ("50000001", REFUSED),
        ("9" * 5000, REFUSED),
        (10**30, REFUSED),
        (-(10**30), REFUSED),
        (1e300, REFUSED),
        (2.0, 2),
        (True, REFUSED),
    ],
    ids=short,
)
def test_bounded_integer_like_primes_limit(raw: Any, expected: Any) -> None:
    assert same(outcome(Integer(min=2, max=50_000_000), raw), expected)


def test_integer_out_of_range_says_the_bound_readably() -> None:
    with pytest.raises(InvalidParams) as caught:
        validate({"limit": Integer(min=2, max=50_000_000)}, {"limit": ["60000000"]})
    assert caught.value.fields == {"limit": "must be at most 50,000,000"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30", 30),
        (" 12 ", 12),
        ("0", 0),
        ("0.5", 0.5),
        (".5", 0.5),
        ("5.", 5),
        ("3.0", 3),
        ("1e3", 1000),
        ("3600", 3600),
        (3600, 3600),
        (3.5, 3.5),
        (0, 0),
        ("3600.0001", REFUSED),
        ("-0.1", REFUSED),
        (-1, REFUSED),
        ("1e400", REFUSED),
        ("-1e400", REFUSED),
        ("NaN", REFUSED),
        ("inf", REFUSED),
        ("Infinity", REFUSED),
        (float("nan"), REFUSED),
        (float("inf"), REFUSED),
        (True, REFUSED),
        ("1_000", REFUSED),
        ("0x10", REFUSED),
        ("1e", REFUSED),
        (".", REFUSED),
        ("9" * 5000, REFUSED),
        (10**30, REFUSED),
        ([1], REFUSED),
        ({"seconds": 1}, REFUSED),
        ("1\x00", REFUSED),
        ("<script>", REFUSED),
        ("x" * 10_000, REFUSED),
        ("", REFUSED),
        (10**400, REFUSED),
        ("١٢٣", REFUSED),
    ],
    ids=short,
)
def test_number_hostile_values_like_sleep_seconds(raw: Any, expected: Any) -> None:
    assert same(outcome(Number(min=0, max=3600), raw), expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (10**30, 10**30),
        ("1e308", 1e308),
        ("-2.5e-3", -0.0025),
        ("9" * 40, 1e40),
        (10**400, REFUSED),
    ],
    ids=short,
)
def test_unbounded_number(raw: Any, expected: Any) -> None:
    assert same(outcome(Number(), raw), expected)


def test_a_whole_number_comes_back_as_int_and_a_fraction_as_float() -> None:
    assert type(outcome(Number(), "3.0")) is int
    assert type(outcome(Number(), "3.25")) is float


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        ("  hi  ", "hi"),
        ("héllo wörld ✓", "héllo wörld ✓"),
        ("١٢٣", "١٢٣"),
        # Markup is kept as typed: escaping is the pages' job, not the validator's.
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("x" * 200, "x" * 200),
        ("x" * 201, REFUSED),
        ("x" * 10_000, REFUSED),
        ("a\x00b", REFUSED),
        ("a\nb", REFUSED),
        ("a\tb", REFUSED),
        ("a\x1b[31mb", REFUSED),
        ("a\x7fb", REFUSED),
        (12, REFUSED),
        (True, REFUSED),
        (["a"], REFUSED),
        ({"a": "b"}, REFUSED),
        ("", REFUSED),
        ("   ", REFUSED),
        ("a\x85b", REFUSED),
        ("a\x9b31mb", REFUSED),
    ],
    ids=short,
)
def test_text_hostile_values(raw: Any, expected: Any) -> None:
    assert same(outcome(Text(), raw), expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("TRUE", True),
        (" On ", True),
        ("on", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("off", False),
        ("0", False),
        ("no", False),
        ("", False),
        (None, False),
        ("maybe", REFUSED),
        ("2", REFUSED),
        (1, REFUSED),
        (0, REFUSED),
        ([True], REFUSED),
        ("<script>", REFUSED),
        ("x" * 10_000, REFUSED),
    ],
    ids=short,
)
def test_boolean_values(raw: Any, expected: Any) -> None:
    assert same(outcome(Boolean(), raw), expected)


# -- Text with a pattern or a check --------------------------------------------------


def _month(text: str) -> None:
    if not 1 <= int(text[5:]) <= 12:
        raise ValueError("must be a month, YYYY-MM")


MONTH = Text(pattern=r"\d{4}-\d{2}", example="2024-02", check=_month)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-02", "2024-02"),
        (" 2024-02 ", "2024-02"),
        ("2024-2", REFUSED),
        ("2024-02-01", REFUSED),
        ("x2024-02", REFUSED),
        ("2024-02\n", "2024-02"),  # trailing whitespace is stripped, not matched
        ("2024-13", REFUSED),
        ("2024-00", REFUSED),
        ("../../etc", REFUSED),
        ("٢٠٢٤-٠٢", REFUSED),
    ],
    ids=short,
)
def test_text_pattern_and_check(raw: Any, expected: Any) -> None:
    assert same(outcome(MONTH, raw), expected)


def test_pattern_mismatch_shows_the_example_and_check_shows_its_own_words() -> None:
    with pytest.raises(InvalidParams) as caught:
        validate({"month": MONTH, "other": MONTH}, {"month": ["Feb"], "other": ["2024-13"]})
    assert caught.value.fields == {
        "month": "must look like 2024-02",
        "other": "must be a month, YYYY-MM",
    }


def test_pattern_without_example_shows_the_pattern() -> None:
    with pytest.raises(InvalidParams) as caught:
        validate({"code": Text(pattern=r"[A-Z]{3}")}, {"code": ["abc"]})
    assert caught.value.fields == {"code": r"must look like [A-Z]{3}"}


def test_text_max_length_is_adjustable() -> None:
    assert outcome(Text(max_length=5), "12345") == "12345"
    assert outcome(Text(max_length=5), "123456") is REFUSED


# -- the {"limit": int} shorthand -------------------------------------------------------


def test_shorthand_types_become_declared_params() -> None:
    declared = declare({"limit": int, "ratio": float, "name": str, "flag": bool})
    assert isinstance(declared["limit"], Integer)
    assert isinstance(declared["ratio"], Number)
    assert isinstance(declared["name"], Text)
    assert isinstance(declared["flag"], Boolean)
    # Plain types are required, except a checkbox, which is off unless ticked.
    assert [p.required for p in declared.values()] == [True, True, True, False]
    assert validate(declared, {"limit": ["10"], "ratio": ["0.5"], "name": ["x"]}) == {
        "limit": 10,
        "ratio": 0.5,
        "name": "x",
        "flag": False,
    }


def test_full_declarations_are_kept_as_given_with_a_label_from_the_name() -> None:
    limit = Integer(min=2)
    assert declare({"limit": limit})["limit"] == Integer(min=2, label="Limit")
    assert declare({"fail_times": Integer(label="Fail")})["fail_times"].label == "Fail"
    assert declare({"fail_times": int})["fail_times"].label == "Fail times"


@pytest.mark.parametrize("kind", [list, dict, object, "int", None])
def test_shorthand_refuses_other_types(kind: Any) -> None:
    with pytest.raises(TypeError):
        declare({"x": kind})


@pytest.mark.parametrize("name", ["Limit", "_limit", "1limit", "li-mit", "li mit", "", "x" * 65])
def test_declared_names_are_plain_lower_case(name: str) -> None:
    with pytest.raises(ValueError):
        declare({name: int})


def test_html_inputs_carry_the_declared_limits() -> None:
    integer = Integer(min=2, max=50_000_000, example="1000000").html_input()
    assert integer["type"] == "number"
    assert (integer["min"], integer["max"], integer["step"]) == (2, 50_000_000, 1)
    assert integer["required"] is True
    assert integer["placeholder"] == "e.g. 1000000"
    assert Number(min=0).html_input()["step"] == "any"
    text = Text(pattern=r"\d{4}-\d{2}", max_length=7).html_input()
    assert (text["type"], text["pattern"], text["maxlength"]) == ("text", r"\d{4}-\d{2}", 7)
    assert Integer(default=0).html_input()["value"] == 0
    assert Integer(default=0).html_input()["required"] is False
    assert Boolean().html_input()["type"] == "checkbox"
    assert Boolean(default=True).html_input()["checked"] is True
    assert Boolean().html_input()["checked"] is False


# -- validate(): the whole request at once ----------------------------------------------


SLEEP = {"seconds": Number(min=0, max=3600), "fail_times": Integer(min=0, default=0)}


def test_required_fields_must_be_given() -> None:
    for given in ({}, {"seconds": [""]}, {"seconds": ["  "]}, {"seconds": [None]}):
        with pytest.raises(InvalidParams) as caught:
            validate(SLEEP, given)
        assert caught.value.fields == {"seconds": "is required"}


def test_defaults_fill_in_missing_or_blank_fields() -> None:
    assert validate(SLEEP, {"seconds": ["5"]}) == {"seconds": 5, "fail_times": 0}
    assert validate(SLEEP, {"seconds": ["5"], "fail_times": [""]}) == {
        "seconds": 5,
        "fail_times": 0,
    }
    assert validate(SLEEP, {"seconds": ["5"], "fail_times": ["2"]}) == {
        "seconds": 5,
        "fail_times": 2,
    }
    assert validate({"title": Text(default="Untitled")}, {}) == {"title": "Untitled"}


def test_names_starting_with_underscore_are_dropped() -> None:
    given = {"seconds": ["5"], "_": ["1"], "_csrf": ["a", "b"], "_seconds": ["9999"]}
    assert validate(SLEEP, given) == {"seconds": 5, "fail_times": 0}


def test_unknown_names_are_refused_not_ignored() -> None:
    with pytest.raises(InvalidParams) as caught:
        validate(SLEEP, {"seconds": ["5"], "second": ["5"]})
    assert caught.value.fields == {"second": "is not a parameter of this task"}


def test_a_very_long_unknown_name_is_named_shortly() -> None:
    with pytest.raises(InvalidParams) as caught:
        validate(SLEEP, {"seconds": ["5"], "y" * 10_000: ["1"]})
    assert list(caught.value.fields) == ["y" * 64]


@pytest.mark.parametrize("values", [["5", "6"], ["5", "5"], ["5", ""]])
def test_a_field_given_twice_is_refused(values: list[str]) -> None:
    with pytest.raises(InvalidParams) as caught:
        validate(SLEEP, {"seconds": values})
    assert caught.value.fields == {"seconds": "was given more than once"}


def test_every_wrong_field_is_named_at_once() -> None:
    declared = {
        "limit": Integer(min=2),
        "month": Text(pattern=r"\d{4}-\d{2}"),
        "seconds": Number(),
        "fail_times": Integer(default=0),
        "verbose": Boolean(),
        "fine": Text(),
    }
    given = {
        "limit": ["1"],  # out of range
        # "month" missing
        "seconds": ["1", "2"],  # twice
        "fail_times": ["many"],  # not a number
        "verbose": ["perhaps"],  # not a boolean
        "fine": ["ok"],
        "colour": ["red"],  # unknown
        "_ignored": ["x"],
    }
    with pytest.raises(InvalidParams) as caught:
        validate(declared, given)
    fields = caught.value.fields
    assert set(fields) == {"limit", "month", "seconds", "fail_times", "verbose", "colour"}
    assert fields["limit"] == "must be at least 2"
    assert fields["month"] == "is required"
    assert fields["seconds"] == "was given more than once"
    assert fields["colour"] == "is not a parameter of this task"
    # The message names every field too, for logs and plain-text clients.
    for name in fields:
        assert name in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_valid_parameters_come_back_parsed_and_only_declared_ones() -> None:
    declared = declare({"limit": Integer(min=2), "label": str, "fast": bool})
    assert validate(declared, {"limit": [" 1000 "], "label": [" a b "], "fast": ["on"]}) == {
        "limit": 1000,
        "label": "a b",
        "fast": True,
    }


def test_parameters_larger_than_a_kilobyte_in_all_are_refused_at_the_largest_field() -> None:
    declared = {"title": Text(max_length=2000), "note": Text(max_length=2000)}
    assert validate(declared, {"title": ["t" * 900], "note": ["n" * 50]})
    with pytest.raises(InvalidParams) as caught:
        validate(declared, {"title": ["t" * 1000], "note": ["n" * 50]})
    assert list(caught.value.fields) == ["title"]
    assert "1024 bytes" in caught.value.fields["title"]


def test_a_json_string_is_text_whatever_its_digits() -> None:
    from chalicelib.longtask.params import JsonText

    assert Integer().parse("2024") == 2024  # a form's value: text that reads as a number
    assert Integer().parse(2024.0) == 2024  # a JSON number with no fraction, as JSON Schema
    for param in (Integer(), Number(), Boolean()):
        with pytest.raises(ValueError, match="not text"):
            param.parse(JsonText("1"))
