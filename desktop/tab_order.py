"""Tab order as a reader reads: the widgets that take Tab, in their layouts' order."""

from __future__ import annotations

import itertools

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLayout, QScrollArea, QWidget


def reading_order(root: QWidget) -> list[QWidget]:
    """The widgets under ``root`` that Tab can reach, top to bottom and left to right
    as its layouts place them (hidden ones too: Tab passes over them while hidden)."""
    found: list[QWidget] = []

    def visit(widget: QWidget | None) -> None:
        if widget is None:
            return
        if widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
            found.append(widget)  # a control: its inner parts are its own business
        elif isinstance(widget, QScrollArea):
            visit(widget.widget())
        else:
            walk(widget.layout())

    def walk(layout: QLayout | None) -> None:
        if layout is None:
            return
        for item in (layout.itemAt(index) for index in range(layout.count())):
            if item is not None:
                visit(item.widget())
                walk(item.layout())

    walk(root.layout())
    return found


def lay_tab_order(root: QWidget) -> list[QWidget]:
    """Chain Tab through :func:`reading_order` of ``root``; returns that order."""
    chain = reading_order(root)
    for first, second in itertools.pairwise(chain):
        QWidget.setTabOrder(first, second)
    return chain
