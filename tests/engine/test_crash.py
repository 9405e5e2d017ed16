"""A `hookline serve` killed with SIGKILL mid-stream loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.engine.conftest import scalar

pytestmark = pytest.mark.slow

SENDERS = 32
KILL_AT = 400
TOTAL = 1200
ROUNDS = 3


def hookline(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", "--data-dir", str(data_dir),
                           *args], capture_output=True, text=True, timeout=60, check=True)


async def start_serve(data_dir: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", "--data-dir", str(data_dir), "serve", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    seen = []
    while True:  # until it says it is listening, or dies
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise AssertionError("serve exited early:\n" + b"".join(seen).decode())
        seen.append(line)
        if b"Ctrl+C stops" in line:
            break
    asyncio.get_running_loop().create_task(_drain(proc))
    return proc


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.readline():
        pass


def pending(data_dir: Path, database: str) -> int:
    return int(scalar(data_dir, database, "select count(*) from events where status='pending'"))


async def test_sigkill_mid_stream_loses_no_acknowledged_delivery(data_dir: Path, database: str,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "received.txt"
    area_file = tmp_path / "area.yaml"
    area_file.write_text(yaml.safe_dump({
        "name": "Deliveries to a file",
        "trigger": {"service": "webhook", "trigger": "incoming"},
        "reactions": [{"service": "files", "reaction": "append_text",
                       "params": {"path": str(out), "text": "{{ trigger.body.n }}"}}],
    }))
    hookline(data_dir, "areas", "import", str(area_file))
    acknowledged: set[int] = set()
    numbers = iter(range(ROUNDS * TOTAL))
    for _round in range(ROUNDS):  # each kill lands on a different moment of the stream
        await stream_then_kill(data_dir, numbers, acknowledged)

    restarted = await start_serve(data_dir)
    try:
        deadline = time.monotonic() + 60
        while pending(data_dir, database) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert pending(data_dir, database) == 0
    finally:
        restarted.send_signal(signal.SIGTERM)
        await asyncio.wait_for(restarted.wait(), 30)

    lines = Counter(int(x) for x in out.read_text().split())
    assert set(lines) >= acknowledged, f"lost: {sorted(acknowledged - set(lines))}"
    twice = {n for n, c in lines.items() if c > 1}
    runs = json.loads(hookline(data_dir, "runs", "--limit", "10000", "--json").stdout)
    resumed_payloads = {r["trigger_payload"]["body"]["n"] for r in runs if r["resumed"]}
    assert twice <= resumed_payloads, "a reaction ran twice without being marked resumed"
    assert len(twice) <= ROUNDS  # at most the one reaction under way, per kill
    assert all(r["status"] in ("succeeded", "interrupted") for r in runs)


async def stream_then_kill(data_dir: Path, numbers: Iterator[int],
                           acknowledged: set[int]) -> None:
    """Start ``hookline serve``, stream deliveries at it from as many senders as wrk's
    32 connections (many runs under way, their lines with the file's writer), and
    SIGKILL it once :data:`KILL_AT` more were acknowledged."""
    server = await start_serve(data_dir)
    url = json.loads(hookline(data_dir, "areas", "show", "Deliveries to a file",
                              "--json").stdout)["webhook_url"]
    killed = asyncio.Event()
    before = len(acknowledged)

    async def sender(session: aiohttp.ClientSession) -> None:
        for n in numbers:  # shared: each sender takes the next number
            if killed.is_set():
                return
            try:
                async with session.post(url, json={"n": n}) as resp:
                    if resp.status == 202:
                        acknowledged.add(n)
            except aiohttp.ClientError:
                continue  # refused after the kill: never acknowledged, so not owed
            if len(acknowledged) - before >= KILL_AT and not killed.is_set():
                os.kill(server.pid, signal.SIGKILL)
                killed.set()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=SENDERS)) as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
    await server.wait()
    assert killed.is_set()
