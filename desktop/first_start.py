"""The window's first start on an empty data folder: a demo automation that visibly
works, named so it is plainly a demo the user can delete."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.areas import AreaSpec
from engine.errors import HooklineError
from engine.storage.db import DB_FILE

if TYPE_CHECKING:
    from desktop.bridge import EngineBridge

log = logging.getLogger(__name__)

DEMO_NAME = "Demo (delete me): a heartbeat line every minute"
#: The file the demo adds its lines to, in the data folder.
DEMO_FILE = "demo-heartbeat.log"


def is_new(data_dir: Path) -> bool:
    """Whether Hookline has never run on ``data_dir`` (asked before the engine starts:
    starting creates the database)."""
    return not (data_dir / DB_FILE).exists()


def demo_area(data_dir: Path) -> dict[str, Any]:
    """A timer and a file: nothing to connect, nothing that pops up, and a line the
    user can open to see it work."""
    return {
        "name": DEMO_NAME,
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1m"}},
        "reactions": [{"service": "files", "reaction": "append_text",
                       "params": {"path": str(data_dir / DEMO_FILE),
                                  "text": "{{ trigger.fired_at }} Hookline is working\n"}}],
    }


async def add_demo(bridge: EngineBridge, data_dir: Path) -> str | None:
    """Create the demo automation and run it once, so the Automations screen shows it
    working from the start; its id (None if it could not be made: the window opens all
    the same)."""
    try:
        area = await bridge.save_area(AreaSpec.from_dict(demo_area(data_dir)))
        await bridge.run_now(area.id)
    except HooklineError as exc:
        log.warning("the demo automation was not created: %s", exc)
        return None
    return area.id
