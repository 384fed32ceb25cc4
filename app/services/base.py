"""What every service shares: one transaction per public call, idempotent replays, and outcome reporting.

A write runs as ``await self._write(caller, tool, request_id, ResultModel, work)``: ``work`` receives a
:class:`Tx` (the repositories, the call's ``now`` and the caller) and returns the result model. When a
``request_id`` is given, the stored result of an earlier call with the same actor and request id is
returned instead and nothing is written; otherwise the result is stored in the same transaction as the
write, so a replay can never see a result whose write was rolled back. Metrics about what happened
(status transitions, claims) are reported only after the commit; a call refused because another actor
holds the claim (``claimed_by_other``) is reported as a claim ``conflict`` after its rollback.

Each public call runs under one tracing span named after the service method (``TaskUpdateService.update_task``),
the parent of the statement spans of its transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from pydantic import BaseModel

from app import errors
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from app.domain.clock import Clock
from app.observability import tracing
from app.services import changes
from app.services.caller import Caller

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")


class OutcomeSink(Protocol):
    """Receives what committed writes did (the Metrics object implements it)."""

    def task_transition(self, from_status: str, to_status: str) -> None: ...

    def claim(self, outcome: str) -> None: ...


class NullSink:
    def task_transition(self, from_status: str, to_status: str) -> None:
        return None

    def claim(self, outcome: str) -> None:
        return None


@dataclass
class Tx:
    """One transaction's view of the world, handed to service work functions."""

    repos: Repositories
    now: datetime
    caller: Caller
    transitions: list[tuple[str, str]] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    touched_actor: bool = False


@dataclass(frozen=True)
class ServiceConfig:
    lease_seconds: int = 900
    max_attempts: int = 3


class Service:
    """Base of the use-case classes: holds the unit of work, the clock and the outcome sink."""

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        *,
        config: ServiceConfig | None = None,
        sink: OutcomeSink | None = None,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.config = config or ServiceConfig()
        self.sink: OutcomeSink = sink or NullSink()

    async def _write(
        self,
        caller: Caller,
        tool: str,
        request_id: str | None,
        result_type: type[R],
        work: Callable[[Tx], Awaitable[R]],
    ) -> R:
        """Run ``work`` as one idempotent write transaction.

        Raises:
            invalid_argument: the request_id was already used by this actor for another tool.
        """
        done: list[Tx] = []  # the committed attempt's Tx; empty after a replay

        async def attempt(repos: Repositories) -> R:
            tx = Tx(repos=repos, now=self.clock.now(), caller=caller)
            done.clear()
            changes.watch(repos.session)  # what this attempt changes, for the signal after the commit
            if request_id is not None:
                stored = await repos.requests.get(caller.actor, request_id)
                if stored is not None:
                    if stored.tool != tool:
                        raise errors.InvalidArgument(
                            f"request_id {request_id!r} was already used for {stored.tool}; "
                            "use a new request_id for each distinct operation.",
                            field="request_id",
                            value=request_id,
                        )
                    return result_type.model_validate(stored.result)
            result = await work(tx)
            if request_id is not None:
                await repos.requests.insert(caller.actor, request_id, tool, result.model_dump(mode="json"), tx.now)
            if self.uow.actor_touches.due(caller.actor, tx.now):
                await repos.agents.touch(caller.actor, tx.now)
                tx.touched_actor = True
            done.append(tx)
            return result

        attributes: dict[str, str | bool] = {
            "orchestrator.tool": tool,
            "orchestrator.actor": caller.actor,
            "orchestrator.write": True,
        }
        with tracing.service_span(self._span_name(work, tool), attributes) as span:
            try:
                result = await self.uow.run(attempt, write=True)
            except errors.ClaimedByOther:
                self.sink.claim("conflict")
                raise
            if not done:
                span.set_attribute("orchestrator.replayed", True)
            for tx in done:
                if tx.touched_actor:
                    self.uow.actor_touches.record(caller.actor, tx.now)
                for from_status, to_status in tx.transitions:
                    self.sink.task_transition(from_status, to_status)
                for outcome in tx.claims:
                    self.sink.claim(outcome)
                # After the commit: wake waiters and tell subscribers, on this replica and the others (§4.7).
                await changes.report(self.sink, tx.repos.session, transitions=tx.transitions, claims=tx.claims)
            return result

    async def _read(self, work: Callable[[Repositories], Awaitable[T]]) -> T:
        """Run ``work`` in one read-only transaction."""
        with tracing.service_span(self._span_name(work, None), {"orchestrator.write": False}):
            return await self.uow.run(work, write=False)

    def _span_name(self, work: Callable[..., object], fallback: str | None) -> str:
        """``Class.method`` of the public call that defined ``work`` (a closure inside that method)."""
        qualname = getattr(work, "__qualname__", "")
        owner, marker, _ = qualname.partition(".<locals>")
        if marker and "." in owner:
            return owner
        return f"{type(self).__name__}.{fallback or getattr(work, '__name__', 'call')}"
