"""Secrets live in the OS keyring, referenced by name; never in the database or logs."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import keyring.errors
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from keyring.backends import fail

from engine.errors import SecretError

log = logging.getLogger(__name__)

KEYRING_SERVICE = "hookline"
#: Longest value kept in one keyring entry, in UTF-16 code units: Windows Credential
#: Manager refuses more than 1,280 (2,560 bytes); longer values are kept in parts.
PART_SIZE = 1000
#: A value kept in parts has this header at its own ref, then ``ref#1``, ``ref#2``...
PARTS_MARKER = "hookline-parts:v1:"


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def split_parts(value: str, size: int) -> list[str]:
    """``value`` cut into pieces of at most ``size`` UTF-16 code units each."""
    parts: list[str] = []
    current: list[str] = []
    units = 0
    for char in value:
        width = _utf16_units(char)
        if units + width > size and current:
            parts.append("".join(current))
            current, units = [], 0
        current.append(char)
        units += width
    if current:
        parts.append("".join(current))
    return parts


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


class SecretStore:
    """Reads and writes secrets in the OS keyring under ``hookline``/``ref``.

    Values longer than ``part_size`` UTF-16 code units (OAuth tokens can be) are kept
    in numbered parts with a header at ``ref`` that names the count and a checksum.

    Args:
        part_size: the longest value kept in one entry (tests lower it).
    """

    def __init__(self, service: str = KEYRING_SERVICE, part_size: int = PART_SIZE) -> None:
        self._service = service
        self.part_size = part_size
        self._watchers: list[Callable[[str], None]] = []

    def on_change(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(ref)`` after each set or delete through this store (in the
        thread that made it; never with the value); returns the unsubscribe."""
        self._watchers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._watchers.remove(callback)

        return unsubscribe

    def _changed(self, ref: str) -> None:
        for callback in list(self._watchers):
            try:
                callback(ref)
            except Exception:
                log.exception("a watcher of the secret %s failed", ref)

    def get(self, ref: str) -> str | None:
        value = self._get_one(ref)
        if value is None or not value.startswith(PARTS_MARKER):
            return value
        count, digest = self._header(ref, value)
        pieces = [self._get_one(f"{ref}#{i}") for i in range(1, count + 1)]
        joined = "".join(p for p in pieces if p is not None)
        if None in pieces or _digest(joined) != digest:
            raise SecretError(f"The secret {ref} in the OS keyring is incomplete or damaged: "
                              "enter it again (reconnect the account or re-enter the value)")
        return joined

    def set(self, ref: str, value: str) -> None:
        old = self._part_count(ref)
        pieces = split_parts(value, self.part_size)
        if len(pieces) <= 1 and not value.startswith(PARTS_MARKER):
            self._set_one(ref, value)
            count = 0
        else:  # the parts first, the header last: a half-done write reads as damaged
            for i, piece in enumerate(pieces, 1):
                self._set_one(f"{ref}#{i}", piece)
            count = len(pieces)
            self._set_one(ref, f"{PARTS_MARKER}{count}:{_digest(value)}")
        for i in range(count + 1, old + 1):
            self._delete_one(f"{ref}#{i}")
        self._changed(ref)

    def delete(self, ref: str) -> None:
        for i in range(1, self._part_count(ref) + 1):
            self._delete_one(f"{ref}#{i}")
        self._delete_one(ref)
        self._changed(ref)

    def _part_count(self, ref: str) -> int:
        try:
            value = self._get_one(ref)
        except SecretError:
            return 0
        if value is None or not value.startswith(PARTS_MARKER):
            return 0
        try:
            return self._header(ref, value)[0]
        except SecretError:
            return 0

    @staticmethod
    def _header(ref: str, value: str) -> tuple[int, str]:
        count, _, digest = value[len(PARTS_MARKER):].partition(":")
        if not count.isdigit() or not digest:
            raise SecretError(f"The secret {ref} in the OS keyring is damaged: enter it again")
        return int(count), digest

    @staticmethod
    def available() -> tuple[bool, str]:
        """Whether a usable keyring backend exists, and its name or the reason not."""
        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring):
            return False, (
                "no OS keyring found. On Linux install and unlock a Secret Service "
                "(e.g. gnome-keyring or KeePassXC); on Windows and macOS it is built in. "
                "On a headless server you may instead keep secrets in an encrypted file: "
                "`hookline settings set secrets_file_fallback true` and set "
                "$HOOKLINE_SECRETS_PASSPHRASE"
            )
        return True, f"{type(backend).__module__}.{type(backend).__name__}"

    def _get_one(self, ref: str) -> str | None:
        try:
            return keyring.get_password(self._service, ref)
        except keyring.errors.KeyringError as exc:
            raise SecretError(f"Cannot read a secret from the OS keyring: {exc}") from None

    def _set_one(self, ref: str, value: str) -> None:
        try:
            keyring.set_password(self._service, ref, value)
        except keyring.errors.KeyringError as exc:
            ok, why = self.available()
            hint = "" if ok else f" ({why})"
            raise SecretError(f"Cannot save a secret in the OS keyring{hint}: {exc}") from None

    def _delete_one(self, ref: str) -> None:
        try:
            keyring.delete_password(self._service, ref)
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise SecretError(f"Cannot remove a secret from the OS keyring: {exc}") from None


class MemorySecretStore(SecretStore):
    """Secrets held in memory only: for dry runs and unsaved drafts, never persisted."""

    def __init__(self, part_size: int = PART_SIZE) -> None:
        super().__init__(part_size=part_size)
        self._values: dict[str, str] = {}

    def _get_one(self, ref: str) -> str | None:
        return self._values.get(ref)

    def _set_one(self, ref: str, value: str) -> None:
        self._values[ref] = value

    def _delete_one(self, ref: str) -> None:
        self._values.pop(ref, None)


SECRETS_FILE = "secrets.enc"
PASSPHRASE_ENV = "HOOKLINE_SECRETS_PASSPHRASE"  # noqa: S105 - a variable name


class EncryptedFileSecretStore(SecretStore):
    """Secrets in one file, for machines with no OS keyring, used only with the user's
    explicit consent (see ``open_secret_store``).

    The file holds every secret encrypted and authenticated together (Fernet: AES-CBC
    and HMAC-SHA256) with a key derived from the user's passphrase by scrypt; it is
    written atomically with mode 0600, and re-read under a file lock before each
    change so the CLI and the engine do not undo each other's writes.

    Args:
        path: the file (created at the first write).
        passphrase: the user's passphrase; a wrong one is refused, never overwritten.
        cost: scrypt's CPU/memory cost (2**15 ≈ 0.1 s and 32 MiB; tests lower it).
    """

    def __init__(self, path: Path, passphrase: str, *, cost: int = 2**15) -> None:
        super().__init__(part_size=1 << 30)  # one file has no size limit per entry
        if not passphrase:
            raise SecretError("the encrypted secrets file needs a passphrase")
        self.path = path
        self._passphrase = passphrase.encode("utf-8")
        self._cost = cost
        self._keys: dict[bytes, Fernet] = {}
        self._mutex = threading.Lock()

    @staticmethod
    def available() -> tuple[bool, str]:
        return True, "encrypted file (no OS keyring; chosen in settings)"

    def _fernet(self, salt: bytes, cost: int) -> Fernet:
        if salt not in self._keys:
            key = Scrypt(salt=salt, length=32, n=cost, r=8, p=1).derive(self._passphrase)
            self._keys[salt] = Fernet(base64.urlsafe_b64encode(key))
        return self._keys[salt]

    def _read(self) -> tuple[dict[str, str], bytes, int]:
        """The secrets, the file's salt and cost (a fresh salt if there is no file)."""
        try:
            envelope = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}, os.urandom(16), self._cost
        except (OSError, ValueError) as exc:
            raise SecretError(f"Cannot read the secrets file {self.path}: {exc}") from None
        try:
            salt = base64.b64decode(envelope["salt"])
            cost = int(envelope["n"])
            plain = self._fernet(salt, cost).decrypt(envelope["data"].encode("ascii"))
        except InvalidToken:
            raise SecretError(f"The passphrase does not open {self.path} (or the file was "
                              "changed): give the passphrase it was made with") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise SecretError(f"The secrets file {self.path} is damaged: {exc}") from None
        values = json.loads(plain)
        return dict(values), salt, cost

    def _write(self, values: dict[str, str], salt: bytes, cost: int) -> None:
        token = self._fernet(salt, cost).encrypt(json.dumps(values).encode("utf-8"))
        envelope = {"version": 1, "kdf": "scrypt", "n": cost, "r": 8, "p": 1,
                    "salt": base64.b64encode(salt).decode("ascii"),
                    "cipher": "fernet", "data": token.decode("ascii")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets-")
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(envelope, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            if os.name != "posix":
                yield
                return
            import fcntl

            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"),
                         os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _get_one(self, ref: str) -> str | None:
        with self._locked():
            return self._read()[0].get(ref)

    def _set_one(self, ref: str, value: str) -> None:
        with self._locked():
            values, salt, cost = self._read()
            values[ref] = value
            self._write(values, salt, cost)

    def _delete_one(self, ref: str) -> None:
        with self._locked():
            values, salt, cost = self._read()
            if values.pop(ref, None) is not None:
                self._write(values, salt, cost)


def open_secret_store(data_dir: Path, *, file_fallback: bool = False,
                      passphrase: str | None = None) -> SecretStore:
    """The OS keyring; when there is none and the user has agreed to it
    (``file_fallback``), the encrypted file in the data folder, opened with
    ``passphrase`` or ``$HOOKLINE_SECRETS_PASSPHRASE``."""
    ok, why = SecretStore.available()
    if ok or not file_fallback:
        return SecretStore()
    passphrase = passphrase or os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        raise SecretError(f"{why}. Secrets may be kept in an encrypted file instead, but it "
                          f"needs a passphrase: set {PASSPHRASE_ENV}")
    return EncryptedFileSecretStore(data_dir / SECRETS_FILE, passphrase)


def secret_store_of(data_dir: Path) -> SecretStore:
    """The store the engine on ``data_dir`` keeps its secrets in, for a command run
    beside it: its settings say whether the encrypted file may be used."""
    from engine.settings import load_settings

    return open_secret_store(
        data_dir, file_fallback=load_settings(data_dir).secrets_file_fallback)
