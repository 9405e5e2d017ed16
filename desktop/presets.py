"""Presets: ready-made areas with blanks for the user to fill (resources/presets/*.yaml).

A preset file is an area in the import format (README, "Areas") plus two keys:
``description`` (one or two sentences for the gallery) and ``blanks`` (paths of the
parameters the user must fill, e.g. ``trigger.params.url`` or
``reactions[0].params.to``; those parameters are written as ``""`` in the file).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import resources

log = logging.getLogger(__name__)

PRESETS_DIR = resources.ROOT / "presets"
_BLANK_RE = re.compile(r"^(trigger|reactions\[(\d+)\])\.params\.([A-Za-z_][A-Za-z0-9_]*)$")


class PresetError(ValueError):
    """A preset file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Blank:
    """One parameter the user must fill.

    Attributes:
        path: where it sits, as written in the preset (``reactions[0].params.to``).
        reaction: index of the reaction, or None for the trigger.
        param: the parameter's name.
    """

    path: str
    reaction: int | None
    param: str

    @property
    def is_trigger(self) -> bool:
        return self.reaction is None


@dataclass(frozen=True)
class Preset:
    """A ready-made area.

    Attributes:
        id: the file name without its order prefix and extension.
        name / description: what the gallery shows.
        services: the services it uses, trigger's first, each once.
        spec_dict: the area in the import format, blanks left as ``""``.
        blanks: the parameters the user must fill.
    """

    id: str
    name: str
    description: str
    services: tuple[str, ...]
    spec_dict: dict[str, Any]
    blanks: tuple[Blank, ...] = ()

    @property
    def trigger_service(self) -> str:
        return str(self.spec_dict["trigger"]["service"])

    @property
    def reaction_services(self) -> tuple[str, ...]:
        return tuple(str(r["service"]) for r in self.spec_dict["reactions"])

    def spec(self) -> dict[str, Any]:
        """A fresh copy of ``spec_dict`` (the editor may change it freely)."""
        return copy.deepcopy(self.spec_dict)

    def filled(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``spec()`` with the blanks set from ``values`` (keyed by blank path)."""
        spec = self.spec()
        for blank in self.blanks:
            if blank.path in values:
                _params(spec, blank)[blank.param] = values[blank.path]
        return spec


def _params(spec: dict[str, Any], blank: Blank) -> dict[str, Any]:
    step = spec["trigger"] if blank.reaction is None else spec["reactions"][blank.reaction]
    params: dict[str, Any] = step.setdefault("params", {})
    return params


def parse_blank(path: str) -> Blank:
    """``"reactions[0].params.to"`` -> Blank(path, 0, "to")."""
    match = _BLANK_RE.match(path.strip())
    if not match:
        raise PresetError(f"blank {path!r} must look like trigger.params.NAME or "
                          "reactions[N].params.NAME")
    index = match[2]
    return Blank(path.strip(), int(index) if index is not None else None, match[3])


def preset_from_dict(preset_id: str, data: Mapping[str, Any]) -> Preset:
    """A preset from its file's content; structural problems are PresetErrors."""
    if not isinstance(data, Mapping):
        raise PresetError("a preset must be a mapping")
    spec = {k: copy.deepcopy(v) for k, v in data.items() if k not in ("description", "blanks")}
    name = str(spec.get("name") or "").strip()
    description = " ".join(str(data.get("description") or "").split())
    if not name or not description:
        raise PresetError("give the preset a name and a description")
    trigger, reactions = spec.get("trigger"), spec.get("reactions")
    if (not isinstance(trigger, Mapping) or not trigger.get("service")
            or not isinstance(reactions, list) or not reactions
            or not all(isinstance(r, Mapping) and r.get("service") for r in reactions)):
        raise PresetError("a preset needs a trigger and at least one reaction, each with "
                          "its service")
    raw_blanks = data.get("blanks") or []
    if not isinstance(raw_blanks, list):
        raise PresetError("blanks must be a list of parameter paths")
    blanks = tuple(parse_blank(str(b)) for b in raw_blanks)
    for blank in blanks:
        if blank.reaction is not None and blank.reaction >= len(reactions):
            raise PresetError(f"blank {blank.path!r}: there is no reaction {blank.reaction}")
        step = trigger if blank.reaction is None else reactions[blank.reaction]
        if (step.get("params") or {}).get(blank.param, "") not in ("", None):
            raise PresetError(f"blank {blank.path!r} must be left empty (\"\") in the file")
    services: list[str] = []
    for service in [trigger["service"], *(r["service"] for r in reactions)]:
        if str(service) not in services:
            services.append(str(service))
    return Preset(preset_id, name, description, tuple(services), spec, blanks)


def load_presets(folder: Path | None = None) -> list[Preset]:
    """Every preset in ``folder`` (default: the shipped ones), in file-name order.
    A file that cannot be read is logged and left out."""
    folder = folder or PRESETS_DIR
    presets = []
    for path in sorted(folder.glob("*.yaml")):
        preset_id = re.sub(r"^\d+[-_]", "", path.stem)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            presets.append(preset_from_dict(preset_id, data))
        except (OSError, yaml.YAMLError, PresetError) as exc:
            log.warning("preset %s left out: %s", path.name, exc)
    return presets
