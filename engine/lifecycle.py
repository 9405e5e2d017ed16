"""An area's life in time: its states, the transitions allowed between them, and the
record each transition leaves (when, from, to, why).

    draft ──> active <──> snoozed          (snooze, its end, wake)
      │        │  ^  <──> waiting          (outside / inside its active window)
      │        │  └─────  paused           (failures in a row; turned on again)
      │        ├───────>  needs_account    (its account must be reconnected)
      │        ├───────>  done             (a one-time trigger fired; its window ended)
      └──────> └───────>  off              (turned off; turned on again)

The table below is the one place these are declared; :func:`transition` enforces it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any, Protocol

from engine.errors import LifecycleError
from engine.storage.schema import utcnow

DRAFT = "draft"
ACTIVE = "active"
SNOOZED = "snoozed"
WAITING = "waiting"
PAUSED = "paused"
NEEDS_ACCOUNT = "needs_account"
OFF = "off"
DONE = "done"

#: Each state as the user reads it.
LABELS = {
    DRAFT: "draft",
    ACTIVE: "active",
    SNOOZED: "snoozed",
    WAITING: "waiting for its window",
    PAUSED: "paused after failures",
    NEEDS_ACCOUNT: "needs an account",
    OFF: "off",
    DONE: "done",
}
STATES = tuple(LABELS)

#: state -> the states it may go to.
ALLOWED: dict[str, frozenset[str]] = {
    DRAFT: frozenset({ACTIVE, WAITING, OFF}),
    ACTIVE: frozenset({SNOOZED, WAITING, PAUSED, NEEDS_ACCOUNT, OFF, DONE}),
    SNOOZED: frozenset({ACTIVE, WAITING, PAUSED, NEEDS_ACCOUNT, OFF, DONE}),
    WAITING: frozenset({ACTIVE, SNOOZED, NEEDS_ACCOUNT, OFF, DONE}),
    PAUSED: frozenset({ACTIVE, WAITING, OFF}),
    NEEDS_ACCOUNT: frozenset({ACTIVE, WAITING, OFF}),
    OFF: frozenset({ACTIVE, WAITING}),
    DONE: frozenset({ACTIVE, WAITING, OFF}),
}
#: States in which the area's trigger is attached (polls, routes, timers); only ACTIVE
#: fires. A snoozed poll keeps polling so that what it sees meanwhile is remembered.
ATTACHED = frozenset({ACTIVE, SNOOZED, WAITING})
#: States the user wants to hear of, with the notification's words ("“NAME” ...").
NOTIFY = {PAUSED: "is paused", NEEDS_ACCOUNT: "needs an account", DONE: "is done"}
#: How many transitions each area's history keeps (the newest).
TRANSITIONS_PER_AREA = 50


@dataclass(frozen=True)
class Transition:
    """One change of an area's state."""

    at: datetime
    from_state: str
    to_state: str
    cause: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "from": self.from_state, "to": self.to_state,
                "cause": self.cause}


class HasState(Protocol):
    id: str
    state: str


def check(from_state: str, to_state: str) -> None:
    """Refuse a transition the table does not allow (LifecycleError naming both)."""
    if to_state not in ALLOWED.get(from_state, frozenset()):
        allowed = ", ".join(LABELS[s] for s in STATES if s in ALLOWED.get(from_state, ()))
        raise LifecycleError(
            f"an area that is {LABELS.get(from_state, from_state)!s} cannot become "
            f"{LABELS.get(to_state, to_state)!s} (from {from_state} it can become: "
            f"{allowed or 'nothing'})")


def transition(area: HasState, to: str, cause: str, at: datetime | None = None) -> Transition:
    """Move ``area`` to ``to`` (checked against the table) and return the record."""
    check(area.state, to)
    record = Transition(at or utcnow(), area.state, to, cause)
    area.state = to
    return record


def state_of(enabled: bool, paused_reason: str | None) -> str:
    """The state an area had before states were kept (and after a turn on/off)."""
    if not enabled:
        return OFF
    return PAUSED if paused_reason else ACTIVE


# ---------------------------------------------------------------------- snooze

_UNTIL_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
#: "until tomorrow" ends the snooze tomorrow at this local time.
TOMORROW_AT = time(8, 0)


def parse_snooze(text: str, now: datetime, zone: tzinfo) -> datetime:
    """When a snooze written as ``2h``, ``30m``, ``until 18:00``, ``until tomorrow`` or
    ``until 2027-01-01 09:00`` ends (aware); ``now`` is aware. ``until HH:MM`` is the
    next such local time (tomorrow when it has passed today); ``until tomorrow`` is
    tomorrow at 08:00 local time."""
    from engine.catalog.params import parse_duration

    words = text.strip()
    lowered = words.lower()
    if lowered.startswith("until "):
        rest = words[6:].strip()
        local = now.astimezone(zone)
        if rest.lower() == "tomorrow":
            day = local.date() + timedelta(days=1)
            return datetime.combine(day, TOMORROW_AT, zone)
        match = _UNTIL_TIME.match(rest)
        if match:
            hour, minute = int(match[1]), int(match[2])
            if hour > 23 or minute > 59:
                raise LifecycleError(f"{rest!r} is not a time of day: write HH:MM, e.g. 18:00")
            when = datetime.combine(local.date(), time(hour, minute), zone)
            return when if when > now else datetime.combine(
                local.date() + timedelta(days=1), time(hour, minute), zone)
        try:
            when = datetime.fromisoformat(rest)
        except ValueError:
            raise LifecycleError(f"{rest!r} is not a moment: write until 18:00, until "
                                 "tomorrow or until 2027-01-01 09:00") from None
        when = when if when.tzinfo is not None else when.replace(tzinfo=zone)
    else:
        try:
            when = now + timedelta(seconds=parse_duration(words))
        except ValueError:
            raise LifecycleError(f"{words!r} is not a snooze: write a duration (30m, 2h) "
                                 "or until 18:00, until tomorrow") from None
    if when <= now:
        raise LifecycleError(f"{words!r} is already past: snooze until a later moment")
    return when


@dataclass(frozen=True)
class Status:
    """Where an area is in its life: what the list and ``areas show`` say.

    Attributes:
        state: one of STATES; ``label`` says it in words.
        next_change: when the state changes by itself next (a snooze's end, a window
            opening or closing), and ``next_state`` to what; None: not by itself.
        history: the latest transitions, newest first.
    """

    area_id: str
    state: str
    label: str
    next_change: datetime | None
    next_state: str | None
    history: list[Transition]

    def to_dict(self) -> dict[str, Any]:
        return {"area_id": self.area_id, "state": self.state, "label": self.label,
                "next_change": self.next_change.isoformat() if self.next_change else None,
                "next_state": self.next_state,
                "history": [t.to_dict() for t in self.history]}
