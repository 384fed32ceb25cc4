"""One signal path per replica (DESIGN §4.7): committed changes reach the waiters and the change feed of
every replica.

- :class:`ChangeRouter` (one per process) routes changes. Inside each write that can make work ready, as
  its transaction's last statement, it sends the changed ids with ``SELECT pg_notify(…)`` on one channel
  (PostgreSQL): PostgreSQL delivers the notification exactly when the transaction commits and drops it
  when it rolls back, so a replica that dies right after its commit cannot lose the signal. After the
  commit it wakes this process's waiters and feeds the change feed at once; every other replica does the
  same when its listener hears the notification (a replica ignores its own: it already acted on them).
  A write that only claimed (it wakes nobody; only the change feed wants it) is not held up for that:
  its ids wait in a bounded outbox that the listener sends on its next tick, on its own connection.
- :class:`ChangeListener` is the supervised monitor that keeps one dedicated ``LISTEN`` connection per
  replica (asyncpg directly, outside the pool), reconnecting with backoff after an outage; when it comes
  back, every waiter re-checks the queue, so nothing that became ready meanwhile is missed. While the
  connection is up, its only statements are the outbox's sends and a liveness check every
  ``ORCHESTRATOR_WAIT_RECHECK_SECONDS`` (a connection that stopped answering is replaced, and the waiters
  re-check): idle waiters cost the database nothing. On SQLite there is no connection: signals stay in
  process, and waiters re-check the queue every ``ORCHESTRATOR_WAIT_RECHECK_SECONDS`` instead (another
  process may write the file). Consumers that come and go (the board's event streams) ``subscribe`` and
  are told through ``changes_missed`` when the connection is (re)established, since changes made
  meanwhile were not heard.
- :func:`drain_watch` ends every wait the moment the service leaves ``ready`` (SIGTERM, begin_drain, a
  restart) and lets waits start again when it is back.

Delivery to the change feed is at-most-once (a notification that arrives while a listener is down is
lost to it, and the outbox drops its oldest past its bound; waiters re-check on reconnect, subscribers
re-read).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import anyio
import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import asyncpg_connect_args, split_tls_mode
from app.observability.metrics import Metrics, WaitingMetrics
from app.runtime.monitors import MonitorDegraded
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.services.changes import Change
from app.services.work.waiting import WorkWaiters

log = logging.getLogger("app.runtime.work_signals")
CHANNEL = "orchestrator_changes"
MAX_PAYLOAD_BYTES = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes and more
TICK_SECONDS = 0.5  # how often the listener monitor looks at its connection and sends the outbox
# One statement, the transaction's last: PostgreSQL sends the payloads when (and only if) the transaction commits.
NOTIFY = text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p")
OUTBOX_LIMIT = 1000  # claim-only notifications kept for the listener (the oldest are dropped past it)
MAX_BACKOFF_SECONDS = 5.0


def encode(change: Change, origin: str) -> list[str]:
    """NOTIFY payloads for ``change``: the ids, split so each payload stays under the channel's limit."""
    head = {"o": origin, "a": round(change.at, 4), "w": int(change.wakes), "s": list(change.session_ids)}
    payloads: list[str] = []
    tasks: list[str] = []
    size = len(json.dumps(head)) + 10
    for task_id in change.task_ids:
        if tasks and size + len(task_id) + 4 > MAX_PAYLOAD_BYTES:
            payloads.append(json.dumps({**head, "t": tasks}, separators=(",", ":")))
            tasks, size = [], len(json.dumps(head)) + 10
        tasks.append(task_id)
        size += len(task_id) + 4
    payloads.append(json.dumps({**head, "t": tasks}, separators=(",", ":")))
    return payloads


async def notify_with_commit(session: AsyncSession, change: Change, origin: str) -> None:
    """Queue ``change`` on the channel inside ``session``'s transaction: PostgreSQL sends it at the commit."""
    await session.execute(NOTIFY, {"channel": CHANNEL, "payloads": encode(change, origin)})


def decode(payload: str) -> tuple[str, Change] | None:
    """(origin, change) from a payload, or None when it is not one of ours."""
    try:
        data = json.loads(payload)
        change = Change(
            tuple(str(s) for s in data["s"]), tuple(str(t) for t in data["t"]), bool(data["w"]), float(data["a"])
        )
        return str(data["o"]), change
    except (ValueError, KeyError, TypeError):
        log.warning("change_payload_ignored", extra={"event": "change_payload_ignored"})
        return None


def listen_dsn(url: str) -> str | None:
    """The asyncpg DSN for the LISTEN connection, or None for SQLite (signals stay in process)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    bare, tls_mode = split_tls_mode(parsed)  # a DSN's ``?ssl=`` would reach the server as a setting
    parsed = bare.update_query_dict({"sslmode": tls_mode}) if tls_mode is not None else bare
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeRouter:
    """Routes changes to this process's waiters and change feed, and (PostgreSQL) to the other replicas."""

    def __init__(self, waiters: WorkWaiters, instance_id: str) -> None:
        self.waiters = waiters
        self.instance_id = instance_id
        self._consumers: list[Callable[[Change], None]] = []
        self._missed_hooks: list[Callable[[], None]] = []
        self._outbox: deque[str] = deque(maxlen=OUTBOX_LIMIT)
        self.remote = False  # True on PostgreSQL: changes also go out on the channel

    def add_consumer(self, consumer: Callable[[Change], None]) -> None:
        """``consumer(change)`` runs for every change, local or from another replica (it must not block)."""
        self._consumers.append(consumer)

    def subscribe(
        self, consumer: Callable[[Change], None], *, on_missed: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Like :meth:`add_consumer`, for a consumer that comes and goes (a board page's stream); returns
        the function that removes it. ``on_missed()`` runs when changes may have been missed (see
        :meth:`changes_missed`); neither may block."""
        self._consumers.append(consumer)
        if on_missed is not None:
            self._missed_hooks.append(on_missed)

        def unsubscribe() -> None:
            with suppress(ValueError):
                self._consumers.remove(consumer)
            if on_missed is not None:
                with suppress(ValueError):
                    self._missed_hooks.remove(on_missed)

        return unsubscribe

    @property
    def consumer_count(self) -> int:
        """How many consumers the router feeds now (subscriptions included)."""
        return len(self._consumers)

    def changes_missed(self) -> None:
        """The LISTEN connection has just been (re)established: other replicas' changes made while it was
        down were not heard. Subscribers that asked to know are told, so they can re-read."""
        for hook in list(self._missed_hooks):
            try:
                hook()
            except Exception:
                log.exception("change_consumer_failed", extra={"event": "change_consumer_failed"})

    async def publish(self, session: AsyncSession, change: Change) -> None:
        """Inside a write's transaction, as its last statement: the NOTIFY that goes out with its commit."""
        if self.remote and change.wakes:
            await notify_with_commit(session, change, self.instance_id)

    async def changed(self, change: Change) -> None:
        """A local commit changed these ids (called after the commit; never raises)."""
        self._dispatch(change)
        if self.remote and not change.wakes:  # a claim: for the other replicas' change feed, on the next tick
            self._outbox.extend(encode(change, self.instance_id))

    def take_outbox(self) -> list[str]:
        """The claim-only notifications waiting to be sent (the listener sends them)."""
        payloads = list(self._outbox)
        self._outbox.clear()
        return payloads

    def received(self, payload: str) -> None:
        """A notification from the channel (another replica's commit)."""
        decoded = decode(payload)
        if decoded is None or decoded[0] == self.instance_id:
            return
        self._dispatch(decoded[1])

    def _dispatch(self, change: Change) -> None:
        if change.wakes:
            self.waiters.signal(change.session_ids, "signal", change.at)
        for consumer in list(self._consumers):  # a consumer may unsubscribe while it runs
            try:
                consumer(change)
            except Exception:  # one consumer's failure must not cost the waiters or the others their signal
                log.exception("change_consumer_failed", extra={"event": "change_consumer_failed"})


class SignallingSink:
    """The services' outcome sink: metrics as before, plus the change signal at and after each commit."""

    def __init__(self, metrics: Metrics, router: ChangeRouter) -> None:
        self._metrics = metrics
        self._router = router

    def task_transition(self, from_status: str, to_status: str) -> None:
        self._metrics.task_transition(from_status, to_status)

    def claim(self, outcome: str) -> None:
        self._metrics.claim(outcome)

    async def publish(self, session: AsyncSession, change: Change) -> None:
        await self._router.publish(session, change)

    async def changed(self, change: Change) -> None:
        await self._router.changed(change)


class ChannelAnnouncer:
    """The sink of a command that writes outside any replica (``task-orchestrator import``): no waiters or
    feed live in its process, so on PostgreSQL it only sends its transaction's ids on the channel, with the
    commit, for every running replica to hear; on SQLite it sends nothing (the replicas' interval re-check
    finds the new work)."""

    def __init__(self, database_url: str) -> None:
        self._remote = listen_dsn(database_url) is not None
        self._origin = f"cli-{uuid.uuid4().hex[:12]}"

    def task_transition(self, from_status: str, to_status: str) -> None:
        return None

    def claim(self, outcome: str) -> None:
        return None

    async def publish(self, session: AsyncSession, change: Change) -> None:
        if self._remote:
            await notify_with_commit(session, change, self._origin)

    async def changed(self, change: Change) -> None:
        return None


class ChangeListener:
    """The monitor that keeps the replica's LISTEN connection up (SQLite: re-checks waiters at an interval).

    ``recheck_seconds`` (``ORCHESTRATOR_WAIT_RECHECK_SECONDS``): on PostgreSQL, how often the connection is
    checked with one query of its own; with no connection, how often the waiters re-check the queue.

    A PostgreSQL replica whose LISTEN connection stays down longer than ``recheck_seconds`` (a database
    outage, or a connection the server refuses) would hear no other replica's work: its waiters re-check
    the queue every ``recheck_seconds`` instead, as on SQLite, until it is back, and each run raises
    :class:`MonitorDegraded` so health_check shows why (readiness stays true: nothing is missed).
    """

    name = "change_listener"

    def __init__(
        self,
        router: ChangeRouter,
        *,
        dsn: str | None,
        recheck_seconds: float,
        connect_timeout: float,
        application_name: str,
        metrics: WaitingMetrics | None = None,
    ) -> None:
        self.interval = TICK_SECONDS
        self._router = router
        self._dsn = dsn
        self._recheck_seconds = recheck_seconds
        self._connect_timeout = connect_timeout
        self._application_name = application_name[:63]
        self._metrics = metrics
        self._conn: asyncpg.Connection | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._next_recheck = time.monotonic() + recheck_seconds  # the liveness check, on PostgreSQL
        self.checks = 0  # liveness checks answered (tests count them to frame a window)
        self._connected_before = False
        self._down_since: float | None = None  # when the connection was last found missing
        self._last_error: str | None = None
        router.remote = dsn is not None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def run_once(self) -> None:
        now = time.monotonic()
        due = now >= self._next_recheck
        if due:
            self._next_recheck = now + self._recheck_seconds
        if self._dsn is None:
            if due:  # no signal from other processes can reach us: look at the queue now and then
                self._router.waiters.recheck("interval")
            return
        if self.connected and due:
            await self._check()
        if not self.connected and time.monotonic() >= self._next_attempt:
            await self._connect()  # the waiters re-check once it is back
        if self.connected:
            self._down_since = None
            await self._send_outbox()
            return
        if self._down_since is None:
            self._down_since = now
        down = time.monotonic() - self._down_since
        if down >= self._recheck_seconds:  # past the grace a reconnect usually needs: the SQLite fallback
            if due:
                self._router.waiters.recheck("interval")
            raise MonitorDegraded(
                f"no LISTEN connection for {down:.0f} s ({self._failures} connect attempts failed, the last: "
                f"{self._last_error or 'connection lost'}); waiters re-check the queue every "
                f"{self._recheck_seconds:g} s instead"
            )

    async def _send_outbox(self) -> None:
        """Send the claim-only notifications (at most once: a failed send drops them with the connection)."""
        conn = self._conn
        payloads = self._router.take_outbox()
        if conn is None or not payloads:
            return
        try:
            with anyio.fail_after(self._connect_timeout):
                await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, payloads)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("notify_failed", extra={"event": "notify_failed", "error": f"{type(exc).__name__}: {exc}"})
            conn.terminate()

    async def _check(self) -> None:
        """One query on the LISTEN connection; one that fails or hangs is dropped (and reconnected)."""
        conn = self._conn
        assert conn is not None
        try:
            with anyio.fail_after(self._connect_timeout):
                await conn.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("listener_lost", extra={"event": "listener_lost", "error": f"{type(exc).__name__}: {exc}"})
            conn.terminate()
            return
        self.checks += 1

    async def _connect(self) -> None:
        assert self._dsn is not None
        await self._close()
        try:
            # The engine's own connect arguments for this URL (a DSN handed to asyncpg as is would pass the
            # SQLAlchemy-only options, e.g. prepared_statement_cache_size, to the server, which refuses them).
            conn = await asyncpg.connect(
                **asyncpg_connect_args(self._dsn),
                timeout=self._connect_timeout,
                server_settings={"application_name": self._application_name},
            )
            await conn.add_listener(CHANNEL, self._on_notification)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._failures += 1
            self._last_error = f"{type(exc).__name__}: {exc}"[:200]
            self._next_attempt = time.monotonic() + min(0.25 * 2 ** (self._failures - 1), MAX_BACKOFF_SECONDS)
            if self._failures == 1:
                log.warning("listener_down", extra={"event": "listener_down", "error": self._last_error})
            return
        self._conn = conn
        self._failures = 0
        self._last_error = None
        if self._connected_before:
            log.info("listener_reconnected", extra={"event": "listener_reconnected"})
            if self._metrics is not None:
                self._metrics.listener_reconnected()
        self._connected_before = True
        # Whatever became ready while nobody was listening: every waiter looks again now.
        self._router.waiters.recheck("reconnect")
        self._router.changes_missed()  # and the board's open streams end, so their pages re-read

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._router.received(payload)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with anyio.move_on_after(1.0, shield=True):
                await conn.close()
            if not conn.is_closed():
                conn.terminate()

    async def aclose(self) -> None:
        """Stop listening (the component stack calls this after the monitors stop)."""
        await self._close()


async def _watch(reboot: RebootManager, waiters: WorkWaiters) -> None:
    while True:
        await reboot.wait_until(lambda: reboot.state != ServiceState.READY, None)
        waiters.drain()
        await reboot.wait_until(lambda: reboot.state == ServiceState.READY, None)
        waiters.resume()


@asynccontextmanager
async def drain_watch(reboot: RebootManager, waiters: WorkWaiters) -> AsyncIterator[None]:
    """While entered: every wait ends at once when the service leaves ``ready``."""
    async with anyio.create_task_group() as group:
        group.start_soon(_watch, reboot, waiters, name="drain-watch")
        try:
            yield
        finally:
            group.cancel_scope.cancel()
