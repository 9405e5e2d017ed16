"""The scripts a fresh machine runs: scripts/dev and the fresh-machine check (issue 18).

The check itself runs in CI (.ci/run); here, what can be proven in a second: its
screenshot judge, its one-line skip where it cannot run, and clean shell.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
XWD2PNG = ROOT / "scripts" / "fresh" / "xwd2png.py"
SHELL_SCRIPTS = ["scripts/dev", "scripts/fresh-machine-check",
                 "scripts/fresh/enter", "scripts/fresh/inside.sh", ".ci/run"]


def xwd(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    """An XWD file as Xvfb -fbdir writes it: 24-bit depth, 32 bits a pixel, LSB first."""
    name = b"Xvfb main window\x00"
    header_size = 100 + len(name)
    fields = [header_size, 7, 2, 24, width, height, 0, 0, 32, 0, 32, 32, width * 4, 4,
              0xFF0000, 0x00FF00, 0x0000FF, 8, 0, 0, width, height, 0, 0, 0]
    pixels = bytearray()
    for y in range(height):
        for x in range(width):
            r, g, b = pixel(x, y)
            pixels += bytes((b, g, r, 0))
    return struct.pack(">25I", *fields) + name + bytes(pixels)


def judge(tmp_path: Path, data: bytes) -> subprocess.CompletedProcess[str]:
    (tmp_path / "screen").write_bytes(data)
    return subprocess.run([sys.executable, str(XWD2PNG), str(tmp_path / "screen"),
                           str(tmp_path / "shot.png")], capture_output=True, text=True,
                          check=False)


def test_a_black_screen_is_blank(tmp_path: Path) -> None:
    result = judge(tmp_path, xwd(64, 48, lambda x, y: (0, 0, 0)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "blank" in result.stdout
    assert (tmp_path / "shot.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_window_on_the_screen_is_not_blank(tmp_path: Path) -> None:
    def window(x: int, y: int) -> tuple[int, int, int]:
        if x >= 40 or y >= 30:
            return (0, 0, 0)  # the root window around it
        return (200 + x % 8, 200 + y % 4, 190)  # a grey window with some detail

    result = judge(tmp_path, xwd(64, 48, window))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not blank" in result.stdout
    png = (tmp_path / "shot.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", png[16:24]) == (64, 48)


def test_a_flat_color_is_blank(tmp_path: Path) -> None:
    result = judge(tmp_path, xwd(32, 32, lambda x, y: (255, 255, 255)))
    assert result.returncode == 1


def test_an_unreadable_screen_file_is_an_error(tmp_path: Path) -> None:
    result = judge(tmp_path, b"not an xwd file")
    assert result.returncode == 2


def test_the_fresh_machine_check_skips_in_one_line_without_root() -> None:
    script = ROOT / "scripts" / "fresh-machine-check"
    command = ["bash", "-s"]  # the script on stdin: a user may not be able to read the clone
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and no setpriv to drop it")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    with script.open("rb") as stdin:
        result = subprocess.run(command, stdin=stdin, cwd="/", capture_output=True, text=True,
                                timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "skipped: needs root" in lines[0]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_shell_scripts_are_shellcheck_clean() -> None:
    result = subprocess.run(["shellcheck", *SHELL_SCRIPTS], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout
