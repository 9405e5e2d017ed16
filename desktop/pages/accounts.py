"""Accounts: the services you connected, whether they still work, one click to reconnect."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop import dialogs
from desktop.bridge import EngineBridge
from desktop.custom_oauth import CustomProviderDialog
from desktop.icons import service_icon
from desktop.models import when
from desktop.oauth_guide import OAuthGuide
from desktop.tasks import WidgetTasks
from engine.auth.custom import CustomProvider, add_provider
from engine.auth.session import Account
from engine.catalog.service import Service
from engine.errors import HooklineError

#: The two ways to connect a service that takes both.
SIGN_IN, PASTE_TOKEN = "Sign in with the browser", "Paste a token"


class AccountsPage(QWidget):
    """Connected accounts: service, who, status, the automations that use each; connect,
    reconnect, remove, set up your own OAuth app, and declare a custom OAuth 2 provider
    (its accounts then connect like the others).

    Args:
        bridge: the engine bridge.
    """

    COLUMNS = ("Service", "Account", "Status", "Used by", "Permissions", "Last refreshed")

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.tasks = WidgetTasks(self)
        self.accounts: list[Account] = []
        self.custom: list[CustomProvider] = []
        title = QLabel("Accounts")
        title.setStyleSheet("font-size: 16pt; font-weight: 600;")
        self.connect_button = QPushButton("&Connect…")
        self.connect_button.setMenu(self._connect_menu())
        self.reconnect_button = QPushButton("&Reconnect")
        self.reconnect_button.clicked.connect(self._reconnect)
        self.remove_button = QPushButton("Re&move")
        self.remove_button.clicked.connect(self._remove)
        self.custom_button = QPushButton("Add a custom OAuth &2 provider…")
        self.custom_button.setToolTip("A self-hosted Gitea, GitLab, Nextcloud or any OAuth 2 "
                                      "service: its accounts then connect like the others")
        self.custom_button.clicked.connect(
            lambda: self.tasks.spawn(self.add_custom_provider()))
        bar = QHBoxLayout()
        bar.addWidget(title)
        bar.addStretch(1)
        for button in (self.custom_button, self.connect_button, self.reconnect_button,
                       self.remove_button):
            bar.addWidget(button)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setAccessibleName("Accounts")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.empty = QLabel("No accounts yet. Services such as GitHub, Dropbox or Telegram "
                            "act as one of your accounts: press Connect… to add one.")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.guide_link = QLabel("To sign in with the browser, a service needs an OAuth "
                                 "app you register there (its client ID). "
                                 "<a href=\"#guide\">How do I get these?</a>")
        self.guide_link.setWordWrap(True)
        self.guide_link.setToolTip("For a service: where to register the app, the redirect "
                                   "URI to give it, the scopes, and the client ID to paste")
        self.guide_link.linkActivated.connect(lambda _link: self._guide_menu())
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.guide_link)
        layout.addWidget(self.status)
        self._later = QTimer(self, singleShot=True, interval=200)
        self._later.timeout.connect(lambda: self.tasks.spawn(self.refresh()))
        bridge.accountChanged.connect(lambda _id: self._later.start())
        self._update_buttons()
        self.tasks.spawn(self.refresh())

    def account_services(self) -> list[Service]:
        """The services with accounts: built-in ones, then the custom providers."""
        return ([s for s in self.bridge.registry if s.needs_account]
                + [p.service() for p in self.custom])

    def _connect_menu(self) -> QMenu:
        menu = QMenu(self)
        for service in self.account_services():
            action = menu.addAction(service_icon(service.id), service.name)
            action.triggered.connect(lambda _=False, s=service: self.tasks.spawn(
                self.connect_service(s)))
        return menu

    def _service(self, service_id: str) -> Service | None:
        return next((s for s in self.account_services() if s.id == service_id), None)

    async def refresh(self) -> None:
        self.accounts = await self.bridge.accounts()
        custom = await self.bridge.call(self.bridge.engine.accounts.custom.all())
        if custom != self.custom:  # the Connect menu lists them
            self.custom = custom
            old = self.connect_button.menu()
            self.connect_button.setMenu(self._connect_menu())
            old.deleteLater()
        selected = self.selected()
        used: dict[str, list[str]] = {}
        for area in self.bridge.areas():
            for step, _ in area.spec.steps():
                if step.account:
                    used.setdefault(step.account, []).append(area.name)
        self.table.setRowCount(len(self.accounts))
        for row, account in enumerate(self.accounts):
            service = self._service(account.service_id)
            ok = account.status == "ok"
            names = used.get(account.id, [])
            cells = [
                QTableWidgetItem(service_icon(account.service_id),
                                 service.name if service else account.service_id),
                QTableWidgetItem(account.name),
                QTableWidgetItem("Working" if ok else "Needs reconnecting"),
                QTableWidgetItem(f"{len(names)} automation{'s' if len(names) != 1 else ''}"),
                QTableWidgetItem(", ".join(account.scopes) or
                                 ("personal token" if account.kind == "api_key" else "")),
                QTableWidgetItem(when(account.last_refresh_at)),
            ]
            cells[2].setForeground(QColor("#1e8e3e" if ok else "#d93025"))
            if account.last_error:
                cells[2].setToolTip(account.last_error)
            cells[3].setToolTip("\n".join(names))
            for column, item in enumerate(cells):
                self.table.setItem(row, column, item)
            if selected is not None and account.id == selected.id:
                self.table.selectRow(row)
        self.table.setVisible(bool(self.accounts))
        self.empty.setVisible(not self.accounts)
        self._update_buttons()

    def selected(self) -> Account | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() \
            else []
        if not rows or rows[0].row() >= len(self.accounts):
            return None
        return self.accounts[rows[0].row()]

    def _update_buttons(self) -> None:
        chosen = self.selected() is not None
        self.reconnect_button.setEnabled(chosen)
        self.remove_button.setEnabled(chosen)

    async def ask_token(self, service: Service) -> str | None:
        """The pasted personal token (None: cancelled)."""
        assert service.api_key is not None
        token = await dialogs.text(self, f"Connect {service.name}",
                                   f"{service.api_key.label}:", secret=True)
        return token if token and token.strip() else None

    async def ask_client(self, service: Service) -> tuple[str, str | None] | None:
        """The user's own OAuth app: client ID (and secret where the provider wants it),
        asked in the guide that says how to register one (None: cancelled)."""
        guide = OAuthGuide(service, self)
        if await dialogs.finished(guide) != QDialog.DialogCode.Accepted:
            return None
        return guide.client_id, guide.client_secret

    def _guide_menu(self) -> None:
        """"How do I get these?": which service's guide to show."""
        menu = QMenu(self)
        for service in self.account_services():
            if service.oauth is not None:
                action = menu.addAction(service_icon(service.id), service.name)
                action.triggered.connect(lambda _=False, s=service: self.tasks.spawn(
                    self.connect_service(s, new_client=True)))
        menu.popup(self.guide_link.mapToGlobal(self.guide_link.rect().bottomLeft()))

    async def connect_service(self, service: Service, *, new_client: bool = False
                              ) -> Account | None:
        """Connect (or reconnect) an account of ``service``: a browser sign-in or a pasted
        token, whichever it takes (the user chooses when it takes both). ``new_client``:
        sign in with the browser through an OAuth app entered anew in the guide."""
        bridge = self.bridge
        how = SIGN_IN if new_client else await self.ask_how(service)
        if how is None:
            return None
        try:
            if how == PASTE_TOKEN:
                token = await self.ask_token(service)
                if token is None:
                    return None
                account = await bridge.add_token(service.id, token, service.name)
            else:
                assert service.oauth is not None
                if new_client or not await bridge.has_oauth_client(service.id):
                    client = await self.ask_client(service)
                    if client is None:
                        return None
                    await bridge.set_oauth_client(service.id, *client)
                self.status.setText(f"Finish signing in to {service.name} in your browser…")

                def show(url: str, _redirect: str) -> None:
                    self.status.setText(f"Finish signing in to {service.name} in your "
                                        f"browser. If it did not open, visit: {url}")

                account = await bridge.connect_account(service.id, show=show)
        except HooklineError as exc:
            self.status.setText("")
            await dialogs.warning(self, f"{service.name} not connected", str(exc))
            return None
        self.status.setText(f"Connected {service.name} as {account.name}.")
        await self.refresh()
        return account

    async def ask_how(self, service: Service) -> str | None:
        """SIGN_IN or PASTE_TOKEN: asked when ``service`` takes both (None: cancelled)."""
        if service.api_key is None:
            return SIGN_IN
        if service.oauth is None:
            return PASTE_TOKEN
        answer = await dialogs.choose(
            self, f"Connect {service.name}",
            f"How do you want to connect {service.name}?\n\n"
            f"{SIGN_IN}: approve Hookline on {service.name}'s site (the first time, you "
            f"register your own app there).\n{PASTE_TOKEN}: create a "
            f"{service.api_key.label.lower()} on {service.name}'s site and paste it here.",
            [(SIGN_IN, QMessageBox.ButtonRole.AcceptRole),
             (PASTE_TOKEN, QMessageBox.ButtonRole.AcceptRole),
             ("Cancel", QMessageBox.ButtonRole.RejectRole)], default=SIGN_IN)
        return answer if answer in (SIGN_IN, PASTE_TOKEN) else None

    async def add_custom_provider(self) -> CustomProvider | None:
        """Declare a custom OAuth 2 provider (None: cancelled, or not kept)."""
        dialog = CustomProviderDialog(self, taken=self.bridge.registry.services)
        accepted = await dialogs.finished(dialog) == QDialog.DialogCode.Accepted
        provider, client_id, secret = dialog.provider, dialog.client_id, dialog.client_secret
        if not accepted or provider is None:
            return None
        try:
            await self.bridge.call(add_provider(self.bridge.engine.accounts, provider,
                                                client_id, secret))
        except HooklineError as exc:
            await dialogs.warning(self, f"{provider.name} not added", str(exc))
            return None
        await self.refresh()
        self.status.setText(f"Added the custom provider {provider.name}. To sign in, choose "
                            f"Connect… → {provider.name}.")
        return provider

    def _reconnect(self) -> None:
        account = self.selected()
        if account is None:
            return
        service = self._service(account.service_id)
        if service is not None:
            self.tasks.spawn(self.connect_service(service))

    def _remove(self) -> None:
        account = self.selected()
        if account is None:
            return
        answer = QMessageBox.question(
            self, "Remove account",
            f"Remove {account.name}? Automations that use it stop working until you "
            "connect an account again.")
        if answer == QMessageBox.StandardButton.Yes:
            self.tasks.spawn(self._do_remove(account))

    async def _do_remove(self, account: Account) -> None:
        removal = await self.bridge.remove_account(account.id)
        self.status.setText(f"Removed {account.name}. {removal.note}".strip())
        await self.refresh()

    def state(self) -> dict[str, Any]:
        def text(row: int, column: int) -> str:
            item = self.table.item(row, column)
            return item.text() if item is not None else ""

        return {"rows": [(text(r, 1), text(r, 2)) for r in range(self.table.rowCount())]}
