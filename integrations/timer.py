"""Timer: start areas every so often, at a time of day, on chosen weekdays, on a cron
schedule, or once at a date and time."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import tzlocal
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from engine import Field, Param, ParamType, Service, ValidationError

service = Service(
    "timer",
    "Timer",
    "Start automations on a schedule: every few minutes, every day at a set time, on chosen "
    "weekdays, with a cron expression, or once at a date and time.",
    icon="timer.svg",
)

#: Day names as APScheduler and crontab know them, Monday first.
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: Crontab numbers its weekdays from Sunday (0, and 7 again).
_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

TIMEZONE = Param(
    "timezone",
    ParamType.TEXT,
    "Time zone",
    help="An IANA time zone name such as Europe/Paris or America/New_York. Leave empty "
    "to use this computer's time zone.",
    required=False,
    example="Europe/Paris",
)

#: The engine builds every schedule firing's payload; these are its keys.
FIELDS = (
    Field("scheduled_for", "When the run was due (ISO 8601)", "2024-05-06T09:00:00+02:00"),
    Field("fired_at", "When the run actually started (ISO 8601)", "2024-05-06T09:00:01+02:00"),
    Field("catch_up", "Whether this run makes up for a time Hookline was not running", False),
    Field("missed", "How many due times were missed before this run", 0),
)

TIME = Param(
    "time",
    ParamType.TIME,
    "Time of day",
    help="The time to run, as HH:MM on a 24-hour clock.",
    example="07:30",
)


def _zone(params: Mapping[str, Any]) -> tzinfo:
    """The area's time zone: the named one, or this computer's."""
    name = (params.get("timezone") or "").strip()
    if not name:
        zone: tzinfo = tzlocal.get_localzone()
        return zone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        known = {z.lower(): z for z in available_timezones()}
        close = difflib.get_close_matches(name.lower(), known, n=1)
        hint = f" Did you mean {known[close[0]]}?" if close else ""
        raise ValidationError(
            "timezone",
            f"{name!r} is not a time zone name: use an IANA name such as Europe/Paris, "
            f"America/New_York or UTC, or leave it empty for this computer's time "
            f"zone.{hint}",
        ) from None


def _hour_minute(params: Mapping[str, Any]) -> tuple[int, int]:
    hour, minute = str(params["time"]).split(":")
    return int(hour), int(minute)


def _days(values: Sequence[str]) -> list[str]:
    """Weekday names from the user's list, checked, in week order."""
    chosen: set[str] = set()
    unknown: list[str] = []
    for value in values:
        text = str(value).strip().lower()
        if text in DAYS:
            chosen.add(text)
        elif text in _FULL_DAY_NAMES:
            chosen.add(DAYS[_FULL_DAY_NAMES.index(text)])
        else:
            unknown.append(str(value))
    allowed = ", ".join(DAYS)
    if unknown:
        listed = ", ".join(repr(u) for u in unknown)
        verb = "is not a day" if len(unknown) == 1 else "are not days"
        raise ValidationError("days", f"{listed} {verb}: use {allowed}")
    if not chosen:
        raise ValidationError("days", f"choose at least one day ({allowed})")
    return [d for d in DAYS if d in chosen]


@service.schedule_trigger(
    "every",
    "Every so often",
    "Runs at a fixed interval, counted from when the automation is switched on (or the "
    "app starts).",
    params=[
        Param(
            "interval",
            ParamType.DURATION,
            "Every",
            help="How long between runs: seconds (90) or 30s, 15m, 1h30m, 1d.",
            minimum=1,
            example="15m",
        ),
        TIMEZONE,
    ],
    fields=FIELDS,
)
def every(params: Mapping[str, Any]) -> BaseTrigger:
    return IntervalTrigger(seconds=float(params["interval"]), timezone=_zone(params))


@service.schedule_trigger(
    "daily_at",
    "Every day at a time",
    "Runs once a day at the time you choose, following daylight saving changes.",
    params=[TIME, TIMEZONE],
    fields=FIELDS,
)
def daily_at(params: Mapping[str, Any]) -> BaseTrigger:
    hour, minute = _hour_minute(params)
    return CronTrigger(hour=hour, minute=minute, timezone=_zone(params))


@service.schedule_trigger(
    "weekdays_at",
    "On chosen weekdays at a time",
    "Runs at the time you choose on the days of the week you choose.",
    params=[
        Param(
            "days",
            ParamType.LIST,
            "Days",
            help="Days of the week, by their first three letters: mon, tue, wed, thu, fri, "
            "sat, sun.",
            default=["mon", "tue", "wed", "thu", "fri"],
            example=["mon", "wed", "fri"],
        ),
        TIME,
        TIMEZONE,
    ],
    fields=FIELDS,
)
def weekdays_at(params: Mapping[str, Any]) -> BaseTrigger:
    days = _days(params["days"])
    hour, minute = _hour_minute(params)
    return CronTrigger(day_of_week=",".join(days), hour=hour, minute=minute, timezone=_zone(params))


@service.schedule_trigger(
    "cron",
    "Cron schedule",
    "Runs on a standard crontab schedule: minute hour day-of-month month day-of-week.",
    params=[
        Param(
            "expression",
            ParamType.CRON,
            "Cron expression",
            help="Five fields: minute hour day-of-month month day-of-week, as in crontab "
            "(0 or 7 is Sunday). '*/15 * * * *' runs every quarter hour, "
            "'0 9 * * 1-5' at 09:00 on weekdays.",
            example="0 9 * * 1-5",
        ),
        TIMEZONE,
    ],
    fields=FIELDS,
)
def cron(params: Mapping[str, Any]) -> BaseTrigger:
    zone = _zone(params)
    text = str(params["expression"])
    fields = text.split()
    if len(fields) != 5:
        raise ValidationError(
            "expression",
            f"{text!r} needs 5 fields (minute hour day-of-month month day-of-week), "
            "e.g. '*/15 * * * *'",
        )
    minute, hour, day, month, weekday = fields
    try:
        days = _crontab_weekdays(weekday)
        common = {"minute": minute, "hour": hour, "month": month, "timezone": zone}
        # crontab runs when EITHER day field matches if both are restricted
        # (neither starts with '*'); APScheduler would require both.
        if day.startswith("*") or weekday.startswith("*"):
            return CronTrigger(day=day, day_of_week=days, **common)
        return OrTrigger([CronTrigger(day=day, **common), CronTrigger(day_of_week=days, **common)])
    except ValueError as exc:
        raise ValidationError(
            "expression", f"{text!r} is not a valid cron expression: {exc}"
        ) from None


def _crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field (0 and 7 are Sunday) as APScheduler day names.

    APScheduler 3 numbers weekdays from Monday, so numbers, ranges and steps are
    expanded here into explicit names that mean the same in both.
    """
    if field == "*":
        return "*"
    chosen: set[int] = set()
    for part in field.lower().split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"day-of-week step {step_text!r} must be a whole number from 1")
            step = int(step_text)
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = _crontab_day(start), _crontab_day(end)
        else:
            first = _crontab_day(base)
            last = 7 if slash else first
        if first > last:
            raise ValueError(f"day-of-week range {base!r} runs backwards")
        chosen.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_CRONTAB_DAYS[d] for d in sorted(chosen))


def _crontab_day(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text in _CRONTAB_DAYS:
        return _CRONTAB_DAYS.index(text)
    raise ValueError(f"{text!r} is not a day of the week: use 0-7 (0 and 7 are Sunday) or sun-sat")


#: The payload of a one-time firing: the schedule's, and how late it came.
AT_FIELDS = (
    *FIELDS,
    Field("late_by", "Seconds it came after its time (Hookline was not running, or the "
          "computer slept); 0 when on time", 0),
)


@service.schedule_trigger(
    "at",
    "At a date and time",
    "Runs once, at the local date and time you choose; then the automation is done. If "
    "Hookline was not running at that moment, it runs once at the next start and says "
    "how late it is (late_by).",
    params=[
        Param(
            "at",
            ParamType.TEXT,
            "Date and time",
            help="The local date and time, as YYYY-MM-DD HH:MM (e.g. 2027-01-01 09:00). A "
            "time skipped by a daylight saving change runs at the first moment after the "
            "gap; a time that happens twice runs at the first.",
            example="2027-01-01 09:00",
        ),
        TIMEZONE,
    ],
    fields=AT_FIELDS,
)
def at(params: Mapping[str, Any]) -> BaseTrigger:
    return DateTrigger(run_date=local_moment(_wall_time(params["at"]), _zone(params)))


def _wall_time(value: Any) -> datetime:
    text = str(value or "").strip()
    try:
        when = datetime.fromisoformat(text.replace("T", " "))
    except ValueError:
        raise ValidationError(
            "at", f"{text!r} is not a date and time: write YYYY-MM-DD HH:MM, e.g. "
                  "2027-01-01 09:00") from None
    if when.tzinfo is not None:
        raise ValidationError("at", "write the local date and time without an offset, and "
                                    "choose the time zone in its own field")
    return when


def local_moment(wall: datetime, zone: tzinfo) -> datetime:
    """The moment a wall-clock time names in ``zone``: an ambiguous one (clocks going
    back) is its first occurrence; one that does not exist (in the gap of clocks going
    forward) is the first moment after the gap."""
    first = wall.replace(tzinfo=zone, fold=0)
    if _wall(first.astimezone(UTC), zone) == wall:
        return first
    # In a gap: search from the earliest reading for the moment the clock jumps past it.
    moment = min(first.astimezone(UTC), wall.replace(tzinfo=zone, fold=1).astimezone(UTC))
    moment = moment.replace(second=0, microsecond=0)
    while _wall(moment, zone) < wall:
        moment += timedelta(minutes=1)
    return moment.astimezone(zone)


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)
