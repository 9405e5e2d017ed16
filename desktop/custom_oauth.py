"""The dialog that declares a custom OAuth 2 provider (a self-hosted Gitea, GitLab…)."""

from __future__ import annotations

from collections.abc import Container

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.dialogs import MESSAGE_WIDTH
from desktop.forms import error_label, small_label
from engine.auth.custom import NAME_FIELDS, CustomProvider
from engine.catalog.auth import OAuth2Spec
from engine.errors import ValidationError

#: (field, label, placeholder, hint under the field): the form, top to bottom.
FORM = (
    ("name", "Name", "my-gitea", "What you call it; its accounts are listed under it."),
    ("authorize_url", "Authorize URL", "https://git.example.org/login/oauth/authorize", ""),
    ("token_url", "Token URL", "https://git.example.org/login/oauth/access_token", ""),
    ("scopes", "Scopes", "read:user read:repository",
     "Separated by spaces; what the provider's API needs."),
    ("userinfo_url", "User-info URL", "https://git.example.org/api/v1/user",
     "Optional: answers who signed in, so the account gets that name."),
    ("name_fields", "Name fields", " ".join(NAME_FIELDS),
     "Optional: the fields of that answer that name the account, first found wins."),
    ("revoke_url", "Revoke URL", "https://git.example.org/oauth/revoke",
     "Optional: where access is revoked when you remove an account (RFC 7009)."),
    ("client_id", "Client ID", "", "Of the OAuth app you registered at the provider."),
    ("client_secret", "Client secret", "optional",
     "Kept in your OS keyring; leave empty for a public app (PKCE)."),
)


class CustomProviderDialog(QDialog):
    """Asks for a provider's endpoints, scopes and OAuth app; Save checks them and says
    under each field what is wrong, closing only when all is right.

    Args:
        taken: the ids of the built-in services (a provider may not take one).

    Attributes:
        fields: the line edit of each field, by name.
        problems: the label under each field that says what is wrong with it.
        provider / client_id / client_secret: what was entered, once accepted.
    """

    def __init__(self, parent: QWidget | None = None, *, taken: Container[str] = ()) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a custom OAuth 2 provider")
        self._taken = taken
        self.provider: CustomProvider | None = None
        self.client_id = ""
        self.client_secret: str | None = None
        intro = QLabel(
            "Connect a self-hosted Gitea, GitLab, Nextcloud or any OAuth 2 service. First "
            "register an OAuth app there with the redirect URI "
            f"<b>{OAuth2Spec('', '').redirect_uri()}</b> (any port), then enter its "
            "details here.")
        intro.setWordWrap(True)
        intro.setMaximumWidth(MESSAGE_WIDTH)
        intro.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.fields: dict[str, QLineEdit] = {}
        self.problems: dict[str, QLabel] = {}
        for name, label, placeholder, hint in FORM:
            edit = QLineEdit()
            edit.setPlaceholderText(placeholder)
            edit.setAccessibleName(label)
            edit.setMinimumWidth(420)
            if name == "client_secret":
                edit.setEchoMode(QLineEdit.EchoMode.Password)
            problem = error_label()
            edit.textEdited.connect(problem.hide)
            holder = QWidget()  # a widget, not a layout: it reports wrapped lines' height
            cell = QVBoxLayout(holder)
            cell.setContentsMargins(0, 0, 0, 0)
            cell.setSpacing(2)
            cell.addWidget(edit)
            if hint:
                cell.addWidget(small_label(hint))
            cell.addWidget(problem)
            form.addRow(f"{label}:", holder)
            self.fields[name] = edit
            self.problems[name] = problem
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self._layout = QVBoxLayout(self)
        self._layout.addWidget(intro)
        self._layout.addLayout(form)
        self._layout.addWidget(buttons)

    def value(self, name: str) -> str:
        return self.fields[name].text().strip()

    def check(self) -> bool:
        """Whether what was entered makes a provider; else each problem shows under its
        field and the first such field gets the focus."""
        for label in self.problems.values():
            label.hide()
        found: list[ValidationError] = []
        try:
            self.provider = CustomProvider.checked(
                self.value("name"), self.value("authorize_url"), self.value("token_url"),
                self.value("scopes"), self.value("userinfo_url"), self.value("name_fields"),
                self.value("revoke_url"), taken=self._taken)
        except ValidationError as exc:
            found = exc.problems
        if not self.value("client_id"):
            found.append(ValidationError("client_id", "give the client ID of the OAuth app "
                                                      "you registered at the provider"))
        for problem in found:
            label = self.problems.get(problem.where, self.problems["name"])
            label.setText(problem.problem[:1].upper() + problem.problem[1:] + ".")
            label.show()
        first = next((n for n, _l, _p, _h in FORM if not self.problems[n].isHidden()), None)
        if first is not None:
            self.fields[first].setFocus()
            self.provider = None
            self.fit()
            return False
        self.client_id = self.value("client_id")
        self.client_secret = self.fields["client_secret"].text() or None
        return True

    def fit(self) -> None:
        """Grow to show every message whole (``adjustSize`` alone leaves a dialog as tall
        as its lines would be unwrapped)."""
        self.adjustSize()
        self.resize(self.width(),
                    max(self.height(), self._layout.totalHeightForWidth(self.width())))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.fit()

    def accept(self) -> None:
        if self.check():
            super().accept()
