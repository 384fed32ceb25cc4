"""Every task-graph tool, sent its bad inputs over real HTTP, on both protocol eras and both backends.

One table drives it: each case names the tool, the arguments (with references into a small world of tasks
built first), and the error the agent must get: its ``code``, the exact ``field`` path, ``value`` and
``allowed`` where they mean something, and any extra details (holder, cycle, …). Every answer must also be
free of pydantic's text, tracebacks and SQL, and the whole database must be byte-for-byte unchanged after
every refused call. One server per era and backend runs the whole table.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PARSE_ERROR

from app.domain import enums
from app.services.graph.planning import MAX_PLANNED_TASKS
from app.services.graph.updates import UPDATABLE
from app.settings import Settings
from tests.support.mcp import TASK_GRAPH_TOOLS, call_ok
from tests.support.server import RunningServer, client, serve
from tests.support.snapshot import callers_rows, diff, snapshot

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The app as in ``conftest.server``, with a call-rate bucket one actor cannot empty: the tables send
    hundreds of calls as fast as they can, which is what the bucket is for (tests/e2e/test_fair_share.py)."""
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_format="console",
        rate_limit_per_minute=1_000_000,
        rate_limit_burst=100_000,
    )
    async with serve(settings) as running:
        yield running


ACTOR = "alice"
UNKNOWN_TASK = "task_00000000000000ff"
UNKNOWN_SESSION = "sess_00000000000000ff"
TASK_PATTERN = {"pattern": "^task_[0-9a-f]{16}$"}
SESSION_PATTERN = {"pattern": "^sess_[0-9a-f]{16}$"}
AGENT_PATTERN = {"pattern": "^[A-Za-z0-9._:@-]+$"}
REQUIRED = "a value (required)"
BOOLEAN = "a boolean (true or false)"
ISO_TIME = "an ISO 8601 date or date-time"
# The vocabularies as the app spells them (tests/domain checks them against DESIGN; here they are what
# an enum error must list as allowed).
STATUSES = enums.values(enums.TaskStatus)
TASK_TYPES = enums.values(enums.TaskType)
COMPLEXITIES = enums.values(enums.Complexity)
SPECIALISTS = enums.values(enums.SpecialistType)
PRIORITIES = enums.values(enums.Priority)
# What must never reach an agent: pydantic's raw text, Python internals, SQL and driver names.
LEAKS = (
    "errors.pydantic.dev",
    "input_value",
    "input_type",
    "validation error for",
    "Traceback",
    'File "',
    "SELECT ",
    "INSERT ",
    "UPDATE task",
    "DELETE FROM",
    "sqlalchemy",
    "asyncpg",
    "sqlite3",
    "IntegrityError",
)


class Ref(str):
    """The id of a world object, resolved when the case runs."""


class Absent:
    """Sentinel: this part of the error is not checked."""


ABSENT: Any = Absent()
NOT_NULL: Any = object()  # the part must be present and not null


def long(n: int) -> str:
    return "x" * n


def shown(text: str) -> str:
    """How the boundary shows an over-long string value (the first 200 characters and the length)."""
    return text if len(text) <= 200 else text[:200] + f"… ({len(text)} characters)"


@dataclass(frozen=True)
class Case:
    id: str
    tool: str
    arguments: dict[str, Any]
    code: str
    field: str | None
    value: Any = ABSENT
    allowed: Any = ABSENT
    details: dict[str, Any] = field(default_factory=dict)


def case(
    id: str,
    tool: str,
    arguments: dict[str, Any],
    code: str,
    field: str | None,
    value: Any = ABSENT,
    allowed: Any = ABSENT,
    **details: Any,
) -> Case:
    return Case(id, f"orchestrator_{tool}", arguments, code, field, value, allowed, details)


def invalid(
    id: str,
    tool: str,
    arguments: dict[str, Any],
    field: str,
    value: Any = ABSENT,
    allowed: Any = ABSENT,
    **details: Any,
) -> Case:
    return case(id, tool, arguments, "invalid_argument", field, value, allowed, **details)


def plan_args(**extra: Any) -> dict[str, Any]:
    return {"title": "A task", "description": "Do it.", **extra}


def sub(title: str = "Sub", **extra: Any) -> dict[str, Any]:
    return {"title": title, "description": "Do it.", **extra}


def big_plan(total: int) -> list[dict[str, Any]]:
    """Subtasks that make ``total`` tasks with the root (100 children, grandchildren spread over them)."""
    grandchildren = total - 101
    return [
        sub(f"c{i}", subtasks=[sub(f"g{i}.{j}") for j in range(grandchildren // 100 + (i < grandchildren % 100))])
        for i in range(100)
    ]


SESSION = [
    invalid("session-empty-directory", "initialize_session", {"working_directory": ""}, "working_directory", "", {"min_length": 1}),
    invalid("session-long-directory", "initialize_session", {"working_directory": long(1025)}, "working_directory", shown(long(1025)), {"max_length": 1024}),
    invalid("session-empty-name", "initialize_session", {"name": ""}, "name", "", {"min_length": 1}),
    invalid("session-long-name", "initialize_session", {"name": long(201)}, "name", shown(long(201)), {"max_length": 200}),
    invalid("session-long-description", "initialize_session", {"description": long(5001)}, "description", shown(long(5001)), {"max_length": 5000}),
    invalid("session-new-not-bool", "initialize_session", {"new_session": "maybe"}, "new_session", "maybe", BOOLEAN),
    invalid("session-directory-object", "initialize_session", {"working_directory": {"path": "/x"}}, "working_directory", {"path": "/x"}, "a string"),
    invalid("session-agent-pattern", "initialize_session", {"agent": "two words"}, "agent", "two words", AGENT_PATTERN),
    invalid("session-agent-long", "initialize_session", {"agent": long(65)}, "agent", long(65), {"max_length": 64}),
    invalid("session-unknown-argument", "initialize_session", {"working_dir": "/x"}, "working_dir", "/x", ["agent", "description", "name", "new_session", "working_directory"]),
]  # fmt: skip

PLAN = [
    invalid("plan-missing-title", "plan_task", {"description": "d"}, "title", None, REQUIRED),
    invalid("plan-empty-title", "plan_task", plan_args(title=""), "title", "", {"min_length": 1}),
    invalid("plan-long-title", "plan_task", plan_args(title=long(501)), "title", shown(long(501)), {"max_length": 500}),
    invalid("plan-title-number", "plan_task", plan_args(title=42), "title", 42, "a string"),
    invalid("plan-empty-description", "plan_task", plan_args(description=""), "description", "", {"min_length": 1}),
    invalid("plan-long-description", "plan_task", plan_args(description=long(20001)), "description", shown(long(20001)), {"max_length": 20000}),
    invalid("plan-task-type", "plan_task", plan_args(task_type="epic"), "task_type", "epic", TASK_TYPES),
    invalid("plan-complexity", "plan_task", plan_args(complexity="huge"), "complexity", "huge", COMPLEXITIES),
    invalid("plan-specialist", "plan_task", plan_args(specialist_type="wizard"), "specialist_type", "wizard", SPECIALISTS),
    invalid("plan-priority", "plan_task", plan_args(priority="urgent"), "priority", "urgent", PRIORITIES),
    invalid("plan-priority-case", "plan_task", plan_args(priority="HIGH"), "priority", "HIGH", PRIORITIES),
    invalid("plan-empty-effort", "plan_task", plan_args(estimated_effort=""), "estimated_effort", "", {"min_length": 1}),
    invalid("plan-due-date", "plan_task", plan_args(due_date="tomorrow"), "due_date", "tomorrow", ISO_TIME),
    invalid("plan-context-string", "plan_task", plan_args(context="not json"), "context", "not json", "an object"),
    invalid("plan-context-list", "plan_task", plan_args(context=[1, 2]), "context", [1, 2], "an object"),
    invalid("plan-dependencies-object", "plan_task", plan_args(dependencies={"a": 1}), "dependencies", {"a": 1}, "an array"),
    invalid("plan-dependency-pattern", "plan_task", plan_args(dependencies=[Ref("pending"), "nope"]), "dependencies[1]", "nope", TASK_PATTERN),
    invalid("plan-too-many-dependencies", "plan_task", plan_args(dependencies=[UNKNOWN_TASK] * 101), "dependencies", ABSENT, {"max_length": 100}),
    case("plan-unknown-dependency", "plan_task", plan_args(dependencies=[Ref("pending"), Ref("pending"), UNKNOWN_TASK]), "not_found", "dependencies[2]", UNKNOWN_TASK),
    invalid("plan-foreign-dependency", "plan_task", plan_args(dependencies=[Ref("foreign")]), "dependencies[0]", Ref("foreign")),
    invalid("plan-parent-pattern", "plan_task", plan_args(parent_task_id="task_XYZ"), "parent_task_id", "task_XYZ", TASK_PATTERN),
    case("plan-unknown-parent", "plan_task", plan_args(parent_task_id=UNKNOWN_TASK), "not_found", "parent_task_id", UNKNOWN_TASK),
    invalid("plan-archived-parent", "plan_task", plan_args(parent_task_id=Ref("archived")), "parent_task_id", Ref("archived"), ["pending", "in_progress", "blocked"]),
    invalid("plan-completed-parent", "plan_task", plan_args(parent_task_id=Ref("completed")), "parent_task_id", Ref("completed"), ["pending", "in_progress", "blocked"]),
    invalid("plan-foreign-parent", "plan_task", plan_args(parent_task_id=Ref("foreign"), session_id=Ref("session")), "parent_task_id", Ref("foreign")),
    invalid("plan-subtask-empty-title", "plan_task", plan_args(subtasks=[sub(), sub("")]), "subtasks[1].title", "", {"min_length": 1}),
    invalid("plan-subtask-priority", "plan_task", plan_args(subtasks=[sub(priority="urgent")]), "subtasks[0].priority", "urgent", PRIORITIES),
    invalid("plan-subtask-due-date", "plan_task", plan_args(subtasks=[sub(due_date="31/12/2026")]), "subtasks[0].due_date", "31/12/2026", ISO_TIME),
    invalid("plan-nested-missing-description", "plan_task", plan_args(subtasks=[sub(subtasks=[{"title": "b"}])]), "subtasks[0].subtasks[0].description", None, REQUIRED),
    invalid("plan-subtask-unknown-field", "plan_task", plan_args(subtasks=[sub(parent_id="x")]), "subtasks[0].parent_id", "x", "no such field"),
    invalid("plan-subtasks-object", "plan_task", plan_args(subtasks={"title": "t"}), "subtasks", {"title": "t"}, "an array"),
    invalid("plan-subtask-not-object", "plan_task", plan_args(subtasks=["just a title"]), "subtasks[0]", "just a title", "an object"),
    invalid("plan-duplicate-key", "plan_task", plan_args(subtasks=[sub(key="k"), sub(key="k")]), "subtasks[1].key", "k"),
    invalid("plan-unknown-key", "plan_task", plan_args(subtasks=[sub(key="a"), sub(depends_on=["a", "b"])]), "subtasks[1].depends_on[1]", "b", ["a"]),
    invalid("plan-later-sibling-key", "plan_task", plan_args(subtasks=[sub(depends_on=["b"]), sub(key="b")]), "subtasks[0].depends_on[0]", "b", []),
    case("plan-subtask-unknown-dependency", "plan_task", plan_args(subtasks=[sub(subtasks=[sub(dependencies=[UNKNOWN_TASK])])]), "not_found", "subtasks[0].subtasks[0].dependencies[0]", UNKNOWN_TASK),
    invalid("plan-subtask-foreign-dependency", "plan_task", plan_args(subtasks=[sub(dependencies=[Ref("foreign")])]), "subtasks[0].dependencies[0]", Ref("foreign")),
    invalid("plan-too-many-tasks", "plan_task", plan_args(subtasks=big_plan(MAX_PLANNED_TASKS + 1)), "subtasks", MAX_PLANNED_TASKS + 1, NOT_NULL),
    invalid("plan-session-pattern", "plan_task", plan_args(session_id="session-1"), "session_id", "session-1", SESSION_PATTERN),
    case("plan-unknown-session", "plan_task", plan_args(session_id=UNKNOWN_SESSION), "not_found", "session_id", UNKNOWN_SESSION),
    invalid("plan-no-current-session", "plan_task", plan_args(agent="newcomer"), "session_id", None),
    invalid("plan-empty-request-id", "plan_task", plan_args(request_id=""), "request_id", "", {"min_length": 1}),
    invalid("plan-long-request-id", "plan_task", plan_args(request_id=long(65)), "request_id", long(65), {"max_length": 64}),
    case("plan-request-id-of-another-tool", "plan_task", plan_args(request_id="world-edit"), "idempotency_conflict", "request_id", "world-edit"),
    invalid("plan-unknown-argument", "plan_task", plan_args(parent_id=Ref("pending")), "parent_id", Ref("pending"), NOT_NULL),
]  # fmt: skip

UPDATE = [
    invalid("update-missing-task-id", "update_task", {"title": "x"}, "task_id", None, REQUIRED),
    invalid("update-task-id-pattern", "update_task", {"task_id": "TASK_1", "title": "x"}, "task_id", "TASK_1", TASK_PATTERN),
    invalid("update-task-id-number", "update_task", {"task_id": 7, "title": "x"}, "task_id", 7, "a string"),
    case("update-unknown-task", "update_task", {"task_id": UNKNOWN_TASK, "title": "x"}, "not_found", "task_id", UNKNOWN_TASK),
    invalid("update-nothing", "update_task", {"task_id": Ref("pending")}, "task_id", Ref("pending"), list(UPDATABLE)),
    invalid("update-only-reason", "update_task", {"task_id": Ref("pending"), "reason": "why", "expected_version": 1}, "task_id", Ref("pending"), list(UPDATABLE)),
    invalid("update-status-enum", "update_task", {"task_id": Ref("pending"), "status": "done"}, "status", "done", STATUSES),
    invalid("update-complexity-enum", "update_task", {"task_id": Ref("pending"), "complexity": "huge"}, "complexity", "huge", COMPLEXITIES),
    invalid("update-specialist-enum", "update_task", {"task_id": Ref("pending"), "specialist_type": "wizard"}, "specialist_type", "wizard", SPECIALISTS),
    invalid("update-priority-enum", "update_task", {"task_id": Ref("pending"), "priority": "urgent"}, "priority", "urgent", PRIORITIES),
    invalid("update-empty-title", "update_task", {"task_id": Ref("pending"), "title": ""}, "title", "", {"min_length": 1}),
    invalid("update-long-title", "update_task", {"task_id": Ref("pending"), "title": long(501)}, "title", shown(long(501)), {"max_length": 500}),
    invalid("update-long-effort", "update_task", {"task_id": Ref("pending"), "estimated_effort": long(101)}, "estimated_effort", long(101), {"max_length": 100}),
    invalid("update-empty-reason", "update_task", {"task_id": Ref("pending"), "title": "x", "reason": ""}, "reason", "", {"min_length": 1}),
    invalid("update-due-date", "update_task", {"task_id": Ref("pending"), "due_date": "31/12/2026"}, "due_date", "31/12/2026", ISO_TIME),
    invalid("update-context-list", "update_task", {"task_id": Ref("pending"), "context": [1]}, "context", [1], "an object"),
    invalid("update-version-zero", "update_task", {"task_id": Ref("pending"), "title": "x", "expected_version": 0}, "expected_version", 0, {"ge": 1}),
    invalid("update-version-negative", "update_task", {"task_id": Ref("pending"), "title": "x", "expected_version": -3}, "expected_version", -3, {"ge": 1}),
    invalid("update-version-string", "update_task", {"task_id": Ref("pending"), "title": "x", "expected_version": "one"}, "expected_version", "one", "an integer"),
    invalid("update-force-string", "update_task", {"task_id": Ref("pending"), "title": "x", "force": "maybe"}, "force", "maybe", BOOLEAN),
    case("update-stale-version", "update_task", {"task_id": Ref("edited"), "title": "x", "expected_version": 1}, "version_conflict", "expected_version", 1, expected=1, actual=2),
    case("update-archived-to-pending", "update_task", {"task_id": Ref("archived"), "status": "pending"}, "invalid_transition", "status", "pending", [], current="archived", requested="pending"),
    case("update-archived-title", "update_task", {"task_id": Ref("archived"), "title": "rewrite history"}, "invalid_transition", "status", ABSENT, [], current="archived"),
    case("update-pending-to-failed", "update_task", {"task_id": Ref("pending"), "status": "failed"}, "invalid_transition", "status", "failed", ["in_progress", "blocked", "completed", "cancelled", "archived"], current="pending", requested="failed"),
    case("update-completed-to-blocked", "update_task", {"task_id": Ref("completed"), "status": "blocked"}, "invalid_transition", "status", "blocked", ["pending", "archived"], current="completed", requested="blocked"),
    invalid("update-reopen-without-reason", "update_task", {"task_id": Ref("completed"), "status": "pending"}, "reason", None),
    case("update-claimed-by-other", "update_task", {"task_id": Ref("claimed"), "status": "blocked"}, "claimed_by_other", "task_id", Ref("claimed"), holder="bob", lease_expires_at=NOT_NULL),
    case("update-to-completed", "update_task", {"task_id": Ref("pending"), "status": "completed"}, "invalid_transition", "status", "completed", ["in_progress", "blocked", "cancelled", "archived"], current="pending", requested="completed"),
    case("update-claim-unmet-dependencies", "update_task", {"task_id": Ref("dep_b"), "status": "in_progress"}, "dependencies_unmet", "task_id", Ref("dep_b"), blocking=[Ref("dep_a")]),
    case("update-dependency-cycle", "update_task", {"task_id": Ref("dep_a"), "add_dependencies": [Ref("dep_b")]}, "dependency_cycle", "add_dependencies[0]", Ref("dep_b"), ABSENT, cycle=[Ref("dep_a"), Ref("dep_b"), Ref("dep_a")]),
    case("update-dependency-cycle-third", "update_task", {"task_id": Ref("dep_a"), "add_dependencies": [Ref("pending"), Ref("pending"), Ref("dep_b")]}, "dependency_cycle", "add_dependencies[2]", Ref("dep_b"), ABSENT, cycle=[Ref("dep_a"), Ref("dep_b"), Ref("dep_a")]),
    case("update-self-dependency", "update_task", {"task_id": Ref("pending"), "add_dependencies": [Ref("pending")]}, "dependency_cycle", "add_dependencies[0]", Ref("pending"), ABSENT, cycle=[Ref("pending"), Ref("pending")]),
    case("update-unknown-dependency", "update_task", {"task_id": Ref("pending"), "add_dependencies": [Ref("dep_a"), Ref("dep_a"), UNKNOWN_TASK]}, "not_found", "add_dependencies[2]", UNKNOWN_TASK),
    invalid("update-foreign-dependency", "update_task", {"task_id": Ref("pending"), "add_dependencies": [Ref("foreign")]}, "add_dependencies[0]", Ref("foreign")),
    invalid("update-dependency-pattern", "update_task", {"task_id": Ref("pending"), "add_dependencies": ["bad"]}, "add_dependencies[0]", "bad", TASK_PATTERN),
    invalid("update-dependencies-object", "update_task", {"task_id": Ref("pending"), "add_dependencies": {"id": "x"}}, "add_dependencies", {"id": "x"}, "an array"),
    invalid("update-remove-pattern", "update_task", {"task_id": Ref("pending"), "remove_dependencies": [Ref("dep_a"), "nope"]}, "remove_dependencies[1]", "nope", TASK_PATTERN),
    case("update-request-id-of-another-tool", "update_task", {"task_id": Ref("pending"), "title": "x", "request_id": "world-plan"}, "idempotency_conflict", "request_id", "world-plan"),
    invalid("update-unknown-argument", "update_task", {"task_id": Ref("pending"), "state": "completed"}, "state", "completed", NOT_NULL),
]  # fmt: skip

DELETE = [
    invalid("delete-missing-task-id", "delete_task", {}, "task_id", None, REQUIRED),
    invalid("delete-task-id-pattern", "delete_task", {"task_id": "task_1"}, "task_id", "task_1", TASK_PATTERN),
    case("delete-unknown-task", "delete_task", {"task_id": UNKNOWN_TASK}, "not_found", "task_id", UNKNOWN_TASK),
    case("delete-hard-unknown-task", "delete_task", {"task_id": UNKNOWN_TASK, "archive_instead": False}, "not_found", "task_id", UNKNOWN_TASK),
    invalid("delete-archive-not-bool", "delete_task", {"task_id": Ref("pending"), "archive_instead": "perhaps"}, "archive_instead", "perhaps", BOOLEAN),
    invalid("delete-force-list", "delete_task", {"task_id": Ref("pending"), "force": [True]}, "force", [True], BOOLEAN),
    invalid("delete-hard-with-children", "delete_task", {"task_id": Ref("parent"), "archive_instead": False}, "force", False),
    invalid("delete-hard-with-dependents", "delete_task", {"task_id": Ref("dep_a"), "archive_instead": False}, "force", False, dependents=[Ref("dep_b")]),
    case("delete-archive-claimed-by-other", "delete_task", {"task_id": Ref("claimed")}, "claimed_by_other", "task_id", Ref("claimed"), holder="bob", lease_expires_at=NOT_NULL),
    case("delete-hard-claimed-by-other", "delete_task", {"task_id": Ref("claimed"), "archive_instead": False}, "claimed_by_other", "task_id", Ref("claimed"), holder="bob"),
    case("delete-archive-subtree-claimed-by-other", "delete_task", {"task_id": Ref("held_parent")}, "claimed_by_other", "task_id", Ref("held_child"), holder="bob"),
    case("delete-request-id-of-another-tool", "delete_task", {"task_id": Ref("pending"), "request_id": "world-edit"}, "idempotency_conflict", "request_id", "world-edit"),
    invalid("delete-unknown-argument", "delete_task", {"task_id": Ref("pending"), "hard": True}, "hard", True, ["agent", "archive_instead", "force", "request_id", "task_id"]),
]  # fmt: skip

CANCEL = [
    invalid("cancel-missing-task-id", "cancel_task", {"reason": "r"}, "task_id", None, REQUIRED),
    invalid("cancel-task-id-pattern", "cancel_task", {"task_id": "sess_0000000000000000"}, "task_id", "sess_0000000000000000", TASK_PATTERN),
    case("cancel-unknown-task", "cancel_task", {"task_id": UNKNOWN_TASK}, "not_found", "task_id", UNKNOWN_TASK),
    case("cancel-completed", "cancel_task", {"task_id": Ref("completed"), "reason": "late"}, "invalid_transition", "status", "cancelled", ["pending", "archived"], current="completed", requested="cancelled"),
    case("cancel-archived", "cancel_task", {"task_id": Ref("archived")}, "invalid_transition", "status", "cancelled", [], current="archived"),
    case("cancel-claimed-by-other", "cancel_task", {"task_id": Ref("claimed")}, "claimed_by_other", "task_id", Ref("claimed"), holder="bob", lease_expires_at=NOT_NULL),
    case("cancel-cascade-into-other-claim", "cancel_task", {"task_id": Ref("held_parent"), "cascade": True}, "claimed_by_other", "task_id", Ref("held_child"), holder="bob"),
    invalid("cancel-empty-reason", "cancel_task", {"task_id": Ref("pending"), "reason": ""}, "reason", "", {"min_length": 1}),
    invalid("cancel-long-reason", "cancel_task", {"task_id": Ref("pending"), "reason": long(2001)}, "reason", shown(long(2001)), {"max_length": 2000}),
    invalid("cancel-cascade-not-bool", "cancel_task", {"task_id": Ref("pending"), "cascade": "yes please"}, "cascade", "yes please", BOOLEAN),
    invalid("cancel-preserve-not-bool", "cancel_task", {"task_id": Ref("pending"), "preserve_work": 3}, "preserve_work", 3, BOOLEAN),
    case("cancel-request-id-of-another-tool", "cancel_task", {"task_id": Ref("pending"), "request_id": "world-plan"}, "idempotency_conflict", "request_id", "world-plan"),
]  # fmt: skip

QUERY = [
    invalid("query-limit-zero", "query_tasks", {"limit": 0}, "limit", 0, {"ge": 1}),
    invalid("query-limit-501", "query_tasks", {"limit": 501}, "limit", 501, {"le": 500}),
    invalid("query-limit-string", "query_tasks", {"limit": "many"}, "limit", "many", "an integer"),
    invalid("query-limit-fraction", "query_tasks", {"limit": 2.5}, "limit", 2.5, "an integer"),
    invalid("query-offset-negative", "query_tasks", {"offset": -1}, "offset", -1, {"ge": 0}),
    invalid("query-status-enum", "query_tasks", {"status": ["pending", "done"]}, "status[1]", "done", STATUSES),
    invalid("query-status-object", "query_tasks", {"status": {"pending": True}}, "status", {"pending": True}, "an array"),
    invalid("query-status-too-many", "query_tasks", {"status": ["pending"] * 8}, "status", ["pending"] * 8, {"max_length": 7}),
    invalid("query-task-type-enum", "query_tasks", {"task_type": ["epic"]}, "task_type[0]", "epic", TASK_TYPES),
    invalid("query-specialist-enum", "query_tasks", {"specialist_type": ["coder", "wizard"]}, "specialist_type[1]", "wizard", SPECIALISTS),
    invalid("query-complexity-enum", "query_tasks", {"complexity": ["huge"]}, "complexity[0]", "huge", COMPLEXITIES),
    invalid("query-priority-enum", "query_tasks", {"priority": ["urgent"]}, "priority[0]", "urgent", PRIORITIES),
    invalid("query-sort-enum", "query_tasks", {"sort": "title"}, "sort", "title", ["created_at", "updated_at", "priority", "due_date"]),
    invalid("query-order-enum", "query_tasks", {"order": "sideways"}, "order", "sideways", ["asc", "desc"]),
    invalid("query-empty-search", "query_tasks", {"search_text": ""}, "search_text", "", {"min_length": 1}),
    invalid("query-long-search", "query_tasks", {"search_text": long(501)}, "search_text", shown(long(501)), {"max_length": 500}),
    invalid("query-search-without-words", "query_tasks", {"search_text": "?!"}, "search_text", "?!"),
    invalid("query-created-after", "query_tasks", {"created_after": "yesterday"}, "created_after", "yesterday", ISO_TIME),
    invalid("query-created-before", "query_tasks", {"created_before": [2026]}, "created_before", [2026], ISO_TIME),
    invalid("query-empty-assignee", "query_tasks", {"assigned_to": ""}, "assigned_to", "", {"min_length": 1}),
    invalid("query-parent-pattern", "query_tasks", {"parent_task_id": "parent"}, "parent_task_id", "parent", TASK_PATTERN),
    invalid("query-children-not-bool", "query_tasks", {"include_children": "sure"}, "include_children", "sure", BOOLEAN),
    invalid("query-session-pattern", "query_tasks", {"session_id": "sess_XYZ"}, "session_id", "sess_XYZ", SESSION_PATTERN),
    case("query-unknown-session", "query_tasks", {"session_id": UNKNOWN_SESSION}, "not_found", "session_id", UNKNOWN_SESSION),
    invalid("query-no-current-session", "query_tasks", {"agent": "newcomer"}, "session_id", None),
    invalid("query-unknown-argument", "query_tasks", {"statuses": ["pending"]}, "statuses", ["pending"], NOT_NULL),
]  # fmt: skip

CASES = [*SESSION, *PLAN, *UPDATE, *DELETE, *CANCEL, *QUERY]


def test_the_table_covers_every_task_graph_tool_with_unique_ids() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    counts = {tool: sum(c.tool == tool for c in CASES) for tool in {c.tool for c in CASES}}
    assert set(counts) == TASK_GRAPH_TOOLS
    assert min(counts.values()) >= 10


async def build_world(c: Client) -> dict[str, str]:
    """The tasks the cases point at; ids by name. alice works in one session, bob in another."""
    ids: dict[str, str] = {}
    bob = {"agent": "bob"}
    ids["foreign_session"] = (await call_ok(c, "orchestrator_initialize_session", working_directory="/w/b", **bob))[
        "session"
    ]["id"]
    ids["foreign"] = (await call_ok(c, "orchestrator_plan_task", **plan_args(title="Bob's"), **bob))["task"]["id"]
    me = {"agent": ACTOR}
    ids["session"] = (await call_ok(c, "orchestrator_initialize_session", working_directory="/w/a", **me))["session"][
        "id"
    ]

    async def plan(title: str, **extra: Any) -> str:
        return str((await call_ok(c, "orchestrator_plan_task", **plan_args(title=title, **extra), **me))["task"]["id"])

    async def update(task_id: str, **changes: Any) -> None:
        await call_ok(c, "orchestrator_update_task", task_id=task_id, **{"agent": ACTOR, **changes})

    ids["pending"] = await plan("pending", request_id="world-plan")
    ids["edited"] = await plan("edited")
    await update(ids["edited"], title="edited once", request_id="world-edit")
    ids["completed"] = await plan("completed")
    await call_ok(
        c,
        "orchestrator_complete_task",
        task_id=ids["completed"],
        summary="Done.",
        detailed_work="All of it.",
        next_action="complete",
        agent=ACTOR,
    )
    ids["archived"] = await plan("archived")
    await call_ok(c, "orchestrator_delete_task", task_id=ids["archived"], **me)
    ids["claimed"] = await plan("claimed")
    await update(ids["claimed"], status="in_progress", agent="bob")
    ids["parent"] = await plan("parent")
    ids["child"] = await plan("child", parent_task_id=ids["parent"])
    ids["dep_a"] = await plan("dep_a")
    ids["dep_b"] = await plan("dep_b", dependencies=[ids["dep_a"]])
    ids["held_parent"] = await plan("held_parent")
    ids["held_child"] = await plan("held_child", parent_task_id=ids["held_parent"])
    await update(ids["held_child"], status="in_progress", agent="bob")
    return ids


def resolve(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, Ref):
        return ids[str(value)]
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


def problems_with(c: Case, result: Any, ids: dict[str, str]) -> list[str]:
    """What is wrong with the answer to ``c`` (empty when it is exactly the expected refusal)."""
    found: list[str] = []
    text = result.content[0].text if result.content else ""
    for leak in LEAKS:
        if leak in text:
            found.append(f"leaks {leak!r}")
    if not result.is_error or not isinstance(result.structured_content, dict):
        return [*found, f"not an error: {text[:300]}"]
    if json.loads(text) != result.structured_content:
        found.append("text and structuredContent differ")
    error = result.structured_content.get("error", {})
    missing = {"code", "message", "field", "value", "allowed", "retryable"} - set(error)
    if missing:
        found.append(f"envelope lacks {sorted(missing)}")
    if "hint" in error and not (isinstance(error["hint"], str) and error["hint"]):
        found.append(f"hint sent but not filled: {error['hint']!r}")
    expected: dict[str, Any] = {"code": c.code, "field": c.field, "value": c.value, "allowed": c.allowed, **c.details}
    for key, want in expected.items():
        if want is ABSENT:
            continue
        got = error.get(key, ABSENT)
        if want is NOT_NULL:
            if got is ABSENT or got is None or got == []:
                found.append(f"{key} missing")
        elif got != resolve(want, ids):
            found.append(f"{key}: expected {resolve(want, ids)!r}, got {got!r}")
    if not str(error.get("message", "")).strip():
        found.append("empty message")
    return found


async def test_every_bad_input_is_refused_precisely_and_writes_nothing(server: RunningServer, era: str) -> None:
    database = server.runtime.database
    async with client(server, era) as c:
        ids = await build_world(c)
        baseline = callers_rows(await snapshot(database))
        failures: list[str] = []
        for bad in CASES:
            arguments = {"agent": ACTOR, **resolve(bad.arguments, ids)}
            result = await c.call_tool(bad.tool, arguments)
            problems = problems_with(bad, result, ids)
            after = callers_rows(await snapshot(database))
            if after != baseline:
                problems.append(f"wrote {diff(baseline, after)}")
                baseline = after
            if problems:
                failures.append(f"{bad.id}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)


# --- Input hygiene (DESIGN §3): every tool x unclean text, unbounded context, wrong JSON types -------------
# These cases are generated from the input schemas the server lists, so a new tool or argument is covered
# without editing the table. Each refusal must come at the edge (invalid_argument naming the exact path)
# and write nothing.

LONE = "\ue000"  # stands for a lone surrogate: the client cannot encode one, so the transport writes it
LONE_ESCAPE = b"\\ud800"
NUL_TEXT = "a\x00b"
DEEP = 17  # one level over the bound of 16
TYPE_PROBES: dict[str, Any] = {
    "boolean": "true",
    "integer": "5",
    "number": "5",
    "string": 5,
    "array": "[]",
    "object": "{}",
}
# The served schemas leave ids' patterns out (surface.served_input): a required id is filled by its name.
KNOWN_IDS = {"task_id": UNKNOWN_TASK, "parent_task_id": UNKNOWN_TASK, "session_id": UNKNOWN_SESSION}


# Strings that stand for numbers JSON cannot hold (the client would send null): the transport writes them.
HUGE, MINUS_HUGE, NOT_A_NUMBER = "\ue001", "\ue002", "\ue003"
RAW_NUMBERS = {HUGE: b"1e400", MINUS_HUGE: b"-1e400", NOT_A_NUMBER: b"NaN"}


class LoneSurrogates(httpx2.AsyncBaseTransport):
    """Forwards requests with every U+E000 in the JSON body rewritten as the escape of a lone surrogate,
    as a buggy client would send it (the server's JSON parser turns it into one), and each string of
    ``RAW_NUMBERS`` as its number (``1e400``, which a parser reads as infinity)."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        raw = [(b'"' + mark.encode() + b'"', number) for mark, number in RAW_NUMBERS.items()]
        if LONE.encode() in body or any(quoted in body for quoted, _ in raw):
            body = body.replace(LONE.encode(), LONE_ESCAPE)
            for quoted, number in raw:
                body = body.replace(quoted, number)
            headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
            request = httpx2.Request(request.method, request.url, headers=headers, content=body)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _branch(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional property, ``$ref`` resolved."""
    if "$ref" in schema:
        return _branch(defs[schema["$ref"].removeprefix("#/$defs/")], defs)
    for option in schema.get("anyOf", ()):
        if option.get("type") != "null":
            return _branch(option, defs)
    return schema


def _kind(schema: dict[str, Any]) -> str:
    if "anyOf" in schema or "enum" in schema:  # a date or a date-time; an enum of strings (served untyped)
        return "string"
    return str(schema.get("type", "object"))


def filler(name: str, schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A valid value for a required argument (the bad one must be the only problem)."""
    s = _branch(schema, defs)
    if "enum" in s:
        return s["enum"][0]
    if name in KNOWN_IDS:
        return KNOWN_IDS[name]
    return {"string": "x", "integer": s.get("minimum", 1), "number": 1, "boolean": False, "array": []}.get(_kind(s), {})


def string_paths(schema: dict[str, Any], defs: dict[str, Any], path: str, depth: int = 0) -> list[tuple[str, Any]]:
    """``(path, how to place a text at it)`` for every string an argument may hold, one subtask deep."""
    s = _branch(schema, defs)
    kind = _kind(s)
    if kind == "string":
        return [(path, lambda text: text)]
    if kind == "array" and isinstance(s.get("items"), dict):
        return _wrap_list(string_paths(s["items"], defs, f"{path}[0]", depth))
    if kind == "object" and "properties" in s and depth < 1:
        out = []
        for name, prop in s["properties"].items():
            for inner_path, place in string_paths(prop, defs, f"{path}.{name}", depth + 1):
                if place is not None:
                    out.append((inner_path, _wrap_object(s, defs, name, place)))
        return out
    if kind == "object" and "properties" not in s:  # free-form JSON: a value deep inside, and a key
        return [
            (f"{path}.a.b", lambda text: {"a": {"b": text}}),
            (f"{path}.{text_shown('k' + NUL_TEXT)}", None),
        ]
    return []


def _wrap_list(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(p, lambda text, place=place: [place(text)]) for p, place in items if place is not None]


def _wrap_object(s: dict[str, Any], defs: dict[str, Any], name: str, place: Any) -> Any:
    required = {k: filler(k, v, defs) for k, v in s["properties"].items() if k in s.get("required", ())}
    return lambda text: {**required, name: place(text)}


def text_shown(text: str) -> str:
    return text.replace("\x00", "\\u0000")


def hygiene_cases(tools: list[Any]) -> list[Case]:
    cases: list[Case] = []
    for tool in tools:
        schema = tool.input_schema
        defs = schema.get("$defs", {})
        props = schema.get("properties", {})
        base = {k: filler(k, v, defs) for k, v in props.items() if k in schema.get("required", ())}
        short = tool.name.removeprefix("orchestrator_")
        for name, prop in props.items():
            for path, place in string_paths(prop, defs, name):
                if place is None:  # a NUL in a free-form key
                    key_case = {**base, name: {"k" + NUL_TEXT: 1}}
                    cases.append(Case(f"{short}-nul-key-{path}", tool.name, key_case, "invalid_argument", path))
                    continue
                for label, text, shown_as in (("nul", NUL_TEXT, "a\\u0000b"), ("surrogate", f"a{LONE}b", "a\\ud800b")):
                    arguments = {**base, name: place(text)}
                    cases.append(
                        Case(f"{short}-{label}-{path}", tool.name, arguments, "invalid_argument", path, shown_as)
                    )
            kind = _kind(_branch(prop, defs))
            cases.append(
                Case(
                    f"{short}-type-{name}",
                    tool.name,
                    {**base, name: TYPE_PROBES[kind]},
                    "invalid_argument",
                    name,
                    TYPE_PROBES[kind],
                )
            )
            if kind == "object" and "properties" not in _branch(prop, defs):
                too_large = {"blob": "x" * 70_000}
                cases += [
                    Case(
                        f"{short}-deep-{name}",
                        tool.name,
                        {**base, name: nested(DEEP)},
                        "invalid_argument",
                        name,
                        ABSENT,
                        {"max_depth": 16},
                    ),
                    Case(
                        f"{short}-large-{name}",
                        tool.name,
                        {**base, name: too_large},
                        "invalid_argument",
                        name,
                        ABSENT,
                        {"max_bytes": 65_536},
                    ),
                ]
    return cases  # fmt: skip


UTC_RANGE = "a time between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
SPECIFIC_HYGIENE = [
    invalid("plan-due-date-number", "plan_task", plan_args(due_date=5), "due_date", 5),
    invalid("plan-due-date-numeric-string", "plan_task", plan_args(due_date="5"), "due_date", "5", ISO_TIME),
    invalid("query-created-after-number", "query_tasks", {"created_after": 1767225600}, "created_after", 1767225600, ISO_TIME),
    invalid("plan-subtask-due-date-number", "plan_task", plan_args(subtasks=[sub(due_date=5)]), "subtasks[0].due_date", 5),
    invalid("plan-subtask-context-deep", "plan_task", plan_args(subtasks=[sub(context=nested(DEEP))]), "subtasks[0].context", ABSENT, {"max_depth": 16}),
    invalid("plan-grandchild-context-large", "plan_task", plan_args(subtasks=[sub(subtasks=[sub(context={"blob": "x" * 70_000})])]), "subtasks[0].subtasks[0].context", ABSENT, {"max_bytes": 65_536}),
    invalid("plan-subtask-title-nul", "plan_task", plan_args(subtasks=[sub(), sub(subtasks=[sub("a\x00")])]), "subtasks[1].subtasks[0].title", "a\\u0000"),
    invalid("plan-context-list-nul", "plan_task", plan_args(context={"a": [1, {"b": ["ok", "x\x00"]}]}), "context.a[1].b[1]", "x\\u0000"),
    invalid("plan-dependencies-json-string", "plan_task", plan_args(dependencies=f'["{UNKNOWN_TASK}"]'), "dependencies", f'["{UNKNOWN_TASK}"]', "an array"),
    invalid("update-context-result-too-large", "update_task", {"task_id": Ref("big_context"), "context": {"more": "y" * 40_000}}, "context", ABSENT, {"max_bytes": 65_536}),
    invalid("plan-context-huge-number", "plan_task", plan_args(context={"x": HUGE}), "context.x", "inf", "a finite number"),
    invalid("plan-subtask-context-minus-huge", "plan_task", plan_args(subtasks=[sub(context={"a": [1, MINUS_HUGE]})]), "subtasks[0].context.a[1]", "-inf", "a finite number"),
    invalid("plan-context-nan", "plan_task", plan_args(context={"n": NOT_A_NUMBER}), "context.n", "nan", "a finite number"),
    invalid("plan-due-date-past-9999-in-utc", "plan_task", plan_args(due_date="9999-12-31T23:00:00-05:00", agent=ACTOR), "due_date", "9999-12-31T23:00:00-05:00", UTC_RANGE),
    invalid("plan-subtask-due-date-before-year-1-in-utc", "plan_task", plan_args(subtasks=[sub(), sub(due_date="0001-01-01T01:00:00+05:00")], agent=ACTOR), "subtasks[1].due_date", "0001-01-01T01:00:00+05:00", UTC_RANGE),
    invalid("update-due-date-past-9999-in-utc", "update_task", {"task_id": Ref("pending"), "due_date": "9999-12-31T20:00:00-08:00"}, "due_date", "9999-12-31T20:00:00-08:00", UTC_RANGE),
    invalid("query-created-after-past-9999-in-utc", "query_tasks", {"created_after": "9999-12-31T23:00:00-05:00"}, "created_after", "9999-12-31T23:00:00-05:00", UTC_RANGE),
    invalid("query-created-before-before-year-1-in-utc", "query_tasks", {"created_before": "0001-01-01T00:30:00+01:00"}, "created_before", "0001-01-01T00:30:00+01:00", UTC_RANGE),
    invalid("update-context-huge-number", "update_task", {"task_id": Ref("pending"), "context": {"k": {"x": HUGE}}}, "context.k.x", "inf", "a finite number"),
    invalid("update-limit-float", "query_tasks", {"limit": 5.0}, "limit", 5.0, "an integer"),
    invalid("shutdown-drain-string", "shutdown_prepare", {"begin_drain": "true"}, "begin_drain", "true", BOOLEAN),
    invalid("complete-detailed-work-bytes", "complete_task", {"task_id": Ref("pending"), "summary": "s", "detailed_work": "é" * 600_000, "next_action": "complete"}, "detailed_work", ABSENT, {"max_bytes": 1_048_576}),
]  # fmt: skip


async def test_every_tool_refuses_unclean_unbounded_or_mistyped_input_at_the_edge(
    server: RunningServer, era: str
) -> None:
    database = server.runtime.database
    mode = "legacy" if era == "legacy" else "2026-07-28"
    async with httpx2.AsyncClient(transport=LoneSurrogates(), timeout=30) as http:
        async with Client(streamable_http_client(server.mcp_url, http_client=http), mode=mode) as c:
            ids = await build_world(c)
            await call_ok(
                c, "orchestrator_plan_task", **plan_args(title="big", context={"blob": "x" * 40_000}), agent=ACTOR
            )
            ids["big_context"] = (await call_ok(c, "orchestrator_query_tasks", agent=ACTOR, search_text="big"))[
                "tasks"
            ][0]["id"]
            tools = (await c.list_tools()).tools
            cases = hygiene_cases(tools) + SPECIFIC_HYGIENE
            covered = {c.tool for c in cases}
            assert covered == {t.name for t in tools}
            baseline = callers_rows(await snapshot(database))
            failures: list[str] = []
            for bad in cases:
                try:
                    result = await c.call_tool(bad.tool, resolve(bad.arguments, ids))
                    problems = problems_with(bad, result, ids)
                except MCPError as exc:
                    # The legacy transport parses the body with a JSON parser that refuses a lone surrogate
                    # itself (a JSON-RPC parse error, before any tool runs); the 2026 era hands it to the edge.
                    legacy_parse = era == "legacy" and "-surrogate-" in bad.id and exc.error.code == PARSE_ERROR
                    problems = [] if legacy_parse else [f"protocol error {exc.error.code}: {exc.error.message}"]
                after = callers_rows(await snapshot(database))
                if after != baseline:
                    problems.append(f"wrote {diff(baseline, after)}")
                    baseline = after
                if problems:
                    failures.append(f"{bad.id}: {'; '.join(problems)}")
    kinds = {bad.id.split("-")[1] for bad in hygiene_cases(tools)}
    assert {"nul", "surrogate", "type", "deep", "large"} <= kinds
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
