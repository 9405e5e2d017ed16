"""An area's active window: "active from … until …" and a weekly "only during" (e.g.
weekdays 09:00–18:00). Outside it the area waits; this says when it opens or closes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import ValidationError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def local_zone() -> tzinfo:
    import tzlocal

    zone: tzinfo = tzlocal.get_localzone()
    return zone


@dataclass(frozen=True)
class Weekly:
    """Open on ``days`` from ``start`` until ``end`` local time in ``zone`` (an end at
    or before the start runs past midnight into the next day)."""

    days: tuple[str, ...]
    start: time
    end: time
    zone_name: str = ""

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.zone_name) if self.zone_name else local_zone()

    def spans(self, around: datetime) -> list[tuple[datetime, datetime]]:
        """The openings from a day before ``around`` to eight days after, in order.
        Each boundary is the local date and time in the zone, so a daylight saving
        change moves it with the wall clock (an ambiguous time is its first occurrence)."""
        zone = self.zone
        today = around.astimezone(zone).date()
        out = []
        for offset in range(-1, 9):
            day: date = today + timedelta(days=offset)
            if DAYS[day.weekday()] not in self.days:
                continue
            opens = datetime.combine(day, self.start, zone)
            closes_on = day + timedelta(days=1) if self.end <= self.start else day
            out.append((opens, datetime.combine(closes_on, self.end, zone)))
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"days": list(self.days), "from": f"{self.start:%H:%M}",
                               "until": f"{self.end:%H:%M}"}
        if self.zone_name:
            out["timezone"] = self.zone_name
        return out


@dataclass(frozen=True)
class Window:
    """When an area may fire: between ``active_from`` and ``active_until`` (either may
    be None: open-ended), and within ``weekly`` when given."""

    active_from: datetime | None = None
    active_until: datetime | None = None
    weekly: Weekly | None = None

    def __bool__(self) -> bool:
        return any((self.active_from, self.active_until, self.weekly))

    def is_open(self, now: datetime) -> bool:
        if self.active_from is not None and now < self.active_from:
            return False
        if self.active_until is not None and now >= self.active_until:
            return False
        if self.weekly is None:
            return True
        return any(opens <= now < closes for opens, closes in self.weekly.spans(now))

    def ended(self, now: datetime) -> bool:
        """Past its "active until": it never opens again."""
        return self.active_until is not None and now >= self.active_until

    def next_change(self, now: datetime) -> datetime | None:
        """When it next opens (closed now) or closes (open now); None: never."""
        if self.ended(now):
            return None
        if self.is_open(now):
            closes = [self.active_until] if self.active_until is not None else []
            if self.weekly is not None:
                closes += [c for o, c in self.weekly.spans(now) if o <= now < c]
            return min(closes) if closes else None
        start = max(now, self.active_from) if self.active_from is not None else now
        if self.weekly is None:
            return start
        if self.is_open(start):
            return start
        opening = min((o for o, _c in self.weekly.spans(start) if o > start), default=None)
        if opening is None or (self.active_until is not None
                               and opening >= self.active_until):
            return None
        return opening

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.active_from is not None:
            out["active_from"] = self.active_from.isoformat()
        if self.active_until is not None:
            out["active_until"] = self.active_until.isoformat()
        if self.weekly is not None:
            out["only_during"] = self.weekly.to_dict()
        return out


def parse(data: Mapping[str, Any]) -> Window:
    """The window from an area file's ``active_from``, ``active_until`` and
    ``only_during`` (problems are ValidationErrors naming the key)."""
    start = _moment(data.get("active_from"), "active_from")
    end = _moment(data.get("active_until"), "active_until")
    if start is not None and end is not None and end <= start:
        raise ValidationError("active_until", "must come after active_from")
    weekly = _weekly(data.get("only_during"))
    return Window(start, end, weekly)


def _moment(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip().replace("T", " "))
        except ValueError:
            raise ValidationError(where, f"{value!r} is not a date and time: write "
                                         "YYYY-MM-DD HH:MM, e.g. 2027-01-01 09:00") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=local_zone())


def _weekly(value: Any) -> Weekly | None:
    if value in (None, {}):
        return None
    where = "only_during"
    if not isinstance(value, Mapping):
        raise ValidationError(where, "give {days: [mon, ..., fri], from: \"09:00\", "
                                     "until: \"18:00\"}")
    unknown = set(value) - {"days", "from", "until", "timezone"}
    if unknown:
        raise ValidationError(f"{where}.{sorted(unknown)[0]}",
                              "unknown key: use days, from, until and timezone")
    raw_days = value.get("days", list(DAYS))
    if isinstance(raw_days, str):
        raw_days = [d for d in raw_days.replace(",", " ").split() if d]
    days = [str(d).strip().lower()[:3] for d in raw_days]
    if not days or any(d not in DAYS for d in days):
        raise ValidationError(f"{where}.days", f"use days of the week: {', '.join(DAYS)}")
    zone_name = str(value.get("timezone") or "").strip()
    if zone_name:
        try:
            ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"{where}.timezone", f"{zone_name!r} is not a time zone "
                                  "name: use an IANA name such as Europe/Berlin") from None
    start, end = _clock(value.get("from"), f"{where}.from"), _clock(value.get("until"),
                                                                    f"{where}.until")
    if start == end:
        raise ValidationError(f"{where}.until", "must differ from 'from'")
    return Weekly(tuple(d for d in DAYS if d in days), start, end, zone_name)


def _clock(value: Any, where: str) -> time:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)  # YAML reads an unquoted 18:00 as 1080
    text = str(value or "").strip()
    try:
        hour, minute = text.split(":")
        return time(int(hour), int(minute))
    except ValueError:
        raise ValidationError(where, f"{text!r} is not a time of day: write HH:MM, e.g. "
                                     "09:00") from None


def from_json(data: Mapping[str, Any] | None) -> Window:
    """The window as stored (``areas.window``); empty: none."""
    return parse(data) if data else Window()
