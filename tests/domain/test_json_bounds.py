"""The pure input-hygiene checks: where a bad character is reported, how depth and size are counted."""

from __future__ import annotations

from typing import Any

import pytest

from app import errors
from app.domain import json_bounds


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("clean", None),
        ("a\x00b", ("title", "a\\u0000b", "\\u0000")),
        ("\ud800", ("title", "\\ud800", "\\ud800")),
        ("\udfff tail", ("title", "\\udfff tail", "\\udfff")),
        ("\U0001f600 is a valid pair", None),
    ],
)
def test_a_bad_character_in_a_plain_string_names_the_field(value: str, expected: Any) -> None:
    assert json_bounds.first_bad_text(value, "title") == expected


def test_the_path_names_list_indexes_object_keys_and_bad_keys_printably() -> None:
    arguments = {"title": "ok", "subtasks": [{"title": "fine"}, {"subtasks": [{"title": "x\x00"}]}]}
    assert json_bounds.first_bad_text(arguments, "") == ("subtasks[1].subtasks[0].title", "x\\u0000", "\\u0000")
    assert json_bounds.first_bad_text({"context": {"a": [1, {"k\ud800": 2}]}}, "") == (
        "context.a[1].k\\ud800",
        "k\\ud800",
        "\\ud800",
    )
    assert json_bounds.first_bad_text({"a": [[], {}, [[]]]}, "") is None


def test_a_long_bad_value_is_shown_short_and_escaped() -> None:
    path, shown, _ = json_bounds.first_bad_text({"d": "y" * 500 + "\x00"}, "") or ("", "", "")
    assert path == "d" and shown == "y" * 200 + "… (501 characters)"


def test_depth_counts_the_value_itself_as_level_one() -> None:
    assert not json_bounds.depth_over(nested(16), 16)
    assert json_bounds.depth_over(nested(17), 16)
    assert not json_bounds.depth_over([[[]]], 3) and json_bounds.depth_over([[[[]]]], 3)
    assert not json_bounds.depth_over("scalar", 0)


def test_a_context_at_its_bounds_passes_and_one_over_is_refused_naming_the_bound() -> None:
    at_limit = {"k": "x" * (100 - len('{"k":""}'))}
    json_bounds.check_free_form("context", at_limit, max_bytes=100)
    json_bounds.check_free_form("context", nested(16), max_bytes=100)
    with pytest.raises(errors.InvalidArgument) as too_large:
        json_bounds.check_free_form("context", {"k": at_limit["k"] + "x"}, max_bytes=100)
    assert (too_large.value.field, too_large.value.allowed) == ("context", {"max_bytes": 100})
    with pytest.raises(errors.InvalidArgument) as too_deep:
        json_bounds.check_free_form("subtasks[0].context", nested(17), max_bytes=100)
    assert (too_deep.value.field, too_deep.value.allowed) == ("subtasks[0].context", {"max_depth": 16})
    assert too_deep.value.value == '{"a":{"a":{"a":"…"}}}'


@pytest.mark.parametrize(
    ("value", "field", "shown"),
    [
        ({"x": float("inf")}, "context.x", "inf"),
        ({"a": [1.5, {"b": float("-inf")}]}, "context.a[1].b", "-inf"),
        ({"n": float("nan")}, "context.n", "nan"),
    ],
)
def test_a_number_json_cannot_hold_is_refused_naming_its_path(value: Any, field: str, shown: str) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        json_bounds.check_free_form("context", value, max_bytes=1000)
    assert (refused.value.field, refused.value.value, refused.value.allowed) == (field, shown, "a finite number")


def test_the_words_infinity_and_nan_in_text_are_fine() -> None:
    json_bounds.check_free_form("context", {"Infinity": "NaN", "big": 1.7e308}, max_bytes=1000)


def test_size_is_counted_in_utf8_bytes_of_compact_json() -> None:
    assert json_bounds.serialized_size({"é": [1, 2]}) == len('{"é":[1,2]}'.encode())


def test_text_bytes_are_utf8_bytes_not_characters() -> None:
    json_bounds.check_text_bytes("detailed_work", "é" * 50, max_bytes=100)
    with pytest.raises(errors.InvalidArgument) as refused:
        json_bounds.check_text_bytes("detailed_work", "é" * 51, max_bytes=100)
    assert (refused.value.field, refused.value.allowed) == ("detailed_work", {"max_bytes": 100})


def test_a_stored_value_is_unrenderable_when_it_holds_a_lone_surrogate_or_nests_past_the_render_depth() -> None:
    assert json_bounds.unrenderable({"a": [1, "two"]}) is None
    assert json_bounds.unrenderable(nested(64)) is None
    assert "64 levels" in (json_bounds.unrenderable(nested(65)) or "")
    assert "surrogate" in (json_bounds.unrenderable({"note": "\ud800"}) or "")
    assert json_bounds.readable("a\x00b\ud800") == "a\ufffdb\ufffd"
