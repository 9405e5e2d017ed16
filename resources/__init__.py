"""Icons, presets and other files shipped with Hookline."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent


def icon(name: str) -> Path:
    """The path of an icon in ``resources/icons`` (e.g. ``"rss.svg"``)."""
    return ROOT / "icons" / name
