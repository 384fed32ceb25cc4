"""The parts a warm restart tears down and rebuilds, owned in one place for the lifespan and the restart.

Those parts are the database engine and pool, the unit of work (behind the circuit breaker), the services
(built and installed by the composition root's ``assemble`` callback, which also returns the monitors
built over them), and the monitor supervisor. The lifespan calls the same steps at start-up and shutdown
that ``orchestrator_restart_server`` calls in between, so there is one way to build the stack.

Monitors run in a task that this stack owns (started in its task group, entered by the lifespan), not
in the task that asks for them: a restart runs inside a tool call's task, and a task group must be
left by the task that entered it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import TracebackType

import anyio
from anyio.abc import TaskGroup, TaskStatus

from app import errors
from app.db import schema
from app.db.circuit_breaker import CircuitBreaker
from app.db.engine import Database, create_database
from app.db.uow import ErrorSink, UnitOfWork
from app.domain.clock import Clock
from app.runtime.monitors import Monitor, MonitorSupervisor
from app.runtime.reboot_manager import RebootManager
from app.services.lifecycle import LifecycleService
from app.settings import Settings, redact_url

log = logging.getLogger("app.runtime")
READINESS_PROBE_TIMEOUT_SECONDS = 2.0
DATABASE_PROBLEM = "database"
SCHEMA_PROBLEM = "schema"

Assemble = Callable[[UnitOfWork], Sequence[Monitor]]


class _ReadinessListener:
    """Turns the circuit breaker's verdict into a readiness reason."""

    def __init__(self, reboot: RebootManager) -> None:
        self._reboot = reboot

    def circuit_opened(self, reason: str) -> None:
        self._reboot.report_problem(DATABASE_PROBLEM, reason)

    def circuit_closed(self) -> None:
        self._reboot.clear_problem(DATABASE_PROBLEM)


class _MonitorHost:
    """Keeps one supervisor entered in its own task until told to stop."""

    def __init__(self, supervisor: MonitorSupervisor) -> None:
        self.supervisor = supervisor
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with self.supervisor:
                task_status.started()
                await self._stop.wait()
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        self._stop.set()
        await self._stopped.wait()


class ComponentStack:
    """Engine → unit of work → services → monitors, each step callable alone by the lifespan or a restart."""

    def __init__(
        self,
        settings: Settings,
        reboot: RebootManager,
        clock: Clock,
        *,
        assemble: Assemble,
        disassemble: Callable[[], None],
        errors_sink: ErrorSink | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._reboot = reboot
        self._assemble = assemble
        self._disassemble = disassemble
        self._sink = errors_sink
        self.application_name = f"task-orchestrator:{reboot.instance_id}"
        self.breaker = CircuitBreaker(
            failure_threshold=settings.db_circuit_failure_threshold,
            max_backoff_seconds=settings.db_circuit_cooldown_seconds,
            listener=_ReadinessListener(reboot),
        )
        self._database: Database | None = None
        self._uow: UnitOfWork | None = None
        self._monitors: list[Monitor] = []
        self._host: _MonitorHost | None = None
        self._group: TaskGroup | None = None
        # False until a schema check has read the revision: a database unreachable at start-up (or during a
        # restart's schema check) leaves the check to the readiness probe, which runs it once it answers.
        self._schema_checked = False
        self._schema_lock = anyio.Lock()

    # --- what is live now ---------------------------------------------------------------------------
    @property
    def database(self) -> Database | None:
        return self._database

    @property
    def uow(self) -> UnitOfWork | None:
        return self._uow

    @property
    def supervisor(self) -> MonitorSupervisor | None:
        return self._host.supervisor if self._host is not None else None

    def lifecycle(self) -> LifecycleService | None:
        """The lifecycle service over the current unit of work (None while the engine is down)."""
        return LifecycleService(self._uow, self.clock) if self._uow is not None else None

    # --- the task group monitors live in (entered once, by the lifespan) -----------------------------
    async def __aenter__(self) -> ComponentStack:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            await self.stop_monitors()
            await self.dispose_engine()
        finally:
            assert self._group is not None
            self._group.cancel_scope.cancel()
            result = await self._group.__aexit__(exc_type, exc, tb)
            self._group = None
        return result

    # --- the steps ------------------------------------------------------------------------------------
    async def open_engine(self) -> None:
        """Build the engine and pool, the unit of work behind the circuit breaker, and the services."""
        if self._database is not None:
            return
        url = self.settings.resolved_database_url()
        database = create_database(
            url,
            pool_size=self.settings.db_pool_size,
            connect_timeout=self.settings.db_connect_timeout_seconds,
            statement_timeout=self.settings.db_statement_timeout_seconds,
            application_name=self.application_name,
            call_timeout=self.settings.db_timeout_seconds,
        )
        log.info("database_open", extra={"event": "database_open", "url": redact_url(url), "backend": database.backend})
        self.breaker.reset()
        self._database = database
        self._uow = UnitOfWork(database, errors_sink=self._sink, gate=self.breaker)
        self._monitors = list(self._assemble(self._uow))

    async def check_schema(self) -> None:
        """The schema check: the embedded SQLite default upgrades itself; PostgreSQL only with AUTO_MIGRATE.

        The revision is read through the unit of work, so an unreachable database is ``unavailable``; the
        check is then still owed (readiness says so) and :meth:`probe_database` runs it when the database
        answers. Checks never overlap (the start-up or restart one and the probe's).

        Raises:
            unavailable: the database is unreachable.
            SchemaNotAtHead: PostgreSQL is not at head and auto-migration is off (run ``task-orchestrator
                migrate``), or the database is ahead of this build.
        """
        async with self._schema_lock:
            database = self._require_database()
            service = self.lifecycle()
            assert service is not None, "the engine is open"
            self._schema_checked = False
            try:
                current = (await service.probe()).revision
            except errors.Unavailable as exc:
                self._reboot.report_problem(SCHEMA_PROBLEM, f"not checked yet: {exc.message}")
                raise
            try:
                await schema.ensure_at_head(database, auto_migrate=self.settings.auto_migrate, current=current)
            except schema.SchemaNotAtHead as exc:
                self._schema_checked = True  # from now on the probe follows the revision
                self._reboot.report_problem(SCHEMA_PROBLEM, str(exc))
                raise
            self._schema_checked = True
            self._reboot.clear_problem(SCHEMA_PROBLEM)

    async def start_monitors(self) -> None:
        if self._host is not None:
            return
        if self._group is None:
            raise RuntimeError("the component stack is not entered")
        host = _MonitorHost(MonitorSupervisor(self._reboot, self._monitors))
        await self._group.start(host.run, name="monitor-supervisor")
        self._host = host

    async def stop_monitors(self) -> None:
        host, self._host = self._host, None
        if host is not None:
            await host.stop()
            for monitor in self._monitors:  # monitors that hold a connection of their own (the LISTEN one)
                close = getattr(monitor, "aclose", None)
                if close is not None:
                    await close()

    async def dispose_engine(self) -> None:
        """Uninstall the services and close the pool (connections still checked out close on return)."""
        database, self._database = self._database, None
        self._uow = None
        self._monitors = []
        if database is not None:
            self._disassemble()
            await database.dispose()
            log.info("database_closed", extra={"event": "database_closed"})

    # --- probes -------------------------------------------------------------------------------------------
    @property
    def schema_owed(self) -> bool:
        """Whether the schema check of this engine is still to be made (the database was away for it)."""
        return self._database is not None and not self._schema_checked

    async def probe_database(self) -> str | None:
        """The readiness probe: None when a round trip works, else why not.

        It goes through the circuit breaker like any call: while the circuit is open it answers without
        touching the database, and after the cooldown it is the half-open probe that closes the circuit,
        so the service recovers even when no tool call arrives (a not-ready pod gets no traffic).
        """
        service = self.lifecycle()
        if service is None:
            return "not connected (the engine is being rebuilt)"
        try:
            with anyio.fail_after(READINESS_PROBE_TIMEOUT_SECONDS):
                probe = await service.probe()
        except errors.OrchestratorError as exc:
            return exc.message
        except TimeoutError:
            self.breaker.record_failure()
            return f"no answer within {READINESS_PROBE_TIMEOUT_SECONDS:g} s"
        if not self._schema_checked:
            return await self._owed_schema_check()
        # DESIGN §1: ready means the schema is at head, now, not only when the service started (a database
        # restored from an older backup, or migrated by a newer build, while the service runs).
        problem = schema.revision_problem(probe.revision)
        if problem is None:
            self._reboot.clear_problem(SCHEMA_PROBLEM)
        else:
            self._reboot.report_problem(SCHEMA_PROBLEM, problem)
        return None

    async def _owed_schema_check(self) -> str | None:
        """The schema check the start-up (or a restart) could not make, now that the database answers.

        Shielded: it may upgrade the schema (SQLite, AUTO_MIGRATE), which a probe client that hangs up
        must not interrupt. Its verdict is in readiness (the ``schema`` problem); None unless the database
        went away again.
        """
        with anyio.CancelScope(shield=True):
            try:
                await self.check_schema()
            except errors.Unavailable as exc:
                return exc.message
            except schema.SchemaNotAtHead:
                pass  # reported as the schema problem
            except Exception as exc:  # a failed upgrade: logged, and readiness says so until a check succeeds
                log.exception("schema_check_failed", extra={"event": "schema_check_failed"})
                self._reboot.report_problem(SCHEMA_PROBLEM, f"the schema check failed: {type(exc).__name__}: {exc}")
        return None

    def _require_database(self) -> Database:
        if self._database is None:
            raise RuntimeError("the database engine is not open")
        return self._database
