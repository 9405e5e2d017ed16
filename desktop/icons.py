"""Service and app icons from resources/icons, tinted for the current palette."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from resources import icon as icon_path

SIZES = (16, 20, 24, 32, 48)


def _color() -> str:
    app = QApplication.instance()
    if isinstance(app, QApplication):
        return app.palette().color(QPalette.ColorRole.WindowText).name()
    return "#202124"


@cache
def _icon(name: str, color: str) -> QIcon:
    path = icon_path(name)
    result = QIcon()
    if not path.exists():
        path = icon_path("hookline.svg")
        if not path.exists():
            return result
    svg = path.read_text(encoding="utf-8").replace("currentColor", color)
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    for size in SIZES:
        pixmap = QPixmap(QSize(size, size))
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter)
        painter.end()
        result.addPixmap(pixmap)
    return result


def service_icon(service_id: str) -> QIcon:
    """The service's icon in the palette's text colour (light and dark themes)."""
    return _icon(f"{service_id}.svg", _color())


def app_icon() -> QIcon:
    return _icon("hookline.svg", "#2f6fed")
