"""Idle cost of an engine with 1,000 enabled areas, as ratios against idle baselines.

The engine runs in its own process (scripts/with-keyring, listener on) on a data folder
populated beforehand with 1,000 areas — a third each: timer/every 1h, files/file_created
polling an empty folder every 10 min, webhook/incoming — so it starts as after a
restart. After it is ready it settles (polls first fire within 30 s of a start), then
its CPU time and RSS are measured over a window, together with three baselines idling
in the same window:

  bare     python -c "import asyncio; asyncio.run(asyncio.sleep(1e9))"
  libs     the same after importing aiohttp, sqlalchemy, apscheduler, jinja2
  code     the same after importing the engine and loading its services (no Engine)

Targets (issue): idle CPU < 1% of one core, RSS < 120 MB.

    .venv/bin/python bench/idle.py [--areas 1000] [--settle 30] [--window 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    BENCH,
    PYTHON,
    ROOT,
    Child,
    emit_json,
    fmt_ratio,
    free_port,
    ratio,
)

TARGET_CPU_PCT = 1.0
TARGET_RSS_MB = 120.0
MB = 1024 * 1024

IDLE = "import asyncio; print('READY {}', flush=True); asyncio.run(asyncio.sleep(1e9))"
BASELINES = {
    "bare": IDLE,
    "libs": "import aiohttp, aiohttp.web, sqlalchemy, sqlalchemy.ext.asyncio, "
    "apscheduler.schedulers.asyncio, jinja2, jinja2.sandbox; " + IDLE,
    "code": f"import sys; sys.path.insert(0, {str(ROOT)!r}); import engine.app; "
    "from bench._common import registry; registry(); " + IDLE,
}


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def switches(proc: psutil.Process) -> int:
    """Context switches of all the process's threads (each wake-up is one)."""
    total = 0
    for thread in proc.threads():
        try:
            ctx = psutil.Process(thread.id).num_ctx_switches()
        except psutil.Error:
            continue
        total += ctx.voluntary + ctx.involuntary
    return total


def rss(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss)


def uss(proc: psutil.Process) -> float | None:
    try:
        return float(proc.memory_full_info().uss)
    except (psutil.AccessDenied, AttributeError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--areas", type=int, default=1000)
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds between ready and the window (polls of a fresh start fire within 30 s)",
    )
    parser.add_argument("--window", type=float, default=20.0, help="measured seconds")
    args = parser.parse_args()

    webhooks = args.areas - 2 * (args.areas // 3)
    timers = polls = args.areas // 3
    figures: dict[str, Any] = {
        "bench": "idle",
        "areas": args.areas,
        "webhook_areas": webhooks,
        "timer_areas": timers,
        "poll_areas": polls,
        "settle_s": args.settle,
        "window_s": args.window,
    }
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="hookline-bench-") as tmp:
        work = Path(tmp)
        watched = work / "watched"
        watched.mkdir()
        area_args = [
            "--data-dir",
            str(work / "data"),
            "--webhook-areas",
            str(webhooks),
            "--timer-areas",
            str(timers),
            "--timer-interval",
            "1h",
            "--poll-areas",
            str(polls),
            "--poll-folder",
            str(watched),
            "--poll-interval",
            "600",
        ]
        try:
            t0 = time.monotonic()
            populate = Child(
                [
                    PYTHON,
                    str(BENCH / "_serve_engine.py"),
                    *area_args,
                    "--populate-only",
                    "--memory-secrets",
                ],
                name="populate",
            )
            children.append(populate)
            created = populate.wait_ready(180)
            populate.proc.wait(30)
            figures["populate_s"] = time.monotonic() - t0
            procs: dict[str, psutil.Process] = {}
            for name, code in BASELINES.items():
                child = Child([PYTHON, "-c", code], name=name)
                children.append(child)
                child.wait_ready(60)
                procs[name] = psutil.Process(child.proc.pid)
            t1 = time.monotonic()
            engine = Child(
                [
                    PYTHON,
                    str(BENCH / "_serve_engine.py"),
                    "--data-dir",
                    str(work / "data"),
                    "--port",
                    str(free_port()),
                    "--max-urls",
                    "0",
                    "--status-every",
                    "0",
                ],
                keyring=True,
                name="engine",
            )
            children.append(engine)
            info = engine.wait_ready(120)
            figures["engine_start_s"] = time.monotonic() - t1
            if info.get("areas") != args.areas:
                raise RuntimeError(f"the engine serves {info.get('areas')} areas, not {args.areas}")
            procs["hookline"] = psutil.Process(engine.pid)
            start_cpu = {n: cpu_seconds(p) for n, p in procs.items()}
            settle_t = time.monotonic()
            time.sleep(args.settle)
            before = {n: cpu_seconds(p) for n, p in procs.items()}
            switches0 = {n: switches(p) for n, p in procs.items()}
            t_before = time.monotonic()
            peak = {n: rss(p) for n, p in procs.items()}
            deadline = t_before + args.window
            while time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                for n, p in procs.items():
                    peak[n] = max(peak[n], rss(p))
            after = {n: cpu_seconds(p) for n, p in procs.items()}
            switches1 = {n: switches(p) for n, p in procs.items()}
            elapsed = time.monotonic() - t_before
            settle_elapsed = t_before - settle_t
            end_rss = {n: rss(p) for n, p in procs.items()}
            end_uss = {n: uss(p) for n, p in procs.items()}
            threads = procs["hookline"].num_threads()
        finally:
            for child in reversed(children):
                child.stop()

    cpu = {n: 100 * (after[n] - before[n]) / elapsed for n in after}
    wakeups = {n: (switches1[n] - switches0[n]) / elapsed for n in after}
    resolution = 100 * (1 / os.sysconf("SC_CLK_TCK")) / elapsed
    settle_cpu = {n: 100 * (before[n] - start_cpu[n]) / settle_elapsed for n in before}
    hook_mb = end_rss["hookline"] / MB
    print(
        f"Idle engine, {args.areas} areas ({webhooks} webhook, {timers} timer/every 1h, "
        f"{polls} files/file_created every 10 min); populated in "
        f"{created.get('create_s', 0):.1f} s, engine ready in {figures['engine_start_s']:.1f} s"
    )
    print(
        f"  window: {elapsed:.0f} s after {settle_elapsed:.0f} s of settling; "
        f"{threads} threads in the engine"
    )
    print(
        f"  {'process':<10} {'CPU % (window)':>15} {'CPU % (settle)':>15} {'wakeups/s':>10} "
        f"{'RSS MB':>8} {'peak MB':>8} {'USS MB':>8}"
    )
    for n in ("bare", "libs", "code", "hookline"):
        u = end_uss[n]
        print(
            f"  {n:<10} {cpu[n]:>15.3f} {settle_cpu[n]:>15.3f} {wakeups[n]:>10.2f} "
            f"{end_rss[n] / MB:>8.1f} {peak[n] / MB:>8.1f} {(u or 0) / MB:>8.1f}"
        )
    print(f"  (CPU time is counted in ticks: {resolution:.3f}% is one tick over the window)")
    print(
        f"  hookline RSS: {fmt_ratio(ratio(end_rss['hookline'], end_rss['bare']))} bare, "
        f"{fmt_ratio(ratio(end_rss['hookline'], end_rss['libs']))} libs, "
        f"{fmt_ratio(ratio(end_rss['hookline'], end_rss['code']))} code; "
        f"{hook_mb:.1f} MB (target < {TARGET_RSS_MB:g} MB)"
    )
    excess = cpu["hookline"] - cpu["libs"]
    print(
        f"  hookline CPU: {cpu['hookline']:.3f}% of a core (target < {TARGET_CPU_PCT:g}%), "
        f"{excess:+.3f} points over the libs baseline, ratio vs libs "
        f"{fmt_ratio(ratio(cpu['hookline'], cpu['libs']))}"
    )
    figures.update(
        {
            "cpu_pct": cpu,
            "cpu_pct_settle": settle_cpu,
            "cpu_resolution_pct": resolution,
            "wakeups_per_s": wakeups,
            "rss_mb": {n: v / MB for n, v in end_rss.items()},
            "rss_peak_mb": {n: v / MB for n, v in peak.items()},
            "uss_mb": {n: (v / MB if v is not None else None) for n, v in end_uss.items()},
            "ratio_rss_vs_bare": ratio(end_rss["hookline"], end_rss["bare"]),
            "ratio_rss_vs_libs": ratio(end_rss["hookline"], end_rss["libs"]),
            "ratio_rss_vs_code": ratio(end_rss["hookline"], end_rss["code"]),
            "ratio_cpu_vs_libs": ratio(cpu["hookline"], cpu["libs"]),
            "cpu_excess_over_libs_pct": excess,
            "engine_threads": threads,
            "target_cpu_met": cpu["hookline"] < TARGET_CPU_PCT,
            "target_rss_met": hook_mb < TARGET_RSS_MB,
        }
    )
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
