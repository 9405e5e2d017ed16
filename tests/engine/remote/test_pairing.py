"""Paired clients live in the database: on PostgreSQL too, and an engine that takes
over the same database (a standby) knows them; the certificate is per data folder."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from engine.app import Engine
from engine.remote.client import RemoteTarget
from engine.remote.tls import FOLDER
from engine.settings import Settings
from tests.engine.conftest import FAST, registry
from tests.engine.remote.conftest import AREA, REMOTE, Remote

Start = Callable[[Path], Awaitable[Remote]]


@pytest.fixture
async def start_on_postgres(postgres_url: str) -> AsyncIterator[Start]:
    started: list[Engine] = []

    async def start(folder: Path) -> Remote:
        engine = Engine(folder, registry=registry(), settings=Settings.from_mapping(
            {**FAST, **REMOTE, "database_url": postgres_url}))
        await engine.start()
        started.append(engine)
        return Remote(engine)

    yield start
    for engine in started:
        if engine.started:
            await engine.aclose()


async def made_area(target: RemoteTarget, token: str) -> int:
    async with target.session(token) as session, session.post("/areas", json=AREA) as resp:
        return resp.status


async def test_a_client_paired_with_one_engine_works_with_the_next_on_the_same_database(
        start_on_postgres: Start, tmp_path: Path) -> None:
    active = await start_on_postgres(tmp_path / "active")
    target, token = await active.pair("laptop")
    assert await made_area(target, token) == 200
    await active.engine.aclose()

    # the standby has a certificate of its own, which the client does not trust ...
    alone = await start_on_postgres(tmp_path / "alone")
    moved = RemoteTarget(target.host, alone.site.port, target.fingerprint, target.client_id,
                         target.name)
    with pytest.raises(aiohttp.ServerFingerprintMismatch):
        await made_area(moved, token)
    await alone.engine.aclose()

    # ... unless it was given the active one's certificate folder: then the same
    # target and token work, the client being known from the shared database
    shutil.copytree(tmp_path / "active" / FOLDER, tmp_path / "standby" / FOLDER)
    standby = await start_on_postgres(tmp_path / "standby")
    moved = RemoteTarget(target.host, standby.site.port, target.fingerprint,
                         target.client_id, target.name)
    assert await made_area(moved, token) == 200
    assert [c.name for c in await standby.site.pairing.clients()] == ["laptop"]
