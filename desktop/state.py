"""Small things the desktop app remembers between runs (not settings): which areas
"Pause all" turned off, whether the tray hint was shown. One JSON file in the data folder."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "desktop-state.json"

#: Area ids that "Pause all" turned off (absent: nothing is paused that way).
PAUSED_AREAS = "paused_areas"
#: Whether "Hookline keeps running in the tray" was shown once.
TRAY_HINT_SHOWN = "tray_hint_shown"


class DesktopState:
    """A tiny key/value file, read once and written atomically on each change.

    Args:
        data_dir: the data folder.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE
        self._values: dict[str, Any] = {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            loaded = {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            loaded = {}
        if isinstance(loaded, dict):
            self._values = loaded

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (``None`` removes the key) and write the file."""
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".desktop-state-",
                                   suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(self._values, out, indent=2, sort_keys=True)
        os.replace(tmp, self.path)
