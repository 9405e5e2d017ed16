"""A standby engine keeps a live copy of the active engine's secrets (engine/remote/peer.py).

Each engine has a secret store of its own (as each machine has its own keyring), so a
copy can only come through the paired TLS channel.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from engine.auth.accounts import client_secret_ref, token_ref
from engine.remote import peer
from engine.remote.client import RemoteTarget, pair, pinned
from engine.remote.errors import PairingRefused
from engine.remote.pairing import ENGINE
from engine.secrets import MemorySecretStore
from engine.settings import Settings, save_settings
from engine.standby import ACTIVE
from engine.storage.db import PASSWORD_REF
from tests.engine import account_probe
from tests.engine.conftest import FAST, fast, stored_bytes
from tests.engine.oauth_provider import Provider, follow
from tests.engine.remote.conftest import REMOTE
from tests.engine.remote.test_cli import hookline
from tests.engine.remote.test_peer_cli import JOIN
from tests.engine.test_accounts import catalog_for_tests
from tests.engine.test_standby import TAKEOVER, role, standing_by, stop_all

Make = Callable[..., Engine]


async def until(check: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``check()`` holds (AssertionError after ``timeout``)."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, "the condition never held"
        await asyncio.sleep(0.01)
    return time.monotonic() - began


@pytest.fixture
async def provider(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Provider]:
    """The local OAuth provider, rotating refresh tokens and asking for the app's secret."""
    server = Provider(client_secret="app-secret-Jq8vLm2")
    await server.start()
    monkeypatch.setattr(account_probe.service, "oauth", server.spec())
    yield server
    await server.aclose()


@pytest.fixture
async def make(postgres_url: str, tmp_path: Path) -> AsyncIterator[Make]:
    """Engines on one PostgreSQL database, each with its own folder and secret store."""
    made: list[Engine] = []

    def new(name: str, secrets: MemorySecretStore | None = None, **more: Any) -> Engine:
        settings = Settings.from_mapping({**FAST, **REMOTE, "database_url": postgres_url,
                                          **more})
        save_settings(tmp_path / name, settings)
        engine = Engine(tmp_path / name, settings=settings, registry=catalog_for_tests(),
                        secrets=secrets or MemorySecretStore())
        made.append(engine)
        return engine

    yield new
    await stop_all(made)


async def test_a_standby_keeps_a_live_copy_and_acts_as_the_account_after_taking_over(
        make: Make, provider: Provider, postgres_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first = make("a")
    await first.start()
    await first.accounts.set_client("acme", provider.client_id, provider.client_secret)
    account = await first.accounts.connect("acme", browser=follow(), timeout=10)
    assert first.remote is not None
    second = make("b")
    code = (await first.remote.pairing.issue(ENGINE)).code
    joined = await peer.join("127.0.0.1", first.remote.port, code, secrets=second.secrets,
                             data_dir=second.data_dir, name="standby b")
    starting = await standing_by(second)

    ref, app_ref = token_ref(account.id), client_secret_ref("acme")
    copied = await until(lambda: second.secrets.get(ref) == first.secrets.get(ref)
                         and second.secrets.get(app_ref) == provider.client_secret)

    # a refresh on the active engine rotates the refresh token: the copy follows
    before = first.secrets.get(ref)
    provider.expire_access_tokens()
    session = await first.accounts.session(account.id)
    assert (await session.get(f"{provider.base}/api/thing")).json()["thing"] == "ok"
    rotated = first.secrets.get(ref)
    assert rotated != before and provider.refreshes() == 1
    followed = await until(lambda: second.secrets.get(ref) == rotated)
    print(f"\nfirst copy after {copied:.2f} s standing by; a rotated token reached the "
          f"standby {followed * 1000:.0f} ms after the active engine saved it")

    active = role(second, ACTIVE)
    await first.aclose()
    await active
    await asyncio.wait_for(starting, TAKEOVER)
    # the provider took the last refresh token: only the copied one can renew
    provider.expire_access_tokens()
    session = await second.accounts.session(account.id)
    answer = (await session.get(f"{provider.base}/api/thing")).json()
    assert answer == {"thing": "ok", "login": "marta"}
    assert provider.refreshes() == 2
    assert (await second.accounts.find(account.id)).status == "ok"

    # no value in the log, the database or the standby's files
    token = second.secrets.get(peer.token_ref(joined.client_id))
    assert token
    kept = "".join(p.read_text() for p in second.data_dir.glob("peer*.json"))
    written = caplog.text + stored_bytes(second.data_dir, postgres_url).decode() + kept
    for value in (*provider.issued, str(provider.client_secret), token):
        assert value not in written
    assert "copied the active engine's secrets" in caplog.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_each_machine_joins_the_other_and_the_copy_follows_whichever_is_active(
        make: Make, provider: Provider, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`hookline pair --standby` on each machine, `hookline standby join` on the other
    (the standby's remote site is up for pairing): after a takeover the engine that
    was active stands by and copies from the new active one."""
    ports = {"a": free_port(), "b": free_port()}
    stores = {"a": MemorySecretStore(), "b": MemorySecretStore()}
    first = make("a", stores["a"], remote_port=ports["a"])
    await first.start()
    await first.accounts.set_client("acme", provider.client_id, provider.client_secret)
    account = await first.accounts.connect("acme", browser=follow(), timeout=10)
    second = make("b", stores["b"], remote_port=ports["b"])
    starting = await standing_by(second)
    for here, there in (("a", "b"), ("b", "a")):  # the code through the running engine
        status, out = await hookline(capsys, "--data-dir", str(tmp_path / here), "pair",
                                     "--standby")
        found = JOIN.search(out)
        assert status == 0 and found, out
        await peer.join("127.0.0.1", ports[here], found.group(2), secrets=stores[there],
                        data_dir=tmp_path / there, name=f"standby {there}")
    ref = token_ref(account.id)
    await until(lambda: stores["b"].get(ref) == stores["a"].get(ref))

    active = role(second, ACTIVE)
    await first.aclose()
    await active
    await asyncio.wait_for(starting, TAKEOVER)
    again = make("a", stores["a"], remote_port=ports["a"])  # `hookline serve` restarted
    await standing_by(again)
    before = stores["b"].get(ref)
    provider.expire_access_tokens()
    session = await second.accounts.session(account.id)
    assert (await session.get(f"{provider.base}/api/thing")).json()["thing"] == "ok"
    rotated = stores["b"].get(ref)
    assert rotated != before and provider.refreshes() == 1
    waited = await until(lambda: stores["a"].get(ref) == rotated)
    print(f"\nthe new active engine's rotated token reached the old one, standing by now, "
          f"{waited * 1000:.0f} ms after it was saved")


async def test_a_standby_whose_remote_port_is_taken_stands_by_without_it(
        make: Make, caplog: pytest.LogCaptureFixture) -> None:
    """Two engines on one machine: the active one has the port; the standby goes on."""
    port = free_port()
    first = make("a", remote_port=port)
    await first.start()
    second = make("b", remote_port=port)
    await standing_by(second)
    assert second.remote is None
    assert "standing by without the remote control channel" in caplog.text


@pytest.fixture
async def active(tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine with its remote site on and a store of its own (SQLite is enough here)."""
    engine = Engine(tmp_path / "a", settings=fast("", **REMOTE),
                    registry=catalog_for_tests(), secrets=MemorySecretStore())
    await engine.start()
    yield engine
    await engine.aclose()


async def secrets_route(target: RemoteTarget, token: str, after: str = ""
                        ) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=pinned(target.fingerprint))) as session, session.get(
            target.base_url / peer.SECRETS_PATH.lstrip("/"), params={"after": after},
            headers={"Authorization": f"Bearer {token}"}) as resp:
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, dict(resp.headers), body


async def test_only_a_standby_engine_reads_the_secrets_and_only_what_is_shared(
        active: Engine) -> None:
    assert active.remote is not None
    port = active.remote.port
    for ref, value in ((client_secret_ref("acme"), "app-secret"),
                       ("settings/events_mqtt/password", "mqtt-pw"),
                       (PASSWORD_REF, "db-pw"), ("remote/abc/token", "remote-token")):
        active.secrets.set(ref, value)
    await active.accounts.set_client("acme", "client-id", "app-secret")
    window, window_token = await pair(
        "127.0.0.1", port, (await active.remote.pairing.issue()).code, client_name="laptop")
    standby, standby_token = await pair(
        "127.0.0.1", port, (await active.remote.pairing.issue(ENGINE)).code,
        client_name="b", kind=ENGINE)

    status, _headers, body = await secrets_route(window, window_token)
    assert status == 403 and "paired as a window" in body["error"]
    assert (await secrets_route(window, ""))[0] == 401
    assert (await secrets_route(window, "not-a-token"))[0] == 401
    async with standby.session(standby_token) as session, session.get("/rpc/snapshot") as resp:
        assert resp.status == 403  # a standby's pairing copies secrets and nothing else

    status, headers, body = await secrets_route(standby, standby_token)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert body["secrets"] == {client_secret_ref("acme"): "app-secret",
                               "settings/events_mqtt/password": "mqtt-pw"}

    # a long poll: answered when a secret changes, with the new version
    waiting = asyncio.ensure_future(secrets_route(standby, standby_token, body["version"]))
    await asyncio.sleep(0)
    began = time.monotonic()
    await asyncio.to_thread(active.secrets.set, client_secret_ref("acme"), "rotated")
    status, _headers, changed = await asyncio.wait_for(waiting, 10)
    print(f"\na long poll answered {(time.monotonic() - began) * 1000:.0f} ms after a set")
    assert status == 200 and changed["version"] != body["version"]
    assert changed["secrets"][client_secret_ref("acme")] == "rotated"


async def test_a_code_pairs_only_its_own_kind(active: Engine) -> None:
    assert active.remote is not None
    port = active.remote.port
    code = (await active.remote.pairing.issue(ENGINE)).code
    with pytest.raises(PairingRefused, match="pairs a standby engine"):
        await pair("127.0.0.1", port, code, client_name="laptop")
    window_code = (await active.remote.pairing.issue()).code
    with pytest.raises(PairingRefused, match="not a standby engine"):
        await peer.join("127.0.0.1", port, window_code, secrets=MemorySecretStore(),
                        data_dir=active.data_dir.parent / "b", name="b")
    # neither was used up: each still pairs its own kind
    await pair("127.0.0.1", port, code, client_name="b", kind=ENGINE)
    await pair("127.0.0.1", port, window_code, client_name="laptop")
    kinds = sorted((c.name, c.kind) for c in await active.remote.pairing.clients())
    assert kinds == [("b", "engine"), ("laptop", "window")]


async def test_the_standby_deletes_only_copies_it_made_of_secrets_the_active_one_let_go(
        active: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert active.remote is not None
    app_ref, mqtt_ref = client_secret_ref("acme"), "settings/events_mqtt/password"
    await active.accounts.set_client("acme", "client-id", "app-secret")
    active.secrets.set(mqtt_ref, "mqtt-pw")
    mine = MemorySecretStore()
    mine.set("area/elsewhere/trigger/secret", "typed-here")  # entered on the standby
    code = (await active.remote.pairing.issue(ENGINE)).code
    await peer.join("127.0.0.1", active.remote.port, code, secrets=mine,
                    data_dir=tmp_path / "b", name="b")
    puller = peer.Puller(mine, tmp_path / "b").start()
    try:
        await until(lambda: mine.get(app_ref) == "app-secret"
                    and mine.get(mqtt_ref) == "mqtt-pw")
        # the active engine's keyring lost the app's secret (its database still names the
        # app: the standby's copy may be the only one left), and the user cleared the
        # broker's password there
        active.secrets.delete(app_ref)
        active.secrets.delete(mqtt_ref)
        # the copy's record is saved after the secret goes: wait for both
        await until(lambda: mine.get(mqtt_ref) is None
                    and mqtt_ref not in peer.SyncState.load(tmp_path / "b").synced)
        assert mine.get(app_ref) == "app-secret"
        assert mine.get("area/elsewhere/trigger/secret") == "typed-here"
        state = peer.SyncState.load(tmp_path / "b")
        assert state.synced == [app_ref] and state.last_sync_at and state.error is None
    finally:
        await puller.aclose()
    assert "app-secret" not in caplog.text and "mqtt-pw" not in caplog.text


class KilledWhileWriting(BaseException):
    """The process ending in the middle of a copy (not an error anything catches)."""


async def test_a_copy_killed_half_written_is_still_let_go_when_the_active_one_drops_it(
        tmp_path: Path) -> None:
    target = RemoteTarget("127.0.0.1", 1, "00", "peer-1", "a")
    body = {"version": "1", "secrets": {"area/x/trigger/secret": "one",
                                        "area/y/trigger/secret": "two"}}

    class DiesOnSecondWrite(MemorySecretStore):
        writes = 0

        def set(self, ref: str, value: str) -> None:
            self.writes += 1
            if self.writes == 2:
                raise KilledWhileWriting
            super().set(ref, value)

    mine = DiesOnSecondWrite()
    with pytest.raises(KilledWhileWriting):
        peer.Puller(mine, tmp_path)._apply(target, body)
    written = [r for r in body["secrets"] if mine.get(r) is not None]
    assert len(written) == 1  # one copy reached the store, the record was not finished
    # started again: the active engine has since let both secrets go
    restarted = peer.Puller(mine, tmp_path)
    restarted._apply(target, {"version": "2", "secrets": {}})
    assert [r for r in body["secrets"] if mine.get(r) is not None] == []
    assert peer.SyncState.load(tmp_path).synced == []


async def test_failures_are_said_once_per_kind_and_recovery_once(
        active: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert active.remote is not None
    mine = MemorySecretStore()
    code = (await active.remote.pairing.issue(ENGINE)).code
    target = await peer.join("127.0.0.1", active.remote.port, code, secrets=mine,
                             data_dir=tmp_path / "b", name="b")
    mine.delete(peer.token_ref(target.client_id))  # the keyring lost it
    puller = peer.Puller(mine, tmp_path / "b").start()
    try:
        await until(lambda: "lacks its token" in caplog.text)
        await until(lambda: (peer.SyncState.load(tmp_path / "b").error or "").startswith(
            "this computer's keyring lacks"))
        assert caplog.text.count("cannot copy the active engine's secrets") == 1
    finally:
        await puller.aclose()
