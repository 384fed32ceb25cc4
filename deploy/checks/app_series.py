"""The series the app exports, by wire name, read from its one ``Metrics`` object (DESIGN §9).

Built as ``create_app`` builds it (``app/observability/metrics.py`` needs only prometheus-client), with
the names Prometheus gives each type on the wire: ``_total`` for counters; ``_bucket`` (with ``le``),
``_sum`` and ``_count`` for histograms; the plain name for gauges.
"""

from __future__ import annotations


def exported_series() -> dict[str, frozenset[str]]:
    """Wire name -> label names, for every series the app's Metrics object can export."""
    from prometheus_client.metrics import MetricWrapperBase

    from app.observability.metrics import Metrics

    series: dict[str, frozenset[str]] = {}
    for metric in vars(Metrics("check")).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        # prometheus_client keeps name, labels and type private; describe() gives no label names.
        name, labels, kind = metric._name, frozenset(metric._labelnames), metric._type
        if kind == "counter":
            series[f"{name}_total"] = labels
        elif kind == "histogram":
            series[f"{name}_bucket"] = labels | {"le"}
            series[f"{name}_sum"] = labels
            series[f"{name}_count"] = labels
        else:
            series[name] = labels
    return series
