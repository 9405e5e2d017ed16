"""Where each engine of a database answers (engine/remote/sites.py), and a paired window
finding the active one after a takeover (engine/remote/client.py: active_elsewhere)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.remote import sites
from engine.remote.client import (
    RemoteTarget,
    active_elsewhere,
    engines,
    pair,
    pinned,
    role_at,
)
from engine.remote.pairing import ENGINE
from engine.remote.site import RemoteSite
from engine.secrets import MemorySecretStore
from engine.settings import Settings, save_settings
from engine.standby import ACTIVE, STANDBY
from engine.storage.schema import engine_sites, utcnow
from tests.engine.conftest import FAST, EngineFactory
from tests.engine.remote.conftest import AREA, REMOTE, Remote
from tests.engine.remote.test_cli import hookline
from tests.engine.remote.test_peer import free_port
from tests.engine.test_accounts import catalog_for_tests
from tests.engine.test_standby import role, standing_by, stop_all

Make = Callable[..., Engine]


@contextlib.asynccontextmanager
async def engines_on(url: str, folder: Path) -> AsyncIterator[Make]:
    """Engines on the database ``url``, each with a folder in ``folder`` and a remote
    port of its own (stopped at the end, standbys included)."""
    made: list[Engine] = []

    def new(name: str) -> Engine:
        settings = Settings.from_mapping({**FAST, **REMOTE, "remote_port": free_port(),
                                          "database_url": url})
        save_settings(folder / name, settings)
        engine = Engine(folder / name, settings=settings, registry=catalog_for_tests(),
                        secrets=MemorySecretStore())
        made.append(engine)
        return engine

    try:
        yield new
    finally:
        await stop_all(made)


@pytest.fixture
async def make(postgres_url: str, tmp_path: Path) -> AsyncIterator[Make]:
    async with engines_on(postgres_url, tmp_path) as new:
        yield new


def site_of(engine: Engine) -> RemoteSite:
    assert engine.remote is not None
    return engine.remote


async def test_a_window_learns_the_other_engine_and_follows_it_once_it_took_over(
        make: Make) -> None:
    first, second = make("a"), make("b")
    await first.start()
    await standing_by(second)
    issued = await site_of(first).pairing.issue()
    target, token = await pair("127.0.0.1", site_of(first).port, issued.code,
                               client_name="laptop")

    found = await engines(target, token)
    assert {s.fingerprint for s in found} == {site_of(first).identity.fingerprint,
                                              site_of(second).identity.fingerprint}
    known = target.knowing(found)
    [other] = known.also
    assert (other.fingerprint, other.port) == (site_of(second).identity.fingerprint,
                                               site_of(second).port)
    assert other.addresses == ("127.0.0.1",)
    assert await role_at(known, token) == ACTIVE
    assert await role_at(known.moved_to(other, "127.0.0.1"), token) == STANDBY
    assert await active_elsewhere(known, token) is None  # the one it has is active

    took_over = role(second, ACTIVE)
    await first.aclose()
    await took_over
    moved = await active_elsewhere(known, token)
    assert moved is not None
    assert (moved.port, moved.fingerprint, moved.client_id) == (
        site_of(second).port, site_of(second).identity.fingerprint, target.client_id)
    assert [s.fingerprint for s in moved.also] == [target.fingerprint]  # the one left
    # the same pairing works there: the engines share it
    async with moved.session(token) as session, session.post("/rpc/snapshot",
                                                              json={}) as answer:
        assert answer.status == 200


async def test_only_a_paired_window_reads_where_the_engines_are(remote: Remote) -> None:
    target, token = await remote.pair()
    [own] = await engines(target, token)
    assert own == remote.site.site() and own.fingerprint == target.fingerprint
    assert target.knowing([own]).also == ()  # the engine itself is not an "other"

    url = f"{remote.url}{sites.ENGINES}"
    pin = pinned(target.fingerprint)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pin)) as session:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            async with session.get(url, headers=headers) as answer:
                assert answer.status == 401
        code = (await remote.site.pairing.issue(ENGINE)).code
        _standby, engine_token = await pair("127.0.0.1", remote.site.port, code,
                                            client_name="standby", kind=ENGINE)
        async with session.get(url, headers={"Authorization": f"Bearer {engine_token}"}
                               ) as answer:
            assert answer.status == 403  # a standby engine's pairing copies secrets only


async def test_an_engine_keeps_one_row_however_often_it_is_set_up_and_stale_ones_go(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    db = engine.db
    now = utcnow()
    old = sites.Site("aa" * 32, "hookline@pi", ("pi", "192.168.1.9"), 8789)
    await sites.publish(db, "install-1", old, now=now - timedelta(days=2))
    renewed = sites.Site("bb" * 32, "hookline@pi", ("pi", "192.168.1.20"), 8789)
    await sites.publish(db, "install-1", renewed, now=now)  # a new certificate
    # another computer with the same name and port (two Raspberry Pis): both kept
    twin = sites.Site("cc" * 32, "hookline@pi", ("pi", "192.168.1.30"), 8789)
    await sites.publish(db, "install-2", twin, now=now - timedelta(days=89))
    gone = sites.Site("dd" * 32, "hookline@nas", ("nas",), 8789)
    await sites.publish(db, "install-3", gone, now=now - timedelta(days=91))
    async with db.begin() as conn:  # a row Hookline did not write is not offered
        await conn.execute(engine_sites.insert().values(
            installation="install-4", fingerprint="ee" * 32, name="x", addresses="{",
            port=1, seen_at=now - timedelta(days=1)))
    assert {s.fingerprint for s in await sites.known(db)} == {
        renewed.fingerprint, twin.fingerprint, gone.fingerprint}

    await sites.publish(db, "install-1", renewed, now=now)  # a start drops the stale
    assert [s.fingerprint for s in await sites.known(db)] == [renewed.fingerprint,
                                                              twin.fingerprint]


def test_a_saved_target_keeps_the_other_engines_and_reads_one_saved_before_them(
        tmp_path: Path) -> None:
    other = sites.Site("ab" * 32, "hookline@nas", ("nas", "10.0.0.2"), 8790)
    target = RemoteTarget("pi", 8789, "cd" * 32, "client-1", "hookline@pi", (other,))
    store = MemorySecretStore()
    target.save(store, "token", data_dir=tmp_path)
    assert RemoteTarget.load(tmp_path) == target
    raw: dict[str, Any] = json.loads((tmp_path / "remote.json").read_text())
    del raw["also"]  # as an app from before this kept it
    (tmp_path / "remote.json").write_text(json.dumps(raw))
    assert RemoteTarget.load(tmp_path) == RemoteTarget("pi", 8789, "cd" * 32, "client-1",
                                                       "hookline@pi")
    moved = target.moved_to(other, "10.0.0.2")
    moved.save(store, data_dir=tmp_path)
    target.forget(store, data_dir=tmp_path)  # the same pairing, followed elsewhere
    assert RemoteTarget.load(tmp_path) is None and store.get("remote/client-1/token") is None


async def test_hookline_remote_follows_the_engine_that_took_over(
        make: Make, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = make("a"), make("b")
    await first.start()
    await standing_by(second)
    laptop = str(tmp_path / "laptop")
    code = (await site_of(first).pairing.issue()).code
    status, out = await hookline(capsys, "--data-dir", laptop, "remote", "connect",
                                 f"127.0.0.1:{site_of(first).port}", code)
    assert status == 0, out
    try:
        status, out = await hookline(capsys, "--data-dir", laptop, "remote", "status")
        assert status == 0 and "Moved" not in out, out
        assert (f"Also on its database (followed if it takes over): {site_of(second).site().name}"
                f" at 127.0.0.1:{site_of(second).port}: it stands by.") in out
        saved = RemoteTarget.load(tmp_path / "laptop")
        assert saved is not None and [s.port for s in saved.also] == [site_of(second).port]

        took_over = role(second, ACTIVE)
        await first.aclose()
        await took_over
        await second.create_area(AreaSpec.from_dict(AREA))
        status, out = await hookline(capsys, "--data-dir", laptop, "remote", "areas")
        assert status == 0, out
        assert re.search(rf"^Moved: .* at 127\.0\.0\.1:{site_of(first).port} does not "
                         rf"answer; .* at 127\.0\.0\.1:{site_of(second).port} is the active "
                         "engine of the same database now, and this computer follows it\\.$",
                         out, re.M), out
        assert AREA["name"] in out
        moved = RemoteTarget.load(tmp_path / "laptop")
        assert moved is not None and moved.port == site_of(second).port
        status, out = await hookline(capsys, "--data-dir", laptop, "remote", "status")
        assert status == 0 and "Moved" not in out and "it answers" in out, out
        assert f"127.0.0.1:{site_of(first).port}: no answer." in out
    finally:
        await hookline(capsys, "--data-dir", laptop, "remote", "forget")
