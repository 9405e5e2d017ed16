"""Run history: bounded, and failures outlive successes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from engine.app import Engine
from engine.areas import AreaSpec
from engine.storage.schema import runs, utcnow
from tests.engine import probe


async def test_retention_drops_old_successes_before_old_failures(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "History",
        "trigger": {"service": "probe", "trigger": "hook"},
        "reactions": [{"service": "probe", "reaction": "record", "params": {"text": "x"}}],
    }))
    for i in range(4):
        probe.controls.fail_times = 3 if i % 2 else 0  # odd runs fail all attempts
        await engine.run_now(area.id, {"title": str(i), "n": i})
        await engine.wait_idle()
    async with engine.db.begin() as conn:  # all of them a month old
        await conn.execute(update(runs).values(started_at=utcnow() - timedelta(days=30)))
    removed = await engine.store.prune(keep_ok_days=14, keep_failed_days=90, per_area=1000)
    assert removed == 2
    left = await engine.store.runs(area.id)
    assert [r["status"] for r in left] == ["failed", "failed"]
