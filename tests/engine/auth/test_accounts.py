"""Grants are never left alive by a reconnect or a failed sign-in; names come in clean."""

from __future__ import annotations

import pytest

from engine.app import Engine
from engine.errors import AuthError
from tests.engine.auth.conftest import (
    LookupProvider,
    RecordingBrowser,
    connect,
    heard,
    use_spec,
)

APPS = "https://acme.test/apps"


# ---------------------------------------------------------------------- reconnecting


async def test_reconnecting_revokes_the_grant_it_replaces(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser) -> None:
    for _ in range(8):  # as in the report: eight sign-ins of one person
        account = await connect(app, browser)

    refresh_tokens = [t for t in provider.issued if t.startswith("rt-")]
    assert provider.revoked == refresh_tokens[:-1]  # each replaced one, in turn
    assert provider.live_refresh_tokens() == {refresh_tokens[-1]}
    session = await app.accounts.session(account.id)
    resp = await session.get(f"{provider.base}/api/thing")
    assert resp.json()["thing"] == "ok"  # the kept grant still works
    assert [a.id for a in await app.accounts.accounts()] == [account.id]


async def test_a_reconnect_without_revocation_says_where_to_end_the_old_grant(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_spec(monkeypatch, provider, revoke_url=None, apps_url=APPS)
    await connect(app, browser)
    told = heard(app, "notification")
    await connect(app, browser)

    [note] = [n["body"] for n in told]
    assert note == ("Acme offers apps no way to revoke their access: end the access your "
                    f"earlier sign-in gave at {APPS} (if that ends this connection too, "
                    "connect again).")
    assert note in browser.visits[-1].page and "<h1>Connected</h1>" in browser.visits[-1].page
    assert provider.revoked == []


async def test_a_reconnect_the_provider_does_not_confirm_says_where_to_end_the_old_grant(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_spec(monkeypatch, provider, revoke_url=f"{provider.base}/no-such-endpoint",
             apps_url=APPS)
    await connect(app, browser)
    told = heard(app, "notification")
    await connect(app, browser)
    assert [n["body"] for n in told] == [
        "Acme did not confirm that the access your earlier sign-in gave is revoked: end it "
        f"at {APPS} (if that ends this connection too, connect again)."]


async def test_where_one_revocation_ends_every_sign_in_a_reconnect_revokes_nothing(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_spec(monkeypatch, provider, revoke_ends_every_sign_in=True)
    await connect(app, browser)
    account = await connect(app, browser)
    assert provider.revoked == []  # revoking the old grant would have ended the new one
    session = await app.accounts.session(account.id)
    assert (await session.get(f"{provider.base}/api/thing")).json()["thing"] == "ok"


# ---------------------------------------------------------------------- failed lookup


async def test_a_failed_lookup_revokes_the_grant_it_got(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser) -> None:
    provider.lookup_status = 503
    with pytest.raises(AuthError) as caught:
        await connect(app, browser)

    [access, refresh] = provider.issued
    assert provider.revoked == [refresh]
    assert provider.live_refresh_tokens() == set()
    assert str(caught.value).startswith("Acme did not say which account signed in, so "
                                        "nothing was connected: ")
    assert str(caught.value).endswith("Hookline revoked the access you just gave.")
    assert access not in str(caught.value) and refresh not in str(caught.value)
    assert await app.accounts.accounts() == []


async def test_a_failed_lookup_without_revocation_says_where_to_end_the_grant(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_spec(monkeypatch, provider, revoke_url=None, apps_url=APPS)
    provider.lookup_status = 503
    with pytest.raises(AuthError) as caught:
        await connect(app, browser)

    end = ("Acme offers apps no way to revoke their access: end the access you just gave "
           f"at {APPS}.")
    assert str(caught.value).endswith(end)
    assert end in browser.visits[0].page
    assert provider.revoked == []


async def test_a_failed_lookup_on_reconnect_keeps_the_account_as_it_was(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser) -> None:
    account = await connect(app, browser)
    kept = await app.accounts.load_tokens(account.id)
    provider.lookup_status = 503
    with pytest.raises(AuthError, match="Hookline revoked the access you just gave"):
        await connect(app, browser)

    assert provider.revoked == [provider.issued[-1]]  # the new grant, not the kept one
    assert await app.accounts.load_tokens(account.id) == kept
    provider.lookup_status = 200
    session = await app.accounts.session(account.id)
    assert (await session.get(f"{provider.base}/api/thing")).json()["thing"] == "ok"


async def test_where_one_revocation_ends_every_sign_in_a_failed_lookup_spares_the_rest(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_spec(monkeypatch, provider, revoke_ends_every_sign_in=True, apps_url=APPS)
    account = await connect(app, browser)
    provider.lookup_status = 503
    with pytest.raises(AuthError) as caught:
        await connect(app, browser)

    assert provider.revoked == []  # it would have ended the connected account's access
    assert str(caught.value).endswith(
        "Hookline did not revoke the access you just gave, as Acme would end your "
        f"connected account's access with it; it is listed at {APPS}.")
    assert [a.id for a in await app.accounts.accounts()] == [account.id]


# ---------------------------------------------------------------------- names


@pytest.mark.parametrize(("login", "shown"), [
    ("\x1b[31mmarta\x1b[0m\x1b]0;pwned\x07", "marta"),
    ("marta\nroot\r\tadmin", "marta root admin"),
    ("marta\u202egpj.exe\u2066\u200b", "martagpj.exe"),
    ("\x00m\x7fa\x90rta\x07\x9b2J", "marta"),
    ("Zoë 🙂 👩\u200d💻", "Zoë 🙂 👩\u200d💻"),
])
async def test_the_name_a_provider_gives_is_kept_printable(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser, login: str,
        shown: str) -> None:
    provider.login = login
    changed = heard(app, "account.changed")
    account = await connect(app, browser)

    assert account.name == shown
    assert [a.describe()["name"] for a in await app.accounts.accounts()] == [shown]
    assert [c["name"] for c in changed] == [shown]
    again = await connect(app, browser)  # the same person: the same account
    assert again.id == account.id


async def test_a_name_given_with_a_pasted_token_is_kept_printable(app: Engine) -> None:
    account = await app.accounts.add_token("acme", "pasted-secret", "\x1b[2Jbot\n1")
    assert account.name == "bot 1"
