"""Engine fixtures: a started engine on a temporary folder with the probe service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.app import Engine
from engine.bus import Message
from engine.errors import StorageError
from engine.registry import BUILTIN_MODULES, Registry
from engine.settings import Settings
from engine.storage.writer import Statement
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
