"""The benchmarks' pure helpers: the soak's growth slope and the backend list (benchmarks are not tests)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from bench.layer_split import LAYERS, layer_of, split
from bench.seeding import parse_backends
from bench.soak import slope_per_hour


def test_slope_is_the_least_squares_growth_per_hour() -> None:
    # 2 MiB per 10 minutes, the middle samples 0.5 MiB high (symmetric, so the slope stays): 12 MiB/hour.
    points = [(0.0, 100.0), (600.0, 102.5), (1200.0, 104.5), (1800.0, 106.0)]

    assert slope_per_hour(points) == pytest.approx(12.0)
    assert slope_per_hour([(0.0, 40.0), (60.0, 40.0), (120.0, 40.0)]) == 0.0


def test_slope_of_fewer_than_two_distinct_times_is_zero() -> None:
    assert slope_per_hour([]) == 0.0
    assert slope_per_hour([(10.0, 5.0)]) == 0.0
    assert slope_per_hour([(10.0, 5.0), (10.0, 9.0)]) == 0.0


def test_backends_expand_both_and_all_without_repeating_one() -> None:
    assert parse_backends("both") == ["sqlite", "postgresql"]
    assert parse_backends("all") == ["postgresql-fsync", "postgresql", "sqlite"]
    assert parse_backends("postgresql-fsync, sqlite,postgresql-fsync") == ["postgresql-fsync", "sqlite"]
    assert parse_backends("both", both=("postgresql", "sqlite")) == ["postgresql", "sqlite"]


def test_an_unknown_or_empty_backend_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'mysql'"):
        parse_backends("sqlite,mysql")
    with pytest.raises(ValueError, match="no backend"):
        parse_backends(" , ")


def test_a_sample_counts_for_the_first_layer_it_shows_even_below_another() -> None:
    handler = "handle_modern_request (mcp/server/_streamable_http_modern.py:472)"
    edge = "OrchestratorMCP.call_tool (app/tools/server.py:159)"
    service = "TaskPlanningService.plan_task (app/services/graph/planning.py:140)"

    # A statement run by a service counts as the service's, though it runs inside the SDK's handler.
    assert layer_of(";".join([handler, edge, service, "execute (sqlalchemy/orm/session.py:2300)"])) == LAYERS[0].name
    # SQLAlchemy's greenlet stacks do not show the service; they are matched by the package.
    assert layer_of("greenlet_spawn (sqlalchemy/util/concurrency.py:177)") == LAYERS[0].name
    assert layer_of(f"{handler};{edge};check (app/tools/input_hygiene.py:38)").startswith("tool edge")
    # app/tools middleware around the SDK's whole dispatch is not the tool edge.
    listen = "ListenQuota.__call__ (app/tools/listen_quota.py:47)"
    assert layer_of(f"{handler};{listen};ServerRunner._serialize (mcp/server/runner.py:363)").startswith(
        "SDK: the answer"
    )
    assert layer_of("Thread._bootstrap (threading.py:995);_connection_worker_thread (aiosqlite/core.py:66)").startswith(
        "database driver"
    )
    assert layer_of("Runner.run (asyncio/runners.py:118)") == LAYERS[-1].name


def test_the_split_is_each_layers_share_of_the_samples() -> None:
    service = "work (app/services/graph/queries.py:260)"
    lines = [f"a (x.py:1);{service} 3", "Runner.run (asyncio/runners.py:118) 1", "", "torn line without a count"]

    shares = split(lines)

    assert shares[LAYERS[0].name] == pytest.approx(0.75)
    assert shares[LAYERS[-1].name] == pytest.approx(0.25)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert set(shares) == {layer.name for layer in LAYERS}
    assert all(share == 0.0 for share in split([]).values())


@pytest.mark.parametrize(
    "module", sorted(p.stem for p in Path(__file__).parents[2].joinpath("bench").glob("*.py") if p.stem != "__init__")
)
def test_every_benchmark_module_imports(module: str) -> None:
    # Benchmarks are not run in CI; an import broken by a change elsewhere must still fail here.
    importlib.import_module(f"bench.{module}")
