"""What each area's webhook address was sent lately, refused requests included: a small
ring per area kept in memory (never a body or a header), for the "why" view."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime

from engine.storage.schema import utcnow

#: Deliveries kept per area (the newest).
PER_AREA = 20
#: Areas with deliveries kept (the most recently sent to): an area removed while
#: Hookline runs leaves its ring behind until it is the oldest of these.
MAX_AREAS = 1000


@dataclass(frozen=True)
class Delivery:
    """One request to an area's webhook address, as it was answered.

    Attributes:
        at: when it arrived.
        status: the HTTP status it was answered with (202: accepted).
        reason: why it was refused, as the sender was told (None: accepted).
        events: the events it was journaled as (none: refused, or a repeat).
        duplicates: items in it already received before (repeats: not run again).
    """

    at: datetime
    status: int
    reason: str | None = None
    events: tuple[int, ...] = ()
    duplicates: int = 0


class Deliveries:
    """The newest deliveries of each area since :attr:`since` (the listener's start).

    Args:
        per_area: how many to keep per area.
        max_areas: how many areas' deliveries to keep.
    """

    def __init__(self, per_area: int = PER_AREA, max_areas: int = MAX_AREAS) -> None:
        self.per_area = per_area
        self.max_areas = max_areas
        self.since = utcnow()
        self._areas: OrderedDict[str, deque[Delivery]] = OrderedDict()

    def add(self, area_id: str, delivery: Delivery) -> None:
        ring = self._areas.get(area_id)
        if ring is None:
            ring = self._areas[area_id] = deque(maxlen=self.per_area)
            while len(self._areas) > self.max_areas:
                self._areas.popitem(last=False)
        else:
            self._areas.move_to_end(area_id)
        ring.append(delivery)

    def of(self, area_id: str) -> list[Delivery]:
        """The area's deliveries, newest first."""
        return list(reversed(self._areas.get(area_id, ())))
