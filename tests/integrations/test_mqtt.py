"""Tests for integrations.mqtt against a real Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import select

from engine import (
    AuthError,
    HttpClient,
    Item,
    PermanentError,
    PollResult,
    RateLimited,
    TransientError,
)
from engine import bus as topics
from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import Message
from engine.storage.schema import events
from engine.testing import poll_context, reaction_context
from integrations import mqtt
from integrations.mqtt import Subscription, service
from tests.fixtures.mail import TlsFiles
from tests.fixtures.mqtt import PASSWORD, USER, Mosquitto, StartMosquitto, free_port
from tests.integrations.engines import start_engine

MESSAGE = service.triggers["message"]
PUBLISH = service.reactions["publish"]


#: Each area's poll state as the engine saved it (it saves it with the check's events).
saved: dict[str, dict[str, Any]] = {}


@pytest.fixture(autouse=True)
async def _subscriptions(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Reconnect quickly, and stop every subscription a test started."""
    monkeypatch.setattr(mqtt, "RECONNECT_MIN", 0.05)
    saved.clear()
    yield
    await mqtt.aclose_all()


async def poll(
    http: HttpClient, params: Mapping[str, Any], area_id: str = "area-1", *, save: bool = True
) -> PollResult:
    """One check, its state kept as the engine keeps it: saved (through JSON, as in the
    database) unless ``save`` is off, as when the engine could not save the check."""
    assert MESSAGE.poll is not None
    state = json.loads(json.dumps(saved.get(area_id, {})))
    result = await MESSAGE.poll(poll_context(MESSAGE, params, http, area_id=area_id, state=state))
    if save:
        saved[area_id] = json.loads(json.dumps(state))
    return result


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


async def quiet(area_id: str, gap: float = 0.2) -> int:
    """Wait until no message has come for ``gap`` s (the broker sent all it had, or holds
    back the rest); how many the area's checks have not had yet."""
    current = mqtt.subscription(area_id)
    assert current is not None
    while True:
        current.changed.clear()
        try:
            await asyncio.wait_for(current.changed.wait(), gap)
        except TimeoutError:
            return current.waiting


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
    assert (await poll(http, params)).items == []  # saved: gone


async def test_a_check_the_engine_could_not_save_is_handed_out_again(
    mosquitto: Mosquitto, http: HttpClient
) -> None:
    params = mosquitto.params(topic="door/#", qos="1")
    await poll(http, params)
    await send(mosquitto, "door/front", "opened", "closed")
    await until("area-1", lambda s: s.waiting == 2)
    first = await poll(http, params, save=False)  # e.g. the disk was full
    await send(mosquitto, "door/front", "opened again")
    await until("area-1", lambda s: s.waiting == 1)

    again = await poll(http, params)
    assert payloads(again) == ["opened again", "closed", "opened"]
    assert again.items[1:] == first.items  # under the same keys: the engine fires them once
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

    # Hookline is back: same client id, persistent session; the broker sends what it
    # kept before it confirms the subscription, so the check that subscribes has it.
    result = await poll(http, params)
    current = mqtt.subscription("area-1")
    assert current is not None and current.received == 1
    assert current.client_id == mqtt.client_id("area-1", "door/#")
    assert len(current.client_id) == 23
    assert payloads(result) == ["opened while closed"]
    assert result.items[0].data["qos"] == 1


async def test_a_reconnection_takes_no_qos_1_message_twice(
    start_mosquitto: StartMosquitto, http: HttpClient
) -> None:
    broker = start_mosquitto(persistent=True)  # keeps the session when restarted
    params = broker.params(topic="door/#", qos="1")
    await poll(http, params)
    await send(broker, "door/front", "a", "b")
    await until("area-1", lambda s: s.received == 2)
    assert payloads(await poll(http, params)) == ["b", "a"]  # saved; acknowledged next
    await send(broker, "door/back", "c")
    await until("area-1", lambda s: s.received == 3)  # held; acknowledged once saved

    broker.stop()
    await until("area-1", lambda s: not s.connected)
    broker.start()
    current = await until("area-1", lambda s: s.connected)
    # The broker sent all three again (d1: a repeat): none is taken in twice.
    assert broker.log.count("Sending PUBLISH to hookline-") == 6
    assert broker.log.count("(d1, q1, r0") == 3
    assert current.received == 3
    assert payloads(await poll(http, params)) == ["c"]
    assert (await poll(http, params)).items == []


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


async def test_a_retained_value_is_handed_out_once_per_value(
    mosquitto: Mosquitto, http: HttpClient
) -> None:
    await send(mosquitto, "heating/target", "21", retain=True)
    await send(mosquitto, "heating/mode", "eco", retain=True)
    params = mosquitto.params(topic="heating/#")
    await poll(http, params)
    await until("area-1", lambda s: s.received == 2)
    result = await poll(http, params)
    assert sorted(payloads(result)) == ["21", "eco"]
    assert all(item.data["retain"] is True for item in result.items)
    # Hookline used to key a kept value by its digest: seen under that key, it is not new.
    aliases = {item.data["payload"]: item.aliases for item in result.items}
    assert aliases["21"] == (f"retained:{mqtt._digest('heating/target', b'21')}",)

    await mqtt.aclose_area("area-1")  # listening stops, and starts again
    await send(mosquitto, "heating/mode", "comfort", retain=True)
    await poll(http, params)
    await until("area-1", lambda s: s.received == 2)
    # The broker sends both kept values again: only the one that changed is handed out.
    assert payloads(await poll(http, params)) == ["comfort"]


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


@pytest.mark.parametrize("qos", [1, 2])
async def test_qos_1_or_2_past_the_buffer_waits_on_the_broker(
    mosquitto: Mosquitto, http: HttpClient, monkeypatch: pytest.MonkeyPatch, qos: int
) -> None:
    monkeypatch.setattr(mqtt, "BUFFER_LIMIT", 3)
    params = mosquitto.params(topic="burst", qos=str(qos))
    await poll(http, params)
    sent = [str(n) for n in range(40)]
    async with mosquitto.client() as client:
        for payload in sent:
            await client.publish("burst", payload, qos=qos)
    current = await until("area-1", lambda s: s.received >= 23)
    await quiet("area-1")
    # Hookline acknowledged the three it holds, and none past them...
    acknowledged = "PUBACK" if qos == 1 else "PUBCOMP"
    assert mosquitto.log.count(f"Received {acknowledged} from hookline-") == 3
    if qos == 1:  # ... so Mosquitto, its 20 in flight unacknowledged, holds back the rest.
        assert current.received == 23
    # (Mosquitto 2.0 counts each PUBREC as room in flight, so with QoS 2 it sends more:
    # Hookline holds them, unacknowledged.)

    taken: list[str] = []
    while len(taken) < len(sent):
        result = await poll(http, params)
        assert len(result.items) <= 3
        taken += payloads(result)[::-1]
        if len(taken) < len(sent):
            await until("area-1", lambda s: s.waiting > 0)
    assert taken == sent
    assert (await poll(http, params)).items == []
    assert "dropped" not in mosquitto.log


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
    engine = await start_engine(data_dir)
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


def watching(broker: Mosquitto, topic: str, qos: str) -> AreaSpec:
    """An area that notifies each message on ``topic``; checked by hand (hourly otherwise)."""
    return AreaSpec.from_dict(
        {
            "name": f"Watch {topic}",
            "interval": 3600,
            "trigger": {
                "service": "mqtt",
                "trigger": "message",
                "params": broker.params(topic=topic, qos=qos),
            },
            "reactions": [
                {
                    "service": "notify",
                    "reaction": "notify",
                    "params": {"title": "{{ trigger.payload }}"},
                }
            ],
        }
    )


async def check(engine: Engine, area_id: str) -> int:
    """One check of the area, as the engine's schedule makes it; how many events fired."""
    area = engine.area(area_id)
    spec = engine.registry.trigger("mqtt", "message")
    return await engine.poller.poll(area, spec, area.spec.trigger.params, 3600)


async def fired(engine: Engine, area_id: str) -> list[str]:
    """The payloads of the area's events, in the order they were journaled."""
    async with engine.store.db.connect() as conn:
        rows = await conn.execute(
            select(events.c.payload).where(events.c.area_id == area_id).order_by(events.c.id)
        )
        return [row[0]["payload"] for row in rows]


async def restart(engine: Engine, data_dir: Path, area_id: str) -> Engine:
    """Hookline closes and starts again on the same data folder."""
    await engine.aclose()
    again = await start_engine(data_dir)
    again.scheduler.remove(area_id)  # the test checks by hand
    return again


async def events_of(engine: Engine, area_id: str, count: int, timeout: float = 60) -> list[str]:
    """The area's payloads once ``count`` events are journaled (the engine's own checks
    make them: there is no signal per check to wait on, so this looks every 50 ms)."""
    async with asyncio.timeout(timeout):
        while len(found := await fired(engine, area_id)) < count:
            await asyncio.sleep(0.05)
    return found


async def test_a_qos_1_burst_past_the_buffer_fires_every_message_once(
    engine: Engine, mosquitto: Mosquitto
) -> None:
    # The engine's own schedule checks the area (hourly, and whenever messages wait).
    area = await engine.create_area(watching(mosquitto, "burst", "1"))
    async with asyncio.timeout(30):
        while not (await engine.store.trigger_state(area.id) or {}).get("primed"):
            await asyncio.sleep(0.05)
    await until(area.id, lambda s: s.connected)
    burst = [str(n) for n in range(2 * mqtt.BUFFER_LIMIT)]
    await send(mosquitto, "burst", *burst)  # faster than an hourly check

    # Each once, in the order published: the checks kept up with the broker's queue.
    assert await events_of(engine, area.id, len(burst)) == burst
    assert await quiet(area.id) == 0
    assert await check(engine, area.id) == 0
    # Neither side dropped any: Hookline held back, the broker's queue did not overflow.
    assert "dropped" not in mosquitto.log


async def test_a_qos_1_burst_not_saved_yet_survives_a_stop_or_kill(
    data_dir: Path, mosquitto: Mosquitto
) -> None:
    engine = await start_engine(data_dir)
    try:
        area = await engine.create_area(watching(mosquitto, "burst", "1"))
        engine.scheduler.remove(area.id)  # no check comes before the stop
        assert await check(engine, area.id) == 0  # primes
        burst = [str(n) for n in range(300)]
        await send(mosquitto, "burst", *burst)
        await quiet(area.id)  # the broker sent what it may, and holds back the rest
        current = mqtt.subscription(area.id)
        assert current is not None and current.received >= mqtt.ACK_WINDOW
        # Nothing acknowledged that was not saved: the broker still has all of it.
        assert current.inbox.unsaved() == 0

        engine = await restart(engine, data_dir, area.id)
        total = 0
        while total < len(burst):
            total += await check(engine, area.id)
            await quiet(area.id)
        assert await fired(engine, area.id) == burst  # each once, in the order published
    finally:
        await engine.aclose()


async def test_a_retained_value_fires_once_across_restarts(
    data_dir: Path, mosquitto: Mosquitto
) -> None:
    engine = await start_engine(data_dir)
    try:
        area = await engine.create_area(watching(mosquitto, "heating/target", "1"))
        engine.scheduler.remove(area.id)
        assert await check(engine, area.id) == 0  # primes
        for value, fires in (("21", 1), ("22", 1), ("21", 1)):
            # published while Hookline listens: the broker forwards it with retain=0
            await send(mosquitto, "heating/target", value, retain=True)
            await until(area.id, lambda s: s.waiting == 1)
            assert await check(engine, area.id) == fires
            for _ in range(2):
                # The seen-key memory forgets old keys; a retained value must not need it.
                await engine.store.prune(14, 90, 1000, seen_per_area=0)
                engine = await restart(engine, data_dir, area.id)
                assert await check(engine, area.id) == 0  # subscribes again
                # the broker sends its kept value again, now with retain=1
                await until(area.id, lambda s: s.received == 1)
                assert await check(engine, area.id) == 0, value
        assert await fired(engine, area.id) == ["21", "22", "21"]
    finally:
        await engine.aclose()


async def test_a_retained_value_fires_once_across_reconnections(
    engine: Engine, start_mosquitto: StartMosquitto
) -> None:
    broker = start_mosquitto(persistent=True)  # keeps its retained values when restarted
    area = await engine.create_area(watching(broker, "heating/target", "0"))
    engine.scheduler.remove(area.id)
    assert await check(engine, area.id) == 0
    await send(broker, "heating/target", "21", retain=True)
    await until(area.id, lambda s: s.received == 1)
    assert await check(engine, area.id) == 1
    for _ in range(2):
        before = (await until(area.id, lambda s: s.connected)).received
        broker.stop()
        await until(area.id, lambda s: not s.connected)
        broker.start()
        # subscribed again: the broker sends its kept value, now with retain=1
        await until(area.id, lambda s, n=before + 1: s.received == n)
        assert await check(engine, area.id) == 0
    await send(broker, "heating/target", "22", retain=True)  # a new value still fires
    await until(area.id, lambda s: s.waiting == 1)
    assert await check(engine, area.id) == 1
    assert await fired(engine, area.id) == ["21", "22"]


async def test_a_qos_1_message_not_picked_up_before_a_restart_fires_after_it(
    data_dir: Path, mosquitto: Mosquitto
) -> None:
    engine = await start_engine(data_dir)
    try:
        area = await engine.create_area(watching(mosquitto, "door/#", "1"))
        engine.scheduler.remove(area.id)
        assert await check(engine, area.id) == 0
        await send(mosquitto, "door/front", "a", "b", "c")
        await until(area.id, lambda s: s.received == 3)
        assert await check(engine, area.id) == 3
        await send(mosquitto, "door/back", "not picked up yet")
        await until(area.id, lambda s: s.received == 4)

        engine = await restart(engine, data_dir, area.id)
        # The broker sends again what was not acknowledged, before it confirms the
        # subscription: the three saved are recognised, the fourth fires.
        assert await check(engine, area.id) == 1
        assert mqtt.subscription(area.id).received == 1
        assert await check(engine, area.id) == 0
        assert await fired(engine, area.id) == ["a", "b", "c", "not picked up yet"]
    finally:
        await engine.aclose()


async def test_a_qos_0_burst_past_the_buffer_is_a_failed_check_saying_how_many_were_dropped(
    engine: Engine, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt, "BUFFER_LIMIT", 3)
    area = await engine.create_area(watching(mosquitto, "burst", "0"))
    engine.scheduler.remove(area.id)
    assert await check(engine, area.id) == 0
    await send(mosquitto, "burst", *(str(n) for n in range(5)))
    await until(area.id, lambda s: s.inbox.dropped == 2)

    assert await check(engine, area.id) == 0
    assert await check(engine, area.id) == 3  # those it kept, with the next check
    assert await fired(engine, area.id) == ["0", "1", "2"]
    # In the area's check history, as Activity and the Checks window show it:
    await engine.wait_idle()
    latest, failed, _primed = await engine.checks(area.id)
    assert (latest["outcome"], latest["new"]) == ("new", 3)
    assert failed["outcome"] == "failed"
    assert failed["error"].startswith("MQTT burst: 2 message(s) dropped: more than 3 arrived")


def test_a_kept_value_remembered_in_the_form_before_does_not_fire_again() -> None:
    """Areas saved whole topics and 32-digit digests before; they are read as hashes."""
    topic, payload = "heating/target", b"21"
    state: dict[str, Any] = {"values": [[topic, mqtt._digest(topic, payload)]]}
    inbox = mqtt.Inbox(10, 5, 100, hold=True)
    inbox.receive(Item("k1", {"payload": "21"}), topic=topic,
                  digest=mqtt._digest(topic, payload), retained=True, qos=0, mid=1, acked=True)
    assert inbox.take(state) == []
    assert "values" not in state and list(state["kept"].values()) == [
        mqtt._digest(topic, payload)[:mqtt.VALUE_KEY]]


async def test_past_its_memory_a_forgotten_topics_kept_value_does_not_fire_again(
    engine: Engine, start_mosquitto: StartMosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The area remembers the latest value of VALUE_MEMORY topics; past it the least
    recently changed are forgotten. Their kept values, sent again on reconnecting, do not
    fire a second time: they are counted, and a failed check says how many."""
    monkeypatch.setattr(mqtt, "VALUE_MEMORY", 3)
    broker = start_mosquitto(persistent=True)
    area = await engine.create_area(watching(broker, "sensor/+", "0"))
    engine.scheduler.remove(area.id)
    assert await check(engine, area.id) == 0
    for n in range(5):
        await send(broker, f"sensor/{n}", f"2{n}", retain=True)
    await until(area.id, lambda s: s.received == 5)
    assert await check(engine, area.id) == 5

    before = (await until(area.id, lambda s: s.connected)).received
    broker.stop()
    await until(area.id, lambda s: not s.connected)
    broker.start()
    # subscribed again: the broker sends all five kept values, now with retain=1
    await until(area.id, lambda s, n=before + 5: s.received == n)
    assert await check(engine, area.id) == 0  # three remembered, two forgotten
    assert await check(engine, area.id) == 0
    await send(broker, "sensor/0", "30", retain=True)  # a change still fires
    await until(area.id, lambda s, n=before + 6: s.received == n)
    assert await check(engine, area.id) == 1
    assert await fired(engine, area.id) == ["20", "21", "22", "23", "24", "30"]
    await engine.wait_idle()
    failed = next(c for c in await engine.checks(area.id) if c["outcome"] == "failed")
    assert failed["error"].startswith(
        "MQTT sensor/+: 2 retained message(s) came again for topics whose last value "
        "Hookline no longer remembers (it remembers 3 topics per automation)")


async def test_a_publish_in_a_run_carries_the_runs_trace_as_a_user_property(
    engine: Engine, mosquitto: Mosquitto
) -> None:
    """MQTT 5 subscribers see ``traceparent`` (W3C Trace Context) on the message, with
    the trace id Activity shows for the run."""
    area = await engine.create_area(
        AreaSpec.from_dict(
            {
                "name": "Hook to light",
                "trigger": {"service": "webhook", "trigger": "incoming"},
                "reactions": [
                    {
                        "service": "mqtt",
                        "reaction": "publish",
                        "params": mosquitto.params(topic="light/hall/set", payload="ON"),
                    }
                ],
            }
        )
    )
    async with mosquitto.client(protocol=aiomqtt.ProtocolVersion.V5) as watcher:
        await watcher.subscribe("light/hall/set")
        finished = next_message(engine, topics.RUN_FINISHED)
        await engine.run_now(area.id, {"body": {}, "headers": {}})
        run = await asyncio.wait_for(finished, 60)
        assert run.data["status"] == "succeeded", run.data
        async with asyncio.timeout(30):
            light = await anext(aiter(watcher.messages))
    assert light.payload == b"ON"
    assert light.properties is not None
    [(name, value)] = light.properties.UserProperty  # type: ignore[attr-defined]  # (paho)
    (record,) = await engine.store.runs(area.id)
    assert name == "traceparent"
    assert value.startswith(f"00-{record['trace_id']}-")
    assert len(value) == 55 and value.endswith("-01")
