"""The SQLAlchemy async engine for both backends, configured for many concurrent writers.

PostgreSQL (asyncpg): READ COMMITTED, a bounded pool, bounded connect and statement timeouts so a dead
server makes calls fail fast instead of hanging; reads run in autocommit (see ``Database.read_engine``).
No connect or pool wait is longer than ``call_timeout``, the bound the unit of work puts on a whole call.
SQLite (aiosqlite): WAL, ``busy_timeout`` (at most ``call_timeout``), foreign keys on, and every write
transaction opened with ``BEGIN IMMEDIATE`` so two writers never both read a row and then race to change
it (*immediate transaction (SQLite)*): the second one waits for the first to commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import anyio
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from app.domain import search
from app.observability import tracing

Backend = Literal["postgresql", "sqlite"]
WRITE_OPTION = "orchestrator_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
DEFAULT_CALL_TIMEOUT_SECONDS = 10.0  # ORCHESTRATOR_DB_TIMEOUT_SECONDS's default
APPLICATION_NAME = "task-orchestrator"
SQLITE_SEARCH_FUNCTION = "orchestrator_search"  # see sqlite_search


@dataclass(frozen=True)
class Database:
    """The engine plus two views of it: one for writers (``BEGIN IMMEDIATE`` on SQLite), one for readers.

    On PostgreSQL the readers' view runs in autocommit: under READ COMMITTED every statement of a
    read-only transaction takes its own snapshot anyway, so BEGIN and COMMIT would add two round trips
    per read and no consistency. On SQLite a read transaction does hold one snapshot, so it stays.
    """

    engine: AsyncEngine
    write_engine: AsyncEngine
    read_engine: AsyncEngine
    backend: Backend
    url: str
    pool_capacity: int = 0  # pool size + max overflow: the most connections this process opens
    call_timeout: float = DEFAULT_CALL_TIMEOUT_SECONDS  # the most one call waits on the database in all
    # SQLite only: this process's writers queue here, first come first served, before BEGIN IMMEDIATE.
    # SQLite's own busy handler polls with growing sleeps and serves no one in order: under 50 concurrent
    # writers a few waited past the call bound and answered ``unavailable`` while later ones went
    # through. One writer at a time is all SQLite allows anyway; the queue only makes the wait fair and
    # spares the polling. Other processes on the same file (the CLI) still meet the busy handler.
    write_queue: anyio.Lock | None = field(default=None, compare=False)

    async def dispose(self) -> None:
        await self.engine.dispose()

    def pool_stats(self) -> dict[str, int]:
        """Connections by state, read from the pool itself (both backends use a queue pool).

        ``checked_out`` are lent to transactions, ``idle`` wait in the pool, ``overflow`` are open beyond the
        pool size (they close when returned), ``capacity`` is the most the pool will open (size + overflow).
        Both engines share one pool (``write_engine`` is an execution-options view of ``engine``).
        """
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):  # an in-memory SQLite database (tests): one static connection
            return {"capacity": self.pool_capacity}
        return {
            "checked_out": pool.checkedout(),
            "idle": pool.checkedin(),
            # QueuePool counts overflow from -size upward: negative means the pool is not full yet.
            "overflow": max(pool.overflow(), 0),
            "capacity": self.pool_capacity,
        }


def backend_of(url: str) -> Backend:
    name = make_url(url).get_backend_name()
    if name not in ("postgresql", "sqlite"):
        raise ValueError(f"unsupported database backend {name!r}; allowed: postgresql, sqlite")
    return "postgresql" if name == "postgresql" else "sqlite"


TLS_OPTIONS = ("sslmode", "ssl")


def split_tls_mode(url: URL) -> tuple[URL, str | None]:
    """``url`` without its TLS query option, and the libpq TLS mode it named (``disable`` … ``verify-full``).

    Users write libpq's ``?sslmode=require``; SQLAlchemy's asyncpg dialect hands every query option to
    ``asyncpg.connect`` as a keyword, and asyncpg's keyword is ``ssl`` (it takes the same mode names), so
    ``sslmode`` failed every connect with a TypeError. ``?ssl=`` (SQLAlchemy's documented spelling) is
    accepted too. The pool's connections (``_postgres_engine``) and the LISTEN connection
    (``work_signals.listen_dsn``) both take the mode from here. Settings validated the value at start-up.
    """
    mode = next((str(url.query[name]) for name in TLS_OPTIONS if name in url.query), None)
    return url.difference_update_query(TLS_OPTIONS), mode


# Query options SQLAlchemy's asyncpg dialect keeps for itself (it configures its own statement cache with
# them); asyncpg, handed them in a DSN, sends them to the server as settings, which refuses them.
SQLALCHEMY_ONLY_CONNECT_ARGS = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn")


def asyncpg_connect_args(url: str) -> dict[str, Any]:
    """The keyword arguments for ``asyncpg.connect`` that reach the database the engine for ``url`` reaches
    (host, port, user, password, database and the URL's driver options such as ``ssl``), for a connection
    kept outside the pool (the replica's LISTEN connection). Derived by the engine's own dialect, so a URL
    the engine accepts is one this connection accepts too.
    """
    parsed, tls_mode = split_tls_mode(make_url(url).set(drivername="postgresql+asyncpg"))
    _, params = parsed.get_dialect()().create_connect_args(parsed)
    for key in SQLALCHEMY_ONLY_CONNECT_ARGS:
        params.pop(key, None)
    if tls_mode is not None:
        params["ssl"] = tls_mode  # as the pool's connections get it (``_postgres_engine``)
    return dict(params)


def create_database(
    url: str,
    *,
    pool_size: int = 10,
    connect_timeout: float = 5.0,
    statement_timeout: float = 30.0,
    application_name: str = APPLICATION_NAME,
    call_timeout: float = DEFAULT_CALL_TIMEOUT_SECONDS,
) -> Database:
    """Build the engine for ``url`` (an async URL: ``postgresql+asyncpg://`` or ``sqlite+aiosqlite://``).

    ``application_name`` labels this process's PostgreSQL connections (``pg_stat_activity``), so a
    replica can count its own open transactions. ``call_timeout`` bounds a whole call (the unit of work
    enforces it, statements included); the pool checkout, the connect and the SQLite lock wait are each
    bounded by it too, so none of them alone outlasts it.
    """
    backend = backend_of(url)
    # Bursts may open as many connections again as the pool keeps; they close when returned.
    pool_args = {"pool_size": pool_size, "max_overflow": pool_size}
    if backend == "sqlite":
        engine = _sqlite_engine(url, pool_args, busy_timeout_ms=min(SQLITE_BUSY_TIMEOUT_MS, int(call_timeout * 1000)))
    else:
        engine = _postgres_engine(
            url,
            pool_args,
            min(connect_timeout, call_timeout),
            statement_timeout,  # also bounds work outside calls (migrations); a call's deadline cuts it shorter
            application_name[:63],
        )
    tracing.instrument_engine(engine.sync_engine, backend)
    queue_pool = isinstance(engine.pool, QueuePool)
    return Database(
        engine=engine,
        write_engine=engine.execution_options(**{WRITE_OPTION: True}),
        read_engine=engine.execution_options(isolation_level="AUTOCOMMIT") if backend == "postgresql" else engine,
        backend=backend,
        url=url,
        pool_capacity=pool_args["pool_size"] + pool_args["max_overflow"] if queue_pool else 1,
        call_timeout=call_timeout,
        write_queue=anyio.Lock() if backend == "sqlite" else None,
    )


def _postgres_engine(
    url: str, pool_args: dict[str, int], connect_timeout: float, statement_timeout: float, application_name: str
) -> AsyncEngine:
    bare, tls_mode = split_tls_mode(make_url(url))
    return create_async_engine(
        bare,
        **pool_args,
        pool_timeout=connect_timeout,
        # No pre-ping: asyncpg's costs three round trips (BEGIN, ping, ROLLBACK) on every checkout. A
        # connection that died in the pool fails its first statement instead, and the unit of work
        # runs the transaction again on a fresh one (see ``uow._StaleConnection``).
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={
            **({"ssl": tls_mode} if tls_mode is not None else {}),
            "timeout": connect_timeout,
            "command_timeout": statement_timeout,
            "server_settings": {
                "application_name": application_name,
                "statement_timeout": str(int(statement_timeout * 1000)),
                "idle_in_transaction_session_timeout": str(int(statement_timeout * 2000)),
                # No JIT: it compiles a plan whose estimate passes jit_above_cost on every execution (the
                # claim's pick on a 5,000-task session: 24 ms of compiling for 18 ms of work), and this
                # service sends short statements only.
                "jit": "off",
            },
        },
    )


def _sqlite_engine(url: str, pool_args: dict[str, int], *, busy_timeout_ms: int) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    else:
        pool_args = {}  # in-memory: SQLAlchemy's single static connection; a queue pool would not share it
    # A file database gets the same bounded queue pool as PostgreSQL (WAL lets readers share it).
    if database and database != ":memory:":
        path, timeout = database, busy_timeout_ms / 1000
        engine = create_async_engine(
            url, async_creator=lambda: StopOnceConnection.open(path, timeout=timeout), **pool_args
        )
    else:
        engine = create_async_engine(url, connect_args={"timeout": busy_timeout_ms / 1000}, **pool_args)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # search_text's match (app.domain.search), the same rule PostgreSQL's index computes in SQL.
        dbapi_connection.create_function(SQLITE_SEARCH_FUNCTION, 2, sqlite_search, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the database write lock at BEGIN, readers take none (WAL lets them run alongside).
        writer = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def sqlite_search(document: str | None, words: str | None) -> int:
    """``orchestrator_search(document, words)``: 1 when every space-separated word of ``words`` is a prefix
    of a word of ``document`` (:func:`app.domain.search.matches`), else 0."""
    return int(bool(words) and search.matches(document or "", (words or "").split(" ")))


class StopOnceConnection(aiosqlite.Connection):
    """An aiosqlite connection whose worker thread is stopped once, however often ``stop`` is called.

    aiosqlite 0.22's ``close()`` ends with ``await self.stop()``, and ``stop()`` queues a new stop for the
    worker thread each time. When SQLAlchemy invalidates a connection whose statement was cancelled (a
    call past its time bound, a call cancelled by a drain), it closes it twice at once: a shielded
    graceful ``close()`` and a forced ``stop()``. The forced stop ends the thread first; the graceful
    close's own stop then waits for a thread that is gone, and that task never ends, so the event loop
    never shuts down (a SIGTERM'd process would hang). Here every later ``stop`` returns the first one's
    future, which the thread resolves as it exits.
    """

    _stopping: asyncio.Future[Any] | None = None
    _stopped = False

    @classmethod
    def open(cls, path: str, *, timeout: float) -> StopOnceConnection:
        """What ``aiosqlite.connect(path, timeout=…)`` returns, as this class (SQLAlchemy awaits it)."""
        connection = cls(partial(sqlite3.connect, path, timeout=timeout, check_same_thread=False), 64)
        connection._thread.daemon = True  # as SQLAlchemy's dialect does: never hold the interpreter's exit
        return connection

    def stop(self) -> asyncio.Future[Any] | None:
        if not self._stopped:
            self._stopped = True
            self._stopping = super().stop()
        return self._stopping
