"""A disk that refuses writes: nothing acknowledged is lost, nothing pauses itself for
the engine's own trouble, and it is said once, not once per line."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from engine import logs
from engine.app import Engine
from engine.areas import AreaSpec
from engine.errors import StorageError
from engine.secrets import MemorySecretStore
from engine.settings import Settings
from tests.engine import probe
from tests.engine.conftest import FAST, EngineFactory, registry

AREA = {
    "name": "Hook to record",
    "trigger": {"service": "probe", "trigger": "hook"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}


def refuse_the_ledger(engine: Engine) -> list[bool]:
    """The run ledger's writes fail (ENOSPC) while the returned flag is set."""
    full = [True]
    flush = engine.journal.ledger.flush

    def flush_or_refuse() -> None:
        if full[0]:
            raise StorageError("could not record the run in run-ledger: No space left on "
                               "device — free some disk space; the run did not start")
        flush()

    engine.journal.ledger.flush = flush_or_refuse  # type: ignore[method-assign]
    return full


async def post(session: aiohttp.ClientSession, url: str, title: str
               ) -> tuple[int, str | None]:
    async with session.post(url, json={"title": title}) as resp:
        return resp.status, resp.headers.get("Retry-After")


async def test_runs_that_cannot_be_recorded_wait_and_run_when_space_returns(
        make_engine: EngineFactory) -> None:
    engine = await make_engine(pause_after_failures=2)
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    url = await engine.webhook_url(area.id)
    assert url is not None
    full = refuse_the_ledger(engine)
    async with aiohttp.ClientSession() as session:
        assert await post(session, url, "first") == (202, None)  # journaled before trouble
        while engine.disk_trouble is None:  # its run found the disk full
            await asyncio.sleep(0.01)
        # meanwhile nothing more is accepted than can run: the sender keeps it
        for _ in range(5):
            assert await post(session, url, "later") == (503, "30")
        assert probe.controls.received == []
        assert engine.area(area.id).paused_reason is None  # not the area's fault
        full[0] = False  # space again
        await engine.wait_idle()
        assert [r["text"] for r in probe.controls.received] == ["first"]
        assert engine.disk_trouble is None
        assert await post(session, url, "after") == (202, None)
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["first", "after"]
    runs = await engine.store.runs(area.id)
    assert [r["status"] for r in reversed(runs)][-2:] == ["succeeded", "succeeded"]
    waited = [r for r in runs if r["status"] == "failed"]
    assert waited and "it runs again once the disk takes writes" in waited[0]["error"]


async def test_a_stop_while_runs_wait_leaves_them_for_the_next_start(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    refuse_the_ledger(engine)
    await engine.run_now(area.id, {"title": "kept"})
    while engine.disk_trouble is None:
        await asyncio.sleep(0.01)
    await engine.aclose()
    engine = await make_engine()  # the disk has space again
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["kept"]


def test_a_log_file_on_a_full_disk_says_so_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = logs.configure(tmp_path, "INFO", console=False)
    assert path is not None
    root = logging.getLogger()
    handler = next(h for h in root.handlers
                   if getattr(h, "baseFilename", None) == str(path))
    assert isinstance(handler, logging.FileHandler)
    if handler.stream is not None:
        handler.stream.close()

    class Full:
        def write(self, _text: str) -> None:
            raise OSError(28, "No space left on device")

        def flush(self) -> None: ...

        def seek(self, *_args: int) -> int:
            return 0

        def close(self) -> None: ...

    handler.stream = Full()  # type: ignore[attr-defined]
    try:
        for n in range(50):
            logging.getLogger("engine.runner").warning("line %d", n)
        err = capsys.readouterr().err
        assert err.count("No space left on device") == 1 and "Traceback" not in err
        assert "Logging error" not in err
    finally:
        root.removeHandler(handler)
        handler.close()


FILL = 64 * 1024


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                    reason="needs root to mount a small filesystem (tmpfs)")
async def test_a_real_full_disk_loses_no_acknowledged_delivery(tmp_path: Path) -> None:
    """The data folder on a 16 MiB tmpfs that fills up: every delivery answered 202 runs
    exactly once when space returns; meanwhile the listener answers 503 with
    Retry-After, never another 5xx or a 404."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        engine = Engine(mount / "data", settings=Settings.from_mapping(
            {**FAST, "pause_after_failures": 2}), registry=registry(),
            secrets=MemorySecretStore())
        await engine.start()
        try:
            area = await engine.create_area(AreaSpec.from_dict(AREA))
            url = await engine.webhook_url(area.id)
            assert url is not None
            filler = mount / "filler"
            with filler.open("wb") as stream:  # the disk fills up (another program)
                try:
                    while True:
                        stream.write(b"\0" * FILL)
                        stream.flush()
                except OSError:
                    pass
            accepted: list[str] = []
            answers: list[int] = []
            async with aiohttp.ClientSession() as session:
                for n in range(300):
                    status, retry_after = await post(session, url, str(n))
                    answers.append(status)
                    if status == 202:
                        accepted.append(str(n))
                    else:
                        assert status == 503 and retry_after is not None
                assert answers.count(503) > 0
                filler.unlink()  # space again
                await engine.wait_idle()
                assert await post(session, url, "after") == (202, None)
            await engine.wait_idle()
            received = [r["text"] for r in probe.controls.received]
            assert received == [*accepted, "after"]  # each once, in order
            assert engine.area(area.id).paused_reason is None
        finally:
            await engine.aclose()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
