"""PostgreSQL as the database: the URLs people have, the driver and the password, and
what PostgreSQL refuses that SQLite keeps (a NUL in text). The engine's own behaviour on
PostgreSQL is the rest of the suite, run on both (tests/engine/conftest.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from engine.app import Engine
from engine.areas import AreaSpec
from engine.catalog.service import Item
from engine.cli import main
from engine.errors import ConfigError, PermanentError
from engine.journal import NewEvent
from engine.secrets import SecretStore
from engine.settings import load_settings
from engine.standby import Lease, lease_holder
from engine.storage import db
from engine.storage.db import PASSWORD_REF, database_url, migrate_sync, shown_url
from engine.storage.schema import seen_keys
from tests.engine import probe
from tests.engine.conftest import EngineFactory
from tests.pg import PostgresServer

AREA = {
    "name": "Items to record",
    "trigger": {"service": "probe", "trigger": "items"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}


@pytest.mark.parametrize("given", [
    "postgresql://marta:pw@db.example:5433/hookline",  # as an administrator gives it
    "postgres://marta:pw@db.example:5433/hookline",
    "postgresql+psycopg://marta:pw@db.example:5433/hookline",
    "postgresql+asyncpg://marta:pw@db.example:5433/hookline",
    "  postgresql://marta:pw@db.example:5433/hookline\n",
])
def test_every_form_of_a_postgres_url_gets_the_one_driver(given: str, tmp_path: Path) -> None:
    assert database_url(tmp_path, given) == \
        "postgresql+psycopg://marta:pw@db.example:5433/hookline"


def test_the_default_and_other_urls(tmp_path: Path) -> None:
    assert database_url(tmp_path) == f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}"
    assert database_url(tmp_path, "sqlite:////srv/h.db") == "sqlite+aiosqlite:////srv/h.db"
    with pytest.raises(ConfigError, match="Hookline keeps its data in SQLite or PostgreSQL"):
        database_url(tmp_path, "mysql://me@db.example/hookline")
    with pytest.raises(ConfigError, match="is not a database address"):
        database_url(tmp_path, "db.example/hookline")


@pytest.fixture
def password_server(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
                    ) -> Iterator[str]:
    """A database whose owner must give a password (the session's server trusts every
    other user): the URL without the password, which is ``PASSWORD``."""
    hba = postgres_server.folder / "data" / "pg_hba.conf"
    before = hba.read_text()
    hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n{before}")
    postgres_server.admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
    postgres_server.admin(f"CREATE DATABASE {ROLE} OWNER {ROLE}")
    postgres_server.admin("SELECT pg_reload_conf()")
    monkeypatch.setattr(db, "_keyring_passwords", {})
    try:
        yield f"postgresql://{ROLE}@127.0.0.1:{postgres_server.port}/{ROLE}"
    finally:
        hba.write_text(before)
        postgres_server.admin("SELECT pg_reload_conf()")
        postgres_server.drop_database(ROLE)
        postgres_server.admin(f"DROP ROLE {ROLE}")
        SecretStore().delete(PASSWORD_REF)


ROLE = "asks_for_a_password"
PASSWORD = "pw-7c1e-9a4d"


def test_a_password_kept_in_the_keyring_is_given_when_the_server_asks(
        password_server: str, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="the database server asks for a password"):
        migrate_sync(database_url(data_dir, password_server))
    with_password = password_server.replace(f"{ROLE}@", f"{ROLE}:{PASSWORD}@")
    assert main(["settings", "set", "database_url", with_password]) == 0
    assert PASSWORD not in (data_dir / "settings.json").read_text()
    assert SecretStore().get(PASSWORD_REF) == PASSWORD
    assert load_settings(data_dir).database_url == password_server
    migrate_sync(database_url(data_dir, load_settings(data_dir).database_url))
    capsys.readouterr()
    assert main(["doctor"]) in (0, 1)
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert f"postgresql://{ROLE}@127.0.0.1" in out and PASSWORD not in out


def test_the_password_is_never_shown(tmp_path: Path) -> None:
    url = database_url(tmp_path, "postgresql://marta:s3cr3t-pw@127.0.0.1:1/hookline")
    assert shown_url(url) == "postgresql://marta:***@127.0.0.1:1/hookline"
    with pytest.raises(ConfigError) as error:  # nothing listens on port 1
        migrate_sync(url)
    assert "Cannot prepare the database at postgresql://marta:***@127.0.0.1:1/hookline" \
        in str(error.value)
    assert "s3cr3t" not in str(error.value)


def test_without_the_driver_the_message_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    url = database_url(tmp_path, "postgresql://marta@db.example/hookline")
    with pytest.raises(ConfigError, match=r"driver \(psycopg\) is not installed: pip "
                                          r"install 'hookline\[postgres\]'"):
        migrate_sync(url)


async def test_bookkeeping_commits_without_waiting_for_the_disk_events_with(
        make_engine: EngineFactory, postgres_engine_url: str) -> None:
    """SQLite's synchronous NORMAL and FULL, in PostgreSQL's words."""
    engine = await make_engine(database_url=postgres_engine_url)

    def mode(conn: object) -> str:
        return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())  # type: ignore[attr-defined]

    assert await engine.writer.write(after=mode, durable=True) == "on"
    assert await engine.writer.write(after=mode) == "off"
    assert await engine.writer.write(after=mode, durable=True) == "on"


async def test_a_nul_character_fails_no_delivery_and_no_run(engine: Engine,
                                                            database: str) -> None:
    """PostgreSQL refuses NUL in text where SQLite keeps it: on PostgreSQL a NUL in a
    key, a name or an error becomes U+FFFD, and dedup still matches the same key."""
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    key = "delivery\x00 1"
    event = NewEvent(area.id, "webhook", {"title": "a\x00b"}, dedup_key=key)
    assert len(await engine.journal.append([event])) == 1
    assert await engine.journal.append([event]) == [], "the same key is a repeat"
    await engine.run_now(area.id, {"title": "a\x00b"})
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["a\x00b"]
    [run] = await engine.store.runs(area.id)
    assert run["status"] == "succeeded" and run["trigger_payload"] == {"title": "a\x00b"}

    probe.controls.items = [Item("guid\x00 7", {"title": "seven"})]
    poller = engine.poller
    spec = engine.registry.trigger("probe", "items")
    await poller.poll(engine.area(area.id), spec, {}, 3600)  # primes
    assert await poller.poll(engine.area(area.id), spec, {}, 3600) == 0  # seen: no repeat
    async with engine.db.connect() as conn:  # spelled out, as the poller keeps keys
        assert (await conn.execute(select(seen_keys.c.key))).scalars().all() == \
            ["guid\\x00 7"]
    nul = "\ufffd" if database else "\x00"

    def broken(_text: str) -> Exception:
        return PermanentError("the far side said \x00no")

    probe.controls.fail_times, probe.controls.fail_with = 1, broken  # type: ignore[assignment]
    await engine.run_now(area.id, {"title": "t"})
    await engine.wait_idle()
    [failed] = await engine.store.runs(area.id, status="failed")
    assert f"the far side said {nul}no" in failed["error"]


async def test_an_error_naming_a_file_that_is_not_utf8_is_recorded(engine: Engine) -> None:
    """Neither driver encodes a lone surrogate (how Python reads a file name that is not
    UTF-8): the run's error keeps it as escaped bytes instead of losing the record."""
    area = await engine.create_area(AreaSpec.from_dict(AREA))

    def broken(_text: str) -> Exception:
        return PermanentError("cannot open report-\udce9t\udce9.txt")

    probe.controls.fail_times, probe.controls.fail_with = 1, broken  # type: ignore[assignment]
    await engine.run_now(area.id, {"title": "t"})
    await engine.wait_idle()
    [failed] = await engine.store.runs(area.id)
    assert failed["status"] == "failed"
    assert "cannot open report-\\xe9t\\xe9.txt" in failed["error"]
    assert not engine.journal.dirty
    probe.controls.poll_error = PermanentError("cannot list inbox-\udce9")  # a trigger's
    spec = engine.registry.trigger("probe", "items")
    await engine.poller.poll(engine.area(area.id), spec, {}, 3600)
    [check] = await engine.checks(area.id)
    assert (check["outcome"], check["error"]) == ("failed", "cannot list inbox-\\xe9")


async def test_keys_longer_than_their_column_are_kept_apart_and_fire_once(
        engine: Engine) -> None:
    """PostgreSQL enforces VARCHAR lengths, SQLite does not: a poll's key or an event's
    dedup key past its column's length is stored as its start and its digest."""
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    long_link = "https://example.org/" + "very-long-path/" * 60  # 920 characters
    probe.controls.items = [Item(long_link + "a", {"title": "a"})]
    spec = engine.registry.trigger("probe", "items")
    await engine.poller.poll(engine.area(area.id), spec, {}, 3600)  # primes
    probe.controls.items = [Item(long_link + "b", {"title": "b"}),
                            Item(long_link + "a", {"title": "a"})]
    assert await engine.poller.poll(engine.area(area.id), spec, {}, 3600) == 1
    assert await engine.poller.poll(engine.area(area.id), spec, {}, 3600) == 0
    async with engine.db.connect() as conn:
        keys = (await conn.execute(select(seen_keys.c.key))).scalars().all()
    assert len(keys) == 2 and all(k.startswith(long_link[:400]) for k in keys)

    first, second = ("delivery-" + "x" * 600 + end for end in "12")
    for key, stored in [(first, 1), (second, 1), (first, 0)]:
        event = NewEvent(area.id, "webhook", {"title": key[-1]}, dedup_key=key)
        assert len(await engine.journal.append([event])) == stored


def test_the_standby_lease_gives_the_keyrings_password_when_the_server_asks(
        password_server: str, data_dir: Path) -> None:
    """The lease is a connection of its own (not SQLAlchemy's): a server that asks for a
    password gets the keyring's there too, or two engines could both be active."""
    lease = Lease(database_url(data_dir, password_server))
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        lease.try_take()
    SecretStore().set(PASSWORD_REF, PASSWORD)
    try:
        assert lease.try_take()
        assert lease_holder(database_url(data_dir, password_server)) is not None
    finally:
        if lease.conn is not None:
            lease.conn.close()
