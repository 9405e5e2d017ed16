"""Services: the catalog of every service, its triggers and reactions, and plugins that
failed to load; any trigger or reaction can start a new automation."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from desktop.bridge import EngineBridge
from desktop.icons import service_icon
from desktop.pages.common import empty_state, heading, muted, open_area_editor
from engine.catalog.params import format_duration
from engine.catalog.service import AuthKind, ReactionSpec, Service, TriggerKind, TriggerSpec
from engine.settings import Settings

AUTH_TEXT = {
    AuthKind.NONE: "No account needed",
    AuthKind.API_KEY: "Needs an API key",
    AuthKind.OAUTH2: "Needs an account (you sign in through your browser)",
}
WARNING_COLOR = "#e37400"
#: Roles of the service list's items.
ServiceRole = Qt.ItemDataRole.UserRole + 1
BrokenRole = Qt.ItemDataRole.UserRole + 2


def auth_text(service: Service) -> str:
    """What the user needs before using the service."""
    if service.auth is AuthKind.NONE:
        specs: list[TriggerSpec | ReactionSpec] = [*service.triggers.values(),
                                                   *service.reactions.values()]
        asks = any(p.is_secret for spec in specs for p in spec.params)
        return ("No account needed (you give a password or key in each automation that "
                "needs one)" if asks else "No account needed")
    return AUTH_TEXT.get(service.auth, str(service.auth))


def trigger_kind_text(spec: TriggerSpec) -> str:
    """How a trigger notices things, in the user's words."""
    if spec.kind is TriggerKind.SCHEDULE:
        return "On a schedule"
    if spec.kind is TriggerKind.POLL:
        return f"Checks every {format_duration(spec.default_interval)}"
    return "Instantly, when a request reaches its web address"


def new_area_spec(service_id: str, action_id: str, is_trigger: bool) -> dict[str, Any]:
    """The editor's starting point for "Use in a new automation"."""
    if is_trigger:
        return {"name": "", "trigger": {"service": service_id, "trigger": action_id,
                                        "params": {}}}
    return {"name": "", "reactions": [{"service": service_id, "reaction": action_id,
                                       "params": {}}]}


def _wrapped(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ActionCard(QFrame):
    """One trigger or reaction: what it does, what it asks for, what it gives, and a
    button to start a new automation with it.

    Args:
        service: the service it belongs to.
        spec: the trigger or reaction.
        settings: the engine's settings (a reaction may need one turned on).

    Signals:
        useRequested(str, str, bool): service id, trigger/reaction id, whether a trigger.
    """

    useRequested = Signal(str, str, bool)

    def __init__(self, service: Service, spec: TriggerSpec | ReactionSpec, settings: Settings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service_id = service.id
        self.action_id = spec.id
        self.is_trigger = isinstance(spec, TriggerSpec)
        self.setObjectName("actionCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName(f"{spec.name}: {spec.description}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(4)

        top = QHBoxLayout()
        name = heading(spec.name, 1.05)
        top.addWidget(name, 1)
        if isinstance(spec, TriggerSpec):
            kind = muted(QLabel(trigger_kind_text(spec)))
            top.addWidget(kind, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        layout.addWidget(_wrapped(spec.description))
        params = [p.label + ("" if p.required else " (optional)") for p in spec.params]
        if params:
            layout.addWidget(muted(_wrapped("Asks for: " + ", ".join(params))))
        if spec.fields:
            verb = "Gives" if self.is_trigger else "Passes on"
            layout.addWidget(muted(_wrapped(
                f"{verb}: " + ", ".join(f.label for f in spec.fields))))
        self.requirement: QLabel | None = None
        if isinstance(spec, ReactionSpec) and spec.requires_setting:
            label = next((p.label for p in Settings.params()
                          if p.name == spec.requires_setting), spec.requires_setting)
            on = bool(getattr(settings, spec.requires_setting, False))
            text = (f"Allowed by the setting “{label}”." if on
                    else f"Off until you turn on “{label}” in Settings.")
            self.requirement = _wrapped(text)
            if not on:
                palette = self.requirement.palette()
                palette.setColor(QPalette.ColorRole.WindowText, QColor(WARNING_COLOR))
                self.requirement.setPalette(palette)
            layout.addWidget(self.requirement)

        self.use_button = QPushButton("Use in a new automation")
        self.use_button.setAccessibleName(f"Use {spec.name} in a new automation")
        self.use_button.clicked.connect(
            lambda: self.useRequested.emit(self.service_id, self.action_id, self.is_trigger))
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.use_button)
        layout.addLayout(row)


class ServiceDetail(QWidget):
    """A service's header (icon, name, description, account needs) and its cards.

    Args:
        service: the service to show.
        settings: the engine's settings.

    Attributes:
        cards: one ``ActionCard`` per trigger, then per reaction.
    """

    def __init__(self, service: Service, settings: Settings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cards: list[ActionCard] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 16)
        layout.setSpacing(8)
        header = QHBoxLayout()
        icon = QLabel()
        icon.setPixmap(service_icon(service.id).pixmap(QSize(48, 48)))
        icon.setFixedSize(56, 56)
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        header.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        text = QVBoxLayout()
        text.addWidget(heading(service.name, 1.5))
        text.addWidget(_wrapped(service.description))
        self.auth = muted(_wrapped(auth_text(service)))
        self.auth.setObjectName("serviceAuth")
        text.addWidget(self.auth)
        header.addLayout(text, 1)
        layout.addLayout(header)

        layout.addWidget(self._section("Triggers — when this happens",
                                       len(service.triggers)))
        if not service.triggers:
            layout.addWidget(muted(QLabel("None: this service only does things.")))
        for trigger in service.triggers.values():
            self._add_card(layout, ActionCard(service, trigger, settings))
        layout.addWidget(self._section("Reactions — do this", len(service.reactions)))
        if not service.reactions:
            layout.addWidget(muted(QLabel("None: this service only starts automations.")))
        for reaction in service.reactions.values():
            self._add_card(layout, ActionCard(service, reaction, settings))
        layout.addStretch(1)

    def _add_card(self, layout: QVBoxLayout, card: ActionCard) -> None:
        self.cards.append(card)
        layout.addWidget(card)

    @staticmethod
    def _section(text: str, count: int) -> QLabel:
        label = heading(f"{text} ({count})", 1.1)
        label.setContentsMargins(0, 12, 0, 2)
        return label


class BrokenPluginDetail(QWidget):
    """A plugin that failed to load: its name and the error, in a warning box."""

    def __init__(self, name: str, error: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 16)
        layout.addWidget(heading(name, 1.5))
        box = QFrame()
        box.setObjectName("warningBox")
        box.setFrameShape(QFrame.Shape.StyledPanel)
        box.setStyleSheet(f"#warningBox {{ border: 1px solid {WARNING_COLOR}; "
                          "border-radius: 4px; }")
        inner = QHBoxLayout(box)
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(
            QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(QSize(32, 32)))
        inner.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        text = QVBoxLayout()
        text.addWidget(heading("This plugin failed to load", 1.05))
        self.error = _wrapped(error)
        self.error.setObjectName("pluginError")
        text.addWidget(self.error)
        text.addWidget(muted(_wrapped(
            "Its triggers and reactions are not available. Automations that use it do "
            "not run until it loads: update or reinstall the plugin's package, then "
            "restart Hookline.")))
        inner.addLayout(text, 1)
        layout.addWidget(box)
        layout.addStretch(1)


class ServicesPage(QWidget):
    """The catalog: services on the left, the selected one's triggers and reactions on
    the right; "Use in a new automation" opens the area editor pre-filled.

    Args:
        bridge: the engine bridge (its registry is the catalog).
        parent: the owning widget.

    Attributes:
        services: the list of services (and broken plugins, last).
        detail: the selected service's ``ServiceDetail`` or ``BrokenPluginDetail``.
    """

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.detail: QWidget | None = None

        self.services = QListWidget()
        self.services.setAccessibleName("Services")
        self.services.setIconSize(QSize(24, 24))
        self.services.setMinimumWidth(180)
        self.services.setMaximumWidth(280)
        self.services.setSpacing(1)
        registry = bridge.registry
        for service in registry:
            item = QListWidgetItem(service_icon(service.id), service.name)
            item.setData(ServiceRole, service.id)
            item.setToolTip(service.description)
            item.setSizeHint(QSize(160, 34))
            self.services.addItem(item)
        warning = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        for name, error in sorted(registry.broken.items()):
            item = QListWidgetItem(warning, f"{name} (failed to load)")
            item.setData(BrokenRole, name)
            item.setToolTip(error)
            item.setSizeHint(QSize(160, 34))
            self.services.addItem(item)
        self.services.currentRowChanged.connect(self._show_current)

        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setMinimumWidth(380)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.services)
        splitter.addWidget(self.scroll_area)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        title = QHBoxLayout()
        title.addWidget(heading("Services"))
        count = len(registry.services)
        summary = f"{count} service{'s' if count != 1 else ''}"
        if registry.broken:
            summary += f", {len(registry.broken)} failed to load"
        title.addStretch(1)
        title.addWidget(muted(QLabel(summary)))
        layout.addLayout(title)
        layout.addWidget(splitter, 1)
        self.setMinimumSize(620, 360)

        bridge.settingsChanged.connect(self._settings_changed)
        if self.services.count():
            self.services.setCurrentRow(0)
        else:
            self.scroll_area.setWidget(empty_state(
                "No services are installed. Reinstall Hookline to get the built-in ones."))

    # ----------------------------------------------------------------- public

    def show_service(self, service_id: str) -> bool:
        """Select a service by id; False if there is none."""
        for row in range(self.services.count()):
            if self.services.item(row).data(ServiceRole) == service_id:
                self.services.setCurrentRow(row)
                return True
        return False

    def cards(self) -> list[ActionCard]:
        return self.detail.cards if isinstance(self.detail, ServiceDetail) else []

    def use(self, service_id: str, action_id: str, is_trigger: bool) -> QWidget:
        """Open the area editor on a new automation that starts with this trigger or
        reaction."""
        return self.open_editor(new_area_spec(service_id, action_id, is_trigger))

    def open_editor(self, spec_dict: dict[str, Any]) -> QWidget:
        return open_area_editor(self.bridge, self, spec_dict)

    # ----------------------------------------------------------------- internals

    def _show_current(self, row: int) -> None:
        item = self.services.item(row) if row >= 0 else None
        if item is None:
            return
        registry = self.bridge.registry
        service_id = item.data(ServiceRole)
        detail: QWidget
        if service_id is not None:
            service_detail = ServiceDetail(registry.service(service_id),
                                           self.bridge.settings)
            for card in service_detail.cards:
                card.useRequested.connect(self.use)
            detail = service_detail
        else:
            name = item.data(BrokenRole)
            detail = BrokenPluginDetail(name, registry.broken.get(name, ""))
        self.detail = detail
        self.scroll_area.setWidget(detail)  # the previous detail is deleted by the scroll area
        self.scroll_area.verticalScrollBar().setValue(0)

    def _settings_changed(self) -> None:
        # e.g. running programs was allowed: the cards say what is on now
        if isinstance(self.detail, ServiceDetail):
            self._show_current(self.services.currentRow())
