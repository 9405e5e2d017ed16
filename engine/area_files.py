"""Reading areas from a file (import, `areas test FILE`): bounded, strict, one reader for
the command line, the control channel and the desktop app."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ValidationError

#: The largest areas file read (an export of hundreds of areas is far smaller).
MAX_FILE_BYTES = 1024 * 1024
#: The most values (mappings, lists, scalars) a file may unfold to, aliases expanded: a
#: 506-byte YAML "billion laughs" unfolds to billions and took the CLI to 3 GB.
MAX_VALUES = 20_000


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, with only ``true``/``false`` as booleans (YAML 1.2): under
    YAML 1.1 ``name: off`` or ``name: no`` became False."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def read_area_file(path: Path | str) -> list[Any]:
    """The areas in the file at ``path`` ('-': standard input)."""
    name = "standard input" if str(path) == "-" else Path(path).name
    try:
        if str(path) == "-":
            raw = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with Path(path).open("rb") as stream:
                raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValidationError(name, f"cannot read it: {exc.strerror}") from None
    return read_areas(raw, name)


def read_areas(raw: bytes, name: str) -> list[Any]:
    """The areas in an areas file's bytes: ``{areas: [...]}``, a list, or one area, in
    YAML or JSON. A file too large, not UTF-8, not YAML, or whose aliases unfold past
    MAX_VALUES is refused with one line that says what to do."""
    if len(raw) > MAX_FILE_BYTES:
        raise ValidationError(name, f"the file is larger than {MAX_FILE_BYTES // 1024} KiB; "
                                    "an areas file is far smaller: check it is the right file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(name, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                    f"position {exc.start}): save it as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValidationError(name, f"not valid YAML or JSON{at}: {problem}") from None
    bounded(data, name)
    if isinstance(data, dict) and "areas" in data:
        data = data["areas"]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ValidationError(name, "holds no areas: give {areas: [...]}, a list of areas "
                                    "or one area")
    return data


def bounded(data: Any, name: str) -> None:
    """Refuse data that unfolds to more than MAX_VALUES values (shared parts, which
    YAML aliases make, count each time they appear)."""
    count = 0
    pending = [data]
    while pending:
        value = pending.pop()
        count += 1
        if count > MAX_VALUES:
            raise ValidationError(name, f"unfolds to more than {MAX_VALUES:,} values (YAML "
                                        "aliases repeat what they name): write it out plainly")
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
