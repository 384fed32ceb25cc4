"""OpenTelemetry tracing: the exporting provider, service spans and database statement spans.

The MCP SDK opens a SERVER span per message (``tools/call <tool>``) through the *global* tracer provider
(``mcp.shared._otel``). We add two kinds of children under it:

- a service span per public service call (``TaskUpdateService.update_task``), made by the services' base;
- a CLIENT span per SQL statement (``SELECT task``), from SQLAlchemy cursor events on every engine we build.

With no ``OTEL_EXPORTER_OTLP_ENDPOINT`` no provider is installed and the global one stays the API's proxy,
whose spans record nothing; service spans are then skipped outright, and statement spans only start under
a recording parent, so tracing off costs one lookup per call and per statement.

The global provider can be set once per process (``trace.set_tracer_provider``): ``configure_tracing``
installs it the first time and leaves an already installed provider alone, so a second app in the same
process (tests) neither replaces nor shuts down the first one's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue
from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger("app.observability")
TRACER_NAME = "task-orchestrator"
SPAN_ATTRIBUTE = "_orchestrator_span"  # where a statement's span waits on SQLAlchemy's execution context
SUMMARY_MAX_CHARS = 80

_OPERATION = re.compile(r"^\s*([A-Za-z]+)")
_TARGETS = {
    "SELECT": re.compile(r"\bFROM\s+([\"`]?[A-Za-z_][\w.]*)", re.IGNORECASE),
    "DELETE": re.compile(r"\bFROM\s+([\"`]?[A-Za-z_][\w.]*)", re.IGNORECASE),
    "INSERT": re.compile(r"\bINTO\s+([\"`]?[A-Za-z_][\w.]*)", re.IGNORECASE),
    "UPDATE": re.compile(r"^\s*UPDATE\s+([\"`]?[A-Za-z_][\w.]*)", re.IGNORECASE),
}


def configure_tracing(endpoint: str | None, service_name: str, version: str) -> TracerProvider | None:
    """Install an OTLP/HTTP-exporting provider when an endpoint is configured.

    Returns the provider this call installed (the lifespan shuts it down, which flushes queued spans), or
    None when tracing is off or a provider was already installed in this process.
    """
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        log.warning(
            "tracing_already_configured",
            extra={"event": "tracing_already_configured", "detail": "keeping this process's first provider"},
        )
        return None
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES from the environment.
    resource = Resource.create({"service.name": service_name, "service.version": version})
    provider = TracerProvider(resource=resource)
    url = traces_url(endpoint)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    trace.set_tracer_provider(provider)
    log.info("tracing_configured", extra={"event": "tracing_configured", "endpoint": without_credentials(url)})
    return provider


def traces_url(endpoint: str) -> str:
    """The traces URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``, the collector's base URL: ``/v1/traces`` appended
    to its path (OTLP spec), before any query string a collector may want (an API key, say)."""
    parts = urlsplit(endpoint)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/v1/traces"))


def without_credentials(url: str) -> str:
    """``url`` fit for a log line: no ``user:password@`` and no query string (where a collector's key goes;
    ``?…`` says one was given), since a key named ``api_key`` or ``sig`` matches no secret pattern."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "…" if parts.query else "", ""))


def tracer() -> trace.Tracer:
    """The app's tracer, from the global provider at call time (so it follows ``configure_tracing``)."""
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def service_span(name: str, attributes: Mapping[str, AttributeValue]) -> Iterator[trace.Span]:
    """An INTERNAL span around one service call; a failure marks it with its error code, never its text.

    Error messages can quote the caller's input, so only ``error.type`` (the orchestrator's error code, or
    the exception class) goes on the span.
    """
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # Tracing is off (no provider installed): skip the no-op span's context churn on every call.
        yield trace.INVALID_SPAN
        return
    with tracer().start_as_current_span(
        name,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            code = getattr(exc, "code", None)
            span.set_attribute("error.type", code if isinstance(code, str) else type(exc).__qualname__)
            span.set_status(StatusCode.ERROR)
            raise


def add_event(name: str, attributes: Mapping[str, AttributeValue]) -> None:
    """An event on the current span (e.g. a retried transaction); nothing when no span records."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, attributes)


def statement_summary(statement: str) -> tuple[str, str | None]:
    """(operation, table) of a SQL statement: ``("SELECT", "task")``. Identifiers only, never values."""
    match = _OPERATION.match(statement)
    operation = match.group(1).upper() if match else "SQL"
    target_pattern = _TARGETS.get(operation)
    target = target_pattern.search(statement) if target_pattern is not None else None
    table = target.group(1).strip('"`')[:SUMMARY_MAX_CHARS] if target is not None else None
    return operation, table


def instrument_engine(engine: Engine, system: str) -> None:
    """Emit a CLIENT span per statement executed on ``engine`` (the sync engine under an async one).

    SQLAlchemy runs cursor events inside the greenlet that carries the calling task's context variables,
    so the current span there is the service span of the call that issued the statement.
    """

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if context is None or not trace.get_current_span().is_recording():
            return
        operation, table = statement_summary(statement)
        summary = f"{operation} {table}" if table else operation
        attributes: dict[str, AttributeValue] = {
            "db.system": system,
            "db.system.name": system,
            "db.operation.name": operation,
            "db.query.summary": summary,
        }
        if table:
            attributes["db.collection.name"] = table
        if executemany:
            attributes["db.operation.batch"] = True
        span = tracer().start_span(summary, kind=SpanKind.CLIENT, attributes=attributes)
        setattr(context, SPAN_ATTRIBUTE, span)

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        span = getattr(context, SPAN_ATTRIBUTE, None) if context is not None else None
        if span is not None:
            span.end()
            setattr(context, SPAN_ATTRIBUTE, None)

    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        span = getattr(context, SPAN_ATTRIBUTE, None) if context is not None else None
        if span is not None:
            span.set_attribute("error.type", type(exception_context.original_exception).__qualname__)
            span.set_status(StatusCode.ERROR)
            span.end()
            setattr(context, SPAN_ATTRIBUTE, None)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)
