"""``hookline pair --standby`` on the active engine's computer, ``hookline standby
join|status|leave`` on the standby's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.remote import peer
from engine.remote.pairing import ENGINE
from tests.engine.remote.conftest import Remote
from tests.engine.remote.test_cli import CODE, hookline

JOIN = re.compile(r"hookline standby join (\S+) (\S+)")


async def test_a_standby_code_joins_a_standby_and_nothing_else(
        remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine_dir, standby_dir = str(remote.engine.data_dir), str(tmp_path / "b")
    status, out = await hookline(capsys, "--data-dir", engine_dir, "pair", "--standby")
    assert status == 0, out
    found = JOIN.search(out)
    assert found and found.group(1).endswith(str(remote.site.port)), out

    # a standby's code does not pair a window, and is not used up by trying
    status, out = await hookline(capsys, "--data-dir", str(tmp_path / "laptop"), "remote",
                                 "connect", f"127.0.0.1:{remote.site.port}", found.group(2))
    assert status == 2 and "pairs a standby engine (`hookline standby join`)" in out

    status, out = await hookline(capsys, "--data-dir", standby_dir, "standby", "status")
    assert status == 1 and "No engine is joined" in out
    status, out = await hookline(capsys, "--data-dir", standby_dir, "standby", "join",
                                 f"127.0.0.1:{remote.site.port}", found.group(2),
                                 "--name", "standby b")
    assert status == 0, out
    assert "as a standby engine" in out
    [client] = await remote.site.pairing.clients()
    assert (client.name, client.kind) == ("standby b", ENGINE)
    status, out = await hookline(capsys, "--data-dir", engine_dir, "pair", "--list")
    assert re.search(rf"{client.id[:8]}  engine  standby b", out), out

    status, out = await hookline(capsys, "--data-dir", standby_dir, "standby", "status")
    assert status == 0, out
    assert "not synced yet" in out and "It answers." in out
    _status, out = await hookline(capsys, "--data-dir", standby_dir, "doctor")
    assert re.search(r"ok   standby peer   hookline@\S+ at 127\.0\.0\.1:\d+: not synced "
                     "yet", out), out

    status, out = await hookline(capsys, "--data-dir", standby_dir, "standby", "leave")
    assert status == 0 and "Left hookline@" in out, out
    assert await remote.site.pairing.clients() == []  # unpaired there too
    assert peer.load_target(tmp_path / "b") is None


async def test_a_windows_code_does_not_join_a_standby(
        remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = await hookline(capsys, "--data-dir", str(remote.engine.data_dir), "pair")
    found = CODE.search(out)
    assert status == 0 and found, out
    status, out = await hookline(capsys, "--data-dir", str(tmp_path / "b"), "standby", "join",
                                 f"127.0.0.1:{remote.site.port}", found.group(1))
    assert status == 2 and "run `hookline pair --standby`" in out
    assert peer.load_target(tmp_path / "b") is None
