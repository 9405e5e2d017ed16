"""Runs the desktop app offscreen for bench/side_by_side.py (not a benchmark itself).

1. Writes the data folder's settings (listener port, no pause after failures) and
   creates ``--webhook-areas`` webhook areas whose reaction appends a line to
   ``--append-path``, with an engine started and closed again (as after a restart).
2. Creates the QApplication, installs the Qt thread's probe (a precise 10 ms
   single-shot QTimer re-armed at each timeout; lateness = how late it fired), then
   calls ``desktop.app.main(data_dir)``: the real app, until it quits.
3. A watcher thread prints ``READY {json}`` (pid, webhook URLs, probe file) once the
   engine has started (its control file exists), the listener answers and the app had
   ``--settle`` s to settle, and rewrites ``--status-file`` every 0.1 s: lines in the
   append file, probe samples so far. Probe samples go to ``--probe-file`` as
   ``wall_time lateness_ms`` lines.

SIGTERM and SIGINT quit the app (QApplication.quit(), as the tray's Quit does) unless
the app installs its own handlers. Relies only on ``desktop.app.main(data_dir)`` and on
the engine's data folder, so it works whichever thread the app runs its engine on. Run
it under ``scripts/with-keyring`` (webhook tokens live in the OS keyring) with
``QT_QPA_PLATFORM=offscreen``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._serve_engine import reaction

PROBE_MS = 10
CONTROL_FILE = "control.json"  # engine.control's file: present while an engine runs


async def populate(data_dir: Path, areas: int, append_path: str) -> list[str]:
    """Create the webhook areas with a normal engine start, then close it."""
    from engine.app import Engine
    from engine.areas import AreaSpec

    engine = Engine(data_dir)
    await engine.start()
    urls: list[str] = []
    try:
        for n in range(areas):
            spec = {
                "name": f"bench webhook {n + 1}",
                "trigger": {"service": "webhook", "trigger": "incoming"},
                "reactions": [reaction("append", append_path, "webhook")],
            }
            area = await engine.create_area(AreaSpec.from_dict(spec))
            url = await engine.webhook_url(area.id)
            if not url:
                raise SystemExit(f"no webhook URL for area {area.id}")
            urls.append(url)
    finally:
        await engine.aclose()
    return urls


class Probe:
    """Re-arms a precise single-shot timer; records how late each timeout fires."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.samples: list[tuple[float, float]] = []  # (wall time, lateness ms)
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._fired)
        self._due = 0.0

    def start(self) -> None:
        self._due = time.monotonic() + PROBE_MS / 1000
        self.timer.start(PROBE_MS)

    def _fired(self) -> None:
        now = time.monotonic()
        self.samples.append((time.time(), max(0.0, (now - self._due) * 1000)))
        self._due = now + PROBE_MS / 1000
        self.timer.start(PROBE_MS)


class Lines:
    """Counts the lines of a file as it grows (reads only the new bytes)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.count = path, 0, 0

    def read(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                while chunk := f.read(1 << 20):
                    self.offset += len(chunk)
                    self.count += chunk.count(b"\n")
        except FileNotFoundError:
            pass
        return self.count


def listening(url: str) -> bool:
    """The listener answers (a GET is refused with 405 and journals nothing)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            pass
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def watch(args: argparse.Namespace, urls: list[str], probe: Probe, stop: threading.Event) -> None:
    data_dir = Path(args.data_dir)
    deadline = time.monotonic() + args.ready_timeout
    while not stop.is_set():
        if (data_dir / CONTROL_FILE).exists() and listening(urls[0]):
            break
        if time.monotonic() > deadline:
            print(f"the app did not start within {args.ready_timeout:g} s", file=sys.stderr)
            return
        time.sleep(0.1)
    started = time.time()
    stop.wait(args.settle)  # the app collects and freezes its heap 2 s after its window
    lines = Lines(Path(args.append_path))
    status = Path(args.status_file) if args.status_file else None
    written = 0
    with open(args.probe_file, "a", encoding="utf-8") as probe_out:
        ready = False
        while True:
            done = stop.is_set()
            samples = probe.samples[written:]
            written += len(samples)
            probe_out.write("".join(f"{t:.4f} {ms:.3f}\n" for t, ms in samples))
            probe_out.flush()
            if status is not None:
                tmp = status.with_suffix(".tmp")
                tmp.write_text(
                    json.dumps({"t": time.time(), "lines": lines.read(), "probe_samples": written})
                )
                os.replace(tmp, status)
            if not ready:
                ready = True
                print(
                    "READY "
                    + json.dumps(
                        {"pid": os.getpid(), "urls": urls, "started": started, "areas": len(urls)}
                    ),
                    flush=True,
                )
            if done:
                return
            stop.wait(0.1)


def quit_on_signals() -> None:
    """SIGTERM/SIGINT quit the app as its tray's Quit does (until the app handles them
    itself: its own handlers, installed later, replace these). Python runs the handler
    at the probe's next timeout at the latest, i.e. within ~10 ms."""
    from PySide6.QtWidgets import QApplication

    def handler(signum: int, _frame: Any) -> None:
        app = QApplication.instance()
        if app is not None:
            app.quit()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-areas", type=int, default=1)
    parser.add_argument("--append-path", required=True)
    parser.add_argument("--status-file")
    parser.add_argument("--probe-file", required=True)
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds between the engine listening and READY"
    )
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    args = parser.parse_args()

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "settings.json").write_text(
        json.dumps({"listener_port": args.port, "pause_after_failures": 0}), encoding="utf-8"
    )
    urls = asyncio.run(populate(data_dir, args.webhook_areas, args.append_path))
    with contextlib.suppress(FileNotFoundError):  # left by a crashed engine only
        (data_dir / CONTROL_FILE).unlink()

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    probe = Probe()
    probe.start()
    quit_on_signals()
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(args, urls, probe, stop), daemon=True)
    watcher.start()
    from desktop.app import main as app_main

    try:
        code = app_main(data_dir)
    finally:
        stop.set()
        watcher.join(5)
        del app
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
