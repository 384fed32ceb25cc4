"""One signal path per replica (DESIGN §4.7): committed changes reach the waiters and the change feed of
every replica.

- :class:`ChangeRouter` (one per process) is told after each local commit what it changed
  (``app.services.changes``). It wakes this process's waiters and feeds the change feed at once, and on
  PostgreSQL also sends the ids with ``NOTIFY`` on one channel, so every other replica does the same when
  its listener hears it (a replica ignores its own notifications: it already acted on them).
- :class:`ChangeListener` is the supervised monitor that keeps one dedicated ``LISTEN`` connection per
  replica (asyncpg directly, outside the pool), reconnecting with backoff after an outage; when it comes
  back, every waiter re-checks the queue, so nothing that became ready meanwhile is missed. It also
  wakes waiters every ``ORCHESTRATOR_WAIT_RECHECK_SECONDS`` whatever happens, so a signal lost with a
  replica that crashed between its commit and its ``NOTIFY`` (or written by another process on SQLite)
  never strands a waiter for longer. On SQLite there is no connection: signals stay in process. Consumers
  that come and go (the board's event streams) ``subscribe`` and are told through ``changes_missed`` when
  the connection is (re)established, since changes made meanwhile were not heard.
- :func:`drain_watch` ends every wait the moment the service leaves ``ready`` (SIGTERM, begin_drain, a
  restart) and lets waits start again when it is back.

Outgoing notifications wait in a bounded outbox while the connection is down and are sent when it is
back; delivery is at-most-once (the outbox drops the oldest past its bound; receivers re-check anyway).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import asyncpg
from sqlalchemy.engine import make_url

from app.observability.metrics import Metrics, WaitingMetrics
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.services.changes import Change
from app.services.work.waiting import WorkWaiters

log = logging.getLogger("app.runtime.work_signals")
CHANNEL = "orchestrator_changes"
MAX_PAYLOAD_BYTES = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes and more
OUTBOX_LIMIT = 1000  # notifications kept while the connection is down (the oldest are dropped past it)
NOTIFY_TIMEOUT_SECONDS = 2.0
TICK_SECONDS = 0.5  # how often the listener monitor looks at its connection (it does no I/O when healthy)
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
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeRouter:
    """Routes committed changes to this process's waiters and change feed, and to the other replicas."""

    def __init__(self, waiters: WorkWaiters, instance_id: str) -> None:
        self.waiters = waiters
        self.instance_id = instance_id
        self._consumers: list[Callable[[Change], None]] = []
        self._missed_hooks: list[Callable[[], None]] = []
        self._outbox: deque[str] = deque(maxlen=OUTBOX_LIMIT)
        self._send: Callable[[list[str]], Any] | None = None
        self.remote = False  # True on PostgreSQL: changes also go out on the channel
        self._flushing = False

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

    async def changed(self, change: Change) -> None:
        """A local commit changed these ids (called after the commit; never raises)."""
        self._dispatch(change)
        if self.remote:
            self._outbox.extend(encode(change, self.instance_id))
            await self.flush()

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

    def connect_sender(self, send: Callable[[list[str]], Any] | None) -> None:
        self._send = send

    async def flush(self) -> None:
        """Send what waits in the outbox (one flusher at a time; the others' changes ride along)."""
        if self._flushing or self._send is None:
            return
        self._flushing = True
        try:
            while self._outbox and self._send is not None:
                batch = list(self._outbox)
                self._outbox.clear()
                try:
                    with anyio.fail_after(NOTIFY_TIMEOUT_SECONDS):
                        await self._send(batch)
                except Exception as exc:  # the commit stands; the listener reconnects and sends these then
                    self._outbox.extendleft(reversed(batch))
                    log.warning(
                        "notify_failed", extra={"event": "notify_failed", "error": f"{type(exc).__name__}: {exc}"}
                    )
                    return
        finally:
            self._flushing = False


class SignallingSink:
    """The services' outcome sink: metrics as before, plus the change signal after each commit."""

    def __init__(self, metrics: Metrics, router: ChangeRouter) -> None:
        self._metrics = metrics
        self._router = router

    def task_transition(self, from_status: str, to_status: str) -> None:
        self._metrics.task_transition(from_status, to_status)

    def claim(self, outcome: str) -> None:
        self._metrics.claim(outcome)

    async def changed(self, change: Change) -> None:
        await self._router.changed(change)


class ChangeListener:
    """The monitor that keeps the replica's LISTEN connection up and re-checks waiters at an interval."""

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
        self._lock = anyio.Lock()
        self._failures = 0
        self._next_attempt = 0.0
        self._next_recheck = time.monotonic() + recheck_seconds
        self._connected_before = False
        router.remote = dsn is not None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def run_once(self) -> None:
        now = time.monotonic()
        if self._dsn is not None and not self.connected and now >= self._next_attempt:
            await self._connect()
        if now >= self._next_recheck:
            self._next_recheck = now + self._recheck_seconds
            self._router.waiters.recheck("interval")

    async def _connect(self) -> None:
        assert self._dsn is not None
        await self._close()
        try:
            conn = await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout,
                server_settings={"application_name": self._application_name},
            )
            await conn.add_listener(CHANNEL, self._on_notification)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._failures += 1
            self._next_attempt = time.monotonic() + min(0.25 * 2 ** (self._failures - 1), MAX_BACKOFF_SECONDS)
            if self._failures == 1:
                log.warning("listener_down", extra={"event": "listener_down", "error": f"{type(exc).__name__}: {exc}"})
            return
        self._conn = conn
        self._failures = 0
        if self._connected_before:
            log.info("listener_reconnected", extra={"event": "listener_reconnected"})
            if self._metrics is not None:
                self._metrics.listener_reconnected()
        self._connected_before = True
        self._router.connect_sender(self._send)
        await self._router.flush()
        # Whatever became ready while nobody was listening: every waiter looks again now.
        self._router.waiters.recheck("reconnect")
        self._router.changes_missed()  # and the board's open streams end, so their pages re-read

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._router.received(payload)

    async def _send(self, payloads: list[str]) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            raise ConnectionError("the LISTEN connection is down")
        async with self._lock:
            try:
                await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, payloads)
            except BaseException:
                conn.terminate()  # in an unknown state: the monitor connects afresh
                raise

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with anyio.move_on_after(1.0, shield=True):
                await conn.close()
            if not conn.is_closed():
                conn.terminate()

    async def aclose(self) -> None:
        """Stop listening (the component stack calls this after the monitors stop)."""
        self._router.connect_sender(None)
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
