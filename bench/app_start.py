"""Desktop app: time from process start to the main window's first paint, and memory
when idle in the tray with 100 areas, as ratios against a bare Qt baseline.

Every process runs offscreen (``QT_QPA_PLATFORM=offscreen``) on its own temporary data
folder and reports ``READY {json}`` at the first paint of its window. "Process start"
is the Python process's creation time as the OS records it (psutil), so the
interpreter's own start-up counts and the keyring wrapper around the app does not.

  baseline   python -c: QApplication + a QWidget shown (first paint), then hidden
  app        python -c: ``desktop.app.main(data_dir)`` as the ``hookline`` command runs
             it (engine start, migrations, every screen built, tray), first paint of
             the main window; on an empty data folder (a first start)
  app-100    the same on a folder populated beforehand with 100 areas (50 timer/every
             1h, 50 files/file_created polling an empty folder every 10 min, reaction
             notify/notify); its window is then hidden, as when closed to the tray, and
             its RSS is measured after a settle, next to the baseline's (hidden too)

Targets (issue): start < 2.5 s; RSS idle in the tray < 250 MB.

    .venv/bin/python bench/app_start.py [--runs 3] [--areas 100] [--settle 10] [--window 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH, PYTHON, ROOT, Child, emit_json, fmt_ratio, ratio

TARGET_START_S = 2.5
TARGET_RSS_MB = 250.0
MB = 1024 * 1024

#: Reports the first paint of the first window shown (a QMainWindow for the app),
#: then hides it when asked (idle "in the tray"). Put before the code under test.
_FIRST_PAINT = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget, QMainWindow

class FirstPaint(QObject):
    def __init__(self, kind, hide):
        super().__init__()
        self.kind, self.hide, self.done = kind, hide, False

    def eventFilter(self, obj, event):
        if (not self.done and event.type() == QEvent.Type.Paint
                and isinstance(obj, self.kind) and obj.isVisible()):
            self.done = True
            shown = time.time()
            QApplication.instance().removeEventFilter(self)

            def report():
                if self.hide:
                    obj.hide()
                print("READY " + json.dumps({{"pid": os.getpid(), "shown": shown,
                                              "hidden": self.hide}}), flush=True)

            QTimer.singleShot(0, report)
        return False
"""

BASELINE = _FIRST_PAINT + r"""
app = QApplication(sys.argv[:1])
watch = FirstPaint(QWidget, {hide!r})
app.installEventFilter(watch)
window = QWidget()
window.setWindowTitle("baseline")
window.resize(1080, 680)
window.show()
app.exec()
"""

APP = _FIRST_PAINT + r"""
from pathlib import Path
app = QApplication(sys.argv[:1])
watch = FirstPaint(QMainWindow, {hide!r})
app.installEventFilter(watch)
from desktop.app import main
sys.exit(main(Path({data!r})))
"""

ENV = {"QT_QPA_PLATFORM": "offscreen"}


def started_in(child: Child) -> float:
    """Seconds from the Python process's creation to its first paint."""
    created = psutil.Process(child.pid).create_time()
    return float(child.info["shown"]) - created


def prepare(data: Path) -> None:
    """A data folder whose listener takes any free port (8787 may be in use)."""
    data.mkdir(parents=True, exist_ok=True)
    (data / "settings.json").write_text(json.dumps({"listener_port": 0}), encoding="utf-8")


def launch(code: str, name: str, keyring: bool, timeout: float) -> Child:
    child = Child([PYTHON, "-c", code], name=name, keyring=keyring, env=ENV)
    try:
        child.wait_ready(timeout)
    except BaseException:
        child.stop()
        raise
    return child


def measure_start(code: str, name: str, keyring: bool, timeout: float) -> float:
    child = launch(code, name, keyring, timeout)
    try:
        return started_in(child)
    finally:
        child.stop()


def rss(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="start-ups measured per variant")
    parser.add_argument("--areas", type=int, default=100)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds hidden before memory is measured")
    parser.add_argument("--window", type=float, default=5.0, help="seconds of RSS samples")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="longest wait for one window to appear")
    args = parser.parse_args()

    figures: dict[str, Any] = {"bench": "app_start", "runs": args.runs, "areas": args.areas,
                               "settle_s": args.settle, "window_s": args.window}
    base_starts: list[float] = []
    app_starts: list[float] = []
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="hookline-bench-app-") as tmp:
        work = Path(tmp)
        try:
            # Interleaved, so a noisy moment hurts both variants alike.
            for run in range(args.runs):
                base_starts.append(measure_start(
                    BASELINE.format(root=str(ROOT), hide=False), "baseline", False,
                    args.timeout))
                data = work / f"fresh-{run}"
                prepare(data)
                app_starts.append(measure_start(
                    APP.format(root=str(ROOT), hide=False, data=str(data)), "app", True,
                    args.timeout))
                print(f"  run {run + 1}: baseline {base_starts[-1]:.2f} s, "
                      f"app {app_starts[-1]:.2f} s", flush=True)

            populated = work / "populated"
            prepare(populated)
            watched = work / "watched"
            watched.mkdir()
            timers = args.areas // 2
            t0 = time.monotonic()
            populate = Child([PYTHON, str(BENCH / "_serve_engine.py"),
                              "--data-dir", str(populated), "--timer-areas", str(timers),
                              "--timer-interval", "1h", "--poll-areas",
                              str(args.areas - timers), "--poll-folder", str(watched),
                              "--poll-interval", "600", "--populate-only",
                              "--memory-secrets"], name="populate")
            children.append(populate)
            populate.wait_ready(180)
            populate.proc.wait(60)
            figures["populate_s"] = time.monotonic() - t0

            baseline = launch(BASELINE.format(root=str(ROOT), hide=True), "baseline-idle",
                              False, args.timeout)
            children.append(baseline)
            app = launch(APP.format(root=str(ROOT), hide=True, data=str(populated)),
                         "app-idle", True, args.timeout)
            children.append(app)
            figures["start_with_areas_s"] = started_in(app)
            procs = {"baseline": psutil.Process(baseline.pid), "app": psutil.Process(app.pid)}
            time.sleep(args.settle)
            samples: dict[str, list[float]] = {n: [] for n in procs}
            deadline = time.monotonic() + args.window
            while True:
                for n, p in procs.items():
                    samples[n].append(rss(p))
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            threads = procs["app"].num_threads()
            if app.proc.poll() is not None:
                raise RuntimeError(f"the app exited while idle\n{app.log_tail()}")
        finally:
            for child in reversed(children):
                child.stop()

    base_start = statistics.median(base_starts)
    app_start = statistics.median(app_starts)
    rss_mb = {n: statistics.median(v) / MB for n, v in samples.items()}
    peak_mb = {n: max(v) / MB for n, v in samples.items()}
    print(f"Desktop app start (offscreen, median of {args.runs}): "
          f"{app_start:.2f} s on an empty data folder (target < {TARGET_START_S:g} s), "
          f"{figures['start_with_areas_s']:.2f} s with {args.areas} areas; "
          f"bare Qt window {base_start:.2f} s; ratio {fmt_ratio(ratio(app_start, base_start))}")
    print(f"Idle in the tray with {args.areas} areas (window hidden, {args.settle:g} s "
          f"settled, median of {len(samples['app'])} samples): app {rss_mb['app']:.1f} MB "
          f"RSS (target < {TARGET_RSS_MB:g} MB, peak {peak_mb['app']:.1f}), bare Qt window "
          f"{rss_mb['baseline']:.1f} MB; ratio "
          f"{fmt_ratio(ratio(rss_mb['app'], rss_mb['baseline']))}; {threads} threads")
    ok_start = app_start < TARGET_START_S
    ok_rss = rss_mb["app"] < TARGET_RSS_MB
    print(f"  targets: start {'met' if ok_start else 'MISSED'}, "
          f"memory {'met' if ok_rss else 'MISSED'}")
    figures.update({
        "start_s": {"baseline": base_start, "app": app_start},
        "start_runs_s": {"baseline": base_starts, "app": app_starts},
        "ratio_start_vs_baseline": ratio(app_start, base_start),
        "rss_mb": rss_mb,
        "rss_peak_mb": peak_mb,
        "ratio_rss_vs_baseline": ratio(rss_mb["app"], rss_mb["baseline"]),
        "app_threads": threads,
        "target_start_s": TARGET_START_S,
        "target_rss_mb": TARGET_RSS_MB,
        "start_target_met": ok_start,
        "rss_target_met": ok_rss,
    })
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
