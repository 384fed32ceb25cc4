"""Which scope a call needs: derived from annotations, names and arguments, never "nothing"."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.types import ToolAnnotations

from app import errors
from app.auth import scopes
from app.main import create_app
from app.settings import Settings
from app.tools.server import OrchestratorMCP

READ = ToolAnnotations(read_only_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True)
READER = scopes.effective(["tasks:read"])
WRITER = scopes.effective(["tasks:write"])
ADMIN = scopes.effective(["admin"])


def needed(tool: str, annotations: ToolAnnotations | None, **arguments: Any) -> list[tuple[str, str]]:
    return [(r.scope, r.field) for r in scopes.requirements(tool, annotations, arguments)]


def test_scopes_nest_admin_over_write_over_read_and_unknown_names_grant_nothing() -> None:
    assert sorted(READER) == ["tasks:read"]
    assert sorted(WRITER) == ["tasks:read", "tasks:write"]
    assert sorted(ADMIN) == ["admin", "tasks:read", "tasks:write"]
    assert scopes.effective(["openid", "tasks:*", "ADMIN"]) == frozenset()


def test_base_scope_follows_read_only_hint_and_missing_annotations_mean_write() -> None:
    assert needed("orchestrator_future_report", READ) == [("tasks:read", "scope")]
    assert needed("orchestrator_future_writer", WRITE) == [("tasks:write", "scope")]
    assert needed("orchestrator_future_unannotated", None) == [("tasks:write", "scope")]
    assert needed("orchestrator_future_unsure", ToolAnnotations()) == [("tasks:write", "scope")]


def test_lifecycle_tools_need_admin_even_when_annotated_read_only() -> None:
    assert needed("orchestrator_restart_server", WRITE) == [("admin", "scope")]
    assert needed("orchestrator_shutdown_prepare", READ) == [("admin", "scope")]


def test_arguments_that_carry_admin_powers_add_admin() -> None:
    assert needed("orchestrator_update_task", WRITE, force=True)[1:] == [("admin", "force")]
    assert needed("orchestrator_update_task", WRITE, force="true")[1:] == [("admin", "force")]  # lax bool
    assert needed("orchestrator_update_task", WRITE, force=False)[1:] == []
    assert needed("orchestrator_update_task", WRITE, force="maybe")[1:] == []  # refused by validation instead
    assert needed("orchestrator_cleanup_sessions", WRITE, action="delete")[1:] == [("admin", "action")]
    assert needed("orchestrator_cleanup_sessions", WRITE, action="archive")[1:] == []
    fixes = needed("orchestrator_maintenance_coordinator", WRITE, action="scan_cleanup")
    assert fixes[1:] == [("admin", "dry_run")]
    assert needed("orchestrator_maintenance_coordinator", WRITE, action="scan_cleanup", dry_run=True)[1:] == []
    assert needed("orchestrator_maintenance_coordinator", WRITE, action="validate_structure")[1:] == []


def test_check_names_the_missing_scope_and_what_needed_it() -> None:
    scopes.check("orchestrator_query_tasks", READ, {}, READER)
    scopes.check("orchestrator_update_task", WRITE, {"force": True}, ADMIN)
    with pytest.raises(errors.ScopeMissing) as write:
        scopes.check("orchestrator_plan_task", WRITE, {}, READER)
    with pytest.raises(errors.ScopeMissing) as force:
        scopes.check("orchestrator_update_task", WRITE, {"force": True}, WRITER)
    with pytest.raises(errors.ScopeMissing) as nothing:
        scopes.check("orchestrator_query_tasks", READ, {}, frozenset())
    assert {k: write.value.to_dict()[k] for k in ("code", "field", "value", "allowed", "scope", "retryable")} == {
        "code": "forbidden",
        "field": "scope",
        "value": ["tasks:read"],
        "allowed": ["tasks:write"],
        "scope": "tasks:write",
        "retryable": False,
    }
    assert (force.value.field, force.value.value, force.value.allowed) == ("force", True, ["admin"])
    assert nothing.value.allowed == ["tasks:read"]


def test_every_registered_tool_declares_read_only_hint(tmp_path: Any) -> None:
    server: OrchestratorMCP = create_app(Settings(data_dir=tmp_path)).state.server
    tools = server._tool_manager.list_tools()  # the registry the check reads
    assert tools
    undeclared = [t.name for t in tools if t.annotations is None or t.annotations.read_only_hint is None]
    assert undeclared == []
    read_only = {t.name for t in tools if scopes.base_requirement(t.name, t.annotations).scope == "tasks:read"}
    assert "orchestrator_query_tasks" in read_only
    assert "orchestrator_plan_task" not in read_only
