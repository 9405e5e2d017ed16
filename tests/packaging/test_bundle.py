"""The Linux bundle and .deb, built for real with packaging/build.py (slow: about a
minute and a half on two cores), then run: ``--version`` and ``--self-test`` from the
bundle, the .deb's control fields and file list, and ``--version`` from the unpacked .deb.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import __version__

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux packages"),
    pytest.mark.skipif(importlib.util.find_spec("PyInstaller") is None,
                       reason="PyInstaller is not installed (pip install -e '.[packaging]')"),
    pytest.mark.skipif(shutil.which("dpkg-deb") is None,
                       reason="dpkg-deb is not installed (apt-get install dpkg)"),
]


@dataclass
class Built:
    dist: Path
    build_seconds: float

    @property
    def bundle(self) -> Path:
        return self.dist / "hookline"

    @property
    def exe(self) -> Path:
        return self.bundle / "hookline"

    def one(self, pattern: str) -> Path:
        found = sorted(self.dist.glob(pattern))
        assert len(found) == 1, f"{pattern} in {self.dist}: {found}"
        return found[0]


def report(line: str) -> None:
    print(f"[packaging] {line}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    where = tmp_path_factory.mktemp("bundle")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "build.py"), "--dist", str(where / "dist"),
         "--work", str(where / "build")],
        cwd=ROOT, capture_output=True, text=True, timeout=540, check=False)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = Built(where / "dist", seconds)
    size = sum(p.lstat().st_size for p in result.bundle.rglob("*") if not p.is_dir())
    report(f"build (bundle, .tar.gz, .deb): {seconds:.0f} s; bundle {size / 2**20:.0f} MiB")
    return result


def run(exe: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})


def test_bundle_version(built: Built) -> None:
    started = time.perf_counter()
    done = run(built.exe, "--version")
    report(f"--version from the bundle: {time.perf_counter() - started:.2f} s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"hookline {__version__}"


def test_bundle_self_test(built: Built) -> None:
    started = time.perf_counter()
    done = run(built.exe, "--self-test")
    report(f"--self-test from the bundle: {time.perf_counter() - started:.2f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout
    assert done.stdout.rstrip().endswith("self-test passed"), done.stdout


def test_bundle_finds_the_same_keyring_as_source(built: Built, tmp_path: Path) -> None:
    """keyring picks its backend through entry points: frozen, it must still find the
    Secret Service (under scripts/with-keyring) or, without one, say so the same way."""

    def keyring_line(command: list[str]) -> str:
        done = subprocess.run([*command, "--data-dir", str(tmp_path / "d"), "doctor"],
                              capture_output=True, text=True, timeout=90, check=False)
        lines = [line for line in done.stdout.splitlines() if " keyring " in line]
        assert lines, done.stdout + done.stderr
        return " ".join(lines[0].split())

    source = keyring_line([sys.executable, "-m", "desktop.launcher"])
    assert keyring_line([str(built.exe)]) == source


def test_bundle_ships_services_migrations_and_resources(built: Built) -> None:
    from engine.registry import BUILTIN_MODULES

    internal = built.bundle / "_internal"
    migrations = internal / "engine" / "storage" / "migrations"
    assert (migrations / "env.py").is_file() and (migrations / "script.py.mako").is_file()
    shipped = {p.name for p in (migrations / "versions").glob("*.py")}
    source = {p.name for p in (ROOT / "engine/storage/migrations/versions").glob("*.py")}
    assert shipped == source
    assert (internal / "resources" / "icons" / "hookline.svg").is_file()
    assert list((internal / "resources" / "presets").glob("*.yaml"))
    done = run(built.exe, "services", "--json")
    assert done.returncode == 0, done.stderr
    for module in BUILTIN_MODULES:  # every built-in service made it into the bundle
        assert f'"{module.rsplit(".", 1)[1]}"' in done.stdout, module


def test_tarball_holds_the_bundle(built: Built) -> None:
    tarball = built.one(f"hookline-{__version__}-linux-*.tar.gz")
    report(f"{tarball.name}: {tarball.stat().st_size / 2**20:.0f} MiB")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert f"hookline-{__version__}/hookline" in names
    assert f"hookline-{__version__}/_internal/resources/icons/hookline.svg" in names


def test_deb_control_fields(built: Built) -> None:
    deb = built.one("hookline_*.deb")
    report(f"{deb.name}: {deb.stat().st_size / 2**20:.0f} MiB")
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True,
                          check=True).stdout
    fields: dict[str, str] = {}
    for line in info.splitlines():
        name, sep, value = line.strip().partition(": ")
        if sep and name[:1].isupper():
            fields.setdefault(name, value)
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert fields["Package"] == "hookline"
    assert fields["Version"] == __version__
    assert fields["Architecture"] == arch
    assert deb.name == f"hookline_{__version__}_{arch}.deb"
    assert "<" in fields["Maintainer"] and fields["Description"]
    depends = fields["Depends"]
    for lib in ("libgl1", "libegl1", "libxkbcommon0", "libglib2.0-0", "libfreetype6",
                "libfontconfig1", "libdbus-1-3", "libxcb-cursor0", "libxkbcommon-x11-0"):
        assert lib in depends


def test_deb_file_list(built: Built) -> None:
    listing = subprocess.run(["dpkg-deb", "-c", str(built.one("hookline_*.deb"))],
                             capture_output=True, text=True, check=True).stdout
    paths = {line.split()[5] for line in listing.splitlines()}
    assert "./opt/hookline/hookline" in paths
    assert "./opt/hookline/_internal/engine/storage/migrations/versions" \
           "/0001_initial_schema.py" in paths
    assert "./usr/bin/hookline" in paths
    assert "./usr/share/applications/hookline.desktop" in paths
    for size in (16, 32, 48, 128, 256):
        assert f"./usr/share/icons/hicolor/{size}x{size}/apps/hookline.png" in paths
    owners = {line.split()[1] for line in listing.splitlines()}
    assert owners == {"root/root"}


def test_unpacked_deb_runs(built: Built, tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", str(built.one("hookline_*.deb")), str(root)], check=True)
    desktop = (root / "usr/share/applications/hookline.desktop").read_text(encoding="utf-8")
    assert "Exec=hookline" in desktop and "Icon=hookline" in desktop
    started = time.perf_counter()
    done = run(root / "usr" / "bin" / "hookline", "--version")
    report(f"--version from the unpacked .deb (/usr/bin link): "
           f"{time.perf_counter() - started:.2f} s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"hookline {__version__}"
