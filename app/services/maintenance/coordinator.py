"""The maintenance coordinator: scan and fix, validate, and write the progress report or the handover.

It resolves the scope (one session, every session, or one task's subtree) and hands the work to
:mod:`app.services.maintenance.cleanup_scan` (scan_cleanup),
:mod:`app.services.maintenance.structure_validation` (read-only validate_structure) or
:mod:`app.services.maintenance.documents` (the ``report`` and ``handover`` artifacts).

A dry run never writes: it runs in a read-only transaction and reports what a real run would do (for the
documents: returns the text without storing it). Every real scan is recorded as a ``maintenance_run``
system event, whether an agent or the background monitor asked for it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app import errors
from app.db import schema
from app.db.models import Artifact, Task
from app.db.repositories import Repositories
from app.db.repositories.tasks import TaskScope
from app.db.uow import UnitOfWork
from app.domain.clock import Clock, iso
from app.domain.enums import ArtifactKind
from app.services.artifacts import new_artifact
from app.services.base import OutcomeSink, Service, ServiceConfig, Tx
from app.services.caller import Caller
from app.services.maintenance import cleanup_scan, documents
from app.services.maintenance.cleanup_scan import Finding
from app.services.maintenance.structure_validation import (
    StructureIssue,
    ValidationInput,
    ValidationLevel,
    validate_structure,
)
from app.services.session_resolution import resolve_session_id
from app.services.views import ArtifactView, View, artifact_view

Action = Literal["scan_cleanup", "validate_structure", "update_documentation", "prepare_handover"]
ScopeName = Literal["current_session", "full_project", "specific_subtask"]
TOOL = "orchestrator_maintenance_coordinator"
MAINTENANCE_ACTOR = "system:maintenance"


class MaintenanceResult(View):
    action: Action
    scope: ScopeName
    dry_run: bool
    found: list[Finding]
    fixed: list[Finding]
    issues: list[StructureIssue]
    artifact: ArtifactView | None = None
    summary: str


@dataclass(frozen=True)
class MaintenanceRequest:
    action: Action
    scope: ScopeName = "current_session"
    validation_level: ValidationLevel = "basic"
    target_task_id: str | None = None
    session_id: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class ResolvedScope:
    tasks: TaskScope
    label: str
    home_session_id: str | None  # where documents are stored
    root: Task | None  # specific_subtask only


def _check_request(request: MaintenanceRequest) -> None:
    """Raises ``invalid_argument`` when target_task_id and scope disagree."""
    if request.scope == "specific_subtask" and request.target_task_id is None:
        raise errors.InvalidArgument(
            "scope=specific_subtask needs target_task_id: pass the id of the task whose subtree to maintain.",
            field="target_task_id",
            value=None,
        )
    if request.scope != "specific_subtask" and request.target_task_id is not None:
        raise errors.InvalidArgument(
            f"target_task_id is only used with scope=specific_subtask (scope is {request.scope}); pass "
            "scope=specific_subtask or drop target_task_id.",
            field="target_task_id",
            value=request.target_task_id,
        )


def subtree_of(tasks: list[Task], root_id: str) -> list[str]:
    """``root_id`` and its descendants among ``tasks``; cycle-safe, since maintenance may meet a damaged graph."""
    children: dict[str, list[str]] = {}
    for task in tasks:
        if task.parent_id is not None:
            children.setdefault(task.parent_id, []).append(task.id)
    found, queue = [root_id], [root_id]
    seen = {root_id}
    while queue:
        for child in children.get(queue.pop(), []):
            if child not in seen:
                seen.add(child)
                found.append(child)
                queue.append(child)
    return found


async def resolve_scope(
    repos: Repositories, caller: Caller, request: MaintenanceRequest, *, needs_home: bool
) -> ResolvedScope:
    """The tasks the request covers and, for documents, the session that keeps them.

    Raises:
        not_found (session or target task), invalid_argument (no session known, or a session_id that is
        not the target task's).
    """
    if request.scope == "specific_subtask":
        assert request.target_task_id is not None  # _check_request
        root = await repos.tasks.get(request.target_task_id)
        if root is None:
            raise errors.TaskNotFound(request.target_task_id, field="target_task_id")
        if request.session_id is not None and request.session_id != root.session_id:
            raise errors.InvalidArgument(
                f"Task {root.id} belongs to session {root.session_id}, not {request.session_id}; omit session_id "
                "with scope=specific_subtask.",
                field="session_id",
                value=request.session_id,
            )
        members = subtree_of(await repos.tasks.list_in_scope(TaskScope(session_id=root.session_id)), root.id)
        return ResolvedScope(
            tasks=TaskScope(session_id=root.session_id, task_ids=frozenset(members)),
            label=f"subtree of {root.id} ({len(members)} task(s))",
            home_session_id=root.session_id,
            root=root,
        )
    if request.scope == "full_project":
        home = None
        if needs_home or request.session_id is not None:
            home = await resolve_session_id(repos, caller, request.session_id)
        return ResolvedScope(tasks=TaskScope(), label="full project (every session)", home_session_id=home, root=None)
    session_id = await resolve_session_id(repos, caller, request.session_id)
    return ResolvedScope(
        tasks=TaskScope(session_id=session_id), label=f"session {session_id}", home_session_id=session_id, root=None
    )


class MaintenanceService(Service):
    """Runs the maintenance actions for agents (the tool) and for the background monitor."""

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        *,
        stale_pending_days: int = 7,
        config: ServiceConfig | None = None,
        sink: OutcomeSink | None = None,
    ) -> None:
        super().__init__(uow, clock, config=config, sink=sink)
        self._policy = cleanup_scan.ScanPolicy(
            max_attempts=self.config.max_attempts,
            lease_seconds=self.config.lease_seconds,
            stale_pending_days=stale_pending_days,
        )

    async def maintenance_coordinator(
        self, caller: Caller, request: MaintenanceRequest, *, request_id: str | None
    ) -> MaintenanceResult:
        """Run one maintenance action over the requested scope.

        Raises:
            invalid_argument (target_task_id missing for specific_subtask or given for another scope; no
            session known), not_found (session or target task).
        """
        _check_request(request)
        if request.action == "validate_structure":
            return await self._validate(caller, request)
        if request.dry_run:
            now = self.clock.now()

            async def preview(repos: Repositories) -> MaintenanceResult:
                return await self._preview(repos, caller, request, now)

            return await self._read(preview)

        async def apply(tx: Tx) -> MaintenanceResult:
            return await self._apply(tx, request, trigger="tool")

        return await self._write(caller, TOOL, request_id, MaintenanceResult, apply)

    async def run_scheduled(self) -> MaintenanceResult:
        """The background monitor's pass: scan_cleanup over every session, with fixes."""
        request = MaintenanceRequest(action="scan_cleanup", scope="full_project")

        async def apply(tx: Tx) -> MaintenanceResult:
            return await self._apply(tx, request, trigger="monitor")

        return await self._write(
            Caller(actor=MAINTENANCE_ACTOR, system=True), "maintenance_monitor", None, MaintenanceResult, apply
        )

    # --- validate_structure ------------------------------------------------------------------------

    async def _validate(self, caller: Caller, request: MaintenanceRequest) -> MaintenanceResult:
        state = await schema.current_state(self.uow.database) if request.validation_level == "full_audit" else None

        async def work(repos: Repositories) -> MaintenanceResult:
            scope = await resolve_scope(repos, caller, request, needs_home=False)
            issues = await validate_structure(repos, ValidationInput(scope.tasks, request.validation_level, state))
            by_severity = Counter(i.severity for i in issues)
            verdict = (
                ", ".join(f"{by_severity[s]} {s}(s)" for s in ("error", "warning", "info") if by_severity[s])
                or "no issues"
            )
            return MaintenanceResult(
                action="validate_structure",
                scope=request.scope,
                dry_run=request.dry_run,
                found=[],
                fixed=[],
                issues=issues,
                summary=f"validate_structure ({request.validation_level}) of {scope.label}: {verdict}; "
                "nothing was changed (read-only).",
            )

        return await self._read(work)

    # --- the two paths ------------------------------------------------------------------------------

    async def _preview(
        self, repos: Repositories, caller: Caller, request: MaintenanceRequest, now: datetime
    ) -> MaintenanceResult:
        makes_documents = request.action in ("update_documentation", "prepare_handover")
        scope = await resolve_scope(repos, caller, request, needs_home=makes_documents)
        if makes_documents:
            art = await self._document(repos, request, scope, caller.actor, now)
            return self._document_result(request, scope, art, stored=False)
        found = await cleanup_scan.detect(repos, scope.tasks, now, self._policy)
        return MaintenanceResult(
            action=request.action,
            scope=request.scope,
            dry_run=True,
            found=found,
            fixed=[],
            issues=[],
            summary=f"scan_cleanup of {scope.label} (dry run): found {cleanup_scan.describe(found)}; nothing was "
            "changed.",
        )

    async def _apply(self, tx: Tx, request: MaintenanceRequest, *, trigger: str) -> MaintenanceResult:
        makes_documents = request.action in ("update_documentation", "prepare_handover")
        scope = await resolve_scope(tx.repos, tx.caller, request, needs_home=makes_documents)
        if makes_documents:
            art = await self._document(tx.repos, request, scope, tx.caller.actor, tx.now)
            await tx.repos.artifacts.insert(art)
            await tx.repos.sessions.touch(art.session_id, tx.now)
            return self._document_result(request, scope, art, stored=True)
        found, fixed = await cleanup_scan.scan_and_fix(tx, scope.tasks, self._policy)
        await tx.repos.system_events.insert(
            kind=cleanup_scan.MAINTENANCE_RUN,
            actor=tx.caller.actor,
            at=tx.now,
            data={
                "trigger": trigger,
                "scope": request.scope,
                "session_id": scope.tasks.session_id,
                "found": cleanup_scan.counts(found),
                "fixed": cleanup_scan.counts(fixed),
            },
        )
        return MaintenanceResult(
            action=request.action,
            scope=request.scope,
            dry_run=False,
            found=found,
            fixed=fixed,
            issues=[],
            summary=f"scan_cleanup of {scope.label}: found {cleanup_scan.describe(found)}; fixed "
            f"{cleanup_scan.describe(fixed)}"
            + ("; stale pending work is reported only." if any(f.kind == "stale_pending" for f in found) else "."),
        )

    # --- documents -----------------------------------------------------------------------------------

    async def _document(
        self, repos: Repositories, request: MaintenanceRequest, scope: ResolvedScope, actor: str, now: datetime
    ) -> Artifact:
        """The report or handover of the scope, as an artifact row (not yet stored)."""
        if request.scope == "full_project":
            stats = await repos.sessions.list_with_stats(now)
            rows = sorted(
                (s.session for s in stats if s.session.status == "active"), key=lambda r: (r.created_at, r.id)
            )
            parts = [documents.Part(row, TaskScope(session_id=row.id)) for row in rows]
        else:
            session_id = scope.tasks.session_id or ""
            row = await repos.sessions.get(session_id)
            if row is None:
                raise errors.SessionNotFound(session_id)
            parts = [documents.Part(row, scope.tasks)]
        spec = documents.DocumentSpec(parts=parts, scope_label=scope.label, actor=actor, now=now)
        if request.action == "update_documentation":
            kind, title = ArtifactKind.REPORT, "Progress report"
            content = await documents.progress_report(repos, spec)
        else:
            kind, title = ArtifactKind.HANDOVER, "Handover"
            content = await documents.handover(repos, spec)
        return new_artifact(
            session_id=scope.home_session_id or "",
            task_id=scope.root.id if scope.root is not None else None,
            kind=kind.value,
            name=f"{title}: {scope.label}, {iso(now)}",
            content=content,
            actor=actor,
            at=now,
        )

    @staticmethod
    def _document_result(
        request: MaintenanceRequest, scope: ResolvedScope, art: Artifact, *, stored: bool
    ) -> MaintenanceResult:
        what = "progress report" if request.action == "update_documentation" else "handover"
        if stored:
            summary = f"The {what} of {scope.label} is stored as {art.kind} artifact {art.id} ({art.size_bytes} bytes)."
        else:
            summary = f"Dry run: the {what} of {scope.label} was built but not stored (the artifact id is not saved)."
        return MaintenanceResult(
            action=request.action,
            scope=request.scope,
            dry_run=not stored,
            found=[],
            fixed=[],
            issues=[],
            artifact=artifact_view(art),
            summary=summary,
        )
