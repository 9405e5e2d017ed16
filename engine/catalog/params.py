"""Typed parameters: declared once, they drive forms, validation, the CLI and docs."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from engine.errors import ValidationError


class ParamType(StrEnum):
    """The kinds of value a parameter holds; each has its own widget and check."""

    TEXT = "text"
    MULTILINE = "multiline"
    NUMBER = "number"
    INTEGER = "integer"
    BOOL = "bool"
    CHOICE = "choice"
    URL = "url"
    EMAIL = "email"
    PATH = "path"
    DURATION = "duration"
    TIME = "time"
    CRON = "cron"
    SECRET = "secret"  # noqa: S105 - the name of a type, not a password
    TEMPLATE = "template"
    LIST = "list"


#: Types whose value is a string that a reaction may fill from a template.
STRING_TYPES = frozenset(
    {
        ParamType.TEXT,
        ParamType.MULTILINE,
        ParamType.URL,
        ParamType.EMAIL,
        ParamType.PATH,
        ParamType.TEMPLATE,
    }
)

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*"
                          r"(?:(\d+(?:\.\d+)?)\s*m(?!s))?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")
_EMAIL_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


#: Longer durations are refused: dates and schedules this far out overflow.
MAX_DURATION = 100 * 365 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90"``, ``"1h30m"``, ``"5m"``, ``"2d"``, ``"45s"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 5m, 1h30m, 2d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION_RE.match(text)
            if not text or not match or not any(match.groups()):
                raise ValueError(
                    f"{value!r} is not a duration: write seconds (90) or 30s, 5m, 1h30m, 2d"
                ) from None
            d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = d * 86400 + h * 3600 + m * 60 + s
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be zero or more seconds")
    if seconds > MAX_DURATION:
        raise ValueError("a duration must be under 100 years")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest readable form of a duration: ``1h30m``, ``45s``."""
    total = round(seconds)
    if total == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def spoken_duration(seconds: float) -> str:
    """``5400`` -> ``1 hour 30 minutes`` (whole seconds, largest units first)."""
    total = round(seconds)
    if total == 0:
        return "0 seconds"
    words = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, total = divmod(total, size)
        if count:
            words.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(words)


@dataclass(frozen=True)
class Param:
    """One parameter of a trigger or a reaction.

    Attributes:
        name: the key in the area's ``params`` mapping.
        type: what kind of value it holds.
        label: a short name shown beside the form field.
        help: one or two sentences shown under the field and in the docs.
        required: whether an empty value is refused.
        default: the value used when none is given.
        choices: ``(value, label)`` pairs for CHOICE.
        minimum / maximum: bounds for NUMBER, INTEGER and DURATION.
        example: a working example value (docs, presets, placeholders).
        templated: whether a reaction's value may use ``{{ ... }}``;
            ``None`` means "yes for string types in reactions".
        html_when: ``(param, value)``: when that other parameter has that value, this
            one is HTML, and the values its template inserts are escaped (a file named
            ``a&b <c>.txt``, a feed's title) instead of read as markup.
    """

    name: str
    type: ParamType
    label: str
    help: str = ""
    required: bool = True
    default: Any = None
    choices: Sequence[tuple[str, str]] = field(default_factory=tuple)
    minimum: float | None = None
    maximum: float | None = None
    example: Any = None
    templated: bool | None = None
    html_when: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.type is ParamType.CHOICE and not self.choices:
            raise TypeError(f"choice parameter {self.name!r} declares no choices")

    @property
    def is_secret(self) -> bool:
        return self.type is ParamType.SECRET

    def may_template(self, in_reaction: bool) -> bool:
        """Whether the value may hold a template that is rendered before each use."""
        if self.templated is not None:
            return self.templated
        return in_reaction and self.type in STRING_TYPES

    def validate(self, value: Any) -> Any:
        """The value, checked and converted; raises ValidationError naming the param."""
        try:
            return self._check(value)
        except ValidationError:
            raise
        except (ValueError, TypeError) as exc:
            raise ValidationError(self.name, str(exc)) from None

    def _check(self, value: Any) -> Any:
        if self._empty(value):
            if not self._empty(self.default):
                return self._check(self.default)
            if self.required and self.default is None:
                raise ValueError(f"{self.label} is required")
            return self.default
        kind = self.type
        if kind in (ParamType.TEXT, ParamType.MULTILINE, ParamType.TEMPLATE, ParamType.SECRET):
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError(f"{self.label} must be text")
            return str(value)
        if kind in (ParamType.NUMBER, ParamType.INTEGER):
            return self._bounded(self._number(value))
        if kind is ParamType.BOOL:
            return _boolean(value, self.label)
        if kind is ParamType.CHOICE:
            allowed = [c[0] for c in self.choices]
            if str(value) not in allowed:
                raise ValueError(f"{value!r} is not one of: {', '.join(allowed)}")
            return str(value)
        if kind is ParamType.URL:
            return _url(str(value))
        if kind is ParamType.EMAIL:
            return _emails(str(value))
        if kind is ParamType.PATH:
            return str(value).strip()
        if kind is ParamType.DURATION:
            return self._bounded(parse_duration(value))
        if kind is ParamType.TIME:
            match = _TIME_RE.match(str(value).strip())
            if not match:
                raise ValueError(f"{value!r} is not a time: write HH:MM, e.g. 07:30")
            return f"{int(match[1]):02d}:{match[2]}"
        if kind is ParamType.CRON:
            return _cron(str(value))
        if kind is ParamType.LIST:
            if isinstance(value, str):
                items = [v.strip() for v in value.split(",")]
            elif isinstance(value, list | tuple):
                items = [str(v).strip() for v in value]
            else:
                raise ValueError(f"{self.label} must be a list")
            return [i for i in items if i]
        raise TypeError(f"unhandled parameter type {kind}")  # pragma: no cover

    def _empty(self, value: Any) -> bool:
        return value is None or (isinstance(value, str) and value.strip() == ""
                                 and self.type is not ParamType.MULTILINE)

    def _number(self, value: Any) -> float | int:
        if isinstance(value, bool):
            raise ValueError(f"{self.label} must be a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{self.label} must be a finite number")
        if self.type is ParamType.INTEGER:
            if number != int(number):
                raise ValueError(f"{self.label} must be a whole number")
            return int(number)
        return number

    def _bounded(self, number: float) -> Any:
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"{self.label} must be at least {_plain(self.minimum, self.type)}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"{self.label} must be at most {_plain(self.maximum, self.type)}")
        return number

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (CLI ``--json``, docs, the GUI)."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type.value,
            "label": self.label,
            "required": self.required,
        }
        if self.help:
            out["help"] = self.help
        if self.default is not None:
            out["default"] = self.default
        if self.choices:
            out["choices"] = [{"value": v, "label": lbl} for v, lbl in self.choices]
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.example is not None:
            out["example"] = self.example
        return out


def _plain(number: float, kind: ParamType) -> str:
    if kind is ParamType.DURATION:
        return format_duration(number)
    return str(int(number)) if number == int(number) else str(number)


def _boolean(value: Any, label: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{label} must be yes or no (true/false)")


def _url(value: str) -> str:
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r} is not a web address: it must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"{text!r} has no host name")
    return text


def _emails(value: str) -> str:
    addresses = [a.strip() for a in value.split(",") if a.strip()]
    if not addresses:
        raise ValueError("no email address given")
    for address in addresses:
        if not _EMAIL_RE.match(address):
            raise ValueError(f"{address!r} is not an email address (like name@example.org)")
    return ", ".join(addresses)


def _cron(value: str) -> str:
    """Five crontab fields. Minute to month are checked here; the weekday field follows
    crontab numbering (0 and 7 are Sunday), which the timer service translates."""
    from apscheduler.triggers.cron import CronTrigger

    text = " ".join(value.split())
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(
            f"{value!r} is not a cron expression: it needs 5 fields "
            "(minute hour day month weekday), e.g. '*/15 * * * *'"
        )
    minute, hour, day, month, weekday = fields
    try:
        CronTrigger(minute=minute, hour=hour, day=day, month=month)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid cron expression: {exc}") from None
    if not re.fullmatch(r"[0-7a-zA-Z*/,\-]+", weekday):
        raise ValueError(f"{value!r}: the weekday field {weekday!r} is not valid "
                         "(use 0-7 or sun-sat, e.g. 1-5)")
    return text


def validate_params(
    params: Sequence[Param], values: Mapping[str, Any], *, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """All of ``values`` checked against ``params``; unknown names are refused.

    ``skip`` names parameters whose value is checked elsewhere (templates, secrets).
    """
    known = {p.name: p for p in params}
    for name in values:
        if name not in known:
            from engine.errors import CatalogError

            hint = CatalogError.unknown("parameter", name, known).args[0]
            raise ValidationError(name, hint)
    out: dict[str, Any] = {}
    for param in params:
        value = values.get(param.name)
        if param.name in skip:
            out[param.name] = value
            continue
        out[param.name] = param.validate(value)
    return out
