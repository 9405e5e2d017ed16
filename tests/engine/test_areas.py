"""Checking an area before save: every problem is said at once, each at its place."""

from __future__ import annotations

from typing import Any

import pytest

from engine.areas import AreaSpec, check_area
from engine.errors import SeveralProblems, TemplateError, ValidationError
from engine.settings import Settings
from tests.engine.conftest import registry

GOOD_URL = "https://example.org/hook"


def spec(*, name: str = "Hook", url: str = GOOD_URL, title: str = "{{ trigger.fired_at }}",
         interval: str = "1h") -> AreaSpec:
    data: dict[str, Any] = {
        "name": name,
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": interval}},
        "reactions": [
            {"service": "http", "reaction": "request", "params": {"url": url}},
            {"service": "notify", "reaction": "notify", "params": {"title": title}},
        ],
    }
    return AreaSpec.from_dict(data)


def problems_of(area: AreaSpec) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        check_area(area, registry(), Settings.from_mapping({}))
    return caught.value


def test_every_problem_is_said_at_once_in_the_order_of_the_form() -> None:
    error = problems_of(spec(name="", url="ftp://example.org", title="{{ trigger.fired_att }}"))
    assert isinstance(error, SeveralProblems)
    assert [p.where for p in error.problems] == [
        "name", "reactions[0].params.url", "reactions[1].params.title"]
    assert isinstance(error.problems[2], TemplateError)
    # Callers that show one problem get the first; the message lists them all.
    assert (error.where, error.problem) == ("name", "give the area a name")
    assert str(error).split("; ") == [str(p) for p in error.problems]
    assert "must start with http:// or https://" in str(error)
    assert "this event has no value 'fired_att'" in str(error)


def test_one_problem_reads_as_it_always_did() -> None:
    error = problems_of(spec(url="ftp://example.org"))
    assert type(error) is ValidationError
    assert error.problems == [error]
    assert str(error) == ("reactions[0].params.url: 'ftp://example.org' is not a web "
                          "address: it must start with http:// or https://")


def test_an_unknown_trigger_still_lets_the_reactions_be_checked() -> None:
    area = spec(url="not a url")
    area.trigger.action = "evry"
    error = problems_of(area)
    assert [p.where for p in error.problems] == ["trigger", "reactions[0].params.url"]
    assert "Did you mean 'every'?" in error.problems[0].problem


def test_a_fixed_area_passes_and_is_cleaned() -> None:
    checked = check_area(spec(), registry(), Settings.from_mapping({}))
    assert checked.spec.trigger.params["interval"] == 3600.0
    assert all(r.uid for r in checked.spec.reactions)
