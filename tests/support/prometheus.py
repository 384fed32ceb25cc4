"""Reading Prometheus text exposition the way a scraper does: samples by name and labels, linted by promtool."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

from tests.support.process import require_binary

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(body: str) -> Samples:
    """Every sample of the exposition, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(key)[label] for (sample, key) in samples if sample == name and label in dict(key)}


def by_labels(samples: Samples, name: str, **match: str) -> Mapping[frozenset[tuple[str, str]], float]:
    """Samples of ``name`` whose labels include ``match``."""
    wanted = set(match.items())
    return {key: v for (sample, key), v in samples.items() if sample == name and wanted <= key}


def promtool_check_metrics(body: str) -> None:
    """``promtool check metrics`` (exposition syntax and Prometheus naming lints) must find nothing."""
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )
