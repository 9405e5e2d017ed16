"""A layout that places its widgets left to right and wraps them onto new lines
(Qt's Flow Layout example), for galleries of cards."""

from __future__ import annotations

from PySide6.QtCore import QMargins, QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QLayout, QLayoutItem, QWidget


class FlowLayout(QLayout):
    """Wraps its items like words in a paragraph; hidden widgets take no room.

    Args:
        parent: the widget it lays out, if any.
        spacing: the gap between items, across and down.
    """

    def __init__(self, parent: QWidget | None = None, spacing: int = 12) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, apply=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._visible():
            size = size.expandedTo(item.minimumSize())
        margins: QMargins = self.contentsMargins()
        return size + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def _visible(self) -> list[QLayoutItem]:
        visible = []
        for item in self._items:
            widget = item.widget()
            if widget is None or not widget.isHidden():
                visible.append(item)
        return visible

    @staticmethod
    def _size(item: QLayoutItem) -> QSize:
        hint = item.sizeHint()
        if item.hasHeightForWidth():  # wrapped text: as tall as it is at this width
            hint.setHeight(max(item.minimumSize().height(),
                               item.heightForWidth(hint.width())))
        return hint

    def _arrange(self, rect: QRect, apply: bool) -> int:
        """Lay items out in lines; every item of a line gets the line's height, so
        cards side by side line up. Returns the height used."""
        margins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        lines: list[list[tuple[QLayoutItem, QSize]]] = [[]]
        x = area.x()
        for item in self._visible():
            size = self._size(item)
            if x + size.width() > area.right() + 1 and lines[-1]:
                lines.append([])
                x = area.x()
            lines[-1].append((item, size))
            x += size.width() + self._spacing
        y = area.y()
        for line in lines:
            if not line:
                continue
            height = max(size.height() for _, size in line)
            x = area.x()
            for item, size in line:
                if apply:
                    item.setGeometry(QRect(QPoint(x, y), QSize(size.width(), height)))
                x += size.width() + self._spacing
            y += height + self._spacing
        used = y - self._spacing if lines[0] else y
        return used - rect.y() + margins.bottom()
