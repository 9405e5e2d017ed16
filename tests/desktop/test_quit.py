"""Quit, as users quit: the tray's Quit, logout's SIGTERM, Ctrl+C's SIGINT, each under a
stream of webhooks, 20 times each. The app is the real one, in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from engine.app import Engine, secret_ref
from engine.areas import AreaSpec
from engine.settings import Settings

pytestmark = pytest.mark.slow

TRIES = 20
QUIT_WITHIN = 5.0
DRIVER = Path(__file__).with_name("app_driver.py")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Setup:
    data_dir: Path
    url: str
    out: Path


@pytest.fixture
async def setup(data_dir: Path, tmp_path: Path, unused_tcp_port: int) -> Setup:
    """A data folder with one webhook area appending each delivery's number to a file."""
    data_dir.mkdir(parents=True)
    (data_dir / "settings.json").write_text(json.dumps({
        "listener_port": unused_tcp_port, "close_to_tray": True}), encoding="utf-8")
    out = tmp_path / "deliveries.txt"
    engine = Engine(data_dir, settings=Settings.from_mapping(
        {"listener_port": unused_tcp_port}), offline=True)
    await engine.start()
    try:
        area = await engine.create_area(AreaSpec.from_dict({
            "name": "Count deliveries",
            "trigger": {"service": "webhook", "trigger": "incoming"},
            "reactions": [{"service": "files", "reaction": "append_text",
                           "params": {"path": str(out), "text": "{{ trigger.body.n }}\n"}}]}))
        token = engine.secrets.get(secret_ref(area.id, "webhook", "token"))
    finally:
        await engine.aclose()
    return Setup(data_dir, f"http://127.0.0.1:{unused_tcp_port}/hooks/{token}", out)


class Stream:
    """Eight senders POSTing numbered deliveries until stopped; counts the accepted."""

    def __init__(self, url: str, first: int) -> None:
        self.url = url
        self.next = first
        self.accepted: list[int] = []
        self._stop = asyncio.Event()

    async def _send(self, session: aiohttp.ClientSession) -> None:
        while not self._stop.is_set():
            n, self.next = self.next, self.next + 1
            try:
                async with session.post(self.url, json={"n": n}) as response:
                    if response.status == 202:
                        self.accepted.append(n)
            except (TimeoutError, aiohttp.ClientError, OSError):
                await asyncio.sleep(0.01)  # the app is starting or gone

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Stream]:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            senders = [asyncio.create_task(self._send(session)) for _ in range(8)]
            try:
                yield self
            finally:
                self._stop.set()
                await asyncio.gather(*senders)


async def _line(child: asyncio.subprocess.Process, prefix: str, timeout: float) -> str:
    assert child.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        line = await asyncio.wait_for(child.stdout.readline(), deadline - time.monotonic())
        if not line:
            raise AssertionError(f"the app ended before printing {prefix}")
        if line.decode().startswith(prefix):
            return line.decode().strip()


async def _launch(setup: Setup, how: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    if how == "tray":
        command = [sys.executable, str(DRIVER), str(setup.data_dir)]
    else:  # the real command a user starts
        command = [sys.executable, "-m", "desktop.launcher", "--data-dir", str(setup.data_dir)]
    return await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        cwd=ROOT)


async def _until_listening(url: str, child: asyncio.subprocess.Process) -> None:
    """The launcher prints nothing: the app is up once its listener answers."""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if child.returncode is not None:
                raise AssertionError("the app ended while starting")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as response:
                    if response.status == 405:  # GET on a webhook: it is there
                        return
            await asyncio.sleep(0.05)
    raise AssertionError("the app's webhook listener never answered")


async def _one_quit(setup: Setup, how: str, stream_from: int) -> tuple[list[int], float, str]:
    """Start the app, stream webhooks at it, quit it ``how``; (accepted, seconds, stderr)."""
    (setup.data_dir / "quit-now").unlink(missing_ok=True)
    child = await _launch(setup, how)
    try:
        if how == "tray":
            await _line(child, "READY", 60)
        await _until_listening(setup.url, child)
        stream = Stream(setup.url, stream_from)
        async with stream.running():
            while len(stream.accepted) < 50:  # the stream is well under way
                await asyncio.sleep(0.01)
            if how == "tray":
                (setup.data_dir / "quit-now").touch()
                asked = float((await _line(child, "QUIT_AT", 10)).split()[1])
            else:
                asked = time.monotonic()
                child.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
            _out, err = await asyncio.wait_for(child.communicate(), 30)
            took = time.monotonic() - asked
        return stream.accepted, took, err.decode(errors="replace")
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def _all_done(setup: Setup) -> dict[str, int]:
    """Start the engine once more (as the next start of the app would), let it finish
    what was left journaled, and count the runs by status."""
    engine = Engine(setup.data_dir, listen=False)
    await engine.start()
    try:
        await engine.wait_idle()
        runs = await engine.store.runs(None, 1_000_000)
    finally:
        await engine.aclose()
    counts: dict[str, int] = {}
    for run in runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    return counts


@pytest.mark.parametrize("how", ["tray", "SIGTERM", "SIGINT"])
async def test_quit_ends_the_app_within_5_s_under_a_webhook_stream(setup: Setup,
                                                                   how: str) -> None:
    accepted: list[int] = []
    slow: list[float] = []
    for attempt in range(TRIES):
        got, took, err = await _one_quit(setup, how, attempt * 1_000_000)
        accepted += got
        assert "Traceback" not in err, err
        if took > QUIT_WITHIN:
            slow.append(took)
    assert slow == [], f"{len(slow)} of {TRIES} quits took longer than {QUIT_WITHIN} s: {slow}"
    counts = await _all_done(setup)
    # 0 runs cut short: each quit let the runs under way finish
    assert counts.get("interrupted", 0) == 0 and counts.get("running", 0) == 0, counts
    # nothing lost, nothing twice: every accepted delivery wrote its line once
    lines = [int(line) for line in setup.out.read_text(encoding="utf-8").split()]
    assert sorted(lines) == sorted(accepted)
    assert counts.get("succeeded") == len(accepted)
