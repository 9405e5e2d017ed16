"""Two engines on one PostgreSQL database: one active, one standing by (engine/standby.py).

In one process: each engine has its own data folder (as on two machines) and the same
database; the standby's start returns once it has taken over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import NOTIFICATION, RUN_FINISHED
from engine.catalog.service import Item
from engine.cli import cmd_doctor
from engine.control import ControlClient
from engine.errors import HooklineError
from engine.secrets import SecretStore
from engine.settings import Settings, save_settings
from engine.standby import ACTIVE, ENGINE_ROLE, FENCED, STANDBY, LeaseLost
from engine.storage.schema import events, runs
from tests.engine import probe
from tests.engine.conftest import FAST, bury, freeze, next_message, registry
from tests.pg import PostgresServer

HOOK = {"name": "Hook to record", "trigger": {"service": "probe", "trigger": "hook"},
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "{{ trigger.n }}"}}]}
POLL = {"name": "Items to record", "trigger": {"service": "probe", "trigger": "items"},
        "interval": 0.05, "reactions": [{"service": "probe", "reaction": "record",
                                         "params": {"text": "{{ trigger.title }}"}}]}
#: the issue's promise: the standby takes over within 10 s of the active one's end
TAKEOVER = 10.0

Make = Callable[..., Engine]


@pytest.fixture
async def make(postgres_url: str, tmp_path: Path) -> AsyncIterator[Make]:
    """Engines on the test's database, each with a data folder of its own."""
    made: list[Engine] = []

    def new(name: str, **kwargs: Any) -> Engine:
        settings = Settings.from_mapping({**FAST, "database_url": postgres_url})
        save_settings(tmp_path / name, settings)  # for the CLI on that folder
        engine = Engine(tmp_path / name, settings=settings, registry=registry(), **kwargs)
        made.append(engine)
        return engine

    yield new
    await stop_all(made)


async def stop_all(made: list[Engine]) -> None:
    """Stop ``made``: a standby's start() ends (LeaseLost), and every start still
    standing by is waited for."""
    for engine in made:
        await engine.aclose()
    for task in STARTS:
        with contextlib.suppress(LeaseLost):
            await asyncio.wait_for(task, TAKEOVER)
    STARTS.clear()


#: the starts of engines standing by (a test need not wait for them)
STARTS: list[asyncio.Future[None]] = []


def role(engine: Engine, wanted: str) -> asyncio.Future[Any]:
    """The engine's next ``engine.role`` message saying ``wanted`` (listen first)."""
    return asyncio.ensure_future(next_message(engine, ENGINE_ROLE,
                                              lambda m: m.data["role"] == wanted, TAKEOVER))


async def standing_by(engine: Engine) -> asyncio.Future[None]:
    """Start ``engine`` while another is active; returns once it says it stands by."""
    said = role(engine, STANDBY)
    starting = asyncio.ensure_future(engine.start())
    STARTS.append(starting)
    await said
    return starting


async def post(url: str, n: int) -> tuple[int, dict[str, str], dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
            url, json={"n": n, "title": f"t{n}"}, headers={"X-Delivery": f"d-{n}"}) as resp:
        return resp.status, dict(resp.headers), await resp.json()


def at(url: str, engine: Engine) -> str:
    """The same webhook address on ``engine``'s listener."""
    assert engine.listener is not None
    path = url.split("/hooks/", 1)[1]
    return f"http://127.0.0.1:{engine.listener.port}/hooks/{path}"


async def test_the_standby_answers_503_then_takes_over_when_the_active_one_stops(
        make: Make) -> None:
    first = make("a")
    await first.start()
    area = await first.create_area(AreaSpec.from_dict(HOOK))
    url = await first.webhook_url(area.id)
    assert url is not None and first.role == ACTIVE
    second = make("b")
    starting = await standing_by(second)

    status, headers, body = await post(at(url, second), 1)
    assert (status, headers["Retry-After"]) == (503, "2")
    assert "standby: another Hookline engine is active" in body["error"]
    control = ControlClient(second.data_dir)
    assert (await control.call("GET", "/role"))["role"] == STANDBY
    with pytest.raises(HooklineError, match="standby"):  # the areas are the active one's
        await control.call("GET", f"/areas/{area.id}/webhook")
    for n in (1, 2):  # the sender tries the other listener: the active one takes it
        assert (await post(url, n))[0] == 202
    await first.wait_idle()

    active = role(second, ACTIVE)
    began = time.monotonic()
    await first.aclose()
    said = await active
    took = time.monotonic() - began
    await asyncio.wait_for(starting, TAKEOVER)
    print(f"\ntakeover after a clean stop: {took:.2f} s "
          f"(standby says {said.data['took_over_after']} s standing by)")
    assert took < TAKEOVER

    assert (await post(at(url, second), 2))[0] == 202  # a retry: not run again
    assert (await post(at(url, second), 3))[0] == 202
    await second.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["1", "2", "3"]
    async with second.db.connect() as conn:
        made = (await conn.execute(select(events.c.id, events.c.dedup_key)
                                   .order_by(events.c.id))).all()
        finished = (await conn.execute(select(runs.c.event_id, runs.c.status))).all()
    assert [key for _id, key in made] == ["d-1", "d-2", "d-3"]  # new ids after A's
    assert sorted(finished) == [(event_id, "succeeded") for event_id, _key in made]


async def test_a_run_recorded_only_in_the_ledger_is_resumed_by_another_machines_engine(
        make: Make) -> None:
    """Killed as its reaction acts, before the run's row reached the runs table: the
    run's start is in the ledger, which on PostgreSQL is in the database, so the engine
    that takes over (another data folder: another machine) resumes it, marked."""
    first = make("a")
    await first.start()
    area = await first.create_area(AreaSpec.from_dict(HOOK))
    url = await first.webhook_url(area.id)
    assert url is not None
    killed = asyncio.Event()

    def kill_as_it_acts(stage: str) -> None:
        if stage == "acting":
            freeze(first)  # right here, inside the reaction
            killed.set()

    probe.controls.on_record = kill_as_it_acts
    assert (await post(url, 1))[0] == 202
    await killed.wait()
    await bury(first)
    probe.controls.on_record = None
    second = make("b")
    ran = next_message(second, RUN_FINISHED)
    await second.start()
    await ran
    await second.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["1"]
    recorded = await second.store.runs(area.id)
    assert sorted((r["status"], r["resumed"]) for r in recorded) == [
        ("interrupted", False), ("succeeded", True)]


async def test_poll_state_and_seen_keys_carry_over_to_the_engine_that_takes_over(
        make: Make) -> None:
    probe.controls.items = [Item(k, {"title": k}) for k in ("k2", "k1")]
    first = make("a")
    await first.start()
    await first.create_area(AreaSpec.from_dict(POLL))
    ran = next_message(first, RUN_FINISHED)
    while probe.controls.polls < 1:  # the first check primes: nothing fires
        await asyncio.sleep(0.02)
    probe.controls.items.insert(0, Item("k3", {"title": "k3"}))
    await ran
    second = make("b")
    starting = await standing_by(second)
    await first.aclose()
    probe.controls.items.insert(0, Item("k4", {"title": "k4"}))  # came meanwhile
    ran = next_message(second, RUN_FINISHED)
    await asyncio.wait_for(starting, TAKEOVER)
    await ran
    polls = probe.controls.polls
    while probe.controls.polls < polls + 3:  # more checks: nothing seen fires again
        await asyncio.sleep(0.02)
    await second.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["k3", "k4"]


async def test_an_engine_that_loses_its_lease_stops_firing_and_the_standby_takes_over(
        make: Make, postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    first = make("a")
    await first.start()
    area = await first.create_area(AreaSpec.from_dict(HOOK))
    url = await first.webhook_url(area.id)
    assert url is not None and first.lease is not None and first.lease.conn is not None
    second = make("b")
    starting = await standing_by(second)
    fenced, active = role(first, FENCED), role(second, ACTIVE)
    # the server ends the lease's session, as it does for a machine gone silent
    postgres_server.admin(f"SELECT pg_terminate_backend({first.lease.conn.info.backend_pid})")
    began = time.monotonic()
    await fenced
    await active
    print(f"\nfenced and taken over {time.monotonic() - began:.2f} s after the lease's "
          "session ended")
    await asyncio.wait_for(starting, TAKEOVER)
    assert first.stepped_down.is_set()
    status, _headers, body = await post(url, 1)
    assert status == 503 and "lost contact with its database" in body["error"]
    assert (await post(at(url, second), 1))[0] == 202
    await second.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["1"]
    # Its database may not answer at all (a partition): its stop does not wait for it,
    # so `hookline serve` can stand by again.
    stuck = threading.Event()
    first.writer.submit([], after=lambda _conn: stuck.wait(120))
    try:
        await asyncio.wait_for(first.aclose(), 60)
    finally:
        stuck.set()
    assert "the writer left behind" in caplog.text


async def test_the_engine_taking_over_names_the_secrets_its_keyring_lacks(
        make: Make) -> None:
    first = make("a")
    await first.start()
    await first.create_area(AreaSpec.from_dict({
        "name": "From GitHub", "trigger": {"service": "webhook", "trigger": "github",
                                           "params": {"secret": "s3cret"}},
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "{{ trigger.event }}"}}]}))
    await first.aclose()
    # another machine: its own OS keyring, without this one's secrets
    second = make("b", secrets=SecretStore("hookline-test-another-machine"))
    said = next_message(second, NOTIFICATION,
                        lambda m: m.data["title"] == "Secrets missing on this computer")
    await second.start()
    body = (await said).data["body"]
    assert "“From GitHub” its trigger: Webhook secret" in body
    assert "s3cret" not in body


async def test_doctor_says_each_engines_role_and_that_one_holds_the_lease(
        make: Make, capsys: pytest.CaptureFixture[str]) -> None:
    first = make("a")
    await first.start()
    second = make("b")
    await standing_by(second)
    for engine, said in ((first, ACTIVE), (second, STANDBY)):
        capsys.readouterr()
        await cmd_doctor(argparse.Namespace(), engine.data_dir)
        out = capsys.readouterr().out
        assert f"running (pid {os.getpid()}, {said})" in out
        assert "an engine is active on this database (server pid" in out
