"""Who is calling: the actor every write records, and the scopes that decide what it may do."""

from __future__ import annotations

from dataclasses import dataclass, field

SCOPE_READ = "tasks:read"
SCOPE_WRITE = "tasks:write"
SCOPE_ADMIN = "admin"
ALL_SCOPES = frozenset({SCOPE_READ, SCOPE_WRITE, SCOPE_ADMIN})


@dataclass(frozen=True)
class Caller:
    """The resolved identity of one tool call (DESIGN §3 "Actors")."""

    actor: str
    scopes: frozenset[str] = field(default=ALL_SCOPES)
    # Who the caller is beneath its agent names (DESIGN §3 Actors): the token's subject, else the MCP
    # client's name; None when neither is known. Only session resolution's fallback reads it.
    principal: str | None = None
    # Set only by the service's own monitors where they build their caller. Not read from the actor's
    # name: with authentication off an agent chooses its name, and ``system:x`` must not make it a monitor.
    system: bool = False

    @property
    def is_admin(self) -> bool:
        return SCOPE_ADMIN in self.scopes

    @property
    def is_system(self) -> bool:
        """The service's own monitors (``system:lease-sweeper``, ``system:maintenance``): not agents, so
        they have no ``agent`` row; a sweep that finds nothing then writes nothing at all."""
        return self.system
