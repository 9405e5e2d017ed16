"""MQTT-safe names for areas and accounts: lowercase words joined by dashes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from engine.areas import Area

#: Names a slug may not take: they are Hookline's own topics beside the areas'.
RESERVED = frozenset({"account", "status"})

_NOT_WORD = re.compile(r"[^\w]+|_+")


def slugify(name: str, fallback: str = "area") -> str:
    """``name`` as one topic level: lowercase letters and digits (any script) joined
    by ``-``; never ``+``, ``#``, ``/``, a control character or empty."""
    slug = _NOT_WORD.sub("-", name.casefold()).strip("-")
    return slug or fallback


def area_slugs(areas: Iterable[Area]) -> dict[str, str]:
    """Each area's slug by id, unique: a slug two areas share (or a reserved one) gets
    the area's short id after it."""
    areas = list(areas)
    slugs = {area.id: slugify(area.name) for area in areas}
    counts = Counter(slugs.values())
    return {area_id: (f"{slug}-{area_id[:8]}" if counts[slug] > 1 or slug in RESERVED
                      else slug)
            for area_id, slug in slugs.items()}


def topic_prefix(prefix: str) -> str:
    """The prefix setting as topic levels: wildcards, control characters and empty
    levels left out (``hookline`` when nothing is left)."""
    levels = ["".join(c for c in level if c not in "+#" and c.isprintable()).strip()
              for level in prefix.split("/")]
    return "/".join(level for level in levels if level) or "hookline"
