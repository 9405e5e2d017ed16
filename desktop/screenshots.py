"""Render each main screen with sample data to PNG files (offscreen, nothing of yours
touched: a temporary data folder and secrets kept in memory).

    python -m desktop.screenshots OUTDIR [--width 1080 --height 680]

The sample automations are created and run through a real engine: timer and
notification areas run once ("Run now"), and one calls a closed local port, so the
activity shows a failure as it really looks.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSize, Qt  # after choosing the platform
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QMainWindow, QWidget

log = logging.getLogger("hookline.screenshots")

#: (file name, sidebar key) of each main screen, in the README's order.
SCREENS = (
    ("automations", "automations"),
    ("presets", "presets"),
    ("services", "services"),
    ("accounts", "accounts"),
    ("activity", "activity"),
    ("settings", "settings"),
)
#: Qt's PNG "quality" is its compression: 0 makes the smallest files (same pixels).
PNG_QUALITY = 0
#: How long a screen may take to load its data before it is captured (seconds).
SETTLE = 0.8


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def sample_areas(port: int, folder: Path) -> list[dict[str, Any]]:
    """Automations of the kinds people make first, in the import format."""
    return [
        {"name": "Morning briefing",
         "trigger": {"service": "timer", "trigger": "weekdays_at",
                     "params": {"time": "07:30", "days": ["mon", "tue", "wed", "thu", "fri"]}},
         "reactions": [{"service": "notify", "reaction": "notify",
                        "params": {"title": "Good morning",
                                   "message": "Stand-up at 09:30, then the release review."}}]},
        {"name": "Hourly heartbeat",
         "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
         "reactions": [{"service": "files", "reaction": "append_text",
                        "params": {"path": str(folder / "heartbeat.log"),
                                   "text": "alive at {{ trigger.fired_at }}\n"}}]},
        {"name": "Ping the home server",
         "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "15m"}},
         "reactions": [{"service": "http", "reaction": "request",
                        "params": {"method": "POST",
                                   "url": f"http://127.0.0.1:{port}/api/ping",
                                   "body": '{"from": "hookline"}'}}]},
        {"name": "Weekend reminder",
         "trigger": {"service": "timer", "trigger": "daily_at", "params": {"time": "10:00"}},
         "condition": "{{ trigger.missed > 3 }}",
         "reactions": [{"service": "notify", "reaction": "notify",
                        "params": {"title": "Water the plants"}}]},
        {"name": "GitHub issues to a notification",
         "trigger": {"service": "webhook", "trigger": "github",
                     "params": {"secret": "sample-secret", "events": "issues"}},
         "reactions": [{"service": "notify", "reaction": "notify",
                        "params": {"title": "{{ trigger.event }} on {{ trigger.repository }}"}}]},
        {"name": "Release notes to a file",
         "enabled": False,
         "trigger": {"service": "rss", "trigger": "new_item",
                     "params": {"url": "https://example.org/releases.xml"}},
         "condition": "{{ 'release' in trigger.title | lower }}",
         "reactions": [{"service": "files", "reaction": "append_text",
                        "params": {"path": str(folder / "releases.txt"),
                                   "text": "{{ trigger.title }} {{ trigger.link }}\n"}}]},
    ]


async def settle(seconds: float = SETTLE) -> None:
    """Let the screens load their data and paint."""
    await asyncio.sleep(seconds)  # the qasync loop paints and delivers meanwhile


def save(widget: QWidget, path: Path) -> Path:
    if not widget.grab().save(str(path), "PNG", PNG_QUALITY):
        raise OSError(f"could not write {path}")
    print(path, flush=True)
    return path


async def populate(bridge: Any, folder: Path) -> dict[str, str]:
    """Create the sample automations and give them some history; name -> id."""
    from engine.areas import AreaSpec
    from engine.errors import HooklineError

    ids: dict[str, str] = {}
    for data in sample_areas(closed_port(), folder):
        try:
            area = await bridge.save_area(AreaSpec.from_dict(data))
        except HooklineError as exc:  # a service still being written: leave it out
            log.warning("sample %r left out: %s", data["name"], exc)
            continue
        ids[area.name] = area.id
    from engine.auth.session import Account

    store = bridge.engine.accounts.store  # sample accounts: no provider to sign in to
    await bridge.call(store.save(Account("sample-gh", "github", "oauth2", "octocat",
                                         ["repo", "gist"])))
    await bridge.call(store.save(Account("sample-tg", "telegram", "api_key", "@home_bot", [],
                                         status="needs_reconnect",
                                         last_error="the bot token was revoked")))
    runs = ["Hourly heartbeat", "Morning briefing", "Weekend reminder", "Hourly heartbeat",
            "Ping the home server"]
    for name in runs:
        if name in ids:
            await bridge.run_now(ids[name])
            await bridge.call(bridge.engine.wait_idle())
    return ids


def _page_classes() -> dict[str, Callable[..., QWidget]]:
    """The screens that can be imported now (for when the main window cannot yet)."""
    found = {}
    for key, _title, class_name in (
            ("automations", "Automations", "AutomationsPage"),
            ("presets", "Presets", "PresetsPage"), ("services", "Services", "ServicesPage"),
            ("activity", "Activity", "ActivityPage"),
            ("settings", "Settings", "SettingsPage")):
        try:
            module = importlib.import_module(f"desktop.pages.{key}")
        except ImportError as exc:
            log.warning("screen %s not available yet: %s", key, exc)
            continue
        found[key] = getattr(module, class_name)
    return found


async def render(outdir: Path, size: QSize) -> list[Path]:
    from desktop.bridge import EngineBridge
    from desktop.engine_thread import EngineThread
    from engine.app import Engine
    from engine.secrets import MemorySecretStore
    from engine.settings import Settings

    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="hookline-screens-") as tmp:
        data = Path(tmp) / "Hookline"
        # The usual port when it is free, so the settings screen shows what users see.
        port = 8787 if port_free(8787) else 0
        settings = Settings.from_mapping({"listener_port": port, "retry_delay": 0.01,
                                          "reaction_attempts": 2})
        engine = Engine(data, settings=settings, secrets=MemorySecretStore())
        thread = EngineThread(engine)
        await thread.start()
        bridge = EngineBridge(engine, thread)
        try:
            ids = await populate(bridge, Path(tmp))
            try:
                from desktop.main_window import MainWindow
            except ImportError as exc:
                log.warning("main window not available yet (%s): screens one by one", exc)
                written += await _render_pages(bridge, outdir, size)
            else:
                written += await _render_window(MainWindow(bridge), bridge, ids, outdir,
                                                size)
        finally:
            bridge.close()
            await thread.stop()
    return written


async def _render_window(window: QMainWindow, bridge: Any, ids: dict[str, str],
                         outdir: Path, size: QSize) -> list[Path]:
    written = []
    window.resize(size)
    window.show()
    await settle()
    for name, key in SCREENS:
        page = window.show_screen(key)  # type: ignore[attr-defined]
        if key == "activity":
            await _select_failure(page, bridge)
        if key == "automations":
            await _explain_failure(page, bridge)
        await settle()
        written.append(save(window, outdir / f"{name}.png"))
    editor = _open_editor(bridge, window, ids)
    if editor is not None:
        await settle()
        written.append(save(editor, outdir / "editor.png"))
        editor.close()
    written += await _render_error(bridge, window, outdir)
    written += await _render_filter_builder(bridge, window, outdir)
    written += await _render_webhook_test(bridge, window, outdir)
    written += await _render_tray(bridge, window, outdir)
    written += await _render_lifecycle(bridge, window, outdir)
    window.close()
    return written


async def _render_pages(bridge: Any, outdir: Path, size: QSize) -> list[Path]:
    written = []
    for key, page_class in _page_classes().items():
        frame = QMainWindow()
        page = page_class(bridge, frame)
        frame.setCentralWidget(page)
        frame.resize(size)
        frame.show()
        await settle()
        if key == "activity":
            await _select_failure(page, bridge)
            await settle()
        written.append(save(frame, outdir / f"{key}.png"))
        frame.close()
    return written


async def _explain_failure(page: QWidget, bridge: Any) -> None:
    """Select the automation whose run failed, so its "why" pane explains it."""
    failed = await bridge.runs(status="failed", limit=1)
    select = getattr(page, "select", None)
    pane = getattr(page, "why", None)
    if failed and callable(select) and pane is not None:
        select(failed[0]["area_id"])
        for _ in range(50):  # up to 5 s for the engine's thread to work it out
            await settle(0.1)
            if pane.area_id == failed[0]["area_id"] and "…" not in pane.answer.text():
                break


async def _select_failure(page: QWidget, bridge: Any) -> None:
    """Show a failed run's details on the activity screen, if the screen can."""
    failed = await bridge.runs(status="failed", limit=1)
    select = getattr(page, "select_run", None)
    if failed and callable(select):
        await settle(0.3)
        select(failed[0]["id"])


def _open_editor(bridge: Any, parent: QWidget, ids: dict[str, str]) -> QWidget | None:
    try:
        from desktop.editor import AreaEditor
    except ImportError as exc:
        log.warning("editor not available yet: %s", exc)
        return None
    area_id = ids.get("Ping the home server") or next(iter(ids.values()), None)
    editor = AreaEditor(bridge, parent, area_id=area_id)
    editor.show()
    return editor


#: An automation whose Test meets a value its event lacks (docs/screenshots/error-message.png).
MISSING_VALUE = {
    "name": "Door bell",
    "trigger": {"service": "webhook", "trigger": "incoming"},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "{{ trigger.body.title }}",
                              "message": "Someone is at the door."}}],
}


async def _render_error(bridge: Any, parent: QWidget, outdir: Path) -> list[Path]:
    """The editor after a Test whose template asks for a value the event does not have:
    a problem as the user reads it."""
    from desktop.editor import AreaEditor

    editor = AreaEditor(bridge, parent, spec_dict=MISSING_VALUE)
    editor.pasted_body = {"text": "Ding dong", "door": "front"}
    editor.show()
    await settle()
    await editor.run_test()
    await settle()
    written = [save(editor, outdir / "error-message.png")]
    editor.close()
    return written


#: An automation whose condition is built from rules (docs/screenshots/filter-builder.png).
FROST_WARNING = {
    "name": "Frost warning",
    "trigger": {"service": "webhook", "trigger": "incoming"},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "Cover the plants: {{ trigger.body.temperature }} °C"}}],
}


async def _render_filter_builder(bridge: Any, parent: QWidget, outdir: Path) -> list[Path]:
    """The editor's condition as rules, with the fields of a sample body to choose from."""
    from desktop.editor import AreaEditor
    from engine.filters import Filter, Rule, to_condition

    rules = Filter((Rule("trigger.body.title", "contains", "frost"),
                    Rule("trigger.body.temperature", "lt", "2")))
    editor = AreaEditor(bridge, parent, spec_dict=dict(FROST_WARNING,
                                                       condition=to_condition(rules)))
    editor.pasted_body = {"title": "Frost tonight", "temperature": "1.5", "station": "Garden"}
    editor.show()
    await editor.load_sample()
    for row in editor.condition_builder.rows:
        row.field_combo.refresh()  # as it does when it opens: the sample's names
    await settle()
    editor.scroller.ensureWidgetVisible(editor.condition_builder)
    await settle(0.2)
    written = [save(editor, outdir / "filter-builder.png")]
    editor.close()
    return written


#: A webhook automation that has had a delivery (docs/screenshots/webhook-test.png).
DOOR_BELL = dict(MISSING_VALUE, name="Door bell to a notification", reactions=[
    {"service": "notify", "reaction": "notify",
     "params": {"title": "{{ trigger.body.who }} is at the {{ trigger.body.door }}"}}])


async def _render_webhook_test(bridge: Any, parent: QWidget, outdir: Path) -> list[Path]:
    """The editor's Test of a webhook automation, run with its last real delivery."""
    import aiohttp

    from desktop.editor import AreaEditor
    from engine.areas import AreaSpec

    area = await bridge.save_area(AreaSpec.from_dict(DOOR_BELL))
    url = await bridge.webhook_url(area.id)
    if url is None:
        log.warning("no webhook listener: webhook-test.png left out")
        return []
    async with aiohttp.ClientSession() as session, \
            session.post(url, json={"who": "The postman", "door": "front door"}) as resp:
        resp.raise_for_status()
    for _ in range(100):  # its run (the delivery is the Test's event once it is kept)
        if await bridge.runs(area.id):
            break
        await settle(0.05)
    editor = AreaEditor(bridge, parent, area_id=area.id)
    editor.show()
    await settle()
    await editor.run_test()
    await settle(0.3)
    editor.scroller.ensureWidgetVisible(editor.result_box)
    bar = editor.result_text.verticalScrollBar()
    bar.setValue(bar.maximum())  # down to what the reaction would send
    await settle(0.2)
    written = [save(editor, outdir / "webhook-test.png")]
    editor.close()
    return written


async def _render_tray(bridge: Any, window: QWidget, outdir: Path) -> list[Path]:
    from desktop.tray import Tray

    tray = Tray(bridge, window)  # type: ignore[arg-type]
    try:
        await tray.refresh()
        tray.menu.adjustSize()
        tray.menu.show()
        tray.recent_menu.adjustSize()
        await settle(0.2)
        menu, recent = tray.menu.grab(), tray.recent_menu.grab()
        tray.menu.hide()
        # The menu with its "Recent activity" submenu open beside it, as on a desktop.
        row = tray.menu.actionGeometry(tray.recent_menu.menuAction()).top()
        canvas = QPixmap(menu.width() + recent.width() - 2,
                         max(menu.height(), row + recent.height()))
        canvas.fill(Qt.GlobalColor.transparent)
        painter = QPainter(canvas)
        painter.drawPixmap(0, 0, menu)
        painter.drawPixmap(menu.width() - 2, row, recent)
        painter.end()
        path = outdir / "tray.png"
        if not canvas.save(str(path), "PNG", PNG_QUALITY):
            raise OSError(f"could not write {path}")
        print(path, flush=True)
        return [path]
    finally:
        tray.close()


def _life_areas() -> list[dict[str, Any]]:
    """Automations in each state the list shows apart: waiting for its window, done,
    a time capsule."""
    from datetime import datetime, timedelta

    now = datetime.now()
    tomorrow, year_ago = now + timedelta(days=1), now - timedelta(days=365)
    note = [{"service": "notify", "reaction": "notify", "params": {"title": "Hello"}}]
    every = {"service": "timer", "trigger": "every", "params": {"interval": "1h"}}
    return [
        {"name": "Office hours ping", "trigger": every, "reactions": note,
         "only_during": {"days": [f"{tomorrow:%a}".lower()], "from": "09:00",
                         "until": "17:00"}},
        {"name": "Summer sale reminder", "trigger": every, "reactions": note,
         "active_from": f"{year_ago:%Y-%m-%d} 09:00",
         "active_until": f"{year_ago + timedelta(days=60):%Y-%m-%d} 18:00"},
        {"name": "Time capsule", "trigger": {"service": "timer", "trigger": "at",
                                             "params": {"at": f"{now.year + 1}-01-01 09:00"}},
         "reactions": [{"service": "notify", "reaction": "notify",
                        "params": {"title": "A note from the past",
                                   "message": "Did you keep your promise?"}}]},
    ]


async def _render_lifecycle(bridge: Any, window: QWidget, outdir: Path) -> list[Path]:
    """The automations list with states: snoozed, waiting, firing once, done."""
    from datetime import UTC, datetime, timedelta

    from engine.areas import AreaSpec

    for data in _life_areas():
        await bridge.save_area(AreaSpec.from_dict(data))
    snoozed = next((a for a in bridge.areas() if a.name == "Hourly heartbeat"), None)
    if snoozed is not None:
        await bridge.snooze(snoozed.id, datetime.now(UTC) + timedelta(hours=2))
    window.show_screen("automations")  # type: ignore[attr-defined]
    await settle()
    return [save(window, outdir / "lifecycle.png")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m desktop.screenshots",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--width", type=int, default=1080)
    parser.add_argument("--height", type=int, default=680)
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import qasync

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Hookline")
    app.setQuitOnLastWindowClosed(False)  # closing one screen must not end the run
    # The window's loop only (as the app does): qasync.run would make every new loop a
    # Qt one, the engine thread's too, and Qt's loop cannot run off the main thread.
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        written = loop.run_until_complete(render(args.outdir, QSize(args.width, args.height)))
    print(f"{len(written)} screenshots in {args.outdir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
