"""The benchmarks' pure helpers: the soak's growth slope and the backend list (benchmarks are not tests)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    "module", sorted(p.stem for p in Path(__file__).parents[2].joinpath("bench").glob("*.py") if p.stem != "__init__")
)
def test_every_benchmark_module_imports(module: str) -> None:
    # Benchmarks are not run in CI; an import broken by a change elsewhere must still fail here.
    importlib.import_module(f"bench.{module}")
