"""Initial schema: every table of DESIGN §3, plus the PostgreSQL full-text index for search_text.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 20:15:33.177365+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orchestration_session",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("working_directory", sa.String(length=1024), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("status IN ('active', 'archived')", name=op.f("ck_orchestration_session_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestration_session")),
    )
    with op.batch_alter_table("orchestration_session", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orchestration_session_working_directory", ["working_directory", "status"], unique=False
        )

    op.create_table(
        "request_record",
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("actor", "request_id", name=op.f("pk_request_record")),
    )
    with op.batch_alter_table("request_record", schema=None) as batch_op:
        batch_op.create_index("ix_request_record_created_at", ["created_at"], unique=False)

    op.create_table(
        "system_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_event")),
    )
    with op.batch_alter_table("system_event", schema=None) as batch_op:
        batch_op.create_index("ix_system_event_kind", ["kind", "id"], unique=False)

    op.create_table(
        "task_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_event")),
    )
    with op.batch_alter_table("task_event", schema=None) as batch_op:
        batch_op.create_index("ix_task_event_session", ["session_id", "id"], unique=False)
        batch_op.create_index("ix_task_event_task", ["task_id", "id"], unique=False)

    op.create_table(
        "agent",
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("current_session_id", sa.String(length=32), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["current_session_id"],
            ["orchestration_session.id"],
            name=op.f("fk_agent_current_session_id_orchestration_session"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("actor", name=op.f("pk_agent")),
    )
    op.create_table(
        "agent_visit",
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("last_event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["orchestration_session.id"],
            name=op.f("fk_agent_visit_session_id_orchestration_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("actor", "session_id", name=op.f("pk_agent_visit")),
    )
    op.create_table(
        "task",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.String(length=32), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("task_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("complexity", sa.String(length=16), nullable=False),
        sa.Column("specialist_type", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("estimated_effort", sa.String(length=100), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("assigned_to", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("next_action", sa.String(length=16), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "complexity IN ('trivial', 'simple', 'moderate', 'complex', 'very_complex')",
            name=op.f("ck_task_complexity"),
        ),
        sa.CheckConstraint(
            "next_action IS NULL OR next_action IN ('continue', 'needs_revision', 'blocked', 'complete')",
            name=op.f("ck_task_next_action"),
        ),
        sa.CheckConstraint("priority IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_task_priority")),
        sa.CheckConstraint(
            "specialist_type IN ('analyst', 'coder', 'tester', 'documenter', 'reviewer', 'architect', 'devops', 'researcher', 'coordinator', 'generic')",
            name=op.f("ck_task_specialist_type"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'blocked', 'completed', 'failed', 'cancelled', 'archived')",
            name=op.f("ck_task_status"),
        ),
        sa.CheckConstraint(
            "task_type IN ('standard', 'breakdown', 'milestone', 'review', 'approval', 'research', 'implementation', 'testing', 'documentation', 'deployment', 'custom')",
            name=op.f("ck_task_task_type"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_task_version_positive")),
        sa.ForeignKeyConstraint(["parent_id"], ["task.id"], name=op.f("fk_task_parent_id_task"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["orchestration_session.id"],
            name=op.f("fk_task_session_id_orchestration_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index("ix_task_assigned_to", ["assigned_to"], unique=False)
        batch_op.create_index("ix_task_lease", ["status", "lease_expires_at"], unique=False)
        batch_op.create_index("ix_task_parent", ["parent_id"], unique=False)
        batch_op.create_index("ix_task_session_created", ["session_id", "created_at"], unique=False)
        batch_op.create_index("ix_task_session_status", ["session_id", "status"], unique=False)

    op.create_table(
        "artifact",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "file_paths",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('code', 'documentation', 'analysis', 'design', 'test', 'config', 'general', 'synthesis', 'handover', 'report', 'cancellation', 'revision_note')",
            name=op.f("ck_artifact_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["orchestration_session.id"],
            name=op.f("fk_artifact_session_id_orchestration_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_artifact_task_id_task"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact")),
    )
    with op.batch_alter_table("artifact", schema=None) as batch_op:
        batch_op.create_index("ix_artifact_session_kind", ["session_id", "kind", "created_at"], unique=False)
        batch_op.create_index("ix_artifact_task", ["task_id"], unique=False)

    op.create_table(
        "task_dependency",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("depends_on_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("task_id <> depends_on_id", name=op.f("ck_task_dependency_not_self")),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["task.id"],
            name=op.f("fk_task_dependency_depends_on_id_task"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name=op.f("fk_task_dependency_task_id_task"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "depends_on_id", name=op.f("pk_task_dependency")),
    )
    with op.batch_alter_table("task_dependency", schema=None) as batch_op:
        batch_op.create_index("ix_task_dependency_depends_on", ["depends_on_id"], unique=False)
    if op.get_context().dialect.name == "postgresql":
        # Same expression as app.db.repositories.task_filters.SEARCH_DOCUMENT, so query_tasks can use it.
        op.execute(
            "CREATE INDEX ix_task_search ON task USING gin "
            "(to_tsvector('simple'::regconfig, title || ' ' || description || ' ' || coalesce(summary, '')))"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_task_search")
    with op.batch_alter_table("task_dependency", schema=None) as batch_op:
        batch_op.drop_index("ix_task_dependency_depends_on")

    op.drop_table("task_dependency")
    with op.batch_alter_table("artifact", schema=None) as batch_op:
        batch_op.drop_index("ix_artifact_task")
        batch_op.drop_index("ix_artifact_session_kind")

    op.drop_table("artifact")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_session_status")
        batch_op.drop_index("ix_task_session_created")
        batch_op.drop_index("ix_task_parent")
        batch_op.drop_index("ix_task_lease")
        batch_op.drop_index("ix_task_assigned_to")

    op.drop_table("task")
    op.drop_table("agent_visit")
    op.drop_table("agent")
    with op.batch_alter_table("task_event", schema=None) as batch_op:
        batch_op.drop_index("ix_task_event_task")
        batch_op.drop_index("ix_task_event_session")

    op.drop_table("task_event")
    with op.batch_alter_table("system_event", schema=None) as batch_op:
        batch_op.drop_index("ix_system_event_kind")

    op.drop_table("system_event")
    with op.batch_alter_table("request_record", schema=None) as batch_op:
        batch_op.drop_index("ix_request_record_created_at")

    op.drop_table("request_record")
    with op.batch_alter_table("orchestration_session", schema=None) as batch_op:
        batch_op.drop_index("ix_orchestration_session_working_directory")

    op.drop_table("orchestration_session")
