"""Migrations: the head Hookline reads from its files is Alembic's, and a current
database is left alone at start."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from engine.storage.db import MIGRATIONS, head_revision, migrate_sync, open_sync


def test_the_known_head_is_alembics_head() -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_heads() == [head_revision()]


def test_a_new_database_is_migrated_to_the_head(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    migrate_sync(url)
    migrate_sync(url)  # already current: nothing to do, no error
    engine = open_sync(url)
    with engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("select version_num from alembic_version")).scalar() == \
            head_revision()
    engine.dispose()
