"""OpenTelemetry tracing: a TracerProvider with OTLP/HTTP export when an endpoint is configured.

The MCP SDK already opens a span per message through the global tracer provider; services and the
database add child spans under it. With no ``OTEL_EXPORTER_OTLP_ENDPOINT`` nothing is exported and the
provider stays the SDK's no-op default.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE_NAME = "task-orchestrator"


def configure_tracing(endpoint: str | None, service_name: str, version: str) -> TracerProvider | None:
    """Install an exporting provider when OTLP is configured; returns it so shutdown can flush it."""
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = Resource.create({"service.name": service_name, "service.version": version})
    provider = TracerProvider(resource=resource)
    traces_url = endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    trace.set_tracer_provider(provider)
    return provider


def tracer() -> trace.Tracer:
    return trace.get_tracer("app")
