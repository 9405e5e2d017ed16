"""Presets: a searchable gallery of ready-made automations; "Use" opens the editor on
a copy with its blanks still to fill."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.bridge import EngineBridge
from desktop.flow_layout import FlowLayout
from desktop.icons import service_icon
from desktop.pages.common import empty_state, heading, muted, open_area_editor
from desktop.presets import Blank, Preset, load_presets
from engine.errors import CatalogError, HooklineError

CARD_WIDTH = 300  # the narrowest a card gets; cards widen to fill each row
CARD_MAX_WIDTH = 420
GAP = 12


def blank_labels(bridge: EngineBridge, preset: Preset) -> list[str]:
    """What the user must fill, in the words of the parameters' labels."""
    registry = bridge.registry
    labels = []
    for blank in preset.blanks:
        labels.append(_blank_label(registry, preset, blank))
    return labels


def _blank_label(registry: Any, preset: Preset, blank: Blank) -> str:
    spec = preset.spec_dict
    try:
        if blank.reaction is None:
            declared = registry.trigger(spec["trigger"]["service"], spec["trigger"]["trigger"])
        else:
            step = spec["reactions"][blank.reaction]
            declared = registry.reaction(step["service"], step["reaction"])
    except (CatalogError, KeyError):
        return blank.param
    param = declared.param(blank.param)
    return str(param.label) if param is not None else blank.param


class PresetCard(QFrame):
    """One preset: trigger icon → reaction icons, name, description, what to fill, Use.

    Args:
        preset: the preset shown.
        needs: labels of the parameters the user must fill.

    Signals:
        useRequested(object): the preset, when Use is pressed.
    """

    useRequested = Signal(object)

    def __init__(self, preset: Preset, needs: list[str], service_names: dict[str, str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preset = preset
        self.setObjectName("presetCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFixedWidth(CARD_WIDTH)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.setAccessibleName(preset.name)
        self.setAccessibleDescription(preset.description)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        layout.setSpacing(6)

        icons = QHBoxLayout()
        icons.setSpacing(6)
        icons.addWidget(self._icon(preset.trigger_service, service_names))
        arrow = muted(QLabel("→"))
        arrow.setAccessibleName("then")
        icons.addWidget(arrow)
        shown: list[str] = []
        for service in preset.reaction_services:
            if service not in shown:
                shown.append(service)
                icons.addWidget(self._icon(service, service_names))
        icons.addStretch(1)
        layout.addLayout(icons)

        name = heading(preset.name, 1.1)
        name.setObjectName("presetName")
        layout.addWidget(name)
        description = QLabel(preset.description)
        description.setWordWrap(True)
        layout.addWidget(description)
        self.needs = muted(QLabel("You fill in: " + ", ".join(needs) if needs
                                  else "Ready to use as it is."))
        self.needs.setWordWrap(True)
        self.needs.setObjectName("presetNeeds")
        layout.addWidget(self.needs)
        layout.addStretch(1)
        self.use_button = QPushButton("Use")
        self.use_button.setAccessibleName(f"Use {preset.name}")
        self.use_button.setToolTip("Open it in the editor to fill the blanks and save it")
        self.use_button.clicked.connect(lambda: self.useRequested.emit(self.preset))
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.use_button)
        layout.addLayout(row)

    @staticmethod
    def _icon(service_id: str, names: dict[str, str]) -> QLabel:
        label = QLabel()
        label.setPixmap(service_icon(service_id).pixmap(QSize(32, 32)))
        label.setFixedSize(36, 36)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setToolTip(names.get(service_id, service_id))
        label.setAccessibleName(names.get(service_id, service_id))
        return label

    def matches(self, words: list[str], service_names: dict[str, str]) -> bool:
        """Whether every word appears in the name, description or a service's name."""
        text = " ".join([self.preset.name, self.preset.description,
                         *self.preset.services,
                         *(service_names.get(s, "") for s in self.preset.services)]).lower()
        return all(word in text for word in words)


class PresetsPage(QWidget):
    """A gallery of presets with a search box; "Use" opens the area editor pre-filled.

    Args:
        bridge: the engine bridge.
        parent: the owning widget.

    Attributes:
        presets: every preset loaded.
        cards: one ``PresetCard`` per preset, in order.
        search: the search box.
    """

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None,
                 presets: list[Preset] | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.presets = load_presets() if presets is None else presets
        registry = bridge.registry
        self._names = {s.id: s.name for s in registry}
        available = set(registry.services)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search presets (e.g. feed, email, file)")
        self.search.setAccessibleName("Search presets")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(240)
        self.search.textChanged.connect(self._filter)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self,
                  self.search.setFocus)

        self.gallery = QWidget()
        self.gallery.setObjectName("presetGallery")
        self.flow = FlowLayout(self.gallery, spacing=GAP)
        self.cards: list[PresetCard] = []
        for preset in self.presets:
            if not set(preset.services) <= available:
                continue  # uses a service that is not installed (a removed plugin)
            card = PresetCard(preset, blank_labels(bridge, preset), self._names)
            card.useRequested.connect(self.use)
            self.flow.addWidget(card)
            self.cards.append(card)
        self.no_match = empty_state("")
        self.no_match.hide()
        if not self.cards:
            self.no_match.setText("No presets are installed. Press New on the Automations "
                                  "screen to build one from scratch.")
            self.no_match.show()

        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        inner = QWidget()
        inner_layout = QVBoxLayout(inner)
        inner_layout.setContentsMargins(0, 0, 0, 0)
        inner_layout.addWidget(self.gallery)
        inner_layout.addWidget(self.no_match)
        inner_layout.addStretch(1)
        self.scroll_area.setWidget(inner)
        self.scroll_area.viewport().installEventFilter(self)

        top = QHBoxLayout()
        top.addWidget(heading("Presets"))
        top.addSpacing(12)
        intro = muted(QLabel("Ready-made automations: pick one, fill in the blanks, save."))
        intro.setWordWrap(True)
        top.addWidget(intro, 1)
        top.addWidget(self.search)
        #: Says where a preset went once saved (the editor closes, the gallery stays).
        self.status = QLabel()
        self.status.setAccessibleName("Status")
        self.status.setStyleSheet("color: #1e8e3e;")
        self.status.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.scroll_area, 1)
        self.setMinimumSize(CARD_WIDTH + 80, 360)

    # ----------------------------------------------------------------- public

    def visible_cards(self) -> list[PresetCard]:
        return [c for c in self.cards if not c.isHidden()]

    def use(self, preset: Preset) -> QWidget:
        """Open the area editor on a copy of ``preset`` (blanks still empty)."""
        return self.open_editor(preset.spec())

    def open_editor(self, spec_dict: dict[str, Any]) -> QWidget:
        editor = open_area_editor(self.bridge, self, spec_dict)
        saved = getattr(editor, "saved", None)
        if saved is not None:
            saved.connect(self._saved)
        return editor

    def _saved(self, area_id: str) -> None:
        try:
            name = self.bridge.area(area_id).name
        except HooklineError:  # deleted meanwhile (from the tray, another window)
            return
        self.status.setText(f"Saved: “{name}” is on the Automations screen.")
        self.status.show()

    # ----------------------------------------------------------------- internals

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.scroll_area.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_cards(self.scroll_area.viewport().width())
        return super().eventFilter(watched, event)

    def _fit_cards(self, width: int) -> None:
        """As many columns as fit, the cards sharing the row's width."""
        margins = self.flow.contentsMargins()
        room = width - margins.left() - margins.right()
        columns = max(1, (room + GAP) // (CARD_WIDTH + GAP))
        card_width = min(CARD_MAX_WIDTH, max(CARD_WIDTH, (room - GAP * (columns - 1)) // columns))
        for card in self.cards:
            if card.width() != card_width:
                card.setFixedWidth(card_width)

    def _filter(self, text: str) -> None:
        words = text.lower().split()
        for card in self.cards:
            card.setHidden(not card.matches(words, self._names))
        shown = any(not c.isHidden() for c in self.cards)
        if self.cards:
            self.no_match.setText(f"No presets match “{text.strip()}”. Try another word, or "
                                  "press New on the Automations screen to start from scratch.")
            self.no_match.setVisible(not shown)
        self.flow.invalidate()
        self.gallery.updateGeometry()
