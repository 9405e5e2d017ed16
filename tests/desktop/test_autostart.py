"""Start at login: the entry each OS reads, written where that OS looks for it."""

from __future__ import annotations

import configparser
import plistlib
import shlex
import sys
from pathlib import Path

import pytest

from desktop import autostart

COMMAND = ["/opt/Hook Line/python3", "-m", "desktop.launcher"]


def read_desktop_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def exec_argv(exec_line: str) -> list[str]:
    """Undo the desktop entry's string escaping, then its argument quoting."""
    return [a.replace("%%", "%") for a in shlex.split(exec_line.replace("\\\\", "\\"))]


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="freedesktop autostart")
def test_linux_entry_lands_in_config_autostart_by_default(home: Path) -> None:
    assert not autostart.is_enabled()
    autostart.enable(COMMAND)
    path = home / ".config" / "autostart" / "hookline.desktop"
    entry = read_desktop_entry(path)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Hookline"
    assert exec_argv(entry["Exec"]) == COMMAND
    assert entry["Icon"]
    assert entry["X-GNOME-Autostart-enabled"] == "true"
    assert autostart.is_enabled()
    autostart.disable()
    assert not path.exists()
    assert not autostart.is_enabled()
    autostart.disable()  # twice is fine


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="freedesktop autostart")
def test_linux_entry_follows_xdg_config_home(home: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    autostart.enable(["/usr/bin/hookline"])
    entry = read_desktop_entry(config / "autostart" / "hookline.desktop")
    assert entry["Exec"] == "/usr/bin/hookline"
    assert not (home / ".config").exists()


def test_desktop_entry_quotes_awkward_arguments(tmp_path: Path) -> None:
    command = ["/a b/py", 'say "hi"', "50%", "back\\slash", "$HOME"]
    autostart.linux_enable(command, tmp_path, "hookline")
    text = (tmp_path / "hookline.desktop").read_text(encoding="utf-8")
    exec_line = read_desktop_entry(tmp_path / "hookline.desktop")["Exec"]
    assert '"/a b/py"' in exec_line and "50%%" in exec_line
    assert r'"\\$HOME"' in text  # $ escaped for the quoting, that backslash for the string
    assert exec_argv(exec_line)[:3] == command[:3]


def test_default_command_is_this_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert autostart.launch_command() == [sys.executable, "-m", "desktop.launcher"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert autostart.launch_command() == [sys.executable]


def test_macos_launch_agent_runs_the_command_at_load(home: Path) -> None:
    agents = autostart.launch_agents_dir()
    assert agents == home / "Library" / "LaunchAgents"
    assert not autostart.macos_is_enabled(agents)
    path = autostart.macos_enable(COMMAND, agents)
    assert path == agents / "org.hookline.app.plist"
    data = plistlib.loads(path.read_bytes())
    assert data["Label"] == "org.hookline.app"
    assert data["ProgramArguments"] == COMMAND
    assert data["RunAtLoad"] is True
    assert autostart.macos_is_enabled(agents)
    autostart.macos_disable(agents)
    assert not path.exists() and not autostart.macos_is_enabled(agents)


class FakeRunKey:
    """Stands in for HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def test_windows_run_value_is_one_quoted_command_line() -> None:
    key = FakeRunKey()
    assert not autostart.windows_is_enabled(key)
    autostart.windows_enable([r"C:\Program Files\Hookline\Hookline.exe"], key)
    assert key.values == {"Hookline": r'"C:\Program Files\Hookline\Hookline.exe"'}
    assert autostart.windows_is_enabled(key)
    autostart.windows_enable([r"C:\Py\python.exe", "-m", "desktop.launcher"], key)
    assert key.values["Hookline"] == r"C:\Py\python.exe -m desktop.launcher"
    autostart.windows_disable(key)
    assert key.values == {} and not autostart.windows_is_enabled(key)
    autostart.windows_disable(key)
