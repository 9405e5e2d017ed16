"""Start Hookline at login: a Run value (Windows), a LaunchAgent (macOS), or an
XDG autostart entry (Linux and other freedesktop systems).

Each platform has a small pair of functions taking explicit locations, so tests can
exercise every one of them on any OS; :func:`enable`, :func:`disable` and
:func:`is_enabled` pick the one for the running system.
"""

from __future__ import annotations

import plistlib
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from engine.os_service import config_home, launch_agents_dir, program, write_atomic

APP_NAME = "Hookline"
#: Windows: HKEY_CURRENT_USER\<RUN_KEY>, value "Hookline".
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
#: macOS: ~/Library/LaunchAgents/<LAUNCH_AGENT_LABEL>.plist
LAUNCH_AGENT_LABEL = "org.hookline.app"
DESKTOP_FILE = "hookline.desktop"


def launch_command() -> list[str]:
    """The command that starts this app: the frozen executable, or the launcher module
    run by this Python (from a source checkout or a pip install)."""
    return program("desktop.launcher")


# --------------------------------------------------------------------------- Linux


def xdg_autostart_dir() -> Path:
    """``$XDG_CONFIG_HOME/autostart`` (``~/.config/autostart`` when it is unset)."""
    return config_home() / "autostart"


def _desktop_quote(arg: str) -> str:
    """Quote one argument for a desktop entry's Exec key (freedesktop rules)."""
    if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`='):
        return arg.replace("%", "%%")
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return '"' + escaped.replace("%", "%%") + '"'


def desktop_entry(command: Sequence[str], icon: str) -> str:
    """The text of the autostart ``.desktop`` file."""
    exec_line = " ".join(_desktop_quote(a) for a in command)
    # Exec is a "string" key: backslashes in it are escaped once more.
    exec_line = exec_line.replace("\\", "\\\\")
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        f"Name={APP_NAME}\n"
        "Comment=Personal automation on your own machine\n"
        f"Exec={exec_line}\n"
        f"Icon={icon}\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def linux_enable(command: Sequence[str], directory: Path, icon: str) -> Path:
    path = directory / DESKTOP_FILE
    write_atomic(path, desktop_entry(command, icon).encode())
    return path


def linux_disable(directory: Path) -> None:
    (directory / DESKTOP_FILE).unlink(missing_ok=True)


def linux_is_enabled(directory: Path) -> bool:
    path = directory / DESKTOP_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return "X-GNOME-Autostart-enabled=false" not in text and "Hidden=true" not in text


# --------------------------------------------------------------------------- macOS


def launch_agent(command: Sequence[str]) -> dict[str, object]:
    """The LaunchAgent's property list."""
    return {
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "ProcessType": "Interactive",
    }


def macos_enable(command: Sequence[str], directory: Path) -> Path:
    path = directory / f"{LAUNCH_AGENT_LABEL}.plist"
    write_atomic(path, plistlib.dumps(launch_agent(command)))
    return path


def macos_disable(directory: Path) -> None:
    (directory / f"{LAUNCH_AGENT_LABEL}.plist").unlink(missing_ok=True)


def macos_is_enabled(directory: Path) -> bool:
    try:
        data = plistlib.loads((directory / f"{LAUNCH_AGENT_LABEL}.plist").read_bytes())
    except (OSError, plistlib.InvalidFileException, ValueError):
        return False
    return bool(data.get("RunAtLoad"))


# --------------------------------------------------------------------------- Windows


class RunKey(Protocol):
    """The three registry operations start-at-login needs on HKCU\\...\\Run."""

    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def get(self, name: str) -> str | None: ...


if sys.platform == "win32":
    import winreg

    class WinregRunKey:
        """:class:`RunKey` on the real registry, HKEY_CURRENT_USER (Windows only)."""

        def set(self, name: str, value: str) -> None:
            with winreg.CreateKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)

        def delete(self, name: str) -> None:
            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0,
                                    winreg.KEY_SET_VALUE) as key:
                    winreg.DeleteValue(key, name)
            except FileNotFoundError:
                pass  # not set: nothing to remove

        def get(self, name: str) -> str | None:
            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                    value, _kind = winreg.QueryValueEx(key, name)
            except FileNotFoundError:
                return None
            return str(value)


def windows_command_line(command: Sequence[str]) -> str:
    """The Run value: one command line, quoted the way Windows programs parse it."""
    return subprocess.list2cmdline(list(command))


def windows_enable(command: Sequence[str], key: RunKey) -> None:
    key.set(APP_NAME, windows_command_line(command))


def windows_disable(key: RunKey) -> None:
    key.delete(APP_NAME)


def windows_is_enabled(key: RunKey) -> bool:
    return bool(key.get(APP_NAME))


# --------------------------------------------------------------------------- this OS


def _icon() -> str:
    """An icon path for the desktop entry (the bundled SVG), else a theme name."""
    try:
        from resources import icon

        path = icon("hookline.svg")
        if path.exists():
            return str(path)
    except ImportError:
        pass
    return "hookline"


def enable(command: Sequence[str] | None = None) -> None:
    """Start ``command`` (default: :func:`launch_command`) when the user logs in."""
    command = list(command or launch_command())
    if sys.platform == "win32":
        windows_enable(command, WinregRunKey())
    elif sys.platform == "darwin":
        macos_enable(command, launch_agents_dir())
    else:
        linux_enable(command, xdg_autostart_dir(), _icon())


def disable() -> None:
    """Stop starting at login (nothing happens if it was not set up)."""
    if sys.platform == "win32":
        windows_disable(WinregRunKey())
    elif sys.platform == "darwin":
        macos_disable(launch_agents_dir())
    else:
        linux_disable(xdg_autostart_dir())


def is_enabled() -> bool:
    if sys.platform == "win32":
        return windows_is_enabled(WinregRunKey())
    if sys.platform == "darwin":
        return macos_is_enabled(launch_agents_dir())
    return linux_is_enabled(xdg_autostart_dir())


def describe(command: Sequence[str]) -> str:
    """The command as a shell would show it (for the settings page's tooltip)."""
    return shlex.join(command)
