"""What a run records of a reaction's parameters and output (``json_safe``)."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.runner import MAX_FIELD, json_safe


class Level(enum.IntEnum):
    HIGH = 3


def round_trip(value: Any) -> Any:
    """The reference: serialise with ``default=str`` and read back."""
    return json.loads(json.dumps(value, default=str))


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 1.5, "text", "",
    {"a": 1, "b": [1, 2, (3, 4)], "c": {"d": None}},
    {1: "one", 2.5: "x", None: "nothing"},
    {False: "no"},
    (1, "two", [3.0]),
    {"when": datetime(2026, 11, 22, 5, 0, tzinfo=UTC), "path": Path("/tmp/x"),
     "amount": Decimal("1.10"), "tags": {"only"}},
    {"level": Level.HIGH, "nested": [{"level": Level.HIGH}]},
])
def test_records_what_a_json_round_trip_would(value: Any) -> None:
    assert json_safe(value) == round_trip(value)
    assert json.dumps(json_safe(value)) == json.dumps(round_trip(value))


def test_long_text_is_cut_and_marked_wherever_it_is() -> None:
    long = "x" * (MAX_FIELD + 10)
    safe = json_safe({"body": long, "items": [long], "short": "ok"})
    assert safe["body"] == "x" * MAX_FIELD + "… (cut)"
    assert safe["items"] == [safe["body"]]
    assert safe["short"] == "ok"


def test_a_key_json_cannot_write_is_refused_like_json_does() -> None:
    with pytest.raises(TypeError):
        json_safe({(1, 2): "tuple key"})
    with pytest.raises(TypeError):
        round_trip({(1, 2): "tuple key"})
