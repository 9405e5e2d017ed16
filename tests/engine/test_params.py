"""Parameter validation: the messages a user sees for bad input."""

from __future__ import annotations

import pytest

from engine.catalog.params import Param, ParamType, format_duration, parse_duration
from engine.errors import ValidationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("45s", 45), (12, 12)],
)
def test_durations_read_as_people_write_them(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_duration_round_trips_to_short_text() -> None:
    assert format_duration(5400) == "1h30m"


@pytest.mark.parametrize(
    ("ptype", "value", "message"),
    [
        (ParamType.URL, "ftp://x", "must start with http"),
        (ParamType.EMAIL, "not-an-address", "is not an email address"),
        (ParamType.TIME, "25:00", "write HH:MM"),
        (ParamType.CRON, "* * *", "needs 5 fields"),
        (ParamType.CRON, "61 * * * *", "not a valid cron"),
        (ParamType.DURATION, "soon", "is not a duration"),
        (ParamType.DURATION, 10**40, "under 100 years"),  # a schedule would overflow
        (ParamType.INTEGER, "1.5", "whole number"),
        (ParamType.BOOL, "maybe", "yes or no"),
    ],
)
def test_bad_values_name_the_param_and_the_fix(ptype: ParamType, value: str,
                                                message: str) -> None:
    param = Param("field", ptype, "Field")
    with pytest.raises(ValidationError) as caught:
        param.validate(value)
    assert caught.value.where == "field"
    assert message in caught.value.problem


def test_required_param_refuses_blank_and_bounds_are_enforced() -> None:
    with pytest.raises(ValidationError, match="Port is required"):
        Param("port", ParamType.INTEGER, "Port").validate("  ")
    bounded = Param("n", ParamType.NUMBER, "Count", minimum=1, maximum=10)
    with pytest.raises(ValidationError, match="at least 1"):
        bounded.validate(0)
    assert bounded.validate("7") == 7.0


def test_choice_lists_what_is_allowed() -> None:
    param = Param("mode", ParamType.CHOICE, "Mode", choices=(("a", "A"), ("b", "B")))
    with pytest.raises(ValidationError, match="not one of: a, b"):
        param.validate("c")
