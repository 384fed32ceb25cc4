"""The export file format: versioned JSON Lines, and the validation every import runs before it writes.

Line 1 is a header ``{"type": "header", "format": "task-orchestrator-export", "version": 1,
"schema_revision": …, "exported_at": …, "counts": {type: n}}``. Every other line is one record with a
``type`` (session, task, dependency, artifact, event, agent, visit) and exactly the columns of its table,
times as ISO 8601 UTC with ``Z`` (a dependency exported before schema revision 0006 has no ``session_id``:
the import takes its task's). Keys are sorted, so two exports of equal data are equal byte for byte
(apart from ``exported_at``), whichever backend they came from.

:func:`parse_dump` checks every line before anything is written: valid UTF-8 and JSON, a known type, the
fields and their bounds, unique keys, references that resolve inside the file, the graph's invariants
that plan and update enforce (a task and its parent share a session, so do a task and its dependencies,
and nothing waits for itself), and the header's counts (which is how a truncated file is caught). The
first problem is raised as ``invalid_argument`` naming the line; the import then writes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from app import errors
from app.db.models import Agent, AgentVisit, Artifact, Base, OrchestrationSession, Task, TaskDependency, TaskEvent
from app.domain import graph
from app.domain.clock import iso
from app.services.views import (
    ArtifactKindName,
    ComplexityName,
    PriorityName,
    SpecialistName,
    TaskStatusName,
    TaskTypeName,
)

FORMAT = "task-orchestrator-export"
FORMAT_VERSION = 1

SessionKey = Annotated[str, Field(pattern=r"^sess_[0-9a-f]{16}$")]
TaskKey = Annotated[str, Field(pattern=r"^task_[0-9a-f]{16}$")]
ArtifactKey = Annotated[str, Field(pattern=r"^art_[0-9a-f]{16}$")]
Actor = Annotated[str, Field(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=0)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionRecord(Record):
    type: Literal["session"]
    id: SessionKey
    name: Annotated[str, Field(max_length=200)]
    working_directory: Annotated[str | None, Field(max_length=1024)]
    description: str | None
    status: Literal["active", "archived"]
    created_by: Actor
    created_at: AwareDatetime
    last_activity_at: AwareDatetime
    version: Annotated[int, Field(ge=1)]


class TaskRecord(Record):
    type: Literal["task"]
    id: TaskKey
    session_id: SessionKey
    parent_id: TaskKey | None
    title: Annotated[str, Field(max_length=500)]
    description: str
    task_type: TaskTypeName
    status: TaskStatusName
    complexity: ComplexityName
    specialist_type: SpecialistName
    priority: PriorityName
    estimated_effort: Annotated[str | None, Field(max_length=100)]
    due_at: AwareDatetime | None
    context: dict[str, Any]
    assigned_to: Actor | None
    claimed_at: AwareDatetime | None
    lease_expires_at: AwareDatetime | None
    attempt_count: Count
    summary: str | None
    next_action: Literal["continue", "needs_revision", "blocked", "complete"] | None
    version: Annotated[int, Field(ge=1)]
    created_by: Actor
    created_at: AwareDatetime
    updated_at: AwareDatetime
    started_at: AwareDatetime | None
    completed_at: AwareDatetime | None


class DependencyRecord(Record):
    type: Literal["dependency"]
    task_id: TaskKey
    depends_on_id: TaskKey
    # Absent in exports made before schema revision 0006; the import takes it from the task.
    session_id: SessionKey | None = None
    created_at: AwareDatetime


class ArtifactRecord(Record):
    type: Literal["artifact"]
    id: ArtifactKey
    session_id: SessionKey
    task_id: TaskKey | None
    kind: ArtifactKindName
    name: Annotated[str, Field(max_length=500)]
    content: str
    file_paths: list[str]
    size_bytes: Count
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    created_by: Actor
    created_at: AwareDatetime


class EventRecord(Record):
    type: Literal["event"]
    id: Annotated[int, Field(ge=1)]
    session_id: SessionKey
    task_id: TaskKey | None
    kind: Annotated[str, Field(min_length=1, max_length=64)]
    actor: Actor
    at: AwareDatetime
    data: dict[str, Any]


class AgentRecord(Record):
    type: Literal["agent"]
    actor: Actor
    current_session_id: SessionKey | None
    last_seen_at: AwareDatetime


class VisitRecord(Record):
    type: Literal["visit"]
    actor: Actor
    session_id: SessionKey
    last_event_id: Count
    visited_at: AwareDatetime


@dataclass(frozen=True)
class RecordType:
    name: str
    model: type[Record]
    table: type[Base]
    key: tuple[str, ...]


# In load order: every reference points to an earlier type.
RECORD_TYPES = (
    RecordType("session", SessionRecord, OrchestrationSession, ("id",)),
    RecordType("task", TaskRecord, Task, ("id",)),
    RecordType("dependency", DependencyRecord, TaskDependency, ("task_id", "depends_on_id")),
    RecordType("artifact", ArtifactRecord, Artifact, ("id",)),
    RecordType("event", EventRecord, TaskEvent, ("id",)),
    RecordType("agent", AgentRecord, Agent, ("actor",)),
    RecordType("visit", VisitRecord, AgentVisit, ("actor", "session_id")),
)
BY_NAME = {t.name: t for t in RECORD_TYPES}


class Counts(Record):
    session: Count
    task: Count
    dependency: Count
    artifact: Count
    event: Count
    agent: Count
    visit: Count


class Header(Record):
    type: Literal["header"]
    format: Literal["task-orchestrator-export"]
    version: Literal[1]
    schema_revision: Annotated[str, Field(min_length=1, max_length=64)]
    exported_at: AwareDatetime
    counts: Counts


@dataclass
class ParsedDump:
    """A validated export: the header and, per type, ``(line number, record)`` in file order."""

    header: Header
    records: dict[str, list[tuple[int, Any]]] = field(default_factory=lambda: {t.name: [] for t in RECORD_TYPES})


def encode(record: Mapping[str, Any]) -> str:
    """One line of the file (sorted keys, UTF-8, no spaces, newline-terminated)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def header_line(schema_revision: str, exported_at: datetime, counts: Mapping[str, int]) -> str:
    return encode(
        {
            "type": "header",
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "schema_revision": schema_revision,
            "exported_at": iso(exported_at),
            "counts": dict(counts),
        }
    )


def record_line(type_name: str, row: Mapping[str, Any]) -> str:
    """A table row as a record line: the type plus every column, times in the wire form."""
    values = {key: iso(value) if isinstance(value, datetime) else value for key, value in row.items()}
    return encode({"type": type_name, **values})


def _refuse(line: int, problem: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        f"line {line}: {problem}. Nothing was imported; fix the file (or export again) and retry.",
        field="line",
        value=line,
        details={"line": line},
    )


def _validation_problem(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    return f"field {where!r}: {err['msg'].rstrip('.').lower()}"


def _decode(number: int, raw: str | bytes) -> dict[str, Any]:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _refuse(number, "is not valid UTF-8") from exc
    text = raw.strip()
    if not text:
        raise _refuse(number, "is empty (every line must be one JSON record)")

    def no_constant(name: str) -> Any:
        raise _refuse(number, f"holds {name}, which JSON cannot hold (and PostgreSQL cannot store)")

    def finite(literal: str) -> float:
        parsed = float(literal)
        if not math.isfinite(parsed):  # 1e400: a parser reads it as infinity; neither backend keeps it
            raise _refuse(number, f"holds the number {literal[:40]}, out of range for JSON's numbers")
        return parsed

    try:
        value = json.loads(text, parse_constant=no_constant, parse_float=finite)
    except json.JSONDecodeError as exc:
        raise _refuse(
            number, f"is not valid JSON ({exc.msg} at column {exc.colno}); the file may be truncated"
        ) from exc
    if not isinstance(value, dict):
        raise _refuse(number, "is not a JSON object")
    if "\x00" in text or "\\u0000" in text:
        raise _refuse(number, "contains a NUL character, which PostgreSQL cannot store")
    return value


def _parse_header(value: dict[str, Any]) -> Header:
    if value.get("type") != "header" or value.get("format") != FORMAT:
        raise _refuse(1, f"is not a {FORMAT} header; is this file an export of task-orchestrator?")
    if value.get("version") != FORMAT_VERSION:
        raise _refuse(1, f"has format version {value.get('version')!r}; this build reads version {FORMAT_VERSION}")
    try:
        return Header.model_validate(value)
    except ValidationError as exc:
        raise _refuse(1, _validation_problem(exc)) from exc


def parse_dump(lines: Iterable[str | bytes]) -> ParsedDump:
    """Parse and validate a whole export.

    Raises:
        invalid_argument: naming the first line that is wrong and why (``details.line``).
    """
    dump: ParsedDump | None = None
    seen: dict[str, dict[tuple[Any, ...], int]] = {t.name: {} for t in RECORD_TYPES}
    last = 0
    for number, raw in enumerate(lines, 1):
        last = number
        value = _decode(number, raw)
        if dump is None:
            dump = ParsedDump(header=_parse_header(value))
            continue
        spec = BY_NAME.get(str(value.get("type")))
        if spec is None:
            raise _refuse(number, f"has unknown type {value.get('type')!r}; allowed: {', '.join(BY_NAME)}")
        try:
            record = spec.model.model_validate(value)
        except ValidationError as exc:
            raise _refuse(number, f"{spec.name} record, {_validation_problem(exc)}") from exc
        key = tuple(getattr(record, k) for k in spec.key)
        if key in seen[spec.name]:
            raise _refuse(number, f"repeats the {spec.name} {'/'.join(map(str, key))} of line {seen[spec.name][key]}")
        seen[spec.name][key] = number
        dump.records[spec.name].append((number, record))
    if dump is None:
        raise _refuse(1, "is missing: the file is empty, expected a header line")
    expected = dump.header.counts.model_dump()
    for spec in RECORD_TYPES:
        found = len(dump.records[spec.name])
        if found != expected[spec.name]:
            raise _refuse(
                last,
                f"the file ends here holding {found} {spec.name} record(s), but its header announces "
                f"{expected[spec.name]}: the file is truncated or was edited",
            )
    _check_references(dump, seen)
    return dump


def _check_references(dump: ParsedDump, seen: Mapping[str, Mapping[tuple[Any, ...], int]]) -> None:
    """References resolve inside the file, and the graph keeps the invariants plan and update enforce.

    Without the graph checks a hand-edited file would load a graph no tool can write: an edge across
    sessions (ignored by next_task's pick, counted by get_status, reported by maintenance) or a loop of
    tasks waiting for each other (none of them could ever become ready).
    """
    sessions, tasks = seen["session"], seen["task"]
    session_of = {task.id: task.session_id for _, task in dump.records["task"]}

    def need(number: int, what: str, value: str | None, known: Mapping[tuple[Any, ...], int], kind: str) -> None:
        if value is not None and (value,) not in known:
            raise _refuse(number, f"{what} {value!r} is not a {kind} of this file")

    for number, task in dump.records["task"]:
        need(number, "task session_id", task.session_id, sessions, "session")
        need(number, "task parent_id", task.parent_id, tasks, "task")
        if task.parent_id is not None and session_of[task.parent_id] != task.session_id:
            raise _refuse(
                number,
                f"task {task.id!r} is in session {task.session_id!r} but its parent {task.parent_id!r} is in "
                f"session {session_of[task.parent_id]!r}; a task and its parent must share a session",
            )
    closing = _first_waiting_cycle(dump)
    for number, dep in dump.records["dependency"]:
        if dep.task_id == dep.depends_on_id:
            raise _refuse(number, f"dependency of task {dep.task_id!r} on itself")
        need(number, "dependency task_id", dep.task_id, tasks, "task")
        need(number, "dependency depends_on_id", dep.depends_on_id, tasks, "task")
        if session_of[dep.task_id] != session_of[dep.depends_on_id]:
            raise _refuse(
                number,
                f"task {dep.task_id!r} (session {session_of[dep.task_id]!r}) depends on {dep.depends_on_id!r} "
                f"in another session ({session_of[dep.depends_on_id]!r}); dependencies must be in the task's "
                "own session",
            )
        if dep.session_id is None:
            dep.session_id = session_of[dep.task_id]  # an export from before revision 0006
        elif dep.session_id != session_of[dep.task_id]:
            raise _refuse(
                number,
                f"the dependency of task {dep.task_id!r} on {dep.depends_on_id!r} names session "
                f"{dep.session_id!r}, but both tasks are in session {session_of[dep.task_id]!r}",
            )
        if closing is not None and closing[0] == number:
            raise _refuse(
                number,
                f"the dependency of task {dep.task_id!r} on {dep.depends_on_id!r} closes a cycle of tasks "
                f"waiting for each other ({' -> '.join(closing[1])}; a task waits for its dependencies and a "
                "parent for its subtasks), so none of them could ever start",
            )
    for number, art in dump.records["artifact"]:
        need(number, "artifact session_id", art.session_id, sessions, "session")
        need(number, "artifact task_id", art.task_id, tasks, "task")
    for number, agent in dump.records["agent"]:
        need(number, "agent current_session_id", agent.current_session_id, sessions, "session")
    for number, visit in dump.records["visit"]:
        need(number, "visit session_id", visit.session_id, sessions, "session")


def _first_waiting_cycle(dump: ParsedDump) -> tuple[int, list[str]] | None:
    """The first dependency line whose edge closes a cycle in the waits-for graph (every parent waits for
    its subtasks, every task for its dependencies), with the cycle; None when there is no such cycle.

    ``update_task`` checks each new edge against the graph before it (``graph.cycle_if_added``); doing
    that per line would cost a search per edge. The whole graph is checked once instead, and only a
    cyclic file pays a binary search over its dependency lines for the first one that closes a cycle.
    A file whose parent links alone loop is left to the import's parent check, which names that line.
    """
    parents: dict[str, list[str]] = {}
    for _, task in dump.records["task"]:
        if task.parent_id is not None:
            parents.setdefault(task.parent_id, []).append(task.id)
    dependencies = dump.records["dependency"]

    def waits(count: int) -> dict[str, list[str]]:
        edges = {parent: list(children) for parent, children in parents.items()}
        for _, dep in dependencies[:count]:
            edges.setdefault(dep.task_id, []).append(dep.depends_on_id)
        return edges

    # A valid file (the usual case) costs one pass; the parent-only pass runs only for a cyclic one.
    if not graph.find_cycles(waits(len(dependencies))) or graph.find_cycles(parents):
        return None
    low, high = 1, len(dependencies)  # the smallest count of lines that holds a cycle
    while low < high:
        middle = (low + high) // 2
        if graph.find_cycles(waits(middle)):
            high = middle
        else:
            low = middle + 1
    number, dep = dependencies[low - 1]
    cycle = graph.cycle_if_added(waits(low - 1), dep.task_id, dep.depends_on_id)
    assert cycle is not None  # the lines before it hold no cycle, so every cycle goes through this edge
    return number, cycle
