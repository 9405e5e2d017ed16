"""The machine service: OS readings through its reader seam, and the real readers
where this machine has them."""

from __future__ import annotations

from typing import Any

import pytest

from engine import PermanentError
from engine.http import HttpClient
from engine.testing import poll_context
from integrations import machine
from integrations.machine import NetworkState, service


async def poll(http: HttpClient, trigger: str, state: dict[str, Any],
               params: dict[str, Any] | None = None) -> list[Any]:
    spec = service.triggers[trigger]
    assert spec.poll is not None
    result = await spec.poll(poll_context(spec, params or {}, http, state=state))
    return result.items


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    values: dict[str, Any] = {"clocks": (1000.0, 1000.0), "idle": 0.0,
                              "network": NetworkState(True, ("192.168.1.20",), "Home")}
    for name in values:
        monkeypatch.setitem(machine.readers, name, lambda name=name: values[name])
    return values


async def test_waking_from_sleep_fires_once_per_wake(http: HttpClient,
                                                      readings: dict[str, Any]) -> None:
    state: dict[str, Any] = {}
    assert await poll(http, "woke", state) == []
    readings["clocks"] = (1030.0, 1030.0)  # 30 s awake: no sleep
    assert await poll(http, "woke", state) == []
    readings["clocks"] = (4660.0, 1060.0)  # the boot clock ran on for an hour
    [item] = await poll(http, "woke", state)
    assert item.data["slept_seconds"] == 3600
    again = await poll(http, "woke", state)
    assert [i.key for i in again] == [item.key]  # the same wake: the engine fires it once


async def test_idle_and_back(http: HttpClient, readings: dict[str, Any]) -> None:
    idle: dict[str, Any] = {}
    back: dict[str, Any] = {}
    params = {"after": "5m"}
    assert await poll(http, "became_idle", idle, params) == []
    assert await poll(http, "became_active", back, params) == []
    readings["idle"] = 400.0
    [went] = await poll(http, "became_idle", idle, params)
    assert went.data["idle_seconds"] == 400
    assert await poll(http, "became_active", back, params) == []
    readings["idle"] = 2.0
    [returned] = await poll(http, "became_active", back, params)
    assert returned.data["idle_seconds"] == 2
    assert [i.key for i in await poll(http, "became_idle", idle, params)] == [went.key]
    readings["idle"] = 600.0
    keys = [i.key for i in await poll(http, "became_idle", idle, params)]
    assert keys != [went.key]  # a second idle spell is a new event


async def test_network_changes_are_told_apart(http: HttpClient,
                                              readings: dict[str, Any]) -> None:
    state: dict[str, Any] = {}
    assert await poll(http, "network_changed", state) == []
    readings["network"] = NetworkState(False, (), "")
    [lost] = await poll(http, "network_changed", state)
    assert lost.data["change"] == "disconnected"
    readings["network"] = NetworkState(True, ("10.0.0.7",), "Office")
    [back] = await poll(http, "network_changed", state)
    assert back.data == {"connected": True, "wifi": "Office", "addresses": ["10.0.0.7"],
                         "change": "connected"}
    only_lost: dict[str, Any] = {}
    await poll(http, "network_changed", only_lost, {"only": "disconnected"})
    readings["network"] = NetworkState(True, ("10.0.0.8",), "Office")
    assert await poll(http, "network_changed", only_lost, {"only": "disconnected"}) == []


async def test_app_started_has_one_key_per_start(http: HttpClient) -> None:
    [item] = await poll(http, "app_started", {})
    assert item.key == machine.STARTED_ID


async def test_the_real_readers_on_this_machine(http: HttpClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with_sleep, without = machine.sleep_clocks()
    assert with_sleep > 0
    assert without > 0
    state = machine.network_state()
    assert isinstance(state.connected, bool)
    assert all(not a.startswith("127.") for a in state.addresses)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    with pytest.raises(PermanentError, match="does not report idle time"):
        await poll(http, "became_idle", {}, {"after": "1m"})


async def test_clipboard_changes_fire_and_headless_says_why(
        http: HttpClient, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PermanentError, match="only while the desktop app runs"):
        await poll(http, "clipboard_changed", {})
    copied = {"text": "old"}
    monkeypatch.setitem(machine.readers, "clipboard", lambda: copied["text"])
    state: dict[str, Any] = {}
    assert await poll(http, "clipboard_changed", state, {"contains": "http"}) == []
    copied["text"] = "not a link"
    assert await poll(http, "clipboard_changed", state, {"contains": "http"}) == []
    copied["text"] = "https://example.org/a"
    [item] = await poll(http, "clipboard_changed", state, {"contains": "HTTP"})
    assert item.data == {"text": "https://example.org/a", "length": 21}
