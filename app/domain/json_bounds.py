"""What stored text and free-form JSON must be (DESIGN §3 "Input hygiene"): clean text, bounded size and depth.

Text is valid Unicode without NUL (PostgreSQL cannot store it) or lone surrogates (no UTF-8 encoder can
write them), so both backends store and send back exactly the same values. Free-form JSON (``context``) is
bounded by its serialized size and its nesting depth, so no caller can make a row that a JSON parser on the
way back refuses (common parsers stop at 128 or 200 levels) or that costs every reader megabytes. These
checks are pure: the tool edge runs them on the arguments, the services on values they compute (a
merge-patch result), the views on rows stored before the checks existed.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator
from typing import Any

import pydantic_core

from app import errors

MAX_CONTEXT_DEPTH = 16
# A stored value deeper than this is not sent back: past it, common JSON parsers (serde_json at 128,
# jiter at 200, counting the envelope around it) refuse the whole reply.
MAX_RENDER_DEPTH = 64
MAX_SHOWN_CHARS = 200
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
CLEAN_TEXT = "text without NUL (\\u0000) or lone surrogates (\\ud800-\\udfff)"


def bad_character(text: str) -> str | None:
    """``\\u0000``-style name of the first character that text may not hold, or None when it is clean."""
    found = BAD_TEXT.search(text)
    return None if found is None else f"\\u{ord(found.group()):04x}"


def readable(text: str) -> str:
    """``text`` with each NUL and lone surrogate replaced by U+FFFD (how a stored row that holds them is sent)."""
    return BAD_TEXT.sub("\ufffd", text)


def printable(text: str) -> str:
    """``text`` with NUL and lone surrogates written as ``\\uXXXX`` escapes, shortened: safe in any reply."""
    shown = BAD_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", text[: MAX_SHOWN_CHARS + 1])
    return shown if len(text) <= MAX_SHOWN_CHARS else shown[:MAX_SHOWN_CHARS] + f"… ({len(text)} characters)"


def surely_clean(value: Any) -> bool:
    """A fast test (one serialization in Rust) that no string inside ``value`` holds NUL or a lone surrogate.

    False means "maybe not": a lone surrogate fails the serialization, a NUL is written ``\\u0000`` (as is
    the six-character text ``\\u0000``, which only costs a slower :func:`first_bad_text` to rule out).
    """
    try:
        return b"\\u0000" not in pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError:
        return False


def first_bad_text(value: Any, path: str) -> tuple[str, str, str] | None:
    """The first string (object keys too) inside ``value`` holding a NUL or a lone surrogate.

    Returns ``(field path, the string made printable, the bad character)`` or None. Depth-first with one
    iterator per open level and the path built only for a finding, so a hostile value (a million empty
    objects, any depth) costs no memory per element.
    """
    if not isinstance(value, dict | list):
        bad = bad_character(value) if isinstance(value, str) else None
        return None if bad is None else (path, printable(value), bad)
    for trail, key, item in _walk(value):
        if isinstance(key, str) and (bad := bad_character(key)) is not None:
            return _path(path, [*trail, printable(key)]), printable(key), bad
        if isinstance(item, str) and (bad := bad_character(item)) is not None:
            return _path(path, [*trail, key]), printable(item), bad
    return None


def _walk(container: dict[str, Any] | list[Any]) -> Iterator[tuple[list[str | int], str | int, Any]]:
    """Every entry inside ``container``, depth-first: ``(trail to its container, key, item)``.

    One iterator per open level, so a hostile value (a million empty objects, any depth) costs no memory
    per element. ``trail`` is the walk's own list, changed as it goes: copy it to keep it.
    """
    trail: list[str | int] = []
    stack: list[Iterator[tuple[str | int, Any]]] = [_entries(container)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            if stack:
                trail.pop()
            continue
        key, item = entry
        yield trail, key, item
        if isinstance(item, dict | list):
            trail.append(key)
            stack.append(_entries(item))


def _entries(container: dict[str, Any] | list[Any]) -> Iterator[tuple[str | int, Any]]:
    return iter(container.items()) if isinstance(container, dict) else enumerate(container)


def _path(root: str, trail: list[str | int]) -> str:
    out = root
    for part in trail:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects/arrays more than ``limit`` deep (the value itself is level 1).

    Iterative with an early stop, so a hostile 100,000-level value costs no more than ``limit`` levels.
    """
    level: list[Any] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        nested: list[Any] = []
        for item in level:
            for inner in item.values() if isinstance(item, dict) else item:
                if isinstance(inner, dict | list):
                    nested.append(inner)
        level = nested
    return False


def serialized_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (how its size is bounded and reported)."""
    return len(pydantic_core.to_json(value))


def check_free_form(field: str, value: Any, *, max_bytes: int, max_depth: int = MAX_CONTEXT_DEPTH) -> None:
    """Refuse free-form JSON deeper than ``max_depth``, holding a number JSON cannot (infinite, NaN) or
    larger than ``max_bytes`` serialized.

    Call it after :func:`first_bad_text` (serializing a lone surrogate fails).

    Raises:
        invalid_argument: naming the field, the value (shortened) and the bound.
    """
    if depth_over(value, max_depth):
        raise errors.InvalidArgument(
            f"'{field}' nests objects/arrays more than {max_depth} levels deep; flatten it (e.g. use "
            "dotted keys) and call again.",
            field=field,
            value=_shown_json(value),
            allowed={"max_depth": max_depth},
        )
    # "constants" writes an infinite or NaN number as Infinity/NaN (not null), so one scan can rule them out.
    text = pydantic_core.to_json(value, inf_nan_mode="constants")
    if (b"Infinity" in text or b"NaN" in text) and (non_finite := first_non_finite(value, field)) is not None:
        path, number = non_finite
        raise errors.InvalidArgument(
            f"'{path}' is {number}, a number JSON cannot hold (out of range or not a number); send a finite "
            f"number (at most {sys.float_info.max:.6g} in magnitude) or a string, and call again.",
            field=path,
            value=number,
            allowed="a finite number",
        )
    size = len(text)
    if size > max_bytes:
        raise errors.InvalidArgument(
            f"'{field}' is {size} bytes as JSON, over the limit of {max_bytes}; keep large content in an artifact "
            "(orchestrator_complete_task detailed_work) and put a short reference in the context.",
            field=field,
            value=_shown_json(value),
            allowed={"max_bytes": max_bytes},
        )


def first_non_finite(value: Any, path: str) -> tuple[str, str] | None:
    """The first number inside ``value`` that is infinite or NaN: ``(field path, "inf"/"-inf"/"nan")``.

    JSON has no such numbers, yet a parser reads ``1e400`` as infinity: PostgreSQL's JSONB refuses it and
    SQLite's JSON would store it as ``null``, so it is refused on both alike (nothing is stored that does
    not read back).
    """
    if not isinstance(value, dict | list):
        return (path, str(value)) if isinstance(value, float) and not math.isfinite(value) else None
    for trail, key, item in _walk(value):
        if isinstance(item, float) and not math.isfinite(item):
            return _path(path, [*trail, key]), str(item)
    return None


def check_text_bytes(field: str, text: str, *, max_bytes: int) -> None:
    """Refuse text longer than ``max_bytes`` in UTF-8.

    Raises:
        invalid_argument: naming the field, the value (shortened) and the bound.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise errors.InvalidArgument(
            f"'{field}' is {size} bytes of UTF-8, over the limit of {max_bytes}; split the work into several "
            "artifacts or store a summary with file paths.",
            field=field,
            value=printable(text),
            allowed={"max_bytes": max_bytes},
        )


def unrenderable(value: Any, max_depth: int = MAX_RENDER_DEPTH) -> str | None:
    """Why a stored value cannot be sent back as JSON (a lone surrogate, too deep), or None when it can."""
    try:
        size = len(pydantic_core.to_json(value))
    except pydantic_core.PydanticSerializationError:
        return "it holds text that is not valid Unicode (a lone surrogate)"
    # Each level takes at least two bytes ("[]"), so a short value cannot be too deep: skip the walk.
    if size > 2 * max_depth and depth_over(value, max_depth):
        return f"it is nested more than {max_depth} levels deep"
    return None


def _shown_json(value: Any) -> str:
    """The value as JSON, cut short; containers past the third level are written ``"…"`` so a hostile
    value is never serialized whole just to be quoted."""
    text = pydantic_core.to_json(_shallow(value, 3), fallback=str).decode("utf-8", "replace")
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…"


def _shallow(value: Any, levels: int) -> Any:
    if isinstance(value, dict):
        return {k: _shallow(v, levels - 1) for k, v in list(value.items())[:20]} if levels > 0 else "…"
    if isinstance(value, list):
        return [_shallow(v, levels - 1) for v in value[:20]] if levels > 0 else "…"
    return value
