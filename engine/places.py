"""Where a problem is, in the user's words: "Reaction 1 (Show a notification), field Title"
rather than the path ``reactions[0].params.title`` the engine locates it by."""

from __future__ import annotations

import re

from engine.areas import AreaSpec, Step
from engine.errors import CatalogError
from engine.registry import Registry

#: A path (or two, the run's and the step's) at the start of an engine message.
_LEADING = re.compile(
    r"^(?:(?:reactions\[\d+\]|trigger|condition)(?:\.[\w.]+)?(?: [^:]{1,80})?: )+")
_PATH = re.compile(r"^(reactions\[(\d+)\]|trigger)(?:\.params\.(\w+))?")
_OTHERS = {"name": "Name", "condition": "Condition", "interval": "Check every",
           "catch_up": "If a time is missed", "reactions": "Reactions"}


def place(where: str, spec: AreaSpec, registry: Registry) -> str:
    """``where`` (a ValidationError's path) as the editor's user would say it."""
    found = _PATH.match(where)
    if found is None:
        return _OTHERS.get(where, where)
    if found[2] is not None:
        index = int(found[2])
        step = spec.reactions[index] if index < len(spec.reactions) else None
        owner = f"Reaction {index + 1}"
        label, field = _labels(step, registry, trigger=False, param=found[3])
    else:
        owner = "Trigger"
        label, field = _labels(spec.trigger, registry, trigger=True, param=found[3])
    if label:
        owner += f" ({label})"
    return f"{owner}, field {field}" if field else owner


def _labels(step: Step | None, registry: Registry, *, trigger: bool,
            param: str | None) -> tuple[str, str | None]:
    """The step's name in the catalog and its field's label (as far as they are known)."""
    if step is None:
        return "", param
    try:
        spec = registry.action(step.service, step.action, trigger)
    except CatalogError:
        return "", param
    label = next((p.label for p in spec.params if p.name == param), param)
    return spec.name, label


def in_words(message: str, spec: AreaSpec, registry: Registry) -> str:
    """An engine message that starts with paths ("reactions[0]: reactions[0].params.title:
    …") starting with its place in the user's words instead."""
    lead = _LEADING.match(message)
    if lead is None:
        return message
    paths = [part.split(" ")[0] for part in lead[0].rstrip(": ").split(": ")]
    where = max(paths, key=len)  # the most precise of them
    return f"{place(where, spec, registry)}: {message[lead.end():]}"
