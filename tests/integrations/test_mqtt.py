"""Tests for integrations.mqtt against a real Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine import (
    AuthError,
    HttpClient,
    PermanentError,
    PollResult,
    RateLimited,
    TransientError,
)
from engine import bus as topics
from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import Message
from engine.registry import Registry
from engine.settings import Settings
from engine.testing import poll_context, reaction_context
from integrations import mqtt
from integrations.mqtt import Subscription, service
from tests.fixtures.mail import TlsFiles
from tests.fixtures.mqtt import PASSWORD, USER, Mosquitto, StartMosquitto, free_port

MESSAGE = service.triggers["message"]
PUBLISH = service.reactions["publish"]


@pytest.fixture(autouse=True)
async def _subscriptions(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Reconnect quickly, and stop every subscription a test started."""
    monkeypatch.setattr(mqtt, "RECONNECT_MIN", 0.05)
    yield
    await mqtt.aclose_all()


async def poll(http: HttpClient, params: Mapping[str, Any], area_id: str = "area-1") -> PollResult:
    assert MESSAGE.poll is not None
    return await MESSAGE.poll(poll_context(MESSAGE, params, http, area_id=area_id))


async def publish(http: HttpClient, params: Mapping[str, Any]) -> Mapping[str, Any]:
    result = await PUBLISH.run(reaction_context(PUBLISH, params, http))
    assert result is not None
    return result


async def until(
    area_id: str, predicate: Callable[[Subscription], bool], timeout: float = 10.0
) -> Subscription:
    """Wait (on the subscription's own signal, not a sleep) until ``predicate`` holds."""
    current = mqtt.subscription(area_id)
    assert current is not None
    async with asyncio.timeout(timeout):
        while not predicate(current):
            current.changed.clear()
            await current.changed.wait()
    return current


async def send(broker: Mosquitto, topic: str, *payloads: str, **options: Any) -> None:
    """Publish from a test client; qos 1, so the broker has each one when this returns."""
    async with broker.client() as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1, **options)


def payloads(result: PollResult) -> list[str]:
    return [item.data["payload"] for item in result.items]


def test_declaration() -> None:
    assert service.id == "mqtt"
    assert (Path(__file__).parents[2] / "resources" / "icons" / "mqtt.svg").is_file()
    assert MESSAGE.default_interval == 2
    assert MESSAGE.min_interval == 1
    assert "closed" in MESSAGE.description and "QoS is 1 or 2" in MESSAGE.description
    assert {f.name for f in MESSAGE.fields} == {
        "topic",
        "payload",
        "json",
        "qos",
        "retain",
        "received_at",
    }
    assert {f.name for f in PUBLISH.fields} == {"topic", "bytes"}
    for spec in (MESSAGE, PUBLISH):
        for param in spec.params:
            assert param.label
            assert param.help
            assert param.example is not None, param.name


# --- receiving -----------------------------------------------------------------------------


async def test_messages_arrive_with_json_parsed(mosquitto: Mosquitto, http: HttpClient) -> None:
    params = mosquitto.params(topic="home/kitchen/temperature")
    assert (await poll(http, params)).items == []  # connects and subscribes
    await send(mosquitto, "home/kitchen/temperature", '{"temperature": 21.5}', "warm", "NaN")
    await until("area-1", lambda s: s.waiting == 3)

    result = await poll(http, params)

    assert payloads(result) == ["NaN", "warm", '{"temperature": 21.5}']  # newest first
    first = result.items[-1]
    assert first.data["topic"] == "home/kitchen/temperature"
    assert first.data["json"] == {"temperature": 21.5}
    assert first.data["qos"] == 0
    assert first.data["retain"] is False
    assert datetime.fromisoformat(first.data["received_at"]).tzinfo is not None
    assert [item.data["json"] for item in result.items[:2]] == [None, None]
    keys = [item.key for item in result.items]
    assert len(set(keys)) == 3
    # Handed out by one more check (in case the engine could not save the first), then gone.
    assert [item.key for item in (await poll(http, params)).items] == keys
    assert (await poll(http, params)).items == []


async def test_wildcard_topics(mosquitto: Mosquitto, http: HttpClient) -> None:
    one_level = mosquitto.params(topic="home/+/temperature")
    every_level = mosquitto.params(topic="home/#")
    await poll(http, one_level, "plus")
    await poll(http, every_level, "hash")
    for topic in (
        "home/kitchen/temperature",
        "home/kitchen/humidity",
        "home/hall/temperature",
        "office/temperature",
        "home/hall/lamp/power",
    ):
        await send(mosquitto, topic, topic)
    await until("hash", lambda s: s.received == 4)
    await until("plus", lambda s: s.received == 2)

    assert payloads(await poll(http, one_level, "plus")) == [
        "home/hall/temperature",
        "home/kitchen/temperature",
    ]
    assert payloads(await poll(http, every_level, "hash")) == [
        "home/hall/lamp/power",
        "home/hall/temperature",
        "home/kitchen/humidity",
        "home/kitchen/temperature",
    ]


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        (
            "home/#/temperature",
            "'#' matches every level below, so it must be a whole level and "
            "the last one, like home/#",
        ),
        ("home/#kitchen", "'#' matches every level below"),
        ("home/kitchen+", "'+' must be a whole level, like home/+/temperature"),
        ("home/+x/temperature", "'+' must be a whole level"),
        (" home/kitchen", "starts or ends with a space"),
        ("home/\0kitchen", "contains a NUL character"),
        ("x" * 70000, "longer than MQTT's limit of 65,535 bytes"),
    ],
)
async def test_bad_topic_filters_are_refused(http: HttpClient, topic: str, problem: str) -> None:
    params = {"host": "127.0.0.1", "port": free_port(), "topic": topic}
    with pytest.raises(PermanentError) as error:
        await poll(http, params)
    assert problem in str(error.value)
    assert mqtt.subscription("area-1") is None  # refused before connecting


async def test_bad_connection_settings_are_refused(http: HttpClient) -> None:
    base = {"host": "127.0.0.1", "port": 1883, "topic": "a/b"}
    with pytest.raises(PermanentError, match="no mqtt:// and no path"):
        await poll(http, base | {"host": "mqtt://broker.local"})
    with pytest.raises(PermanentError, match="password is set but no user name"):
        await poll(http, base | {"password": "secret"})


async def test_wrong_password_is_an_auth_error(
    mosquitto_with_login: Mosquitto, http: HttpClient
) -> None:
    params = mosquitto_with_login.params(topic="a/#")
    with pytest.raises(AuthError, match=r"refused the login \(.*\): check the user name and"):
        await poll(http, params | {"password": "wrong"}, "wrong")
    with pytest.raises(AuthError, match="refused the login"):
        await poll(http, params | {"username": None, "password": None}, "anonymous")
    assert (await poll(http, params, "right")).items == []
    assert params["username"] == USER and params["password"] == PASSWORD


async def test_broker_down_is_a_transient_error(http: HttpClient) -> None:
    port = free_port()
    with pytest.raises(
        TransientError,
        match=rf"MQTT broker 127\.0\.0\.1:{port} unreachable: "
        r".*[Cc]onnection refused",
    ):
        await poll(http, {"host": "127.0.0.1", "port": port, "topic": "a/b"})
    with pytest.raises(TransientError, match=rf"127\.0\.0\.1:{port} unreachable"):
        await publish(http, {"host": "127.0.0.1", "port": port, "topic": "a/b"})


async def test_unknown_host_is_a_transient_error(http: HttpClient) -> None:
    with pytest.raises(TransientError, match=r"cannot find 'no-such-host\.invalid'"):
        await poll(http, {"host": "no-such-host.invalid", "port": 1883, "topic": "a/b"})


async def test_reconnects_after_the_broker_restarts(
    mosquitto: Mosquitto, http: HttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    params = mosquitto.params(topic="sensors/#")
    await poll(http, params)
    await send(mosquitto, "sensors/a", "before")
    await until("area-1", lambda s: s.received == 1)

    mosquitto.stop()
    await until("area-1", lambda s: not s.connected)
    # What arrived before the connection dropped is still handed out.
    assert payloads(await poll(http, params)) == ["before"]
    assert payloads(await poll(http, params)) == ["before"]
    with pytest.raises(
        TransientError, match=rf"MQTT broker 127\.0\.0\.1:{mosquitto.port} "
    ) as down:
        await poll(http, params)
    # The engine is asked to check again when the next attempt is due (at most a minute),
    # not after its own ever longer backoff.
    assert isinstance(down.value, RateLimited) and down.value.retry_after == 1.0
    await until("area-1", lambda s: s.error is not None and "refused" in str(s.error))

    mosquitto.start()
    await until("area-1", lambda s: s.connected)
    await send(mosquitto, "sensors/b", "after")
    await until("area-1", lambda s: s.waiting == 1)
    assert payloads(await poll(http, params)) == ["after"]
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("MQTT")
    ]
    assert len(warnings) == 1, warnings  # once per failure streak, however many retries
    assert "retrying every 0.05 to 60 s" in warnings[0]
    assert any("MQTT: reconnected to 127.0.0.1" in r.getMessage() for r in caplog.records)


async def test_qos_1_keeps_messages_sent_while_hookline_was_closed(
    mosquitto: Mosquitto, http: HttpClient
) -> None:
    params = mosquitto.params(topic="door/#", qos="1")
    await poll(http, params)
    await mqtt.aclose_area("area-1")  # Hookline closes
    await send(mosquitto, "door/front", "opened while closed")

    await poll(http, params)  # Hookline is back: same client id, persistent session
    current = await until("area-1", lambda s: s.received == 1)
    assert current.client_id == mqtt.client_id("area-1", "door/#")
    assert len(current.client_id) == 23
    result = await poll(http, params)
    assert payloads(result) == ["opened while closed"]
    assert result.items[0].data["qos"] == 1


async def test_qos_0_misses_messages_sent_while_hookline_was_closed(
    mosquitto: Mosquitto, http: HttpClient
) -> None:
    params = mosquitto.params(topic="door/#", qos="0")
    await poll(http, params)
    await mqtt.aclose_area("area-1")
    await send(mosquitto, "door/front", "opened while closed")

    await poll(http, params)
    await send(mosquitto, "door/front", "opened later")
    await until("area-1", lambda s: s.received == 1)
    assert payloads(await poll(http, params)) == ["opened later"]


async def test_a_removed_area_ends_its_session_on_the_broker(
    mosquitto: Mosquitto, http: HttpClient
) -> None:
    params = mosquitto.params(topic="door/#", qos="1")
    await poll(http, params)
    await mqtt.aclose_area("area-1", forget=True)  # the area was removed
    await send(mosquitto, "door/front", "opened after removal")

    await poll(http, params)  # (same id again: only to look at what the broker kept)
    await send(mosquitto, "door/front", "opened later")
    await until("area-1", lambda s: s.received == 1)
    assert payloads(await poll(http, params)) == ["opened later"]


async def test_a_new_topic_ends_the_old_topics_session(
    mosquitto: Mosquitto, http: HttpClient
) -> None:
    await poll(http, mosquitto.params(topic="a/#", qos="1"))
    await poll(http, mosquitto.params(topic="b/#", qos="1"))
    await send(mosquitto, "a/x", "while listening to b")

    await poll(http, mosquitto.params(topic="a/#", qos="1"))
    await send(mosquitto, "a/x", "back on a")
    await until("area-1", lambda s: s.received == 1)
    assert payloads(await poll(http, mosquitto.params(topic="a/#", qos="1"))) == ["back on a"]


async def test_retained_message_keeps_its_key_across_reconnections(
    mosquitto: Mosquitto, http: HttpClient
) -> None:
    await send(mosquitto, "heating/target", "21", retain=True)
    params = mosquitto.params(topic="heating/target")
    keys = []
    for _ in range(2):
        await poll(http, params)
        await until("area-1", lambda s: s.received == 1)
        (item,) = (await poll(http, params)).items
        assert item.data["retain"] is True
        keys.append(item.key)
        await mqtt.aclose_area("area-1")
    assert keys[0] == keys[1]
    assert keys[0].startswith("retained:")


async def test_a_test_in_the_editor_shows_a_retained_message_and_leaves_nothing_running(
    mosquitto: Mosquitto, http: HttpClient
) -> None:
    await send(mosquitto, "heating/target", "21", retain=True)
    params = mosquitto.params(topic="heating/target", qos="1")
    assert MESSAGE.poll is not None
    ctx = poll_context(MESSAGE, params, http, area_id="draft", dry_run=True)
    (item,) = (await MESSAGE.poll(ctx)).items
    assert item.data["payload"] == "21" and item.data["retain"] is True
    assert mqtt.subscription("draft") is None  # nothing keeps listening (or queueing)


async def test_a_test_of_a_running_area_does_not_take_its_messages(
    mosquitto: Mosquitto, http: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt, "SAMPLE_WAIT", 0.2)
    params = mosquitto.params(topic="door/front")
    await poll(http, params)  # the area's own subscription
    await send(mosquitto, "door/front", "opened")
    running = await until("area-1", lambda s: s.waiting == 1)
    assert MESSAGE.poll is not None
    dry = poll_context(MESSAGE, params, http, area_id="area-1", dry_run=True)
    assert (await MESSAGE.poll(dry)).items == []  # nothing new arrived while it listened
    assert mqtt.subscription("area-1") is running
    assert payloads(await poll(http, params)) == ["opened"]


async def test_a_full_buffer_drops_the_oldest(
    mosquitto: Mosquitto,
    http: HttpClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(mqtt, "BUFFER_LIMIT", 3)
    params = mosquitto.params(topic="burst")
    await poll(http, params)
    await send(mosquitto, "burst", *(str(n) for n in range(5)))
    await until("area-1", lambda s: s.received == 5)
    assert payloads(await poll(http, params)) == ["4", "3", "2"]
    dropped = [r.getMessage() for r in caplog.records if "dropping the oldest" in r.getMessage()]
    assert len(dropped) == 1
    assert "more than 3 messages arrived between two checks" in dropped[0]


async def test_an_unchecked_subscription_stops_itself(
    mosquitto: Mosquitto,
    http: HttpClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(mqtt, "IDLE_AFTER", 0.3)
    params = mosquitto.params(topic="quiet")
    await poll(http, params)
    current = mqtt.subscription("area-1")
    assert current is not None
    await asyncio.wait_for(asyncio.shield(current.task), 10)
    assert mqtt.subscription("area-1") is None
    assert "stopped listening to quiet" in caplog.text
    await poll(http, params)  # the next check starts it again
    assert mqtt.subscription("area-1") is not current


async def test_aclose_all_stops_every_subscription(mosquitto: Mosquitto, http: HttpClient) -> None:
    await poll(http, mosquitto.params(topic="a"), "one")
    await poll(http, mosquitto.params(topic="b"), "two")
    running = [mqtt.subscription("one"), mqtt.subscription("two")]
    await mqtt.aclose_all()
    assert all(s is not None and s.task.done() for s in running)
    assert mqtt.subscription("one") is None and mqtt.subscription("two") is None


async def test_changed_settings_start_a_new_subscription(
    mosquitto: Mosquitto, http: HttpClient
) -> None:
    await poll(http, mosquitto.params(topic="a"))
    first = mqtt.subscription("area-1")
    await poll(http, mosquitto.params(topic="b"))
    second = mqtt.subscription("area-1")
    assert first is not None and first.task.done()
    assert second is not None and second is not first and second.topic == "b"


# --- publishing ----------------------------------------------------------------------------


async def test_publish_reaches_a_subscriber(mosquitto: Mosquitto, http: HttpClient) -> None:
    async with mosquitto.client() as watcher:
        await watcher.subscribe("home/hall/light/set", qos=1)
        out = await publish(
            http, mosquitto.params(topic="home/hall/light/set", payload='{"state": "ON"}', qos="1")
        )
        assert out == {"topic": "home/hall/light/set", "bytes": 15}
        async with asyncio.timeout(10):
            message = await anext(aiter(watcher.messages))
    assert message.payload == b'{"state": "ON"}'
    assert message.qos == 1


async def test_publish_retained_with_qos_0(mosquitto: Mosquitto, http: HttpClient) -> None:
    out = await publish(
        http, mosquitto.params(topic="heating/target", payload="21.5 °C", retain=True)
    )
    assert out == {"topic": "heating/target", "bytes": len("21.5 °C".encode())}
    async with mosquitto.client() as late:  # subscribes after the publish: gets the kept value
        await late.subscribe("heating/target")
        async with asyncio.timeout(10):
            message = await anext(aiter(late.messages))
    assert message.payload == "21.5 °C".encode()
    assert message.retain


async def test_publish_with_login(mosquitto_with_login: Mosquitto, http: HttpClient) -> None:
    params = mosquitto_with_login.params(topic="a/b", payload="x")
    assert (await publish(http, params))["bytes"] == 1
    with pytest.raises(AuthError, match="refused the login"):
        await publish(http, params | {"password": "wrong"})


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("home/+/set", "'+' and '#' are only for subscribing"),
        ("home/#", "'+' and '#' are only for subscribing"),
        ("$SYS/broker", "topics starting with $ belong to the broker"),
        ("home/hall ", "starts or ends with a space"),
    ],
)
async def test_publish_refuses_bad_topics(http: HttpClient, topic: str, problem: str) -> None:
    with pytest.raises(PermanentError) as error:
        await publish(http, {"host": "127.0.0.1", "port": free_port(), "topic": topic})
    assert problem in str(error.value)


# --- TLS -----------------------------------------------------------------------------------


async def test_tls_round_trip(
    start_mosquitto: StartMosquitto, tls_files: TlsFiles, trust_test_ca: Path, http: HttpClient
) -> None:
    broker = start_mosquitto(tls=(tls_files.cert, tls_files.key))
    params = broker.params(topic="secure/#")
    assert params["tls"] is True
    await poll(http, params)
    await publish(http, params | {"topic": "secure/one", "payload": "hi"})
    await until("area-1", lambda s: s.received == 1)
    assert payloads(await poll(http, params)) == ["hi"]


# paho-mqtt 2.2 leaves the socket of a failed TLS handshake to the garbage collector.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)
async def test_tls_with_an_untrusted_certificate(
    start_mosquitto: StartMosquitto,
    tls_files: TlsFiles,
    http: HttpClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))  # trust nothing
    broker = start_mosquitto(tls=(tls_files.cert, tls_files.key))
    with pytest.raises(PermanentError, match="TLS certificate is not trusted"):
        await publish(http, broker.params(topic="a", payload="x"))


# --- through a real engine -----------------------------------------------------------------


@pytest.fixture
async def engine(data_dir: Path) -> AsyncIterator[Engine]:
    engine = Engine(
        data_dir,
        settings=Settings.from_mapping({"retry_delay": 0.01}),
        registry=Registry.load(plugins=False),
        listen=False,
    )
    await engine.start()
    yield engine
    await engine.aclose()
    await mqtt.aclose_all()


def next_message(engine: Engine, topic: str) -> asyncio.Future[Message]:
    future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    def listener(message: Message) -> None:
        if not future.done():
            future.set_result(message)

    stop = engine.bus.subscribe(topic, listener)
    future.add_done_callback(lambda _: stop())
    return future


async def test_an_area_turns_a_message_into_another(
    engine: Engine, mosquitto_with_login: Mosquitto
) -> None:
    broker = mosquitto_with_login
    connection = {"host": "127.0.0.1", "port": broker.port, "username": USER, "password": PASSWORD}
    area_spec = {
        "name": "Door opens: hall light on",
        "interval": 3600,
        "trigger": {
            "service": "mqtt",
            "trigger": "message",
            "params": connection | {"topic": "door/+", "qos": "1"},
        },
        "reactions": [
            {
                "service": "mqtt",
                "reaction": "publish",
                "params": connection
                | {
                    "topic": "light/hall/set",
                    "qos": "1",
                    "payload": '{"state": "ON", "door": "{{ trigger.topic }}", '
                    '"by": {{ trigger.json.who | tojson }}}',
                },
            }
        ],
    }
    async with broker.client() as watcher:
        await watcher.subscribe("light/hall/set", qos=1)
        area = await engine.create_area(AreaSpec.from_dict(area_spec))
        # The test checks by hand: the engine's own checks would race with it.
        engine.scheduler.remove(area.id)
        spec = engine.registry.trigger("mqtt", "message")
        # The password went to the keyring (the engine reads it from there for its polls).
        assert area.spec.trigger.params["password"] is None
        params = {**area.spec.trigger.params, "password": PASSWORD}
        assert await engine.poller.poll(area, spec, params, 3600) == 0  # primes
        finished = next_message(engine, topics.RUN_FINISHED)

        await send(broker, "door/front", '{"who": "alice"}')
        await until(area.id, lambda s: s.received == 1)
        assert await engine.poller.poll(area, spec, params, 3600) == 1

        # Generous bounds: on a loaded machine the keyring alone can take seconds.
        run = await asyncio.wait_for(finished, 60)
        assert run.data["status"] == "succeeded", run.data
        async with asyncio.timeout(30):
            light = await anext(aiter(watcher.messages))
    assert json.loads(light.payload) == {"state": "ON", "door": "door/front", "by": "alice"}
    (record,) = await engine.store.runs(area.id)
    assert record["status"] == "succeeded"
    assert engine.poller.failing(area.id) is None
