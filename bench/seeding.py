"""The benchmark's data: a fresh database per backend, migrated with Alembic and seeded, dropped after.

Three backends: ``sqlite`` (a file in the run's temporary directory), ``postgresql`` (the cluster at
``ORCHESTRATOR_TEST_DATABASE_URL``, an admin URL; unset, a throwaway cluster started by ``.ci/pg.sh``
with ``fsync`` off, as the tests run) and ``postgresql-fsync`` (the cluster at
``ORCHESTRATOR_BENCH_FSYNC_DATABASE_URL``; unset, a throwaway cluster started with ``PG_FSYNC=on``:
``fsync``, ``synchronous_commit`` and ``full_page_writes`` on, as production runs PostgreSQL). On
PostgreSQL a database named ``orch_bench_<random>`` is created for the run and dropped with ``FORCE`` at
the end; the cluster's durability settings are read back (``durability``) so a report says what it ran on.

Seeding goes through the app's own layers, never over HTTP: sessions through ``SessionService`` (which
also makes the query session the bench agent's current one), the 10,000 tasks as bulk inserts through
``TaskRepository.insert_many`` and ``DependencyRepository.insert_many`` in one unit of work. The tasks
look like a real plan: 1,000 trees of a root and nine children created in one transaction each (so each
tree shares one ``created_at``, as ``orchestrator_plan_task`` makes them), a mix of statuses,
priorities, types and specialists, due dates on some, and a chain of dependencies inside half the trees.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import asyncpg
from sqlalchemy.engine import make_url

from app.db import schema
from app.db.engine import create_database
from app.db.models import Task
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from app.domain import ids
from app.domain.clock import SystemClock
from app.services.caller import ALL_SCOPES, Caller
from app.services.sessions.sessions import SessionService
from app.settings import to_async_url

ADMIN_URL_ENV = "ORCHESTRATOR_TEST_DATABASE_URL"
FSYNC_ADMIN_URL_ENV = "ORCHESTRATOR_BENCH_FSYNC_DATABASE_URL"
BACKENDS = ("postgresql-fsync", "postgresql", "sqlite")
PG_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "pg.sh"
BENCH_AGENT = "bench-agent"
SETTLE_PASSES = 5
SEED_CALL_TIMEOUT_SECONDS = 300.0
TREE_SIZE = 10
STATUS_WEIGHTS = {
    "pending": 40,
    "in_progress": 10,
    "blocked": 5,
    "completed": 33,
    "failed": 3,
    "cancelled": 6,
    "archived": 3,
}
PRIORITIES = ("low", "medium", "medium", "high", "critical")
TASK_TYPES = ("standard", "implementation", "testing", "documentation", "research", "review")
SPECIALISTS = ("coder", "tester", "documenter", "reviewer", "architect", "analyst", "generic")
COMPLEXITIES = ("trivial", "simple", "moderate", "complex", "very_complex")


class BenchSetupError(RuntimeError):
    """The benchmark cannot run here (a missing setting, say); the message says what to do."""


@dataclass(frozen=True)
class SeededData:
    query_session_id: str  # holds exactly ``task_count`` tasks; orchestrator_query_tasks reads it
    plan_session_id: str  # orchestrator_plan_task writes here, so the query session's count never moves
    task_count: int
    dependency_count: int
    work_session_id: str = ""  # ``ready_count`` ready tasks for next_task + complete_task pairs
    ready_count: int = 0


def parse_backends(text: str, both: tuple[str, ...] = ("sqlite", "postgresql")) -> list[str]:
    """``--backend``: a comma list of ``BACKENDS``; ``both`` is ``both`` (as the option always meant),
    ``all`` every backend. Raises ``ValueError`` naming an unknown one."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        expanded = list(both) if part == "both" else list(BACKENDS) if part == "all" else [part]
        unknown = [n for n in expanded if n not in BACKENDS]
        if unknown:
            raise ValueError(f"unknown backend {unknown[0]!r}; use {', '.join(BACKENDS)}, both or all")
        names += [n for n in expanded if n not in names]
    if not names:
        raise ValueError(f"no backend given; use {', '.join(BACKENDS)}, both or all")
    return names


def _plain_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@asynccontextmanager
async def throwaway_cluster(fsync: bool) -> AsyncIterator[str]:
    """A PostgreSQL cluster of ``.ci/pg.sh`` in a temporary directory (on disk), stopped and removed after.

    Raises:
        BenchSetupError: the cluster did not start (the script's message is included).
    """
    directory = tempfile.mkdtemp(prefix="orch-bench-pg.")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PG_FSYNC": "on" if fsync else "off"}
    try:
        started = await anyio.run_process(["bash", str(PG_SCRIPT), "start", directory, str(port)], env=env, check=False)
        if started.returncode != 0:
            raise BenchSetupError(f"{PG_SCRIPT} start failed: {started.stderr.decode().strip()[-500:]}")
        print(f"bench: started a PostgreSQL cluster (fsync {'on' if fsync else 'off'}) in {directory}", file=sys.stderr)
        yield started.stdout.decode().strip()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.run_process(["bash", str(PG_SCRIPT), "stop", directory], check=False)
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def admin_url(backend: str) -> AsyncIterator[str]:
    """The admin URL of the PostgreSQL cluster for ``backend`` (its environment variable, else a throwaway one)."""
    if backend not in ("postgresql", "postgresql-fsync"):
        raise BenchSetupError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    given = os.environ.get(FSYNC_ADMIN_URL_ENV if backend == "postgresql-fsync" else ADMIN_URL_ENV)
    if given:
        yield given
        return
    async with throwaway_cluster(fsync=backend == "postgresql-fsync") as url:
        yield url


async def durability(url: str) -> dict[str, str]:
    """The settings that decide what a commit costs on this database (``{"backend": "sqlite"}`` there)."""
    if make_url(url).get_backend_name() != "postgresql":
        return {"backend": "sqlite"}
    conn = await asyncpg.connect(_plain_dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit,"
            " current_setting('full_page_writes') AS full_page_writes, current_setting('server_version') AS version"
        )
    finally:
        await conn.close()
    assert row is not None
    return {"backend": "postgresql", **dict(row.items())}


@asynccontextmanager
async def fresh_database(backend: str, workdir: Path) -> AsyncIterator[str]:
    """An empty database for one run (async SQLAlchemy URL); PostgreSQL's is dropped afterwards.

    Raises:
        BenchSetupError: an unknown backend, or a PostgreSQL cluster that could not be started.
    """
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{(workdir / 'bench.db').resolve()}"
        return
    async with admin_url(backend) as admin, _created_database(admin) as url:
        yield url


@asynccontextmanager
async def _created_database(admin: str) -> AsyncIterator[str]:
    name = f"orch_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(_plain_dsn(admin))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield to_async_url(_plain_dsn(admin, name))
    finally:
        conn = await asyncpg.connect(_plain_dsn(admin))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def migrate_and_seed(
    url: str, task_count: int, *, ready_count: int = 0, rng_seed: int = 7, other_sessions: int = 0
) -> SeededData:
    """Upgrade ``url`` to the Alembic head, then the sessions: plan (empty), work (``ready_count`` ready
    tasks, when asked for) and query (``task_count`` tasks, made the bench agent's current session), and
    ``other_sessions`` more shaped like the query session, seeded before it (a database other work shares).

    The bulk insert is one transaction of 10,000 rows: on a loaded machine it can outlast the service's
    per-call bound, so seeding gets ``SEED_CALL_TIMEOUT_SECONDS`` instead."""
    database = create_database(url, call_timeout=SEED_CALL_TIMEOUT_SECONDS)
    try:
        await schema.upgrade(database)
        uow = UnitOfWork(database)
        clock = SystemClock()
        sessions = SessionService(uow, clock)
        caller = Caller(actor=BENCH_AGENT, scopes=ALL_SCOPES)
        plan = await sessions.initialize_session(
            caller, working_directory="/bench/plan", name="bench plan", description=None, new_session=True
        )
        work_id = ""
        ready_rows: list[Task] = []
        if ready_count:
            work = await sessions.initialize_session(
                caller, working_directory="/bench/work", name="bench work", description=None, new_session=True
            )
            work_id = work.session.id
            ready_rows = ready_tasks(work_id, clock.now(), ready_count, random.Random(rng_seed + 1))
        for n in range(other_sessions):
            other = await sessions.initialize_session(
                caller, working_directory=f"/bench/other/{n}", name=f"other {n}", description=None, new_session=True
            )
            other_rows, other_edges = build_tasks(
                other.session.id, clock.now(), task_count, random.Random(rng_seed + 2 + n)
            )
            await uow.run(_inserting(other.session.id, other_rows, other_edges, clock.now()), write=True)
        query = await sessions.initialize_session(
            caller, working_directory="/bench/query", name="bench query", description=None, new_session=True
        )
        rows, edges = build_tasks(query.session.id, clock.now(), task_count, random.Random(rng_seed))
        await uow.run(_inserting(query.session.id, rows + ready_rows, edges, clock.now()), write=True)
    finally:
        await database.dispose()
    if database.backend == "postgresql":
        await settle(url)
    return SeededData(query.session.id, plan.session.id, len(rows), len(edges), work_id, len(ready_rows))


def _inserting(
    session_id: str, rows: list[Task], edges: list[tuple[str, str]], now: datetime
) -> Callable[[Repositories], Awaitable[None]]:
    """The unit of work that writes seeded rows and ``session_id``'s dependency edges."""

    async def insert(repos: Repositories) -> None:
        await repos.tasks.insert_many(rows)
        await repos.dependencies.insert_many(session_id, edges, now)

    return insert


async def settle(url: str) -> None:
    """VACUUM (ANALYZE): the state autovacuum reaches soon after a bulk load (statistics, visibility map).

    The run then measures a settled table rather than the planner's guesses about a fresh one, and no
    autovacuum pass starts mid-run. The first pass after the load can leave the visibility map empty
    (seen on PostgreSQL 15), which keeps index-only scans off, so it is repeated until the map covers
    the task table (a few passes at most).
    """
    database = create_database(url)
    try:
        async with database.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for _ in range(SETTLE_PASSES):
                await conn.exec_driver_sql("VACUUM (ANALYZE)")
                pages = await conn.exec_driver_sql(
                    "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'task'"
                )
                total, visible = pages.one()
                if visible >= total:
                    return
            print(f"bench: the task table stayed {visible}/{total} pages all-visible after vacuuming", file=sys.stderr)
    finally:
        await database.dispose()


def build_tasks(
    session_id: str, now: datetime, count: int, rng: random.Random
) -> tuple[list[Task], list[tuple[str, str]]]:
    """``count`` task rows in trees of ``TREE_SIZE`` (parents first) and their dependency edges."""
    rows: list[Task] = []
    edges: list[tuple[str, str]] = []
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    trees = (count + TREE_SIZE - 1) // TREE_SIZE
    for tree in range(trees):
        created = now - timedelta(minutes=(trees - tree) * 3)
        root_id: str | None = None
        previous: str | None = None
        chained = tree % 2 == 0
        for position in range(min(TREE_SIZE, count - len(rows))):
            task_id = ids.new_task_id()
            status = rng.choices(statuses, weights)[0]
            rows.append(_task(task_id, session_id, root_id, tree, position, status, created, now, rng))
            if root_id is None:
                root_id = task_id
            elif chained and previous is not None and previous != root_id:
                edges.append((task_id, previous))
            previous = task_id
    return rows, edges


def _task(
    task_id: str,
    session_id: str,
    parent_id: str | None,
    tree: int,
    position: int,
    status: str,
    created: datetime,
    now: datetime,
    rng: random.Random,
) -> Task:
    started = created + timedelta(minutes=1) if status not in ("pending", "blocked") else None
    holder = f"agent-{rng.randrange(8)}" if status == "in_progress" else None
    specialist = rng.choice(SPECIALISTS)
    kind = "Deliver" if parent_id is None else "Step"
    return Task(
        id=task_id,
        session_id=session_id,
        parent_id=parent_id,
        title=f"{kind} {tree}.{position}: {specialist} work on module {tree % 37}",
        description=(
            f"Part {position} of plan {tree}. Change the module, keep the public interface stable, and add "
            "tests that prove the new behaviour. Done when the suite is green and the notes are written."
        ),
        task_type=rng.choice(TASK_TYPES),
        status=status,
        complexity=rng.choice(COMPLEXITIES),
        specialist_type=specialist,
        priority=rng.choice(PRIORITIES),
        estimated_effort=f"{rng.randrange(1, 9)}h" if rng.random() < 0.5 else None,
        due_at=now + timedelta(days=rng.randrange(1, 60)) if rng.random() < 0.3 else None,
        context={"module": f"module_{tree % 37}", "plan": tree, "files": [f"src/module_{tree % 37}.py"]},
        assigned_to=holder,
        claimed_at=started if holder else None,
        lease_expires_at=now + timedelta(days=1) if holder else None,
        attempt_count=1 if started else 0,
        summary="Done; see the artifact for details." if status == "completed" else None,
        version=1 if status == "pending" else 3,
        created_by=BENCH_AGENT,
        created_at=created,
        updated_at=started or created,
        started_at=started,
        completed_at=created + timedelta(minutes=2) if status == "completed" else None,
    )


async def migrate_and_seed_ready(url: str, task_count: int, *, rng_seed: int = 11) -> str:
    """Upgrade ``url`` to the Alembic head, then one session of ``task_count`` ready tasks; its id.

    Every task is pending, top-level and without dependencies, so each one is ready at once and an agent
    loop of ``orchestrator_next_task`` → ``orchestrator_complete_task`` can drain the session.
    """
    database = create_database(url)
    try:
        await schema.upgrade(database)
        uow = UnitOfWork(database)
        clock = SystemClock()
        caller = Caller(actor=BENCH_AGENT, scopes=ALL_SCOPES)
        opened = await SessionService(uow, clock).initialize_session(
            caller, working_directory="/bench/agents", name="bench agents", description=None, new_session=True
        )
        session_id = opened.session.id
        rows = ready_tasks(session_id, clock.now(), task_count, random.Random(rng_seed))

        async def insert(repos: Repositories) -> None:
            await repos.tasks.insert_many(rows)

        await uow.run(insert, write=True)
    finally:
        await database.dispose()
    if database.backend == "postgresql":
        await settle(url)
    return session_id


def ready_tasks(session_id: str, now: datetime, count: int, rng: random.Random) -> list[Task]:
    """``count`` pending, top-level tasks without dependencies: each is ready for ``next_task`` at once."""
    return [
        _task(ids.new_task_id(), session_id, None, n, 0, "pending", now - timedelta(minutes=1), now, rng)
        for n in range(count)
    ]
