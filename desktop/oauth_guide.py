"""The guide to registering your own OAuth app for a service, in numbered steps derived
from its OAuth2Spec: the provider's page, the redirect URI to paste, the scopes, and
the client ID checked before the browser opens."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.forms import error_label, small_label
from engine.catalog.auth import OAuth2Spec
from engine.catalog.service import Service

#: The guide's width (pixels): readable lines, and well inside a 1,366×768 screen.
GUIDE_WIDTH = 620


def client_id_problem(service_name: str, spec: OAuth2Spec, client_id: str) -> str:
    """What looks wrong with a pasted client ID, in words ("" when nothing does or it is
    still empty): the generic checks, then the provider's documented shape if any."""
    text = client_id.strip()
    if not text:
        return ""
    if any(ch.isspace() for ch in text):
        return ("It contains a space or a line break: copy the client ID alone, in one "
                "piece.")
    if "://" in text:
        return (f"That is a web address; the client ID is the code {service_name} shows "
                "for your app.")
    if spec.client_id_pattern and not re.fullmatch(spec.client_id_pattern, text):
        shape = spec.client_id_shape or "it does not have the shape of one"
        return f"This does not look like a {service_name} client ID: {shape}."
    return ""


def redirect_note(service_name: str, spec: OAuth2Spec) -> str:
    """How the redirect URI is used at sign-in: exactly as shown, or with a port added."""
    if spec.fixed_port:
        return (f"Paste it exactly: {service_name} compares it letter by letter, and "
                f"Hookline listens on port {spec.fixed_port} for the answer.")
    return (f"Register it without a port. At sign-in Hookline listens on a free port and "
            f"sends the address with it (say {spec.loopback_host}:53682); {service_name} "
            "accepts any port on a loopback address, as RFC 8252 allows.")


def _help_text(spec: OAuth2Spec) -> str:
    """The declaration's own notes, without the parentheses that fit them into the
    command line's sentence."""
    text = spec.client_help.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return text


class OAuthGuide(QDialog):
    """How to get a client ID (and secret) for ``service``, step by step; Connect is
    enabled once what was pasted looks right.

    Args:
        service: a service with an OAuth2Spec (built-in or a custom provider's).

    Attributes:
        redirect: the read-only redirect URI to register.
        redirect_note: says how the sign-in uses it (exactly, or with a port added).
        client_id_edit / secret_edit: where the user pastes them (``secret_edit`` is
            ``None`` unless the provider wants a secret).
        problem: the message under the client ID that says what looks wrong.
        connect_button: starts the sign-in.
        client_id / client_secret: what was entered, once accepted.
    """

    def __init__(self, service: Service, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        assert service.oauth is not None
        self.service = service
        self.spec = spec = service.oauth
        self.client_id = ""
        self.client_secret: str | None = None
        name = service.name
        self.setWindowTitle(f"Connect {name}: your own OAuth app")
        self.setMinimumWidth(GUIDE_WIDTH)
        self.setMaximumWidth(GUIDE_WIDTH + 80)
        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        self._layout = layout
        layout.addWidget(self._text(
            f"Hookline signs in to {name} through an OAuth app that you register there "
            "once, so your tokens are between you and your app. Four steps:"))

        # 1. The provider's page.
        page = spec.register_url or spec.apps_url
        layout.addWidget(self._step(1, f"Open {name}'s page for developers and sign in."
                                    if page else
                                    f"Open the page where {name} registers OAuth apps."))
        self.open_button: QPushButton | None = None
        if page:
            self.open_button = QPushButton(f"Open {urlsplit(page).netloc} in the browser")
            self.open_button.setToolTip(page)
            self.open_button.setAccessibleName(f"Open {name}'s page in the browser")
            self.open_button.clicked.connect(
                lambda: QDesktopServices.openUrl(QUrl(page)))
            layout.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignLeft)
        help_text = _help_text(spec)
        if help_text:
            layout.addWidget(small_label(help_text))

        # 2. The redirect URI.
        layout.addWidget(self._step(2, "Create an app there and give it this redirect URI "
                                       "(also called a callback URL):"))
        self.redirect = QLineEdit(spec.redirect_uri())
        self.redirect.setReadOnly(True)
        self.redirect.setAccessibleName("Redirect URI")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName("Copy the redirect URI")
        self.copy_button.clicked.connect(self.copy_redirect)
        row = QHBoxLayout()
        row.addWidget(self.redirect, 1)
        row.addWidget(self.copy_button)
        layout.addLayout(row)
        self.redirect_note = small_label(redirect_note(name, spec))
        layout.addWidget(self.redirect_note)

        # 3. The scopes.
        if spec.scopes:
            scopes = ", ".join(spec.scopes)
            layout.addWidget(self._step(3, f"Hookline asks {name} for these permissions "
                                           f"(scopes): {scopes}. Where your app's "
                                           "settings list scopes, tick these."))
        else:
            layout.addWidget(self._step(3, f"No permissions (scopes) to tick: Hookline "
                                           f"asks {name} for none beyond signing in."))

        # 4. The client ID (and secret).
        wanted = "client ID and secret" if spec.client_secret_required else "client ID"
        layout.addWidget(self._step(4, f"Paste the {wanted} {name} shows for your app:"))
        self.client_id_edit = QLineEdit()
        self.client_id_edit.setAccessibleName("Client ID")
        self.client_id_edit.setPlaceholderText("Client ID")
        self.client_id_edit.textChanged.connect(self._check)
        layout.addWidget(self.client_id_edit)
        self.problem = error_label()
        layout.addWidget(self.problem)
        self.secret_edit: QLineEdit | None = None
        if spec.client_secret_required:
            self.secret_edit = QLineEdit()
            self.secret_edit.setAccessibleName("Client secret")
            self.secret_edit.setPlaceholderText("Client secret (kept in your OS keyring)")
            self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
            self.secret_edit.textChanged.connect(self._check)
            layout.addWidget(self.secret_edit)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.connect_button = buttons.addButton("Connect",
                                                QDialogButtonBox.ButtonRole.AcceptRole)
        self.connect_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addStretch(1)  # what a taller window adds goes here, not between steps
        layout.addSpacing(6)
        layout.addWidget(buttons)
        self._check()

    def _text(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    def _step(self, number: int, text: str) -> QLabel:
        label = self._text(f"<b>{number}.</b> {text}")
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setContentsMargins(0, 6, 0, 0)
        return label

    def copy_redirect(self) -> None:
        QGuiApplication.clipboard().setText(self.redirect.text())
        self.copy_button.setText("Copied")

    def _check(self) -> None:
        """Say what looks wrong under the client ID; Connect only once nothing does."""
        problem = client_id_problem(self.service.name, self.spec, self.client_id_edit.text())
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        ready = bool(self.client_id_edit.text().strip()) and not problem
        if self.secret_edit is not None:
            ready = ready and bool(self.secret_edit.text().strip())
        self.connect_button.setEnabled(ready)
        if self.isVisible():
            self.fit()

    def fit(self) -> None:
        """As tall as its lines wrapped at its width (``adjustSize`` alone leaves a
        dialog as tall as wrapped labels would be at some narrower width)."""
        self.adjustSize()
        self.resize(self.width(), self._layout.totalHeightForWidth(self.width()))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.fit()

    def accept(self) -> None:
        if not self.connect_button.isEnabled():
            return
        self.client_id = self.client_id_edit.text().strip()
        self.client_secret = (self.secret_edit.text().strip()
                              if self.secret_edit is not None else None)
        super().accept()
