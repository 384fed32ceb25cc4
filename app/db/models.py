"""ORM tables of DESIGN §3. Alembic owns the schema; these classes only describe it to the code.

Times are stored as UTC. SQLite has no time-zone type, so :class:`UTCDateTime` stores naive UTC there
and gives back aware datetimes on both backends. Enumerated columns are plain strings guarded by named
``CHECK`` constraints, which both backends enforce and Alembic renders the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from app.domain import enums
from app.domain.merge_patch import same_json

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(32)
ACTOR = String(200)


class StrictJSON(TypeDecorator[Any]):
    """JSON (JSONB on PostgreSQL) whose values are compared as JSON when the ORM decides what to write.

    The ORM leaves out of an UPDATE a column whose new value ``==`` the loaded one; in Python ``True == 1 ==
    1.0``, so a context that only changed a value's JSON type would never be written.
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def compare_values(self, x: Any, y: Any) -> bool:
        return same_json(x, y)


JSONType = StrictJSON()
EventId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both backends."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, enum: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in enums.values(enum))})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrchestrationSession(Base):
    __tablename__ = "orchestration_session"
    __table_args__ = (
        CheckConstraint(_in("status", enums.SessionStatus), name="status"),
        Index("ix_orchestration_session_working_directory", "working_directory", "status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    working_directory: Mapped[str | None] = mapped_column(String(1024))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=enums.SessionStatus.ACTIVE.value)
    created_by: Mapped[str] = mapped_column(ACTOR)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)


class Task(Base):
    __tablename__ = "task"
    __table_args__ = (
        CheckConstraint(_in("status", enums.TaskStatus), name="status"),
        CheckConstraint(_in("task_type", enums.TaskType), name="task_type"),
        CheckConstraint(_in("complexity", enums.Complexity), name="complexity"),
        CheckConstraint(_in("specialist_type", enums.SpecialistType), name="specialist_type"),
        CheckConstraint(_in("priority", enums.Priority), name="priority"),
        CheckConstraint("next_action IS NULL OR " + _in("next_action", enums.NextAction), name="next_action"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_task_session_created", "session_id", "created_at"),
        Index("ix_task_session_status_specialist", "session_id", "status", "specialist_type"),
        Index("ix_task_parent", "parent_id"),
        Index("ix_task_assigned_to", "assigned_to"),
        Index("ix_task_lease", "status", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    session_id: Mapped[str] = mapped_column(ID, ForeignKey("orchestration_session.id", ondelete="CASCADE"))
    parent_id: Mapped[str | None] = mapped_column(ID, ForeignKey("task.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text)
    task_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    complexity: Mapped[str] = mapped_column(String(16))
    specialist_type: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    estimated_effort: Mapped[str | None] = mapped_column(String(100))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    assigned_to: Mapped[str | None] = mapped_column(ACTOR)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[str | None] = mapped_column(Text)
    next_action: Mapped[str | None] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(ACTOR)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TaskDependency(Base):
    __tablename__ = "task_dependency"
    __table_args__ = (
        CheckConstraint("task_id <> depends_on_id", name="not_self"),
        Index("ix_task_dependency_depends_on", "depends_on_id"),
        Index("ix_task_dependency_session", "session_id", "depends_on_id"),
    )

    task_id: Mapped[str] = mapped_column(ID, ForeignKey("task.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[str] = mapped_column(ID, ForeignKey("task.id", ondelete="CASCADE"), primary_key=True)
    # The session of both ends (a dependency never leaves its task's session), so a session's edges are read
    # by this index alone: without it, the ready set's anti-join probed every pending task or hashed every
    # session's edges, and grew with the whole database (migration 0006). No foreign key: the tasks' own
    # keys already delete the edge with its session.
    session_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Artifact(Base):
    __tablename__ = "artifact"
    __table_args__ = (
        CheckConstraint(_in("kind", enums.ArtifactKind), name="kind"),
        Index("ix_artifact_task", "task_id"),
        Index("ix_artifact_session_kind", "session_id", "kind", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    session_id: Mapped[str] = mapped_column(ID, ForeignKey("orchestration_session.id", ondelete="CASCADE"))
    task_id: Mapped[str | None] = mapped_column(ID, ForeignKey("task.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(500))
    content: Mapped[str] = mapped_column(Text)
    file_paths: Mapped[list[str]] = mapped_column(JSONType, default=list)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(ACTOR)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TaskEvent(Base):
    """Append-only; no foreign keys so the trail outlives what it describes."""

    __tablename__ = "task_event"
    __table_args__ = (
        Index("ix_task_event_session", "session_id", "id"),
        Index("ix_task_event_task", "task_id", "id"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ID)
    task_id: Mapped[str | None] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(ACTOR)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Agent(Base):
    __tablename__ = "agent"

    actor: Mapped[str] = mapped_column(ACTOR, primary_key=True)
    current_session_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("orchestration_session.id", ondelete="SET NULL")
    )
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgentVisit(Base):
    """The last event an actor saw in a session, so resume_session can show what happened since."""

    __tablename__ = "agent_visit"

    actor: Mapped[str] = mapped_column(ACTOR, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ID, ForeignKey("orchestration_session.id", ondelete="CASCADE"), primary_key=True
    )
    last_event_id: Mapped[int] = mapped_column(EventId, default=0)
    visited_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RequestRecord(Base):
    __tablename__ = "request_record"
    __table_args__ = (Index("ix_request_record_created_at", "created_at"),)

    actor: Mapped[str] = mapped_column(ACTOR, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tool: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # sha256 of the first call's arguments (canonical JSON, request_id left out); null for records written
    # by calls made without arguments at hand (in-process service calls) or before revision 0002.
    args_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SystemEvent(Base):
    __tablename__ = "system_event"
    __table_args__ = (Index("ix_system_event_kind", "kind", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(ACTOR)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


__all__ = [
    "Agent",
    "AgentVisit",
    "Artifact",
    "Base",
    "OrchestrationSession",
    "RequestRecord",
    "SystemEvent",
    "Task",
    "TaskDependency",
    "TaskEvent",
]
