"""JSON Merge Patch (RFC 7396), the way ``context`` changes: keys not named in the patch are kept.

That is what lets two agents edit different keys of one task's context concurrently and both land.
"""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``target`` per RFC 7396 §2 (``null`` removes a key; non-objects replace)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def same_json(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same JSON: like ``==``, but ``true``, ``1`` and ``1.0`` differ.

    Python holds ``True == 1 == 1.0``, so ``==`` would call a patch that only changes a value's JSON type
    (``{"flag": 1}`` on ``{"flag": true}``) "no change" and drop it. Recursion depth is that of the
    shallower value (the merged context is bounded before it is compared).
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
