"""The RebootManager owns the service state and is the gate every tool call passes through.

States (DESIGN §8): starting → ready → draining → restarting → ready, or draining → stopping → stopped.
It counts in-flight tool calls, refuses new ones with a retryable ``unavailable`` while the service is not
ready, lets a drain wait for the calls already running, and answers readiness with the reasons it is not
ready (a crashed monitor, an unreachable database) so ``/readyz`` can say why.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum

import anyio

from app import errors

log = logging.getLogger("app.runtime")


class ServiceState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


ALLOWED_MOVES: dict[ServiceState, frozenset[ServiceState]] = {
    ServiceState.STARTING: frozenset({ServiceState.READY, ServiceState.STOPPING}),
    ServiceState.READY: frozenset({ServiceState.DRAINING, ServiceState.STOPPING}),
    ServiceState.DRAINING: frozenset({ServiceState.RESTARTING, ServiceState.STOPPING, ServiceState.READY}),
    ServiceState.RESTARTING: frozenset({ServiceState.READY, ServiceState.STOPPING}),
    ServiceState.STOPPING: frozenset({ServiceState.STOPPED}),
    ServiceState.STOPPED: frozenset(),
}


class RebootManager:
    """Service state, in-flight accounting and the readiness verdict."""

    def __init__(self) -> None:
        self._state = ServiceState.STARTING
        self._in_flight = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._problems: dict[str, str] = {}
        self.state_changes: list[ServiceState] = [ServiceState.STARTING]

    @property
    def state(self) -> ServiceState:
        return self._state

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def move_to(self, target: ServiceState) -> None:
        """Change state along the machine above.

        Raises:
            RuntimeError: the move is not allowed (a bug in the caller, never user input).
        """
        if target == self._state:
            return
        if target not in ALLOWED_MOVES[self._state]:
            raise RuntimeError(f"RebootManager cannot move from {self._state} to {target}")
        log.info("service_state", extra={"event": "service_state", "from": self._state.value, "to": target.value})
        self._state = target
        self.state_changes.append(target)

    # --- readiness ---------------------------------------------------------------------------------
    def report_problem(self, name: str, reason: str) -> None:
        """A part (monitor, database) is unhealthy: readiness turns false with this reason."""
        if self._problems.get(name) != reason:
            log.warning("not_ready", extra={"event": "not_ready", "component": name, "reason": reason})
        self._problems[name] = reason

    def clear_problem(self, name: str) -> None:
        if self._problems.pop(name, None) is not None:
            log.info("recovered", extra={"event": "recovered", "component": name})

    @property
    def problems(self) -> dict[str, str]:
        return dict(self._problems)

    def readiness(self) -> tuple[bool, list[str]]:
        """(ready, reasons): ready only in state ``ready`` with no reported problem."""
        reasons = [f"{name}: {reason}" for name, reason in sorted(self._problems.items())]
        if self._state != ServiceState.READY:
            reasons.insert(0, f"service is {self._state.value}")
        return not reasons, reasons

    # --- the call gate ----------------------------------------------------------------------------
    @asynccontextmanager
    async def track_call(self) -> AsyncIterator[None]:
        """Admit one tool call, counting it while it runs.

        Raises:
            unavailable: the service is starting, draining, restarting or stopping (retryable).
        """
        if self._state != ServiceState.READY:
            raise errors.Unavailable(
                f"The service is {self._state.value}; retry shortly.",
                retry_after_seconds=1.0 if self._state != ServiceState.STOPPING else 5.0,
            )
        self._in_flight += 1
        if self._in_flight == 1:
            self._idle = anyio.Event()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float, *, allowance: int = 0) -> bool:
        """Wait until at most ``allowance`` calls are running (the caller's own, in a restart).

        Returns True when that happened within ``timeout`` seconds.
        """
        with anyio.move_on_after(timeout):
            while self._in_flight > allowance:
                if allowance == 0:
                    await self._idle.wait()
                else:
                    await anyio.sleep(0.01)
            return True
        return self._in_flight <= allowance
