"""Which scope each tool call needs (DESIGN §7), decided from the tool's annotations, its name and its
arguments, and checked once, centrally, before the tool runs.

The rule is derived, not tabled, so a tool registered tomorrow is covered the moment it exists: a tool
whose annotations say ``readOnlyHint: true`` needs ``tasks:read``; any other tool (including one without
annotations, since MCP's default for ``readOnlyHint`` is false) needs ``tasks:write``. Admin powers are
named explicitly: the lifecycle tools by name, and the arguments that turn an ordinary call into an
admin one (``force``, a session ``delete``, maintenance that fixes). Nothing here ever answers "no scope
needed".

Scopes nest: ``admin`` includes ``tasks:write``, which includes ``tasks:read``. Verifiers grant the
expanded set (``effective``), so every check is plain membership.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.types import ToolAnnotations
from pydantic import TypeAdapter, ValidationError

from app import errors
from app.services.caller import ALL_SCOPES, SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE

# Each scope and the scopes it includes.
IMPLIED: Mapping[str, frozenset[str]] = {
    SCOPE_READ: frozenset({SCOPE_READ}),
    SCOPE_WRITE: frozenset({SCOPE_READ, SCOPE_WRITE}),
    SCOPE_ADMIN: ALL_SCOPES,
}
KNOWN_SCOPES = tuple(sorted(IMPLIED))
# Tools that are admin whatever their arguments: they act on the whole service, not on a task graph.
ADMIN_TOOLS = frozenset({"orchestrator_restart_server", "orchestrator_shutdown_prepare"})
_BOOL = TypeAdapter(bool)


def effective(granted: Iterable[str]) -> frozenset[str]:
    """The scopes a grant amounts to: known scopes with the ones they include; unknown names dropped."""
    out: set[str] = set()
    for scope in granted:
        out |= IMPLIED.get(scope, frozenset())
    return frozenset(out)


@dataclass(frozen=True)
class Requirement:
    """One scope a call needs, and what in the call makes it needed (``field`` = the argument, or ``scope``
    when the tool itself needs it)."""

    scope: str
    field: str
    value: Any
    why: str


def _flag(arguments: Mapping[str, Any], name: str, default: bool) -> bool | None:
    """A boolean argument as the tool's schema will read it (pydantic's lax rules, e.g. ``"true"``), or
    None when it is not a boolean at all (the tool's own validation then refuses the call)."""
    if name not in arguments or arguments[name] is None:
        return default
    try:
        return _BOOL.validate_python(arguments[name])
    except ValidationError:
        return None


def _force(tool: str, arguments: Mapping[str, Any]) -> Requirement | None:
    if _flag(arguments, "force", False):
        return Requirement(SCOPE_ADMIN, "force", True, "force=true is an admin power; drop force")
    return None


def _session_delete(tool: str, arguments: Mapping[str, Any]) -> Requirement | None:
    if tool == "orchestrator_cleanup_sessions" and arguments.get("action") == "delete":
        return Requirement(SCOPE_ADMIN, "action", "delete", "deleting sessions is an admin power; use action=archive")
    return None


def _maintenance_fixes(tool: str, arguments: Mapping[str, Any]) -> Requirement | None:
    fixes = (
        tool == "orchestrator_maintenance_coordinator"
        and arguments.get("action") == "scan_cleanup"
        and _flag(arguments, "dry_run", False) is False
    )
    if fixes:
        return Requirement(
            SCOPE_ADMIN,
            "dry_run",
            arguments.get("dry_run", False),
            "scan_cleanup fixes what it finds, an admin power; pass dry_run=true to only report",
        )
    return None


# Arguments that make a call an admin call, whatever the tool's base scope.
ARGUMENT_RULES: tuple[Callable[[str, Mapping[str, Any]], Requirement | None], ...] = (
    _force,
    _session_delete,
    _maintenance_fixes,
)


def base_requirement(tool: str, annotations: ToolAnnotations | None) -> Requirement:
    """The scope a tool needs by its nature: admin by name, else read or write by its annotations."""
    if tool in ADMIN_TOOLS:
        return Requirement(SCOPE_ADMIN, "scope", None, f"{tool} acts on the whole service")
    if annotations is not None and annotations.read_only_hint is True:
        return Requirement(SCOPE_READ, "scope", None, f"{tool} reads the task graph")
    return Requirement(SCOPE_WRITE, "scope", None, f"{tool} changes the task graph")


def requirements(tool: str, annotations: ToolAnnotations | None, arguments: Mapping[str, Any]) -> list[Requirement]:
    """Every scope this call needs: the tool's own, then any its arguments add."""
    found = [base_requirement(tool, annotations)]
    found += [req for rule in ARGUMENT_RULES if (req := rule(tool, arguments)) is not None]
    return found


def check(
    tool: str, annotations: ToolAnnotations | None, arguments: Mapping[str, Any], granted: frozenset[str]
) -> None:
    """Refuse the call unless ``granted`` holds every scope it needs.

    Raises:
        forbidden: naming the scope needed (``allowed`` and ``scope``) and what made it needed (``field``).
    """
    for req in requirements(tool, annotations, arguments):
        if req.scope not in granted:
            raise errors.ScopeMissing(
                f"{tool} needs the '{req.scope}' scope ({req.why}); your credential grants "
                f"{', '.join(sorted(granted)) or 'no scopes'}. Ask an operator for a token with '{req.scope}'.",
                scope=req.scope,
                field=req.field,
                value=req.value if req.field != "scope" else sorted(granted),
            )
