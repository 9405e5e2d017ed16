"""Flow reactions through a real engine: a wait that survives a restart, a stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.settings import Settings

Factory = Callable[[], Awaitable[Engine]]


@pytest.fixture
async def make_engine(data_dir: Path) -> AsyncIterator[Factory]:
    started: list[Engine] = []

    async def make() -> Engine:
        engine = Engine(data_dir, settings=Settings.from_mapping({"listener_port": 0}))
        await engine.start()
        started.append(engine)
        return engine

    yield make
    for engine in started:
        if engine.started:
            await engine.aclose()


def flow_area(out: Path, middle: dict[str, Any]) -> AreaSpec:
    def line(text: str) -> dict[str, Any]:
        return {"service": "files", "reaction": "append_text",
                "params": {"path": str(out), "text": text}}

    return AreaSpec.from_dict({
        "name": "Flow", "trigger": {"service": "timer", "trigger": "every",
                                    "params": {"interval": "1h"}},
        "reactions": [line("before"), middle, line("after")],
    })


async def test_stop_unless_ends_the_run_as_a_success(make_engine: Factory,
                                                     tmp_path: Path) -> None:
    engine = await make_engine()
    out = tmp_path / "out.txt"
    area = await engine.create_area(flow_area(out, {
        "service": "flow", "reaction": "stop_unless",
        "params": {"condition": "{{ trigger.missed > 0 }}"}}))
    await engine.run_now(area.id)
    await engine.wait_idle()
    assert out.read_text().split() == ["before"]
    [run] = await engine.store.runs(area.id)
    assert run["status"] == "succeeded"
    assert [s["status"] for s in run["steps"]] == ["succeeded", "stopped", "skipped"]


async def test_a_wait_interrupted_by_a_restart_completes_after_it(make_engine: Factory,
                                                                  tmp_path: Path) -> None:
    engine = await make_engine()
    out = tmp_path / "out.txt"
    area = await engine.create_area(flow_area(out, {
        "service": "flow", "reaction": "wait", "params": {"duration": "2s"}}))
    await engine.run_now(area.id)
    async def waiting() -> dict[str, Any]:  # the wait's deadline is saved before it sleeps
        while True:
            runs = await engine.store.runs(area.id)
            if runs and runs[0]["steps"][1].get("status") == "waiting":
                return runs[0]
            await asyncio.sleep(0.02)

    run = await asyncio.wait_for(waiting(), 10)
    until = datetime.fromisoformat(run["steps"][1]["until"])
    await engine.aclose()  # Hookline closes mid-wait
    assert out.read_text().split() == ["before"]

    again = await make_engine()
    await asyncio.wait_for(again.wait_idle(), 15)
    assert out.read_text().split() == ["before", "after"]  # nothing twice
    runs = await again.store.runs(area.id)
    finished = [r for r in runs if r["status"] == "succeeded"]
    assert len(finished) == 1 and finished[0]["resumed"]
    assert finished[0]["finished_at"] >= until
