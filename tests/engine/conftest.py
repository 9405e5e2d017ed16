"""Engine fixtures: a started engine on a temporary folder with the probe service.

The engine's database is the ``database`` fixture: SQLite in the data folder, and for
the modules in :data:`BOTH_DATABASES` also a fresh PostgreSQL database on the throwaway
server of ``tests/pg.py`` (each test runs twice, ``[sqlite]`` and ``[postgresql]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import queue
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SAWarning

from engine.app import Engine
from engine.bus import Message
from engine.errors import StorageError
from engine.registry import BUILTIN_MODULES, Registry
from engine.settings import Settings, save_settings
from engine.storage.db import DB_FILE, database_url, migrate_sync, open_sync
from engine.storage.schema import metadata
from engine.storage.writer import _STOP, Statement
from tests.engine import probe
from tests.pg import PostgresServer

FAST = {"listener_port": 0, "retry_delay": 0.01, "reaction_attempts": 3,
        "pause_after_failures": 3}

#: The test modules run on SQLite and on PostgreSQL: together they make every kind of
#: write and read the engine does — journaled events and the writer's groups and
#: dedup (webhooks), seen keys, trigger state and the check history (polling, checks),
#: runs, steps, history and retention (runs, history), the run ledger's replay and a
#: kill mid-stream (ledger, crash), timers and misses (schedules), lifecycle, snooze and
#: windows (state, transitions), why and inspect (history reads, LIKE on payloads and
#: keys), accounts, backups and migrations. The others (the catalog, templates, the CLI's
#: parser, OAuth flows, logs...) either store nothing or store through the same calls
#: these already cover, and run on SQLite only, keeping the suite's time in bounds
#: (the PostgreSQL runs add about two minutes on two cores). Within these modules a
#: test about SQLite itself (its WAL, its file, its online backup) is marked
#: ``sqlite_only`` with the reason; one that asks for ``postgres_url`` or
#: ``postgres_engine_url`` itself is about PostgreSQL and runs on it only.
BOTH_DATABASES = frozenset({
    "test_webhooks", "test_polling", "test_checks", "test_runs", "test_history",
    "test_ledger", "test_crash", "test_disk_full", "test_schedules", "test_lifecycle",
    "test_snooze", "test_windows", "test_why", "test_inspect", "test_accounts",
    "test_backup", "test_migrations", "test_postgres",
})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): a test about SQLite itself (its files, WAL or "
                   "online backup): not run on PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the tests of :data:`BOTH_DATABASES` that take a ``database`` on both."""
    if "database" not in metafunc.fixturenames:
        return
    if metafunc.module.__name__.rsplit(".", 1)[-1] not in BOTH_DATABASES:
        return
    if {"postgres_url", "postgres_engine_url"} & set(metafunc.fixturenames):
        kinds = ["postgresql"]  # a test about PostgreSQL itself
    elif metafunc.definition.get_closest_marker("sqlite_only") is not None:
        kinds = ["sqlite"]
    else:
        kinds = ["sqlite", "postgresql"]
    metafunc.parametrize("database", kinds, indirect=True)


_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """A database migrated to the newest schema once, copied for each test (a copy takes
    milliseconds; migrating each one took a quarter of a second)."""
    name = "hookline_template"
    postgres_server.admin(f'CREATE DATABASE "{name}"')
    migrate_sync(postgres_server.url(name))
    return name


@pytest.fixture
def postgres_engine_url(postgres_server: PostgresServer, postgres_template: str
                        ) -> Iterator[str]:
    """A fresh PostgreSQL database at the newest schema, dropped afterwards."""
    name = f"hookline_engine_{next(_names)}"
    postgres_server.admin(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture
def database(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """The ``database_url`` setting of the engines a test starts: "" (SQLite in the
    data folder) or a fresh PostgreSQL database's URL (see :data:`BOTH_DATABASES`), also
    saved in the data folder's settings, so the command line finds the same database."""
    if getattr(request, "param", "sqlite") != "postgresql":
        return ""
    url = str(request.getfixturevalue("postgres_engine_url"))
    save_settings(data_dir, Settings(database_url=url))
    return url


def fast(database: str, **more: Any) -> Settings:
    """:data:`FAST` settings on ``database`` (for a test that builds its own Engine)."""
    return Settings.from_mapping({**FAST, "database_url": database, **more})


def stored_bytes(data_dir: Path, database: str = "") -> bytes:
    """Everything the database holds, to look for what must never be stored: the
    SQLite file's bytes (WAL included), or every row of every table as PostgreSQL
    writes it out as text."""
    if not database:
        return b"".join(p.read_bytes() for p in data_dir.glob(f"{DB_FILE}*"))
    engine = open_sync(database_url(data_dir, database))
    try:
        with engine.connect() as conn:
            rows = [str(row[0]) for table in metadata.sorted_tables
                    for row in conn.execute(text(
                        f'SELECT t::text FROM "{table.name}" t'))]  # noqa: S608 - our tables
    finally:
        engine.dispose()
    return "\n".join(rows).encode()


@contextlib.contextmanager
def refusing_inserts(url: str, table: str, when: str = "") -> Iterator[None]:
    """The database refuses inserts into ``table`` (those matching the SQL condition
    ``when`` on ``NEW``) as a full disk would, until the block ends: a trigger in
    either dialect."""
    name = f"refuse_{table}"
    if make_url(url).get_backend_name() == "sqlite":
        create = [f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                  f"{f'WHEN {when} ' if when else ''}"
                  "BEGIN SELECT RAISE(ABORT, 'disk full'); END"]
        drop = f"DROP TRIGGER {name}"
    else:
        create = ["CREATE OR REPLACE FUNCTION hookline_refuse() RETURNS trigger "
                  "LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'disk full'; END$$",
                  f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
                  f"{f'WHEN ({when}) ' if when else ''}EXECUTE FUNCTION hookline_refuse()"]
        drop = f"DROP TRIGGER {name} ON {table}"
    _execute(url, *create)
    try:
        yield
    finally:
        _execute(url, drop)


def _execute(url: str, *statements: str) -> None:
    engine = open_sync(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def scalar(data_dir: Path, database: str, sql: str) -> Any:
    """One value read from the engine's database with ``sql`` (either kind)."""
    engine = open_sync(database_url(data_dir, database))
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _reset_probe() -> None:
    probe.controls.__init__()  # type: ignore[misc]


def registry() -> Registry:
    return Registry.load(modules=(*BUILTIN_MODULES, "tests.engine.probe"), plugins=False)


EngineFactory = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def make_engine(data_dir: Path, database: str) -> AsyncIterator[EngineFactory]:
    started: list[Engine] = []

    async def make(**settings: Any) -> Engine:
        engine = Engine(data_dir, settings=fast(database, **settings), registry=registry())
        await engine.start()
        started.append(engine)
        return engine

    yield make
    for engine in started:
        if engine.started:
            await engine.aclose()


@pytest.fixture
async def engine(make_engine: EngineFactory) -> Engine:
    return await make_engine()


def next_message(engine: Engine, topic: str,
                 match: Callable[[Message], bool] = lambda m: True,
                 timeout: float = 10.0) -> Awaitable[Message]:
    """Start listening for ``topic`` now; await the result to get the message
    (a future resolved by the bus, not a sleep)."""
    future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    def listener(message: Message) -> None:
        if match(message) and not future.done():
            future.set_result(message)

    stop = engine.bus.subscribe(topic, listener)

    async def wait() -> Message:
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            stop()

    return wait()


def fail_run_records(engine: Engine) -> None:
    """Make every run-record commit fail, as on a full disk (events still commit)."""
    submit = engine.writer.submit

    def failing(statements: Any = (), after: Any = None, durable: bool = False
                ) -> asyncio.Future[Any]:
        if any(isinstance(s, Statement) and s.rank >= 2 for s in statements):
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_exception(StorageError("could not save to the database: disk full"))
            return future
        return submit(statements, after, durable)

    engine.writer.submit = failing  # type: ignore[method-assign]


# --------------------------------------------------------------------- kills, in-process


def freeze(engine: Engine) -> None:
    """The instant ``engine``'s process is killed: from now on nothing it does reaches
    its data folder or the probe (the world outside). Run-ledger lines not yet written
    and writes the writer thread has not taken yet are lost, as they were only in the
    process's memory; a group the writer thread is committing right now still commits
    (the kill came just after it). Then :func:`bury` it."""
    probe.controls.dead = True
    ledger = engine.journal.ledger
    ledger._buffer.clear()
    ledger.flush = ledger._buffer.clear  # type: ignore[method-assign]
    ledger.rotate_due = lambda: False  # type: ignore[method-assign]
    writer = engine.writer
    # The thread takes from the old queue up to now (a prefix: writes commit in order),
    # then finds the stop in the new one; the rest of the old queue is never written.
    waiting, writer._queue = writer._queue, queue.SimpleQueue()
    writer._queue.put(_STOP)
    waiting.put(_STOP)  # wakes a thread waiting on an empty queue

    def nowhere(*_args: Any, **_kwargs: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()  # never answered

    writer.submit = nowhere  # type: ignore[method-assign]

    async def no_goodbye() -> None:  # a start cut short calls it: nothing to tidy
        return None

    engine.aclose = no_goodbye  # type: ignore[method-assign]


async def bury(engine: Engine) -> None:
    """What the OS does after :func:`freeze`: the process's tasks and threads stop, its
    sockets, database connections, files and the data-folder lock are closed. No flush,
    no ledger removal, no goodbye. The loop must hold only the engine and the caller."""
    me = asyncio.current_task()
    if hasattr(engine, "scheduler"):
        await engine.scheduler.aclose()  # its timers, in the dead process's memory
    for server in (engine.listener, engine.control):
        runner = getattr(server, "_runner", None)
        if runner is not None:  # the sockets; a dead process leaves control.json behind
            await runner.cleanup()
            server._runner = None  # type: ignore[union-attr]
    with warnings.catch_warnings():
        # A task cancelled while it took a database connection leaves it to the garbage
        # collector, which closes it and warns (SQLAlchemy; psycopg's own on PostgreSQL):
        # the connections of a killed process close without a goodbye.
        warnings.simplefilter("ignore", SAWarning)
        warnings.simplefilter("ignore", ResourceWarning)
        while others := [t for t in asyncio.all_tasks() if t is not me]:
            for task in others:  # dying code may start more: cancelled in turn
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
        gc.collect()
    thread = engine.writer._thread
    if thread is not None:
        await asyncio.to_thread(thread.join)
        engine.writer._thread = None
    engine.writer._engine.dispose()
    if engine.lease is not None:  # its session ends with the process: the lock is free
        engine.lease.close()
    for handle in (engine.journal._flush_handle, engine.journal._unsent_handle):
        if handle is not None:
            handle.cancel()
    engine.journal.ledger._close_fd()
    await engine.db.dispose()
    await engine.http.aclose()
    engine._lock.release()
    engine.started = False
    probe.controls.dead = False


async def kill(engine: Engine) -> None:
    """``kill -9`` of the engine's process, in this one."""
    freeze(engine)
    await bury(engine)
