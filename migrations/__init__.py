"""Alembic migrations: the only owner of the schema, on PostgreSQL and SQLite alike."""
