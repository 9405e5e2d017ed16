"""Migrations: the head Hookline reads from its files is Alembic's, every revision runs
from the first on SQLite and on PostgreSQL and ends at the schema the code declares, and
a current database is left alone at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from engine.storage.db import (
    MIGRATIONS,
    alembic_config,
    current_revision,
    head_revision,
    migrate_sync,
    open_sync,
)
from engine.storage.schema import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of either kind."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_the_known_head_is_alembics_head() -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_heads() == [head_revision()]


def test_a_new_database_is_migrated_to_the_head(empty_database: str) -> None:
    migrate_sync(empty_database)
    migrate_sync(empty_database)  # already current: nothing to do, no error
    engine = open_sync(empty_database)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar() \
                == head_revision()
            # what the migrations made is what the code declares (no table, column,
            # index or key missing or different)
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_every_revision_runs_from_the_first(empty_database: str) -> None:
    """One revision at a time from 0001: each leaves the database at its own revision
    (an older Hookline's database is upgraded step by step the same way)."""
    script = ScriptDirectory(str(MIGRATIONS))
    order = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert order[0] == "0001" and order[-1] == head_revision()
    engine = open_sync(empty_database)
    try:
        for revision in order:
            with engine.begin() as conn:
                config = alembic_config(empty_database)
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
            with engine.connect() as conn:
                assert current_revision(conn) == revision
    finally:
        engine.dispose()
