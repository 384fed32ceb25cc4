"""Cycle detection for the two graphs a task lives in: parent links and dependency edges.

Pure functions over adjacency maps, so services can load just the edges they need and ask whether a
new edge would close a loop, getting back the loop itself for the error message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_path(edges: Mapping[str, Iterable[str]], start: str, goal: str) -> list[str] | None:
    """A path ``start -> … -> goal`` following ``edges``, or None (iterative DFS, no recursion limit)."""
    if start == goal:
        return [start]
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen = {start}
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == goal:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def cycle_if_added(edges: Mapping[str, Iterable[str]], source: str, target: str) -> list[str] | None:
    """The cycle closed by adding ``source -> target``, as a node path starting and ending at source."""
    back = find_path(edges, target, source)
    if back is None:
        return None
    return [source, *back]


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every elementary cycle found by one DFS pass (each reported once, as a closed path)."""
    white, grey, black = 0, 1, 2
    color: dict[str, int] = {}
    cycles: list[list[str]] = []
    for root in list(edges):
        if color.get(root, white) != white:
            continue
        stack: list[tuple[str, list[str]]] = [(root, list(edges.get(root, ())))]
        path = [root]
        color[root] = grey
        while stack:
            node, pending = stack[-1]
            if not pending:
                color[node] = black
                stack.pop()
                path.pop()
                continue
            nxt = pending.pop()
            state = color.get(nxt, white)
            if state == grey:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif state == white:
                color[nxt] = grey
                path.append(nxt)
                stack.append((nxt, list(edges.get(nxt, ()))))
    return cycles
