"""Logging for the long-running entry points: a rotating file in the data folder (what
happened while nobody watched: a feed failing, an area pausing itself) and the console,
at the level of the ``log_level`` setting."""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOG_DIR = "logs"
LOG_FILE = "hookline.log"
#: The file is rotated at this size; this many older files are kept.
MAX_BYTES = 1024 * 1024
BACKUPS = 5
#: Libraries that say too much at INFO.
QUIET = ("aiohttp.access", "apscheduler", "alembic", "asyncio")

_OURS = "_hookline_handler"
_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


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
            handler: logging.Handler = RotatingFileHandler(
                path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8",
                errors="backslashreplace")  # a file name that is not UTF-8 stays readable
        except OSError as exc:
            print(f"hookline: cannot write the log file {path}: {exc.strerror}",
                  file=sys.stderr)
            path = None
        else:
            handler.setFormatter(logging.Formatter(_FILE_FORMAT))
            setattr(handler, _OURS, True)
            root.addHandler(handler)
    if console or path is None:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter(_CONSOLE_FORMAT, datefmt="%H:%M:%S"))
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
