"""The Alembic migrations build exactly the schema the records declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from retrieval.database import open_database
from retrieval.records import Base


def test_migrations_match_the_records(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'records.sqlite3'}"
    sessions = open_database(url)
    engine = sessions.kw["bind"]
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
