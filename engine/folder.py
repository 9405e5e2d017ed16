"""Areas as a folder of YAML files, one per area, in a stable form: the folder can
live in git, and importing it back shows what would change before it does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.area_files import read_area_file
from engine.errors import HooklineError

ID_KEY = "id"


def file_name(area_id: str, name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "area"
    return f"{slug}-{area_id[:8]}.yaml"


def dump(area_id: str, data: Mapping[str, Any]) -> str:
    """One area's file: its id first, then the export format, keys in a fixed order."""
    return yaml.safe_dump({ID_KEY: area_id, **data}, sort_keys=False, allow_unicode=True)


def export_folder(areas: Mapping[str, Mapping[str, Any]], folder: Path) -> list[Path]:
    """Write one file per area (``areas``: id -> export dict); files of areas that no
    longer exist are removed, other files are left alone."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for area_id, data in sorted(areas.items(), key=lambda kv: str(kv[1].get("name"))):
        path = folder / file_name(area_id, str(data.get("name", "")))
        text = dump(area_id, data)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    for path in folder.glob("*.yaml"):
        if path in written:
            continue
        stale = _read(path).get(ID_KEY)
        if isinstance(stale, str) and stale not in areas:
            path.unlink()
    return written


@dataclass
class Change:
    """What importing one file would do.

    Attributes:
        kind: ``add`` (no area has its id), ``update`` or ``same``.
        changed: the top-level keys that differ (for ``update``).
    """

    kind: str
    path: Path
    data: dict[str, Any]
    area_id: str | None = None
    changed: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.data.get("name", self.path.stem))


def plan(folder: Path, current: Mapping[str, Mapping[str, Any]]) -> list[Change]:
    """Compare the folder's files with the areas as they are (id -> export dict)."""
    if not folder.is_dir():
        raise HooklineError(f"{folder} is not a folder")
    changes = []
    for path in sorted(folder.glob("*.yaml")):
        data = _read(path)
        area_id = data.pop(ID_KEY, None)
        if not isinstance(area_id, str) or area_id not in current:
            changes.append(Change("add", path, data))
            continue
        now = current[area_id]
        keys = sorted(k for k in {*data, *now} if data.get(k) != now.get(k))
        changes.append(Change("update" if keys else "same", path, data, area_id, keys))
    return changes


def _read(path: Path) -> dict[str, Any]:
    """One area file of the folder, read as an import reads (bounded, strict)."""
    items = read_area_file(path)
    if len(items) != 1 or not isinstance(items[0], dict):
        raise HooklineError(f"{path} does not hold one area (a mapping)")
    data: dict[str, Any] = items[0]
    return data
