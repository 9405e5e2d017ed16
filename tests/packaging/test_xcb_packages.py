"""A real window on Linux: Qt's xcb platform links system libraries that `scripts/dev`
must install on a fresh Debian (its first run used to crash there: libxcb-icccm4 and
libxcb-keysyms1 were missing, and Qt's message named libxcb-cursor0, which was present).

The check reads what the plugin links (`ldd`), which Debian package holds each library
(`dpkg -S`), and whether `scripts/dev`'s DEBIAN_PACKAGES bring that package, themselves
or as a dependency (the installed packages' Depends, followed to the end), on top of what
every Debian has (Essential and Priority: required, as debootstrap installs).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import PySide6
import pytest

ROOT = Path(__file__).resolve().parents[2]
QT = Path(PySide6.__file__).resolve().parent / "Qt"
#: The xcb platform plugin and the library it is built on.
XCB = (QT / "plugins" / "platforms" / "libqxcb.so", QT / "lib" / "libQt6XcbQpa.so.6")

pytestmark = pytest.mark.skipif(
    not (shutil.which("ldd") and shutil.which("dpkg-query") and XCB[0].exists()),
    reason="needs a Debian-like Linux (ldd, dpkg) and PySide6's xcb plugin",
)


def listed_packages() -> set[str]:
    """The Debian packages `scripts/dev` installs."""
    text = (ROOT / "scripts" / "dev").read_text(encoding="utf-8")
    found = re.search(r"DEBIAN_PACKAGES=\((.*?)\)", text, re.DOTALL)
    assert found, "scripts/dev no longer lists DEBIAN_PACKAGES=( ... )"
    return set(found[1].split())


def linked(library: Path) -> dict[str, str | None]:
    """Each library ``library`` needs, and where the loader finds it (None: nowhere)."""
    out = subprocess.run(["ldd", str(library)], capture_output=True, text=True,
                         check=True).stdout
    found: dict[str, str | None] = {}
    for line in out.splitlines():
        match = re.match(r"\s*(\S+) => (not found|\S+)", line)
        if match:
            found[match[1]] = None if match[2] == "not found" else match[2]
    return found


def packages_of(paths: list[str]) -> dict[str, str]:
    """The installed package that holds each of ``paths`` (merged /usr or not), with one
    dpkg-query for all of them."""
    candidates: dict[str, str] = {}
    for path in paths:
        real = str(Path(path).resolve())
        for candidate in (path, real, real.replace("/usr/lib/", "/lib/", 1)):
            candidates.setdefault(candidate, path)
    out = subprocess.run(["dpkg-query", "-S", *candidates], capture_output=True, text=True,
                         check=False).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        owner, _, where = line.partition(": ")
        if where.strip() in candidates:
            found.setdefault(candidates[where.strip()], owner.split(":")[0].strip())
    return found


@cache
def _depends_of_all() -> dict[str, tuple[str, ...]]:
    """Installed package -> the packages it depends on (any of the alternatives)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\n"],
                         capture_output=True, text=True, check=True).stdout
    table: dict[str, tuple[str, ...]] = {}
    for line in out.splitlines():
        package, _, depends = line.partition("\t")
        names = re.findall(r"(?:^|[,|])\s*([a-z0-9][a-z0-9+.-]+)", depends)
        table[package] = tuple(dict.fromkeys(names))
    return table


def _depends(package: str) -> tuple[str, ...]:
    return _depends_of_all().get(package, ())


@cache
def _provided() -> dict[str, set[str]]:
    """Virtual package -> the installed packages that provide it (libglib2.0-0t64 gives
    libglib2.0-0 on Ubuntu 24.04)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Provides}\n"],
                         capture_output=True, text=True, check=True).stdout
    provided: dict[str, set[str]] = {}
    for line in out.splitlines():
        package, _, provides = line.partition("\t")
        for name in re.findall(r"([a-z0-9][a-z0-9+.-]+)(?:\s*\([^)]*\))?", provides):
            provided.setdefault(name, set()).add(package)
    return provided


def base_packages() -> set[str]:
    """What every Debian has before scripts/dev runs (debootstrap's minimal base)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Essential}\t${Priority}\n"],
                         capture_output=True, text=True, check=True).stdout
    return {package for package, essential, priority
            in (line.split("\t") for line in out.splitlines() if line.count("\t") == 2)
            if essential == "yes" or priority == "required"}


def brought_by(packages: set[str]) -> set[str]:
    """``packages`` and everything they depend on, followed to the end."""
    seen: set[str] = set()
    todo = list(packages)
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        todo.extend(_provided().get(package, ()))
        todo.extend(_depends(package))
    return seen


def not_brought(listed: set[str]) -> tuple[list[str], list[str]]:
    """(libraries the loader does not find, libraries whose package ``listed`` and the
    base system do not bring), for both xcb libraries."""
    have = brought_by(listed | base_packages())
    missing: list[str] = []
    unlisted: list[str] = []
    system: dict[str, str] = {}  # path -> library name, for those not bundled with Qt
    for library in XCB:
        for name, path in linked(library).items():
            if path is None:
                missing.append(name)
            elif not Path(path).resolve().is_relative_to(QT):
                system[path] = name
    for path, package in packages_of(list(system)).items():
        if package not in have:
            unlisted.append(f"{system[path]} (package {package})")
    return sorted(set(missing)), sorted(set(unlisted))


def test_scripts_dev_installs_every_library_qts_window_links() -> None:
    missing, unlisted = not_brought(listed_packages())
    assert not missing, f"Qt's xcb platform cannot find {missing}: a window would not open"
    assert not unlisted, (
        f"scripts/dev's DEBIAN_PACKAGES do not bring {unlisted}: add their packages, or "
        "the window does not open on a fresh Debian")


def test_the_check_catches_the_packages_the_first_run_lacked() -> None:
    """Without libxcb-icccm4 and libxcb-keysyms1 in the list (as when the first run
    crashed), the check names both libraries."""
    _missing, unlisted = not_brought(listed_packages() - {"libxcb-icccm4", "libxcb-keysyms1"})
    assert any(entry.startswith("libxcb-icccm.so.4") for entry in unlisted), unlisted
    assert any(entry.startswith("libxcb-keysyms.so.1") for entry in unlisted), unlisted
