"""The HTTP service acting as a custom OAuth 2 account of a self-hosted Gitea: connected
through the real loopback sign-in, its token carried and renewed, its trouble said."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.auth import Account
from engine.auth.custom import CustomProvider, add_provider
from engine.errors import AuthError, PermanentError
from engine.registry import Registry
from engine.settings import Settings
from integrations import http as http_service
from tests.engine.conftest import FAST, next_message
from tests.integrations.fake_gitea import FakeGitea

ISSUES = "/api/v1/repos/marta/notes/issues"
COMMENTS = "/api/v1/repos/marta/notes/issues/4/comments"
SCOPES = "read:repository write:issue read:user"


@pytest.fixture
async def gitea() -> AsyncIterator[FakeGitea]:
    server = FakeGitea()
    await server.start()
    yield server
    await server.aclose()


@pytest.fixture
async def engine(data_dir: Path) -> AsyncIterator[Engine]:
    app = Engine(data_dir, settings=Settings.from_mapping(FAST),
                 registry=Registry.load(plugins=False))
    await app.start()
    yield app
    if app.started:
        await app.aclose()


async def connect(engine: Engine, gitea: FakeGitea) -> Account:
    """Declare the Gitea as ``my-gitea``, then sign in through the browser."""
    provider = CustomProvider.checked(
        "my-gitea", f"{gitea.base}/login/oauth/authorize",
        f"{gitea.base}/login/oauth/access_token", SCOPES, f"{gitea.base}/api/v1/user")
    await add_provider(engine.accounts, provider, gitea.client_id, gitea.client_secret)
    return await engine.accounts.connect("my-gitea", browser=gitea.browser, timeout=10)


def issues_area(gitea: FakeGitea, account: str = "marta") -> AreaSpec:
    """New issue in marta/notes → comment on it, both as the Gitea account."""
    comment = '{"body": {{ ("Seen: " ~ trigger.value) | tojson }}}'
    return AreaSpec.from_dict({
        "name": "Gitea issues",
        "trigger": {"service": "http", "trigger": "json_value_changed", "account": account,
                    "params": {"url": gitea.base + ISSUES, "path": "[0].title"}},
        "reactions": [{"service": "http", "reaction": "request", "account": account,
                       "params": {"method": "POST", "url": gitea.base + COMMENTS,
                                  "body": comment}}]})


async def poll(engine: Engine, spec: AreaSpec) -> dict[str, Any]:
    """What the area's trigger sees now (its account linked as a save links it)."""
    return dict((await engine.sample((await engine.check(spec)).spec)).payload)


async def latest_access(engine: Engine, account: Account) -> str:
    tokens = await engine.accounts.load_tokens(account.id)
    assert tokens is not None
    return tokens.access_token


async def test_an_area_acts_as_the_gitea_account_it_connected(
        engine: Engine, gitea: FakeGitea) -> None:
    account = await connect(engine, gitea)

    assert (account.service_id, account.name, account.kind) == ("my-gitea", "marta", "oauth2")
    assert account.scopes == SCOPES.split()
    [asked] = gitea.authorize_requests
    assert asked["scope"] == SCOPES and asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"].startswith("http://127.0.0.1:")
    [exchange] = gitea.token_requests
    assert exchange["code_verifier"] and exchange["client_secret"] == gitea.client_secret

    saved = await engine.create_area(issues_area(gitea))
    assert saved.spec.trigger.account == account.id  # linked by name, kept by id
    result = await engine.test_area(saved.spec, area_id=saved.id, live=True)

    assert result["trigger"]["value"] == "Backups stopped on the NAS"
    [comment] = result["reactions"]
    assert comment["status"] == "succeeded", comment
    assert comment["output"]["json"]["body"] == "Seen: Backups stopped on the NAS"
    bearer = f"Bearer {await latest_access(engine, account)}"
    assert gitea.api_requests[1:] == [("GET", ISSUES, bearer), ("POST", COMMENTS, bearer)]


async def test_a_token_about_to_expire_is_renewed_before_the_poll(
        engine: Engine, gitea: FakeGitea) -> None:
    gitea.expires_in = 30  # under a minute left: renewed before use
    account = await connect(engine, gitea)
    first = await engine.accounts.load_tokens(account.id)
    gitea.expires_in = 3600

    seen = await poll(engine, issues_area(gitea))

    assert seen["value"] == "Backups stopped on the NAS"
    assert gitea.refreshes() == 1
    renewed = await engine.accounts.load_tokens(account.id)
    assert first is not None and renewed is not None
    assert renewed.refresh_token == gitea.issued[-1] != first.refresh_token  # rotated, kept
    assert gitea.api_requests[-1] == ("GET", ISSUES, f"Bearer {renewed.access_token}")


async def test_a_refused_token_is_renewed_once_and_the_request_sent_again(
        engine: Engine, gitea: FakeGitea) -> None:
    account = await connect(engine, gitea)
    gitea.expire_access_tokens()  # Gitea forgot them before they said they expire

    seen = await poll(engine, issues_area(gitea))

    assert seen["value"] == "Backups stopped on the NAS"
    assert gitea.refreshes() == 1
    [refused, retried] = [r for r in gitea.api_requests if r[1] == ISSUES]
    assert refused[2] != retried[2] == f"Bearer {await latest_access(engine, account)}"


async def test_a_token_refused_after_renewal_asks_to_reconnect(
        engine: Engine, gitea: FakeGitea) -> None:
    account = await connect(engine, gitea)
    gitea.refuse_api = True
    told = next_message(engine, "account.needs_reconnect")

    with pytest.raises(AuthError) as caught:
        await poll(engine, issues_area(gitea))

    assert str(caught.value) == (
        "my-gitea account “marta” needs reconnecting (127.0.0.1 refused its access token "
        "even after it was renewed (HTTP 401)): reconnect the account in Hookline "
        "(Accounts, or `hookline accounts connect my-gitea`)")
    assert (await told).data["account_id"] == account.id
    assert gitea.refreshes() == 1
    [stored] = await engine.accounts.accounts()
    assert stored.status == "needs_reconnect"
    calls = len(gitea.api_requests)
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll(engine, issues_area(gitea))
    assert len(gitea.api_requests) == calls  # not asked again until reconnected


async def test_a_dead_refresh_token_asks_to_reconnect_and_a_reconnect_mends_it(
        engine: Engine, gitea: FakeGitea) -> None:
    await connect(engine, gitea)
    gitea.expire_access_tokens()
    gitea.revoke_refresh_tokens()

    with pytest.raises(AuthError) as caught:
        await poll(engine, issues_area(gitea))
    assert "needs reconnecting (127.0.0.1 refused to refresh the access: invalid_grant" \
        in str(caught.value)
    assert "`hookline accounts connect my-gitea`" in str(caught.value)

    await engine.accounts.connect("my-gitea", browser=gitea.browser, timeout=10)
    [account] = await engine.accounts.accounts()
    assert account.status == "ok"
    assert (await poll(engine, issues_area(gitea)))["value"] == "Backups stopped on the NAS"


async def test_removing_the_account_says_to_end_its_access_at_gitea(
        engine: Engine, gitea: FakeGitea) -> None:
    account = await connect(engine, gitea)
    removal = await engine.accounts.remove(account.id)
    assert not removal.revoked  # Gitea has no revocation endpoint
    assert removal.note == ("my-gitea offers apps no way to revoke their access: end it in "
                            "your my-gitea account's settings, under connected apps.")
    assert await engine.accounts.load_tokens(account.id) is None


async def test_the_token_is_never_sent_over_plain_http_to_another_computer(
        engine: Engine, gitea: FakeGitea) -> None:
    await connect(engine, gitea)
    spec: dict[str, Any] = issues_area(gitea).to_dict()
    spec["trigger"]["params"]["url"] = "http://git.example/api/v1/repos/marta/notes/issues"
    with pytest.raises(PermanentError, match="only over https"):
        await poll(engine, AreaSpec.from_dict(spec))
    assert [r for r in gitea.api_requests if r[1] == ISSUES] == []


@pytest.mark.parametrize("url", [
    "https://collector.example/steal",  # an address an event could put in the step
    "https://git.example.evil/api/v1/user",
])
async def test_the_token_goes_only_to_the_providers_address(
        engine: Engine, gitea: FakeGitea, url: str) -> None:
    await connect(engine, gitea)
    spec: dict[str, Any] = issues_area(gitea).to_dict()
    spec["trigger"]["params"]["url"] = url
    with pytest.raises(PermanentError, match="is not at my-gitea's address"):
        await poll(engine, AreaSpec.from_dict(spec))
    assert [r for r in gitea.api_requests if r[1] == ISSUES] == []


def test_a_provider_s_site_is_its_host_and_the_rest_of_its_domain() -> None:
    same, home = http_service._same_site, "auth.example.org"
    assert same("auth.example.org", home) and same("api.example.org", home)
    assert same("example.org", home)
    assert not same("example.org.evil", home) and not same("evilexample.org", home)
    assert same("localhost", "127.0.0.1") and not same("127.0.0.2", "127.0.0.1")
    assert not same("10.0.0.6", "10.0.0.5")


async def test_an_http_step_takes_only_a_custom_account(
        engine: Engine, gitea: FakeGitea) -> None:
    await connect(engine, gitea)
    await engine.accounts.store.save(Account("gh-1", "github", "api_key", "octocat", []))

    with pytest.raises(Exception, match="HTTP acts only as an account of a custom OAuth 2 "
                                        "provider, and none named 'octocat' is connected: "
                                        "choose one of my-gitea:marta"):
        await engine.create_area(issues_area(gitea, account="octocat"))
    area = await engine.create_area(issues_area(gitea, account="my-gitea:marta"))
    assert area.spec.trigger.account is not None
