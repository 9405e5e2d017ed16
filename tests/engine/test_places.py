"""Engine messages located in the user's words: the step, its name and the field's label."""

from __future__ import annotations

from engine.areas import AreaSpec
from engine.places import in_words, place
from engine.registry import Registry

REGISTRY = Registry.load(plugins=False)
SPEC = AreaSpec.from_dict({
    "name": "Ping",
    "trigger": {"service": "webhook", "trigger": "incoming", "params": {}},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "{{ trigger.title }}"}}],
})


def test_a_run_error_names_the_step_and_the_field_as_the_editor_shows_them() -> None:
    message = ("reactions[0]: reactions[0].params.title: this event has no value 'title'. "
               "It has: body, headers, query. Use Insert field to pick one.")
    assert in_words(message, SPEC, REGISTRY) == (
        "Reaction 1 (Show a notification), field Title: this event has no value 'title'. "
        "It has: body, headers, query. Use Insert field to pick one.")


def test_places_without_a_field_and_messages_without_a_place() -> None:
    assert in_words("reactions[0] Show a notification: not shown", SPEC, REGISTRY) == (
        "Reaction 1 (Show a notification): not shown")
    assert place("trigger.params.body", SPEC, REGISTRY) == (
        "Trigger (Request received), field Body format")
    assert place("name", SPEC, REGISTRY) == "Name"
    assert in_words("the engine is stopping", SPEC, REGISTRY) == "the engine is stopping"
