"""Where Hookline keeps its data: one folder, chosen once."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_DATA_DIR = "HOOKLINE_DATA_DIR"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``explicit``, else ``$HOOKLINE_DATA_DIR``, else the OS's place."""
    chosen = explicit or os.environ.get(ENV_DATA_DIR)
    if chosen:
        return Path(chosen).expanduser().resolve()
    return Path(platformdirs.user_data_dir("Hookline", appauthor=False))
