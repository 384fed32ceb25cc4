"""``orchestrator_restart_server``: an in-process warm restart of the component stack, phase by phase.

drain (the gate refuses new calls with a retryable ``unavailable``; the other in-flight calls get up to
``timeout`` to finish, or are cancelled at once with ``graceful=false`` and after the timeout otherwise:
their transactions roll back) → release claims (``preserve_state=false``) → stop monitors → dispose the
engine → rebuild it → schema check → start monitors → ready. The MCP session manager is not part of the
stack, so legacy sessions survive; the process never exits.

Every phase is recorded in ``system_event`` (``restart_started``, ``restart_phase``, ``restart_finished``)
past the gate. A phase that fails ends the restart as ``failed`` naming it; the parts it left down are
brought back so the service returns to ready (readiness keeps any reason that still holds, such as a
schema behind head or an unreachable database), and the call answers with what happened.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from app import errors
from app.db import schema
from app.domain.clock import Clock, iso
from app.observability.metrics import Metrics
from app.runtime import heap
from app.runtime.component_stack import ComponentStack
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.runtime.system_events import SystemEventLog
from app.services.caller import SCOPE_ADMIN, Caller

log = logging.getLogger("app.runtime")

RestartReason = Literal[
    "configuration_update", "schema_migration", "error_recovery", "manual_request", "emergency_shutdown"
]
ServiceStateName = Literal["starting", "ready", "draining", "restarting", "stopping", "stopped"]
HISTORY_LIMIT = 50
MAX_ERROR_CHARS = 500


class RestartPhase(BaseModel):
    name: str
    outcome: Literal["ok", "failed"]
    started_at: str
    duration_ms: float
    details: dict[str, Any] = {}
    error: str | None = None


class RestartSummary(BaseModel):
    """One restart as it ended (also the ``data`` of its ``restart_finished`` event)."""

    restart_id: str
    server_instance_id: str
    actor: str
    reason: RestartReason
    graceful: bool
    preserve_state: bool
    timeout: float
    outcome: Literal["succeeded", "failed"]
    failed_phase: str | None
    error: str | None
    started_at: str
    finished_at: str
    duration_ms: float
    phases: list[RestartPhase]


class RestartResult(RestartSummary):
    state: ServiceStateName


class RestartProgress(BaseModel):
    restart_id: str
    phase: str
    progress: float
    reason: RestartReason
    started_at: str
    actor: str


class RestartStatus(BaseModel):
    state: ServiceStateName
    current: RestartProgress | None
    last: RestartSummary | None
    history: list[RestartSummary] | None


@dataclass
class _Run:
    restart_id: str
    actor: str
    reason: RestartReason
    graceful: bool
    preserve_state: bool
    timeout: float
    plan: list[str]
    started_moment: datetime
    started: float = field(default_factory=time.monotonic)
    phases: list[RestartPhase] = field(default_factory=list)

    @property
    def started_at(self) -> str:
        return iso(self.started_moment) or ""


def require_admin(caller: Caller, tool: str) -> None:
    """Lifecycle control is an admin power (DESIGN §7).

    Raises:
        forbidden: the caller lacks the ``admin`` scope.
    """
    if not caller.is_admin:
        raise errors.Forbidden(f"{tool} needs the 'admin' scope; ask an operator to run it.", allowed=[SCOPE_ADMIN])


class RestartDriver:
    """Runs one warm restart at a time and remembers the current and the last one."""

    def __init__(
        self,
        reboot: RebootManager,
        components: ComponentStack,
        events: SystemEventLog,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self._reboot = reboot
        self._components = components
        self._events = events
        self._clock = clock
        self._metrics = metrics
        self._run: _Run | None = None
        self.last: RestartSummary | None = None

    @property
    def current(self) -> RestartProgress | None:
        run = self._run
        if run is None:
            return None
        done = len(run.phases)
        return RestartProgress(
            restart_id=run.restart_id,
            phase=run.plan[min(done, len(run.plan) - 1)],
            progress=round(done / len(run.plan), 3),
            reason=run.reason,
            started_at=run.started_at,
            actor=run.actor,
        )

    async def restart(
        self, caller: Caller, *, graceful: bool, preserve_state: bool, timeout: float, reason: RestartReason
    ) -> RestartResult:
        """Restart the component stack in this process and answer when it is done (or failed).

        Raises:
            forbidden: not an admin. unavailable: a restart is already running, or the process is stopping.
        """
        require_admin(caller, "orchestrator_restart_server")
        if self._run is not None:
            raise errors.Unavailable(
                "A restart is already in progress; follow it with orchestrator_restart_status.",
                retry_after_seconds=2.0,
            )
        if self._reboot.stop_requested or self._reboot.state not in (ServiceState.READY, ServiceState.DRAINING):
            raise errors.Unavailable(
                f"The service is {self._reboot.state.value} and cannot restart now; retry shortly.",
                retry_after_seconds=5.0,
            )
        plan = ["drain", "stop_monitors", "dispose_engine", "rebuild_engine", "schema_check", "start_monitors", "ready"]
        if not preserve_state:
            plan.insert(1, "release_claims")
        run = _Run(
            restart_id=f"rst_{secrets.token_hex(8)}",
            actor=caller.actor,
            reason=reason,
            graceful=graceful,
            preserve_state=preserve_state,
            timeout=timeout,
            plan=plan,
            started_moment=self._clock.now(),
        )
        self._run = run
        try:
            return await self._perform(run)
        finally:
            self._run = None

    async def status(self, *, include_history: bool) -> RestartStatus:
        """The state, the restart running now, the last one, and (on request) the history.

        Raises:
            unavailable: ``include_history`` and the database is unreachable.
        """
        if self._run is None:  # never queue behind a running restart's own writes
            await self._events.flush(wait=False)  # what an outage held back belongs in the history now
        last = self.last
        history: list[RestartSummary] | None = None
        if last is None or include_history:
            try:
                summaries = await self._history()
            except errors.Unavailable:
                if include_history:
                    raise
                summaries = []
            if last is None and summaries:
                last = summaries[0]
            if include_history:
                history = summaries
        return RestartStatus(state=self._reboot.state.value, current=self.current, last=last, history=history)

    # --- the procedure ------------------------------------------------------------------------------
    async def _perform(self, run: _Run) -> RestartResult:
        log.warning(
            "restart_started",
            extra={"event": "restart_started", "restart_id": run.restart_id, "reason": run.reason, "actor": run.actor},
        )
        steps: dict[str, Callable[[_Run], Awaitable[dict[str, Any]]]] = {
            "release_claims": self._release_claims,
            "stop_monitors": self._stop_monitors,
            "dispose_engine": self._dispose_engine,
            "rebuild_engine": self._rebuild_engine,
            "schema_check": self._schema_check,
            "start_monitors": self._start_monitors,
        }
        # The drain comes before any write of our own: until it is over, other calls may hold the
        # database (on SQLite, its one write lock), and the restart must not queue behind what it drains.
        drained = await self._phase(run, "drain", self._drain, record=False)
        await self._events.record(
            "restart_started",
            run.actor,
            {
                "restart_id": run.restart_id,
                "server_instance_id": self._reboot.instance_id,
                "reason": run.reason,
                "graceful": run.graceful,
                "preserve_state": run.preserve_state,
                "timeout": run.timeout,
            },
            at=run.started_moment,
        )
        await self._record_phase(run, drained)
        failed: RestartPhase | None = drained if drained.outcome == "failed" else None
        for name in run.plan[1:-1] if failed is None else []:
            phase = await self._phase(run, name, steps[name])
            if phase.outcome == "failed":
                failed = phase
                break
        if failed is not None:
            await self._bring_back()
        await self._phase(run, "ready", self._ready)
        outcome: Literal["succeeded", "failed"] = "failed" if failed is not None else "succeeded"
        summary = RestartSummary(
            restart_id=run.restart_id,
            server_instance_id=self._reboot.instance_id,
            actor=run.actor,
            reason=run.reason,
            graceful=run.graceful,
            preserve_state=run.preserve_state,
            timeout=run.timeout,
            outcome=outcome,
            failed_phase=failed.name if failed is not None else None,
            error=failed.error if failed is not None else None,
            started_at=run.started_at,
            finished_at=iso(self._clock.now()) or "",
            duration_ms=round((time.monotonic() - run.started) * 1000, 1),
            phases=list(run.phases),
        )
        self.last = summary
        if self._metrics is not None:
            self._metrics.restarts.labels(reason=run.reason, outcome=outcome).inc()
        await self._events.record("restart_finished", run.actor, summary.model_dump(mode="json"))
        log.warning(
            "restart_finished",
            extra={
                "event": "restart_finished",
                "restart_id": run.restart_id,
                "outcome": outcome,
                "failed_phase": summary.failed_phase,
                "duration_ms": summary.duration_ms,
            },
        )
        return RestartResult(**summary.model_dump(), state=self._reboot.state.value)

    async def _phase(
        self, run: _Run, name: str, step: Callable[[_Run], Awaitable[dict[str, Any]]], *, record: bool = True
    ) -> RestartPhase:
        started_at = iso(self._clock.now()) or ""
        started = time.monotonic()
        error: str | None = None
        details: dict[str, Any] = {}
        try:
            details = await step(run)
        except errors.OrchestratorError as exc:
            error = f"{exc.code}: {exc.message}"
        except Exception as exc:  # a failed phase is the restart's answer, not a crash: logged, recorded, reported
            log.exception("restart_phase_failed", extra={"event": "restart_phase_failed", "phase": name})
            error = f"{type(exc).__name__}: {exc}"
        phase = RestartPhase(
            name=name,
            outcome="ok" if error is None else "failed",
            started_at=started_at,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            details=details,
            error=error[:MAX_ERROR_CHARS] if error is not None else None,
        )
        run.phases.append(phase)
        if record:
            await self._record_phase(run, phase)
        return phase

    async def _record_phase(self, run: _Run, phase: RestartPhase) -> None:
        await self._events.record(
            "restart_phase", run.actor, {"restart_id": run.restart_id, **phase.model_dump(mode="json")}
        )

    async def _drain(self, run: _Run) -> dict[str, Any]:
        self._reboot.begin_drain()
        outcome = await self._reboot.drain(run.timeout, graceful=run.graceful)
        self._reboot.move_to(ServiceState.RESTARTING)
        return {
            "waited_for": outcome.waited_for,
            "cancelled": outcome.cancelled,
            "timed_out": outcome.timed_out,
            "seconds": round(outcome.seconds, 3),
        }

    async def _release_claims(self, run: _Run) -> dict[str, Any]:
        service = self._components.lifecycle()
        if service is None:
            raise errors.Unavailable("The database engine is not open; no claim could be released.")
        released = await service.release_all_claims(
            Caller(actor=run.actor), reason=f"restart {run.restart_id} ({run.reason}) without preserve_state"
        )
        return {"released": released}

    async def _stop_monitors(self, run: _Run) -> dict[str, Any]:
        supervisor = self._components.supervisor
        await self._components.stop_monitors()
        return {"monitors": supervisor.names if supervisor is not None else []}

    async def _dispose_engine(self, run: _Run) -> dict[str, Any]:
        database = self._components.database
        checked_out = database.pool_stats().get("checked_out", 0) if database is not None else 0
        await self._components.dispose_engine()
        return {"connections_checked_out": checked_out}

    async def _rebuild_engine(self, run: _Run) -> dict[str, Any]:
        await self._components.open_engine()
        database = self._components.database
        return {"backend": database.backend if database is not None else None}

    async def _schema_check(self, run: _Run) -> dict[str, Any]:
        await self._components.check_schema()
        return {"revision": schema.head_revision()}

    async def _start_monitors(self, run: _Run) -> dict[str, Any]:
        await self._components.start_monitors()
        supervisor = self._components.supervisor
        return {"monitors": supervisor.names if supervisor is not None else []}

    async def _ready(self, run: _Run) -> dict[str, Any]:
        # A SIGTERM that arrived meanwhile wins: the restart ends in stopping, never back in ready.
        target = ServiceState.STOPPING if self._reboot.stop_requested else ServiceState.READY
        heap.resettle()  # the replaced engine and monitors may sit frozen; collect them before calls resume
        self._reboot.move_to(target)
        ready, reasons = self._reboot.readiness()
        return {"state": target.value, "ready": ready, "reasons": reasons}

    async def _bring_back(self) -> None:
        """After a failed phase: reopen what is down so the service serves again where it can."""
        try:
            await self._components.open_engine()
            await self._components.start_monitors()
        except Exception:  # the restart already failed; this is best effort and logged by name
            log.exception("restart_recovery_failed", extra={"event": "restart_recovery_failed"})

    async def _history(self) -> list[RestartSummary]:
        service = self._components.lifecycle()
        if service is None:
            raise errors.Unavailable("The service is restarting; the history is readable again shortly.")
        summaries = []
        for data in await service.system_event_data("restart_finished", limit=HISTORY_LIMIT):
            try:
                summaries.append(RestartSummary.model_validate(data))
            except ValidationError:
                log.warning("restart_event_unreadable", extra={"event": "restart_event_unreadable"})
        return summaries
