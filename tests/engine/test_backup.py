"""Backups: online copies of a running engine's database, pruning, a careful restore."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from engine import backup as backup_module
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
    pg_backup,
    pg_restore,
    request_restore,
    restore,
)
from engine.cli import main
from engine.errors import ConfigError
from engine.settings import Settings, save_settings
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
#: An area of built-in services only (the command line's catalog has no probe).
HEARTBEAT = {
    "name": "Heartbeat", "enabled": False,
    "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "tick", "message": "tock"}}],
}


def area_names(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM areas ORDER BY name")]


def at_the_first_schema(url: str) -> None:
    """Make the database at ``url`` an older Hookline's: the first schema."""
    engine = open_sync(url)
    with engine.begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    engine.dispose()


def small_db(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    return path


@pytest.mark.sqlite_only("the SQLite file's online copy (PostgreSQL: pg_dump, below)")
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


@pytest.mark.sqlite_only("a damaged SQLite file")
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


async def test_daily_backup_of_sqlite(data_dir: Path) -> None:
    url = database_url(data_dir)
    assert await daily_backup(url, data_dir) is None  # no database yet
    await migrate(url)
    made = await daily_backup(url, data_dir)
    assert made is not None and list_backups(backup_dir(data_dir)) == [made]


async def test_a_backup_is_made_before_a_migration(data_dir: Path) -> None:
    url = database_url(data_dir)
    assert await backup_before_migration(url, data_dir) is None  # a new database
    data_dir.mkdir(parents=True, exist_ok=True)
    at_the_first_schema(url)

    copy = await backup_before_migration(url, data_dir)

    assert copy is not None and copy.name.startswith("hookline-before-migration-0001-")
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
    await migrate(url)
    assert await backup_before_migration(url, data_dir) is None  # up to date: nothing to do
    assert list_backups(backup_dir(data_dir)) == []  # not counted among the regular ones


@pytest.mark.sqlite_only("damaged SQLite files (PostgreSQL: below)")
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


@pytest.mark.sqlite_only("copies of the SQLite file (PostgreSQL: below)")
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
    source.write_text(json.dumps(HEARTBEAT))
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


@pytest.mark.sqlite_only("reads the SQLite copy (PostgreSQL: below)")
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


@pytest.mark.sqlite_only("the app restores SQLite copies; pg_dump's: the CLI")
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


# ---------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg(database: str, postgres_engine_url: str) -> str:
    """The data folder's database is PostgreSQL, for the engine and the command line
    (the ``database`` fixture saves it in the settings)."""
    assert database == postgres_engine_url
    return database


class ToolCalls:
    """Every pg_dump/pg_restore call: its command line, and its passfile as it was."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        real = subprocess.run

        def recording(args: list[str], **kwargs: Any) -> Any:
            passfile = (kwargs.get("env") or {}).get("PGPASSFILE")
            self.calls.append((list(args), Path(passfile).read_text() if passfile else None))
            return real(args, **kwargs)

        monkeypatch.setattr(backup_module.subprocess, "run", recording)


async def test_a_postgres_backup_brings_back_a_removed_area(
        make_engine: EngineFactory, data_dir: Path, pg: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = await make_engine(database_url=pg)
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await engine.run_now(area.id, {"title": "kept", "n": 1})
    await engine.wait_idle()
    # The password goes in a passfile of the tools' own, never on their command line.
    secret = pg.replace("hookline@", "hookline:pw-5e1f%3Ac0d3@")
    calls = ToolCalls(monkeypatch)
    saved = pg_backup(secret, backup_dir(data_dir))  # while the engine runs
    assert saved.name.startswith("hookline-") and saved.suffix == ".dump"
    assert list_backups(backup_dir(data_dir)) == [saved]
    dumps = [(args, passfile) for args, passfile in calls.calls if "--format=custom" in args]
    assert dumps and all("pw-5e1f" not in " ".join(args) for args, _ in calls.calls)
    assert dumps[0][1] == "*:*:*:*:pw-5e1f\\:c0d3\n"
    assert not list(Path(tempfile.gettempdir()).glob("hookline-pg-*/pgpass"))
    await engine.remove_area(area.id)
    fail_run_records(engine)  # a run known only to the run ledger (its table), as after a kill
    other = await engine.create_area(AreaSpec.from_dict({**AREA, "name": "Made later"}))
    await engine.run_now(other.id, {"title": "later", "n": 2})
    await engine.wait_idle()
    await engine.aclose()

    before = pg_restore(saved, pg, data_dir)

    assert before.name.startswith("hookline-before-restore-") and before.suffix == ".dump"
    again = await make_engine(database_url=pg)
    assert [a.id for a in again.areas()] == [area.id]
    assert [r["status"] for r in await again.store.runs(area.id)] == ["succeeded"]
    await again.aclose()
    pg_restore(before, pg, data_dir)  # the database as it was, with the ledger's run
    third = await make_engine(database_url=pg)
    assert [a.name for a in third.areas()] == ["Made later"]
    assert [r["status"] for r in await third.store.runs(other.id)] == ["succeeded"]


async def test_a_postgres_restore_is_refused_while_the_database_is_in_use(
        make_engine: EngineFactory, data_dir: Path, pg: str) -> None:
    engine = await make_engine(database_url=pg)
    await engine.create_area(AreaSpec.from_dict({**AREA, "enabled": False}))
    saved = pg_backup(pg, backup_dir(data_dir))
    with pytest.raises(BackupError, match=r"Hookline is running on .* \(pid \d+\): quit it"):
        pg_restore(saved, pg, data_dir)
    await engine.aclose()
    elsewhere = open_sync(pg)  # an engine on another computer, say
    try:
        with elsewhere.connect() as conn:
            conn.execute(text("SET application_name = 'hookline-standby'"))
            with pytest.raises(BackupError, match=r"The database is in use \(hookline-"
                                                  r"standby from .*\): stop every Hookline"):
                pg_restore(saved, pg, data_dir)
    finally:
        elsewhere.dispose()
    assert not list(backup_dir(data_dir).glob("hookline-before-restore-*"))


async def test_a_postgres_restore_checks_the_archive(
        make_engine: EngineFactory, data_dir: Path, pg: str, tmp_path: Path) -> None:
    engine = await make_engine(database_url=pg)
    await engine.create_area(AreaSpec.from_dict(AREA))
    await engine.aclose()
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(b"this is not an archive " * 100)
    for path, problem in [(garbage, "is not a usable backup"),
                          (tmp_path / "missing.dump", "No backup at")]:
        with pytest.raises(BackupError, match=problem):
            pg_restore(path, pg, data_dir)
    with pytest.raises(BackupError, match="put back from the command line"):
        request_restore(garbage, data_dir)
    again = await make_engine(database_url=pg)
    assert [a.name for a in again.areas()] == [AREA["name"]]


async def test_a_postgres_backup_of_an_older_schema_is_migrated_after_restoring(
        make_engine: EngineFactory, data_dir: Path, postgres_url: str) -> None:
    save_settings(data_dir, Settings(database_url=postgres_url))
    at_the_first_schema(postgres_url)
    old = pg_backup(postgres_url, backup_dir(data_dir))
    copy = await backup_before_migration(postgres_url, data_dir)
    assert copy is not None and copy.name.startswith("hookline-before-migration-0001-")
    await (await make_engine(database_url=postgres_url)).aclose()  # migrates to the head

    pg_restore(old, postgres_url, data_dir)  # tables made since are dropped with it

    again = await make_engine(database_url=postgres_url)
    await again.create_area(AreaSpec.from_dict(AREA))
    assert [a.name for a in again.areas()] == [AREA["name"]]


def test_postgres_command_line(data_dir: Path, pg: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "area.json"
    source.write_text(json.dumps(HEARTBEAT))
    assert run(capsys, "areas", "import", str(source))[0] == 0
    code, out, _ = run(capsys, "backup", "create", "--keep", "2")
    assert code == 0 and "backed up to" in out and ".dump" in out
    [listed] = json.loads(run(capsys, "backup", "list", "--json")[1])
    name = Path(listed["file"]).name
    code, out, _ = run(capsys, "backup", "list")
    assert name in out and "No backups can be made" not in out
    assert run(capsys, "areas", "remove", "Heartbeat")[0] == 0
    code, out, _ = run(capsys, "backup", "restore", name)
    assert code == 0 and "restored" in out and "hookline-before-restore-" in out
    code, out, _ = run(capsys, "areas", "list", "--json")
    assert [a["name"] for a in json.loads(out)] == ["Heartbeat"]


async def test_without_pg_dump_postgres_backups_say_what_to_install(
        data_dir: Path, pg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(backup_module, "_DEBIAN_BINS", tmp_path / "nowhere")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    code, out, _ = run(capsys, "backup", "list")
    assert code == 0 and "No backups yet" in out
    assert "No backups can be made now: Backups of a PostgreSQL database are made with " \
           "pg_dump; pg_dump is not installed. Install the PostgreSQL 1" in out
    assert "apt install postgresql-client-1" in out
    code, _, err = run(capsys, "backup", "create")
    assert code == 2 and "pg_dump is not installed" in err
    for _ in range(3):  # the hourly job: said once, not once an hour
        assert await daily_backup(pg, data_dir) is None
    said = [r for r in caplog.records if "pg_dump is not installed" in r.getMessage()]
    assert len(said) == 1 and said[0].getMessage().startswith("no daily backup is made: ")
    assert list_backups(backup_dir(data_dir)) == []
