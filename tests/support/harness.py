"""Services wired to a real database with a manual clock: the tier between unit and end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.db.engine import Database, create_database
from app.db.uow import UnitOfWork
from app.domain.clock import ManualClock
from app.lifespan import Runtime, build_services
from app.observability.metrics import Metrics
from app.runtime.reboot_manager import RebootManager
from app.services.caller import ALL_SCOPES, SCOPE_READ, SCOPE_WRITE, Caller
from app.services.graph.planning import PlanTaskResult, SubtaskSpec
from app.services.graph.queries import QueryTasksResult
from app.services.graph.updates import TaskChanges, UpdateTaskResult
from app.services.work.completion import CompleteTaskResult
from app.settings import Settings
from app.tools.holder import ServiceHolder, Services


@dataclass
class Harness:
    database: Database
    uow: UnitOfWork
    clock: ManualClock
    services: Services
    metrics: Metrics
    settings: Settings

    @property
    def backend(self) -> str:
        return self.database.backend

    async def session(self, actor: str = "alice", working_directory: str = "/work/project") -> str:
        result = await self.services.sessions.initialize_session(
            caller(actor), working_directory=working_directory, name=None, description=None, new_session=False
        )
        return result.session.id

    async def plan(
        self,
        actor: str = "alice",
        *,
        parent: str | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> PlanTaskResult:
        spec = SubtaskSpec(**{"title": "A task", "description": "Do the thing.", **fields})
        return await self.services.planning.plan_task(
            caller(actor), spec, parent_task_id=parent, session_id=session_id, request_id=request_id
        )

    async def update(self, actor: str, task_id: str, *, reason: str | None = None, **changes: Any) -> UpdateTaskResult:
        """``orchestrator_update_task`` as ``actor`` (a status of in_progress claims the task)."""
        return await self.services.updates.update_task(
            caller(actor),
            task_id,
            TaskChanges(**changes),
            expected_version=None,
            reason=reason,
            force=False,
            request_id=None,
        )

    async def complete(self, actor: str, task_id: str) -> CompleteTaskResult:
        """``orchestrator_complete_task`` as ``actor`` with next_action=complete (only completion completes;
        a pending task is claimed implicitly)."""
        return await self.services.completion.complete_task(
            caller(actor),
            task_id,
            summary=f"Done by {actor}",
            detailed_work=f"Everything {actor} did.",
            next_action="complete",
            file_paths=[],
            artifact_type="general",
            force=False,
            request_id=None,
        )

    async def query(self, actor: str = "alice", *, session_id: str | None = None) -> QueryTasksResult:
        """Every task of the session (oldest first), through ``orchestrator_query_tasks``."""
        return await self.services.queries.query_tasks(
            caller(actor),
            session_id=session_id,
            statuses=[],
            task_types=[],
            specialist_types=[],
            complexities=[],
            priorities=[],
            parent_task_id=None,
            assigned_to=None,
            ready_only=False,
            search_text=None,
            created_after=None,
            created_before=None,
            include_children=False,
            include_artifacts=False,
            sort="created_at",
            order="asc",
            limit=100,
            offset=0,
            view="full",
        )

    async def close(self) -> None:
        await self.database.dispose()


def caller(actor: str = "alice", *, admin: bool = True) -> Caller:
    return Caller(actor=actor, scopes=ALL_SCOPES if admin else frozenset({SCOPE_READ, SCOPE_WRITE}))


def make_harness(url: str, **settings: Any) -> Harness:
    # Services tests run many writers at once on a shared 2-core machine: a minute per call, not the
    # production 10 s, so a slow moment is not a failure (the bound itself: tests/db/test_uow_resilience.py).
    settings.setdefault("db_timeout_seconds", 60.0)
    cfg = Settings(database_url=url, **settings)
    database = create_database(url, pool_size=cfg.db_pool_size, call_timeout=cfg.db_timeout_seconds)
    metrics = Metrics("test")
    uow = UnitOfWork(database, errors_sink=metrics)
    clock = ManualClock()
    holder = ServiceHolder(cfg, RebootManager(), metrics)
    runtime = Runtime(settings=cfg, holder=holder, clock=clock)
    return Harness(database, uow, clock, build_services(runtime, uow), metrics, cfg)
