"""The client's side: pairing checks who answers, connections are pinned, and the
target is kept without its token in the clear."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from engine.remote import codes
from engine.remote.client import TARGET_FILE, RemoteTarget, pair, token_ref
from engine.remote.errors import NotTheEngine, PairingRefused, RemoteError
from engine.remote.tls import identity
from engine.secrets import SecretStore
from tests.engine.remote.conftest import AREA, Remote

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def impostor(tmp_path: Path) -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    """Starts a TLS server with a certificate of its own answering POST /pair with the
    given handler; gives its port."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> int:
        made = identity(tmp_path / f"impostor{len(runners)}")
        app = web.Application()
        app.router.add_post("/pair", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=made.server_context())
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_someone_in_between_who_relays_to_the_engine_is_refused_and_learns_nothing(
        remote: Remote, impostor: Callable[[Handler], Awaitable[int]]) -> None:
    relayed: list[dict[str, str]] = []

    async def relay(request: web.Request) -> web.Response:
        body = await request.json()
        relayed.append(body)
        real = remote.site.identity.fingerprint
        async with aiohttp.ClientSession() as session, session.post(
                f"{remote.url}/pair", json=body,
                ssl=aiohttp.Fingerprint(bytes.fromhex(real))) as resp:
            return web.json_response(await resp.json(), status=resp.status)

    issued = await remote.site.pairing.issue()
    port = await impostor(relay)
    with pytest.raises(PairingRefused):
        await pair("127.0.0.1", port, issued.code, client_name="laptop")

    assert issued.code not in json.dumps(relayed)  # the code itself never crossed
    assert issued.code.replace("-", "") not in json.dumps(relayed)
    assert await remote.site.pairing.clients() == []
    # the code is still good for the real engine
    target, _token = await pair("127.0.0.1", remote.site.port, issued.code,
                                client_name="laptop")
    assert target.fingerprint == remote.site.identity.fingerprint


async def test_a_server_that_accepts_any_code_cannot_prove_it_made_this_one(
        impostor: Callable[[Handler], Awaitable[int]]) -> None:
    async def accept(request: web.Request) -> web.Response:
        return web.json_response({"client_id": "x", "token": "t", "name": "hookline@evil",
                                  "proof": "00" * 32})

    port = await impostor(accept)
    with pytest.raises(NotTheEngine, match="could not prove it made this code"):
        await pair("127.0.0.1", port, codes.new_code(), client_name="laptop")


async def test_a_client_pinned_to_another_certificate_does_not_connect(
        remote: Remote) -> None:
    target, token = await remote.pair()
    other = RemoteTarget(target.host, target.port, "ab" * 32, target.client_id, target.name)

    async with other.session(token) as session:
        with pytest.raises(aiohttp.ServerFingerprintMismatch):
            await session.post("/areas", json=AREA)
    assert remote.engine.areas() == []


async def test_a_plain_tls_server_with_a_certificate_authority_is_not_needed(
        remote: Remote) -> None:
    """The pinned session checks nothing but the fingerprint (no host name, no CA):
    reached by an address the certificate does not name, it still works."""
    target, token = await remote.pair()
    by_name = RemoteTarget("localhost", target.port, target.fingerprint, target.client_id,
                           target.name)
    async with by_name.session(token) as session, session.get("/remote/hello") as resp:
        assert resp.status == 200
        assert (await resp.json())["client_id"] == target.client_id


async def test_nothing_answers_there() -> None:
    with socket.socket() as bound:  # bound, not listening: the connection is refused
        bound.bind(("127.0.0.1", 0))
        with pytest.raises(RemoteError, match="Cannot reach Hookline"):
            await pair("127.0.0.1", bound.getsockname()[1], codes.new_code(),
                       client_name="x")


async def test_a_mistyped_code_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(PairingRefused, match="is not a pairing code"):
        await pair("127.0.0.1", 1, "ABC", client_name="x")


def test_the_target_is_kept_with_its_token_in_the_keyring_only(tmp_path: Path) -> None:
    secrets = SecretStore()
    target = RemoteTarget("homeserver", 8789, "ab" * 32, "client-1", "hookline@homeserver")
    target.save(secrets, "the-token", data_dir=tmp_path)

    assert RemoteTarget.load(tmp_path) == target
    assert target.token(secrets) == "the-token"
    saved = (tmp_path / TARGET_FILE)
    assert "the-token" not in saved.read_text()
    assert saved.stat().st_mode & 0o777 == 0o600

    target.forget(secrets, data_dir=tmp_path)
    assert RemoteTarget.load(tmp_path) is None
    assert secrets.get(token_ref("client-1")) is None


def test_a_damaged_target_file_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / TARGET_FILE).write_text("{")
    with pytest.raises(RemoteError, match="Connect again"):
        RemoteTarget.load(tmp_path)


def test_the_engines_certificate_is_made_once_and_its_key_kept_private(
        tmp_path: Path) -> None:
    first = identity(tmp_path, ["192.0.2.7"])
    again = identity(tmp_path)
    assert again == first
    assert first.key.stat().st_mode & 0o777 == 0o600
    context = first.server_context()
    assert isinstance(context, ssl.SSLContext)
