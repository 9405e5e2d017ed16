"""The engine's API over the control channel: calls answered as the engine would, the
bus as a websocket, errors as the engine's classes, and a codec that rebuilds the same
objects and refuses any type it was not told of."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import typing
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from engine import rpc
from engine.app import Engine
from engine.areas import Area, AreaSpec
from engine.bus import Message
from engine.control import CONTROL_FILE
from engine.errors import CatalogError, HooklineError, ImportRefused, ValidationError
from engine.store import NotFound
from engine.windows import Weekly, Window
from tests.engine import probe
from tests.engine.conftest import EngineFactory, next_message
from tests.engine.test_why import FEED


@pytest.fixture
async def served(make_engine: EngineFactory) -> Engine:
    return await make_engine()


@pytest.fixture
async def session(served: Engine, data_dir: Path) -> AsyncIterator[aiohttp.ClientSession]:
    info = json.loads((data_dir / CONTROL_FILE).read_text(encoding="utf-8"))
    async with aiohttp.ClientSession(
            base_url=f"http://127.0.0.1:{info['port']}",
            headers={"Authorization": f"Bearer {info['token']}"}) as session:
        yield session


async def call(session: aiohttp.ClientSession, name: str, **arguments: Any) -> Any:
    async with session.post(f"/rpc/{name}", json=rpc.encode(arguments)) as answer:
        body = await answer.json()
        if answer.status != 200:
            raise rpc.error_from(answer.status, body)
        return rpc.decode(body["result"])


# --------------------------------------------------------------------- codec


def _reachable(hint: Any, found: set[type]) -> None:
    """Every class a value of ``hint`` may hold (through fields, lists, unions)."""
    for arm in typing.get_args(hint):
        _reachable(arm, found)
    origin = typing.get_origin(hint)
    cls = origin if isinstance(origin, type) else hint
    if not isinstance(cls, type) or cls in found:
        return
    found.add(cls)
    module = __import__(cls.__module__, fromlist=["_"])
    if dataclasses.is_dataclass(cls):
        for name, field_hint in typing.get_type_hints(cls, vars(module)).items():
            if name in {f.name for f in dataclasses.fields(cls)}:
                _reachable(field_hint, found)
    elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
        for field_hint in typing.get_type_hints(cls, vars(module)).values():
            _reachable(field_hint, found)


def test_every_engine_type_a_call_returns_or_takes_is_registered() -> None:
    """A call that gains a dataclass the codec does not know fails here, not in a
    user's window."""
    found: set[type] = set()
    for call in rpc.CALLS.values():
        hints = typing.get_type_hints(call.run, {**vars(rpc), "Engine": object})
        for hint in hints.values():
            _reachable(hint, found)
    engine_types = {cls for cls in found
                    if cls.__module__.startswith("engine.")
                    and (dataclasses.is_dataclass(cls) or hasattr(cls, "_fields"))}
    missing = {cls.__qualname__ for cls in engine_types
               if rpc.TYPES.get(cls.__name__) is not cls}
    assert not missing, f"add to engine.rpc.TYPES: {sorted(missing)}"
    assert len(engine_types) >= 20  # the walk reached Why's parts, Area's, Status's


def test_the_codec_rebuilds_the_same_values() -> None:
    zone = ZoneInfo("Europe/Paris")
    spec = AreaSpec.from_dict({**FEED, "active_from": "2027-01-01 09:00",
                               "only_during": {"days": ["mon", "fri"], "from": "09:00",
                                               "until": "18:00",
                                               "timezone": "Europe/Paris"}})
    values = [
        Area("a1", spec, paused_reason="3 failures", state="paused",
             snoozed_until=datetime(2027, 1, 1, 9, tzinfo=zone),
             created_at=datetime(2026, 1, 1, tzinfo=UTC)),
        Window(datetime(2027, 1, 1, 9, tzinfo=zone), None,
               Weekly(("mon",), time(9), time(18), "Europe/Paris")),
        {"nested": [(1, "two"), {3, 4}, frozenset({"x"})], 5: timedelta(seconds=90)},
        {rpc.TAG: "not a tag, a user's key"},
        datetime(2026, 12, 6, 10, 0),  # naive stays naive
    ]
    for value in values:
        back = rpc.decode(json.loads(json.dumps(rpc.encode(value))))
        assert back == value
        assert type(back) is type(value)
    moment = rpc.decode(rpc.encode(datetime(2027, 7, 1, 9, tzinfo=zone)))
    assert moment.tzinfo == zone  # the zone, not only its offset that day


def test_an_unregistered_type_is_neither_sent_nor_rebuilt() -> None:
    class Secretive:
        pass

    with pytest.raises(rpc.CodecError, match="may not cross"):
        rpc.encode({"x": Secretive()})
    for tag in ("os.system", "subprocess.Popen", "Engine", "__builtins__"):
        with pytest.raises(rpc.CodecError, match="unknown type"):
            rpc.decode({"spec": {rpc.TAG: tag, "v": {"args": ["rm", "-rf", "/"]}}})


# --------------------------------------------------------------------- calls


async def test_calls_answer_as_the_engine_does(served: Engine,
                                               session: aiohttp.ClientSession) -> None:
    created = await call(session, "create_area", spec=AreaSpec.from_dict(FEED))
    served.scheduler.delay_poll(created.id, 600)  # the test runs it itself
    assert isinstance(created, Area)
    assert created == served.area(created.id)
    snapshot = await call(session, "snapshot")
    assert snapshot["settings"] == served.settings
    assert [h["area"] for h in snapshot["areas"]] == served.areas()
    assert set(snapshot["services"]) == set(served.registry.services)

    probe.controls.items = [probe.Item("k1", {"title": "first", "n": 1})]
    finished = next_message(served, "run.finished")
    [event] = await call(session, "run_now", area_id=created.id)
    await finished
    await served.wait_idle()
    assert [r["id"] for r in await call(session, "store.runs", area_id=created.id)] == [
        r["id"] for r in await served.store.runs(created.id)]
    assert (await call(session, "store.event", event_id=event.id))["payload"][
        "title"] == "first"
    remote_why = await call(session, "why", area_id=created.id)
    assert remote_why == dataclasses.replace(await served.why(created.id), at=remote_why.at)
    assert await call(session, "lifecycle", area_id=created.id) == await served.lifecycle(
        created.id)

    await call(session, "remove_area", area_id=created.id)
    assert served.areas() == []


async def test_errors_cross_as_the_engines_classes(served: Engine,
                                                   session: aiohttp.ClientSession) -> None:
    with pytest.raises(NotFound, match="nope"):
        await call(session, "why", area_id="nope")
    bad = AreaSpec.from_dict({**FEED, "reactions": [
        {"service": "probe", "reaction": "record", "params": {"text": "{{ oops"}}]})
    with pytest.raises(ValidationError) as refused:
        await call(session, "create_area", spec=bad)
    assert refused.value.where.startswith("reactions")
    with pytest.raises(ImportRefused) as not_imported:
        await call(session, "import_areas", items=[FEED, {"name": "broken"}])
    assert not_imported.value.total == 2
    with pytest.raises(CatalogError):
        await call(session, "sample", spec=AreaSpec.from_dict(
            {**FEED, "trigger": {"service": "nowhere", "trigger": "x"}}))
    with pytest.raises(ValidationError, match="area_id"):
        await call(session, "why", area_id=7)  # a mistyped argument
    with pytest.raises(ValidationError, match="not an argument"):
        await call(session, "why", area_id="x", path="/etc/passwd")
    with pytest.raises(ValidationError, match=r"^answer: dict is not dict\[str, str\]$"):
        await call(session, "accounts.finish_sign_in", sign_in="x",  # a value not text
                   answer={"state": "s", "code": ["a", "b"]})
    with pytest.raises(NotFound, match="no call"):
        await call(session, "aclose")  # not in the whitelist
    assert served.areas() == []


async def test_a_value_of_an_unknown_type_is_refused_by_the_engine(
        served: Engine, session: aiohttp.ClientSession) -> None:
    body = {"spec": {rpc.TAG: "subprocess.Popen", "v": {"args": ["touch", "/tmp/x"]}}}
    async with session.post("/rpc/create_area", json=body) as answer:
        assert answer.status == 409
        assert "unknown type 'subprocess.Popen'" in (await answer.json())["error"]
    assert served.areas() == []


async def test_a_secret_is_said_saved_never_shown(served: Engine,
                                                  session: aiohttp.ClientSession) -> None:
    await call(session, "secrets.set", ref="settings/events_mqtt/password", value="hunter2")
    assert served.secrets.get("settings/events_mqtt/password") == "hunter2"
    assert await call(session, "secrets.saved", ref="settings/events_mqtt/password") is True
    with pytest.raises(ValidationError, match="not a secret a client may set"):
        await call(session, "secrets.set", ref="account/a1/token", value="stolen")
    with pytest.raises(ValidationError, match="not a secret a client may ask"):
        await call(session, "secrets.saved", ref="account/a1/token")


async def test_without_the_token_nothing_answers(served: Engine, data_dir: Path) -> None:
    info = json.loads((data_dir / CONTROL_FILE).read_text(encoding="utf-8"))
    base = f"http://127.0.0.1:{info['port']}"
    async with aiohttp.ClientSession(base_url=base) as stranger:
        async with stranger.post("/rpc/snapshot", json={}) as answer:
            assert answer.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await stranger.ws_connect("/rpc/events")


async def test_the_bus_streams_with_the_area_as_it_is_now(
        served: Engine, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect("/rpc/events") as stream:
        area = await served.create_area(AreaSpec.from_dict(FEED))
        heard: list[dict[str, Any]] = []
        while not any(m["topic"] == "area.changed" for m in heard):
            heard += (await stream.receive_json(timeout=10))
        changed = next(m for m in heard if m["topic"] == "area.changed")
        assert rpc.decode(changed["data"]) == {"area_id": area.id, "change": "created"}
        assert rpc.decode(changed["area"])["area"] == area
        await served.remove_area(area.id)
        while True:
            batch = await stream.receive_json(timeout=10)
            removed = [m for m in batch if m["topic"] == "area.changed"
                       and m["data"]["change"] == "removed"]
            if removed:
                assert removed[0]["area"] is None
                break


async def test_a_client_too_slow_for_the_backlog_is_told_to_read_everything_again(
        served: Engine, session: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound of messages waiting for one client, the rest are not queued: the
    client hears how many it missed and reads the engine's state again (RemoteEngine's
    resync), so nothing it shows is silently stale."""
    monkeypatch.setattr(rpc, "BACKLOG", 3)
    listeners = served.bus._listeners.setdefault("*", [])
    before = len(listeners)
    async with session.ws_connect("/rpc/events") as stream:
        async with asyncio.timeout(10):  # the stream listens (an engine with no areas:
            while len(listeners) == before:  # nothing else publishes meanwhile)
                await asyncio.sleep(0.01)
        for n in range(10):  # one turn of the loop: the stream's task cannot send between
            served.bus.publish("notification", title=f"n{n}", body="", level="info")
        heard: list[dict[str, Any]] = []
        while not any(m["topic"] == "rpc.resync" for m in heard):
            heard += await stream.receive_json(timeout=10)
    titles = [m["data"]["title"] for m in heard if m["topic"] == "notification"]
    assert titles == ["n0", "n1", "n2"]
    assert heard[-1] == {"topic": "rpc.resync", "data": {"dropped": 7}}


async def test_a_stop_is_not_held_up_by_a_listening_app(
        make_engine: EngineFactory, data_dir: Path) -> None:
    engine = await make_engine()
    info = json.loads((data_dir / CONTROL_FILE).read_text(encoding="utf-8"))
    async with aiohttp.ClientSession(
            base_url=f"http://127.0.0.1:{info['port']}",
            headers={"Authorization": f"Bearer {info['token']}"}) as session:
        stream = await session.ws_connect("/rpc/events")
        await engine.aclose()
        message = await stream.receive(timeout=5)  # the app hears at once that it ended
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await stream.close()


async def test_a_message_crosses_without_what_only_this_process_holds(
        served: Engine) -> None:
    class Span:  # a run's trace span, computed when read
        pass

    sent = rpc.outgoing(served, Message("run.finished", {
        "run_id": 7, "area_id": "a1", "status": "failed", "error": "boom",
        "trace": Span()}))
    assert sent == {"topic": "run.finished", "data": {
        "run_id": 7, "area_id": "a1", "status": "failed", "error": "boom"}}


def test_errors_say_what_they_said() -> None:
    for error in (HooklineError("x"), NotFound("no area 'a'"),
                  ValidationError("name", "give a name")):
        status, body = rpc.error_body(error)
        back = rpc.error_from(status, json.loads(json.dumps(body)))
        assert type(back) is type(error)
        assert str(back) == str(error)
