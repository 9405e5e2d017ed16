"""The poller's promise as a property: whatever the source shows, poll after poll (items
added, removed, reordered, retitled, more than the seen memory's bound), across cleanups
and restarts, every item that appears fires exactly once, oldest first by its own
time, and nothing fires again after a restart."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from engine.app import Engine
from engine.areas import AreaSpec
from engine.catalog.service import Item
from engine.secrets import MemorySecretStore
from engine.settings import Settings
from tests.engine import probe
from tests.engine.conftest import FAST, registry

AREA = {
    "name": "Items to record",
    "trigger": {"service": "probe", "trigger": "items"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}
#: The seen memory's bound in this test: small, so every run goes past it.
BOUND = 2
DAY = datetime(2026, 12, 1, tzinfo=UTC)


class PollerMachine(RuleBasedStateMachine):
    """The real engine (probe service, its own data folder) against a model: the keys
    that appeared since the first poll, in the order they must fire."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="hookline-property-"))
        self.engine: Engine | None = None
        self.area_id = ""
        self.source: list[tuple[str, int]] = []  # (key, minutes after DAY), as listed
        self.next_key = 0
        self.clock = 0
        self.expected: list[str] = []  # keys in the order they must have fired
        self.primed = False
        self.seen_before_priming: set[str] = set()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _start(self) -> None:
        self.engine = Engine(self.folder, settings=Settings.from_mapping(FAST),
                             registry=registry(), secrets=MemorySecretStore())
        await self.engine.start()

    @initialize()
    def start(self) -> None:
        probe.controls.__init__()  # type: ignore[misc]
        self.run(self._start())
        assert self.engine is not None
        area = self.run(self.engine.create_area(AreaSpec.from_dict(AREA)))
        self.area_id = area.id
        self.engine.scheduler.remove(area.id)  # polls happen when the rules say

    def teardown(self) -> None:
        if self.engine is not None:
            self.run(self.engine.aclose())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ the source

    @rule(count=st.integers(1, 6), spread=st.booleans())
    def add(self, count: int, spread: bool) -> None:
        """New items; they share one time unless spread (then each its own minute)."""
        for _ in range(count):
            self.clock += 1 if spread else 0
            self.source.append((f"k{self.next_key}", self.clock))
            self.next_key += 1
        self.clock += 1

    @precondition(lambda self: bool(self.source))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.source) - 1))
        del self.source[index]

    @rule(data=st.data())
    def reorder(self, data: st.DataObject) -> None:
        self.source = data.draw(st.permutations(self.source))

    # ------------------------------------------------------------------ the engine

    @rule()
    def poll(self) -> None:
        assert self.engine is not None
        shown = [Item(key, {"title": key, "n": minute}, at=DAY + timedelta(minutes=minute))
                 for key, minute in self.source]
        probe.controls.items = shown
        area = self.engine.area(self.area_id)
        spec = self.engine.registry.trigger("probe", "items")
        self.run(self.engine.poller.poll(area, spec, area.spec.trigger.params, 3600))
        self.run(self.engine.wait_idle())
        if self.primed:
            fired = set(self.expected)
            # new: oldest first by time; among equal times, in the order listed
            fresh = sorted((i for i in shown if i.key not in fired and i.key not in
                            self.seen_before_priming), key=lambda i: i.at or DAY)
            self.expected += [str(i.key) for i in fresh]
        else:
            self.seen_before_priming = {str(i.key) for i in shown}
            self.primed = True

    @rule()
    def clean_up(self) -> None:
        assert self.engine is not None
        self.run(self.engine.store.prune(14, 90, 1000, seen_per_area=BOUND))

    @rule()
    def restart(self) -> None:
        assert self.engine is not None
        self.run(self.engine.aclose())
        self.run(self._start())
        self.engine.scheduler.remove(self.area_id)

    # ------------------------------------------------------------------ the promise

    @invariant()
    def each_item_fired_once_in_order(self) -> None:
        fired = [r["text"] for r in probe.controls.received]
        assert fired == self.expected


PollerMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_the_poller_fires_each_item_once_oldest_first = PollerMachine.TestCase
