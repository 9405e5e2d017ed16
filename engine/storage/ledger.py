"""The run ledger: a run's progress made safe against a killed process without waiting
for a database commit.

Before a reaction runs, "the previous run finished (with this outcome)" and "this run
started" must survive a kill, or a restart would repeat reactions that already acted.
Waiting for the group writer's commit costs a round trip through its thread and a turn
of the event loop per run, which caps a busy area at a few hundred runs a second. So
each start, step and finish becomes a JSON line here, and the lines buffered so far
are written (one ``write()`` to a file in the data folder: in the kernel's cache once it
returns, so a killed process loses nothing) before any reaction acts and at the end of
each turn of the event loop; their database writes are committed by the group writer
in the background, a turn's worth at a time.

A segment of the ledger is deleted once every write made while it was current has
committed; on a clean stop the whole ledger goes. At the next start, whatever is left
(the process was killed, or a write failed) is folded into the database before anything
else runs (:func:`replay`), and then removed.

Like run bookkeeping in the database (``synchronous=NORMAL``), the ledger is not
flushed to disk: a power cut may lose its last lines, and then an event whose run was
under way is run again, not marked resumed. Journaled events themselves are fsynced.

Engines sharing a PostgreSQL database (engine/standby.py) keep the ledger in the
database instead (:class:`TableLedger`, the ``run_ledger`` table): a file is in the data
folder of the engine that wrote it, which the engine taking over on another machine
cannot read, so a run recorded only there would run again there. The lines go in on the
lease's own connection (one round trip per flush, ``synchronous_commit=off``: like the
file, safe against a killed process, not against the server losing power), so a reaction
acts only while the session that holds the lease is alive. Those writes are made from
the event loop, so one the database does not answer is cut after :data:`WRITE_WITHIN`
seconds (a partition: the loop would otherwise wait as long as TCP does, for ever behind
a tunnel or a proxy that still acknowledges, and the engine could not even fence).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, select, update

from engine.errors import StorageError
from engine.storage.schema import events, runs, utcnow

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

#: The ledger's folder, in the data folder.
LEDGER_DIR = "ledger"
#: A segment this large is closed and a new one started.
SEGMENT_BYTES = 4 * 1024 * 1024
_PREFIX = "runs-"
#: One encoder for every line (``json.dumps`` with options builds one per call).
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
_SUFFIX = ".ledger"
#: seconds a write to the ``run_ledger`` table may wait for the database before its
#: connection is cut: the bound of the lease's own check (engine/standby.py)
WRITE_WITHIN = 3.0
#: seconds between the watch's looks at a connection no write uses (closed: it ends)
IDLE_LOOK = 60.0


class Ledger:
    """Append-only segments ``runs-<n>.ledger`` in ``folder``.

    Args:
        folder: where the segments live (created when opened).
        segment_bytes: size past which :meth:`rotate_due` asks for a new segment.
    """

    def __init__(self, folder: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._number = 0
        self._first = 0
        self._size = 0
        self._buffer: list[str] = []
        self._cut = False

    def segments(self) -> list[Path]:
        """The segments on disk, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir()
                 if p.name.startswith(_PREFIX) and p.name.endswith(_SUFFIX)
                 and p.name[len(_PREFIX):-len(_SUFFIX)].isdigit()]
        return sorted(found, key=_number)

    def open(self) -> None:
        """Start a new segment after any left on disk."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the run ledger folder {self.folder}: "
                               f"{exc.strerror}") from None
        existing = self.segments()
        self._number = (_number(existing[-1]) + 1) if existing else 1
        self._first = self._number
        self._open_segment()

    def _open_segment(self) -> None:
        path = self.current
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
            self._fd = os.open(path, flags, 0o600)  # O_BINARY: Windows would add \r
        except OSError as exc:
            raise StorageError(f"cannot open the run ledger {path}: {exc.strerror}") from None
        self._size = 0

    @property
    def current(self) -> Path:
        return self.folder / f"{_PREFIX}{self._number:08d}{_SUFFIX}"

    def append(self, entry: dict[str, Any], raw: dict[str, str] | None = None) -> None:
        """Buffer one entry (``raw``: more fields, already JSON) for :meth:`flush`."""
        self._buffer.append(_line(entry, raw))

    @staticmethod
    def read(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
        return read_entries(paths)

    def flush(self) -> None:
        """Write the buffered entries (one ``write()``); once this returns, a killed
        process does not lose them."""
        if not self._buffer:
            return
        if self._fd is None:
            raise StorageError("the run ledger is not open")
        # After a failed write that got partway, end its cut line first.
        data = ("\n" if self._cut else "") + "\n".join(self._buffer) + "\n"
        view = memoryview(data.encode())
        try:
            while view:
                written = os.write(self._fd, view)
                self._size += written
                self._cut = True
                view = view[written:]
        except OSError as exc:  # kept: every later flush (before each reaction) fails too
            raise StorageError(f"could not record the run in {self.current}: {exc.strerror}"
                               " — free some disk space; the run did not start") from None
        self._cut = False
        self._buffer.clear()

    def rotate_due(self) -> bool:
        return self._fd is not None and self._size >= self.segment_bytes

    def rotate(self) -> Path:
        """Close the current segment and start the next; returns the closed one."""
        self.flush()
        closed = self.current
        self._close_fd()
        self._number += 1
        self._open_segment()
        return closed

    def close(self, *, remove: bool) -> None:
        """Close; with ``remove``, delete the segments this ledger wrote (all of their
        records are committed)."""
        try:
            self.flush()
        except StorageError as exc:  # stopping: say so, keep what is on disk
            log.error("%s", exc)
            remove = False
        finally:
            self._close_fd()
        if remove and self._first:
            self.remove(p for p in self.segments() if _number(p) >= self._first)

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def remove(paths: Iterable[Path]) -> None:
        for path in paths:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # harmless: replaying it again changes nothing
                log.warning("could not remove the run ledger segment %s: %s", path,
                            exc.strerror)


    @staticmethod
    def set_aside(paths: Iterable[Path]) -> list[Path]:
        """Rename segments out of the ledger (kept for a person to look at)."""
        kept = []
        for path in paths:
            target = path.with_name(path.name + ".unreplayed")
            try:
                path.replace(target)
            except OSError:
                continue
            kept.append(target)
        return kept


class RunLedger(Protocol):
    """What the journal writes a run's progress to: :class:`Ledger` (a folder) or
    :class:`TableLedger` (the shared database). A segment is whatever the ledger names
    its parts with (a file's path, a table's segment name)."""

    folder: Any  # where it is, for messages

    def segments(self) -> list[Any]: ...
    def read(self, segments: Iterable[Any]) -> Iterator[dict[str, Any]]: ...
    def set_aside(self, segments: Iterable[Any]) -> list[Any]: ...
    def remove(self, segments: Iterable[Any]) -> None: ...
    def open(self) -> None: ...
    def append(self, entry: dict[str, Any], raw: dict[str, str] | None = None) -> None: ...
    def flush(self) -> None: ...
    def rotate_due(self) -> bool: ...
    def rotate(self) -> Any: ...
    def close(self, *, remove: bool) -> None: ...


#: Segments of the table ledger set aside after a failed replay end with this.
_ASIDE = ".unreplayed"


class TableLedger:
    """The run ledger as rows of ``run_ledger`` (segment, line), written on ``conn``:
    the lease's connection, so the rows go in only while this engine holds the lease.

    A segment is ``<engine nonce>-<n>``; an engine removes only its own, and replays
    (at a takeover, holding the lease) whatever any engine left.

    Args:
        conn: a psycopg connection in autocommit mode (engine/standby.py's lease).
        segment_bytes: size past which :meth:`rotate_due` asks for a new segment.
    """

    folder = "the database's run_ledger table"

    def __init__(self, conn: psycopg.Connection[Any], segment_bytes: int = SEGMENT_BYTES
                 ) -> None:
        self.conn = conn
        self.segment_bytes = segment_bytes
        self._owner = secrets.token_hex(6)
        self._number = 0
        self._first = 0
        self._size = 0
        self._buffer: list[str] = []
        #: when the write under way began (None: none is), for :meth:`_watch`
        self._writing: float | None = None
        self._watching: threading.Thread | None = None
        self._changed = threading.Condition()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        if self._watching is None:
            self._watching = threading.Thread(target=self._watch, name="ledger-watch",
                                              daemon=True)
            self._watching.start()
        with self._changed:
            self._writing = time.monotonic()
            self._changed.notify()
        try:
            cursor = self.conn.execute(sql.encode(), params)
            return cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"could not write the run ledger to the database ({said}); "
                               "the run did not start") from None
        finally:
            with self._changed:
                self._writing = None

    def _watch(self) -> None:
        """Until the connection closes: cut it when a write has waited more than
        :data:`WRITE_WITHIN` seconds. The write then fails (its run does not start), and
        so does the lease's next check: the engine fences, and the server ends the
        session (freeing the lease) if it still has it. It sleeps while no write is under
        way (an idle engine is not woken but once a minute, to see the connection closed)."""
        with self._changed:
            while not self.conn.closed:
                began = self._writing
                if began is None:
                    self._changed.wait(IDLE_LOOK)
                    continue
                left = began + WRITE_WITHIN - time.monotonic()
                if left > 0:
                    self._changed.wait(left)  # (a write that ends does not wake it)
                    continue
                log.error("the database did not answer a run ledger write within %.0f s: "
                          "its connection is cut", WRITE_WITHIN)
                try:
                    with socket.socket(fileno=os.dup(self.conn.pgconn.socket)) as sock:
                        sock.shutdown(socket.SHUT_RDWR)  # the waiting call returns at once
                except Exception:
                    log.debug("the run ledger's connection could not be cut", exc_info=True)
                return

    def segments(self) -> list[str]:
        rows = self._run("SELECT segment FROM run_ledger WHERE segment NOT LIKE %s "
                         "GROUP BY segment ORDER BY min(id)", (f"%{_ASIDE}",))
        return [str(r[0]) for r in rows]

    def read(self, segments: Iterable[str]) -> Iterator[dict[str, Any]]:
        rows = self._run("SELECT line FROM run_ledger WHERE segment = ANY(%s) ORDER BY id",
                         (list(segments),))
        for (line,) in rows:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("run"), int):
                yield entry

    def open(self) -> None:
        self._number = self._first = 1
        self._size = 0

    @property
    def current(self) -> str:
        return f"{self._owner}-{self._number:08d}"

    def append(self, entry: dict[str, Any], raw: dict[str, str] | None = None) -> None:
        self._buffer.append(_line(entry, raw))

    def flush(self) -> None:
        """Insert the buffered entries (one statement, committed on return)."""
        if not self._buffer:
            return
        if not self._number:
            raise StorageError("the run ledger is not open")
        self._run("INSERT INTO run_ledger (segment, line) SELECT %s, unnest(%s::text[])",
                  (self.current, self._buffer))
        self._size += sum(len(line) for line in self._buffer)
        self._buffer.clear()

    def rotate_due(self) -> bool:
        return bool(self._number) and self._size >= self.segment_bytes

    def rotate(self) -> str:
        self.flush()
        closed = self.current
        self._number += 1
        self._size = 0
        return closed

    def close(self, *, remove: bool) -> None:
        try:
            self.flush()
        except StorageError as exc:
            log.error("%s", exc)
            remove = False
        if remove and self._first:
            self.remove(f"{self._owner}-{n:08d}" for n in range(self._first, self._number + 1))
        self._number = 0

    def _close_fd(self) -> None:
        """Nothing to close: the connection is the lease's."""

    def remove(self, segments: Iterable[str]) -> None:
        try:
            self._run("DELETE FROM run_ledger WHERE segment = ANY(%s)", (list(segments),))
        except StorageError as exc:  # harmless: replaying it again changes nothing
            log.warning("%s", exc)

    def set_aside(self, segments: Iterable[str]) -> list[str]:
        names = list(segments)
        self._run("UPDATE run_ledger SET segment = segment || %s WHERE segment = ANY(%s)",
                  (_ASIDE, names))
        return [name + _ASIDE for name in names]


def _line(entry: dict[str, Any], raw: dict[str, str] | None) -> str:
    line = _encode(entry)
    if raw:
        line = line[:-1] + "".join(f",{_encode(k)}:{v}" for k, v in raw.items()) + "}"
    return line


def _number(path: Path) -> int:
    return int(path.name[len(_PREFIX):-len(_SUFFIX)])


def read_entries(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Entries in order; a line cut short by a kill (the last of its segment) is skipped."""
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise StorageError(f"cannot read the run ledger {path}: {exc.strerror}") from None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                log.warning("skipped an unreadable line %d of %s (cut short when Hookline "
                            "stopped)", number, path.name)
                continue
            if isinstance(entry, dict) and isinstance(entry.get("run"), int):
                yield entry


def fold(entries: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each run's latest known state: its start, then steps, then its finish."""
    state: dict[int, dict[str, Any]] = {}
    for entry in entries:
        state.setdefault(entry["run"], {}).update(entry)
    return state


def apply(conn: Connection, state: dict[int, dict[str, Any]]) -> int:
    """Bring the database up to ``state`` (idempotent); returns the runs changed."""
    changed = 0
    for run_id, run in state.items():
        row = conn.execute(select(runs.c.id, runs.c.status).where(runs.c.id == run_id)).first()
        if row is None:
            if "area" not in run or "event" not in run:
                continue  # its start is in a segment already removed: nothing to add to
            payload = conn.execute(select(events.c.payload).where(
                events.c.id == run["event"])).first()
            if payload is None:  # the area (and its events) were removed since
                continue
            conn.execute(runs.insert().values(
                id=run_id, event_id=run["event"], area_id=run["area"],
                status=run.get("started_status", "running"), resumed=bool(run.get("resumed")),
                trigger_payload=payload[0], condition=None, steps=run.get("steps") or [],
                error=None, started_at=_when(run.get("started")), finished_at=None))
        elif row.status not in ("running", "missed"):
            continue  # the database already has its outcome
        if "finished" in run:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                status=run["status"], steps=run.get("steps") or [], error=run.get("error"),
                condition=run.get("condition"), finished_at=_when(run["finished"])))
            if run.get("event") is not None:
                conn.execute(update(events).where(events.c.id == run["event"]).values(
                    status="done", finished_at=_when(run["finished"])))
        elif "steps" in run:
            conn.execute(update(runs).where(runs.c.id == run_id).values(steps=run["steps"]))
        changed += 1
    return changed


def _when(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return utcnow()
