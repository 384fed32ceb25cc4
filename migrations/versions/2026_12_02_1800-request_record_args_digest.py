"""request_record.args_digest: the digest of the first call's arguments, so a request_id reused with other
arguments is refused as idempotency_conflict instead of silently replaying the first result (DESIGN §3).

Nullable: records written before this revision have no digest and are compared by tool only; they are
purged after 24 h anyway.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 18:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("request_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("args_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_record", schema=None) as batch_op:
        batch_op.drop_column("args_digest")
