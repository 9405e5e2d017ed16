"""Template problems as the user reads them: what is missing, what there is, what to do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from engine import templates
from engine.errors import TemplateError

WEBHOOK_EVENT = {"trigger": {"body": {"text": "hi"}, "headers": {}, "query": {}}}


def problem_of(source: str, context: Mapping[str, Any] | None = None) -> str:
    def attempt() -> None:
        if context is None:
            templates.check(source, trigger_fields=None)
        else:
            templates.render(source, context, where="reactions[0].params.title")

    with pytest.raises(TemplateError) as caught:
        attempt()
    return caught.value.problem


def test_a_value_the_event_lacks_names_it_and_lists_what_the_event_has() -> None:
    assert problem_of("{{ trigger.title }}", WEBHOOK_EVENT) == (
        "this event has no value 'title'. It has: body, headers, query. Use Insert field "
        "to pick one.")
    assert problem_of("Hi {{ trigger.body.name }}", WEBHOOK_EVENT) == (
        "this event's 'body' has no value 'name'. It has: text. Use Insert field to pick one.")
    assert problem_of("{{ reactions[0].id }}",
                      {**WEBHOOK_EVENT, "reactions": [{"url": "u"}]}) == (
        "reaction 1's result has no value 'id'. It has: url. Use Insert field to pick one.")


@pytest.mark.parametrize(("source", "problem"), [
    ("{{ trigger.title }", "the template is not finished: a '}}' closes nothing on line 1 "
                           "(a lone '}' stands where '}}' should close a '{{'). Write {{ and "
                           "}} in pairs."),
    ("a\n{{ trigger.title", "the template is not finished: a '{{' on line 2 is never "
                            "closed. Write {{ and }} in pairs."),
    ("{% if trigger.x %}yes", "the template is not finished: '{% if %}' has no "
                              "'{% endif %}'. Add it after the text it covers."),
    ("{{ }}", "'{{ }}' on line 1 is empty: put a value between them (Insert field)."),
])
def test_a_template_that_is_not_finished_says_where_and_how_to_fix_it(source: str,
                                                                      problem: str) -> None:
    assert problem_of(source) == problem
    assert problem_of(source, WEBHOOK_EVENT) == problem  # the same when it is rendered


def test_an_unknown_filter_is_named() -> None:
    assert problem_of("{{ trigger.body | shout }}", WEBHOOK_EVENT) == (
        "'| shout' is not a filter Hookline knows: check its spelling, or remove it.")


def test_a_field_the_trigger_does_not_give_is_refused_with_the_fields_it_gives() -> None:
    with pytest.raises(TemplateError) as caught:
        templates.check("{{ trigger.titel }}", trigger_fields=["title", "link"])
    assert caught.value.problem == (
        "this event has no value 'titel'. Did you mean trigger.title? It has: title, link. "
        "Use Insert field to pick one.")
