"""JSON Merge Patch against RFC 7396: every example of Appendix A, plus the §3 example."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.domain.merge_patch import merge_patch, same_json

# RFC 7396 Appendix A, in order: (original, patch, result).
APPENDIX_A: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    (["a", "b"], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), APPENDIX_A, ids=[f"A{i + 1}" for i in range(len(APPENDIX_A))])
def test_rfc_7396_appendix_a(original: Any, patch: Any, result: Any) -> None:
    assert merge_patch(original, patch) == result


def test_rfc_7396_section_3_example() -> None:
    original = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None}, "tags": ["example"]}
    assert merge_patch(original, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_the_target_is_left_untouched() -> None:
    original = {"a": {"b": 1, "c": 2}, "d": [1]}
    before = copy.deepcopy(original)
    merge_patch(original, {"a": {"b": None, "x": 3}, "d": None})
    assert original == before


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"x": 1, "y": [True, None]}, {"y": [True, None], "x": 1}, True),
        (True, 1, False),
        (0, False, False),
        (1, 1.0, False),
        ({"x": [1]}, {"x": [1.0]}, False),
        ({"x": 1}, {"x": 1, "y": 2}, False),
        ([1, 2], [1], False),
    ],
)
def test_same_json_tells_json_types_apart(a: Any, b: Any, same: bool) -> None:
    assert same_json(a, b) is same
