"""Every session's working directory in its one spelling (``app.domain.directories.normalise``).

initialize_session now resumes the session of ``/repo`` for ``/repo/`` and ``/repo//.``; the sessions
stored before kept the spelling their first agent used, and would not be found by the new one. Rewritten
in Python, row by row (the table holds one row per session; the rule is not one SQL expression on both
backends). Two active sessions of one directory after the rewrite are allowed, as before: the one most
recently active is resumed. The downgrade keeps the new spelling (the old one is not recorded).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 06:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.domain.directories import normalise

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SESSIONS = sa.table("orchestration_session", sa.column("id", sa.String), sa.column("working_directory", sa.String))


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(SESSIONS.c.id, SESSIONS.c.working_directory).where(SESSIONS.c.working_directory.is_not(None))
    ).all()
    for session_id, directory in rows:
        spelled = normalise(directory)
        if spelled != directory:
            connection.execute(SESSIONS.update().where(SESSIONS.c.id == session_id).values(working_directory=spelled))


def downgrade() -> None:
    pass  # the rewrite is kept: the spelling each session had before is not recorded
