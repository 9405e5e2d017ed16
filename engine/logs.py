"""Logging for the long-running entry points: a rotating file in the data folder (what
happened while nobody watched: a feed failing, an area pausing itself) and the console,
at the level of the ``log_level`` setting."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from engine import trace

LOG_DIR = "logs"
LOG_FILE = "hookline.log"
#: The file is rotated at this size; this many older files are kept.
MAX_BYTES = 1024 * 1024
BACKUPS = 5
#: Libraries that say too much at INFO, or at DEBUG (``--verbose``): SQLAlchemy and
#: aiosqlite log every statement, which filled the 1 MiB log in a minute.
QUIET = ("aiohttp.access", "apscheduler", "alembic", "asyncio", "sqlalchemy", "aiosqlite")

_OURS = "_hookline_handler"
_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class _Formatter(logging.Formatter):
    """Writes the time of day once a second, not once a record (``strftime`` was a
    good part of a line's cost when every run logs one), and opens the message of a
    line written while a run is under way (or about one run: ``extra={"trace_id":
    ...}``) with its trace id, ``[trace <32 hex>]``: the id that run's requests carry
    in ``traceparent``, so one event can be followed through the log and the services
    it called."""

    def __init__(self, fmt: str, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(datefmt or self.default_time_format,
                                       self.converter(second))
            self._second = second
        msec_format = self.default_msec_format
        if datefmt or not msec_format:
            return self._text
        return msec_format % (self._text, record.msecs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        trace_id = getattr(record, "trace_id", None) or trace.trace_id()
        if not trace_id:
            return super().formatMessage(record)
        plain = record.message
        record.message = f"[trace {trace_id}] {plain}"  # this handler's line only
        try:
            return super().formatMessage(record)
        finally:
            record.message = plain


class _LogFile(RotatingFileHandler):
    """A rotating log file that formats each record once and counts the file's size
    itself (the standard one formats every record twice, and looks at the path and
    seeks the file for each)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8",
                         errors="backslashreplace")  # a file name not UTF-8 stays readable
        self._size: int | None = None  # counted from the first record on
        self._rotates = True
        self._failing = False  # a write failed (a full disk): said once, not per line

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            if self._size is None:
                self._size = self.stream.seek(0, 2)
                # only a regular file is rotated (not /dev/null: bpo-45401)
                self._rotates = os.path.isfile(self.baseFilename)
            if (self.maxBytes > 0 and self._rotates and self._size
                    and self._size + len(text) >= self.maxBytes):
                self.doRollover()
                self._size = None if self.stream is None else 0
            self.stream.write(text)
            self.flush()
            if self._size is not None:
                self._size += len(text)
            self._failing = False
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """A full or failing disk: one line on stderr per streak, not a traceback per
        record (a full disk printed over a thousand of them)."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        if not self._failing:
            self._failing = True
            sys.stderr.write(f"hookline: cannot write the log file {self.baseFilename}: "
                             f"{error.strerror or error}; log lines are dropped until it "
                             "can be written again\n")
        self._size = None  # count again from the file once it can be written


class RunLog:
    """The log's line for each finished run while runs are few: past ``per_second`` in
    one second, the rest of that second's successful runs are counted and said in one
    line once the second is over (a stream of runs would otherwise rotate the log away
    in seconds, and the lines cost the engine a good part of each run). A failed run
    is always said on its own line. The runs themselves are all in Activity and
    ``hookline runs``."""

    def __init__(self, log: logging.Logger, per_second: int = 20) -> None:
        self.log = log
        self.per_second = per_second
        self._second = -1
        self._said = 0
        self._counted: Counter[str] = Counter()

    def finished(self, data: Mapping[str, Any]) -> None:
        """Say (or count) one ``run.finished`` message's run."""
        status = data["status"]
        if status == "failed":
            self.log.warning("run #%s of area %s: failed%s", data["run_id"],
                             str(data["area_id"])[:8],
                             f" — {data['error']}" if data.get("error") else "",
                             extra=_traced(data))
            return
        second = int(time.monotonic())
        if second != self._second:
            self._second, self._said = second, 0
        if self._said < self.per_second:
            self._said += 1
            self.log.info("run #%s of area %s: %s", data["run_id"], str(data["area_id"])[:8],
                          status, extra=_traced(data))
            return
        if not self._counted:  # said once this second is over
            import asyncio  # (only a stream of runs gets here: the CLI stays quick)

            asyncio.get_running_loop().call_later(1.0, self._say_counted)
        self._counted[status] += 1

    def _say_counted(self) -> None:
        counted, self._counted = self._counted, Counter()
        total = sum(counted.values())
        kinds = ", ".join(f"{n} {status}" for status, n in sorted(counted.items()))
        self.log.info("… and %d more run(s) in that second (%s); each is in Activity and "
                      "`hookline runs`", total, kinds)


def _traced(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``extra`` naming a ``run.finished`` message's trace (the bus says it after
    the run, outside its context)."""
    span = data.get("trace")
    return {"trace_id": span.trace_id} if isinstance(span, trace.Span) else None


def log_file(data_dir: Path) -> Path:
    return data_dir / LOG_DIR / LOG_FILE


def configure(data_dir: Path | None, level: str, *, console: bool = True) -> Path | None:
    """Log at ``level`` to ``<data>/logs/hookline.log`` (rotated) and, with ``console``,
    to stderr. Replaces the handlers installed before by this function or by
    ``logging.basicConfig``; others (a test's capture) stay. Returns the log file, or
    None when it cannot be written (then the console logs)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _OURS, False) or _is_plain_console(old):
            root.removeHandler(old)
            old.close()
    path: Path | None = None
    if data_dir is not None:
        path = log_file(data_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = _LogFile(path, MAX_BYTES, BACKUPS)
        except OSError as exc:
            print(f"hookline: cannot write the log file {path}: {exc.strerror}",
                  file=sys.stderr)
            path = None
        else:
            handler.setFormatter(_Formatter(_FILE_FORMAT))
            setattr(handler, _OURS, True)
            root.addHandler(handler)
    if console or path is None:
        stream = logging.StreamHandler()
        stream.setFormatter(_Formatter(_CONSOLE_FORMAT, datefmt="%H:%M:%S"))
        setattr(stream, _OURS, True)
        root.addHandler(stream)
    set_level(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return path


def set_level(level: str) -> None:
    """Apply the ``log_level`` setting (an unknown name falls back to INFO)."""
    value = logging.getLevelName(level.upper())
    logging.getLogger().setLevel(value if isinstance(value, int) else logging.INFO)


def _is_plain_console(handler: logging.Handler) -> bool:
    return (type(handler) is logging.StreamHandler
            and handler.stream in (sys.stderr, sys.stdout))
