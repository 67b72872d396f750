"""How results show on their page: a task's own words, or a preview by content type."""

from __future__ import annotations

import json

from chalicelib.demo_tasks import primes_in_words
from chalicelib.longtask.display import (
    ResultDisplay,
    default_display,
    display_of,
    file_kind,
    human_size,
)


def test_a_task_may_say_its_result_in_its_own_words() -> None:
    body = json.dumps({"limit": 1_000_000, "count": 78_498}).encode()
    shown = display_of(primes_in_words, "application/json", body, complete=True)
    assert shown == ResultDisplay(headline="78,498 primes up to 1,000,000")


def test_a_json_object_shows_as_labelled_values_that_people_read() -> None:
    body = json.dumps({"slept": 2.5, "total_count": 78498, "year": 2024, "ok": True}).encode()
    shown = default_display("application/json", body, complete=True)
    assert shown.values == (
        ("Slept", "2.5"),
        ("Total count", "78,498"),
        ("Year", "2024"),  # under 10,000 the digits stay together
        ("Ok", "yes"),
    )


def test_a_csv_shows_its_first_rows_as_a_table_without_a_cut_line() -> None:
    text = "date,total\n" + "".join(f"2024-02-{d:02d},{d}\n" for d in range(1, 30))
    shown = default_display("text/csv; charset=utf-8", text.encode(), complete=True)
    assert shown.table[0] == ("date", "total")
    assert shown.table[1] == ("2024-02-01", "1")
    assert len(shown.table) == 21 and shown.truncated
    cut = default_display("text/csv", text.encode()[:40], complete=False)
    assert all(len(row) == 2 and row[1] for row in cut.table[1:])  # no half row


def test_text_shows_its_first_lines_and_anything_else_only_as_a_file() -> None:
    shown = default_display("text/plain", b"one\ntwo", complete=True)
    assert shown.text == "one\ntwo" and not shown.truncated
    assert default_display("application/zip", b"PK\x03\x04", complete=True).empty


def test_a_broken_hook_falls_back_to_the_default_preview() -> None:
    def broken(result: object) -> str:
        raise KeyError("count")

    body = json.dumps({"limit": 10}).encode()
    shown = display_of(broken, "application/json", body, complete=True)
    assert shown.values == (("Limit", "10"),)


def test_a_result_too_large_to_read_whole_never_reaches_the_hook() -> None:
    def hook(result: object) -> str:
        raise AssertionError("called with part of a result")

    shown = display_of(hook, "application/json", b'{"a": [1, 2', complete=False)
    assert shown.text == '{"a": [1, 2' and shown.truncated  # its beginning, as text


def test_sizes_and_kinds_in_words() -> None:
    assert human_size(1) == "1 byte"
    assert human_size(412) == "412 bytes"
    assert human_size(3_210) == "3.2 KB"
    assert human_size(1_500_000) == "1.5 MB"
    assert human_size(None) == ""
    assert file_kind("text/csv; charset=utf-8") == "CSV table"
    assert file_kind("application/x-thing") == "application/x-thing"
