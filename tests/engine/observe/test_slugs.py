"""Topic names from area names: one MQTT level each, unique, never a wildcard."""

from __future__ import annotations

from engine.areas import Area, AreaSpec
from engine.observe.slugs import area_slugs, slugify, topic_prefix


def area(area_id: str, name: str) -> Area:
    return Area(area_id, AreaSpec.from_dict({
        "name": name, "trigger": {"service": "probe", "trigger": "hook"},
        "reactions": [{"service": "probe", "reaction": "record", "params": {"text": "x"}}]}))


def test_a_name_becomes_one_safe_topic_level() -> None:
    assert slugify("Door bell!") == "door-bell"
    assert slugify("Café / Wi-Fi #1 +more\x00") == "café-wi-fi-1-more"
    assert slugify("///") == "area"


def test_names_two_areas_share_get_the_areas_short_ids() -> None:
    slugs = area_slugs([area("aaaaaaaa-1", "Lights"), area("bbbbbbbb-2", "lights!"),
                        area("cccccccc-3", "Status"), area("dddddddd-4", "Mail")])
    assert slugs == {"aaaaaaaa-1": "lights-aaaaaaaa", "bbbbbbbb-2": "lights-bbbbbbbb",
                     "cccccccc-3": "status-cccccccc", "dddddddd-4": "mail"}


def test_the_prefix_keeps_its_levels_but_no_wildcards() -> None:
    assert topic_prefix("home/hookline/") == "home/hookline"
    assert topic_prefix("#/+") == "hookline"
