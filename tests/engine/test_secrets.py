"""Secrets in the keyring, including values longer than one entry may hold."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from engine.errors import SecretError
from engine.secrets import (
    PARTS_MARKER,
    PASSPHRASE_ENV,
    SECRETS_FILE,
    EncryptedFileSecretStore,
    MemorySecretStore,
    SecretStore,
    open_secret_store,
)


class LimitedStore(MemorySecretStore):
    """A keyring that refuses entries longer than ``limit`` (as Windows' does at 1,280)."""

    def __init__(self, limit: int, part_size: int) -> None:
        super().__init__(part_size=part_size)
        self.limit = limit

    def _set_one(self, ref: str, value: str) -> None:
        if len(value.encode("utf-16-le")) // 2 > self.limit:
            raise SecretError("Cannot save a secret in the OS keyring: too long")
        super()._set_one(ref, value)


def test_a_long_value_is_kept_in_parts_that_each_fit() -> None:
    store = LimitedStore(limit=64, part_size=50)
    value = "".join(chr(0x41 + i % 26) for i in range(180)) + "🔑é"  # astral: 2 units
    store.set("account/a1/token", value)

    assert store.get("account/a1/token") == value
    header = store._values["account/a1/token"]
    assert header.startswith(PARTS_MARKER) and value not in header
    parts = sorted(k for k in store._values if k.startswith("account/a1/token#"))
    assert parts == [f"account/a1/token#{i}" for i in range(1, 5)]

    store.set("account/a1/token", "short now")  # stale parts go
    assert store.get("account/a1/token") == "short now"
    assert list(store._values) == ["account/a1/token"]

    store.set("account/a1/token", value)
    store.delete("account/a1/token")
    assert store._values == {}
    assert store.get("account/a1/token") is None


def test_the_default_part_size_fits_windows_credential_manager() -> None:
    store = LimitedStore(limit=1280, part_size=SecretStore().part_size)
    token = "x" * 5000
    store.set("account/a2/token", token)
    assert store.get("account/a2/token") == token


def test_a_short_value_that_looks_like_a_header_round_trips() -> None:
    store = MemorySecretStore(part_size=50)
    tricky = f"{PARTS_MARKER}2:abc"
    store.set("r", tricky)
    assert store.get("r") == tricky


def test_a_missing_or_damaged_part_is_an_error_that_says_what_to_do() -> None:
    store = MemorySecretStore(part_size=10)
    store.set("account/a3/token", "0123456789" * 3)
    store._values["account/a3/token#2"] = "tampered!!"
    with pytest.raises(SecretError, match="incomplete or damaged: enter it again"):
        store.get("account/a3/token")
    del store._values["account/a3/token#2"]
    with pytest.raises(SecretError, match="incomplete or damaged"):
        store.get("account/a3/token")


def test_the_os_keyring_keeps_a_long_token() -> None:
    store = SecretStore(part_size=300)
    ref = "test/long-token"
    token = "t" * 2000
    try:
        store.set(ref, token)
        assert store.get(ref) == token
        assert SecretStore(part_size=300)._get_one(f"{ref}#7") == "t" * 200
    finally:
        store.delete(ref)
    assert store.get(ref) is None and store._get_one(f"{ref}#1") is None


# ---------------------------------------------------------------------- encrypted file


def file_store(path: Path, passphrase: str = "correct horse battery") -> EncryptedFileSecretStore:
    return EncryptedFileSecretStore(path, passphrase, cost=2**10)


def test_the_encrypted_file_keeps_secrets_unreadable_and_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    store = file_store(path)
    token = '{"access_token": "at-5f1e0c9b7a", "refresh_token": "rt-77d2c4"}' * 40
    store.set("account/a1/token", token)
    store.set("area/x/trigger/secret", "hush-5b1e")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert b"at-5f1e0c9b7a" not in raw and b"hush-5b1e" not in raw and b"account/a1" not in raw
    again = file_store(path)  # another process, same passphrase
    assert again.get("account/a1/token") == token
    again.delete("area/x/trigger/secret")
    assert store.get("area/x/trigger/secret") is None
    assert store.get("account/a1/token") == token


def test_the_encrypted_file_refuses_a_wrong_passphrase_and_tampering(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    file_store(path).set("r", "value")
    with pytest.raises(SecretError, match="The passphrase does not open"):
        file_store(path, "wrong").get("r")
    with pytest.raises(SecretError, match="The passphrase does not open"):
        file_store(path, "wrong").set("r", "overwritten?")
    assert file_store(path).get("r") == "value"

    envelope = json.loads(path.read_text())
    data = envelope["data"]
    envelope["data"] = data[:40] + ("A" if data[40] != "A" else "B") + data[41:]
    path.write_text(json.dumps(envelope))
    with pytest.raises(SecretError, match="or the file was changed"):
        file_store(path).get("r")


def test_two_writers_do_not_undo_each_other(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    engine_side, cli_side = file_store(path), file_store(path)
    engine_side.set("a", "1")
    cli_side.set("b", "2")
    engine_side.set("c", "3")
    assert {k: cli_side.get(k) for k in "abc"} == {"a": "1", "b": "2", "c": "3"}


def test_the_file_is_used_only_with_consent_and_a_passphrase(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    assert type(open_secret_store(tmp_path)) is SecretStore  # no consent: the keyring
    with pytest.raises(SecretError, match=f"no OS keyring found.*set {PASSPHRASE_ENV}"):
        open_secret_store(tmp_path, file_fallback=True)
    monkeypatch.setenv(PASSPHRASE_ENV, "from the environment")
    chosen = open_secret_store(tmp_path, file_fallback=True)
    assert isinstance(chosen, EncryptedFileSecretStore)
    assert chosen.path == tmp_path / SECRETS_FILE


def test_the_command_line_keeps_secrets_in_the_file_where_there_is_no_keyring(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main
    from engine.settings import Settings, save_settings

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    monkeypatch.setenv(PASSPHRASE_ENV, "a headless server's passphrase")
    save_settings(tmp_path, Settings(secrets_file_fallback=True))
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("cs-of-the-oauth-app\n"))
    assert main(["--data-dir", str(tmp_path), "accounts", "client", "github",
                 "Iv1.0123456789abcdef", "--stdin"]) == 0
    kept = open_secret_store(tmp_path, file_fallback=True)
    assert isinstance(kept, EncryptedFileSecretStore)
    assert kept.get("oauth_client/github/secret") == "cs-of-the-oauth-app"
    capsys.readouterr()
    main(["--data-dir", str(tmp_path), "doctor"])
    said = capsys.readouterr().out
    assert f"ok   secrets        the encrypted file {tmp_path / SECRETS_FILE}" in said
    assert "BAD  keyring" not in said
