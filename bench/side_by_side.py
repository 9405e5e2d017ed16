"""Hookline side by side with a bare aiohttp handler and Node-RED, same work for each:
a webhook whose one reaction appends a line to a file (issue 12's table, in one run).

  (a)  bare       bench/_serve_bare.py: parses the JSON, answers 202 (the stack's ceiling)
  (n)  node-red   Node-RED 4.1.x, http in -> file (append) -> http response 202; installed
                  on demand with npm into ~/.cache/hookline-bench/node-red (skipped with a
                  note where npm is missing)
  (h)  serve      bench/_serve_engine.py --reaction append (``hookline serve``'s engine)
  (d)  desktop    bench/_serve_desktop.py: the desktop app offscreen, same area, with a
                  10 ms QTimer probe on the Qt thread
  (n100), (h100)  the same as (n) and (h) with --many areas (flows) sharing the load

Load per system: 1 s light warm-up (wrk -t1 -c4), wait until its lines are written, then
``wrk -t2 -c32 -d15s`` POSTing a ~100-byte JSON body round-robin over the webhook URLs.
Per system: req/s, p50, p99 (wrk); runs finished/s during the load (lines added to the
file while wrk ran); drain time (end of wrk until the last line is written); CPU per
event (server process and its children, load + drain, over lines written); the Qt
probe's lateness (desktop). And per system the counts that must agree: wrk's 2xx
answers, lines in the file, events and succeeded runs in Hookline's database.

Targets (issue 12): (h) req/s and runs finished/s >= 1.2x (n), p99 < 25 ms; (h100) >=
1.5x (n100); (d) >= 0.9x (h) with the probe's p99 < 50 ms; lines = accepted = succeeded.

    .venv/bin/python bench/side_by_side.py [--duration 15] [--many 100] [--only h,d]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _nodered
from bench._common import (
    BENCH,
    PYTHON,
    WITH_KEYRING,
    Child,
    emit_json,
    fmt_ratio,
    free_port,
    percentile,
    ratio,
    run_wrk,
    wrk_script,
)

VARIANTS = ("a", "n", "h", "d", "n100", "h100")
LABELS = {
    "a": "(a) bare aiohttp",
    "n": "(n) Node-RED",
    "h": "(h) hookline serve",
    "d": "(d) desktop app",
    "n100": "(n100) Node-RED, {many} flows",
    "h100": "(h100) hookline serve, {many} areas",
}
TARGET_VS_NODERED = 1.2
TARGET_MANY_VS_NODERED = 1.5
TARGET_P99_MS = 25.0
TARGET_DESKTOP_VS_SERVE = 0.9
TARGET_PROBE_P99_MS = 50.0
STABLE_S = 1.0  # no new line for this long: the drain is over


# --------------------------------------------------------------------------- sampling


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children (live ones and reaped ones)."""
    proc = psutil.Process(pid)
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for kid in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            k = kid.cpu_times()
            total += k.user + k.system
    return float(total)


class Sampler:
    """A thread counting the append file's lines (new bytes only) and the server's CPU
    time every 50 ms: ``samples`` is a list of (wall time, lines, cpu s)."""

    def __init__(self, path: Path | None, pid: int) -> None:
        self.path, self.pid = path, pid
        self.offset = self.lines = 0
        self.samples: list[tuple[float, int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def count(self) -> int:
        if self.path is None:
            return 0
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                while chunk := f.read(1 << 20):
                    self.offset += len(chunk)
                    self.lines += chunk.count(b"\n")
        except FileNotFoundError:
            pass
        return self.lines

    def sample(self) -> tuple[float, int, float]:
        try:
            cpu = cpu_seconds(self.pid)
        except psutil.Error:
            cpu = math.nan
        point = (time.time(), self.count(), cpu)
        self.samples.append(point)
        return point

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.sample()

    def latest(self) -> tuple[float, int, float]:
        return self.samples[-1] if self.samples else self.sample()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


def wait_lines(
    sampler: Sampler, target: Callable[[], int], timeout: float
) -> tuple[tuple[float, int, float], bool]:
    """Wait until at least ``target()`` lines are written and none was added for
    STABLE_S; return the sample where the final count was first reached, and whether
    that happened within ``timeout``."""
    deadline = time.monotonic() + timeout
    first = sampler.latest()
    while True:
        now = sampler.latest()
        if now[1] != first[1]:
            first = now
        if now[1] >= target() and now[0] - first[0] >= STABLE_S:
            return first, True
        if time.monotonic() > deadline:
            return now, False
        time.sleep(0.05)


# --------------------------------------------------------------------------- systems


def stop(child: Child) -> None:
    """Stop ``child``; under scripts/with-keyring also remove the throwaway keyring
    folder the wrapper made for it (its XDG_DATA_HOME, a ``mktemp -d``)."""
    home: Path | None = None
    if child.argv[0] == str(WITH_KEYRING) and child.proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(child.proc.pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    if proc.environ().get("HOOKLINE_IN_KEYRING_SESSION"):
                        value = proc.environ().get("XDG_DATA_HOME")
                        if value and value != os.environ.get("XDG_DATA_HOME"):
                            home = Path(value)
                            break
    child.stop()
    if (
        home is not None
        and home.parent == Path(tempfile.gettempdir())
        and home.name.startswith("tmp.")
    ):
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class System:
    key: str
    child: Child
    append: Path | None = None  # the file the reaction appends to
    database: Path | None = None  # Hookline's SQLite file
    probe: Path | None = None  # the desktop runner's probe samples
    extra: dict[str, Any] = field(default_factory=dict)


def db_counts(path: Path) -> dict[str, int] | None:
    """Events and runs by status, read-only (the engine may still be running)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        counts = {"events": int(conn.execute("SELECT count(*) FROM events").fetchone()[0])}
        for status, n in conn.execute("SELECT status, count(*) FROM runs GROUP BY status"):
            counts[f"runs_{status}"] = int(n)
        return counts
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def probe_stats(path: Path, windows: dict[str, tuple[float, float]]) -> dict[str, Any]:
    samples: list[tuple[float, float]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            t, ms = line.split()
            samples.append((float(t), float(ms)))
    out: dict[str, Any] = {}
    for name, (t0, t1) in windows.items():
        values = [ms for t, ms in samples if t0 <= t <= t1]
        out[name] = {
            "samples": len(values),
            "p50_ms": percentile(values, 50),
            "p99_ms": percentile(values, 99),
            "max_ms": max(values, default=math.nan),
        }
    return out


def two_xx(result: dict[str, Any]) -> int:
    return int(result.get("requests", 0)) - int(result.get("non2xx", 0))


def measure(system: System, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Warm-up, the measured wrk run, the drain; then the counts."""
    child = system.child
    urls: list[str] = child.info["urls"]
    base = urls[0].split("/hooks/")[0]
    script_dir = work / f"wrk-{system.key}"
    script_dir.mkdir()
    script = wrk_script(["/hooks/" + u.split("/hooks/", 1)[1] for u in urls], script_dir)
    sampler = Sampler(system.append, child.pid)
    out: dict[str, Any] = {"areas": len(urls), "loadavg_before": os.getloadavg()[0]}
    answered = {"n": 0}  # 2xx answers so far
    journaled = {"events": 0, "read": 0.0}

    def target() -> int:  # every line wrk saw answered; for Hookline every event journaled
        if system.database is not None and time.monotonic() - journaled["read"] > 0.5:
            counts = db_counts(system.database)
            journaled.update(events=counts["events"] if counts else 0, read=time.monotonic())
        return max(answered["n"], int(journaled["events"]))

    try:
        probe_from = time.time()
        warm = {"requests": 0, "non2xx": 0}
        if args.warmup > 0:
            warm = run_wrk(base + "/", script, duration=args.warmup, threads=1, connections=4)
        answered["n"] = two_xx(warm)
        if system.append is not None:
            _, ok = wait_lines(sampler, target, args.drain_timeout)
            if not ok:
                raise RuntimeError(f"{system.key}: the warm-up's lines were not all written")
        t_start, lines0, cpu0 = sampler.sample()
        result = run_wrk(
            base + "/",
            script,
            duration=args.duration,
            threads=args.threads,
            connections=args.connections,
        )
        t_end, lines_end, cpu_end = sampler.sample()
        out.update({k: v for k, v in result.items() if k != "raw"})
        out["wrk_2xx"] = two_xx(result)
        out["warmup_2xx"] = two_xx(warm)
        out["non2xx_total"] = int(result.get("non2xx", 0)) + int(warm.get("non2xx", 0))
        load_s = t_end - t_start
        if system.append is None:  # (a): nothing to drain, events = answers
            out["cpu_us_per_event"] = 1e6 * (cpu_end - cpu0) / max(1, out["wrk_2xx"])
            out["server_cpu_pct"] = 100 * (cpu_end - cpu0) / load_s
            return out

        answered["n"] = accepted = out["warmup_2xx"] + out["wrk_2xx"]
        done, drained = wait_lines(sampler, target, args.drain_timeout)
        t_done, lines_done, cpu_done = done
        events = lines_done - lines0
        out.update(
            {
                "finished_during_load_per_s": (lines_end - lines0) / load_s,
                "backlog_end_of_load": max(0, accepted - lines_end),
                "drained": drained,
                "drain_s": max(0.0, t_done - t_end),
                "finished_per_s_load_and_drain": events / max(1e-9, t_done - t_start),
                "events_load_and_drain": events,
                "cpu_us_per_event": 1e6 * (cpu_done - cpu0) / max(1, events),
                "server_cpu_pct": 100 * (cpu_done - cpu0) / max(1e-9, t_done - t_start),
            }
        )
        windows = {
            "idle": (probe_from - args.settle, probe_from),
            "load": (t_start, t_end),
            "load_and_drain": (t_start, max(t_done, t_end)),
        }
    finally:
        sampler.close()
        stop(child)
    out["lines_in_file"] = sampler.count()
    if system.database is not None:
        out["db"] = db_counts(system.database)
    if system.probe is not None:
        out["qt_probe"] = probe_stats(system.probe, windows)
    out.update(system.extra)
    return out


def check_counts(r: dict[str, Any], connections: int) -> tuple[bool, str]:
    """Lines = accepted = succeeded. wrk counts no answer still in flight when its time
    is up, so up to one request per connection (of each wrk run) may be accepted and
    written without being in wrk's 2xx count."""
    if "lines_in_file" not in r:
        return True, ""
    answered = r["warmup_2xx"] + r["wrk_2xx"]
    lines = r["lines_in_file"]
    unanswered = lines - answered
    ok = 0 <= unanswered <= connections + 4 and r["non2xx_total"] == 0
    text = (
        f"wrk 2xx {answered} (warm-up {r['warmup_2xx']}), non-2xx {r['non2xx_total']}, "
        f"lines {lines} (+{unanswered} in flight at wrk's end)"
    )
    db = r.get("db")
    if db is not None:
        succeeded = db.get("runs_succeeded", 0)
        others = {k: v for k, v in db.items() if k not in ("events", "runs_succeeded")}
        ok = ok and db["events"] == lines == succeeded and not any(others.values())
        text += f", events {db['events']}, succeeded runs {succeeded}"
        if others:
            text += ", " + ", ".join(f"{k} {v}" for k, v in others.items())
    elif "db" in r:
        ok = False
        text += ", database unreadable"
    return ok, text


# --------------------------------------------------------------------------- starting


def start_bare(work: Path) -> System:
    child = Child([PYTHON, str(BENCH / "_serve_bare.py"), "--port", str(free_port())], name="bare")
    try:
        child.wait_ready(30)
    except BaseException:
        stop(child)
        raise
    return System("a", child)


def start_serve(key: str, areas: int, work: Path) -> System:
    data, append = work / f"data-{key}", work / f"{key}.lines"
    t0 = time.monotonic()
    child = Child(
        [
            PYTHON,
            str(BENCH / "_serve_engine.py"),
            "--data-dir",
            str(data),
            "--port",
            str(free_port()),
            "--webhook-areas",
            str(areas),
            "--max-urls",
            str(areas),
            "--reaction",
            "append",
            "--append-path",
            str(append),
        ],
        keyring=True,
        name=f"engine-{key}",
    )
    try:
        child.wait_ready(120 + areas)
    except BaseException:
        stop(child)
        raise
    return System(
        key, child, append, data / "hookline.db", extra={"start_s": time.monotonic() - t0}
    )


def start_desktop(key: str, areas: int, work: Path, settle: float) -> System:
    data, append = work / f"data-{key}", work / f"{key}.lines"
    probe = work / f"{key}.probe"
    t0 = time.monotonic()
    child = Child(
        [
            PYTHON,
            str(BENCH / "_serve_desktop.py"),
            "--data-dir",
            str(data),
            "--port",
            str(free_port()),
            "--webhook-areas",
            str(areas),
            "--append-path",
            str(append),
            "--probe-file",
            str(probe),
            "--status-file",
            str(work / f"{key}.status.json"),
            "--settle",
            str(settle),
        ],
        keyring=True,
        name=f"desktop-{key}",
        env={"QT_QPA_PLATFORM": "offscreen"},
    )
    try:
        child.wait_ready(150 + areas)
    except BaseException:
        stop(child)
        raise
    return System(
        key, child, append, data / "hookline.db", probe, extra={"start_s": time.monotonic() - t0}
    )


def start_nodered(key: str, areas: int, work: Path, prefix: Path) -> System:
    append = work / f"{key}.lines"
    t0 = time.monotonic()
    child = _nodered.start(prefix, work / f"node-red-{key}", free_port(), areas, append)
    return System(key, child, append, extra={"start_s": time.monotonic() - t0})


# --------------------------------------------------------------------------- report


def ms(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.1f}"


def table(results: dict[str, dict[str, Any]], many: int) -> list[str]:
    rows = [
        "| system | req/s | p50 ms | p99 ms | runs finished/s during load | drain s "
        "| CPU µs/event | Qt lateness p50/p99/max ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in VARIANTS:
        r = results.get(key)
        if r is None:
            continue
        probe = r.get("qt_probe", {}).get("load")
        lateness = (
            f"{ms(probe['p50_ms'])} / {ms(probe['p99_ms'])} / {ms(probe['max_ms'])}"
            if probe
            else "—"
        )
        finished = r.get("finished_during_load_per_s")
        drain = r.get("drain_s")
        drained = "—" if drain is None else f"{drain:.1f}"
        if drain is not None and not r["drained"]:
            drained += " (NOT drained)"
        rows.append(
            f"| {LABELS[key].format(many=many)} | {r['rps']:,.0f} | {ms(r['p50_ms'])} | "
            f"{ms(r['p99_ms'])} | {'—' if finished is None else f'{finished:,.0f}'} | "
            f"{drained} | {r['cpu_us_per_event']:,.0f} | {lateness} |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15, help="seconds of wrk per system")
    parser.add_argument(
        "--warmup", type=float, default=1, help="seconds of light warm-up (wrk -t1 -c4; 0: none)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--many",
        type=int,
        default=100,
        help="areas (flows) sharing the load in (h100) and (n100); 0: skip",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=90.0,
        help="longest wait for the lines after a wrk run",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="desktop: seconds between its engine listening and the warm-up",
    )
    parser.add_argument(
        "--only", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}"
    )
    parser.add_argument(
        "--node-red-dir",
        type=Path,
        default=_nodered.DEFAULT_DIR,
        help="npm prefix Node-RED is installed into (once)",
    )
    args = parser.parse_args()
    only = [v.strip() for v in args.only.split(",") if v.strip()]
    unknown = set(only) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(sorted(unknown))}")
    if args.many <= 0:
        only = [v for v in only if v not in ("n100", "h100")]
    for key in ("n100", "h100"):
        LABELS[key] = LABELS[key].replace("100", str(args.many), 1)

    notes: list[str] = []
    node_red: str | None = None
    if {"n", "n100"} & set(only):
        node_red, note = _nodered.ensure_installed(args.node_red_dir)
        notes.append(note)
        print(f"  {note}", flush=True)
        if node_red is None:
            only = [v for v in only if v not in ("n", "n100")]

    t_begin = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hookline-bench-sbs-") as tmp:
        work = Path(tmp)
        for key in VARIANTS:
            if key not in only:
                continue
            many = args.many if key.endswith("100") else 1
            label = LABELS[key].format(many=args.many)
            print(f"  {label}: starting (load average {os.getloadavg()[0]:.1f}) ...", flush=True)
            try:
                if key == "a":
                    system = start_bare(work)
                elif key in ("n", "n100"):
                    system = start_nodered(key, many, work, args.node_red_dir)
                elif key in ("h", "h100"):
                    system = start_serve(key, many, work)
                else:
                    system = start_desktop(key, many, work, args.settle)
                results[key] = measure(system, args, work)
            except Exception as exc:  # one system failing must not hide the others
                notes.append(f"{label}: FAILED: {exc}")
                print(f"  {label}: FAILED: {exc}", flush=True)
                continue
            r = results[key]
            print(
                f"  {label}: {r['rps']:,.0f} req/s, p99 {ms(r['p99_ms'])} ms"
                + (
                    f", {r['finished_during_load_per_s']:,.0f} runs finished/s, drained in "
                    f"{r['drain_s']:.1f} s"
                    if "drain_s" in r
                    else ""
                ),
                flush=True,
            )

    figures: dict[str, Any] = {
        "bench": "side_by_side",
        "duration_s": args.duration,
        "connections": args.connections,
        "threads": args.threads,
        "many": args.many,
        "node_red": node_red,
        "total_s": time.monotonic() - t_begin,
        "notes": notes,
        "results": results,
    }
    print()
    print(
        f"Side by side: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
        f"~100-byte JSON POST, reaction: append a line to a file ({os.cpu_count()} cores, "
        "shared: compare ratios)"
    )
    print()
    for row in table(results, args.many):
        print(row)
    print()

    def get(key: str, name: str) -> float | None:
        value = results.get(key, {}).get(name)
        return None if value is None else float(value)

    ratios: dict[str, Any] = {}
    for key in VARIANTS:
        if key not in results or key == "a":
            continue
        against_n = "n100" if key.endswith("100") and "n100" in results else "n"
        line = []
        if "a" in results:
            line.append(f"req/s {fmt_ratio(ratio(get(key, 'rps'), get('a', 'rps')))} of (a)")
        ratios[key] = {"rps_vs_bare": ratio(get(key, "rps"), get("a", "rps"))}
        if key not in ("n", "n100") and against_n in results:
            r_rps = ratio(get(key, "rps"), get(against_n, "rps"))
            r_fin = ratio(
                get(key, "finished_during_load_per_s"), get(against_n, "finished_during_load_per_s")
            )
            line.append(
                f"{fmt_ratio(r_rps)} req/s and {fmt_ratio(r_fin)} runs finished/s of "
                f"({against_n.replace('100', str(args.many))})"
            )
            ratios[key].update(
                {"against": against_n, "rps_vs_nodered": r_rps, "finished_vs_nodered": r_fin}
            )
        if key == "d" and "h" in results:
            r_rps, r_fin = (
                ratio(get("d", n), get("h", n)) for n in ("rps", "finished_during_load_per_s")
            )
            line.append(f"{fmt_ratio(r_rps)} req/s and {fmt_ratio(r_fin)} runs finished/s of (h)")
            ratios[key].update({"rps_vs_serve": r_rps, "finished_vs_serve": r_fin})
        if line:
            print(f"  {LABELS[key].format(many=args.many)}: " + "; ".join(line))
    figures["ratios"] = ratios
    print()

    checks: dict[str, bool] = {}
    print("Counts (lines in the file = accepted events = succeeded runs):")
    for key in VARIANTS:
        if key in results and key != "a":
            ok, text = check_counts(results[key], args.connections)
            checks[key] = ok
            print(f"  {'ok ' if ok else 'NO '} {LABELS[key].format(many=args.many)}: {text}")
    figures["counts_ok"] = checks
    print()

    targets: dict[str, bool | None] = {}

    def target(name: str, value: float | None, goal: float, text: str, below: bool = False) -> None:
        met = None if value is None else (value < goal if below else value >= goal)
        targets[name] = met
        shown = "n/a" if value is None else f"{value:.2f}"
        verdict = "not measured" if met is None else ("met" if met else "NOT met")
        print(f"  {text}: {shown} (target {'<' if below else '≥'} {goal:g}) {verdict}")

    print("Targets (issue 12):")
    h_vs = ratios.get("h", {})
    target("serve_rps_vs_nodered", h_vs.get("rps_vs_nodered"), TARGET_VS_NODERED, "(h) req/s / (n)")
    target(
        "serve_finished_vs_nodered",
        h_vs.get("finished_vs_nodered"),
        TARGET_VS_NODERED,
        "(h) runs finished/s / (n)",
    )
    target("serve_p99_ms", get("h", "p99_ms"), TARGET_P99_MS, "(h) p99 ms", below=True)
    many_vs = ratios.get("h100", {})
    many_n = many_vs.get("against", "n").replace("100", str(args.many))
    target(
        "serve_many_rps_vs_nodered",
        many_vs.get("rps_vs_nodered"),
        TARGET_MANY_VS_NODERED,
        f"(h{args.many}) req/s / ({many_n})",
    )
    target(
        "serve_many_finished_vs_nodered",
        many_vs.get("finished_vs_nodered"),
        TARGET_MANY_VS_NODERED,
        f"(h{args.many}) runs finished/s / ({many_n})",
    )
    d_vs = ratios.get("d", {})
    target(
        "desktop_rps_vs_serve", d_vs.get("rps_vs_serve"), TARGET_DESKTOP_VS_SERVE, "(d) req/s / (h)"
    )
    target(
        "desktop_finished_vs_serve",
        d_vs.get("finished_vs_serve"),
        TARGET_DESKTOP_VS_SERVE,
        "(d) runs finished/s / (h)",
    )
    probe = results.get("d", {}).get("qt_probe", {}).get("load", {})
    target(
        "desktop_probe_p99_ms",
        probe.get("p99_ms"),
        TARGET_PROBE_P99_MS,
        "(d) Qt probe p99 ms during the load",
        below=True,
    )
    all_counts = bool(checks) and all(checks.values())
    targets["counts_agree"] = all_counts if checks else None
    verdict = "not measured" if not checks else ("met" if all_counts else "NOT met")
    print(f"  lines = accepted = succeeded in every variant: {verdict}")
    figures["targets"] = targets
    for note in notes:
        print(f"  note: {note}")
    print(f"  total time {figures['total_s']:.0f} s")
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
