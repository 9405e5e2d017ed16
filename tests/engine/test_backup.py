"""Backups: online copies of a running engine's database, pruning, a careful restore."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic import command

from engine.areas import AreaSpec
from engine.backup import (
    BackupError,
    backup,
    backup_before_migration,
    backup_dir,
    backup_if_due,
    daily_backup,
    list_backups,
    pending_restore,
    request_restore,
    restore,
)
from engine.cli import main
from engine.errors import ConfigError
from engine.storage.db import DB_FILE, alembic_config, database_url, migrate, open_sync
from engine.storage.ledger import LEDGER_DIR, Ledger
from tests.engine.conftest import EngineFactory, fail_run_records

AREA = {
    "name": "Items to record",
    "trigger": {"service": "probe", "trigger": "items"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}
MAY_1 = datetime(2024, 5, 1, 8, 30, 0)


def area_names(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM areas ORDER BY name")]


def small_db(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    return path


async def test_restore_brings_back_a_removed_area(make_engine: EngineFactory,
                                                  data_dir: Path) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    db = data_dir / DB_FILE
    saved = backup(db, backup_dir(data_dir))  # while the engine runs
    assert saved.parent == data_dir / "backups"
    assert saved.name.startswith("hookline-") and saved.suffix == ".db"
    await engine.remove_area(area.id)
    other = await engine.create_area(AreaSpec.from_dict({**AREA, "name": "Made later"}))
    await engine.aclose()

    before = restore(saved, db)

    assert before is not None and before.name.startswith("hookline-before-restore-")
    assert area_names(before) == ["Made later"]  # the database as it was, kept
    assert not db.with_name(DB_FILE + "-wal").exists() or db.with_name(
        DB_FILE + "-wal").stat().st_size == 0
    again = await make_engine()
    assert again.area(area.id).name == AREA["name"]
    assert [a.id for a in again.areas()] == [area.id]
    assert other.id not in {a.id for a in again.areas()}


async def test_a_damaged_database_is_explained_and_a_backup_brings_it_back(
        make_engine: EngineFactory, data_dir: Path) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    db = data_dir / DB_FILE
    saved = backup(db, backup_dir(data_dir))
    await engine.aclose()
    broken = b"SQLite format 3\x00" + b"\xff" * 4000  # a header, then noise
    db.write_bytes(broken)
    db.with_name(DB_FILE + "-wal").unlink(missing_ok=True)

    with pytest.raises(ConfigError, match=r"is damaged \(file is not a database\)\. "
                                          r"Hookline keeps a copy from each day"):
        await make_engine()
    before = restore(saved, db)  # SQLite cannot copy it: its bytes are kept as they are

    assert before is not None and before.name.startswith("hookline-damaged-")
    assert before.read_bytes() == broken
    again = await make_engine()
    assert [a.id for a in again.areas()] == [area.id]


def test_keeps_the_newest_n(tmp_path: Path) -> None:
    db = small_db(tmp_path / "hookline.db")
    folder = tmp_path / "backups"
    (folder / "notes").mkdir(parents=True)
    (folder / "hookline-before-restore-20240101-000000.db").write_bytes(b"kept apart")
    for day in range(9):
        backup(db, folder, keep=3, now=MAY_1 + timedelta(days=day))
    assert [p.name for p in list_backups(folder)] == [
        "hookline-20240509-083000.db", "hookline-20240508-083000.db",
        "hookline-20240507-083000.db",
    ]
    # Two in the same second: both kept, the later counts as newer.
    second = backup(db, folder, keep=3, now=MAY_1 + timedelta(days=8))
    assert second.name == "hookline-20240509-083000-2.db"
    assert list_backups(folder)[0] == second
    assert len(list_backups(folder)) == 3
    assert (folder / "hookline-before-restore-20240101-000000.db").exists()
    assert (folder / "notes").is_dir()
    with pytest.raises(BackupError, match="Keep at least one backup"):
        backup(db, folder, keep=0)


def test_daily_backup_only_when_the_newest_is_a_day_old(tmp_path: Path) -> None:
    db = small_db(tmp_path / "hookline.db")
    folder = tmp_path / "backups"
    assert backup_if_due(db, folder, now=MAY_1) is not None
    assert backup_if_due(db, folder, now=MAY_1 + timedelta(hours=23)) is None
    assert backup_if_due(db, folder, now=MAY_1 + timedelta(hours=25)) is not None
    assert len(list_backups(folder)) == 2
    assert backup_if_due(tmp_path / "missing.db", folder) is None


async def test_daily_backup_covers_sqlite_only(data_dir: Path) -> None:
    assert await daily_backup("postgresql+asyncpg://me@db.example/hookline", data_dir) is None
    url = database_url(data_dir)
    assert await daily_backup(url, data_dir) is None  # no database yet
    await migrate(url)
    made = await daily_backup(url, data_dir)
    assert made is not None and list_backups(backup_dir(data_dir)) == [made]


async def test_a_backup_is_made_before_a_migration(data_dir: Path) -> None:
    url = database_url(data_dir)
    assert await backup_before_migration(url, data_dir) is None  # a new database
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_sync(url)
    with engine.begin() as conn:  # an older Hookline's database: the first schema
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    engine.dispose()

    copy = await backup_before_migration(url, data_dir)

    assert copy is not None and copy.name.startswith("hookline-before-migration-0001-")
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
    await migrate(url)
    assert await backup_before_migration(url, data_dir) is None  # up to date: nothing to do
    assert list_backups(backup_dir(data_dir)) == []  # not counted among the regular ones


async def test_a_damaged_backup_is_refused(make_engine: EngineFactory, data_dir: Path,
                                           tmp_path: Path) -> None:
    engine = await make_engine()
    await engine.create_area(AreaSpec.from_dict(AREA))
    db = data_dir / DB_FILE
    good = backup(db, backup_dir(data_dir))
    await engine.aclose()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database " * 200)
    damaged = tmp_path / "damaged.db"
    data = bytearray(good.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page:4 * page] = b"\xa5" * (2 * page)
    damaged.write_bytes(bytes(data))
    orphans = tmp_path / "orphans.db"  # readable, but pages nothing refers to
    orphans.write_bytes(good.read_bytes())
    with contextlib.closing(sqlite3.connect(orphans)) as conn:
        conn.execute("PRAGMA writable_schema=ON")
        conn.execute("DELETE FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        conn.commit()
    foreign = small_db(tmp_path / "foreign.db")
    newer = tmp_path / "newer.db"
    newer.write_bytes(good.read_bytes())
    with contextlib.closing(sqlite3.connect(newer)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
        conn.commit()

    for path, problem in [
        (garbage, "is not a usable backup: file is not a database; nothing was changed"),
        (damaged, "is not a usable backup: database disk image is malformed"),
        (orphans, "is damaged (SQLite's integrity check: Page "),
        (foreign, "is not a Hookline database; nothing was changed"),
        (newer, "was made by a newer Hookline (schema 9999); upgrade Hookline first"),
        (tmp_path / "missing.db", "No backup at"),
    ]:
        with pytest.raises(BackupError) as error:
            restore(path, db)
        assert problem in str(error.value), path
    assert area_names(db) == [AREA["name"]]
    assert not list(backup_dir(data_dir).glob("hookline-before-restore-*"))
    assert not db.with_name(DB_FILE + ".restoring").exists()


async def test_restore_is_refused_while_an_engine_runs(make_engine: EngineFactory,
                                                       data_dir: Path) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    db = data_dir / DB_FILE
    saved = backup(db, backup_dir(data_dir))
    await engine.remove_area(area.id)

    with pytest.raises(BackupError, match=r"Hookline is running on .* \(pid \d+\): quit it "
                                          r"first"):
        restore(saved, db)

    assert engine.areas() == []
    await engine.create_area(AreaSpec.from_dict(AREA))  # the engine was not disturbed
    assert area_names(db) == [AREA["name"]]
    assert not list(backup_dir(data_dir).glob("hookline-before-restore-*"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_command_line(tmp_path: Path, data_dir: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "area.json"
    source.write_text(json.dumps({
        "name": "Heartbeat", "enabled": False,
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "tick", "message": "tock"}}],
    }))
    code, out, _ = run(capsys, "backup", "list")
    assert code == 0 and "No backups yet" in out
    assert run(capsys, "areas", "import", str(source))[0] == 0

    code, out, _ = run(capsys, "backup", "create", "--keep", "2")
    assert code == 0 and "backed up to" in out and "the newest 2 are kept" in out
    code, out, _ = run(capsys, "backup", "list", "--json")
    [listed] = json.loads(out)
    name = Path(listed["file"]).name
    code, out, _ = run(capsys, "backup", "list")
    assert name in out

    assert run(capsys, "areas", "remove", "Heartbeat")[0] == 0
    code, out, _ = run(capsys, "backup", "restore", name)  # a name in the backups folder
    assert code == 0 and "restored" in out and "hookline-before-restore-" in out
    code, out, _ = run(capsys, "areas", "list", "--json")
    assert [a["name"] for a in json.loads(out)] == ["Heartbeat"]

    code, _, err = run(capsys, "backup", "restore", str(tmp_path / "nope.db"))
    assert code == 2 and "No backup at" in err


async def test_runs_known_only_to_the_run_ledger_stay_with_the_database_they_belong_to(
        make_engine: EngineFactory, data_dir: Path) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    saved = backup(data_dir / DB_FILE, backup_dir(data_dir))
    fail_run_records(engine)  # as if killed before the run records were committed
    await engine.run_now(area.id, {"title": "t", "n": 1})
    await engine.wait_idle()
    await engine.aclose()
    assert Ledger(data_dir / LEDGER_DIR).segments()

    before = restore(saved, data_dir / DB_FILE)

    assert before is not None
    with contextlib.closing(sqlite3.connect(before)) as kept:
        assert kept.execute("SELECT status FROM runs").fetchall() == [("succeeded",)]
    assert Ledger(data_dir / LEDGER_DIR).segments() == [], "not replayed into the backup"
    again = await make_engine()
    assert await again.store.runs(area.id) == []


async def test_a_restore_asked_for_while_running_happens_at_the_next_start(
        make_engine: EngineFactory, data_dir: Path) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    saved = backup(data_dir / DB_FILE, backup_dir(data_dir))
    await engine.remove_area(area.id)
    request_restore(saved, data_dir)  # the app is running: only noted
    assert pending_restore(data_dir) == saved
    assert engine.areas() == []
    await engine.aclose()

    again = await make_engine()
    assert again.restored == saved
    assert [a.id for a in again.areas()] == [area.id]
    assert pending_restore(data_dir) is None
    await again.aclose()
    third = await make_engine()
    assert third.restored is None, "done once"


def test_a_broken_backup_is_refused_when_asked_for(data_dir: Path, tmp_path: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database")
    with pytest.raises(BackupError):
        request_restore(broken, data_dir)
    assert pending_restore(data_dir) is None
