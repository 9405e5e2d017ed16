"""The dispatcher: one area's runs in order, and a run that queued its effect in order
letting the area's next run start (``next_run_may_start``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine import dispatcher as dispatching
from engine.dispatcher import Dispatcher, next_run_may_start
from engine.journal import Journaled


def event(number: int, area: str = "a") -> Journaled:
    return Journaled(number, area, "test", {})


class Runs:
    """A ``process`` whose runs wait for the test to let each one finish."""

    def __init__(self, hand_on: bool) -> None:
        self.hand_on = hand_on
        self.started: list[int] = []
        self.finished: list[int] = []
        self.handed_on: dict[int, bool] = {}
        self.gates: dict[int, asyncio.Event] = {}
        self._started = asyncio.Condition()

    def gate(self, number: int) -> asyncio.Event:
        return self.gates.setdefault(number, asyncio.Event())

    async def process(self, event: Journaled, _carried: Any) -> None:
        self.started.append(event.id)
        async with self._started:
            self._started.notify_all()
        if self.hand_on:
            self.handed_on[event.id] = next_run_may_start()
        await self.gate(event.id).wait()
        self.finished.append(event.id)

    async def until_started(self, count: int) -> None:
        async with self._started:
            await asyncio.wait_for(
                self._started.wait_for(lambda: len(self.started) >= count), 5)


async def settle() -> None:
    """Let every task that can go on do so (no sleep: a few turns of the loop)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_without_a_handoff_an_area_runs_one_event_at_a_time() -> None:
    runs = Runs(hand_on=False)
    dispatch = Dispatcher(runs.process)
    for number in (1, 2, 3):
        dispatch.submit(event(number))
    await runs.until_started(1)
    await settle()
    assert runs.started == [1]
    runs.gate(1).set()
    await runs.until_started(2)
    await settle()
    assert runs.started == [1, 2]
    runs.gate(2).set()
    runs.gate(3).set()
    await asyncio.wait_for(dispatch.idle(), 5)
    assert runs.finished == [1, 2, 3]


async def test_a_run_that_queued_its_effect_lets_the_next_one_start() -> None:
    runs = Runs(hand_on=True)
    dispatch = Dispatcher(runs.process)
    for number in (1, 2, 3):
        dispatch.submit(event(number))
    await runs.until_started(3)  # none of them has finished
    assert runs.started == [1, 2, 3]
    assert runs.finished == []
    assert runs.handed_on == {1: True, 2: True, 3: True}
    idle = asyncio.ensure_future(dispatch.idle())
    await settle()
    assert not idle.done()  # runs still waiting for their effect count
    for number in (1, 2, 3):
        runs.gate(number).set()
    await asyncio.wait_for(idle, 5)
    assert dispatch.backlog == 0


async def test_outside_a_run_next_run_may_start_does_nothing() -> None:
    assert next_run_may_start() is False


async def test_only_so_many_runs_of_an_area_are_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatching, "MAX_OVERLAP", 2)
    runs = Runs(hand_on=True)
    dispatch = Dispatcher(runs.process)
    for number in range(1, 6):
        dispatch.submit(event(number))
    await runs.until_started(2)
    await settle()
    assert runs.started == [1, 2]  # both wait for their effect; the third waits
    runs.gate(2).set()  # finishing out of order still frees a place
    await runs.until_started(3)
    await settle()
    assert runs.started == [1, 2, 3]
    for number in range(1, 6):
        runs.gate(number).set()
    await asyncio.wait_for(dispatch.idle(), 5)
    assert runs.started == [1, 2, 3, 4, 5]
    assert sorted(runs.finished) == [1, 2, 3, 4, 5]


async def test_a_row_of_runs_that_hand_on_start_in_one_turn_of_the_loop() -> None:
    runs = Runs(hand_on=True)
    dispatch = Dispatcher(runs.process)
    dispatch.submit(event(1))
    await runs.until_started(1)
    await settle()
    assert runs.handed_on == {1: True}  # waiting for its effect
    for number in range(2, 12):
        dispatch.submit(event(number))
    for _ in range(3):  # the second starts, hands on, and its followers start together
        await asyncio.sleep(0)
    assert runs.started == list(range(1, 12))
    for number in range(1, 12):
        runs.gate(number).set()
    await asyncio.wait_for(dispatch.idle(), 5)


async def test_a_run_that_handed_on_no_longer_holds_a_place_among_all_runs() -> None:
    runs = Runs(hand_on=True)
    dispatch = Dispatcher(runs.process, max_runs=1)
    dispatch.submit(event(1, "hung"))
    await runs.until_started(1)
    dispatch.submit(event(2, "other"))
    await runs.until_started(2)  # with max_runs=1, while run 1 still waits
    assert runs.finished == []
    runs.gate(1).set()
    runs.gate(2).set()
    await asyncio.wait_for(dispatch.idle(), 5)


async def test_closing_waits_for_runs_that_handed_on_then_cancels_them() -> None:
    runs = Runs(hand_on=True)
    dispatch = Dispatcher(runs.process)
    dispatch.submit(event(1))
    dispatch.submit(event(2))
    await runs.until_started(2)
    runs.gate(2).set()
    await asyncio.wait_for(dispatch.aclose(grace=0.05), 5)
    assert runs.finished == [2]  # 1 never got its effect: cancelled, stays journaled
    dispatch.submit(event(3))  # closed: ignored, journaled for the next start
    assert runs.started == [1, 2]


async def test_a_failing_run_after_a_handoff_does_not_stop_the_area() -> None:
    seen: list[int] = []

    async def process(event: Journaled, _carried: Any) -> None:
        seen.append(event.id)
        next_run_may_start()
        await asyncio.sleep(0)
        if event.id == 1:
            raise RuntimeError("boom")

    dispatch = Dispatcher(process)
    for number in (1, 2, 3):
        dispatch.submit(event(number))
    await asyncio.wait_for(dispatch.idle(), 5)
    assert seen == [1, 2, 3]
    assert dispatch.backlog == 0
