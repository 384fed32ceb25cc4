"""The service's own history in ``system_event`` (restarts, drains), written past the call gate.

Lifecycle events must be written while the gate refuses tool calls (a drain, a restart) and even while
the engine is being rebuilt, so they go straight to the current unit of work, never through a tool call.
An event that cannot be written yet (no engine, the database down) is kept, in order, and written with
the next one that can be; each keeps the time it happened.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import anyio

from app import errors
from app.domain.clock import Clock
from app.runtime.component_stack import ComponentStack
from app.services.lifecycle import SystemEventDraft

log = logging.getLogger("app.runtime")
MAX_PENDING_EVENTS = 1000


class SystemEventLog:
    def __init__(self, components: ComponentStack, clock: Clock) -> None:
        self._components = components
        self._clock = clock
        self._pending: list[SystemEventDraft] = []
        self._lock = anyio.Lock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def record(self, kind: str, actor: str, data: dict[str, Any], *, at: datetime | None = None) -> bool:
        """Append an event (that happened ``at``, default now); True when it and everything before it is written."""
        self._pending.append(SystemEventDraft(kind=kind, actor=actor, at=at or self._clock.now(), data=data))
        if len(self._pending) > MAX_PENDING_EVENTS:
            dropped = self._pending.pop(0)
            log.error("system_event_dropped", extra={"event": "system_event_dropped", "kind": dropped.kind})
        return await self.flush()

    async def flush(self, *, wait: bool = True) -> bool:
        """Write what is pending, if a unit of work is there to take it. True when nothing is left.

        ``wait=False`` gives up at once when another flush is writing.
        """
        if not wait and self._lock.locked():
            return not self._pending
        async with self._lock:
            service = self._components.lifecycle()
            if not self._pending:
                return True
            if service is None:
                return False
            batch = list(self._pending)
            try:
                await service.record_system_events(batch)
            except errors.OrchestratorError as exc:
                log.warning(
                    "system_event_deferred",
                    extra={"event": "system_event_deferred", "pending": len(batch), "reason": exc.code},
                )
                return False
            del self._pending[: len(batch)]
            return True
