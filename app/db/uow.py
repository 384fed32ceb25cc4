"""The unit of work: the only place that begins, commits or rolls back, and the only driver-error seam.

A service hands :meth:`UnitOfWork.run` one coroutine function; it runs inside one transaction and is
committed when it returns, rolled back when it raises. Driver exceptions are translated here, once:
a lost or refused connection becomes ``unavailable`` (retryable), a PostgreSQL serialization failure or
deadlock and a SQLite lock timeout are retried a bounded number of times with jittered backoff, and a
race on an idempotency record re-runs the work so it finds the stored result. A pooled connection found
dead before the commit (the database restarted) is replaced and the work run once more, which is why
the engine needs no pre-ping. A call waits on the database at most ``Database.call_timeout`` in all
(``ORCHESTRATOR_DB_TIMEOUT_SECONDS``: pool checkout, connect, statements, commit and retries together);
past it the transaction is abandoned, its connection closed without a round trip, and the call answers
``unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import anyio
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app import errors
from app.db import row_flush
from app.db.engine import Database
from app.db.recent_touches import RecentTouches
from app.db.repositories import Repositories
from app.observability import tracing

T = TypeVar("T")
log = logging.getLogger("app.db")

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock not available
CONNECTION_SQLSTATE_PREFIXES = ("08", "57P")  # connection exceptions, admin/crash shutdown
MAX_ATTEMPTS = 5
SETTLE_TIMEOUT_SECONDS = 5.0  # bound on the shielded rollback/close after an error or a cancellation
ABANDON_TIMEOUT_SECONDS = 0.5  # bound on closing a connection whose call ran out of time


class ErrorSink(Protocol):
    """Where the uow reports translated database errors (the Metrics object, in production)."""

    def db_error(self, kind: str) -> None: ...


class _Retry(Exception):
    """Internal: this attempt lost a race the next attempt will resolve."""


class _StaleConnection(errors.Unavailable):
    """The pooled connection was dead before this transaction committed (the database restarted).

    SQLAlchemy has invalidated the whole pool by then, so :meth:`UnitOfWork.run` makes one more attempt
    on a fresh connection; nothing was committed, so running the work again is safe (as for a
    serialization retry). Anyone else sees it as what it also is: ``unavailable``.
    """

    def __init__(self) -> None:
        super().__init__("The database connection failed; retry shortly.", retry_after_seconds=2.0)


class ConnectionGate(Protocol):
    """Decides whether to try the database at all (the circuit breaker) and hears how it went."""

    def before_attempt(self) -> None: ...

    def record_success(self) -> None: ...

    def record_failure(self) -> None: ...

    def retry_after_seconds(self) -> float: ...


class UnitOfWork:
    """Runs service work in transactions against one :class:`Database`."""

    def __init__(
        self,
        database: Database,
        *,
        errors_sink: ErrorSink | None = None,
        gate: ConnectionGate | None = None,
    ) -> None:
        self.database = database
        self.timeout = database.call_timeout
        self._sink = errors_sink
        self._gate = gate
        self._open = 0
        # Process memory of recent activity writes, shared by every transaction on this database: the
        # actors' upserts (recorded by ``Service._write`` after the commit) and the sessions' touches.
        self.actor_touches = RecentTouches()
        self.session_touches = RecentTouches()

    @property
    def backend(self) -> str:
        return self.database.backend

    @property
    def open_transactions(self) -> int:
        """Transactions of this unit of work that have begun and not yet ended (this process only)."""
        return self._open

    @asynccontextmanager
    async def transaction(self, *, write: bool = True, deadline: float | None = None) -> AsyncIterator[Repositories]:
        """One transaction; commit on success, rollback on any error. Driver errors are translated.

        The connection is taken (and, for writers on SQLite, first a place in this process's write queue,
        then the write lock) before the work runs, so a
        dead database fails here, and the circuit breaker hears whether the database answered. However
        the transaction ends (an error, or the call being cancelled by a restart), the rollback and the
        return of the connection run shielded from cancellation and bounded in time: a cancelled call's
        changes are rolled back and never leak into the pool. Everything must be done by ``deadline``
        (``anyio.current_time()`` based; default: ``timeout`` from now); past it the transaction is
        abandoned (see :func:`_abandon`) and ``unavailable`` raised.
        """
        if self._gate is not None:
            try:
                self._gate.before_attempt()
            except errors.Unavailable:
                if self._sink is not None:
                    self._sink.db_error("circuit_open")
                raise
        engine = self.database.write_engine if write else self.database.read_engine
        session = AsyncSession(engine, expire_on_commit=False, autoflush=False)
        if write:
            row_flush.enable(session)  # one changed task and its events: below the ORM (app.db.row_flush)
        bound = anyio.CancelScope(deadline=anyio.current_time() + self.timeout if deadline is None else deadline)
        self._open += 1
        committing = False
        connection: AsyncConnection | None = None
        queue = self.database.write_queue if write else None
        queued = False
        try:
            with bound:
                try:
                    if queue is not None:  # SQLite: this process's writers in arrival order (Database.write_queue)
                        await queue.acquire()
                        queued = True
                    connection = await session.connection()
                    if self._gate is not None:
                        self._gate.record_success()
                    yield Repositories(session, self.database.backend, session_touches=self.session_touches)
                    committing = True  # the work returned; what fails from here on may have committed
                    await _commit(session, bound.deadline)
                except BaseException:
                    if bound.cancel_called:
                        await _abandon(session, connection)
                    else:
                        await _settle(session.rollback)
                    raise
                finally:
                    await _settle(session.close)
                    if queue is not None and queued:
                        queue.release()
                    self._open -= 1
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated and not committing:
                self._failed("connection")
                raise _StaleConnection() from exc
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        except (sa_exc.TimeoutError, TimeoutError, OSError) as exc:
            self._failed("connection")
            # A refused or dropped connection is not a slow database: say which, so an operator reading the
            # caller's error looks at the right thing (the server is down, or the pool/server is saturated).
            timed_out = isinstance(exc, sa_exc.TimeoutError | TimeoutError)
            raise errors.Unavailable(
                "The database did not answer in time; retry shortly."
                if timed_out
                else "The database could not be reached (the connection was refused or dropped); retry shortly.",
                retry_after_seconds=self._retry_after(),
            ) from exc
        if bound.cancelled_caught:
            self._failed("timeout")
            raise errors.Unavailable(
                f"The database did not answer within {self.timeout:g} s (ORCHESTRATOR_DB_TIMEOUT_SECONDS); "
                "retry shortly.",
                retry_after_seconds=self._retry_after(),
            )

    async def run(self, work: Callable[[Repositories], Awaitable[T]], *, write: bool = True) -> T:
        """Run ``work`` in one transaction, retrying transient conflicts a bounded number of times.

        Raises:
            unavailable: the database is unreachable, did not answer within ``timeout`` (all attempts
                together), or conflicts persisted past the retry budget.
        """
        fresh_connection_tried = False
        deadline = anyio.current_time() + self.timeout  # one bound for every attempt together
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self.transaction(write=write, deadline=deadline) as repos:
                    return await work(repos)
            except _StaleConnection:
                if fresh_connection_tried:
                    raise
                fresh_connection_tried = True  # no backoff: the pool has already dropped the dead connections
            except _Retry:
                tracing.add_event("db.retry", {"attempt": attempt})
                if attempt == MAX_ATTEMPTS:
                    break
                await asyncio.sleep(random.uniform(0, 0.02 * 2**attempt))  # jittered backoff
        raise errors.Unavailable(
            "The database stayed busy with conflicting writes; retry shortly.", retry_after_seconds=1.0
        )

    def _retry_after(self) -> float:
        """The hint for a call the database just failed: the circuit's next probe (2 s with no circuit)."""
        return self._gate.retry_after_seconds() if self._gate is not None else 2.0

    def _failed(self, kind: str) -> None:
        if self._sink is not None:
            self._sink.db_error(kind)
        if self._gate is not None:
            # Only a lost, refused or silent connection counts against the database; a conflict means it answered.
            if kind in ("connection", "timeout"):
                self._gate.record_failure()
            else:
                self._gate.record_success()

    def _translate(self, exc: sa_exc.DBAPIError) -> Exception:
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        text = str(exc.orig).lower()
        if sqlstate in RETRYABLE_SQLSTATES or "database is locked" in text:
            self._failed("conflict")
            return _Retry()
        if isinstance(exc, sa_exc.IntegrityError):
            if "request_record" in text or "pk_request_record" in text:
                # Two calls with one request_id raced; the next attempt returns the stored result.
                self._failed("conflict")
                return _Retry()
            self._failed("integrity")
            log.warning("integrity_error", extra={"event": "integrity_error", "sqlstate": sqlstate})
            return errors.InvalidArgument(
                "The change conflicts with existing data (a constraint refused it); "
                "re-read the task and retry with consistent values."
            )
        if (
            exc.connection_invalidated
            or (sqlstate or "").startswith(CONNECTION_SQLSTATE_PREFIXES)
            or (isinstance(exc, sa_exc.InterfaceError))
        ):
            self._failed("connection")
            return errors.Unavailable(
                "The database connection failed; retry shortly.", retry_after_seconds=self._retry_after()
            )
        self._failed("other")
        return exc


async def _abandon(session: AsyncSession, connection: AsyncConnection | None) -> None:
    """Give up a transaction whose call ran out of time, without waiting on the database again.

    The server may be frozen, so a ROLLBACK could wait as long again. On PostgreSQL the driver connection
    is terminated at once (no round trip; the server rolls back what a dropped connection left open) and
    then invalidated in the pool. SQLite is a local file: its rollback waits at most the busy timeout,
    which the engine keeps within the call bound, and is settled as usual.
    """
    driver = _driver_connection(connection)
    if driver is None or not callable(getattr(driver, "terminate", None)):
        await _settle(session.rollback)
        return
    with anyio.move_on_after(ABANDON_TIMEOUT_SECONDS, shield=True):
        try:
            driver.terminate()
            await session.invalidate()
        except Exception as exc:  # secondary to the timeout being raised
            log.warning(
                "transaction_abandon_failed", extra={"event": "transaction_abandon_failed", "error": type(exc).__name__}
            )


def _driver_connection(connection: AsyncConnection | None) -> Any:
    """The driver's own connection under ``connection`` (asyncpg's or aiosqlite's), or None."""
    if connection is None:
        return None
    try:
        return connection.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    except (AttributeError, sa_exc.ResourceClosedError, sa_exc.InvalidRequestError):
        return None


async def _commit(session: AsyncSession, deadline: float) -> None:
    """Commit, shielded from cancellation but not from the deadline.

    A cancellation (a restart's drain, a client that went away) that lands while the COMMIT is on its way
    cannot stop it: the database (or aiosqlite's thread) finishes it regardless, and the caller would be
    told "nothing was kept" about a change that was kept — a retry without ``request_id`` would then write
    it twice. So the commit runs to its end, and the call answers what really happened. The deadline
    still bounds it: past it the commit is abandoned and the call answers ``unavailable`` as for any
    statement that did not answer in time.
    """
    with anyio.CancelScope(shield=True, deadline=deadline) as scope:
        await session.commit()
    if scope.cancelled_caught:
        raise TimeoutError("the commit did not finish before the deadline")


async def _settle(step: Callable[[], Awaitable[None]]) -> None:
    """Run a rollback or close to the end even while the caller is being cancelled, within a bound.

    A failure here is secondary: the transaction already failed or was cancelled, and that error is
    the one that propagates; a connection that cannot roll back is invalidated by the pool, and the
    server rolls back what a dropped connection left open.
    """
    with anyio.move_on_after(SETTLE_TIMEOUT_SECONDS, shield=True):
        try:
            await step()
        except Exception as exc:  # secondary to the error being raised; see above
            log.warning(
                "transaction_cleanup_failed", extra={"event": "transaction_cleanup_failed", "error": type(exc).__name__}
            )
