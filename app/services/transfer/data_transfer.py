"""Export the whole graph to the JSON Lines format of :mod:`app.services.transfer.dump_format`, and import it.

This is how a user outgrows the embedded SQLite file: ``task-orchestrator export`` on SQLite, then
``task-orchestrator import`` on PostgreSQL (or back). The export reads one consistent snapshot. The import
validates the whole file first, then writes everything in ONE transaction, or nothing: an id that already
exists in the target (session, task or artifact) is refused naming the id and its line.

Event ids: the trail needs monotonic ids in the target, and ``agent_visit.last_event_id`` points into it.
Every imported event id is shifted by the target's current highest event id (so into an empty database
the ids are kept exactly), visits are shifted the same way, and PostgreSQL's sequence is moved past the
result. Agents are per actor, not per session: an actor that already exists in the target keeps its row.

Like every write that can make work ready (DESIGN §4.7), the import announces what it added when its sink
takes changes: on PostgreSQL the ids go out on the change channel with the import's commit, so every
replica's waiters re-check and its change feed and board hear of the imported sessions and tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app import errors
from app.db import schema
from app.db.models import Agent
from app.db.repositories import Repositories
from app.services.base import Service
from app.services.changes import Change, ChangeSink
from app.services.transfer import dump_format
from app.services.transfer.dump_format import RECORD_TYPES, ParsedDump
from app.services.views import View

EVENT_PAGE = 1000


class ExportSummary(View):
    schema_revision: str
    counts: dict[str, int]


class ImportSummary(View):
    counts: dict[str, int]
    agents_kept: list[str]
    event_id_offset: int


def parents_first(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks ordered so a parent always precedes its children (then by creation), cycle-safe."""
    by_id = {row["id"]: row for row in rows}

    def depth(row: dict[str, Any]) -> int:
        seen, level = {row["id"]}, 0
        parent = row["parent_id"]
        while parent in by_id and parent not in seen:
            seen.add(parent)
            level += 1
            parent = by_id[parent]["parent_id"]
        return level

    return sorted(rows, key=lambda r: (depth(r), r["created_at"], r["id"]))


async def _require_head(service: Service) -> str:
    state = await schema.current_state(service.uow.database)
    if not state.at_head:
        raise errors.InvalidArgument(
            f"The database schema is at {state.current or 'nothing'}, this build needs {state.head}: run "
            "`task-orchestrator migrate` first.",
            field="ORCHESTRATOR_DATABASE_URL",
        )
    return state.head


class DataExportService(Service):
    async def export_dump(self, write: Callable[[str], object]) -> ExportSummary:
        """Write every session, task, dependency, artifact, event, agent and visit, one line each.

        Raises:
            invalid_argument: the database schema is not at this build's head.
        """
        revision = await _require_head(self)
        now = self.clock.now()

        async def work(repos: Repositories) -> ExportSummary:
            await repos.snapshot.begin_snapshot()
            counts = {t.name: await repos.snapshot.count(t.table) for t in RECORD_TYPES}
            write(dump_format.header_line(revision, now, counts))
            # Sorted in Python, so the order is the same whichever backend (and collation) we read from.
            orders = {
                "session": lambda r: (r["created_at"], r["id"]),
                "dependency": lambda r: (r["task_id"], r["depends_on_id"]),
                "artifact": lambda r: (r["created_at"], r["id"]),
                "agent": lambda r: r["actor"],
                "visit": lambda r: (r["actor"], r["session_id"]),
            }
            for spec in RECORD_TYPES:
                if spec.name == "event":
                    await _export_events(repos, write)
                    continue
                rows = await repos.snapshot.rows(spec.table)
                ordered = parents_first(rows) if spec.name == "task" else sorted(rows, key=orders[spec.name])
                for row in ordered:
                    write(dump_format.record_line(spec.name, row))
            return ExportSummary(schema_revision=revision, counts=counts)

        return await self.uow.run(work, write=False)


async def _export_events(repos: Repositories, write: Callable[[str], object]) -> None:
    after = 0
    while page := await repos.snapshot.events_after(after, limit=EVENT_PAGE):
        for row in page:
            write(dump_format.record_line("event", row))
        after = page[-1]["id"]


class DataImportService(Service):
    async def import_dump(self, dump: ParsedDump) -> ImportSummary:
        """Load a validated export in one transaction.

        Raises:
            invalid_argument: the file comes from an unknown schema revision, the database is not at
            head, or an id of the file already exists in the target (naming the id and its line).
        """
        await _require_head(self)
        if dump.header.schema_revision not in schema.known_revisions():
            raise errors.InvalidArgument(
                f"line 1: the export was made at schema revision {dump.header.schema_revision!r}, which this "
                "build does not know (a newer build made it); import it with that build or a newer one.",
                field="line",
                value=1,
                details={"line": 1},
            )

        imported = _imported(dump)

        async def work(repos: Repositories) -> ImportSummary:
            await repos.snapshot.lock_event_log()
            await _refuse_clashes(repos, dump)
            offset = await repos.snapshot.max_event_id()
            agents = [r for _, r in dump.records["agent"]]
            kept = await repos.snapshot.existing_values(Agent, "actor", [a.actor for a in agents])
            rows = {t.name: [_row(r) for _, r in dump.records[t.name]] for t in RECORD_TYPES}
            rows["task"] = parents_first(rows["task"])
            _refuse_parent_cycles(dump, rows["task"])
            for event in rows["event"]:
                event["id"] += offset
            for visit in rows["visit"]:
                visit["last_event_id"] += offset if visit["last_event_id"] else 0
            rows["agent"] = [a for a in rows["agent"] if a["actor"] not in kept]
            for spec in RECORD_TYPES:
                await repos.snapshot.insert_rows(spec.table, rows[spec.name])
            await repos.snapshot.sync_event_sequence()
            if isinstance(self.sink, ChangeSink):  # the transaction's last statement (DESIGN §4.7)
                await self.sink.publish(repos.session, imported)
            return ImportSummary(
                counts={t.name: len(rows[t.name]) for t in RECORD_TYPES},
                agents_kept=sorted(kept),
                event_id_offset=offset,
            )

        summary = await self.uow.run(work, write=True)
        if isinstance(self.sink, ChangeSink):
            await self.sink.changed(imported)
        return summary


def _imported(dump: ParsedDump) -> Change:
    """The ids an import adds: its sessions and its tasks (a task may join a session of the target)."""
    tasks = [record for _, record in dump.records["task"]]
    sessions = dict.fromkeys([r.id for _, r in dump.records["session"]] + [t.session_id for t in tasks])
    return Change(tuple(sessions), tuple(t.id for t in tasks), wakes=True)


def _row(record: Any) -> dict[str, Any]:
    row: dict[str, Any] = record.model_dump()
    del row["type"]
    return row


async def _refuse_clashes(repos: Repositories, dump: ParsedDump) -> None:
    """Raises ``invalid_argument`` for the first record whose id the target already has."""
    for spec in RECORD_TYPES:
        if spec.name not in ("session", "task", "artifact"):
            continue  # dependencies, visits: keyed by their (new) tasks and sessions; events are renumbered
        lines = {record.id: number for number, record in dump.records[spec.name]}
        clashes = await repos.snapshot.existing_values(spec.table, "id", lines)
        if clashes:
            first = min(clashes, key=lambda i: lines[i])
            raise errors.InvalidArgument(
                f"line {lines[first]}: {spec.name} id {first!r} already exists in the target database "
                f"({len(clashes)} {spec.name} id(s) clash). Nothing was imported; import into an empty database "
                "or remove that data from the target first.",
                field="line",
                value=lines[first],
                details={"line": lines[first], "id": first, "record_type": spec.name},
            )


def _refuse_parent_cycles(dump: ParsedDump, ordered: list[dict[str, Any]]) -> None:
    placed: set[str] = set()
    for row in ordered:
        if row["parent_id"] is not None and row["parent_id"] not in placed:
            number = next(n for n, r in dump.records["task"] if r.id == row["id"])
            raise errors.InvalidArgument(
                f"line {number}: task {row['id']} is part of a parent_id cycle, which no database can hold. "
                "Nothing was imported.",
                field="line",
                value=number,
                details={"line": number},
            )
        placed.add(row["id"])
