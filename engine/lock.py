"""One engine per data folder: an OS file lock held while it runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from engine.errors import EngineLocked

LOCK_FILE = "engine.lock"


class DataDirLock:
    """An exclusive lock on ``<data_dir>/engine.lock``; the OS drops it if we die."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            if sys.platform == "win32":
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise EngineLocked(
                f"Hookline is already running on {self.path.parent} (pid {self.holder()}). "
                "Use that one (its window or `hookline areas ...`), or stop it first."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock right now."""
        if self._handle is not None:
            return False
        try:
            self.acquire()
        except EngineLocked:
            return True
        self.release()
        return False

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
