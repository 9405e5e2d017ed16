"""The bridge turns engine happenings into Qt signals the views can use."""

from __future__ import annotations

import asyncio
import time

from desktop.bridge import EngineBridge
from engine import bus as topics
from engine.areas import AreaSpec
from tests.desktop.conftest import signal_once, until

AREA = {
    "name": "Hello",
    "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "Hello {{ trigger.missed }}"}}],
}


async def test_runs_and_notifications_arrive_as_signals(bridge: EngineBridge) -> None:
    area = await bridge.save_area(AreaSpec.from_dict(AREA))
    finished = signal_once(bridge.runFinished)
    notified = signal_once(bridge.notification)
    await bridge.run_now(area.id)
    (run,) = await finished
    assert run["status"] == "succeeded"
    assert await notified == ("Hello 0", "", "info")
    [row] = await bridge.area_rows()
    assert row.health == "working"
    assert row.summary == "Timer: Every so often → Notifications: Show a notification"


async def test_area_rows_say_why_an_area_is_not_working(bridge: EngineBridge) -> None:
    area = await bridge.save_area(AreaSpec.from_dict(AREA))
    [row] = await bridge.area_rows()
    assert row.health == "waiting"
    changed = signal_once(bridge.areaChanged, match=lambda _id, change: change != "created")
    await bridge.set_enabled(area.id, False)
    assert await changed == (area.id, "disabled")
    [row] = await bridge.area_rows()
    assert row.health == "off"


async def test_an_area_whose_account_must_reconnect_says_so(bridge: EngineBridge) -> None:
    from engine.areas import Area

    spec = AreaSpec.from_dict(AREA)
    spec.reactions[0].account = "acc-1"
    area = Area("a1", spec)
    assert bridge.health(area, "succeeded", frozenset({"acc-1"})) == "needs account"
    assert bridge.health(area, "succeeded", frozenset()) == "working"


async def test_a_stream_of_runs_wakes_the_window_in_batches(bridge: EngineBridge) -> None:
    """1,000 runs finishing over about half a second reach the views one by one and in
    order, but wake the window's thread about 20 times a second, not once per run."""
    wakes: list[float] = []
    bridge._wake.connect(lambda: wakes.append(time.monotonic()))
    got: list[int] = []
    bridge.runFinished.connect(lambda run: got.append(run["run_id"]))

    async def stream() -> float:
        began = time.monotonic()
        for n in range(1000):
            bridge.engine.bus.publish(topics.RUN_FINISHED, run_id=n, area_id="a",
                                      status="succeeded", error=None)
            if n % 20 == 0:
                await asyncio.sleep(0.01)
        return time.monotonic() - began

    took = await bridge.call(stream())
    await until(lambda: len(got) == 1000)
    assert got == list(range(1000))
    assert len(wakes) <= took / 0.05 + 3, (len(wakes), took)


async def test_views_get_finished_runs_a_batch_at_a_time(bridge: EngineBridge) -> None:
    """A view listens to runsFinished: 500 runs reach it whole and in order, in a few
    calls (one per wake-up), not 500."""
    batches: list[list[int]] = []
    bridge.runsFinished.connect(lambda runs: batches.append([r["run_id"] for r in runs]))

    async def stream() -> None:
        for n in range(500):
            bridge.engine.bus.publish(topics.RUN_FINISHED, run_id=n, area_id="a",
                                      status="succeeded", error=None)
            if n % 20 == 0:
                await asyncio.sleep(0.01)

    await bridge.call(stream())
    await until(lambda: sum(map(len, batches)) == 500)
    assert [n for batch in batches for n in batch] == list(range(500))
    assert len(batches) < 50, len(batches)
