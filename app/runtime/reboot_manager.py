"""The RebootManager owns the service state and is the gate every tool call passes through.

States (DESIGN §8): starting → ready → draining → restarting → ready, or draining → stopping → stopped.
It counts in-flight tool calls, refuses new ones with a retryable ``unavailable`` while the service is not
ready, lets a drain wait for the calls already running, and answers readiness with the reasons it is not
ready (a crashed monitor, an unreachable database) so ``/readyz`` can say why.

Every admitted call runs inside its own cancel scope, so a drain that must not wait (a restart with
``graceful=false``, a drain past its timeout, a second SIGTERM) can cancel the calls still running: the
cancelled call's transaction rolls back (the unit of work settles it shielded) and its client gets a
retryable ``unavailable``. A drain never waits for, nor cancels, the call that asked for it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

import anyio

from app import errors

log = logging.getLogger("app.runtime")
CANCEL_GRACE_SECONDS = 10.0  # how long cancelled calls get to unwind (their rollback is bounded by the uow)


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
# States in which the tools registered with ``admit_always`` (health, restart status, …) still run.
OPERATOR_STATES = frozenset({ServiceState.READY, ServiceState.DRAINING, ServiceState.RESTARTING})

_current_call: ContextVar[CallTicket | None] = ContextVar("orchestrator_current_call", default=None)


@dataclass(frozen=True)
class DrainOutcome:
    """What a drain found: how many other calls were running, how many finished, how many were cancelled."""

    waited_for: int
    cancelled: int
    timed_out: bool
    seconds: float


class CallTicket:
    """One admitted tool call: counted while it runs, cancellable by a drain.

    Raises (on exit):
        unavailable: the call was cancelled by a restart or shutdown (retryable; nothing was committed).
    """

    def __init__(self, manager: RebootManager, tool: str | None) -> None:
        self.tool = tool
        self._manager = manager
        self._scope = anyio.CancelScope()
        self._token: Token[CallTicket | None] | None = None

    def cancel(self) -> None:
        self._scope.cancel()

    async def __aenter__(self) -> CallTicket:
        self._manager._admit(self)
        self._scope.__enter__()
        self._token = _current_call.set(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._token is not None:
            _current_call.reset(self._token)
        try:
            swallowed = bool(self._scope.__exit__(exc_type, exc, tb))
        finally:
            self._manager._release(self)
        if swallowed:
            raise errors.Unavailable(
                f"The call was stopped because the service is {self._manager.state.value}; nothing it did was "
                "kept. Retry it (with the same request_id) shortly.",
                retry_after_seconds=1.0,
            )
        return False


class RebootManager:
    """Service state, in-flight accounting, the call gate and the readiness verdict."""

    def __init__(self) -> None:
        self._state = ServiceState.STARTING
        self._calls: set[CallTicket] = set()
        self._changed = anyio.Event()
        self._waiters = 0  # tasks inside wait_until
        self._problems: dict[str, str] = {}
        self._always_admitted: set[str] = set()
        self._stop_requested = False
        self.cancelled_calls = 0  # calls cancelled by drains since the process started
        self.state_changes: list[ServiceState] = [ServiceState.STARTING]
        # Random per process start: tells a client whether it reached the same process after a restart.
        self.instance_id = secrets.token_hex(8)
        self._started = time.monotonic()

    @property
    def state(self) -> ServiceState:
        return self._state

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def uptime_seconds(self) -> float:
        return time.monotonic() - self._started

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
        self._notify()

    def begin_drain(self) -> bool:
        """Stop admitting calls (readiness false). True when this call moved the service to draining."""
        if self._state != ServiceState.READY:
            return False
        self.move_to(ServiceState.DRAINING)
        return True

    def request_stop(self) -> None:
        """The process is going to stop (SIGTERM): drain now, and let no restart bring it back to ready."""
        self._stop_requested = True
        self.begin_drain()
        self._notify()

    # --- readiness ---------------------------------------------------------------------------------
    def report_problem(self, name: str, reason: str) -> None:
        """A part (monitor, database) is unhealthy: readiness turns false with this reason."""
        if self._problems.get(name) != reason:
            log.warning("not_ready", extra={"event": "not_ready", "component": name, "reason": reason})
        self._problems[name] = reason
        self._notify()

    def clear_problem(self, name: str) -> None:
        if self._problems.pop(name, None) is not None:
            log.info("recovered", extra={"event": "recovered", "component": name})
            self._notify()

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
    def admit_always(self, *tools: str) -> None:
        """Tools that run while draining or restarting too (operators watch and steer the lifecycle)."""
        self._always_admitted.update(tools)

    def track_call(self, tool: str | None = None) -> CallTicket:
        """Admit one tool call for the duration of an ``async with``, counting it while it runs.

        Raises:
            unavailable: the service is starting, draining, restarting or stopping (retryable).
        """
        return CallTicket(self, tool)

    def _admit(self, ticket: CallTicket) -> None:
        admitted = self._state == ServiceState.READY or (
            ticket.tool in self._always_admitted and self._state in OPERATOR_STATES
        )
        if not admitted:
            stopping = self._stop_requested or self._state in (ServiceState.STOPPING, ServiceState.STOPPED)
            raise errors.Unavailable(
                f"The service is {self._state.value}; retry shortly.",
                retry_after_seconds=5.0 if stopping else 1.0,
            )
        self._calls.add(ticket)
        self._notify()

    def _release(self, ticket: CallTicket) -> None:
        self._calls.discard(ticket)
        self._notify()

    def other_calls(self) -> int:
        """In-flight calls other than the one asking (the restart tool never waits for itself)."""
        current = _current_call.get()
        return sum(1 for call in self._calls if call is not current)

    def cancel_other_calls(self) -> int:
        """Cancel every in-flight call but the current one; returns how many were cancelled."""
        current = _current_call.get()
        others = [call for call in self._calls if call is not current]
        for call in others:
            call.cancel()
        if others:
            self.cancelled_calls += len(others)
            log.warning("calls_cancelled", extra={"event": "calls_cancelled", "count": len(others)})
            self._notify()
        return len(others)

    async def wait_until(self, condition: Callable[[], bool], timeout: float | None) -> bool:
        """Wait (without polling) until ``condition()`` holds after some state, call or problem change.

        Returns whether it holds, after at most ``timeout`` seconds (None: no bound).
        """
        self._waiters += 1
        try:
            with anyio.move_on_after(timeout):
                while not condition():
                    await self._changed.wait()
        finally:
            self._waiters -= 1
        return condition()

    async def drain(self, timeout: float, *, graceful: bool = True) -> DrainOutcome:
        """Wait up to ``timeout`` for the other in-flight calls; then (or at once, ``graceful=False``)
        cancel the ones still running and give them a bounded grace to roll back and answer.

        The caller moves the state first (``begin_drain``/``request_stop``) so no new call is admitted.
        """
        started = time.monotonic()
        current = _current_call.get()

        def others() -> int:
            return sum(1 for call in self._calls if call is not current)

        waited_for = others()
        idle = await self.wait_until(lambda: others() == 0, timeout if graceful else 0)
        cancelled = 0
        if not idle:
            cancelled = self.cancel_other_calls()
            if not await self.wait_until(lambda: others() == 0, CANCEL_GRACE_SECONDS):
                log.error("drain_incomplete", extra={"event": "drain_incomplete", "still_running": others()})
        outcome = DrainOutcome(
            waited_for=waited_for,
            cancelled=cancelled,
            timed_out=graceful and not idle,
            seconds=time.monotonic() - started,
        )
        log.info(
            "drained",
            extra={
                "event": "drained",
                "waited_for": waited_for,
                "cancelled": cancelled,
                "timed_out": outcome.timed_out,
                "seconds": round(outcome.seconds, 3),
            },
        )
        return outcome

    def _notify(self) -> None:
        # Every tool call notifies twice (admitted, released); with nobody in wait_until there is no one to
        # wake, so the event is only swapped when someone waits (one check instead of a new Event per call).
        if self._waiters:
            self._changed.set()
            self._changed = anyio.Event()
