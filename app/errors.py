"""The OrchestratorError tree: every condition a caller can act on, each with a stable ``code``.

Services and repositories raise these; the tool boundary turns them into ``isError`` results whose
``structuredContent`` is ``{"error": err.to_dict()}``. The message always says what to do next, because
the reader is usually a model that will retry on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class OrchestratorError(Exception):
    """Base of every error a caller may see. ``code`` is stable; ``message`` is for the reader."""

    code = "internal"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        allowed: Any = None,
        retryable: bool = False,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value
        self.allowed = allowed
        self.retryable = retryable
        self.hint = hint
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The wire form of §6: ``{code, message, field, value, allowed, retryable, hint, …details}``.

        ``hint`` is sent only when it is filled (the next call to make): a field that is always null
        costs every reader tokens and says nothing.
        """
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "value": self.value,
            "allowed": self.allowed,
            "retryable": self.retryable,
        }
        if self.hint:
            body["hint"] = self.hint
        body.update(self.details)
        return body


class InvalidArgument(OrchestratorError):
    code = "invalid_argument"


class NotFound(OrchestratorError):
    code = "not_found"


class TaskNotFound(NotFound):
    def __init__(self, task_id: str, *, field: str = "task_id") -> None:
        super().__init__(
            f"Task {task_id!r} does not exist; call orchestrator_query_tasks to list the tasks of the session.",
            field=field,
            value=task_id,
        )


class SessionNotFound(NotFound):
    def __init__(self, session_id: str, *, field: str = "session_id") -> None:
        super().__init__(
            f"Session {session_id!r} does not exist; call orchestrator_list_sessions to find one "
            "or orchestrator_initialize_session to start one.",
            field=field,
            value=session_id,
        )


class SessionArchived(InvalidArgument):
    """Work planned into, or taken from, an archived session: archived sessions are history (DESIGN §4.3
    cleanup archives a session with its tasks), so the session_id is not one work may go to."""

    def __init__(self, session_id: str, *, field: str = "session_id") -> None:
        super().__init__(
            f"Session {session_id} is archived: an archived session is read-only history (its tasks can still "
            "be read with session_id), so no work is planned into it or handed out from it. Call "
            "orchestrator_initialize_session(working_directory=…, agent=…) to start or resume an active "
            "session and plan the work there.",
            field=field,
            value=session_id,
            hint="orchestrator_initialize_session",
            details={"session_status": "archived"},
        )


class InvalidTransition(OrchestratorError):
    code = "invalid_transition"

    def __init__(self, task_id: str, current: str, requested: str, allowed: Sequence[str]) -> None:
        moves = ", ".join(allowed) if allowed else "none (the status is final)"
        super().__init__(
            f"Task {task_id} cannot move from {current} to {requested}; allowed from {current}: {moves}.",
            field="status",
            value=requested,
            allowed=list(allowed),
            details={"current": current, "requested": requested},
        )


class ArchivedTaskReadOnly(InvalidTransition):
    """An edit of an archived task that asks for no status change: refused as read-only, not as a move."""

    def __init__(self, task_id: str) -> None:
        OrchestratorError.__init__(
            self,
            f"Task {task_id} is archived, and archived tasks are read-only: nothing was changed. Plan a new "
            "task (orchestrator_plan_task) for further work on it.",
            field="status",
            value="archived",
            allowed=[],
            details={"current": "archived"},
        )


class LapsedClaimAtAttemptLimit(InvalidTransition):
    """A claim of a task whose holder's lease ran out for the last time ``ORCHESTRATOR_MAX_ATTEMPTS`` allows:
    that expiry fails the task, so nobody takes it over. The row is still in_progress; the sweeper fails it."""

    def __init__(
        self, task_id: str, holder: str | None, lease_expires_at: str | None, *, expiries: int, max_attempts: int
    ) -> None:
        OrchestratorError.__init__(
            self,
            f"Task {task_id} cannot be claimed: the lease of its holder {holder!r} ran out at {lease_expires_at}, "
            f"and that is expired lease {expiries} of the {max_attempts} allowed (ORCHESTRATOR_MAX_ATTEMPTS), so "
            "the task fails; it is still in_progress until the lease sweeper records the failure (unless its "
            "holder renews first). Take other work (orchestrator_next_task), or once it has failed retry it with "
            f"orchestrator_update_task(task_id={task_id!r}, status='pending').",
            field="status",
            value="in_progress",
            allowed=[],
            details={
                "current": "in_progress",
                "requested": "in_progress",
                "holder": holder,
                "lease_expires_at": lease_expires_at,
                "expiries": expiries,
                "max_attempts": max_attempts,
            },
        )


class VersionConflict(OrchestratorError):
    code = "version_conflict"

    def __init__(self, task_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"Task {task_id} is at version {actual}, not {expected}: someone changed it. Call "
            "orchestrator_query_tasks to read the current version, re-apply your change, and retry.",
            field="expected_version",
            value=expected,
            retryable=True,
            details={"expected": expected, "actual": actual},
        )


class ClaimedByOther(OrchestratorError):
    code = "claimed_by_other"

    def __init__(self, task_id: str, holder: str, lease_expires_at: str | None) -> None:
        super().__init__(
            f"Task {task_id} is claimed by {holder!r} until {lease_expires_at}; only the holder may change "
            "it. Pick another task (orchestrator_next_task) or wait for the lease to expire.",
            field="task_id",
            value=task_id,
            retryable=True,
            details={"holder": holder, "lease_expires_at": lease_expires_at},
        )


class NotClaimed(OrchestratorError):
    code = "not_claimed"


class DependenciesUnmet(OrchestratorError):
    code = "dependencies_unmet"

    def __init__(self, task_id: str, blocking: Sequence[str]) -> None:
        super().__init__(
            f"Task {task_id} is not ready: these dependencies are not completed: {', '.join(blocking)}. "
            "Complete them first, or pick a ready task with orchestrator_next_task.",
            field="task_id",
            value=task_id,
            details={"blocking": list(blocking)},
        )


class DependencyCycle(OrchestratorError):
    code = "dependency_cycle"

    def __init__(self, path: Sequence[str], *, field: str, value: str) -> None:
        """``value`` is the dependency (task id or sibling key) at ``field`` that would close the cycle."""
        super().__init__(
            f"This would close a cycle: {' -> '.join(path)}. Remove one of those links instead.",
            field=field,
            value=value,
            details={"cycle": list(path)},
        )


class ChildrenOpen(OrchestratorError):
    """A parent cannot be claimed or completed while any of its subtasks is not terminal (DESIGN §3)."""

    code = "children_open"

    def __init__(self, task_id: str, children: Sequence[tuple[str, str]], *, field: str = "task_id") -> None:
        listed = ", ".join(f"{child_id} ({status})" for child_id, status in children[:20])
        more = f" and {len(children) - 20} more" if len(children) > 20 else ""
        super().__init__(
            f"Task {task_id} waits for its {len(children)} open subtask(s): {listed}{more}. Work on those first "
            "(orchestrator_next_task hands them out); when the last one ends, roll them up with "
            f"orchestrator_synthesize_results(parent_task_id={task_id!r}, complete_parent=true).",
            field=field,
            value=task_id,
            hint="orchestrator_next_task",
            details={"children": [{"task_id": child_id, "status": status} for child_id, status in children]},
        )


class ArchiveWithOpenChildren(ChildrenOpen):
    """``update_task(status=archived)`` on a parent with open subtasks: archived is final, so they would stay
    open (and claimable) under an archived parent, the fault ``validate_structure`` reports."""

    def __init__(self, task_id: str, children: Sequence[tuple[str, str]]) -> None:
        listed = ", ".join(f"{child_id} ({status})" for child_id, status in children[:20])
        more = f" and {len(children) - 20} more" if len(children) > 20 else ""
        OrchestratorError.__init__(
            self,
            f"Task {task_id} has {len(children)} open subtask(s): {listed}{more}; archiving it alone would leave "
            f"them open under an archived parent. Archive the whole subtree with orchestrator_delete_task("
            f"task_id={task_id!r}), or end the subtasks first (orchestrator_cancel_task(task_id={task_id!r}, "
            "cascade=true) cancels them all), then archive.",
            field="status",
            value="archived",
            hint="orchestrator_delete_task",
            details={"children": [{"task_id": child_id, "status": status} for child_id, status in children]},
        )


class IdempotencyConflict(OrchestratorError):
    """A request_id reused by the same actor for another tool or with other arguments (DESIGN §3)."""

    code = "idempotency_conflict"

    def __init__(self, request_id: str, first_tool: str, *, same_tool: bool) -> None:
        what = "other arguments" if same_tool else f"another tool ({first_tool})"
        super().__init__(
            f"request_id {request_id!r} was first used for {first_tool} with {what}; a request_id names one "
            "operation. Use a new request_id for a new operation, or repeat the first call exactly to get its "
            "stored result.",
            field="request_id",
            value=request_id,
            details={"request_id": request_id, "first_tool": first_tool},
        )


class RateLimited(OrchestratorError):
    """The caller is over its call rate or its calls in flight (DESIGN §7); answered before any DB work."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: float) -> None:
        super().__init__(
            message,
            retryable=True,
            hint=f"retry after {retry_after_seconds:g} s",
            details={"retry_after_seconds": retry_after_seconds},
        )


class Forbidden(OrchestratorError):
    code = "forbidden"


class ScopeMissing(Forbidden):
    """The caller's credential lacks a scope; ``allowed`` and ``scope`` name it, ``field`` what needed it."""

    def __init__(self, message: str, *, scope: str, field: str, value: Any) -> None:
        super().__init__(message, field=field, value=value, allowed=[scope], details={"scope": scope})


class Unavailable(OrchestratorError):
    code = "unavailable"

    def __init__(self, message: str, *, retry_after_seconds: float = 1.0) -> None:
        super().__init__(
            message,
            retryable=True,
            hint=f"retry after {retry_after_seconds:g} s",
            details={"retry_after_seconds": retry_after_seconds},
        )


class Internal(OrchestratorError):
    code = "internal"

    def __init__(self, reference: str) -> None:
        super().__init__(
            f"An internal error occurred (reference {reference}); the operator can find it in the logs.",
            details={"reference": reference},
        )


class CompletionOutsideCompleteTask(InvalidTransition):
    """``update_task(status=completed)``: only complete_task (and synthesize_results) completes a task,
    because completion records a summary and an artifact (DESIGN §3)."""

    def __init__(self, task_id: str, current: str, allowed: Sequence[str]) -> None:
        moves = ", ".join(allowed) if allowed else "none (the status is final)"
        OrchestratorError.__init__(
            self,
            f"Task {task_id} cannot be completed with orchestrator_update_task: call orchestrator_complete_task"
            f"(task_id={task_id!r}, summary=..., detailed_work=..., next_action='complete') instead, which records "
            f"the summary and the work. Allowed here from {current}: {moves}.",
            field="status",
            value="completed",
            allowed=list(allowed),
            hint="orchestrator_complete_task",
            details={"current": current, "requested": "completed"},
        )


class ParentClosed(InvalidTransition):
    """Reopening a subtask whose parent is completed or archived: the parent would then be closed with an
    open subtask, which the rule "parents wait for their children" forbids (DESIGN §3)."""

    def __init__(self, task_id: str, current: str, requested: str, parent_id: str, parent_status: str) -> None:
        step = (
            f"reopen the parent first (orchestrator_update_task task_id={parent_id!r} status='pending' reason=...)"
            if parent_status == "completed"
            else "plan the work again as a new task (orchestrator_plan_task), since archived tasks are final"
        )
        OrchestratorError.__init__(
            self,
            f"Task {task_id} cannot move from {current} to {requested}: its parent {parent_id} is {parent_status}, "
            f"and a closed parent may not have open subtasks; {step}.",
            field="status",
            value=requested,
            allowed=[],
            details={
                "current": current,
                "requested": requested,
                "parent_id": parent_id,
                "parent_status": parent_status,
            },
        )
