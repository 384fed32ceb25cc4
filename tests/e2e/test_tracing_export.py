"""Traces over real OTLP/HTTP: the served app (a child process on SQLite) exports MCP, service and DB spans."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.mcp import call_error, call_ok
from tests.support.otlp import ReceivedSpan, Receiver, otlp_receiver
from tests.support.process import app_process, child_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def only(spans: list[ReceivedSpan]) -> ReceivedSpan:
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def parent(receiver: Receiver, span: ReceivedSpan) -> ReceivedSpan:
    found = receiver.by_id(span.parent_span_id)
    assert found is not None, f"{span.name} has no exported parent"
    return found


async def run_traced_calls(tmp_path: Path, receiver: Receiver) -> None:
    env = child_env(
        ORCHESTRATOR_DATA_DIR=str(tmp_path / "data"),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base_url,
        OTEL_SERVICE_NAME="orchestrator-under-test",
        # Nothing is exported on a timer during the test: every span must arrive by the shutdown flush.
        OTEL_BSP_SCHEDULE_DELAY="600000",
    )
    async with app_process(env, tmp_path) as app:
        async with Client(app.mcp_url, mode="2026-07-28") as c:
            await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="tracer")
            await call_ok(c, "orchestrator_plan_task", agent="tracer", title="Traced", description="A span.")
            await call_error(c, "orchestrator_update_task", agent="tracer", task_id="task_0000000000000000", title="x")
        assert receiver.requests == 0  # the batch was still queued in the child
        # A graceful SIGTERM ends in exit status 0 once the drain and the lifespan's teardown are done.
        assert await app.stop() == 0
    assert '"event": "stopping"' in app.text()


async def test_served_app_exports_service_and_db_spans_under_the_mcp_span_on_shutdown(tmp_path: Path) -> None:
    async with otlp_receiver() as receiver:
        await run_traced_calls(tmp_path, receiver)

    mcp_span = only(receiver.named("tools/call orchestrator_plan_task"))
    assert mcp_span.kind == Span.SPAN_KIND_SERVER
    assert mcp_span.resource["service.name"] == "orchestrator-under-test"
    assert isinstance(mcp_span.resource["service.version"], str)

    service = only(receiver.named("TaskPlanningService.plan_task"))
    assert parent(receiver, service) == mcp_span
    assert service.attributes["orchestrator.tool"] == "orchestrator_plan_task"
    assert service.attributes["orchestrator.actor"] == "tracer"

    statements = receiver.children_of(service)
    assert {s.name for s in statements} >= {"INSERT task", "BEGIN"}
    insert = next(s for s in statements if s.name == "INSERT task")
    assert insert.kind == Span.SPAN_KIND_CLIENT
    assert insert.attributes == {
        "db.system": "sqlite",
        "db.system.name": "sqlite",
        "db.operation.name": "INSERT",
        "db.collection.name": "task",
        "db.query.summary": "INSERT task",
    }

    # A refused call: the service span carries the error code; the MCP span marks the tool error.
    failed = only(receiver.named("TaskUpdateService.update_task"))
    assert parent(receiver, failed) == only(receiver.named("tools/call orchestrator_update_task"))
    assert failed.attributes["error.type"] == "not_found"
    assert failed.status_code == 2  # STATUS_CODE_ERROR

    # Statement spans never start outside a traced call (scrapes, probes, start-up migrations).
    for span in receiver.spans:
        if span.kind == Span.SPAN_KIND_CLIENT:
            assert parent(receiver, span).kind == Span.SPAN_KIND_INTERNAL, span.name
