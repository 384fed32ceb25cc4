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
