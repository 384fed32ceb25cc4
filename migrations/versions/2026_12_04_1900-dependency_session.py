"""task_dependency.session_id: the session of both ends of an edge, with an index, so a session's edges
are read without reading anyone else's.

get_status's ready set (and next_task's account of why nothing is ready) is an anti-join of the session's
pending tasks against their unfinished dependencies. With no session on the edge, PostgreSQL either probed
the dependency table once per pending task or hashed every session's edges, so the statement grew with
the whole database: a 10,000-task session took 9 to 14 ms alone in its database and 27 to 31 ms beside seven
more like it (76,686 tasks); bound to the session's edges, 9 to 14 ms in both.

Backfilled from each edge's task (a dependency is always in its task's session: plan and update refuse
others, an import checks it). No foreign key to the session: the two task keys already delete the edge
with its tasks, and so with its session. The index is built inside the migration's transaction, like
0003's: writes to ``task_dependency`` wait while it builds.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_dependency", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_id", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE task_dependency SET session_id = "
        "(SELECT task.session_id FROM task WHERE task.id = task_dependency.task_id)"
    )
    with op.batch_alter_table("task_dependency", schema=None) as batch_op:
        batch_op.alter_column("session_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_index("ix_task_dependency_session", ["session_id", "depends_on_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_dependency", schema=None) as batch_op:
        batch_op.drop_index("ix_task_dependency_session")
        batch_op.drop_column("session_id")
