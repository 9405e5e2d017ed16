"""Restoring one of the engine's backups from another computer: the engine lists its
backups by name and date only, restores exactly one of them, refuses what it cannot do
(with a message that says where to do it instead), and a real `hookline serve` answers,
starts again and comes back with the automations as they were in the backup."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine import rpc
from engine.app import Engine
from engine.areas import AreaSpec
from engine.backup import PENDING_RESTORE, BackupError, backup, backup_dir, sqlite_path
from engine.control import CONTROL_FILE
from engine.errors import ValidationError
from tests.engine.test_standby_kill import Serve

#: How long a `hookline serve` may take to say it runs (s).
UP = 60.0


async def call(session: aiohttp.ClientSession, which: str, /, **arguments: Any) -> Any:
    """Make a call as the desktop app does (``name`` is an argument of one of them)."""
    async with session.post(f"/rpc/{which}", json=rpc.encode(arguments)) as answer:
        body = await answer.json()
        if answer.status != 200:
            raise rpc.error_from(answer.status, body)
        return rpc.decode(body["result"])


def timer_area(name: str) -> dict[str, Any]:
    return {"name": name,
            "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
            "reactions": [{"service": "notify", "reaction": "notify",
                           "params": {"title": "Hello"}}]}


@pytest.fixture
async def served(make_engine: Any) -> Engine:
    """An engine as the desktop app runs it (nobody restarts it when it asks)."""
    engine: Engine = await make_engine()
    return engine


@pytest.fixture
async def session(served: Engine) -> AsyncIterator[aiohttp.ClientSession]:
    """A session on its control channel, as the desktop app attached to it holds."""
    info = json.loads((served.data_dir / CONTROL_FILE).read_text(encoding="utf-8"))
    async with aiohttp.ClientSession(
            base_url=f"http://127.0.0.1:{info['port']}",
            headers={"Authorization": f"Bearer {info['token']}"}) as opened:
        yield opened


async def test_the_backups_are_listed_by_name_and_date_only(
        served: Engine, session: aiohttp.ClientSession) -> None:
    db_path = sqlite_path(served.url)
    assert db_path is not None
    older = backup(db_path, backup_dir(served.data_dir), now=datetime(2026, 12, 1, 9, 30))
    newer = backup(db_path, backup_dir(served.data_dir), now=datetime(2026, 12, 2, 9, 30))
    assert await call(session, "backups.list") == [
        {"name": newer.name, "taken_at": datetime(2026, 12, 2, 9, 30)},
        {"name": older.name, "taken_at": datetime(2026, 12, 1, 9, 30)},
    ]


async def test_only_a_listed_backup_is_restored(
        served: Engine, session: aiohttp.ClientSession) -> None:
    db_path = sqlite_path(served.url)
    assert db_path is not None
    backup(db_path, backup_dir(served.data_dir))
    (served.data_dir / "hookline-20260101-000000.db").write_bytes(db_path.read_bytes())
    for name in ("../hookline-20260101-000000.db", str(db_path),
                 "hookline-20000101-000000.db", "", "backups/../hookline.db"):
        with pytest.raises(ValidationError, match="is not one of this engine's backups"):
            await call(session, "backups.restore", name=name)
    assert not (served.data_dir / PENDING_RESTORE).exists()


async def test_an_engine_that_cannot_restart_itself_says_where_to_restore(
        served: Engine, session: aiohttp.ClientSession) -> None:
    db_path = sqlite_path(served.url)
    assert db_path is not None
    made = backup(db_path, backup_dir(served.data_dir))
    with pytest.raises(BackupError, match=(
            r"^Hookline cannot restart itself there to restore a backup: it runs in its "
            r"desktop app, not as `hookline serve`\. .*`hookline backup restore "
            rf"{made.name}`\)\. Nothing was changed\.$")):
        await call(session, "backups.restore", name=made.name)
    assert not (served.data_dir / PENDING_RESTORE).exists()
    assert not served.restart_wanted.is_set()


async def test_an_engine_on_postgresql_says_to_restore_on_its_computer(
        served: Engine, session: aiohttp.ClientSession) -> None:
    db_path = sqlite_path(served.url)
    assert db_path is not None
    made = backup(db_path, backup_dir(served.data_dir))
    served.restartable = True
    url, served.url = served.url, "postgresql://hookline@db.example/hookline"
    try:
        with pytest.raises(BackupError, match=(
                r"^Hookline keeps its data in PostgreSQL there: .*on that computer \(stop "
                r"Hookline there, "
                rf"then `hookline backup restore {made.name}`\)")):
            await call(session, "backups.restore", name=made.name)
    finally:
        served.url = url
    assert not served.restart_wanted.is_set()


# ------------------------------------------------------------- a real `hookline serve`


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    running = Serve(tmp_path / "server")
    running.data_dir.mkdir()
    await running.start()
    yield running
    await running.stop(UP)


@pytest.mark.slow
async def test_hookline_serve_restarts_and_comes_back_as_the_backup_was(
        serve: Serve) -> None:
    await serve.said("Hookline ")
    await serve.said("0 area(s)")
    async with serve.session() as before:
        await call(before, "create_area", spec=AreaSpec.from_dict(timer_area("Kept")))
        subprocess.run([sys.executable, "-m", "engine.cli", "--data-dir",
                        str(serve.data_dir), "backup", "create"],
                       check=True, capture_output=True, timeout=UP)
        await call(before, "create_area", spec=AreaSpec.from_dict(timer_area("Added since")))
        [listed] = await call(before, "backups.list")
        assert await call(before, "backups.restore", name=listed["name"]) is None

    await serve.said("Restarting to restore the backup")
    await serve.said(f"Restored the backup {listed['name']}.")
    await serve.said("1 area(s)")  # the new engine runs (its first life had 0)
    async with serve.session() as after:
        snapshot = await call(after, "snapshot")
        assert [held["area"].name for held in snapshot["areas"]] == ["Kept"]
    assert serve.proc is not None and serve.proc.returncode is None
    assert [p.name for p in backup_dir(serve.data_dir).glob("hookline-before-restore-*")]
