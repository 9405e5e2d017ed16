"""Engine fixtures: a started engine on a temporary folder with the probe service."""

from __future__ import annotations

import asyncio
import gc
import queue
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import SAWarning

from engine.app import Engine
from engine.bus import Message
from engine.errors import StorageError
from engine.registry import BUILTIN_MODULES, Registry
from engine.settings import Settings
from engine.storage.writer import _STOP, Statement
from tests.engine import probe

FAST = {"listener_port": 0, "retry_delay": 0.01, "reaction_attempts": 3,
        "pause_after_failures": 3}


@pytest.fixture(autouse=True)
def _reset_probe() -> None:
    probe.controls.__init__()  # type: ignore[misc]


def registry() -> Registry:
    return Registry.load(modules=(*BUILTIN_MODULES, "tests.engine.probe"), plugins=False)


EngineFactory = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def make_engine(data_dir: Path) -> AsyncIterator[EngineFactory]:
    started: list[Engine] = []

    async def make(**settings: Any) -> Engine:
        engine = Engine(data_dir, settings=Settings.from_mapping({**FAST, **settings}),
                        registry=registry())
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
        # collector, which closes it and warns: the connections of a killed process close
        # without a goodbye.
        warnings.simplefilter("ignore", SAWarning)
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
