"""Tests for the Notifications service: what it asks the desktop to show."""

from __future__ import annotations

import pytest

from engine import Bus, HttpClient, Message, PermanentError, ValidationError
from engine.testing import reaction_context
from integrations.notify import service

SPEC = service.reactions["notify"]


async def test_notify_publishes_a_notification_on_the_bus(http: HttpClient) -> None:
    bus = Bus()
    heard: list[Message] = []
    stop = bus.subscribe("notification", heard.append)
    ctx = reaction_context(
        SPEC,
        {"title": "Backup done", "message": "3 files\ncopied", "level": "warning"},
        http,
        bus=bus,
        area_id="area-7",
    )
    out = await SPEC.run(ctx)
    stop()
    assert heard == [
        Message(
            "notification",
            {
                "title": "Backup done",
                "body": "3 files\ncopied",
                "level": "warning",
                "area_id": "area-7",
            },
        )
    ]
    assert out == {"title": "Backup done", "message": "3 files\ncopied"}


async def test_notify_defaults_to_information_without_a_message(http: HttpClient) -> None:
    bus = Bus()
    heard: list[Message] = []
    bus.subscribe("*", heard.append)
    await SPEC.run(reaction_context(SPEC, {"title": "Hello"}, http, bus=bus))
    assert [(m.topic, m.data["body"], m.data["level"]) for m in heard] == [
        ("notification", "", "info"),
    ]


async def test_notify_needs_a_title_and_a_known_level(http: HttpClient) -> None:
    with pytest.raises(ValidationError, match="Title is required"):
        reaction_context(SPEC, {"message": "no title"}, http)
    with pytest.raises(ValidationError, match="'loud' is not one of: info, warning, error"):
        reaction_context(SPEC, {"title": "x", "level": "loud"}, http)


async def test_a_notification_nobody_can_show_fails_its_step_saying_why(
        http: HttpClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from integrations import notify

    monkeypatch.setattr(notify, "not_shown_because", "this desktop has no tray")
    bus = Bus()
    heard: list[Message] = []
    bus.subscribe("notification", heard.append)
    with pytest.raises(PermanentError) as caught:
        await SPEC.run(reaction_context(SPEC, {"title": "Backup done"}, http, bus=bus))
    assert str(caught.value) == "Not shown: this desktop has no tray"
    assert [m.data["title"] for m in heard] == ["Backup done"]  # still in the log
