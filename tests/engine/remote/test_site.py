"""The remote site: over TLS, every route of the control channel answers a paired
client, and anyone else gets 401 and nothing else."""

from __future__ import annotations

import dataclasses
import json
import socket
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine import rpc
from engine.control import ControlClient
from engine.errors import ConfigError
from engine.remote import codes
from engine.remote.client import pair
from engine.remote.errors import PairingRefused
from engine.remote.pairing import CODE_LIFETIME, IDLE_EXPIRY, MAX_FAILURES, PAUSE
from engine.storage.schema import utcnow
from tests.engine.conftest import EngineFactory
from tests.engine.remote.conftest import AREA, REMOTE, Remote

NOT_AUTHORISED = {"error": "not authorised"}


def unverified() -> ssl.SSLContext:
    """TLS without checking the certificate: a stranger's client, pinned to nothing."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def stranger(remote: Remote, method: str, path: str, *, token: str | None = None,
                   body: Any = None) -> tuple[int, Any]:
    """What someone without a pairing gets for a request (status, JSON body)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session, session.request(
            method, remote.url + path, json=body, headers=headers, ssl=unverified()) as resp:
        return resp.status, await resp.json()


async def test_a_paired_client_makes_an_area_over_the_pinned_connection(
        remote: Remote) -> None:
    target, token = await remote.pair("laptop")

    async with target.session(token) as session, session.post("/areas", json=AREA) as resp:
        assert resp.status == 200
        made = (await resp.json())["id"]

    assert [a.name for a in remote.engine.areas() if a.id == made] == ["Made from afar"]
    assert target.fingerprint == remote.site.identity.fingerprint
    assert target.name.startswith("hookline@")
    [client] = await remote.site.pairing.clients()
    assert (client.id, client.name) == (target.client_id, "laptop")
    assert client.last_seen_at is not None


async def test_no_token_a_wrong_one_and_the_local_channels_token_get_401(
        remote: Remote) -> None:
    await remote.pair()  # someone is paired; these still are not
    local_token = ControlClient(remote.engine.data_dir)._headers["Authorization"][7:]

    for token in (None, "", "not-a-token", local_token):
        assert await stranger(remote, "POST", "/areas", token=token, body=AREA) == (
            401, NOT_AUTHORISED)
        assert await stranger(remote, "GET", "/no/such/route", token=token) == (
            401, NOT_AUTHORISED)
    assert remote.engine.areas() == []


async def test_a_revoked_client_is_refused_at_its_next_request(remote: Remote) -> None:
    target, token = await remote.pair()
    async with target.session(token) as session:
        async with session.get("/remote/hello") as resp:
            assert resp.status == 200
        await remote.site.pairing.revoke(target.client_id[:8])
        async with session.post("/areas", json=AREA) as resp:
            assert (resp.status, await resp.json()) == (401, NOT_AUTHORISED)
    assert await remote.site.pairing.clients() == []


async def test_a_code_works_once(remote: Remote) -> None:
    issued = await remote.site.pairing.issue()
    await pair("127.0.0.1", remote.site.port, issued.code, client_name="first")

    with pytest.raises(PairingRefused):
        await pair("127.0.0.1", remote.site.port, issued.code, client_name="second")
    assert [c.name for c in await remote.site.pairing.clients()] == ["first"]


async def test_a_code_expires_after_ten_minutes(remote: Remote) -> None:
    pairing = remote.site.pairing
    now = utcnow()
    pairing.clock = lambda: now
    issued = await pairing.issue()
    assert issued.expires_at == now + CODE_LIFETIME

    pairing.clock = lambda: now + CODE_LIFETIME + timedelta(seconds=1)
    with pytest.raises(PairingRefused):
        await pair("127.0.0.1", remote.site.port, issued.code, client_name="late")
    assert await pairing.clients() == []


async def test_a_code_as_typed_lower_case_and_without_its_dash_works(remote: Remote) -> None:
    issued = await remote.site.pairing.issue()
    typed = issued.code.replace("-", " ").lower()
    target, _token = await pair("127.0.0.1", remote.site.port, typed, client_name="typed")
    assert target.client_id


async def test_pairing_stops_after_ten_wrong_codes_and_says_so(
        remote: Remote, caplog: pytest.LogCaptureFixture) -> None:
    pairing = remote.site.pairing
    now = utcnow()
    pairing.clock = lambda: now
    issued = await pairing.issue()
    fingerprint = remote.site.identity.fingerprint
    for _ in range(MAX_FAILURES):
        wrong = codes.client_proof(codes.code_key(codes.new_code()), fingerprint)
        assert await stranger(remote, "POST", "/pair", body={"proof": wrong}) == (
            401, NOT_AUTHORISED)
    assert "wrong pairing codes in a row: pairing is refused" in caplog.text

    with pytest.raises(PairingRefused):  # even the right code, for a while
        await pair("127.0.0.1", remote.site.port, issued.code, client_name="x")

    pairing.clock = lambda: now + PAUSE
    issued = await pairing.issue()
    target, _token = await pair("127.0.0.1", remote.site.port, issued.code, client_name="x")
    assert target.client_id


@pytest.mark.parametrize("body", [None, {}, {"proof": "00" * 32}, {"proof": ["x"]}, "junk"])
async def test_a_pairing_request_without_a_right_proof_gets_401(remote: Remote,
                                                                body: Any) -> None:
    await remote.site.pairing.issue()
    assert await stranger(remote, "POST", "/pair", body=body) == (401, NOT_AUTHORISED)
    assert await remote.site.pairing.clients() == []


async def test_the_code_is_kept_only_as_its_key_and_the_token_only_as_its_hash(
        remote: Remote) -> None:
    issued = await remote.site.pairing.issue()
    target, token = await pair("127.0.0.1", remote.site.port, issued.code,
                               client_name="laptop")
    issued_later = await remote.site.pairing.issue()
    database = b"".join(path.read_bytes()  # the database and its write-ahead log
                        for path in remote.engine.data_dir.glob("hookline.db*"))
    for clear in (issued.code, issued.code.replace("-", ""), issued_later.code.replace(
            "-", ""), token):
        assert clear.encode() not in database
    assert target.client_id.encode() in database  # the file is the one written


async def test_the_local_channel_still_answers_its_own_token_only(remote: Remote) -> None:
    client = ControlClient(remote.engine.data_dir)
    made = (await client.call("POST", "/areas", AREA))["id"]
    assert [a.id for a in remote.engine.areas()] == [made]

    _target, token = await remote.pair()
    local_url = client._base
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{local_url}/areas", json=AREA,
                                headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 401  # a remote client's token is not the local one's
        async with session.post(f"{local_url}/pair", json={}) as resp:
            assert resp.status == 401


async def test_pairing_is_managed_only_on_the_engines_own_computer(remote: Remote) -> None:
    target, token = await remote.pair()
    async with target.session(token) as session, session.post(
            "/command/remote.pair", json={}) as resp:
        assert resp.status == 403
    client = ControlClient(remote.engine.data_dir)
    offered = (await client.call("POST", "/command/remote.pair", {}))["result"]
    assert offered["port"] == remote.site.port and offered["open"]


async def test_a_busy_remote_port_says_which_setting_to_change(
        make_engine: EngineFactory) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match="remote_port"):
            await make_engine(**{**REMOTE, "remote_port": port})


async def test_a_clients_name_cannot_forge_log_lines(remote: Remote) -> None:
    await remote.pair("laptop\nERROR something else")
    [client] = await remote.site.pairing.clients()
    assert client.name == "laptop ERROR something else"


async def test_the_desktops_calls_and_event_stream_answer_a_paired_client_only(
        remote: Remote) -> None:
    target, token = await remote.pair()
    async with target.session(token) as session:
        async with session.post("/rpc/snapshot", json={}) as resp:
            assert resp.status == 200
            assert "areas" in (await resp.json())["result"]
        async with session.ws_connect("/rpc/events") as stream:
            assert not stream.closed

    assert await stranger(remote, "POST", "/rpc/snapshot", body={}) == (401, NOT_AUTHORISED)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(remote.url + "/rpc/events", ssl=unverified())
    assert refused.value.status == 401


async def test_a_token_unused_for_ninety_days_has_expired(remote: Remote) -> None:
    pairing = remote.site.pairing
    target, token = await remote.pair()
    now = utcnow()
    pairing.clock = lambda: now + IDLE_EXPIRY - timedelta(minutes=1)
    async with target.session(token) as session:
        async with session.get("/remote/hello") as resp:
            assert resp.status == 200  # used: it lasts another 90 days from now

        pairing.clock = lambda: now + 2 * IDLE_EXPIRY
        async with session.get("/remote/hello") as resp:
            assert (resp.status, await resp.json()) == (401, NOT_AUTHORISED)
    [client] = await pairing.clients()
    assert client.expired


async def test_a_paired_computer_cannot_widen_what_the_engine_may_do(
        remote: Remote, data_dir: Path) -> None:
    """Shell commands, internal addresses, the database and the remote site itself are
    changed on the engine's own computer; other settings may be changed from afar."""
    target, token = await remote.pair()
    saved = data_dir / "settings.json"
    before = saved.read_text() if saved.exists() else None
    wider = dataclasses.replace(remote.engine.settings, allow_shell=True, remote_port=1)
    async with target.session(token) as session:
        async with session.post("/rpc/save_settings",
                                json={"settings": rpc.encode(wider)}) as resp:
            assert resp.status == 409
            error = (await resp.json())["error"]
        assert "“Run shell commands”" in error and "Nothing was saved" in error
        assert not remote.engine.settings.allow_shell
        assert (saved.read_text() if saved.exists() else None) == before
        calmer = dataclasses.replace(remote.engine.settings, pause_after_failures=9)
        async with session.post("/rpc/save_settings",
                                json={"settings": rpc.encode(calmer)}) as resp:
            assert resp.status == 200
    assert remote.engine.settings.pause_after_failures == 9
    # on its own computer (the local channel, as the CLI and its own window use) it may
    info = json.loads((data_dir / "control.json").read_text())
    shell_on = dataclasses.replace(remote.engine.settings, allow_shell=True)
    async with aiohttp.ClientSession(
            f"http://127.0.0.1:{info['port']}",
            headers={"Authorization": f"Bearer {info['token']}"}) as session, \
            session.post("/rpc/save_settings",
                         json={"settings": rpc.encode(shell_on)}) as resp:
        assert resp.status == 200
    assert remote.engine.settings.allow_shell
