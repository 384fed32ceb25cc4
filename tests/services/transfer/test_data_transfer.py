"""Export and import: lossless between the backends, atomic, and strict about the file."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from app import errors
from app.__main__ import main
from app.db.repositories.snapshot import SnapshotRepository
from app.runtime.work_signals import CHANNEL, decode
from app.services.changes import Change
from app.services.transfer.data_transfer import DataExportService, DataImportService
from app.services.transfer.dump_format import RECORD_TYPES, parse_dump
from tests.conftest import run_in_thread
from tests.support.databases import PostgresTemplate, SqliteTemplate
from tests.support.harness import Harness, caller, make_harness
from tests.support.locks import plain_dsn
from tests.support.populate import populate
from tests.support.rows import table_snapshot

pytestmark = pytest.mark.anyio


@pytest.fixture
def postgres_url(postgres_template: PostgresTemplate) -> Iterator[str]:
    url = run_in_thread(postgres_template.copy)
    yield url
    run_in_thread(lambda: postgres_template.drop(url))


@pytest.fixture(scope="module")
def exported_lines(sqlite_template: SqliteTemplate, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """One populated export, made once for the module's many corruption cases."""

    async def make() -> list[str]:
        h = make_harness(sqlite_template.copy(tmp_path_factory.mktemp("exported")))
        try:
            await populate(h)
            return _lines(await export_text(h))
        finally:
            await h.close()

    return run_in_thread(make)


def fresh_sqlite(template: SqliteTemplate, directory: Path) -> str:
    directory.mkdir(exist_ok=True)
    return template.copy(directory)


async def cli(*argv: str) -> int:
    return await anyio.to_thread.run_sync(main, list(argv))


def body(text: str) -> tuple[dict[str, Any], list[str]]:
    """The header without its timestamp, and every record line exactly as written."""
    header, *records = text.splitlines()
    parsed = json.loads(header)
    del parsed["exported_at"]
    return parsed, records


async def export_text(h: Harness) -> str:
    out = io.StringIO()
    await DataExportService(h.uow, h.clock).export_dump(out.write)
    return out.getvalue()


async def import_text(h: Harness, text: str | bytes) -> Any:
    raw = text.encode() if isinstance(text, str) else text
    return await DataImportService(h.uow, h.clock).import_dump(parse_dump(io.BytesIO(raw)))


async def test_record_types_carry_exactly_the_columns_of_their_tables() -> None:
    for spec in RECORD_TYPES:
        assert set(spec.model.model_fields) - {"type"} == set(spec.table.__table__.columns.keys()), spec.name


async def test_sqlite_to_postgresql_and_back_is_lossless(
    sqlite_template: SqliteTemplate, postgres_url: str, tmp_path: Path
) -> None:
    sqlite_url = fresh_sqlite(sqlite_template, tmp_path / "source")
    source = make_harness(sqlite_url)
    await populate(source)
    await source.close()
    a, b, c = (tmp_path / f"{n}.jsonl" for n in "abc")

    # SQLite -> PostgreSQL: export, import into a fresh database, export again: the same records.
    assert await cli("export", "--out", str(a), "--database-url", sqlite_url) == 0
    assert await cli("import", str(a), "--database-url", postgres_url) == 0
    assert await cli("export", "--out", str(b), "--database-url", postgres_url) == 0
    header, records = body(a.read_text(encoding="utf-8"))
    assert body(b.read_text(encoding="utf-8")) == (header, records)
    in_file = {spec.name: sum(1 for r in records if json.loads(r)["type"] == spec.name) for spec in RECORD_TYPES}
    assert header["counts"] == in_file and all(in_file.values())  # every kind of row made the trip

    # PostgreSQL -> SQLite, the way back.
    back_url = fresh_sqlite(sqlite_template, tmp_path / "back")
    assert await cli("import", str(b), "--database-url", back_url) == 0
    assert await cli("export", "--out", str(c), "--database-url", back_url) == 0
    assert body(c.read_text(encoding="utf-8")) == (header, records)

    # The imported copy behaves like the original: same views through the services.
    original, copy = make_harness(sqlite_url), make_harness(postgres_url)
    try:
        for h in (original, copy):
            h.clock.advance(3600)
        sessions = [
            await h.services.session_overview.list_sessions(
                include_completed=True, working_directory=None, limit=10, offset=0
            )
            for h in (original, copy)
        ]
        assert sessions[0] == sessions[1]
        resumed = [
            await h.services.session_overview.resume_session(caller("bob"), sessions[0].sessions[-1].id)
            for h in (original, copy)
        ]
        assert resumed[0] == resumed[1] and resumed[0].recent_events
    finally:
        await original.close()
        await copy.close()


async def test_import_into_a_database_in_use_shifts_event_ids_and_keeps_existing_agents(
    harness: Harness, sqlite_template: SqliteTemplate, tmp_path: Path
) -> None:
    source = make_harness(fresh_sqlite(sqlite_template, tmp_path / "source"))
    ids = await populate(source)
    source.clock.advance(60)
    await source.update("alice", ids["build"], title="Build it")
    text = await export_text(source)
    expected = await source.services.session_overview.resume_session(caller("bob"), ids["main"])
    await source.close()
    assert expected.recent_events  # bob has something to catch up on

    own = await harness.session("alice", "/target/own")
    await harness.plan(session_id=own, title="Target work")
    before = await table_snapshot(harness.database)
    highest = max(row[0] for row in before["task_event"])
    result = await import_text(harness, text)
    assert result.event_id_offset == highest
    assert result.agents_kept == ["alice"]
    assert result.counts["agent"] == 3  # bob, carol, dave are new here
    after = await table_snapshot(harness.database)
    assert all(row in after["task_event"] for row in before["task_event"])
    imported_events = [row for row in after["task_event"] if row[1] == ids["main"]]
    assert min(row[0] for row in imported_events) > highest
    current = {row[0]: row[1] for row in after["agent"]}
    assert current["alice"] == own  # alice's own binding in the target is kept

    # bob's visit was shifted with the events: he sees exactly what he would have seen in the source.
    resumed = await harness.services.session_overview.resume_session(caller("bob"), ids["main"])
    assert [(e.kind, e.task_id, e.actor, e.data) for e in resumed.recent_events] == [
        (e.kind, e.task_id, e.actor, e.data) for e in expected.recent_events
    ]
    assert [e.id - highest for e in resumed.recent_events] == [e.id for e in expected.recent_events]
    # New events continue above the imported ones on both backends.
    await harness.plan(session_id=own, title="After the import")
    newest = max(row[0] for row in (await table_snapshot(harness.database))["task_event"])
    assert newest > max(row[0] for row in imported_events)


async def test_an_id_that_exists_in_the_target_is_refused_naming_it_and_its_line(harness: Harness) -> None:
    await populate(harness)
    text = await export_text(harness)
    before = await table_snapshot(harness.database)
    with pytest.raises(errors.InvalidArgument) as refused:
        await import_text(harness, text)
    first_session = json.loads(text.splitlines()[1])
    assert (refused.value.field, refused.value.details) == (
        "line",
        {"line": 2, "id": first_session["id"], "record_type": "session"},
    )
    assert f"line 2: session id {first_session['id']!r} already exists" in refused.value.message
    assert await table_snapshot(harness.database) == before


async def test_a_failure_midway_rolls_the_whole_import_back(
    harness: Harness, sqlite_template: SqliteTemplate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_harness(fresh_sqlite(sqlite_template, tmp_path / "source"))
    await populate(source)
    text = await export_text(source)
    await source.close()
    before = await table_snapshot(harness.database)
    original = SnapshotRepository.insert_rows

    async def fail_on_artifacts(self: SnapshotRepository, model: Any, rows: Any) -> None:
        if model.__tablename__ == "artifact":  # sessions, tasks and edges are already written by now
            raise errors.Unavailable("the disk filled up")
        await original(self, model, rows)

    monkeypatch.setattr(SnapshotRepository, "insert_rows", fail_on_artifacts)
    with pytest.raises(errors.Unavailable):
        await import_text(harness, text)
    assert await table_snapshot(harness.database) == before


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _edit(n: int, change: Callable[[dict[str, Any]], None]) -> Callable[[list[str]], list[str]]:
    def apply(lines: list[str]) -> list[str]:
        record = json.loads(lines[n - 1])
        change(record)
        return [*lines[: n - 1], json.dumps(record) + "\n", *lines[n:]]

    return apply


def _first(kind: str, lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines, 1) if f'"type":"{kind}"' in line)


def _records(lines: list[str], kind: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, json.loads(line)) for i, line in enumerate(lines, 1) if f'"type":"{kind}"' in line]


def _first_subtask(lines: list[str]) -> tuple[int, dict[str, Any]]:
    return next((i, r) for i, r in _records(lines, "task") if r["parent_id"] is not None)


def _raw_context(lines: list[str], number: str) -> list[str]:
    """The first task's context as {"x": <number>}, written as given (json.dumps would not write 1e400)."""
    n = _first("task", lines)
    record = json.loads(lines[n - 1])
    record["context"] = {"x": "RAW"}
    return [*lines[: n - 1], json.dumps(record).replace('"RAW"', number) + "\n", *lines[n:]]


def _last_dependency(lines: list[str]) -> int:
    return _records(lines, "dependency")[-1][0]


def _other_session(lines: list[str], session_id: str) -> str:
    return next(r["id"] for _, r in _records(lines, "session") if r["id"] != session_id)


def _task_outside(lines: list[str], task_id: str) -> str:
    session_of = {r["id"]: r["session_id"] for _, r in _records(lines, "task")}
    return next(t for t, session in session_of.items() if session != session_of[task_id])


def _move_first_subtask(lines: list[str]) -> list[str]:
    number, subtask = _first_subtask(lines)
    return _edit(number, lambda r: r.update(session_id=_other_session(lines, subtask["session_id"])))(lines)


def _cross_first_dependency(lines: list[str]) -> list[str]:
    number, dep = _records(lines, "dependency")[0]
    return _edit(number, lambda r: r.update(depends_on_id=_task_outside(lines, dep["task_id"])))(lines)


def _add_dependency(
    task_id: Callable[[list[str]], str], on: Callable[[list[str]], str], after: Callable[[list[str]], int]
) -> Callable[[list[str]], list[str]]:
    """A new dependency line after line ``after`` (the header's count raised to match)."""

    def apply(lines: list[str]) -> list[str]:
        record = {**_records(lines, "dependency")[0][1], "task_id": task_id(lines), "depends_on_id": on(lines)}
        del record["session_id"]  # as exported before revision 0006: the import takes the task's session
        after_line = after(lines)
        added = [*lines[:after_line], json.dumps(record) + "\n", *lines[after_line:]]
        return _edit(1, lambda r: r["counts"].update(dependency=r["counts"]["dependency"] + 1))(added)

    return apply


CORRUPTIONS: list[tuple[str, Callable[[list[str]], list[str]], Callable[[list[str]], int], str]] = [
    # (name, corruption of the lines, expected bad line given the ORIGINAL lines, words of the message)
    ("not json", lambda ls: [*ls[:2], '{"type": "task", \n', *ls[3:]], lambda ls: 3, "is not valid JSON"),
    ("truncated mid-line", lambda ls: [*ls[:-1], ls[-1][: len(ls[-1]) // 2]], lambda ls: len(ls), "is not valid JSON"),
    ("truncated at a line end", lambda ls: ls[:-2], lambda ls: len(ls) - 2, "header announces"),
    ("empty line", lambda ls: [*ls[:4], "\n", *ls[4:]], lambda ls: 5, "is empty"),
    ("unknown type", _edit(2, lambda r: r.update(type="widget")), lambda ls: 2, "unknown type 'widget'"),
    (
        "missing field",
        lambda ls: _edit(_first("task", ls), lambda r: r.pop("title"))(ls),
        lambda ls: _first("task", ls),
        "'title'",
    ),
    (
        "bad enum",
        lambda ls: _edit(_first("task", ls), lambda r: r.update(status="done"))(ls),
        lambda ls: _first("task", ls),
        "'status'",
    ),
    (
        "naive time",
        lambda ls: _edit(2, lambda r: r.update(created_at="2026-01-01T00:00:00"))(ls),
        lambda ls: 2,
        "'created_at'",
    ),
    ("extra field", lambda ls: _edit(2, lambda r: r.update(colour="red"))(ls), lambda ls: 2, "'colour'"),
    ("duplicate id", lambda ls: [*ls[:3], ls[2], *ls[3:]], lambda ls: 4, "repeats the session"),
    (
        "dangling reference",
        lambda ls: _edit(_first("task", ls), lambda r: r.update(session_id="sess_0000000000000000"))(ls),
        lambda ls: _first("task", ls),
        "is not a session of this file",
    ),
    (
        "self dependency",
        lambda ls: _edit(_first("dependency", ls), lambda r: r.update(depends_on_id=r["task_id"]))(ls),
        lambda ls: _first("dependency", ls),
        "on itself",
    ),
    (
        "subtask in another session than its parent",
        _move_first_subtask,
        lambda ls: _first_subtask(ls)[0],
        "a task and its parent must share a session",
    ),
    (
        "dependency across sessions",
        _cross_first_dependency,
        lambda ls: _records(ls, "dependency")[0][0],
        "in another session",
    ),
    (
        "dependency recorded in another session than its tasks",
        lambda ls: _edit(
            _first("dependency", ls),
            lambda r: r.update(session_id=_other_session(ls, _records(ls, "dependency")[0][1]["session_id"])),
        )(ls),
        lambda ls: _first("dependency", ls),
        "but both tasks are in session",
    ),
    (
        "dependency cycle",  # the reverse of the first edge, right after it: later lines are fine
        _add_dependency(
            lambda ls: _records(ls, "dependency")[0][1]["depends_on_id"],
            lambda ls: _records(ls, "dependency")[0][1]["task_id"],
            lambda ls: _records(ls, "dependency")[0][0],
        ),
        lambda ls: _records(ls, "dependency")[0][0] + 1,
        "closes a cycle of tasks waiting for each other",
    ),
    (
        "subtask depending on its parent",  # the parent waits for it: a cycle without a dependency loop
        _add_dependency(
            lambda ls: _first_subtask(ls)[1]["id"], lambda ls: _first_subtask(ls)[1]["parent_id"], _last_dependency
        ),
        lambda ls: _last_dependency(ls) + 1,
        "a parent for its subtasks",
    ),
    ("no header", lambda ls: ls[1:], lambda ls: 1, "header"),
    ("other version", _edit(1, lambda r: r.update(version=2)), lambda ls: 1, "format version 2"),
    ("count mismatch", _edit(1, lambda r: r["counts"].update(agent=99)), lambda ls: len(ls), "announces 99"),
    ("NUL character", lambda ls: _edit(2, lambda r: r.update(description="a\u0000b"))(ls), lambda ls: 2, "NUL"),
    ("empty file", lambda ls: [], lambda ls: 1, "the file is empty"),
    ("infinite number", lambda ls: _raw_context(ls, "1e400"), lambda ls: _first("task", ls), "1e400, out of range"),
    ("NaN", lambda ls: _raw_context(ls, "NaN"), lambda ls: _first("task", ls), "holds NaN"),
    ("Infinity", lambda ls: _raw_context(ls, "-Infinity"), lambda ls: _first("task", ls), "holds -Infinity"),
]


async def test_a_malformed_or_truncated_file_changes_nothing_and_names_the_line(
    harness: Harness, exported_lines: list[str]
) -> None:
    lines = list(exported_lines)
    await harness.session("alice", "/target")
    before = await table_snapshot(harness.database)
    for name, corrupt, bad_line, words in CORRUPTIONS:  # one database for all cases keeps this fast
        with pytest.raises(errors.InvalidArgument) as refused:
            await import_text(harness, "".join(corrupt(lines)))
        expected = bad_line(lines)
        assert (refused.value.field, refused.value.details["line"]) == ("line", expected), (name, refused.value.message)
        assert refused.value.message.startswith(f"line {expected}: ") and words in refused.value.message, name
    assert await table_snapshot(harness.database) == before


async def test_an_export_from_before_revision_0006_gets_each_dependency_its_tasks_session(
    harness: Harness, exported_lines: list[str]
) -> None:
    dependencies = _records(exported_lines, "dependency")
    session_of = {r["id"]: r["session_id"] for _, r in _records(exported_lines, "task")}
    assert dependencies and all(r["session_id"] == session_of[r["task_id"]] for _, r in dependencies)
    old = list(exported_lines)
    for number, _ in dependencies:  # the lines as revision 0005 wrote them: no session_id
        old = _edit(number, lambda r: r.pop("session_id"))(old)

    await import_text(harness, "".join(old))

    stored = {(row[0], row[1]): row for row in (await table_snapshot(harness.database))["task_dependency"]}
    columns = [c.name for c in RECORD_TYPES[2].table.__table__.columns]
    assert len(stored) == len(dependencies)
    for _, record in dependencies:
        row = dict(zip(columns, stored[(record["task_id"], record["depends_on_id"])], strict=True))
        assert row["session_id"] == session_of[record["task_id"]]


async def test_a_loop_of_parent_links_is_refused_naming_one_of_its_lines(
    harness: Harness, exported_lines: list[str]
) -> None:
    """A subtask made its own parent's parent: no root, so no database can hold them (the dependency
    check leaves such a file to this one, which needs the rows in parent order)."""
    lines = list(exported_lines)
    number, subtask = _first_subtask(lines)
    parent_line = next(i for i, r in _records(lines, "task") if r["id"] == subtask["parent_id"])
    looped = _edit(parent_line, lambda r: r.update(parent_id=subtask["id"]))(lines)
    before = await table_snapshot(harness.database)
    with pytest.raises(errors.InvalidArgument) as refused:
        await import_text(harness, "".join(looped))
    assert refused.value.details["line"] in (number, parent_line)
    assert "parent_id cycle" in refused.value.message
    assert await table_snapshot(harness.database) == before


async def test_a_file_that_is_not_utf8_is_refused_naming_the_line(harness: Harness, exported_lines: list[str]) -> None:
    lines = exported_lines
    raw = "".join(lines[:3]).encode() + b'{"type": "\xff"}\n' + "".join(lines[4:]).encode()
    with pytest.raises(errors.InvalidArgument) as refused:
        await import_text(harness, raw)
    assert refused.value.details["line"] == 4 and "UTF-8" in refused.value.message


async def test_the_import_command_reports_the_bad_line_and_exits_non_zero(
    sqlite_template: SqliteTemplate, exported_lines: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fresh_sqlite(sqlite_template, tmp_path / "db")
    lines = exported_lines
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(lines[:-3]), encoding="utf-8")
    assert await cli("import", str(broken), "--database-url", url) == 1
    err = capsys.readouterr().err
    assert f"import refused: {broken}: line {len(lines) - 3}: the file ends here" in err
    assert "Nothing was imported" in err
    missing = tmp_path / "missing.jsonl"
    assert await cli("import", str(missing), "--database-url", url) == 1
    assert f"cannot read {missing}" in capsys.readouterr().err


async def test_the_export_command_refuses_a_sqlite_path_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "orchestrator.db"
    assert await cli("export", "--out", str(tmp_path / "x.jsonl"), "--database-url", f"sqlite:///{missing}") == 1
    assert f"no SQLite database at {missing}" in capsys.readouterr().err
    assert not await anyio.Path(missing).exists() and not await anyio.Path(tmp_path / "x.jsonl").exists()


async def test_an_import_into_postgresql_announces_its_sessions_and_tasks_with_its_commit_and_a_refused_one_nothing(
    postgres_url: str, exported_lines: list[str], tmp_path: Path
) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_text("".join(exported_lines), encoding="utf-8")
    records = [json.loads(line) for line in exported_lines[1:]]
    sessions = {r["id"] for r in records if r["type"] == "session"}
    tasks = {r["id"] for r in records if r["type"] == "task"}
    assert sessions and tasks
    heard: list[str] = []
    arrived = anyio.Event()

    def on_notification(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        heard.append(payload)
        arrived.set()

    listener = await asyncpg.connect(plain_dsn(postgres_url))
    try:
        await listener.add_listener(CHANNEL, on_notification)
        assert await cli("import", str(dump), "--database-url", postgres_url) == 0
        changes: list[tuple[str, Change]] = []
        with anyio.fail_after(30):  # the ids may come split over several payloads, all with the commit
            while {t for _, c in changes for t in c.task_ids} != tasks:
                await arrived.wait()
                arrived = anyio.Event()
                changes += [decoded for payload in heard[len(changes) :] if (decoded := decode(payload))]
        assert all(origin.startswith("cli-") for origin, _ in changes)
        assert {s for _, c in changes for s in c.session_ids} == sessions
        assert all(c.wakes for _, c in changes)

        # The same file again is refused (its ids exist): its rolled-back transaction announces nothing.
        seen = len(heard)
        assert await cli("import", str(dump), "--database-url", postgres_url) == 1
        await listener.execute("SELECT pg_notify($1, 'probe')", CHANNEL)
        with anyio.fail_after(30):
            while "probe" not in heard:
                await arrived.wait()
                arrived = anyio.Event()
        assert heard[seen:] == ["probe"]
    finally:
        await listener.close()
