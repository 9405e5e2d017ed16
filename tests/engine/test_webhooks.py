"""Webhook deliveries end to end: journaled, acknowledged, run once; bad ones refused."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import aiohttp
import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import AREA_PAUSED, RUN_FINISHED
from tests.engine import probe
from tests.engine.conftest import EngineFactory, next_message, stored_bytes

AREA = {
    "name": "Hook to record",
    "trigger": {"service": "probe", "trigger": "hook"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "got {{ trigger.title }}"}}],
}


async def _area(engine: Engine) -> tuple[str, str]:
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    url = await engine.webhook_url(area.id)
    assert url is not None
    return area.id, url


async def test_delivery_is_acknowledged_after_journal_and_runs_once(engine: Engine) -> None:
    area_id, url = await _area(engine)
    finished = next_message(engine, RUN_FINISHED)
    async with aiohttp.ClientSession() as session, session.post(
        url, json={"title": "hello"}, headers={"X-Delivery": "d-1"}
    ) as resp:
        assert resp.status == 202
        assert await resp.json() == {"accepted": 1, "duplicates": 0}
    message = await finished
    assert message.data["status"] == "succeeded"
    assert probe.controls.received[0]["text"] == "got hello"
    runs = await engine.store.runs(area_id)
    assert [r["status"] for r in runs] == ["succeeded"]
    assert runs[0]["trigger_payload"] == {"title": "hello"}


async def test_redelivery_with_same_id_is_not_run_twice(engine: Engine) -> None:
    _, url = await _area(engine)
    async with aiohttp.ClientSession() as session:
        for expected in ({"accepted": 1, "duplicates": 0}, {"accepted": 0, "duplicates": 1}):
            async with session.post(url, json={"title": "x"},
                                    headers={"X-Delivery": "same"}) as resp:
                assert resp.status == 202
                assert await resp.json() == expected
    await engine.wait_idle()
    assert len(probe.controls.received) == 1


@pytest.mark.parametrize(
    ("method", "path_suffix", "body", "headers", "status", "reason"),
    [
        ("GET", "", b"", {}, 405, "use POST"),
        ("POST", "-wrong", b"{}", {}, 404, "no area has this webhook"),
        ("POST", "", b"x" * (1024 * 1024 + 1), {}, 413, "larger than"),
        ("POST", "", b'{"title": ', {}, 400, "not valid JSON"),
        ("POST", "", b"{}", {"Host": "evil.example:80"}, 400, "unexpected Host"),
        ("POST", "", b"[" * 201 + b"]" * 201, {}, 400, "nested more than 200 levels"),
        ("POST", "", b"1" * 5000, {}, 400, "a number in it has too many digits"),
        ("POST", "", b'{"title": "x"}', {"Content-Encoding": "gzip"}, 400,
         "could not be read (Can not decode content-encoding: gzip)"),
    ],
)
async def test_bad_requests_get_a_clear_4xx_and_nothing_is_stored(
    engine: Engine, method: str, path_suffix: str, body: bytes, headers: dict[str, str],
    status: int, reason: str,
) -> None:
    area_id, url = await _area(engine)
    data = io.BytesIO(body) if len(body) > 1024 else body
    async with aiohttp.ClientSession() as session, session.request(
        method, url + path_suffix, data=data, headers=headers
    ) as resp:
        assert resp.status == status
        assert reason in (await resp.json())["error"]
    await engine.wait_idle()
    assert await engine.store.runs(area_id) == []
    assert await engine.store.pending_events() == []
    assert probe.controls.received == []


async def test_json_nested_as_deep_as_allowed_is_accepted_and_run(engine: Engine) -> None:
    area_id, url = await _area(engine)
    body = '{"title": "deep", "n": ' + "[" * 199 + "]" * 199 + "}"
    async with aiohttp.ClientSession() as session, session.post(
            url, data=body, headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 202
    await engine.wait_idle()
    assert [r["status"] for r in await engine.store.runs(area_id)] == ["succeeded"]
    assert probe.controls.received[0]["text"] == "got deep"


async def test_a_refusal_closes_the_connection_and_the_sender_is_told(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    _, url = await _area(engine)
    async with aiohttp.ClientSession() as session:
        # A broken gzip body: refused, and neither a 500 nor a traceback in the log.
        async with session.post(url, data=b"not gzip", headers={"Content-Encoding": "gzip",
                                "Content-Type": "application/json"}) as resp:
            assert resp.status == 400 and resp.headers["Connection"] == "close"
        # The unread body of a refusal is not drained: the answer says the connection
        # closes, so the next delivery on the same session opens a new one and works.
        async with session.get(url, data=b"x" * 5000) as resp:
            assert resp.status == 405 and resp.headers["Connection"] == "close"
        async with session.post(url, json={"title": "after"}) as resp:
            assert resp.status == 202
    await engine.wait_idle()
    assert probe.controls.received[0]["text"] == "got after"
    assert [r.message for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_turned_off_area_refuses_deliveries_and_says_so(engine: Engine) -> None:
    area_id, url = await _area(engine)
    await engine.set_enabled(area_id, False)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={}) as resp:
            # 409, not 404: the address is alive, the area is off (a sender may retry)
            assert resp.status == 409
            assert (await resp.json())["error"] == (
                "the area is off (turned off); turn it on in Hookline, then send again")
        assert await engine.store.runs(area_id) == []
        await engine.set_enabled(area_id, True)
        async with session.post(url, json={"title": "back"}) as resp:
            assert resp.status == 202


async def test_a_paused_area_answers_409_with_why(make_engine: EngineFactory) -> None:
    engine = await make_engine(pause_after_failures=1)
    area = await engine.create_area(AreaSpec.from_dict({
        **AREA, "reactions": [{"service": "probe", "reaction": "fail", "params": {}}]}))
    url = await engine.webhook_url(area.id)
    assert url is not None
    paused = next_message(engine, AREA_PAUSED)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"title": "fails"}) as resp:
            assert resp.status == 202
        await paused
        async with session.post(url, json={"title": "again"}) as resp:
            assert resp.status == 409
            error = (await resp.json())["error"]
    assert error.startswith("the area is off (paused: 1 runs in a row failed")


async def test_an_area_off_before_a_restart_still_answers_409(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    area_id, url = await _area(engine)
    await engine.set_enabled(area_id, False)
    await engine.aclose()
    engine = await make_engine(listener_port=int(url.split(":")[2].split("/")[0]))
    async with aiohttp.ClientSession() as session, session.post(url, json={}) as resp:
        assert resp.status == 409


async def test_valid_addresses_never_get_404_across_restarts(
        make_engine: EngineFactory) -> None:
    """20 restarts while 8 senders keep posting: a sender hears 202, or 503 with
    Retry-After while the engine starts (or no answer while it is down), never 404."""
    engine = await make_engine()
    _area_id, url = await _area(engine)
    port = int(url.split(":")[2].split("/")[0])
    statuses: list[int] = []
    stop = asyncio.Event()

    async def send(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            try:
                async with session.post(url, json={"title": "x"}) as resp:
                    statuses.append(resp.status)
                    if resp.status == 503:
                        assert resp.headers["Retry-After"] == "1"
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.001)  # down between two starts

    async with aiohttp.ClientSession() as session:
        senders = [asyncio.create_task(send(session)) for _ in range(8)]
        try:
            for _ in range(20):
                await engine.aclose()
                engine = await make_engine(listener_port=port)
                seen = len(statuses)
                while len(statuses) < seen + 8:  # answered after this start
                    await asyncio.sleep(0.005)
        finally:
            stop.set()
            await asyncio.gather(*senders)
    assert 404 not in statuses
    assert statuses.count(202) > 0


async def test_webhook_token_is_kept_out_of_the_database(engine: Engine, data_dir: Path,
                                                         database: str) -> None:
    _, url = await _area(engine)
    token = url.rsplit("/", 1)[1]
    raw = stored_bytes(data_dir, database)
    assert raw  # the area is there
    assert token.encode() not in raw
    assert json.dumps(token).encode() not in raw


async def test_oversized_body_without_length_is_cut_off(engine: Engine) -> None:
    _, url = await _area(engine)

    async def chunks():  # chunked transfer: no Content-Length to check up front
        for _ in range(17):
            yield b"x" * 65536

    async with aiohttp.ClientSession() as session, session.post(url, data=chunks()) as resp:
        assert resp.status == 413


async def test_github_signature_is_checked_before_anything_is_stored(engine: Engine) -> None:
    import hashlib
    import hmac

    area = await engine.create_area(AreaSpec.from_dict({
        "name": "Issues",
        "trigger": {"service": "webhook", "trigger": "github",
                    "params": {"secret": "gh-secret-1"}},
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "{{ trigger.event }} {{ trigger.delivery }}"}}],
    }))
    url = await engine.webhook_url(area.id)
    assert url is not None
    body = json.dumps({"action": "opened", "repository": {"full_name": "o/r"},
                       "sender": {"login": "u"}}).encode()
    good = "sha256=" + hmac.new(b"gh-secret-1", body, hashlib.sha256).hexdigest()
    base = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "abc-1",
            "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for signature, status in ((None, 401), ("sha256=" + "0" * 64, 401), (good, 202),
                                  (good, 202)):
            headers = dict(base)
            if signature:
                headers["X-Hub-Signature-256"] = signature
            async with session.post(url, data=body, headers=headers) as resp:
                assert resp.status == status, await resp.text()
    await engine.wait_idle()
    # Two good deliveries with the same X-GitHub-Delivery: one run.
    assert [r["text"] for r in probe.controls.received] == ["issues abc-1"]


async def test_a_dry_run_uses_the_last_delivery_once_one_came(engine: Engine) -> None:
    area_id, url = await _area(engine)
    spec = engine.area(area_id).spec
    before = await engine.test_area(spec, area_id=area_id)
    assert before["sample"] == "example" and before["trigger"] == {"title": "hello", "n": 1}
    assert before["note"].startswith("No request has arrived yet")
    finished = next_message(engine, RUN_FINISHED)
    async with aiohttp.ClientSession() as session:
        for title in ("first", "the newest"):
            async with session.post(url, json={"title": title, "n": 2}) as resp:
                assert resp.status == 202
    await finished
    result = await engine.test_area(spec, area_id=area_id)
    assert result["sample"] == "delivery"
    assert result["trigger"] == {"title": "the newest", "n": 2}
    assert result["note"].startswith("Tested with the last delivery, received 20")
    assert result["reactions"][0]["would_send"]["text"] == "got the newest"
    # A draft (not saved yet) has had no delivery: the examples stand in.
    draft = await engine.test_area(spec)
    assert draft["sample"] == "example"


async def test_a_pasted_body_takes_the_place_of_a_webhook_body(engine: Engine) -> None:
    spec = AreaSpec.from_dict({
        "name": "Pasted", "trigger": {"service": "webhook", "trigger": "incoming"},
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "{{ trigger.body.user.name }}"}}]})
    sample = await engine.sample(spec, body={"user": {"name": "Ada"}})
    assert sample.source == "pasted"
    assert sample.payload["body"] == {"user": {"name": "Ada"}}
    assert set(sample.payload) == {"body", "headers", "query", "content_type", "received_at"}
    result = await engine.test_area(spec, body={"user": {"name": "Ada"}})
    assert result["reactions"][0]["would_send"]["text"] == "Ada"
    assert result["note"] == "Tested with the sample body you pasted"
