"""Backups of the SQLite database: online copies, the newest N kept, a careful restore."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from engine.errors import ConfigError, EngineLocked
from engine.lock import DataDirLock
from engine.settings import load_settings
from engine.storage.db import database_url, head_revision, open_sync, revisions
from engine.storage.ledger import LEDGER_DIR, Ledger, apply, fold, read_entries

#: The folder under the data folder where backups go.
BACKUP_DIR = "backups"
#: How many regular backups are kept (the oldest go first).
KEEP = 7
#: Age of the newest backup past which the daily job makes a new one.
DAILY = timedelta(days=1)
#: How many copies made before a migration are kept.
KEEP_BEFORE_MIGRATION = 3

_STAMP = "%Y%m%d-%H%M%S"
_REGULAR = re.compile(r"^hookline-(\d{8}-\d{6})(?:-(\d+))?\.db$")


#: In the data folder: a restore the next start carries out.
PENDING_RESTORE = "restore-pending.json"


class BackupError(ConfigError):
    """A backup cannot be made or restored; the message says why and what to do."""


def backup_dir(data_dir: Path) -> Path:
    return data_dir / BACKUP_DIR


def sqlite_path(url: str) -> Path | None:
    """The database file behind ``url``, or None when it is not a SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


# ---------------------------------------------------------------------- making


def backup(db_path: Path, dest_dir: Path, keep: int = KEEP, *,
           now: datetime | None = None) -> Path:
    """Copy the database into ``dest_dir`` as ``hookline-YYYYmmdd-HHMMSS.db`` and keep
    only the newest ``keep`` such copies. Safe while an engine writes: SQLite's online
    backup takes a consistent snapshot."""
    if keep < 1:
        raise BackupError("Keep at least one backup (--keep 1 or more)")
    target = _copy(db_path, dest_dir, "hookline", now)
    _prune(dest_dir, _REGULAR, keep)
    return target


def list_backups(dest_dir: Path) -> list[Path]:
    """The regular backups in ``dest_dir``, newest first."""
    return _sorted(dest_dir, _REGULAR)


def backup_if_due(db_path: Path, dest_dir: Path, *, every: timedelta = DAILY,
                  keep: int = KEEP, now: datetime | None = None) -> Path | None:
    """A backup, if the newest one is older than ``every`` (or there is none)."""
    if not db_path.exists():
        return None
    now = now or datetime.now()
    newest = list_backups(dest_dir)
    if newest and now - taken_at(newest[0]) < every:
        return None
    return backup(db_path, dest_dir, keep, now=now)


async def daily_backup(url: str, data_dir: Path, keep: int = KEEP) -> Path | None:
    """The engine's daily job: a backup when the newest is a day old (SQLite only)."""
    db_path = sqlite_path(url)
    if db_path is None:
        return None
    return await asyncio.to_thread(backup_if_due, db_path, backup_dir(data_dir), keep=keep)


async def backup_before_migration(url: str, data_dir: Path) -> Path | None:
    """Copy the database before the engine migrates it to a newer schema.

    Nothing happens for a new database, one already at the newest revision, or one
    that is not SQLite. Copies are named ``hookline-before-migration-<rev>-...db``
    and the newest three are kept."""
    db_path = sqlite_path(url)
    if db_path is None or not db_path.exists() or db_path.stat().st_size == 0:
        return None

    def run() -> Path | None:
        try:
            current = _revision(db_path)
        except sqlite3.DatabaseError:  # damaged: the migration says so, and what to do
            return None
        if current == head_revision():
            return None
        prefix = f"hookline-before-migration-{current or 'none'}"
        target = _copy(db_path, backup_dir(data_dir), prefix, None)
        _prune(backup_dir(data_dir), re.compile(
            r"^hookline-before-migration-.*-(\d{8}-\d{6})(?:-(\d+))?\.db$"),
            KEEP_BEFORE_MIGRATION)
        return target

    return await asyncio.to_thread(run)


# ---------------------------------------------------------------------- restoring


def restore(backup_path: Path, db_path: Path, *, data_dir: Path | None = None) -> Path | None:
    """Replace the database with ``backup_path``; returns where the database as it was
    is kept (``hookline-before-restore-...db`` in the backups folder), or None if there
    was none.

    Refused while an engine runs on the data folder (this holds its lock meanwhile),
    and when the backup fails SQLite's integrity check or is not a Hookline database.
    The schema is brought up to date by the next start, as after any upgrade."""
    data_dir = data_dir or db_path.parent
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except EngineLocked:
        raise BackupError(
            f"Hookline is running on {data_dir} (pid {lock.holder()}): quit it first "
            "(or stop `hookline serve`), then restore again"
        ) from None
    try:
        return _replace(backup_path, db_path, data_dir)
    finally:
        lock.release()


def request_restore(backup_path: Path, data_dir: Path) -> None:
    """Ask the next start to restore ``backup_path`` (checked now): the running app
    cannot swap the database it is using, so the app quits and restores on its way up."""
    _verify(backup_path)
    marker = data_dir / PENDING_RESTORE
    staged = marker.with_name(marker.name + ".tmp")
    staged.write_text(json.dumps({"file": str(backup_path)}), encoding="utf-8")
    os.replace(staged, marker)


def pending_restore(data_dir: Path) -> Path | None:
    """The backup the next start will restore, if one was asked for."""
    try:
        return Path(json.loads((data_dir / PENDING_RESTORE).read_text(encoding="utf-8"))["file"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def restore_pending(db_path: Path, data_dir: Path) -> tuple[Path, Path | None] | None:
    """At start, holding the data folder's lock: carry out a requested restore, once
    (a failing one must not stop every start). Returns (backup, copy of the database
    as it was) or None when none was asked for."""
    marker = data_dir / PENDING_RESTORE
    if not marker.exists():
        return None
    chosen = pending_restore(data_dir)
    marker.unlink(missing_ok=True)
    if chosen is None:
        raise BackupError(f"the restore asked for in {marker.name} could not be read; "
                          "nothing was changed")
    return chosen, _replace(chosen, db_path, data_dir)


def _replace(backup_path: Path, db_path: Path, data_dir: Path) -> Path | None:
    """The restore itself (the caller holds the data folder's lock)."""
    _verify(backup_path)
    staged = db_path.with_name(db_path.name + ".restoring")
    staged.unlink(missing_ok=True)
    _sqlite_copy(backup_path, staged)
    before = None
    if db_path.exists() and _damaged(db_path):
        # SQLite cannot read it to copy it: its bytes are kept as they are instead.
        Ledger.set_aside(Ledger(data_dir / LEDGER_DIR).segments())
        before = _move_aside(db_path, backup_dir(data_dir), "hookline-damaged")
    elif db_path.exists():
        _fold_ledger(data_dir, db_path)
        before = _copy(db_path, backup_dir(data_dir), "hookline-before-restore", None)
        _checkpoint(db_path)
    else:
        Ledger.set_aside(Ledger(data_dir / LEDGER_DIR).segments())
    # A stale WAL or journal beside the new file would be replayed into it.
    for suffix in ("-wal", "-shm", "-journal"):
        db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    os.replace(staged, db_path)
    _fsync_dir(db_path.parent)
    return before


def _fold_ledger(data_dir: Path, db_path: Path) -> None:
    """Runs a killed engine recorded only in its run ledger belong to the database being
    replaced: fold them into it (so the copy kept before restoring has them) and drop
    the ledger, which must not be replayed into the restored database."""
    segments = Ledger(data_dir / LEDGER_DIR).segments()
    if not segments:
        return
    engine = open_sync(f"sqlite:///{db_path}")
    try:
        with engine.begin() as conn:
            apply(conn, fold(read_entries(segments)))
    except Exception:  # kept beside it, not replayed into the restored database
        Ledger.set_aside(segments)
        return
    finally:
        engine.dispose()
    Ledger.remove(segments)


def _verify(path: Path) -> None:
    if not path.is_file():
        raise BackupError(f"No backup at {path}")
    try:
        with contextlib.closing(_connect(path)) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            revision = (conn.execute("SELECT version_num FROM alembic_version").fetchone()
                        if "alembic_version" in tables else None)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a usable backup: {exc}; nothing was changed"
                          ) from None
    if problems != ["ok"]:
        problems = [str(p).replace("*** in database main ***", "").strip() for p in problems]
        listed = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        raise BackupError(f"{path} is damaged (SQLite's integrity check: {listed}); "
                          "nothing was changed: choose an older backup")
    if revision is None or "areas" not in tables:
        raise BackupError(f"{path} is not a Hookline database; nothing was changed")
    if revision[0] not in revisions():
        raise BackupError(f"{path} was made by a newer Hookline (schema {revision[0]}); "
                          "upgrade Hookline first") from None


# ---------------------------------------------------------------------- helpers


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=30)


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of ``source`` (WAL content included) as one self-contained
    file, flushed to disk."""
    with contextlib.closing(_connect(source)) as src, \
            contextlib.closing(_connect(target)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())


def _damaged(db_path: Path) -> bool:
    """Whether SQLite refuses to read the file at all (not a database, broken pages)."""
    try:
        with contextlib.closing(_connect(db_path)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        return True
    return False


def _move_aside(db_path: Path, dest_dir: Path, prefix: str) -> Path:
    """Move the database file (with its WAL) into ``dest_dir`` as it is."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{prefix}-{datetime.now().strftime(_STAMP)}.db"
    try:
        shutil.move(db_path, target)
        wal = db_path.with_name(db_path.name + "-wal")
        if wal.exists():
            shutil.move(wal, target.with_name(target.name + "-wal"))
    except OSError as exc:
        raise BackupError(f"Cannot move the damaged {db_path} aside: {exc.strerror}") from None
    return target


def _copy(db_path: Path, dest_dir: Path, prefix: str, now: datetime | None) -> Path:
    if not db_path.is_file():
        raise BackupError(f"No database at {db_path} to back up")
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now()).strftime(_STAMP)
    target = dest_dir / f"{prefix}-{stamp}.db"
    count = 1
    while target.exists():  # more than one in the same second
        count += 1
        target = dest_dir / f"{prefix}-{stamp}-{count}.db"
    partial = target.with_name(target.name + ".partial")
    try:
        _sqlite_copy(db_path, partial)
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"Cannot back up {db_path}: {exc}") from None
    except OSError as exc:
        raise BackupError(f"Cannot write a backup in {dest_dir}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    _fsync_dir(dest_dir)
    return target


def _sorted(dest_dir: Path, pattern: re.Pattern[str]) -> list[Path]:
    if not dest_dir.is_dir():
        return []
    found = []
    for path in dest_dir.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            found.append((match[1], int(match[2] or 1), path))
    return [path for *_, path in sorted(found, reverse=True)]


def _prune(dest_dir: Path, pattern: re.Pattern[str], keep: int) -> None:
    for old in _sorted(dest_dir, pattern)[keep:]:
        old.unlink(missing_ok=True)


def taken_at(path: Path) -> datetime:
    """When a regular backup was taken (local time, from its name)."""
    match = _REGULAR.match(path.name)
    assert match is not None
    return datetime.strptime(match[1], _STAMP)


def _revision(db_path: Path) -> str | None:
    with contextlib.closing(_connect(db_path)) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            return None
    return str(row[0]) if row else None


def _checkpoint(db_path: Path) -> None:
    """Fold the WAL into the database file, so removing it loses nothing."""
    with contextlib.closing(_connect(db_path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- command line


def add_parser(sub: Any) -> None:
    """Add ``backup`` to the ``hookline`` command's subparsers."""
    parser = sub.add_parser("backup", help="copies of the database: list, create, restore")
    bsub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    bsub.add_parser("list", help="the backups, newest first").add_argument(
        "--json", action="store_true")
    p = bsub.add_parser("create", help="back up the database now (fine while Hookline runs)")
    p.add_argument("--keep", type=int, default=KEEP,
                   help=f"how many backups to keep, the oldest go first (default {KEEP})")
    p = bsub.add_parser("restore", help="replace the database with a backup (quit Hookline "
                                        "first)")
    p.add_argument("file", help="a backup file, or its name in the backups folder")


def cmd_backup(args: argparse.Namespace, data_dir: Path) -> int:
    folder = backup_dir(data_dir)
    if args.action == "list":
        rows: list[dict[str, Any]] = [{"file": str(path), "size": path.stat().st_size,
                 "taken_at": taken_at(path).isoformat()} for path in list_backups(folder)]
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print(f"No backups yet in {folder}. Make one: hookline backup create")
        for row in [] if args.json else rows:
            print(f"{Path(row['file']).name}  {_size(row['size']):>9}")
        return 0
    url = database_url(data_dir, load_settings(data_dir).database_url)
    db_path = sqlite_path(url)
    if db_path is None:
        raise BackupError("Backups cover Hookline's own SQLite database; the configured "
                          "database is another kind: use its own backup tools")
    if args.action == "create":
        made = backup(db_path, folder, args.keep)
        print(f"backed up to {made} ({_size(made.stat().st_size)}); the newest "
              f"{args.keep} are kept")
        return 0
    chosen = Path(args.file).expanduser()
    if not chosen.exists() and (folder / args.file).exists():
        chosen = folder / args.file
    before = restore(chosen, db_path, data_dir=data_dir)
    print(f"restored {chosen}")
    if before:
        print(f"the database as it was is kept as {before}")
    print("Secrets stay in the OS keyring: those of areas removed since this backup are "
          "gone; set them again with `hookline areas secret AREA PARAM`.")
    return 0


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


__all__ = ["BACKUP_DIR", "KEEP", "BackupError", "backup", "backup_before_migration",
           "backup_dir", "backup_if_due", "daily_backup", "list_backups", "restore",
           "sqlite_path"]
