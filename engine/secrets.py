"""Secrets live in the OS keyring, referenced by name; never in the database or logs."""

from __future__ import annotations

import keyring
import keyring.errors
from keyring.backends import fail

from engine.errors import SecretError

KEYRING_SERVICE = "hookline"


class SecretStore:
    """Reads and writes secrets in the OS keyring under ``hookline``/``ref``."""

    def __init__(self, service: str = KEYRING_SERVICE) -> None:
        self._service = service

    @staticmethod
    def available() -> tuple[bool, str]:
        """Whether a usable keyring backend exists, and its name or the reason not."""
        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring):
            return False, (
                "no OS keyring found. On Linux install and unlock a Secret Service "
                "(e.g. gnome-keyring or KeePassXC); on Windows and macOS it is built in"
            )
        return True, f"{type(backend).__module__}.{type(backend).__name__}"

    def get(self, ref: str) -> str | None:
        try:
            return keyring.get_password(self._service, ref)
        except keyring.errors.KeyringError as exc:
            raise SecretError(f"Cannot read a secret from the OS keyring: {exc}") from None

    def set(self, ref: str, value: str) -> None:
        try:
            keyring.set_password(self._service, ref, value)
        except keyring.errors.KeyringError as exc:
            ok, why = self.available()
            hint = "" if ok else f" ({why})"
            raise SecretError(f"Cannot save a secret in the OS keyring{hint}: {exc}") from None

    def delete(self, ref: str) -> None:
        try:
            keyring.delete_password(self._service, ref)
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise SecretError(f"Cannot remove a secret from the OS keyring: {exc}") from None


class MemorySecretStore(SecretStore):
    """Secrets held in memory only: for dry runs and unsaved drafts, never persisted."""

    def __init__(self) -> None:
        super().__init__()
        self._values: dict[str, str] = {}

    def get(self, ref: str) -> str | None:
        return self._values.get(ref)

    def set(self, ref: str, value: str) -> None:
        self._values[ref] = value

    def delete(self, ref: str) -> None:
        self._values.pop(ref, None)
