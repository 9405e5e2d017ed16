"""Two `hookline serve` on one PostgreSQL database, each machine with a secret store of
its own: the active one, acting as an account whose provider rotates refresh tokens, is
killed, and the standby that copied its secrets goes on acting as the account."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.auth.accounts import client_secret_ref, token_ref
from engine.auth.custom import CustomProvider, add_provider
from engine.catalog.auth import TokenSet
from engine.remote import peer
from engine.secrets import PASSPHRASE_ENV, SECRETS_FILE, EncryptedFileSecretStore
from engine.settings import Settings, save_settings
from engine.standby import connect_args
from tests.engine.conftest import stored_bytes
from tests.engine.oauth_provider import Provider, follow
from tests.engine.remote.test_peer_cli import JOIN
from tests.engine.test_standby_kill import TAKEOVER, Serve, free_port, hookline

pytestmark = pytest.mark.slow

PASSPHRASE = "two machines, one phrase each-Hx7"
#: each access token lives this long; an engine refreshes any that expires within a
#: minute (engine/auth/session.py), so every use of the account refreshes it
EXPIRES_IN = 2
EVERY = 2  # seconds between the area's runs
PROVIDER = "acme-cloud"


@dataclass
class TimedProvider(Provider):
    """The local provider, noting when it issued each token (for the figure)."""

    issued_at: dict[str, float] = field(default_factory=dict)

    def make_token(self, kind: str) -> str:
        token = super().make_token(kind)
        self.issued_at[token] = time.time()
        return token

    def live_refresh_token(self) -> str:
        """The refresh token it would honour now (each one works once)."""
        return [t for t in self.issued if t.startswith("rt-")][-1]


@pytest.fixture
async def provider() -> AsyncIterator[TimedProvider]:
    server = TimedProvider(client_secret="app-secret-Vp3nQ8", expires_in=EXPIRES_IN)
    await server.start()
    yield server
    await server.aclose()


def own_store(folder: Path) -> EncryptedFileSecretStore:
    """A machine's secrets as its `hookline` processes keep them (no OS keyring)."""
    return EncryptedFileSecretStore(folder / SECRETS_FILE, PASSPHRASE)


async def until(check: Callable[[], bool], what: str, *serves: Serve,
                timeout: float = 20.0) -> None:
    """Wait for ``check()``; failing, say what the serves said."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            said = "".join(f"\n{s.data_dir.name} said:\n{''.join(s.lines)}" for s in serves)
            raise AssertionError(f"{what}: not within {timeout:.0f} s{said}")
        await asyncio.sleep(0.02)


async def set_up_machine_a(folder: Path, settings: Settings, provider: Provider) -> str:
    """On A, before it serves: the provider declared, its app's secret, an account
    signed in and an area acting as it every few seconds. The account's id."""
    engine = Engine(folder, settings=settings, secrets=own_store(folder), offline=True)
    await engine.start()
    try:
        declared = CustomProvider.checked(
            PROVIDER, f"{provider.base}/authorize", f"{provider.base}/token", "read write",
            f"{provider.base}/userinfo", None, f"{provider.base}/revoke",
            taken=engine.accounts.registry.services)
        await add_provider(engine.accounts, declared, provider.client_id,
                           provider.client_secret)
        account = await engine.accounts.connect(PROVIDER, browser=follow(), timeout=10)
        await engine.create_area(AreaSpec.from_dict({
            "name": "Ask the API as the account",
            "trigger": {"service": "timer", "trigger": "every",
                        "params": {"interval": EVERY}},
            "reactions": [{"service": "http", "reaction": "request", "account": account.id,
                           "params": {"method": "GET", "url": f"{provider.base}/api/thing"}}],
        }))
        return account.id
    finally:
        await engine.aclose()


def copied_refresh_token(store: EncryptedFileSecretStore, account_id: str) -> str | None:
    text = store.get(token_ref(account_id))
    return TokenSet.from_json(text).refresh_token if text else None


def succeeded_runs_since(url: str, since: float) -> int:
    """Runs that succeeded, begun after ``since`` (epoch seconds; stored naive UTC)."""
    after = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    with psycopg.connect(**connect_args(url)) as conn:
        row = conn.execute("select count(*) from runs where status = 'succeeded' and "
                           "started_at > %s", (after,)).fetchone()
        return int(row[0]) if row else 0


async def test_a_killed_engines_account_goes_on_with_the_standbys_copied_refresh_token(
        postgres_url: str, tmp_path: Path, provider: TimedProvider,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Each process finds no OS keyring, as on a headless server, and keeps its machine's
    # secrets in its own data folder's encrypted file (the user's choice in settings):
    # nothing can pass from A to B but through the paired TLS channel.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    folder_a, folder_b = tmp_path / "machine-a", tmp_path / "machine-b"
    remote_port = free_port()
    common = {"database_url": postgres_url, "secrets_file_fallback": True}
    settings_a = Settings.from_mapping({**common, "remote_enabled": True,
                                        "remote_host": "127.0.0.1",
                                        "remote_port": remote_port})
    save_settings(folder_a, settings_a)
    save_settings(folder_b, Settings.from_mapping(common))
    account_id = await set_up_machine_a(folder_a, settings_a, provider)
    ref = token_ref(account_id)
    store_b = own_store(folder_b)

    a, b = Serve(folder_a, free_port()), Serve(folder_b, free_port())
    outputs: list[str] = []
    try:
        await a.start()
        await a.until(a.active)
        paired = await asyncio.to_thread(hookline, folder_a, "pair", "--standby")
        found = JOIN.search(paired.stdout)
        assert found and found.group(1).endswith(f":{remote_port}"), paired.stdout
        joined = await asyncio.to_thread(hookline, folder_b, "standby", "join",
                                         found.group(1), found.group(2))
        outputs += [paired.stdout, paired.stderr, joined.stdout, joined.stderr]
        assert store_b.get(ref) is None  # B has only its token for A yet
        await b.start()
        await b.until(b.standing_by)

        # A refreshes at each run; the copy follows two rotations at least, and the kill
        # comes once B holds the refresh token the provider would honour now
        followed = provider.refreshes() + 2
        await until(lambda: provider.refreshes() >= followed and copied_refresh_token(
                        store_b, account_id) == provider.live_refresh_token(),
                    "B's copy following A's rotated refresh tokens", a, b)
        last = provider.live_refresh_token()
        sync = peer.SyncState.load(folder_b)
        caught_up = time.time()
        a.kill()
        killed_at, refreshes_before = time.monotonic(), provider.refreshes()
        asked_before, called_before = len(provider.token_requests), len(provider.api_requests)
        assert sync.last_change_at and sync.error is None, sync
        copied_after = (datetime.fromisoformat(sync.last_change_at).timestamp()
                        - provider.issued_at[last])
        assert store_b.get(client_secret_ref(PROVIDER)) == provider.client_secret

        await b.until(b.active)
        took_over = time.monotonic() - killed_at
        assert took_over < TAKEOVER, f"B took over {took_over:.1f} s after the kill"
        # the provider took every refresh token but the last: only B's copy can renew
        await until(lambda: provider.refreshes() > refreshes_before
                    and succeeded_runs_since(postgres_url, caught_up) > 0,
                    "B's run of the area as the account", a, b)
        renewals = [r for r in provider.token_requests[asked_before:]
                    if r.get("grant_type") == "refresh_token"]
        assert renewals[0]["refresh_token"] == last, "B renewed with another refresh token"
        # (a call of A's may still come in after the kill: it was under way)
        assert any(provider.issued_at.get(header.removeprefix("Bearer "), 0) > caught_up
                   for header in provider.api_requests[called_before:]), \
            "B did not call the API with a token it renewed"
        listed = await asyncio.to_thread(hookline, folder_b, "accounts", "list", "--json")
        outputs += [listed.stdout, listed.stderr]
        [account] = json.loads(listed.stdout)
        assert (account["id"], account["status"], account["last_error"]) == (
            account_id, "ok", None)
    finally:
        for engine in (a, b):
            if engine.proc is not None and engine.proc.returncode is None:
                await engine.stop()

    said_b = "".join(b.lines)
    print(f"\nA refreshed {refreshes_before} times before the kill; B had A's last refresh "
          f"token {copied_after * 1000:.0f} ms after the provider issued it "
          f"(peer-sync.json last_change_at), took over {took_over:.2f} s after the kill "
          f"(its log: {b.took_over_after} s standing by), and renewed with the copied token "
          f"{provider.refreshes() - refreshes_before} time(s) since")
    assert "copied the active engine's secrets" in said_b
    for words in ("needs reconnecting", "Reconnect your", "keyring lacks secrets"):
        assert words not in said_b, said_b
    # no token, nor the app's secret, in what either machine said, logged or stored
    written = ("".join(a.lines) + said_b + "".join(outputs)
               + "".join(p.read_text() for folder in (folder_a, folder_b)
                         for p in [*folder.glob("logs/*.log*"), *folder.glob("peer*.json")])
               + stored_bytes(folder_a, postgres_url).decode())
    for value in (*provider.issued, str(provider.client_secret)):
        assert value not in written
