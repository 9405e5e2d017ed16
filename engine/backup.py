"""Backups of the database: online copies, the newest N kept, a careful restore.

SQLite: copies by its online backup (``.db`` files). PostgreSQL: ``pg_dump -Fc``
archives (``.dump``) where a pg_dump that can dump the server is installed, restored
with ``pg_restore``; without one, a message saying what to install. The password goes
to the tools in a passfile of the process's own, never on a command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from engine.errors import ConfigError, EngineLocked
from engine.lock import DataDirLock
from engine.settings import load_settings
from engine.storage.db import (
    current_revision,
    database_url,
    head_revision,
    open_sync,
    revisions,
    shown_url,
)
from engine.storage.ledger import LEDGER_DIR, Ledger, apply, fold, read_entries
from engine.storage.schema import metadata

log = logging.getLogger(__name__)

#: The folder under the data folder where backups go.
BACKUP_DIR = "backups"
#: How many regular backups are kept (the oldest go first).
KEEP = 7
#: Age of the newest backup past which the daily job makes a new one.
DAILY = timedelta(days=1)
#: How many copies made before a migration are kept.
KEEP_BEFORE_MIGRATION = 3

_STAMP = "%Y%m%d-%H%M%S"
_REGULAR = re.compile(r"^hookline-(\d{8}-\d{6})(?:-(\d+))?\.(?:db|dump)$")
_BEFORE_MIGRATION = re.compile(
    r"^hookline-before-migration-.*-(\d{8}-\d{6})(?:-(\d+))?\.(?:db|dump)$")


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
    """The engine's daily job: a backup when the newest is a day old. On PostgreSQL
    without a pg_dump for the server, said once (the job runs hourly) and skipped."""
    db_path = sqlite_path(url)
    if db_path is not None:
        return await asyncio.to_thread(backup_if_due, db_path, backup_dir(data_dir),
                                       keep=keep)
    if not is_postgres(url):
        return None

    def run() -> Path | None:
        folder = backup_dir(data_dir)
        newest = list_backups(folder)
        if newest and datetime.now() - taken_at(newest[0]) < DAILY:
            return None
        return pg_backup(url, folder, keep)

    return await _unless_tools_missing(run, "no daily backup is made")


async def backup_before_migration(url: str, data_dir: Path) -> Path | None:
    """Copy the database before the engine migrates it to a newer schema.

    Nothing happens for a new database, one already at the newest revision, or one
    that is not SQLite. Copies are named ``hookline-before-migration-<rev>-...db``
    and the newest three are kept."""
    if is_postgres(url):
        return await _unless_tools_missing(lambda: _pg_before_migration(url, data_dir),
                                           "no copy is made before migrating")
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
        _prune(backup_dir(data_dir), _BEFORE_MIGRATION, KEEP_BEFORE_MIGRATION)
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
    with _engine_stopped(data_dir):
        return _replace(backup_path, db_path, data_dir)


@contextlib.contextmanager
def _engine_stopped(data_dir: Path) -> Iterator[None]:
    """Hold the data folder's lock (no engine may start meanwhile), or say that one runs."""
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except EngineLocked:
        raise BackupError(
            f"Hookline is running on {data_dir} (pid {lock.holder()}): quit it first "
            "(or stop `hookline serve`), then restore again"
        ) from None
    try:
        yield
    finally:
        lock.release()


def request_restore(backup_path: Path, data_dir: Path) -> None:
    """Ask the next start to restore ``backup_path`` (checked now): the running app
    cannot swap the database it is using, so the app quits and restores on its way up."""
    if backup_path.suffix == PG_SUFFIX:
        raise BackupError("A PostgreSQL backup is put back from the command line: quit "
                          f"Hookline, then `hookline backup restore {backup_path.name}`")
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
        _fold_ledger(data_dir, f"sqlite:///{db_path}")
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


def _fold_ledger(data_dir: Path, url: str) -> None:
    """Runs a killed engine recorded only in its run ledger belong to the database being
    replaced: fold them into it (so the copy kept before restoring has them) and drop
    the ledger, which must not be replayed into the restored database."""
    segments = Ledger(data_dir / LEDGER_DIR).segments()
    if not segments:
        return
    engine = open_sync(url)
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
    target = _free_name(dest_dir, prefix, now, ".db")
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


def _free_name(dest_dir: Path, prefix: str, now: datetime | None, suffix: str) -> Path:
    stamp = (now or datetime.now()).strftime(_STAMP)
    target = dest_dir / f"{prefix}-{stamp}{suffix}"
    count = 1
    while target.exists():  # more than one in the same second
        count += 1
        target = dest_dir / f"{prefix}-{stamp}-{count}{suffix}"
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


# ---------------------------------------------------------------------- PostgreSQL

#: A PostgreSQL backup's suffix (pg_dump's custom format).
PG_SUFFIX = ".dump"
#: Where Debian and Ubuntu put each version's programs (besides a wrapper on PATH).
_DEBIAN_BINS = Path("/usr/lib/postgresql")
_said_missing: set[str] = set()


class ToolMissing(BackupError):
    """No pg_dump (pg_restore) here that can work with the server's version."""


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _tool_version(path: Path) -> int | None:
    """The major version of a PostgreSQL program (``pg_dump (PostgreSQL) 15.18``)."""
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\)\s*(\d+)", done.stdout)
    return int(match[1]) if match else None


def pg_tool(name: str, server: int) -> Path:
    """The newest ``name`` (pg_dump, pg_restore) of major version ``server`` or newer:
    an older one refuses to dump a newer server."""
    candidates = [p / "bin" / name for p in
                  (_DEBIAN_BINS.iterdir() if _DEBIAN_BINS.is_dir() else [])]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    found = [(version, path) for path in candidates if path.exists()
             if (version := _tool_version(path)) is not None]
    fit = [(version, path) for version, path in found if version >= server]
    if fit:
        return max(fit)[1]
    have = (f"; the {name} here is version {max(found)[0]}, too old for a version "
            f"{server} server") if found else f"; {name} is not installed"
    raise ToolMissing(
        f"Backups of a PostgreSQL database are made with {name}{have}. Install the "
        f"PostgreSQL {server} client programs (Debian and Ubuntu: apt install "
        f"postgresql-client-{server}; macOS: brew install libpq; Windows: the PostgreSQL "
        "installer's command line tools), or back the database up with the server's "
        "own tools")


def server_version(url: str) -> int:
    """The server's major version (``server_version_num`` 150018 → 15)."""
    engine = open_sync(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    except ConfigError:
        raise
    except Exception as exc:
        raise BackupError(f"Cannot reach the database at {shown_url(url)}: "
                          f"{str(getattr(exc, 'orig', None) or exc).strip()}") from None
    finally:
        engine.dispose()


def _libpq_address(url: str) -> str:
    """The database's address for libpq (pg_dump's ``--dbname``), without a password."""
    parsed = make_url(url).set(drivername="postgresql")._replace(password=None)
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def _libpq_env(url: str) -> Iterator[dict[str, str]]:
    """The tools' environment: the password in a passfile only this process's user can
    read, removed afterwards (a command line or PGPASSWORD shows in the process list)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    password = make_url(url).password
    if not password:
        yield env
        return
    folder = Path(tempfile.mkdtemp(prefix="hookline-pg-"))
    try:
        passfile = folder / "pgpass"
        escaped = str(password).replace("\\", "\\\\").replace(":", "\\:")
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"*:*:*:*:{escaped}\n")
        env["PGPASSFILE"] = str(passfile)
        yield env
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_tool(args: list[str], url: str, what: str) -> str:
    with _libpq_env(url) as env:
        try:
            done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        except OSError as exc:
            raise BackupError(f"Cannot run {args[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        problem = (done.stderr.strip() or f"exit status {done.returncode}").splitlines()
        raise BackupError(f"{what} failed: {'; '.join(problem[:3])}")
    return done.stdout


def pg_backup(url: str, dest_dir: Path, keep: int = KEEP, *, prefix: str = "hookline",
              now: datetime | None = None) -> Path:
    """``pg_dump -Fc`` of the database into ``dest_dir`` as ``<prefix>-<stamp>.dump``;
    of the regular ones (prefix ``hookline``) the newest ``keep`` are kept."""
    if keep < 1:
        raise BackupError("Keep at least one backup (--keep 1 or more)")
    tool = pg_tool("pg_dump", server_version(url))
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = _free_name(dest_dir, prefix, now, PG_SUFFIX)
    partial = target.with_name(target.name + ".partial")
    try:
        _run_tool([str(tool), "--format=custom", f"--file={partial}",
                   f"--dbname={_libpq_address(url)}"], url, "pg_dump")
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _fsync_dir(dest_dir)
    if prefix == "hookline":
        _prune(dest_dir, _REGULAR, keep)
    return target


def _pg_before_migration(url: str, data_dir: Path) -> Path | None:
    engine = open_sync(url)
    try:
        with engine.connect() as conn:
            current = current_revision(conn)
    except Exception:  # cannot reach it: the migration says why
        return None
    finally:
        engine.dispose()
    if current is None or current == head_revision():
        return None
    copy = pg_backup(url, backup_dir(data_dir), prefix=f"hookline-before-migration-{current}")
    _prune(backup_dir(data_dir), _BEFORE_MIGRATION, KEEP_BEFORE_MIGRATION)
    return copy


async def _unless_tools_missing(work: Any, skipped: str) -> Path | None:
    """``work()`` in a thread; without the tools, said once per process and skipped."""
    try:
        made: Path | None = await asyncio.to_thread(work)
    except ToolMissing as exc:
        if str(exc) not in _said_missing:
            _said_missing.add(str(exc))
            log.warning("%s: %s", skipped, exc)
        return None
    return made


def _pg_verify(path: Path, url: str, tool: Path) -> set[str]:
    """The tables of a pg_dump archive of a Hookline database this Hookline can read."""
    if not path.is_file():
        raise BackupError(f"No backup at {path}")
    try:
        listing = _run_tool([str(tool), "--list", str(path)], url, "Reading the backup")
    except BackupError as exc:
        raise BackupError(f"{path} is not a usable backup ({exc}); nothing was changed"
                          ) from None
    tables = set(re.findall(r"^\d+; \d+ \d+ TABLE \S+ (\S+) ", listing, re.MULTILINE))
    if "areas" not in tables or "alembic_version" not in tables:
        raise BackupError(f"{path} is not a Hookline database; nothing was changed")
    data = _run_tool([str(tool), "--data-only", "--table=alembic_version", "--file=-",
                      str(path)], url, "Reading the backup")
    rows = data.split("FROM stdin;\n", 1)[1].split("\n", 1) if "FROM stdin;\n" in data else []
    revision = rows[0].strip() if rows else ""
    if revision not in revisions():
        raise BackupError(f"{path} was made by a newer Hookline (schema {revision or '?'}); "
                          "upgrade Hookline first")
    return tables


def _others_connected(url: str) -> list[str]:
    """Who else is connected to the database (an engine on another computer, psql)."""
    engine = open_sync(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT coalesce(nullif(application_name, ''), 'a program') || ' from ' || "
                "coalesce(host(client_addr), 'this server') FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all()
    finally:
        engine.dispose()
    return sorted({row[0] for row in rows})


def pg_restore(backup_path: Path, url: str, data_dir: Path) -> Path:
    """Replace the database's Hookline tables with a pg_dump archive; returns where the
    database as it was is kept (a ``hookline-before-restore-...dump``).

    Refused while an engine runs on the data folder or anything else is connected to
    the database (an engine elsewhere), and when the archive is not a Hookline
    database this Hookline can read. pg_restore runs as one transaction; should it fail,
    the error names the copy kept to put back.
    """
    with _engine_stopped(data_dir):
        tool = pg_tool("pg_restore", server_version(url))
        tables = _pg_verify(backup_path, url, tool)
        others = _others_connected(url)
        if others:
            raise BackupError(
                f"The database is in use ({', '.join(others)}): stop every Hookline using "
                "it (and other programs), then restore again; nothing was changed")
        _fold_ledger(data_dir, url)
        before = pg_backup(url, backup_dir(data_dir), prefix="hookline-before-restore")
        _drop_newer_tables(url, tables)
        try:
            _run_tool([str(tool), "--clean", "--if-exists", "--no-owner", "--no-privileges",
                       "--single-transaction", "--exit-on-error",
                       f"--dbname={_libpq_address(url)}", str(backup_path)], url,
                      "pg_restore")
        except BackupError as exc:
            raise BackupError(f"{exc}. The database as it was is kept as {before}: put it "
                              f"back with `hookline backup restore {before.name}`") from None
        return before


def _drop_newer_tables(url: str, kept: set[str]) -> None:
    """Drop Hookline's tables the backup does not have (made by a later migration; their
    keys would keep pg_restore from dropping the tables they refer to): the next start
    makes them again, as the migration from the backup's schema does."""
    newer = [t.name for t in reversed(metadata.sorted_tables) if t.name not in kept]
    if not newer:
        return
    engine = open_sync(url)
    try:
        with engine.begin() as conn:
            for name in newer:
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()


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
    url = database_url(data_dir, load_settings(data_dir).database_url)
    if args.action == "list":
        rows: list[dict[str, Any]] = [{"file": str(path), "size": path.stat().st_size,
                 "taken_at": taken_at(path).isoformat()} for path in list_backups(folder)]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print(f"No backups yet in {folder}. Make one: hookline backup create")
        for row in rows:
            print(f"{Path(row['file']).name}  {_size(row['size']):>9}")
        if is_postgres(url):
            try:
                pg_tool("pg_dump", server_version(url))
            except BackupError as exc:
                print(f"No backups can be made now: {exc}")
        return 0
    db_path = sqlite_path(url)
    if db_path is None and not is_postgres(url):
        raise BackupError("Backups cover Hookline's SQLite and PostgreSQL databases; the "
                          "configured database is another kind: use its own backup tools")
    if args.action == "create":
        made = (backup(db_path, folder, args.keep) if db_path is not None
                else pg_backup(url, folder, args.keep))
        print(f"backed up to {made} ({_size(made.stat().st_size)}); the newest "
              f"{args.keep} are kept")
        return 0
    chosen = Path(args.file).expanduser()
    if not chosen.exists() and (folder / args.file).exists():
        chosen = folder / args.file
    before = (restore(chosen, db_path, data_dir=data_dir) if db_path is not None
              else pg_restore(chosen, url, data_dir))
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


__all__ = ["BACKUP_DIR", "KEEP", "BackupError", "ToolMissing", "backup",
           "backup_before_migration", "backup_dir", "backup_if_due", "daily_backup",
           "list_backups", "pg_backup", "pg_restore", "restore", "sqlite_path"]
