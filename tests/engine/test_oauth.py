"""Connecting an account through OAuth 2 against a local provider, and using its tokens."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from engine import ApiKeySpec
from engine.app import Engine
from engine.auth import NEEDS_RECONNECT, Account
from engine.auth.oauth import LoopbackRedirect
from engine.errors import AuthError, SecretError
from engine.registry import BUILTIN_MODULES, Registry
from engine.secrets import MemorySecretStore, SecretStore
from engine.settings import Settings
from tests.engine import account_probe
from tests.engine.conftest import FAST, next_message
from tests.engine.oauth_provider import Provider, follow
from tests.integrations.provider import FakeProvider, Reply, serve


def registry() -> Registry:
    return Registry.load(modules=(*BUILTIN_MODULES, "tests.engine.probe",
                                  "tests.engine.account_probe"), plugins=False)


@pytest.fixture
async def provider(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Provider]:
    server = Provider()
    await server.start()
    monkeypatch.setattr(account_probe.service, "oauth", server.spec())
    yield server
    await server.aclose()


async def start_engine(data_dir: Path, secrets: SecretStore | None = None) -> Engine:
    app = Engine(data_dir, settings=Settings.from_mapping(FAST), registry=registry(),
                 secrets=secrets)
    await app.start()
    return app


@pytest.fixture
async def app(data_dir: Path, provider: Provider) -> AsyncIterator[Engine]:
    engine = await start_engine(data_dir)
    yield engine
    await engine.aclose()


async def connect(app: Engine, provider: Provider, **kwargs: object) -> Account:
    await app.accounts.set_client("acme", provider.client_id, provider.client_secret)
    return await app.accounts.connect("acme", browser=kwargs.pop("browser", follow()),
                                      **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the flow


async def test_connect_uses_pkce_and_names_the_account(app: Engine, provider: Provider
                                                       ) -> None:
    shown: list[tuple[str, str]] = []
    seen: list[tuple[str, int, str]] = []
    account = await connect(app, provider, browser=follow(seen),
                            show=lambda url, uri: shown.append((url, uri)))

    assert account.name == "marta" and account.service_id == "acme"
    assert account.status == "ok" and account.scopes == ["read", "write"]
    [asked] = provider.authorize_requests
    assert asked["scope"] == "read write" and asked["code_challenge_method"] == "S256"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", asked["redirect_uri"])
    assert shown[0][1] == asked["redirect_uri"]
    [exchange] = provider.token_requests
    assert exchange["redirect_uri"] == asked["redirect_uri"]
    assert len(exchange["code_verifier"]) >= 43  # the provider checked its S256
    assert "code_verifier" not in shown[0][0]
    assert seen[0][1] == 200 and "You can close this tab" in seen[0][2]
    tokens = await app.accounts.load_tokens(account.id)
    assert tokens is not None and tokens.access_token == provider.issued[0]
    assert tokens.refresh_token == provider.issued[1]
    assert provider.issued[0] not in repr(tokens)


async def test_extra_authorize_parameters_reach_the_provider(
        app: Engine, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_probe.service, "oauth",
                        provider.spec(extra_authorize_params={"token_access_type": "offline"}))
    await connect(app, provider)
    assert provider.authorize_requests[0]["token_access_type"] == "offline"


async def test_declined_access_connects_nothing(app: Engine, provider: Provider) -> None:
    provider.decision = "deny"
    seen: list[tuple[str, int, str]] = []
    with pytest.raises(AuthError, match="declined in the browser"):
        await connect(app, provider, browser=follow(seen))
    assert provider.token_requests == []
    assert await app.accounts.accounts() == []
    assert "Access was not granted" in seen[0][2]


async def test_a_wrong_state_is_refused_and_no_code_is_exchanged(
        app: Engine, provider: Provider) -> None:
    seen: list[tuple[str, int, str]] = []
    forged = follow(seen, tamper=lambda url: re.sub(r"state=[^&]+", "state=forged", url))
    with pytest.raises(AuthError, match="does not belong to this sign-in"):
        await connect(app, provider, browser=forged)
    assert provider.token_requests == []
    assert seen[0][1] == 400
    assert await app.accounts.accounts() == []


async def test_the_callback_is_taken_once() -> None:
    redirect = LoopbackRedirect("127.0.0.1", 0, "state-1")
    uri = await redirect.start()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{uri}?code=first&state=state-1") as first:
            assert first.status == 200
        async with session.get(f"{uri}?code=second&state=state-1") as second:
            assert second.status == 410 and "already received" in await second.text()
        assert await redirect.wait(1) == {"code": "first", "state": "state-1"}
        await redirect.aclose()
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"{uri}?code=third&state=state-1")


async def test_replaying_the_callback_after_connecting_exchanges_nothing(
        app: Engine, provider: Provider) -> None:
    seen: list[tuple[str, int, str]] = []
    await connect(app, provider, browser=follow(seen))
    callback = seen[0][0]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(callback)
    assert provider.exchanges() == 1


async def test_no_answer_times_out_and_closes_the_listener(app: Engine, provider: Provider
                                                           ) -> None:
    shown: list[str] = []

    async def closed_tab(url: str) -> None:
        return None

    with pytest.raises(AuthError, match=r"No answer from the browser within 0\.2 s"):
        await connect(app, provider, browser=closed_tab, timeout=0.2,
                      show=lambda url, uri: shown.append(uri))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(shown[0])


async def test_without_an_oauth_app_the_error_shows_what_to_register(app: Engine) -> None:
    with pytest.raises(AuthError) as caught:
        await app.accounts.connect("acme", browser=follow())
    assert "redirect URI http://127.0.0.1/callback" in str(caught.value)
    assert "hookline accounts client acme CLIENT_ID" in str(caught.value)


async def test_a_wrong_client_secret_is_reported(app: Engine, provider: Provider,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    provider.client_secret = "right-secret"
    monkeypatch.setattr(account_probe.service, "oauth", provider.spec())
    await app.accounts.set_client("acme", provider.client_id, "wrong-secret")
    with pytest.raises(AuthError, match="refused to exchange the sign-in code: invalid_client"):
        await app.accounts.connect("acme", browser=follow())


# ---------------------------------------------------------------------- tokens


async def test_an_expiring_token_is_refreshed_once_for_ten_callers(
        app: Engine, provider: Provider) -> None:
    provider.expires_in = 30  # inside the 60 s margin: the next use refreshes
    account = await connect(app, provider)
    old_refresh = provider.issued[1]
    provider.expires_in, provider.token_delay = 3600, 0.05
    session = await app.accounts.session(account.id)

    tokens = await asyncio.gather(*(session.token() for _ in range(10)))

    assert len(set(tokens)) == 1 and provider.refreshes() == 1
    [refresh] = [r for r in provider.token_requests if r["grant_type"] == "refresh_token"]
    assert refresh["refresh_token"] == old_refresh
    stored = await app.accounts.load_tokens(account.id)
    assert stored is not None and stored.access_token == tokens[0]
    assert stored.refresh_token == provider.issued[-1]  # the rotated one was kept
    row = await app.accounts.store.get(account.id)
    assert row is not None and row.last_refresh_at is not None
    assert await session.token() == tokens[0]  # fresh now: no second refresh
    assert provider.refreshes() == 1


async def test_a_refused_token_is_refreshed_once_and_the_calls_retried(
        app: Engine, provider: Provider) -> None:
    account = await connect(app, provider)
    session = await app.accounts.session(account.id)
    provider.expire_access_tokens()
    provider.token_delay = 0.05

    answers = await asyncio.gather(*(session.request("GET", f"{provider.base}/api/thing")
                                     for _ in range(10)))

    assert [a.json()["thing"] for a in answers] == ["ok"] * 10
    assert provider.refreshes() == 1


async def test_the_rotated_refresh_token_is_saved_before_the_new_access_token_is_used(
        data_dir: Path, provider: Provider) -> None:
    class Refusing(MemorySecretStore):
        refuse = False

        def _set_one(self, ref: str, value: str) -> None:
            if self.refuse:
                raise SecretError("Cannot save a secret in the OS keyring: locked")
            super()._set_one(ref, value)

    store = Refusing()
    app = await start_engine(data_dir, store)
    try:
        provider.expires_in = 30
        account = await connect(app, provider)
        session = await app.accounts.session(account.id)
        store.refuse = True
        with pytest.raises(SecretError, match="locked"):
            await session.request("GET", f"{provider.base}/api/thing")
        assert provider.refreshes() == 1
        new_access = provider.issued[-2]
        assert not any(new_access in header for header in provider.api_requests)
    finally:
        await app.aclose()


async def test_a_pasted_token_is_sent_as_its_service_says_and_an_oauth_token_as_bearer(
        app: Engine, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_probe.service, "api_key", ApiKeySpec(
        "Acme token", authorize=lambda token: {"Authorization": f"Key {token}",
                                               "X-Acme-Version": "2"}))
    pasted = await app.accounts.add_token("acme", "pasted-secret", name="bot")
    connected = await connect(app, provider)  # the same service, through OAuth
    api = FakeProvider()
    api.on("GET", "/thing", Reply({"thing": "ok"}))
    async with serve(api.handle) as base:
        for account in (pasted, connected):
            session = await app.accounts.session(account.id)
            resp = await session.get(f"{base}/thing", headers={"Accept": "application/json"})
            assert resp.json() == {"thing": "ok"}

    key, oauth = api.seen
    assert key.headers["Authorization"] == "Key pasted-secret"
    assert key.headers["X-Acme-Version"] == "2" and key.headers["Accept"] == "application/json"
    assert oauth.headers["Authorization"] == f"Bearer {provider.issued[0]}"
    assert "X-Acme-Version" not in oauth.headers


async def test_a_refused_pasted_token_asks_for_reconnecting(
        app: Engine, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_probe.service, "api_key", ApiKeySpec(
        "Acme token", authorize=lambda token: {"Authorization": f"Key {token}"}))
    account = await app.accounts.add_token("acme", "revoked-secret", name="bot")
    session = await app.accounts.session(account.id)
    needs = next_message(app, "account.needs_reconnect")
    api = FakeProvider()
    api.on("GET", "/thing", Reply({"error": "revoked"}, status=401))
    async with serve(api.handle) as base:
        with pytest.raises(AuthError, match=r"needs reconnecting.*accounts token acme"):
            await session.get(f"{base}/thing", check=False)

    assert (await needs).data["account_id"] == account.id
    row = await app.accounts.store.get(account.id)
    assert row is not None and row.status == NEEDS_RECONNECT
    assert len(api.seen) == 1 and api.seen[0].headers["Authorization"] == "Key revoked-secret"


async def test_a_revoked_refresh_token_asks_for_reconnecting(app: Engine,
                                                             provider: Provider) -> None:
    provider.expires_in = 30
    account = await connect(app, provider)
    session = await app.accounts.session(account.id)
    provider.revoke_refresh_tokens()
    needs = next_message(app, "account.needs_reconnect")
    note = next_message(app, "notification")

    with pytest.raises(AuthError, match="reconnect the account in Hookline") as caught:
        await session.token()

    assert "Acme account “marta” needs reconnecting" in str(caught.value)
    assert "invalid_grant" in str(caught.value)
    message = await needs
    assert message.data["account_id"] == account.id and message.data["name"] == "marta"
    assert "Reconnect your Acme account “marta”" in (await note).data["title"]
    row = await app.accounts.store.get(account.id)
    assert row is not None and row.status == NEEDS_RECONNECT
    assert row.last_error is not None and "invalid_grant" in row.last_error
    asked = len(provider.token_requests)
    with pytest.raises(AuthError, match="needs reconnecting"):
        await session.token()
    assert len(provider.token_requests) == asked  # no pointless calls while signed out

    provider.expires_in = 3600
    again = await connect(app, provider)  # reconnecting the same account revives it
    assert again.id == account.id and again.status == "ok"
    assert await session.token() == provider.issued[-2]


async def test_removing_an_account_revokes_it_and_deletes_its_tokens(
        app: Engine, provider: Provider) -> None:
    account = await connect(app, provider)
    session = await app.accounts.session(account.id)
    changed = next_message(app, "account.changed", lambda m: m.data["change"] == "removed")
    removal = await app.accounts.remove(account.id)
    assert provider.revoked == [provider.issued[1]]
    assert removal.revoked
    assert removal.note == "Acme confirmed that the access you gave is revoked."
    assert await app.accounts.load_tokens(account.id) is None
    assert await app.accounts.accounts() == []
    assert (await changed).data["name"] == "marta"
    with pytest.raises(AuthError, match="was removed: choose another account"):
        await session.token()


async def test_a_provider_that_refuses_to_revoke_does_not_keep_the_account(
        app: Engine, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_probe.service, "oauth", provider.spec(
        revoke_url=f"{provider.base}/no-such-endpoint", apps_url="https://acme.test/apps"))
    account = await connect(app, provider)
    removal = await app.accounts.remove(account.id)
    assert not removal.revoked
    assert removal.note == ("Acme did not confirm that the access you gave is revoked: end "
                            "it at https://acme.test/apps.")
    assert await app.accounts.accounts() == []
    assert await app.accounts.load_tokens(account.id) is None


async def test_a_service_revoke_call_that_crashes_does_not_keep_the_account(
        app: Engine, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(session: object, client: object) -> bool:
        raise KeyError("a bug in the service")

    monkeypatch.setattr(account_probe.service, "oauth", provider.spec(revoke=broken))
    account = await connect(app, provider)
    removal = await app.accounts.remove(account.id)
    assert not removal.revoked and "end it in your Acme account's settings" in removal.note
    assert await app.accounts.accounts() == []


async def test_a_provider_without_revocation_says_where_to_end_the_access(
        app: Engine, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_probe.service, "oauth", provider.spec(revoke_url=None))
    account = await connect(app, provider)
    removal = await app.accounts.remove(account.id)
    assert provider.revoked == [] and not removal.revoked
    assert removal.note == ("Acme offers apps no way to revoke their access: end it in your "
                            "Acme account's settings, under connected apps.")


async def test_revoking_an_access_token_sends_a_live_one(
        app: Engine, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_probe.service, "oauth",
                        provider.spec(revoke_token="access_token"))
    provider.expires_in = 30  # inside the refresh margin: as good as expired
    account = await connect(app, provider)
    expired = provider.issued[0]
    provider.expires_in = 3600
    removal = await app.accounts.remove(account.id)
    assert removal.revoked and provider.refreshes() == 1
    assert provider.revoked == [provider.issued[-2]] != [expired]  # the refreshed one
    assert provider.revoked[0].startswith("at-")


async def test_removing_a_pasted_token_says_it_still_works_at_the_provider(
        app: Engine, provider: Provider) -> None:
    pasted = await app.accounts.add_token("acme", "pasted-secret", name="bot")
    removal = await app.accounts.remove(pasted.id)
    assert provider.revoked == [] and not removal.revoked
    assert removal.note == "Acme still accepts the token you pasted until you revoke it there."


def test_providers_that_want_http_basic_get_it() -> None:
    import base64

    from engine.auth.oauth import OAuthClient, _authenticated
    from engine.catalog.auth import OAuth2Spec

    form = {"grant_type": "refresh_token", "refresh_token": "r", "client_id": "app id"}
    basic = OAuth2Spec("https://p.example/a", "https://p.example/t", client_auth="basic")
    sent, headers = _authenticated(basic, OAuthClient("app id", "s3:cret"), form)
    assert "client_id" not in sent
    assert "client_secret" not in sent
    assert base64.b64decode(headers["Authorization"].split()[1]) == b"app%20id:s3%3Acret"
    body = OAuth2Spec("https://p.example/a", "https://p.example/t")
    sent, headers = _authenticated(body, OAuthClient("app id", "s3:cret"), form)
    assert sent["client_id"] == "app id"
    assert sent["client_secret"] == "s3:cret"
    assert headers == {}
