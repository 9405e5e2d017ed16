"""``hookline --self-test``: check that this installation works, end to end, offscreen.

On a temporary data folder (nothing of yours touched, secrets kept in memory) it starts
a real engine, migrates its database, runs a timer area and a webhook area to the end,
opens and closes the main window, then stops the engine. Each step prints ``ok`` or
``FAILED`` with the reason; the exit status is 0 only if every step worked. Installers
and packaging tests run it on the built bundle.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

#: How long one step may wait for its run (seconds).
STEP_TIMEOUT = 20.0


class SelfTest:
    """The steps, their outcomes and what they share."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.results: list[tuple[str, bool]] = []
        self.engine: Any = None
        self.thread: Any = None  # the engine's thread, as in the app
        self.finished: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def step(self, name: str, action: Callable[[], Awaitable[str | None]]) -> bool:
        started = time.perf_counter()
        try:
            detail = await action()
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            print(f"FAILED  {name}: {type(exc).__name__}: {reason}", flush=True)
            if os.environ.get("HOOKLINE_SELFTEST_TRACE"):
                traceback.print_exc()
            self.results.append((name, False))
            return False
        took = time.perf_counter() - started
        suffix = f" ({detail})" if detail else ""
        print(f"ok      {name}{suffix} [{took:.2f} s]", flush=True)
        self.results.append((name, True))
        return True

    # ------------------------------------------------------------------ the steps

    async def start_engine(self) -> str:
        from desktop.engine_thread import EngineThread
        from engine.app import Engine
        from engine.bus import RUN_FINISHED, Message
        from engine.secrets import MemorySecretStore
        from engine.settings import Settings
        from engine.storage.db import current_revision, head_revision

        settings = Settings.from_mapping({"listener_port": 0})
        self.engine = Engine(self.folder / "data", settings=settings,
                             secrets=MemorySecretStore())

        loop = asyncio.get_running_loop()

        def finished(area_id: str, data: dict[str, Any]) -> None:
            future = self.finished.setdefault(area_id, loop.create_future())
            if not future.done():
                future.set_result(data)

        def on_finished(message: Message) -> None:  # on the engine's thread
            loop.call_soon_threadsafe(finished, str(message.data.get("area_id")),
                                      message.data)

        self.engine.bus.subscribe(RUN_FINISHED, on_finished)
        self.thread = EngineThread(self.engine)
        await self.thread.start()

        async def read_revision() -> str | None:
            async with self.engine.db.connect() as conn:
                return await conn.run_sync(current_revision)  # type: ignore[no-any-return]

        revision = await self.thread.call(read_revision())
        if revision != head_revision():
            raise RuntimeError(f"database at revision {revision}, expected {head_revision()}")
        port = self.engine.listener.port if self.engine.listener else None
        return f"schema {revision}, webhooks on port {port}"

    async def _area(self, trigger: dict[str, Any], out: Path, text: str) -> str:
        from engine.areas import AreaSpec

        spec = AreaSpec.from_dict({
            "name": f"Self-test: {trigger['service']}",
            "trigger": trigger,
            "reactions": [{"service": "files", "reaction": "append_text",
                           "params": {"path": str(out), "text": text}}],
        })
        area = await self.thread.call(self.engine.create_area(spec))
        # setdefault: its first run may have finished already (the engine does not wait)
        self.finished.setdefault(area.id, asyncio.get_running_loop().create_future())
        return str(area.id)

    async def _finished(self, area_id: str, out: Path, expected: str) -> None:
        try:
            data = await asyncio.wait_for(self.finished[area_id], STEP_TIMEOUT)
        except TimeoutError:
            raise TimeoutError(f"no run finished within {STEP_TIMEOUT:.0f} s") from None
        if data.get("status") != "succeeded":
            raise RuntimeError(f"run {data.get('status')}: {data.get('error')}")
        content = await asyncio.to_thread(
            lambda: out.read_text(encoding="utf-8") if out.exists() else "")
        if expected not in content:
            raise RuntimeError(f"{out.name} holds {content!r}, expected {expected!r}")

    async def timer_area(self) -> str:
        out = self.folder / "timer.txt"
        area_id = await self._area(
            {"service": "timer", "trigger": "every", "params": {"interval": "1s"}},
            out, "tick {{ trigger.fired_at }}\n")
        await self._finished(area_id, out, "tick ")
        return str(out.name)

    async def webhook_area(self) -> str:
        import aiohttp

        out = self.folder / "webhook.txt"
        area_id = await self._area(
            {"service": "webhook", "trigger": "incoming", "params": {}},
            out, "hook {{ trigger.body.greeting }}\n")
        url = await self.thread.call(self.engine.webhook_url(area_id))
        if not url:
            raise RuntimeError("the area got no webhook address")
        timeout = aiohttp.ClientTimeout(total=STEP_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                url, json={"greeting": "hello"}) as response:
            if response.status != 202:
                raise RuntimeError(f"POST answered {response.status}: {await response.text()}")
        await self._finished(area_id, out, "hook hello")
        return "POST 202"

    async def main_window(self) -> str:
        from desktop.bridge import EngineBridge
        from desktop.main_window import MainWindow
        from desktop.tasks import WidgetTasks

        bridge = EngineBridge(self.engine, self.thread)
        try:
            window = MainWindow(bridge)
            window.show()
            await asyncio.sleep(0.5)  # the screens load their data
            screens = len(window.pages)
            window.close()
            window.deleteLater()
            await WidgetTasks.cancel_all()
        finally:
            bridge.close()
        return f"{screens} screens"

    async def stop_engine(self) -> None:
        thread, self.thread = self.thread, None
        self.engine = None
        if thread is not None:
            await thread.stop()

    async def run(self) -> bool:
        if await self.step("engine starts, database migrated", self.start_engine):
            await self.step("timer area runs (timer/every 1s -> files/append_text)",
                            self.timer_area)
            await self.step("webhook area runs (webhook/incoming -> files/append_text)",
                            self.webhook_area)
            await self.step("main window opens and closes", self.main_window)

        async def stop() -> None:
            await self.stop_engine()

        await self.step("engine stops", stop)
        return all(ok for _, ok in self.results)


def main() -> int:
    """Run the self-test; 0 if every step worked, 1 otherwise."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported: no display needed
    import qasync
    from PySide6.QtWidgets import QApplication

    from engine import __version__

    print(f"Hookline {__version__} self-test ({sys.executable})", flush=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Hookline")
    app.setQuitOnLastWindowClosed(False)
    with tempfile.TemporaryDirectory(prefix="hookline-selftest-") as tmp:
        test = SelfTest(Path(tmp))
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            passed = bool(loop.run_until_complete(test.run()))
    print("self-test passed" if passed else "self-test FAILED", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
