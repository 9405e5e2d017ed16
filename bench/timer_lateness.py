"""Lateness of 1,000 timer areas due in the same second, as ratios against bare
APScheduler.

Baseline (first, same process): 1,000 AsyncIOScheduler jobs on a CronTrigger due at the
same second, configured as the engine configures its jobs; each records only how late
it started. For reference, also one job at such a second that starts 1,000 tasks (what
one scheduler job per distinct schedule would cost). Then an engine (in process, no
listener) with 1,000 areas timer/daily_at at the next minute boundary that is at least
``--min-lead`` seconds away (timer triggers have minute resolution), reaction
notify/notify. For every event:

  fired      payload fired_at − scheduled_for (the job started, before journaling)
  journaled  the event's group commit returned (hook on the engine's dispatch call)
  started    run.started published (the run record committed)
  finished   run.finished published

Target (issue): journaled p99 < 50 ms.

    .venv/bin/python bench/timer_lateness.py [--areas 1000] [--min-lead 15]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from bench._common import emit_json, fmt_ratio, percentile, ratio, registry
from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import RUN_FINISHED, RUN_STARTED, Message
from engine.journal import Journaled
from engine.memory import settle_after_start
from engine.settings import Settings
from engine.storage.schema import events

TARGET_P99_MS = 50.0


def stats(values_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "p50_ms": percentile(values_ms, 50),
        "p99_ms": percentile(values_ms, 99),
        "max_ms": max(values_ms) if values_ms else float("nan"),
        "min_ms": min(values_ms) if values_ms else float("nan"),
    }


async def wait_count(counter: dict[str, int], key: str, wanted: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while counter[key] < wanted:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def baseline(n: int, lead: float, timeout: float, grouped: bool = False) -> dict[str, Any]:
    """``n`` bare APScheduler cron jobs due at the same whole second; with ``grouped``,
    one job that starts ``n`` tasks (what one job per distinct schedule would give)."""
    due = (datetime.now(UTC) + timedelta(seconds=lead + 1)).replace(microsecond=0)
    due_ts = due.timestamp()
    late: list[float] = []
    count = {"ran": 0}
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "misfire_grace_time": 60, "max_instances": 1}
    )
    tasks: set[asyncio.Task[None]] = set()

    async def job() -> None:
        late.append((time.time() - due_ts) * 1000)
        count["ran"] += 1

    async def fan_out() -> None:
        for _ in range(n):
            task = asyncio.create_task(job())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    scheduler.start()
    try:
        for i in range(1 if grouped else n):
            trigger = CronTrigger(hour=due.hour, minute=due.minute, second=due.second, timezone=UTC)
            scheduler.add_job(fan_out if grouped else job, trigger, id=f"bench-{i}")
        if time.time() > due_ts:
            raise RuntimeError("adding the baseline jobs took longer than the lead time")
        await asyncio.sleep(max(0.0, due_ts - time.time()))
        complete = await wait_count(count, "ran", n, timeout)
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.1)  # shutdown completes on a later loop turn
    return {"complete": complete, **stats(late)}


def next_boundary(min_lead: float) -> datetime:
    now = datetime.now(UTC)
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while (boundary - now).total_seconds() < min_lead:
        boundary += timedelta(minutes=1)
    return boundary


async def hookline(n: int, boundary: datetime, data_dir: Path, timeout: float) -> dict[str, Any]:
    settings = Settings.from_mapping({"pause_after_failures": 0, "listener_enabled": False})
    engine = Engine(data_dir, settings=settings, registry=registry(), listen=False)
    committed: dict[int, float] = {}
    started: dict[int, float] = {}
    finished: dict[int, float] = {}
    count = {"finished": 0}

    def on_started(message: Message) -> None:
        started[message.data["event_id"]] = time.time()

    def on_finished(message: Message) -> None:
        finished[message.data["event_id"]] = time.time()
        count["finished"] += 1

    engine.bus.subscribe(RUN_STARTED, on_started)
    engine.bus.subscribe(RUN_FINISHED, on_finished)
    await engine.start()
    try:
        dispatch = engine._dispatch

        def timed_dispatch(batch: list[Journaled]) -> None:
            now = time.time()
            for event in batch:
                committed[event.id] = now
            dispatch(batch)

        engine._dispatch = timed_dispatch  # type: ignore[method-assign]
        t0 = time.monotonic()
        at = boundary.strftime("%H:%M")
        for i in range(n):
            await engine.create_area(
                AreaSpec.from_dict(
                    {
                        "name": f"bench timer {i}",
                        "trigger": {
                            "service": "timer",
                            "trigger": "daily_at",
                            "params": {"time": at, "timezone": "UTC"},
                        },
                        "reactions": [
                            {
                                "service": "notify",
                                "reaction": "notify",
                                "params": {"title": "bench", "message": "{{ trigger.fired_at }}"},
                            }
                        ],
                    }
                )
            )
        create_s = time.monotonic() - t0
        settle_after_start()  # as `hookline serve` and the app do once started
        lead = boundary.timestamp() - time.time()
        if lead < 1:
            raise RuntimeError(
                f"creating {n} areas took {create_s:.1f} s, past the boundary; "
                "run again with a larger --min-lead"
            )
        print(
            f"  {n} areas created in {create_s:.1f} s; waiting {lead:.0f} s for "
            f"{boundary:%H:%M:%S} UTC",
            flush=True,
        )
        await asyncio.sleep(lead)
        complete = await wait_count(count, "finished", n, timeout)
        async with engine.db.connect() as conn:
            rows = (
                await conn.execute(select(events.c.id, events.c.payload, events.c.source))
            ).all()
    finally:
        await engine.aclose()
    fired: list[float] = []
    late: dict[str, list[float]] = {"journaled": [], "started": [], "finished": []}
    for event_id, payload, source in rows:
        if source != "schedule":
            continue
        scheduled = datetime.fromisoformat(payload["scheduled_for"]).timestamp()
        fired.append((datetime.fromisoformat(payload["fired_at"]).timestamp() - scheduled) * 1000)
        for name, times in (("journaled", committed), ("started", started), ("finished", finished)):
            if event_id in times:
                late[name].append((times[event_id] - scheduled) * 1000)
    return {
        "complete": complete,
        "create_s": create_s,
        "events": len(fired),
        "fired": stats(fired),
        **{name: stats(values) for name, values in late.items()},
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    boundary = next_boundary(args.min_lead)
    print(f"Timer lateness: {args.areas} jobs/areas due in the same second", flush=True)
    base = await baseline(args.areas, args.baseline_lead, args.timeout)
    grouped = await baseline(args.areas, args.baseline_lead, args.timeout, grouped=True)
    for label, b in (("baseline (bare APScheduler)", base), ("  one job fanning out", grouped)):
        print(
            f"  {label:<28} min {b['min_ms']:6.1f}  p50 {b['p50_ms']:6.1f}  p99 "
            f"{b['p99_ms']:6.1f}  max {b['max_ms']:6.1f} ms ({b['n']} ran)",
            flush=True,
        )
    with tempfile.TemporaryDirectory(prefix="hookline-bench-") as tmp:
        hook = await hookline(args.areas, boundary, Path(tmp) / "data", args.timeout)
    return {
        "bench": "timer_lateness",
        "areas": args.areas,
        "baseline": base,
        "baseline_one_job": grouped,
        "hookline": hook,
    }


def report(figures: dict[str, Any]) -> None:
    base, hook = figures["baseline"], figures["hookline"]
    print(f"  hookline ({hook['events']} events, all finished: {hook['complete']}):")
    print(f"    {'':<10} {'min ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   p99 vs baseline")
    for name in ("fired", "journaled", "started", "finished"):
        s = hook[name]
        print(
            f"    {name:<10} {s['min_ms']:>8.1f} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f} "
            f"{s['max_ms']:>8.1f}   "
            f"{fmt_ratio(ratio(s['p99_ms'], base['p99_ms']))}"
        )
        figures[f"ratio_p99_{name}_vs_baseline"] = ratio(s["p99_ms"], base["p99_ms"])
    p99 = hook["journaled"]["p99_ms"]
    print(f"  journaled p99 {p99:.1f} ms (target < {TARGET_P99_MS:g} ms)")
    figures["target_p99_met"] = p99 < TARGET_P99_MS and hook["complete"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--areas", type=int, default=1000)
    parser.add_argument(
        "--min-lead",
        type=float,
        default=15.0,
        help="seconds the engine's minute boundary must be ahead at the start",
    )
    parser.add_argument(
        "--baseline-lead", type=float, default=2.0, help="seconds to add the baseline jobs"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for runs")
    figures = asyncio.run(main(parser.parse_args()))
    report(figures)
    emit_json(figures)
