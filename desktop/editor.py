"""The area editor: a trigger, an optional condition and reactions; test it, save it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop import dialogs
from desktop.bridge import EngineBridge
from desktop.filter_builder import ConditionBuilder
from desktop.forms import (
    Available,
    FieldChoice,
    FieldGroup,
    ParamField,
    ParamForm,
    error_color,
    error_label,
    small_label,
)
from desktop.icons import service_icon
from desktop.tab_order import lay_tab_order
from desktop.tasks import WidgetTasks
from desktop.wheel import guard_inputs
from desktop.window_fields import KEYS as WINDOW_KEYS
from desktop.window_fields import WindowFields
from engine.areas import AreaSpec, Step
from engine.catalog.params import Param, ParamType, format_duration, parse_duration
from engine.catalog.service import ReactionSpec, Service, TriggerKind, TriggerSpec
from engine.errors import CatalogError, HooklineError, ValidationError
from engine.places import in_words
from engine.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_TRIGGER_SERVICE = "timer"
DEFAULT_REACTION_SERVICE = "notify"
_REACTION_WHERE = re.compile(r"^reactions\[(\d+)\](.*)$")

CATCH_UP = Param(
    "catch_up", ParamType.CHOICE, "If a time is missed",
    help="When the computer was off or asleep at a time this should have run.",
    required=False, default="skip",
    choices=(("skip", "Skip it (the history notes the miss)"),
             ("once", "Run once when Hookline is back")),
)
CONDITION = Param(
    "condition", ParamType.TEMPLATE, "Condition",
    help="A template that comes out true or false; when false nothing runs and the run "
         "is noted as skipped. E.g. {{ 'release' in trigger.title | lower }}",
    templated=True,
)
NAME = Param("name", ParamType.TEXT, "Name", example="Morning reminder")
#: The answers to "Discard changes?" when closing with unsaved changes.
SAVE, DISCARD, KEEP_EDITING = "Save", "Discard", "Keep editing"
#: ... and when quitting with unsaved changes: Cancel keeps Hookline open.
CANCEL_QUIT = "Cancel"
#: The largest sample body taken (as the webhook listener's default limit).
SAMPLE_LIMIT = 1024 * 1024
SAMPLE_EXAMPLE = '{"title": "Hello", "user": {"name": "Ada"}}'
#: What the test result calls the event it used, by where it came from.
_EVENT_HEADINGS = {"delivery": "The last delivery:", "pasted": "Your sample:",
                   "example": "Example event (not from the trigger):"}
_TESTED_WITH = {"delivery": "the last delivery", "pasted": "your sample body"}


def interval_param(trigger: TriggerSpec) -> Param:
    """The optional "Check every" of a polling trigger (its hint offers only intervals
    the trigger allows)."""
    least = trigger.min_interval
    examples = sorted({least, max(least, trigger.default_interval), max(least, 3600)})
    return Param(
        "interval", ParamType.DURATION, "Check every",
        help=f"How often to look for something new: every "
             f"{format_duration(trigger.min_interval)} or more, e.g. "
             f"{', '.join(format_duration(s) for s in examples)}. Empty: every "
             f"{format_duration(trigger.default_interval)}.",
        required=False, default=trigger.default_interval, minimum=trigger.min_interval,
    )


def pretty(value: Any) -> list[str]:
    """Lines that show ``value`` readably: a mapping as ``name: value`` lines, long
    text on its own lines, nested data as indented JSON."""
    if isinstance(value, Mapping):
        lines: list[str] = []
        for key, item in value.items():
            if isinstance(item, str) and "\n" in item:
                lines.append(f"{key}:")
                lines += [f"    {line}" for line in item.splitlines()]
            elif isinstance(item, Mapping | list | tuple) and item:
                text = json.dumps(item, indent=2, ensure_ascii=False, default=str)
                first, *rest = text.splitlines()
                lines.append(f"{key}: {first}")
                lines += [f"    {line}" for line in rest]
            else:
                lines.append(f"{key}: {_scalar(item)}")
        return lines or ["(nothing)"]
    return [_scalar(value)]


def _scalar(value: Any) -> str:
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def format_test_result(result: Mapping[str, Any], titles: Sequence[str], *,
                       live: bool) -> str:
    """A test's outcome as the result pane shows it."""
    note = result.get("note")
    heading = _EVENT_HEADINGS.get(str(result.get("sample")))
    if heading is None:
        heading = ("Example event (not from the trigger):" if note
                   else "Sample event from the trigger:")
    lines = [f"{note}.", heading] if note else [heading]
    lines += [f"    {line}" for line in pretty(result.get("trigger") or {})]
    condition = result.get("condition")
    if condition is not None:
        lines.append("")
        lines.append("Condition: true — the reactions run." if condition else
                     "Condition: false — nothing would run (the run is noted as skipped).")
    for index, step in enumerate(result.get("reactions") or []):
        title = titles[index] if index < len(titles) else f"Reaction {index + 1}"
        lines.append("")
        if not live:
            lines.append(f"{index + 1}. {title} would send:")
            lines += [f"    {line}" for line in pretty(step.get("would_send") or {})]
            continue
        status = step.get("status")
        word = {"succeeded": "done", "failed": "FAILED",
                "pending": "not run (an earlier reaction failed)"}.get(status, str(status))
        lines.append(f"{index + 1}. {title}: {word}")
        if step.get("params"):
            lines.append("    sent:")
            lines += [f"        {line}" for line in pretty(step["params"])]
        if step.get("output"):
            lines.append("    returned:")
            lines += [f"        {line}" for line in pretty(step["output"])]
        if step.get("error"):
            lines.append(f"    error: {step['error']}")
    return "\n".join(lines)


AccountsFn = Callable[[str], Awaitable[list[tuple[str, str]]]]


def uses_account(service: Service | None) -> bool:
    """Whether a step of ``service`` may act as an account: its own, or (HTTP) a custom
    OAuth 2 provider's."""
    return service is not None and (service.needs_account or service.custom_accounts)


class StepPicker(QWidget):
    """Which service, then which of its triggers (or reactions), with its description;
    for a service that acts as one of the user's accounts, which account.

    Args:
        registry: the catalog.
        reactions: pick a reaction (else a trigger).
        accounts: lists a service's connected accounts as (id, name).

    Signals:
        changed(): the chosen trigger or reaction changed.
    """

    changed = Signal()

    def __init__(self, registry: Registry, *, reactions: bool,
                 accounts: AccountsFn | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        self.reactions = reactions
        self.tasks = WidgetTasks(self)
        self._list_accounts = accounts
        self._wanted_account: str | None = None
        self._accounts_loaded = False
        kind = "Reaction" if reactions else "Trigger"
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        row = QHBoxLayout()
        row.setSpacing(12)
        self.service_combo = QComboBox()
        self.service_combo.setAccessibleName(f"{kind} service")
        self.service_combo.setMinimumContentsLength(14)
        self.action_combo = QComboBox()
        self.action_combo.setAccessibleName(kind)
        self.action_combo.setMinimumContentsLength(22)
        for title, combo, stretch in (("Service", self.service_combo, 2),
                                      (kind, self.action_combo, 3)):
            column = QVBoxLayout()
            column.setSpacing(3)
            label = QLabel(f"{title}")
            label.setBuddy(combo)
            column.addWidget(label)
            column.addWidget(combo)
            row.addLayout(column, stretch)
        layout.addLayout(row)
        self.description = small_label()
        layout.addWidget(self.description)
        self.account_row = QWidget()
        account_layout = QVBoxLayout(self.account_row)
        account_layout.setContentsMargins(0, 4, 0, 0)
        account_layout.setSpacing(3)
        account_label = QLabel("Account")
        self.account_combo = QComboBox()
        self.account_combo.setAccessibleName(f"{kind} account")
        self.account_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        account_label.setBuddy(self.account_combo)
        self.account_combo.activated.connect(self._account_chosen)
        self.account_note = small_label()
        account_layout.addWidget(account_label)
        account_layout.addWidget(self.account_combo, 0, Qt.AlignmentFlag.AlignLeft)
        account_layout.addWidget(self.account_note)
        self.account_row.hide()
        layout.addWidget(self.account_row)
        for service in registry:
            actions = service.reactions if reactions else service.triggers
            if actions:
                self.service_combo.addItem(service_icon(service.id), service.name, service.id)
                self.service_combo.setItemData(self.service_combo.count() - 1,
                                               service.description,
                                               Qt.ItemDataRole.ToolTipRole)
        self.service_combo.currentIndexChanged.connect(self._service_changed)
        self.action_combo.currentIndexChanged.connect(self._action_changed)
        guard_inputs(self)
        self._service_changed()

    def service_id(self) -> str:
        return str(self.service_combo.currentData() or "")

    def action_id(self) -> str:
        return str(self.action_combo.currentData() or "")

    def spec(self) -> TriggerSpec | ReactionSpec | None:
        try:
            if self.reactions:
                return self.registry.reaction(self.service_id(), self.action_id())
            return self.registry.trigger(self.service_id(), self.action_id())
        except CatalogError:
            return None

    def title(self) -> str:
        spec = self.spec()
        if spec is None:
            return f"{self.service_id()}.{self.action_id()}"
        return f"{self.service_combo.currentText()}: {spec.name}"

    def set_choice(self, service_id: str | None, action_id: str | None) -> None:
        """Select a service and one of its actions (unknown ones are shown as missing)."""
        if service_id:
            index = self.service_combo.findData(service_id)
            if index < 0:
                self.service_combo.addItem(f"{service_id} (not installed)", service_id)
                index = self.service_combo.count() - 1
            self.service_combo.setCurrentIndex(index)
        if action_id:
            index = self.action_combo.findData(action_id)
            if index < 0:
                self.action_combo.addItem(f"{action_id} (unknown)", action_id)
                index = self.action_combo.count() - 1
            self.action_combo.setCurrentIndex(index)

    def _service_changed(self) -> None:
        self.action_combo.blockSignals(True)
        self.action_combo.clear()
        try:
            service = self.registry.service(self.service_id())
        except CatalogError:
            service = None
        if service is not None:
            actions = service.reactions if self.reactions else service.triggers
            for action in actions.values():
                self.action_combo.addItem(action.name, action.id)
                self.action_combo.setItemData(self.action_combo.count() - 1,
                                              action.description,
                                              Qt.ItemDataRole.ToolTipRole)
        self.action_combo.blockSignals(False)
        self.account_row.setVisible(uses_account(service))
        if uses_account(service):
            self.tasks.spawn(self.load_accounts())
        self._action_changed()

    def service(self) -> Service | None:
        try:
            return self.registry.service(self.service_id())
        except CatalogError:
            return None

    def account(self) -> str | None:
        """The chosen account's id (or, before the list has loaded, the one asked for)."""
        if not uses_account(self.service()):
            return None
        if not self._accounts_loaded:
            return self._wanted_account
        data = self.account_combo.currentData()
        return str(data) if data else None

    def set_account(self, ref: str | None) -> None:
        """Choose an account by id or name (when the list arrives, if not yet)."""
        self._wanted_account = ref
        if self._accounts_loaded:
            self._select_account()

    def asked_account(self) -> str | None:
        """The account asked for (by the area opened, or chosen by the user since): what
        the user set, unlike ``account()``, which a list still loading changes."""
        if not uses_account(self.service()):
            return None
        return self._wanted_account

    def _account_chosen(self, index: int) -> None:
        data = self.account_combo.itemData(index)
        self._wanted_account = str(data) if data else None

    def _select_account(self) -> bool:
        """Select the account asked for; whether it is in the list."""
        ref = (self._wanted_account or "").casefold()
        for index in range(self.account_combo.count()):
            text = self.account_combo.itemText(index).casefold()
            if ref in (str(self.account_combo.itemData(index)).casefold(), text,
                       text.replace(": ", ":", 1)):  # "PROVIDER:NAME" names a custom one
                self.account_combo.setCurrentIndex(index)
                return True
        return False

    async def load_accounts(self) -> None:
        """Fill the account list for the chosen service."""
        service = self.service()
        self._accounts_loaded = False
        self.account_combo.clear()
        self.account_row.setVisible(uses_account(service))
        if service is None or not uses_account(service) or self._list_accounts is None:
            return
        choices = await self._list_accounts(service.id)
        if service.id != self.service_id():
            return  # the user moved on meanwhile
        self.account_combo.clear()  # again: two loads may have overlapped
        if not service.needs_account:
            self._fill_custom_accounts(choices)
            return
        spec = self.spec()
        optional = isinstance(spec, ReactionSpec) and spec.account_optional
        if optional:
            self.account_combo.addItem("No account", "")
        for account_id, name in choices:
            self.account_combo.addItem(name, account_id)
        self._accounts_loaded = True
        self._select_account()
        self.account_combo.setEnabled(bool(choices) or optional)
        self.account_note.setText(
            f"It acts as this {service.name} account." if choices else
            f"No {service.name} account is connected yet: connect one on the Accounts "
            "screen, then come back."
            + (" This reaction can also work without one." if optional else ""))

    def _fill_custom_accounts(self, choices: list[tuple[str, str]]) -> None:
        """A service that may act as a custom OAuth 2 provider's account (HTTP): none
        first, then those accounts."""
        self.account_combo.addItem("No account", "")
        for account_id, name in choices:
            self.account_combo.addItem(name, account_id)
        self._accounts_loaded = True
        if not self._select_account() and self._wanted_account:
            # Kept, not silently dropped on save: saving says it is not connected.
            self.account_combo.addItem(f"{self._wanted_account} (not connected)",
                                       self._wanted_account)
            self._select_account()
        self.account_combo.setEnabled(True)
        self.account_note.setText(
            "Requests carry this account's token; with none they carry no one's."
            if choices else
            "No custom OAuth 2 provider's account is connected: requests carry no one's "
            "token. Add a provider on the Accounts screen to sign requests.")

    def _action_changed(self) -> None:
        spec = self.spec()
        self.description.setText(spec.description if spec is not None
                                 else "This service is not installed here.")
        self.changed.emit()


class ReactionCard(QFrame):
    """One reaction of the area: which one, and its parameters.

    Args:
        registry: the catalog.
        available: what this card's templates may use (the editor knows the trigger and
            the reactions before it).
        uid: the step's identity when editing (its secrets are keyed by it).
        account: the connected account the step acts as (id or name).
        accounts: lists a service's connected accounts (see StepPicker).

    Signals:
        moveRequested(int): -1 to move up, +1 to move down.
        removeRequested(): the user wants this reaction gone.
        changed(): the chosen reaction changed (later cards' fields change with it).
        problemShown(): a problem was shown on one of its fields, or cleared.
    """

    moveRequested = Signal(int)
    removeRequested = Signal()
    changed = Signal()
    problemShown = Signal()

    def __init__(self, registry: Registry, available: Callable[[ReactionCard], Available],
                 *, uid: str = "", account: str | None = None,
                 accounts: AccountsFn | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reactionCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.uid = uid
        self._available = available
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 12)
        layout.setSpacing(8)
        header = QHBoxLayout()
        self.heading = QLabel()
        font = QFont(self.heading.font())
        font.setBold(True)
        self.heading.setFont(font)
        header.addWidget(self.heading, 1)
        style = self.style()
        self.up_button = self._tool(style.standardIcon(QStyle.StandardPixmap.SP_ArrowUp),
                                    "Move up", lambda: self.moveRequested.emit(-1))
        self.down_button = self._tool(style.standardIcon(QStyle.StandardPixmap.SP_ArrowDown),
                                      "Move down", lambda: self.moveRequested.emit(1))
        self.remove_button = QPushButton("Remove")
        self.remove_button.setAutoDefault(False)
        self.remove_button.setAccessibleName("Remove this reaction")
        self.remove_button.clicked.connect(self.removeRequested)
        for button in (self.up_button, self.down_button, self.remove_button):
            header.addWidget(button)
        layout.addLayout(header)
        self.picker = StepPicker(registry, reactions=True, accounts=accounts)
        self.picker.set_account(account)
        layout.addWidget(self.picker)
        self.error = error_label()
        layout.addWidget(self.error)
        self.form_holder = QVBoxLayout()
        self.form_holder.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(self.form_holder)
        self.form = self._new_form()
        self.picker.changed.connect(self._reaction_changed)

    def _tool(self, icon: Any, text: str, slot: Callable[[], None]) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon)
        button.setToolTip(text)
        button.setAccessibleName(text)
        button.clicked.connect(slot)
        return button

    def _new_form(self) -> ParamForm:
        spec = self.picker.spec()
        form = ParamForm(spec.params if spec is not None else (), in_reaction=True,
                         available=lambda: self._available(self),
                         empty_text="Nothing to set up for this reaction.")
        form.problemShown.connect(self.problemShown)
        self.form_holder.addWidget(form)
        return form

    def _reaction_changed(self) -> None:
        self.form.hide()
        self.form.deleteLater()
        self.form = self._new_form()
        self.error.hide()
        self.changed.emit()

    def set_position(self, index: int, count: int) -> None:
        self.heading.setText(f"Reaction {index + 1}")
        self.setAccessibleName(f"Reaction {index + 1}")
        self.up_button.setEnabled(index > 0)
        self.down_button.setEnabled(index < count - 1)
        for button in (self.up_button, self.down_button, self.remove_button):
            button.setVisible(count > 1)

    def step(self) -> dict[str, Any]:
        """This reaction in the import format."""
        out: dict[str, Any] = {"service": self.picker.service_id(),
                               "reaction": self.picker.action_id(),
                               "params": self.form.values()}
        if self.uid:
            out["uid"] = self.uid
        account = self.picker.account()
        if account:
            out["account"] = account
        return out

    def set_step(self, step: Mapping[str, Any]) -> None:
        self.picker.set_choice(step.get("service"), step.get("reaction"))
        self.form.set_values(step.get("params") or {})


class AreaEditor(QDialog):
    """Create or edit an area: name, trigger and its parameters, an optional condition,
    reactions in order; test it (dry or for real) and save it. Closing it with changes
    not saved asks first.

    Args:
        bridge: the engine bridge.
        area_id: the area to edit (None: a new one).
        spec_dict: a starting point in the import format (a preset, "use this trigger");
            parameters left empty are the blanks to fill, the first one gets the focus.

    Attributes:
        area_id: the area being edited, set once a new one is saved.

    Signals:
        saved(str): the area was saved; its id.
    """

    saved = Signal(str)

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None, *,
                 area_id: str | None = None,
                 spec_dict: Mapping[str, Any] | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.registry = bridge.registry
        self.area_id = area_id
        self.cards: list[ReactionCard] = []
        self.tasks = WidgetTasks(self)
        self._focused_once = False
        self._enabled = True
        #: A body the user pasted to test with (kept while the editor is open).
        self.pasted_body: Any = None
        #: Fields of the trigger's sample event (last delivery, pasted body) to insert.
        self.sample_group: FieldGroup | None = None
        #: While problems from a Test or Save are shown: what the banner says first
        #: ("Not saved"), and those with no field of their own.
        self._problem_prefix: str | None = None
        self._unplaced: list[str] = []
        self._marking = False
        self.setWindowTitle("New automation" if area_id is None else "Edit automation")
        self.setMinimumSize(620, 520)
        self.resize(780, 760)
        self._build()
        start: Mapping[str, Any] = {}
        if area_id is not None and spec_dict is None:
            area = bridge.area(area_id)
            start = self.dict_of(area.spec)
            self._enabled = area.spec.enabled
            self.setWindowTitle(f"Edit “{area.name}”")
        elif spec_dict is not None:
            start = spec_dict
            self._enabled = bool(spec_dict.get("enabled", True))
        self.set_spec_dict(start)
        #: What the editor held when it opened (or was last saved): closing asks first
        #: only when what it holds now differs.
        self._opened = self._state()
        if area_id is not None:
            self._spawn(self._load_saved_state())

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.banner = QLabel()
        self.banner.setObjectName("editorBanner")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setContentsMargins(16, 10, 16, 10)
        self.banner.hide()
        outer.addWidget(self.banner)

        self.scroller = QScrollArea()
        self.scroller.setWidgetResizable(True)
        self.scroller.setFrameShape(QFrame.Shape.NoFrame)
        self.scroller.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # no stop of its own on Tab
        body = QWidget()
        self.body = body
        layout = QVBoxLayout(body)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(14)
        self.scroller.setWidget(body)
        outer.addWidget(self.scroller, 1)

        self.name_form = ParamForm([NAME])
        self.name_form.problemShown.connect(self._refresh_banner)
        layout.addWidget(self.name_form)

        # -- when
        self.trigger_box = QGroupBox("When this happens")
        trigger_layout = QVBoxLayout(self.trigger_box)
        trigger_layout.setSpacing(8)
        self.trigger_picker = StepPicker(self.registry, reactions=False,
                                         accounts=self.bridge.account_choices)
        trigger_layout.addWidget(self.trigger_picker)
        self.trigger_error = error_label()
        trigger_layout.addWidget(self.trigger_error)
        self.trigger_holder = QVBoxLayout()
        self.trigger_holder.setSpacing(10)
        trigger_layout.addLayout(self.trigger_holder)
        self.webhook_row = QWidget()
        webhook_layout = QVBoxLayout(self.webhook_row)
        webhook_layout.setContentsMargins(0, 0, 0, 0)
        webhook_layout.setSpacing(3)
        webhook_label = QLabel("Web address")
        webhook_layout.addWidget(webhook_label)
        url_row = QHBoxLayout()
        self.webhook_url = QLineEdit()
        self.webhook_url.setReadOnly(True)
        self.webhook_url.setAccessibleName("Webhook address")
        self.webhook_url.setPlaceholderText("Its own address appears here once you save.")
        webhook_label.setBuddy(self.webhook_url)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAutoDefault(False)
        self.copy_button.setAccessibleName("Copy the webhook address")
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(self._copy_url)
        url_row.addWidget(self.webhook_url, 1)
        url_row.addWidget(self.copy_button)
        webhook_layout.addLayout(url_row)
        webhook_layout.addWidget(small_label(
            "Whatever sends to this address starts the automation. Keep it private: "
            "anyone who has it can trigger it."))
        trigger_layout.addWidget(self.webhook_row)
        layout.addWidget(self.trigger_box)
        # -- when it may fire (active from … until …, only during)
        self.window_fields = WindowFields()
        layout.addWidget(self.window_fields)

        # -- only when
        self.condition_check = QCheckBox("Add a condition")
        self.condition_check.setToolTip("Run the reactions only when a condition holds")
        self.condition_form = ParamForm([CONDITION], in_reaction=True,
                                        available=self._condition_available)
        self.condition_form.problemShown.connect(self._refresh_banner)
        # rules by default, written into the template field the builder holds
        self.condition_builder = ConditionBuilder(self.condition_form, self._condition_fields)
        self.condition_builder.setContentsMargins(24, 0, 0, 0)  # it belongs to the box above
        self.condition_builder.hide()
        self.condition_check.toggled.connect(self._condition_toggled)
        layout.addWidget(self.condition_check)
        layout.addWidget(self.condition_builder)

        # -- then
        self.reactions_box = QGroupBox("Then do this")
        reactions_layout = QVBoxLayout(self.reactions_box)
        reactions_layout.setSpacing(10)
        self.reactions_error = error_label()
        reactions_layout.addWidget(self.reactions_error)
        self.cards_layout = QVBoxLayout()
        self.cards_layout.setSpacing(10)
        reactions_layout.addLayout(self.cards_layout)
        self.add_button = QPushButton("Add a reaction")
        self.add_button.setAutoDefault(False)
        self.add_button.clicked.connect(self._add_clicked)
        add_row = QHBoxLayout()
        add_row.addWidget(self.add_button)
        add_row.addStretch(1)
        reactions_layout.addLayout(add_row)
        layout.addWidget(self.reactions_box)

        # -- test result
        self.result_box = QGroupBox("Test")
        result_layout = QVBoxLayout(self.result_box)
        self.result_title = QLabel()
        self.result_title.setWordWrap(True)
        result_layout.addWidget(self.result_title)
        self.result_text = QPlainTextEdit()
        self.result_text.setReadOnly(True)
        self.result_text.setAccessibleName("Test result")
        self.result_text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.result_text.setMinimumHeight(160)
        self.result_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        result_layout.addWidget(self.result_text)
        self.result_box.hide()
        layout.addWidget(self.result_box)
        layout.addStretch(1)

        # -- buttons
        self.buttons = QDialogButtonBox()
        self.test_button = QPushButton("&Test")
        self.test_button.setToolTip("A dry run: shows what each reaction would send, "
                                    "without sending anything or saving")
        self.live_button = QPushButton("Send for &real…")
        self.live_button.setToolTip("Runs the reactions now with a sample event")
        self.sample_button = QPushButton("Paste a sample &body…")
        self.sample_button.setToolTip("Test with a request body you paste (JSON), e.g. "
                                      "one copied from the sender's documentation")
        self.save_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Save)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        for button in (self.test_button, self.sample_button, self.live_button,
                       self.cancel_button):
            button.setAutoDefault(False)
        self.save_button.setDefault(True)
        self.test_button.clicked.connect(lambda: self._spawn(self.run_test()))
        self.live_button.clicked.connect(self._live_clicked)
        self.sample_button.clicked.connect(lambda: self._spawn(self.ask_sample()))
        self.save_button.clicked.connect(lambda: self._spawn(self.save()))
        self.cancel_button.clicked.connect(self.reject)
        button_row = QHBoxLayout()
        button_row.setContentsMargins(18, 10, 18, 14)
        button_row.setSpacing(8)
        button_row.addWidget(self.test_button)
        button_row.addWidget(self.sample_button)
        button_row.addWidget(self.live_button)
        button_row.addStretch(1)
        button_row.addWidget(self.buttons)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        outer.addWidget(line)
        outer.addLayout(button_row)

        self.trigger_form = ParamForm([])
        self.interval_form = ParamForm([])
        self.catch_up_form = ParamForm([])
        self.trigger_picker.changed.connect(self._trigger_changed)
        self._trigger_changed()

    # ------------------------------------------------------------------ trigger

    def trigger_spec(self) -> TriggerSpec | None:
        spec = self.trigger_picker.spec()
        return spec if isinstance(spec, TriggerSpec) else None

    def _trigger_changed(self) -> None:
        for form in (self.trigger_form, self.interval_form, self.catch_up_form):
            form.hide()
            form.deleteLater()
        spec = self.trigger_spec()
        self.trigger_form = ParamForm(spec.params if spec else (),
                                      empty_text="Nothing to set up for this trigger.")
        polls = spec is not None and spec.kind is TriggerKind.POLL
        timed = spec is not None and spec.kind is TriggerKind.SCHEDULE
        self.interval_form = ParamForm([interval_param(spec)] if spec and polls else [])
        self.catch_up_form = ParamForm([CATCH_UP] if timed else [])
        for form in (self.trigger_form, self.interval_form, self.catch_up_form):
            self.trigger_holder.addWidget(form)
            form.setVisible(bool(form.params) or form is self.trigger_form)
            form.problemShown.connect(self._refresh_banner)
        pushed = spec is not None and spec.kind is TriggerKind.PUSH
        self.webhook_row.setVisible(pushed)
        self.sample_button.setVisible(pushed)
        self.sample_group = None
        if pushed and (self.area_id is not None or self.pasted_body is not None):
            self._spawn(self.load_sample())
        self.trigger_error.hide()
        self._recheck_templates()

    def _condition_toggled(self, on: bool) -> None:
        self.condition_builder.setVisible(on)
        self._refresh_banner()  # an unused condition's problem is none
        if on:
            self.condition_builder.focus()

    def _condition_available(self) -> Available:
        return Available.build(self._trigger_group(), (), self.sample_group)

    def _condition_fields(self) -> list[FieldChoice]:
        """What a rule can compare: the trigger's fields, then its sample event's."""
        return [choice for group in self._condition_available().groups
                for choice in group.choices]

    def _trigger_group(self) -> tuple[str, Sequence[Any]] | None:
        spec = self.trigger_spec()
        if spec is None:
            return None
        return (f"Trigger — {self.trigger_picker.title()}", spec.fields)

    # ------------------------------------------------------------------ reactions

    def _available_for(self, card: ReactionCard) -> Available:
        earlier: list[tuple[str, Sequence[Any]]] = []
        for index, other in enumerate(self.cards):
            if other is card:
                break
            spec = other.picker.spec()
            earlier.append((f"Reaction {index + 1} — {other.picker.title()}",
                            spec.fields if spec is not None else ()))
        return Available.build(self._trigger_group(), earlier, self.sample_group)

    def add_reaction(self, step: Mapping[str, Any] | None = None) -> ReactionCard:
        """Add a reaction card at the end (``step`` in the import format fills it)."""
        step = step or {}
        card = ReactionCard(self.registry, self._available_for, uid=str(step.get("uid") or ""),
                            account=step.get("account"),
                            accounts=self.bridge.account_choices)
        if step:
            card.set_step(step)
        else:
            card.picker.set_choice(DEFAULT_REACTION_SERVICE, None)
        card.moveRequested.connect(lambda offset, c=card: self.move_reaction(c, offset))
        card.removeRequested.connect(lambda c=card: self.remove_reaction(c))
        card.changed.connect(self._recheck_templates)
        card.problemShown.connect(self._refresh_banner)
        self.cards.append(card)
        self.cards_layout.addWidget(card)
        self._renumber()
        return card

    def _add_clicked(self) -> None:
        card = self.add_reaction()
        self.scroller.ensureWidgetVisible(card)
        card.picker.service_combo.setFocus()

    def move_reaction(self, card: ReactionCard, offset: int) -> None:
        index = self.cards.index(card)
        target = index + offset
        if not 0 <= target < len(self.cards):
            return
        self.cards.insert(target, self.cards.pop(index))
        for each in self.cards:
            self.cards_layout.removeWidget(each)
        for each in self.cards:
            self.cards_layout.addWidget(each)
        self._renumber()
        self._recheck_templates()
        (card.up_button if offset < 0 and target > 0 else card.down_button
         if target < len(self.cards) - 1 else card.up_button).setFocus()

    def remove_reaction(self, card: ReactionCard) -> None:
        if len(self.cards) <= 1:
            return
        self.cards.remove(card)
        self.cards_layout.removeWidget(card)
        card.hide()
        card.deleteLater()
        self._renumber()
        self._recheck_templates()

    def _renumber(self) -> None:
        for index, card in enumerate(self.cards):
            card.set_position(index, len(self.cards))

    def _recheck_templates(self) -> None:
        """What templates may use changed: check again what the user typed."""
        for card in self.cards:
            card.form.recheck()
        self.condition_form.recheck()
        self._refresh_banner()  # a reaction changed or went, with its problem

    # ------------------------------------------------------------------ the spec

    @staticmethod
    def dict_of(spec: AreaSpec) -> dict[str, Any]:
        """An area's spec in the import format, with the reactions' uids (secrets)."""
        out = spec.to_dict()
        for step, saved in zip(out["reactions"], spec.reactions, strict=True):
            step["uid"] = saved.uid
        return out

    def set_spec_dict(self, data: Mapping[str, Any]) -> None:
        """Fill the editor from the import format (missing parts get defaults)."""
        self.name_form.set_values({"name": data.get("name") or ""})
        trigger = data.get("trigger") or {}
        if trigger:
            self.trigger_picker.set_choice(trigger.get("service"), trigger.get("trigger"))
        else:
            self.trigger_picker.set_choice(DEFAULT_TRIGGER_SERVICE, None)
        self.trigger_picker.set_account(trigger.get("account"))
        self.trigger_form.set_values(trigger.get("params") or {})
        if data.get("interval") not in (None, ""):
            self.interval_form.set_values({"interval": data["interval"]})
        if data.get("catch_up"):
            self.catch_up_form.set_values({"catch_up": data["catch_up"]})
        self.window_fields.set_values(data)
        condition = data.get("condition")
        self.condition_check.setChecked(bool(condition))
        self.condition_form.set_values({"condition": condition or ""})
        self.condition_builder.load(condition)
        for card in list(self.cards):
            self.cards.remove(card)
            self.cards_layout.removeWidget(card)
            card.hide()
            card.deleteLater()
        for step in data.get("reactions") or [{}]:
            self.add_reaction(step)

    def spec_dict(self) -> dict[str, Any]:
        """What the editor holds, in the import format."""
        out = self._held()
        if self.condition_check.isChecked():
            self.condition_builder.check()  # a rule not finished is refused, not dropped
        if "interval" in out:
            try:
                out["interval"] = parse_duration(out["interval"])
            except ValueError as exc:
                raise ValidationError("interval", str(exc)) from None
        return out

    def _held(self) -> dict[str, Any]:
        """What the editor holds, in the import format but for the interval (as typed)."""
        trigger: dict[str, Any] = {"service": self.trigger_picker.service_id(),
                                   "trigger": self.trigger_picker.action_id(),
                                   "params": self.trigger_form.values()}
        account = self.trigger_picker.account()
        if account:
            trigger["account"] = account
        out: dict[str, Any] = {
            "name": str(self.name_form.values().get("name") or "").strip(),
            "enabled": self._enabled,
            "trigger": trigger,
        }
        condition = self.condition_form.values().get("condition")
        if self.condition_check.isChecked() and condition:
            out["condition"] = condition
        out["reactions"] = [card.step() for card in self.cards]
        out.update(self.window_fields.values())
        spec = self.trigger_spec()
        if spec is not None and spec.kind is TriggerKind.SCHEDULE:
            out["catch_up"] = self.catch_up_form.values().get("catch_up", "skip")
        interval = self.interval_form.values().get("interval")
        if spec is not None and spec.kind is TriggerKind.POLL and interval is not None:
            out["interval"] = interval
        return out

    def _state(self) -> dict[str, Any]:
        """What the user has set, to compare with what the editor opened with: accounts
        as asked for (an account list that loads later picks one by itself)."""
        state = self._held()
        pickers = [self.trigger_picker, *(card.picker for card in self.cards)]
        for picker, step in zip(pickers, [state["trigger"], *state["reactions"]],
                                strict=True):
            step["account"] = picker.asked_account()
        return state

    def has_changes(self) -> bool:
        """Whether the editor holds something else than it opened with (typing and
        deleting it again is no change)."""
        return self._state() != self._opened

    def spec(self) -> AreaSpec:
        """The area as an AreaSpec (structural problems are ValidationErrors)."""
        return AreaSpec.from_dict(self.spec_dict())

    # ------------------------------------------------------------------ problems

    def field_for(self, where: str) -> tuple[QWidget, Callable[[str], None]] | None:
        """The widget a ValidationError's ``where`` points at, and how to show it there."""

        def on_form(form: ParamForm, name: str) -> tuple[QWidget, Callable[[str], None]] | None:
            field = form.field(name)
            if field is None:
                return None
            return field, field.show_error

        def on_label(label: QLabel, anchor: QWidget) -> tuple[QWidget, Callable[[str], None]]:
            def show(message: str) -> None:
                label.setText(message)
                label.show()
            return anchor, show

        if where == "name":
            return on_form(self.name_form, "name")
        if where == "interval":
            return on_form(self.interval_form, "interval") or on_label(
                self.trigger_error, self.trigger_picker)
        if where == "catch_up":
            return on_form(self.catch_up_form, "catch_up")
        if where.split(".")[0] in WINDOW_KEYS:
            return self.window_fields, self.window_fields.show_error
        if where == "condition":
            self.condition_check.setChecked(True)
            return on_form(self.condition_form, "condition")
        if where == "trigger" or where.startswith("trigger."):
            rest = where[len("trigger."):]
            if rest.startswith("params."):
                found = on_form(self.trigger_form, rest[len("params."):])
                if found:
                    return found
            return on_label(self.trigger_error, self.trigger_picker)
        if where == "reactions":
            return on_label(self.reactions_error, self.reactions_box)
        match = _REACTION_WHERE.match(where)
        if match and int(match[1]) < len(self.cards):
            card = self.cards[int(match[1])]
            rest = match[2].lstrip(".")
            if rest.startswith("params."):
                found = on_form(card.form, rest[len("params."):])
                if found:
                    return found
            return on_label(card.error, card)
        return None

    def show_problems(self, exc: ValidationError, prefix: str) -> None:
        """Put each of the error's problems on its field (the first one scrolled to and
        focused); the banner says how many there are, and ``prefix`` ("Not saved")."""
        first: QWidget | None = None
        self._marking = True
        try:
            for problem in exc.problems:
                place = self.field_for(problem.where)
                if place is None:
                    self._unplaced.append(self._in_words(str(problem)).rstrip("."))
                    continue
                widget, show = place
                show(problem.problem)
                first = first or widget
        finally:
            self._marking = False
        self._problem_prefix = prefix
        self._refresh_banner()
        if first is None:
            return
        self.scroller.ensureWidgetVisible(first, 20, 40)
        if isinstance(first, ParamField):
            first.focus()
        else:
            first.setFocus(Qt.FocusReason.OtherFocusReason)

    def marked(self) -> int:
        """How many places show a problem (fields and steps in use)."""
        forms = [form for form in self._forms()
                 if form is not self.condition_form or self.condition_check.isChecked()]
        labels = (self.trigger_error, self.reactions_error, *(c.error for c in self.cards))
        return (sum(form.problem_count() for form in forms)
                + sum(not label.isHidden() for label in labels))

    def _refresh_banner(self) -> None:
        """While a Test's or Save's problems are shown, the banner counts those still
        marked: fixing a field takes its mark away and the banner follows; with none
        left it goes."""
        if self._problem_prefix is None or self._marking:
            return
        marks = self.marked()
        total = marks + len(self._unplaced)
        if not total:
            self._problem_prefix = None
            self.banner.hide()
            return
        counted = "1 problem" if total == 1 else f"{total} problems"
        parts = [] if not marks else [
            "see the field marked in red" if marks == 1 else "see the fields marked in red"]
        self.show_banner(f"{self._problem_prefix}: {counted} — "
                         f"{'; '.join(parts + self._unplaced)}.", error=True)

    def _in_words(self, message: str) -> str:
        """An engine message with its place ("reactions[0].params.title") said as the
        editor shows it ("Reaction 1 (Show a notification), field Title")."""
        try:
            spec = self.spec()
        except ValidationError:
            return message
        return in_words(message, spec, self.bridge.registry)

    def clear_problems(self) -> None:
        self._problem_prefix = None
        self._unplaced = []
        self.banner.hide()
        for form in self._forms():
            form.clear_errors()
        for label in (self.trigger_error, self.reactions_error, self.window_fields.error,
                      *(card.error for card in self.cards)):
            label.hide()

    def _forms(self) -> list[ParamForm]:
        return [self.name_form, self.trigger_form, self.interval_form, self.catch_up_form,
                self.condition_form, *(card.form for card in self.cards)]

    def show_banner(self, text: str, *, error: bool) -> None:
        color = error_color() if error else "#1e8e3e"
        self.banner.setStyleSheet(
            f"#editorBanner {{ color: {color}; font-weight: bold; "
            f"border-bottom: 2px solid {color}; }}")
        self.banner.setText(text)
        self.banner.setAccessibleName("Problem" if error else "Message")
        self.banner.show()

    # ------------------------------------------------------------------ actions

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.tasks.spawn(coro)

    def _busy(self, busy: bool) -> None:
        for button in (self.test_button, self.sample_button, self.live_button,
                       self.save_button):
            button.setEnabled(not busy)

    async def save(self) -> str | None:
        """Check and save; problems go on their fields and the dialog stays open.
        Returns the area id once saved."""
        self.clear_problems()
        try:
            spec = self.spec()
        except ValidationError as exc:
            self.show_problems(exc, "Not saved")
            return None
        state = self._state()
        self._busy(True)
        try:
            area = await self.bridge.save_area(spec, self.area_id)
        except ValidationError as exc:
            self.show_problems(exc, "Not saved")
            return None
        except HooklineError as exc:
            self.show_banner(f"Not saved: {self._in_words(str(exc))}", error=True)
            return None
        finally:
            self._busy(False)
        new = self.area_id is None
        self.area_id = area.id
        self._opened = state
        self.setWindowTitle(f"Edit “{area.name}”")
        self.saved.emit(area.id)
        spec_kind = self.trigger_spec()
        if spec_kind is not None and spec_kind.kind is TriggerKind.PUSH:
            url = await self.bridge.webhook_url(area.id)
            self._show_url(url)
            if new:
                self.show_banner("Saved. Send requests to the web address below to start "
                                 "it." if url else "Saved. The web address appears once "
                                 "the webhook listener is on (Settings).", error=False)
                self.cancel_button.setText("Close")
                self.scroller.ensureWidgetVisible(self.webhook_row)
                return area.id
        self.accept()
        return area.id

    async def run_test(self, live: bool = False) -> dict[str, Any] | None:
        """A dry run (or, ``live``, the reactions for real) on a sample event; the result
        pane shows what each reaction sends."""
        self.clear_problems()
        verb = "Sent for real" if live else "Test"
        try:
            spec = self.spec()
        except ValidationError as exc:
            self.show_problems(exc, "Cannot test yet")
            return None
        self._busy(True)
        self.result_box.setTitle(verb)
        try:
            result = await self.bridge.test_area(spec, area_id=self.area_id, live=live,
                                                 body=self.pasted_body)
        except ValidationError as exc:
            self.show_problems(exc, "Cannot test yet")
            return None
        except HooklineError as exc:
            self._show_result(f"The test failed: {self._in_words(str(exc))}", "", error=True)
            return None
        finally:
            self._busy(False)
        for step in result.get("reactions") or []:
            if step.get("error"):  # located in the user's words, not by the engine's path
                step["error"] = in_words(str(step["error"]), spec, self.bridge.registry)
        titles = [card.picker.title() for card in self.cards]
        failed = live and any(s.get("status") == "failed" for s in result.get("reactions", []))
        used = _TESTED_WITH.get(str(result.get("sample")), "a sample event")
        if live:
            title = ("A reaction failed — see below." if failed else
                     f"The reactions ran for real with {used} (nothing was recorded "
                     "in the history).")
        else:
            title = f"Nothing was sent: this is what would happen with {used}."
        self._show_result(title, format_test_result(result, titles, live=live), error=failed)
        if result.get("sample") in _TESTED_WITH:  # a newer delivery may have come meanwhile
            self._spawn(self.load_sample())
        return result

    async def load_sample(self) -> None:
        """Read the fields of the trigger's sample event (its last delivery, or the body
        pasted) for "Insert field"."""
        service, action = self.trigger_picker.service_id(), self.trigger_picker.action_id()
        draft = AreaSpec("", Step(service, action), [])
        try:
            sample, choices = await self.bridge.sample_choices(draft, self.area_id,
                                                               self.pasted_body)
        except HooklineError as exc:
            log.warning("could not read a sample event for the field picker: %s", exc)
            return
        if (service, action) != (self.trigger_picker.service_id(),
                                 self.trigger_picker.action_id()):
            return  # the user chose another trigger meanwhile
        title = {"delivery": "From the last delivery",
                 "pasted": "From your sample body"}.get(sample.source)
        self.sample_group = FieldGroup(title, choices) if title and choices else None

    async def ask_sample(self) -> bool:
        """Ask for a sample body to test with; test with it once given."""
        dialog = SampleDialog(self, self.pasted_body)
        if await dialogs.finished(dialog) != QDialog.DialogCode.Accepted:
            return False
        self.pasted_body = dialog.body
        self.sample_button.setText("Change the sample &body…")
        await self.load_sample()
        await self.run_test()
        return True

    def _show_result(self, title: str, text: str, *, error: bool) -> None:
        self.result_title.setText(title)
        self.result_title.setStyleSheet(f"color: {error_color()};" if error else "")
        self.result_text.setPlainText(text)
        self.result_text.setVisible(bool(text))
        self.result_box.show()
        # once the scroll area has made room for it (on its next layout pass): scrolling
        # now stopped short, leaving the result below the fold
        QTimer.singleShot(0, self, lambda: self.scroller.ensureWidgetVisible(self.result_box))

    def _live_clicked(self) -> None:
        answer = QMessageBox.question(
            self, "Send for real?",
            "This runs the reactions now with a sample event: notifications show, "
            "requests are sent, files are written. Nothing is saved.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self._spawn(self.run_test(live=True))

    def _show_url(self, url: str | None) -> None:
        self.webhook_url.setText(url or "")
        self.webhook_url.setPlaceholderText(
            "Its own address appears here once you save." if self.area_id is None else
            "The webhook listener is off: turn it on in Settings.")
        self.copy_button.setEnabled(bool(url))

    def _copy_url(self) -> None:
        QGuiApplication.clipboard().setText(self.webhook_url.text())
        self.copy_button.setText("Copied")

    async def _load_saved_state(self) -> None:
        """Which secrets the area already has, and its webhook address."""
        if self.area_id is None:
            return
        try:
            saved = await self.bridge.saved_secrets(self.area_id)
            url = await self.bridge.webhook_url(self.area_id)
        except HooklineError as exc:
            self.show_banner(f"Could not read the saved secrets: {exc}", error=True)
            return
        self.trigger_form.set_saved_secrets({name for slot, name in saved if slot == "trigger"})
        for card in self.cards:
            card.form.set_saved_secrets({name for slot, name in saved if slot == card.uid})
        self._show_url(url)

    # ------------------------------------------------------------------ focus

    def first_blank(self) -> ParamField | None:
        """The first thing left to fill: the name, then required parameters in order."""
        for form in (self.name_form, self.trigger_form, *(card.form for card in self.cards)):
            blank = form.first_blank()
            if blank is not None:
                return blank
        return None

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._focused_once:
            return
        self._focused_once = True
        target = self.first_blank()
        if target is not None:
            self.scroller.ensureWidgetVisible(target)
            target.focus()

    def focusNextPrevChild(self, next: bool) -> bool:
        """Tab and Shift+Tab go in reading order, whatever came since (a trigger's
        fields, a reaction, the condition's rules): the order is laid again first."""
        lay_tab_order(self)
        return super().focusNextPrevChild(next)

    # ------------------------------------------------------------------ closing

    def reject(self) -> None:
        """Esc, Cancel or the window's close button: with unsaved changes, ask first."""
        if not self.has_changes():
            super().reject()
            return
        self._spawn(self.confirm_close())

    async def confirm_close(self) -> None:
        """Ask whether to save the changes, discard them, or keep editing (the default,
        and what Esc chooses)."""
        name = self._name()
        answer = await self._ask_to_save(
            "Discard changes?",
            f"Your changes to “{name}” are not saved." if name else "Your changes are not saved.",
            KEEP_EDITING)
        if answer == DISCARD:
            super().reject()
        elif answer == SAVE:
            await self.save()

    async def confirm_quit(self) -> bool:
        """Hookline is quitting with these changes unsaved: save them, discard them, or
        cancel the quit (the default, and what Esc chooses). True if the quit may go on."""
        name = self._name()
        answer = await self._ask_to_save(
            "Quit Hookline?",
            f"Save changes to “{name}”?" if name else "Save changes to the new automation?",
            CANCEL_QUIT)
        if answer == DISCARD:
            super().reject()
            return True
        return answer == SAVE and await self.save() is not None

    def _name(self) -> str:
        return str(self.name_form.values().get("name") or "").strip()

    async def _ask_to_save(self, title: str, text: str, stay: str) -> str:
        """Save, Discard, or ``stay`` (the default, and Esc): the answer's label."""
        return await dialogs.choose(
            self, title, text,
            [(SAVE, QMessageBox.ButtonRole.AcceptRole),
             (DISCARD, QMessageBox.ButtonRole.DestructiveRole),
             (stay, QMessageBox.ButtonRole.RejectRole)], default=stay)

    def done(self, result: int) -> None:
        """Closing stops what is under way (a test, loading), not the save closing it."""
        self.tasks.cancel(keep=asyncio.current_task() if _loop_running() else None)
        super().done(result)


class SampleDialog(QDialog):
    """Paste a request body (JSON) to test a webhook automation with.

    Args:
        body: the sample given before, shown to change it.

    Attributes:
        body: the parsed sample, once accepted.
    """

    def __init__(self, parent: QWidget | None = None, body: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Paste a sample body")
        self.body: Any = body
        layout = QVBoxLayout(self)
        intro = QLabel("Paste the body of a request as the sender sends it (JSON). Test "
                       "then uses it as the request's body, and Insert field offers its "
                       "fields.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.text = QPlainTextEdit()
        self.text.setAccessibleName("Sample body")
        self.text.setTabChangesFocus(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setPlaceholderText(f"e.g. {SAMPLE_EXAMPLE}")
        if body is not None:
            self.text.setPlainText(json.dumps(body, indent=2, ensure_ascii=False))
        intro.setBuddy(self.text)
        layout.addWidget(self.text, 1)
        self.error = error_label()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Test with it")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.text.textChanged.connect(self.error.hide)
        self.resize(520, 360)

    def problem(self) -> str | None:
        """What is wrong with the text pasted, in plain words (None: it is fine)."""
        text = self.text.toPlainText()
        if not text.strip():
            return f"Paste a body first, e.g. {SAMPLE_EXAMPLE}"
        if len(text.encode("utf-8")) > SAMPLE_LIMIT:
            return "This is larger than 1 MB: paste a smaller sample."
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            return (f"This is not JSON: {exc.msg} on line {exc.lineno}, column {exc.colno}. "
                    f"Paste the body as the sender sends it, e.g. {SAMPLE_EXAMPLE}")
        if body is None:
            return f"A body of null has nothing to test with: paste one such as {SAMPLE_EXAMPLE}"
        return None

    def accept(self) -> None:
        problem = self.problem()
        if problem is not None:
            self.error.setText(problem)
            self.error.show()
            self.text.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        self.body = json.loads(self.text.toPlainText())
        super().accept()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


__all__ = ["AreaEditor", "ReactionCard", "SampleDialog", "StepPicker", "format_test_result",
           "pretty"]
