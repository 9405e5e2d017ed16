"""Hookline's own events on a real Mosquitto: runs, pauses, failing checks and accounts
arrive as the documented JSON; a broker that goes away neither stops the engine nor
loses what happened meanwhile; the broker's password never reaches the log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest

from engine import PermanentError
from engine.areas import AreaSpec
from engine.bus import ACCOUNT_NEEDS_RECONNECT, RUN_FINISHED
from engine.observe.mqtt_events import PASSWORD_REF
from engine.secrets import open_secret_store
from tests.engine import probe
from tests.engine.conftest import EngineFactory, next_message
from tests.engine.observe.conftest import HOOK, deliver
from tests.fixtures.mqtt import PASSWORD, USER, Mosquitto, StartMosquitto

FEED = {
    "name": "Python blog",
    "trigger": {"service": "probe", "trigger": "items"},
    "reactions": [{"service": "probe", "reaction": "record", "params": {"text": "x"}}],
}


class Inbox:
    """What a subscriber (Home Assistant, say) received, awaited by topic."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[str, Any, bool]] = asyncio.Queue()
        self.seen: list[tuple[str, Any]] = []

    async def expect(self, topic: str, match: dict[str, Any] | None = None,
                     timeout: float = 15.0) -> Any:
        """The next message on ``topic`` whose JSON has ``match``'s values."""
        async with asyncio.timeout(timeout):
            while True:
                got, body, _retained = await self.messages.get()
                self.seen.append((got, body))
                if got == topic and (match is None or all(
                        isinstance(body, dict) and body.get(k) == v
                        for k, v in match.items())):
                    return body


@asynccontextmanager
async def subscribed(broker: Mosquitto, **options: Any) -> AsyncIterator[Inbox]:
    inbox = Inbox()
    async with broker.client(**options) as client:
        await client.subscribe("hookline/#", qos=1)

        async def receive() -> None:
            async for message in client.messages:
                raw = bytes(message.payload)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode()
                inbox.messages.put_nowait((str(message.topic), body, message.retain))

        task = asyncio.create_task(receive())
        try:
            yield inbox
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def sharing(broker: Mosquitto) -> dict[str, Any]:
    return {"events_mqtt_enabled": True, "events_mqtt_host": "127.0.0.1",
            "events_mqtt_port": broker.port,
            "events_mqtt_username": USER if broker.users else ""}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_runs_pauses_checks_and_accounts_arrive_as_json(
        make_engine: EngineFactory, mosquitto_with_login: Mosquitto, data_dir: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    broker = mosquitto_with_login
    open_secret_store(data_dir).set(PASSWORD_REF, PASSWORD)
    async with subscribed(broker) as inbox:
        engine = await make_engine(**sharing(broker))
        assert await inbox.expect("hookline/status") == "online"
        area = await engine.create_area(AreaSpec.from_dict(HOOK))

        await deliver(engine, area.id, "ding")
        running = await inbox.expect("hookline/door-bell/run", {"status": "running"})
        done = await inbox.expect("hookline/door-bell/run", {"status": "succeeded"})
        assert set(done) == {"area", "area_id", "run_id", "event_id", "status",
                             "started_at", "finished_at", "error"}
        assert (done["area"], done["area_id"], done["error"]) == ("Door bell!", area.id,
                                                                   None)
        assert running["run_id"] == done["run_id"] and running["finished_at"] is None
        assert when(done["started_at"]) <= when(done["finished_at"])

        probe.controls.fail_times, probe.controls.fail_with = 99, PermanentError
        for n in range(3):  # pause_after_failures is 3 in these tests
            await deliver(engine, area.id, f"broken {n}")
        failed = await inbox.expect("hookline/door-bell/run", {"status": "failed"})
        assert "probe failure" in failed["error"]
        paused = await inbox.expect("hookline/door-bell/paused")
        assert paused["area_id"] == area.id and "3 runs in a row failed" in paused["reason"]

        feed = await engine.create_area(AreaSpec.from_dict(FEED))
        engine.scheduler.delay_poll(feed.id, 3600)  # the test makes each check
        spec = engine.registry.trigger("probe", "items")
        probe.controls.poll_error = PermanentError("the feed answered 410 Gone")
        await engine.poller.poll(engine.area(feed.id), spec, {}, 60.0)
        failing = await inbox.expect("hookline/python-blog/poll", {"state": "failing"})
        assert failing["error"] == "the feed answered 410 Gone"
        probe.controls.poll_error = None
        await engine.poller.poll(engine.area(feed.id), spec, {}, 60.0)
        recovered = await inbox.expect("hookline/python-blog/poll", {"state": "recovered"})
        assert recovered["error"] is None and recovered["area"] == "Python blog"

        engine.bus.publish(ACCOUNT_NEEDS_RECONNECT, account_id="a1", service_id="github",
                           name="me@example.com", error="the token was revoked")
        account = await inbox.expect(
            "hookline/account/github/me-example-com/needs_reconnect")
        assert account["name"] == "me@example.com" and account["error"] == (
            "the token was revoked")

        await engine.aclose()
        assert await inbox.expect("hookline/status") == "offline"
    assert PASSWORD not in caplog.text


async def test_two_areas_with_one_name_get_their_own_topics(
        make_engine: EngineFactory, start_mosquitto: StartMosquitto) -> None:
    broker = start_mosquitto()
    async with subscribed(broker) as inbox:
        engine = await make_engine(**sharing(broker))
        first = await engine.create_area(AreaSpec.from_dict(HOOK))
        second = await engine.create_area(AreaSpec.from_dict(HOOK))
        await deliver(engine, second.id, "ding")
        done = await inbox.expect(f"hookline/door-bell-{second.id[:8]}/run",
                                  {"status": "succeeded"})
        assert done["area_id"] == second.id and first.id != second.id


async def test_a_broker_that_goes_away_neither_stops_runs_nor_loses_their_events(
        make_engine: EngineFactory, start_mosquitto: StartMosquitto,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    broker = start_mosquitto(persistent=True)
    # A subscriber whose session the broker keeps while it is away (as Home Assistant's).
    session = {"identifier": "home-assistant", "clean_session": False}
    async with subscribed(broker, **session) as inbox:
        engine = await make_engine(**sharing(broker))
        assert await inbox.expect("hookline/status") == "online"
    area = await engine.create_area(AreaSpec.from_dict(HOOK))
    broker.stop()

    for title in ("one", "two"):
        finished = next_message(engine, RUN_FINISHED)
        await deliver(engine, area.id, title)
        assert (await finished).data["status"] == "succeeded"  # the engine keeps working
    assert [r["text"] for r in probe.controls.received] == ["one", "two"]

    broker.start()
    async with subscribed(broker, **session) as inbox:
        first = await inbox.expect("hookline/door-bell/run", {"status": "succeeded"})
        second = await inbox.expect("hookline/door-bell/run", {"status": "succeeded"})
        assert first["run_id"] < second["run_id"]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING
                and "cannot send Hookline's events" in r.getMessage()]
    assert len(warnings) == 1  # once per streak, however many tries
    assert any("sending Hookline's events to the MQTT broker" in r.getMessage()
               and "again" in r.getMessage() for r in caplog.records)
