"""What every service shares: one transaction per public call, idempotent replays, and outcome reporting.

A write runs as ``await self._write(caller, tool, request_id, ResultModel, work)``: ``work`` receives a
:class:`Tx` (the repositories, the call's ``now`` and the caller) and returns the result model. When a
``request_id`` is given, the stored result of an earlier call with the same actor and request id is
returned instead and nothing is written; otherwise the result is stored in the same transaction as the
write, so a replay can never see a result whose write was rolled back. Nothing is stored that cannot be
read back (DESIGN §3): the result is serialized inside the transaction, once, and a failure rolls it back.
Metrics about what happened (status transitions, claims) are reported only after the commit; a call
refused because another actor holds the claim (``claimed_by_other``) is reported as a claim ``conflict``
after its rollback. What a write changed is announced as its transaction's last statement (the signal to
the other replicas goes out with the commit) and reported to this process after the commit
(``app.services.changes``).

Each public call runs under one tracing span named after the service method (``TaskUpdateService.update_task``),
the parent of the statement spans of its transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

import pydantic_core
from pydantic import BaseModel

from app import errors
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from app.domain.clock import Clock
from app.observability import tracing
from app.services import changes, idempotency
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
    max_context_bytes: int = 65_536  # ORCHESTRATOR_MAX_CONTEXT_BYTES: a merge-patch result's bound
    max_artifact_bytes: int = 1_048_576  # ORCHESTRATOR_MAX_ARTIFACT_BYTES: detailed_work's bound


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
            idempotency_conflict: the request_id was already used by this actor for another tool or with
                other arguments (``app.services.idempotency``).
        """
        done: list[Tx] = []  # the committed attempt's Tx; empty after a replay
        digest = idempotency.current_digest() if request_id is not None else None

        async def attempt(repos: Repositories) -> R:
            tx = Tx(repos=repos, now=self.clock.now(), caller=caller)
            done.clear()
            changes.watch(repos.session)  # what this attempt changes, for the signal at its commit
            if request_id is not None:
                # Idempotent writes (DESIGN §3): a repeat replays the stored result. The calls of one
                # (actor, request_id) take turns from here to their commit (PostgreSQL advisory lock; SQLite
                # runs one writer at a time anyway), so a retry sent while the first call still runs waits
                # and then finds its result, rather than finding nothing and running the work again against
                # the state the first call left (complete_task: "cannot move from completed to completed").
                await repos.requests.lock(caller.actor, request_id)
                stored = await repos.requests.get(caller.actor, request_id)
                if stored is not None:
                    if stored.tool != tool:
                        raise errors.IdempotencyConflict(request_id, stored.tool, same_tool=False)
                    if digest is not None and stored.args_digest is not None and stored.args_digest != digest:
                        raise errors.IdempotencyConflict(request_id, stored.tool, same_tool=True)
                    return result_type.model_validate(stored.result)
            result = await work(tx)
            reply = serialized(result)
            if request_id is not None:
                await repos.requests.insert(
                    caller.actor, request_id, tool, pydantic_core.from_json(reply), tx.now, args_digest=digest
                )
            if not caller.is_system and self.uow.actor_touches.due(caller.actor, tx.now):
                await repos.agents.touch(caller.actor, tx.now)
                tx.touched_actor = True
            # Last statement: the change goes out with the commit (PostgreSQL NOTIFY), or not at all (§4.7).
            await changes.announce(self.sink, repos.session, transitions=tx.transitions, claims=tx.claims)
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
                # After the commit: wake this replica's waiters and tell its subscribers (§4.7).
                await changes.report(self.sink, tx.repos.session)
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


class UnserializableResult(Exception):
    """A write's reply could not be serialized; its transaction is rolled back (answered ``internal``)."""


def serialized(result: BaseModel) -> bytes:
    """``result`` as the JSON the wire will carry, made inside the transaction so a failure rolls it back.

    Raises:
        UnserializableResult: e.g. text that is not valid Unicode reached the reply.
    """
    try:
        return pydantic_core.to_json(result)
    except pydantic_core.PydanticSerializationError as exc:
        raise UnserializableResult(f"the reply ({type(result).__name__}) cannot be serialized: {exc}") from exc
