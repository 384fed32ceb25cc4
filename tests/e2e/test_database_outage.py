"""PostgreSQL stopped under a running service, then started again: fail fast, readiness follows, self-recovery.

The test owns a throwaway cluster (``.ci/pg.sh``), because it stops it; the shared test cluster is never
touched. Waits are bounded (``fail_after``) and end on the condition, never on a fixed sleep; the only
pauses are between readiness probes while the circuit's backoff runs out, and a client's retry_after.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx2
import pytest

from app import errors, lifespan
from app.db import schema
from app.db.circuit_breaker import CircuitBreaker
from app.db.engine import create_database
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from app.settings import Settings, to_async_url
from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, client, serve

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
PG_SH = Path(__file__).resolve().parents[2] / ".ci" / "pg.sh"
BOUND = 30  # seconds; every wait below ends on its condition well before this
COOLDOWN = 0.5


@dataclass
class Cluster:
    directory: str
    port: int
    admin_url: str
    running: bool = True

    async def stop(self) -> None:
        await anyio.run_process(["bash", str(PG_SH), "stop", self.directory])
        self.running = False

    async def start(self) -> None:
        if not self.running:
            await anyio.run_process(["bash", str(PG_SH), "start", self.directory, str(self.port)])
            self.running = True


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if shutil.which("pg_ctl") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        message = "needs PostgreSQL's server binaries (pg_ctl) for a throwaway cluster"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI a missing PostgreSQL is a failure, never a skip
        pytest.skip(message)
    directory = tempfile.mkdtemp(prefix="orch-outage-pg.")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    started = anyio.run(lambda: anyio.run_process(["bash", str(PG_SH), "start", directory, str(port)]))
    try:
        yield Cluster(directory, port, started.stdout.decode().strip())
    finally:
        anyio.run(lambda: anyio.run_process(["bash", str(PG_SH), "stop", directory], check=False))
        shutil.rmtree(directory, ignore_errors=True)


async def empty_database(cluster: Cluster) -> str:
    """A database with no tables in the throwaway cluster (what a first deployment meets)."""
    name = f"outage_{time.monotonic_ns()}"
    admin = await asyncpg.connect(cluster.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return to_async_url(cluster.admin_url.rsplit("/", 1)[0] + f"/{name}")


@pytest.fixture
async def outage_database(cluster: Cluster) -> AsyncIterator[str]:
    """A fresh migrated database in the throwaway cluster."""
    await cluster.start()  # a previous test may have left it stopped when it failed
    url = await empty_database(cluster)
    database = create_database(url)
    try:
        await schema.upgrade(database)
    finally:
        await database.dispose()
    yield url


async def readyz(server: RunningServer) -> tuple[int, dict[str, Any]]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{server.base_url}/readyz")
    return response.status_code, response.json()


def outage_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        log_format="console",
        **{"db_connect_timeout_seconds": 2, "db_circuit_cooldown_seconds": COOLDOWN, **overrides},
    )


async def wait_until_ready(server: RunningServer) -> None:
    with anyio.fail_after(BOUND):
        # The circuit's cooldown has to run out: that is time, not an event, so readiness is re-read.
        while (await readyz(server))[0] != 200:  # noqa: ASYNC110
            await anyio.sleep(COOLDOWN / 5)


async def plan(c: Any, title: str) -> Any:
    return await c.call_tool("orchestrator_plan_task", {"title": title, "description": "During an outage test."})


async def test_a_stopped_database_fails_calls_fast_turns_readiness_off_and_recovers_without_a_restart(
    cluster: Cluster, outage_database: str, tmp_path: Path, era: str
) -> None:
    settings = outage_settings(outage_database, tmp_path, db_circuit_failure_threshold=2)
    async with serve(settings) as server, client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
        before = await call_ok(c, "orchestrator_plan_task", title="before", description="Written before the outage.")
        assert (await readyz(server))[0] == 200

        await cluster.stop()
        failures = []
        answered_in = []
        with anyio.fail_after(BOUND):  # fails fast: each call answers, none hangs
            for _ in range(5):
                called = time.monotonic()
                result = await plan(c, "during")
                answered_in.append(time.monotonic() - called)
                assert result.is_error and result.structured_content is not None
                failures.append(result.structured_content["error"])
        assert [(e["code"], e["retryable"]) for e in failures] == [("unavailable", True)] * 5
        # Once open, the circuit refuses without a connect attempt (between probes a fraction of a second apart).
        assert any("circuit open" in e["message"] for e in failures[2:]), failures
        metrics = server.runtime.holder.metrics.registry
        assert metrics.get_sample_value("orchestrator_db_errors_total", {"kind": "circuit_open"}) >= 1

        status, body = await readyz(server)
        assert status == 503 and body["state"] == "ready"
        assert any(reason.startswith("database: ") for reason in body["reasons"]), body
        health = await call_ok(c, "orchestrator_health_check")
        assert health["healthy"] is False
        assert health["checks"]["database"]["ok"] is False and health["checks"]["database"]["reason"]
        assert health["checks"]["connections"]["circuit"] in ("open", "half_open")

        await cluster.start()
        restarted = time.monotonic()
        await wait_until_ready(server)
        recovered_after = time.monotonic() - restarted

        after = await call_ok(c, "orchestrator_plan_task", title="after", description="Written after the outage.")
        page = await call_ok(c, "orchestrator_query_tasks", sort="created_at", order="asc")
        assert [t["id"] for t in page["tasks"]] == [before["task"]["id"], after["task"]["id"]]
        assert (await call_ok(c, "orchestrator_restart_status"))["last"] is None  # recovered with no restart
        assert server.runtime.holder.reboot.problems == {}
    print(  # the numbers for the report: how fast the failure shows, how fast the service comes back
        f"\ncalls after the stop answered unavailable in {', '.join(f'{t:.3f}' for t in answered_in)} s; ready again "
        f"{recovered_after:.3f} s after the database came back"
    )


async def test_a_restart_while_the_database_is_down_fails_at_the_schema_check_and_the_service_still_recovers(
    cluster: Cluster, outage_database: str, tmp_path: Path, era: str
) -> None:
    async with serve(outage_settings(outage_database, tmp_path)) as server, client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
        await cluster.stop()
        with anyio.fail_after(BOUND):
            restart = await call_ok(c, "orchestrator_restart_server", timeout=10, reason="error_recovery")
        assert (restart["outcome"], restart["failed_phase"], restart["state"]) == ("failed", "schema_check", "ready")
        assert restart["error"].startswith("unavailable: ")
        assert [(p["name"], p["outcome"]) for p in restart["phases"]] == [
            ("drain", "ok"),
            ("stop_monitors", "ok"),
            ("dispose_engine", "ok"),
            ("rebuild_engine", "ok"),
            ("schema_check", "failed"),
            ("ready", "ok"),
        ]
        assert (await readyz(server))[0] == 503

        await cluster.start()
        await wait_until_ready(server)
        status = await call_ok(c, "orchestrator_restart_status", include_history=True)
        assert status["last"]["restart_id"] == restart["restart_id"]
        assert [h["restart_id"] for h in status["history"]] == [restart["restart_id"]]  # written once it could be
        assert (await plan(c, "after")).is_error is False


async def healthz(server: RunningServer) -> int:
    async with httpx2.AsyncClient() as http:
        return (await http.get(f"{server.base_url}/healthz")).status_code


async def readiness_when(server: RunningServer, done: Any) -> dict[str, Any]:
    """Re-read /readyz until ``done(body)`` holds (the circuit's cooldown is time, not an event)."""
    with anyio.fail_after(BOUND):
        while not done(body := (await readyz(server))[1]):  # noqa: ASYNC110
            await anyio.sleep(COOLDOWN / 5)
    return body


async def test_a_database_down_at_start_up_leaves_the_service_up_and_unready_until_the_database_comes(
    cluster: Cluster, outage_database: str, tmp_path: Path
) -> None:
    # DESIGN §8 and docs/decisions.md: a database that cannot be reached yet is not a reason to exit (a database
    # restart would become a crash loop); the start-up's schema check used to raise and uvicorn exited 3.
    await cluster.stop()
    async with serve(outage_settings(outage_database, tmp_path)) as server:
        assert await healthz(server) == 200
        status, body = await readyz(server)
        assert (status, body["ready"], body["state"]) == (503, False, "ready")
        assert any(reason.startswith("database: ") for reason in body["reasons"]), body
        assert any(reason.startswith("schema: not checked yet: ") for reason in body["reasons"]), body

        await cluster.start()
        await wait_until_ready(server)
        assert server.runtime.holder.reboot.problems == {}
        async with client(server, "2026-07-28") as c:
            await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
            assert (await plan(c, "after")).is_error is False


async def test_the_owed_schema_check_is_made_when_the_database_comes_without_a_readiness_probe(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A service started without a readiness probe (``docker run``) used to keep its schema check owed for
    ever: here an empty database with auto-migration was never migrated, and tool calls met no tables. The
    ``schema_watch`` monitor makes the check once the database answers; nothing here asks /readyz."""
    url = await empty_database(cluster)
    await cluster.stop()
    async with serve(outage_settings(url, tmp_path, auto_migrate=True)) as server:
        reboot = server.runtime.holder.reboot
        assert reboot.problems["schema"].startswith("not checked yet: ")
        await cluster.start()
        with anyio.fail_after(BOUND):
            while reboot.problems:  # noqa: ASYNC110 - the watch runs on its interval; nothing signals it
                await anyio.sleep(0.2)
        async with client(server, "2026-07-28") as c:
            await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
            assert (await plan(c, "after")).is_error is False
        database = create_database(url)
        try:
            assert (await schema.current_state(database)).at_head  # the watch migrated it
        finally:
            await database.dispose()


async def test_no_call_is_served_on_a_schema_nobody_has_checked(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the database's return and the owed check, a call would meet an empty (or older) schema; it is
    refused as ``unavailable`` saying why, and served once the check is made. The watch's interval is made
    long here so that the window stays open until the test runs the watch itself."""
    monkeypatch.setattr(lifespan, "SCHEMA_WATCH_INTERVAL_SECONDS", 3600.0)
    url = await empty_database(cluster)
    await cluster.stop()
    async with serve(outage_settings(url, tmp_path, auto_migrate=True)) as server:
        await cluster.start()
        async with client(server, "2026-07-28") as c:
            refused = await call_error(c, "orchestrator_initialize_session", working_directory="/repo")
            assert (refused["code"], refused["retryable"]) == ("unavailable", True)
            assert "schema has not been checked yet" in refused["message"]
            watch = server.runtime.supervisor.get("schema_watch")
            with anyio.fail_after(BOUND):
                while server.runtime.holder.reboot.problems:  # the circuit's cooldown is time, not an event
                    await watch.run_once()
                    await anyio.sleep(COOLDOWN / 5)
            await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
            assert (await plan(c, "after")).is_error is False


async def test_a_database_that_comes_back_behind_head_keeps_the_service_unready_naming_the_schema(
    cluster: Cluster, outage_database: str, tmp_path: Path
) -> None:
    older = sorted(schema.known_revisions())[-2]
    database = create_database(outage_database)
    try:
        await schema.downgrade(database, older)
    finally:
        await database.dispose()
    await cluster.stop()
    async with serve(outage_settings(outage_database, tmp_path)) as server:  # auto-migration off
        assert (await readyz(server))[0] == 503
        await cluster.start()
        body = await readiness_when(server, lambda b: not any(r.startswith("database: ") for r in b["reasons"]))
        behind = schema.behind_head_message(older, schema.head_revision())
        assert (body["ready"], body["reasons"]) == (False, [f"schema: {behind}"])

        database = create_database(outage_database)
        try:
            await schema.upgrade(database)  # the operator runs `task-orchestrator migrate`
        finally:
            await database.dispose()
        assert await readyz(server) == (200, {"ready": True, "state": "ready", "reasons": []})


async def test_a_frozen_database_holds_no_call_longer_than_the_call_bound(
    cluster: Cluster, outage_database: str
) -> None:
    # SIGSTOP: the server accepts nothing and answers nothing, the case only timeouts can bound. The connect
    # and statement timeouts keep their defaults (5 s, 30 s): the call bound alone must end each call.
    database = create_database(outage_database, call_timeout=1)
    uow = UnitOfWork(
        database, gate=CircuitBreaker(failure_threshold=2, first_backoff_seconds=60, max_backoff_seconds=60)
    )

    async def ping(repos: Repositories) -> float:
        return await repos.database_state.ping()

    await uow.run(ping, write=False)  # a pooled connection, which the freeze strands
    postmaster = (Path(cluster.directory) / "data" / "postmaster.pid").read_text().split()[0]
    children = (await anyio.run_process(["pgrep", "-P", postmaster], check=False)).stdout.split()
    frozen = [int(pid) for pid in [postmaster, *children]]
    answered_in = []
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        for _ in range(3):
            called = time.monotonic()
            with anyio.fail_after(4), pytest.raises(errors.Unavailable) as failed:  # 1 s bound, 0.5 s to let go
                await uow.run(ping, write=False)
            answered_in.append(time.monotonic() - called)
            assert failed.value.retryable is True
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        await database.dispose()
    assert "circuit open" in failed.value.message  # the third was refused without waiting at all
    print(f"\nfrozen database: calls answered unavailable in {', '.join(f'{t:.2f}' for t in answered_in)} s")


async def test_a_database_stopped_for_a_fraction_of_a_second_costs_about_that_long(
    cluster: Cluster, outage_database: str, tmp_path: Path, era: str
) -> None:
    # The longest backoff stays at its default (5 s): only a backoff that starts small recovers this fast.
    settings = outage_settings(
        outage_database, tmp_path, db_circuit_failure_threshold=1, db_circuit_cooldown_seconds=5.0
    )
    async with serve(settings) as server, client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
        await call_ok(c, "orchestrator_plan_task", title="before", description="Written before the outage.")

        stopped = time.monotonic()
        await cluster.stop()
        during = await plan(c, "during")  # fails, and opens the circuit
        await cluster.start()
        restarted = time.monotonic()
        attempts = []
        with anyio.fail_after(BOUND):
            while (result := await plan(c, "after")).is_error:
                error = result.structured_content["error"]
                attempts.append(error["code"])
                await anyio.sleep(error["retry_after_seconds"])  # what a client does when told to retry later
        recovered_in = time.monotonic() - restarted

    assert during.is_error and during.structured_content["error"]["code"] == "unavailable"
    assert set(attempts) <= {"unavailable"}
    print(
        f"\ndatabase down {restarted - stopped:.2f} s (stop to start); first successful call "
        f"{recovered_in:.2f} s after it was back, after {len(attempts)} refusals"
    )
    assert recovered_in < 1.5  # about a second at most; a fixed 5 s cooldown took up to 5 s
