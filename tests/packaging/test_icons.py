"""The Windows and macOS icons are made from the same SVG and are readable."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("path", "kind", "size"), [
    ("packaging/windows/hookline.ico", "ico", 256),
    ("packaging/macos/hookline.icns", "icns", 512),
])
def test_platform_icon_is_a_readable_image(qapp: object, path: str, kind: str,
                                           size: int) -> None:
    image = QImage()
    assert image.load(str(ROOT / path), kind), f"{path} does not load"
    assert (image.width(), image.height()) == (size, size)
    assert image.pixelColor(size // 2, size // 2).alpha() > 0  # not a blank square
