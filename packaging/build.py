"""Build Hookline's bundle with PyInstaller, then (on Linux) a .tar.gz and a .deb.

    python packaging/build.py [--dist DIR] [--work DIR] [--no-tar] [--no-deb]

Needs the ``packaging`` extra (``pip install -e .[packaging]``) and, on Linux, binutils
(PyInstaller reads libraries with objdump) and dpkg-deb. Writes into ``dist/``:

- ``hookline/``: the onedir bundle (run ``hookline/hookline --self-test``);
- ``hookline-<version>-linux-<machine>.tar.gz``: that folder, for any distribution;
- ``hookline_<version>_<arch>.deb``: installs under /opt/hookline, with
  /usr/bin/hookline, a menu entry and icons.

Windows (Inno Setup, packaging/windows) and macOS (packaging/macos) start from the
same bundle; their installers are built on those systems.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "hookline.spec"
NAME = "hookline"
MAINTAINER = "Hookline developers <hookline@example.org>"
SUMMARY = "Personal automation on your own machine"
DESCRIPTION = (
    "When this happens in one service, do that in another: a new RSS item, a file in a\n"
    "folder, a webhook, an email or a time of day turned into a notification, a file,\n"
    "an HTTP call, an email or a program run. Runs on your machine, no cloud account."
)
#: Icon sizes installed under /usr/share/icons/hicolor.
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)
#: The Qt runtime libraries the bundle loads from the system (see shared PLATFORM.md):
#: offscreen needs the first line, a real window under X11 the rest.
DEPENDS = (
    "libgl1, libegl1, libxkbcommon0, libglib2.0-0t64 | libglib2.0-0, libfreetype6, "
    "libfontconfig1, libdbus-1-3, "
    "libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-render-util0, "
    "libxcb-render0, libxcb-shape0, libxcb-util1, libxcb-xkb1, libxkbcommon-x11-0"
)
DESKTOP_ENTRY = """\
[Desktop Entry]
Type=Application
Name=Hookline
GenericName=Automation
Comment={summary}
Exec=hookline
Icon=hookline
Terminal=false
Categories=Utility;Network;
Keywords=automation;webhook;rss;timer;
StartupNotify=true
"""


def version() -> str:
    sys.path.insert(0, str(ROOT))
    from engine import __version__

    return __version__


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def pyinstaller(dist: Path, work: Path, clean: bool) -> Path:
    """Run PyInstaller on the spec; the bundle's folder."""
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
               "--distpath", str(dist), "--workpath", str(work)]
    if clean:
        command.append("--clean")
    subprocess.run([*command, str(SPEC)], cwd=ROOT, check=True)
    bundle = dist / NAME
    if not (bundle / NAME).exists() and not (bundle / f"{NAME}.exe").exists():
        raise SystemExit(f"PyInstaller left no {NAME} executable in {bundle}")
    return bundle


def machine() -> str:
    return platform.machine().lower() or "unknown"


def make_tarball(bundle: Path, dist: Path, ver: str) -> Path:
    out = dist / f"{NAME}-{ver}-linux-{machine()}.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname=f"{NAME}-{ver}")
    return out


def _renderer(svg: Path) -> tuple[Any, str]:
    """A QSvgRenderer for the app icon in its colour, and the coloured SVG text."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QByteArray
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtSvg import QSvgRenderer

    global _APP
    _APP = QGuiApplication.instance() or QGuiApplication([NAME])
    # The same colour as the window's icon (desktop.icons.app_icon).
    data = svg.read_text(encoding="utf-8").replace("currentColor", "#2f6fed")
    renderer = QSvgRenderer(QByteArray(data.encode()))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    return renderer, data


def _render(renderer: Any, size: int) -> Any:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter

    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


_APP: Any = None

#: Where the Windows and macOS icons live (generated from the SVG, committed).
ICO = ROOT / "packaging" / "windows" / f"{NAME}.ico"
ICNS = ROOT / "packaging" / "macos" / f"{NAME}.icns"


def platform_icons(svg: Path) -> list[Path]:
    """The .ico (256 px, Windows scales it) and .icns (512 px) from the SVG."""
    renderer, _data = _renderer(svg)
    written = []
    for path, size, kind in ((ICO, 256, "ico"), (ICNS, 512, "icns")):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not _render(renderer, size).save(str(path), kind):
            raise SystemExit(f"could not write {path}")
        written.append(path)
    return written


def render_icons(svg: Path, root: Path) -> list[Path]:
    """hookline.svg as PNGs under root/usr/share/icons/hicolor/<size>/apps (QtSvg)."""
    renderer, data = _renderer(svg)
    written = []
    for size in ICON_SIZES:
        image = _render(renderer, size)
        path = root / f"usr/share/icons/hicolor/{size}x{size}/apps/{NAME}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(path)):  # PNG, by the suffix
            raise SystemExit(f"could not write {path}")
        written.append(path)
    scalable = root / f"usr/share/icons/hicolor/scalable/apps/{NAME}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    scalable.write_text(data, encoding="utf-8")
    return [*written, scalable]


def tool(name: str) -> str:
    """The full path of a program, or a clear stop if it is missing."""
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} not found: on Debian/Ubuntu, apt-get install dpkg")
    return path


def deb_arch() -> str:
    return subprocess.run([tool("dpkg"), "--print-architecture"], capture_output=True,
                          text=True, check=True).stdout.strip()


def make_deb(bundle: Path, dist: Path, work: Path, ver: str) -> Path:
    """A .deb of the bundle: /opt/hookline, /usr/bin/hookline, menu entry, icons."""
    root = work / "deb-root"
    if root.exists():
        shutil.rmtree(root)
    opt = root / "opt" / NAME
    shutil.copytree(bundle, opt, symlinks=True)
    usr_bin = root / "usr" / "bin"
    usr_bin.mkdir(parents=True)
    # Relative, so it also works from an unpacked tree (dpkg -x); PyInstaller's
    # bootloader follows the link to find its _internal folder.
    (usr_bin / NAME).symlink_to(Path("..", "..", "opt", NAME, NAME))
    applications = root / "usr" / "share" / "applications"
    applications.mkdir(parents=True)
    (applications / f"{NAME}.desktop").write_text(
        DESKTOP_ENTRY.format(summary=SUMMARY), encoding="utf-8")
    render_icons(ROOT / "resources" / "icons" / "hookline.svg", root)
    arch = deb_arch()
    control = root / "DEBIAN" / "control"
    control.parent.mkdir()
    description = "\n".join(f" {line}" for line in DESCRIPTION.splitlines())
    control.write_text(
        f"Package: {NAME}\n"
        f"Version: {ver}\n"
        "Section: utils\n"
        "Priority: optional\n"
        f"Architecture: {arch}\n"
        f"Maintainer: {MAINTAINER}\n"
        f"Installed-Size: {size_of(root) // 1024}\n"
        f"Depends: {DEPENDS}\n"
        "Homepage: https://example.org/hookline\n"
        f"Description: {SUMMARY}\n{description}\n",
        encoding="utf-8")
    for path in root.rglob("*"):  # what dpkg expects, whatever the umask was
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    out = dist / f"{NAME}_{ver}_{arch}.deb"
    # gzip: quick to build and readable by every dpkg (xz takes minutes on 200 MB).
    subprocess.run([tool("dpkg-deb"), "--root-owner-group", "-Zgzip", "-z6", "--build",
                    str(root), str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--work", type=Path, default=ROOT / "build")
    parser.add_argument("--clean", action="store_true", help="rebuild PyInstaller's cache")
    parser.add_argument("--no-tar", action="store_true", help="no .tar.gz (Linux)")
    parser.add_argument("--no-deb", action="store_true", help="no .deb (Linux)")
    parser.add_argument("--icons", action="store_true",
                        help="only regenerate the committed .ico and .icns from the SVG")
    args = parser.parse_args(argv)
    if args.icons:
        for path in platform_icons(ROOT / "resources" / "icons" / f"{NAME}.svg"):
            step(f"wrote {path.relative_to(ROOT)}")
        return 0
    dist, work = args.dist.resolve(), args.work.resolve()
    ver = version()

    started = time.perf_counter()
    step(f"PyInstaller: Hookline {ver} into {dist / NAME}")
    bundle = pyinstaller(dist, work, args.clean)
    built = time.perf_counter()
    step(f"bundle: {mib(size_of(bundle))} in {built - started:.0f} s")
    if sys.platform.startswith("linux"):
        if not args.no_tar:
            tar = make_tarball(bundle, dist, ver)
            step(f"{tar.name}: {mib(tar.stat().st_size)}")
        if not args.no_deb:
            deb = make_deb(bundle, dist, work, ver)
            step(f"{deb.name}: {mib(deb.stat().st_size)}")
    step(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
