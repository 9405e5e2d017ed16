"""``hookline --self-test`` from source: a real engine, a timer and a webhook run, the
window offscreen, in a child process (as installers and the bundle test run it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_self_test_passes_from_source(tmp_path: Path) -> None:
    env = {**os.environ, "HOOKLINE_DATA_DIR": str(tmp_path / "untouched")}
    done = subprocess.run([sys.executable, "-m", "desktop.launcher", "--self-test"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
                          check=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for step in ("engine starts, database migrated", "timer area runs", "webhook area runs",
                 "main window opens and closes", "engine stops"):
        assert any(line.startswith("ok") and step in line for line in out.splitlines()), out
    assert "FAILED" not in out
    assert out.rstrip().endswith("self-test passed")
    assert not (tmp_path / "untouched").exists()  # a temporary folder, never the user's


def test_version_from_source() -> None:
    done = subprocess.run([sys.executable, "-m", "desktop.launcher", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    from engine import __version__

    assert done.returncode == 0
    assert done.stdout.strip() == f"hookline {__version__}"


async def test_a_failing_step_is_reported_and_fails_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from desktop.selftest import SelfTest

    test = SelfTest(tmp_path)

    async def works() -> str:
        return "fine"

    async def breaks() -> str:
        raise RuntimeError("the disk is gone")

    assert await test.step("first", works)
    assert not await test.step("second", breaks)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok      first (fine)")
    assert out[1] == "FAILED  second: RuntimeError: the disk is gone"
    assert test.results == [("first", True), ("second", False)]
