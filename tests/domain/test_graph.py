"""Cycle detection in dependency and parent graphs: the new edge's cycle, and every cycle of a graph."""

from __future__ import annotations

import itertools

from app.domain import graph


def test_edge_into_an_unrelated_node_closes_no_cycle() -> None:
    edges = {"a": ["b"], "b": ["c"]}
    assert graph.cycle_if_added(edges, "a", "d") is None
    assert graph.cycle_if_added(edges, "d", "a") is None


def test_edge_parallel_to_an_existing_path_closes_no_cycle() -> None:
    # a -> b -> c; adding a -> c (a shortcut) is still acyclic.
    assert graph.cycle_if_added({"a": ["b"], "b": ["c"]}, "a", "c") is None


def test_edge_back_to_the_start_of_a_chain_returns_the_whole_cycle() -> None:
    edges = {"a": ["b"], "b": ["c"]}
    assert graph.cycle_if_added(edges, "c", "a") == ["c", "a", "b", "c"]


def test_two_node_cycle_is_reported_as_a_closed_path() -> None:
    assert graph.cycle_if_added({"a": ["b"]}, "b", "a") == ["b", "a", "b"]


def test_self_edge_is_a_cycle_of_one() -> None:
    assert graph.cycle_if_added({}, "a", "a") == ["a", "a"]


def test_cycle_is_found_through_a_diamond() -> None:
    edges = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
    cycle = graph.cycle_if_added(edges, "d", "a")
    assert cycle is not None
    assert cycle[0] == cycle[-1] == "d"
    assert cycle in (["d", "a", "b", "d"], ["d", "a", "c", "d"])
    for source, target in itertools.pairwise(cycle):
        assert target in edges.get(source, []) or (source, target) == ("d", "a")


def test_find_path_follows_edges_only_forwards() -> None:
    edges = {"a": ["b"], "b": ["c"]}
    assert graph.find_path(edges, "a", "c") == ["a", "b", "c"]
    assert graph.find_path(edges, "c", "a") is None
    assert graph.find_path(edges, "a", "a") == ["a"]


def test_long_chain_needs_no_recursion() -> None:
    edges = {f"n{i}": [f"n{i + 1}"] for i in range(5000)}
    cycle = graph.cycle_if_added(edges, "n5000", "n0")
    assert cycle is not None and len(cycle) == 5002


def test_acyclic_graph_has_no_cycles() -> None:
    assert graph.find_cycles({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}) == []
    assert graph.find_cycles({}) == []


def test_find_cycles_reports_each_cycle_as_a_closed_path() -> None:
    cycles = graph.find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "x": ["y"], "y": ["x"], "z": ["a"]})
    normalised = sorted(_rotate(c) for c in cycles)
    assert normalised == [["a", "b", "c", "a"], ["x", "y", "x"]]


def test_find_cycles_reports_a_self_loop() -> None:
    assert graph.find_cycles({"a": ["a"]}) == [["a", "a"]]


def test_find_cycles_reaches_nodes_that_only_appear_as_targets() -> None:
    # "b" has no adjacency entry of its own; the cycle runs a -> c -> a behind it.
    cycles = graph.find_cycles({"a": ["b", "c"], "c": ["a"]})
    assert [_rotate(c) for c in cycles] == [["a", "c", "a"]]


def _rotate(cycle: list[str]) -> list[str]:
    """A closed path rotated to start at its smallest node, so cycles compare regardless of where DFS entered."""
    body = cycle[:-1]
    start = body.index(min(body))
    turned = body[start:] + body[:start]
    return [*turned, turned[0]]
