"""The lifecycle tools' runtime side: live health, shutdown readiness, the reconnect proof, restarts.

Every number here is measured when asked: a database round trip and the schema revision, the
RebootManager's state and problems, each monitor's supervision record, the pool, the calls in flight,
PostgreSQL's own view of this process's open transactions, and the MCP SDK's live legacy sessions.
Counts of calls and sessions leave out the asking call and its own session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import anyio
from pydantic import BaseModel

from app import errors
from app.db import schema
from app.db.circuit_breaker import CircuitState
from app.runtime.component_stack import ComponentStack
from app.runtime.process_status import pool_usage
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.runtime.restart import (
    RestartDriver,
    RestartReason,
    RestartResult,
    RestartStatus,
    ServiceStateName,
    require_admin,
)
from app.runtime.system_events import SystemEventLog
from app.services.caller import Caller
from app.services.sessions.status import PoolUsage
from app.services.views import TaskView

log = logging.getLogger("app.runtime")


# --- result models (also the tools' output schemas) ----------------------------------------------
class DatabaseCheck(BaseModel):
    ok: bool
    reason: str | None
    latency_ms: float | None
    revision: str | None
    head: str
    backend: str | None


class RebootManagerCheck(BaseModel):
    ok: bool
    reason: str | None
    state: ServiceStateName
    problems: dict[str, str]


class MonitorState(BaseModel):
    alive: bool
    runs: int
    failures: int
    last_error: str | None


class MonitorsCheck(BaseModel):
    ok: bool
    reason: str | None
    monitors: dict[str, MonitorState]


class ConnectionsCheck(BaseModel):
    ok: bool
    reason: str | None
    in_flight_calls: int
    pool: PoolUsage
    circuit: str


class HealthChecks(BaseModel):
    database: DatabaseCheck | None
    reboot_manager: RebootManagerCheck | None
    monitors: MonitorsCheck | None
    connections: ConnectionsCheck | None


class HealthReport(BaseModel):
    healthy: bool
    server_version: str
    server_instance_id: str
    checks: HealthChecks


class BlockingIssue(BaseModel):
    check: str
    message: str


class ShutdownChecks(BaseModel):
    active_claims: int | None
    in_flight_calls: int | None
    db_connections_checked_out: int | None
    open_transactions: int | None
    mcp_sessions: int | None


class ShutdownReport(BaseModel):
    ready_for_shutdown: bool
    blocking_issues: list[BlockingIssue]
    checks: ShutdownChecks
    draining: bool


class DatabaseRoundTrip(BaseModel):
    ok: bool
    latency_ms: float


class ReconnectReport(BaseModel):
    protocol_version: str | None
    mcp_session_id: str | None
    actor: str
    server_instance_id: str
    uptime_seconds: float
    database: DatabaseRoundTrip
    claims: list[TaskView]


class Lifecycle:
    """What the lifecycle tools call; one per process, surviving warm restarts."""

    def __init__(
        self,
        reboot: RebootManager,
        components: ComponentStack,
        events: SystemEventLog,
        restarts: RestartDriver,
        *,
        version: str,
        mcp_session_ids: Callable[[], Collection[str]],
    ) -> None:
        self.reboot = reboot
        self.components = components
        self.events = events
        self.restarts = restarts
        self.version = version
        self._mcp_session_ids = mcp_session_ids

    # --- orchestrator_health_check ------------------------------------------------------------------
    async def health_check(
        self, *, include_reboot_readiness: bool, include_connection_status: bool, include_database_status: bool
    ) -> HealthReport:
        """Live checks; ``healthy`` is the AND of the checks asked for, each saying why when not ok."""
        checks = HealthChecks(
            database=await self._database_check() if include_database_status else None,
            reboot_manager=self._reboot_check() if include_reboot_readiness else None,
            monitors=self._monitors_check() if include_reboot_readiness else None,
            connections=self._connections_check() if include_connection_status else None,
        )
        parts = [checks.database, checks.reboot_manager, checks.monitors, checks.connections]
        return HealthReport(
            healthy=all(part.ok for part in parts if part is not None),
            server_version=self.version,
            server_instance_id=self.reboot.instance_id,
            checks=checks,
        )

    async def _database_check(self) -> DatabaseCheck:
        head = schema.head_revision()
        database = self.components.database
        backend = database.backend if database is not None else None
        service = self.components.lifecycle()
        if service is None:
            reason = "not connected (the engine is being rebuilt)"
            return DatabaseCheck(ok=False, reason=reason, latency_ms=None, revision=None, head=head, backend=backend)
        bound = self.components.settings.db_connect_timeout_seconds + 1
        try:
            with anyio.fail_after(bound):
                probe = await service.probe()
        except errors.OrchestratorError as exc:
            return DatabaseCheck(
                ok=False, reason=exc.message, latency_ms=None, revision=None, head=head, backend=backend
            )
        except TimeoutError:
            reason = f"no answer within {bound:g} s"
            return DatabaseCheck(ok=False, reason=reason, latency_ms=None, revision=None, head=head, backend=backend)
        problem = schema.revision_problem(probe.revision)
        return DatabaseCheck(
            ok=problem is None,
            reason=problem,
            latency_ms=round(probe.latency_ms, 3),
            revision=probe.revision,
            head=head,
            backend=backend,
        )

    def _reboot_check(self) -> RebootManagerCheck:
        state = self.reboot.state
        ok = state == ServiceState.READY
        return RebootManagerCheck(
            ok=ok,
            reason=None if ok else f"service is {state.value}",
            state=state.value,
            problems=self.reboot.problems,
        )

    def _monitors_check(self) -> MonitorsCheck:
        supervisor = self.components.supervisor
        if supervisor is None:
            return MonitorsCheck(ok=False, reason="monitors are not running", monitors={})
        states = {
            name: MonitorState(alive=s.alive, runs=s.runs, failures=s.failures, last_error=s.last_error)
            for name, s in supervisor.status().items()
        }
        bad = [
            f"{name}: {s.last_error}" if s.last_error else f"{name}: not running"
            for name, s in sorted(states.items())
            if not s.alive or s.last_error
        ]
        return MonitorsCheck(ok=not bad, reason="; ".join(bad) or None, monitors=states)

    def _connections_check(self) -> ConnectionsCheck:
        database = self.components.database
        pool = pool_usage(database.pool_stats() if database is not None else {})
        breaker = self.components.breaker
        reasons = []
        if database is None:
            reasons.append("no database engine (the service is restarting)")
        elif pool.capacity and pool.checked_out >= pool.capacity:
            reasons.append(f"pool exhausted: {pool.checked_out} of {pool.capacity} connections checked out")
        if breaker.state != CircuitState.CLOSED:
            reasons.append(breaker.describe())
        return ConnectionsCheck(
            ok=not reasons,
            reason="; ".join(reasons) or None,
            in_flight_calls=self.reboot.other_calls(),
            pool=pool,
            circuit=breaker.state.value,
        )

    def _checked_out(self) -> int:
        database = self.components.database
        return database.pool_stats().get("checked_out", 0) if database is not None else 0

    # --- orchestrator_shutdown_prepare --------------------------------------------------------------
    async def shutdown_prepare(
        self,
        caller: Caller,
        *,
        check_active_tasks: bool,
        check_database_state: bool,
        check_client_connections: bool,
        begin_drain: bool,
        own_session_id: str | None,
    ) -> ShutdownReport:
        """Real numbers for a shutdown decision; ``begin_drain`` turns readiness off first (preStop).

        Raises:
            forbidden: not an admin.
        """
        require_admin(caller, "orchestrator_shutdown_prepare")
        if begin_drain and self.reboot.begin_drain():
            await self.events.record("drain_started", caller.actor, {"trigger": "orchestrator_shutdown_prepare"})
        unreadable: list[BlockingIssue] = []
        checks = await self._shutdown_checks(
            unreadable,
            claims=check_active_tasks,
            database=check_database_state,
            clients=check_client_connections,
            own_session_id=own_session_id,
        )
        issues = unreadable + _blocking_issues(checks)
        return ShutdownReport(
            ready_for_shutdown=not issues,
            blocking_issues=issues,
            checks=checks,
            draining=self.reboot.state == ServiceState.DRAINING or self.reboot.stop_requested,
        )

    async def _shutdown_checks(
        self,
        unreadable: list[BlockingIssue],
        *,
        claims: bool,
        database: bool,
        clients: bool,
        own_session_id: str | None,
    ) -> ShutdownChecks:
        """Each asked-for number, measured now; one that cannot be read becomes a blocking issue."""
        # This process's own transactions are counted before one is opened to read the database.
        own_open = self.components.uow.open_transactions if self.components.uow is not None else 0
        service = self.components.lifecycle()
        if (claims or database) and service is None:
            unreadable.append(BlockingIssue(check="database", message="the database engine is being rebuilt"))
        active = open_tx = None
        try:
            if claims and service is not None:
                active = await service.count_live_claims()
            backend = self.components.database.backend if self.components.database is not None else None
            if database and service is not None:
                postgres = backend == "postgresql"
                open_tx = await service.open_transactions(self.components.application_name) if postgres else own_open
        except errors.Unavailable as exc:
            unreadable.append(BlockingIssue(check="database", message=f"could not read the database: {exc.message}"))
        return ShutdownChecks(
            active_claims=active,
            in_flight_calls=self.reboot.other_calls() if clients else None,
            db_connections_checked_out=self._checked_out() if database else None,
            open_transactions=open_tx,
            mcp_sessions=len([s for s in self._mcp_session_ids() if s != own_session_id]) if clients else None,
        )

    # --- orchestrator_reconnect_test ----------------------------------------------------------------
    async def reconnect_test(
        self, caller: Caller, *, session_id: str | None, protocol_version: str | None, mcp_session_id: str | None
    ) -> ReconnectReport:
        """Proof that this caller reaches a working server: who it is, which process, its live claims.

        Raises:
            not_found: the named session does not exist. unavailable: the database is unreachable.
        """
        service = self.components.lifecycle()
        if service is None:
            raise errors.Unavailable("The service is restarting; retry shortly.")
        probe = await service.live_claims_of(caller, session_id)
        return ReconnectReport(
            protocol_version=protocol_version,
            mcp_session_id=mcp_session_id,
            actor=caller.actor,
            server_instance_id=self.reboot.instance_id,
            uptime_seconds=round(self.reboot.uptime_seconds(), 3),
            database=DatabaseRoundTrip(ok=True, latency_ms=round(probe.latency_ms, 3)),
            claims=probe.claims,
        )

    # --- restarts -----------------------------------------------------------------------------------
    async def restart(
        self, caller: Caller, *, graceful: bool, preserve_state: bool, timeout: float, reason: RestartReason
    ) -> RestartResult:
        return await self.restarts.restart(
            caller, graceful=graceful, preserve_state=preserve_state, timeout=timeout, reason=reason
        )

    async def restart_status(self, *, include_history: bool) -> RestartStatus:
        return await self.restarts.status(include_history=include_history)


def _blocking_issues(checks: ShutdownChecks) -> list[BlockingIssue]:
    """What stopping now would cut short (numbers that were not asked for are None and never block)."""
    found = {
        "active_claims": (
            checks.active_claims,
            "task(s) are claimed by working agents; their leases survive a shutdown, but the agents cannot "
            "report until a replica answers",
        ),
        "in_flight_calls": (checks.in_flight_calls, "other tool call(s) running"),
        "open_transactions": (checks.open_transactions, "transaction(s) open"),
        "mcp_sessions": (checks.mcp_sessions, "legacy MCP session(s) live in this process and must re-initialize"),
    }
    return [BlockingIssue(check=name, message=f"{count} {what}") for name, (count, what) in found.items() if count]
