"""Alembic environment: runs on a connection handed in by app.db.schema (async engines, both backends).

SQLite runs in batch mode so ALTERs become table copies. Expression indexes that autogenerate cannot
compare (the PostgreSQL full-text index) are excluded from comparison by name.
"""

from __future__ import annotations

from alembic import context

from app.db.models import Base
from app.db.schema import include_object


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through app.db.schema (task-orchestrator migrate), not the alembic CLI")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
