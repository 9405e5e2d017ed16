"""Custom OAuth 2 providers: what a definition accepts, and `hookline accounts custom`
from adding one to connecting, listing and removing its account."""

from __future__ import annotations

import pytest

from engine.auth.custom import NAME_FIELDS, CustomProvider
from engine.errors import ValidationError
from tests.engine.oauth_provider import Provider
from tests.engine.test_accounts import run, threaded_provider  # noqa: F401

GITEA = "https://git.example"


def problems(**given: str) -> dict[str, str]:
    """Each field's problem with a definition (none: {})."""
    fields = {"name": "my-gitea", "authorize_url": f"{GITEA}/login/oauth/authorize",
              "token_url": f"{GITEA}/login/oauth/access_token", **given}
    try:
        CustomProvider.checked(fields.pop("name"), fields.pop("authorize_url"),
                               fields.pop("token_url"), taken=("github",), **fields)
    except ValidationError as exc:
        return {p.where: p.problem for p in exc.problems}
    return {}


def test_a_definition_keeps_what_was_entered() -> None:
    provider = CustomProvider.checked(
        " My-Gitea ", f"{GITEA}/login/oauth/authorize", f"{GITEA}/login/oauth/access_token",
        "read:repository  read:user", f"{GITEA}/api/v1/user", revoke_url=None)
    assert provider.name == "my-gitea"
    assert provider.scopes == ("read:repository", "read:user")
    assert provider.name_fields == NAME_FIELDS == ("login", "name", "email", "sub")
    service = provider.service()
    assert (service.id, service.needs_account, service.oauth is not None) == (
        "my-gitea", True, True)
    assert service.triggers == {} and service.reactions == {}


def test_plain_http_is_refused_except_to_this_computer() -> None:
    assert problems(authorize_url="http://git.example/login/oauth/authorize") == {
        "authorize_url": "the authorize URL must start with https://: over plain http "
                         "anyone on the network could read the codes and tokens (http is "
                         "allowed only for 127.0.0.1 and localhost)"}
    assert problems(authorize_url="http://127.0.0.1:3000/login/oauth/authorize",
                    token_url="http://localhost:3000/login/oauth/access_token",
                    userinfo_url="http://[::1]:3000/api/v1/user") == {}


def test_every_problem_of_a_definition_is_said_at_once() -> None:
    assert problems(name="My Gitea!", authorize_url="ftp://git.example/auth", token_url="",
                    userinfo_url="git.example/api/v1/user",
                    revoke_url="https://me:pw@git.example/revoke") == {
        "name": "use lowercase letters, digits and dashes (up to 40), e.g. my-gitea",
        "authorize_url": "the authorize URL must be a web address starting with https://",
        "token_url": "give the token URL",
        "userinfo_url": "the user-info URL must be a web address starting with https://",
        "revoke_url": "the revoke URL must not hold a user name or password"}


def test_a_provider_cannot_take_a_built_in_services_name() -> None:
    assert problems(name="github") == {
        "name": "“github” is the name of a built-in service: choose another, e.g. my-github"}


def test_the_custom_command_from_adding_a_provider_to_removing_it(
        threaded_provider: Provider, browser_that_approves: list[str],  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    p = threaded_provider
    code, out, _ = run(capsys, "accounts", "custom", "add", "my-app",
                       "--authorize-url", f"{p.base}/authorize", "--token-url",
                       f"{p.base}/token", "--scopes", "read write", "--userinfo-url",
                       f"{p.base}/userinfo", "--revoke-url", f"{p.base}/revoke",
                       "--client-id", p.client_id)
    assert code == 0
    assert out.splitlines() == [
        "saved the custom provider “my-app” (client ID in the database)",
        "Its OAuth app's redirect URI must be http://127.0.0.1/callback (any port)",
        "next: hookline accounts connect my-app"]

    code, out, _ = run(capsys, "accounts", "connect", "my-app")
    assert code == 0 and "connected my-app account “marta”" in out
    assert "<h1>Connected</h1>" in browser_that_approves[0]
    [asked] = p.authorize_requests
    assert asked["scope"] == "read write" and asked["code_challenge_method"] == "S256"

    code, out, _ = run(capsys, "accounts", "list")
    [line] = out.splitlines()
    assert line.split()[1:4] == ["my-app", "marta", "ok"]
    code, out, _ = run(capsys, "accounts", "custom", "list")
    assert out.splitlines()[0].split() == ["my-app", f"{p.base}/authorize", "1", "account(s)"]

    code, _, err = run(capsys, "accounts", "custom", "remove", "my-app")
    assert code == 2 and err.strip() == (
        "hookline: “my-app” still has 1 account(s): remove them first (`hookline accounts "
        "remove my-app:marta`; all: my-app:marta)")

    code, out, _ = run(capsys, "accounts", "remove", "my-app:marta")
    assert code == 0 and "my-app confirmed that the access you gave is revoked." in out
    assert p.revoked == [t for t in p.issued if t.startswith("rt-")]
    code, out, _ = run(capsys, "accounts", "custom", "remove", "my-app")
    assert code == 0
    assert out.strip() == "removed the custom provider “my-app”, its client ID and secret"
    code, _, err = run(capsys, "accounts", "connect", "my-app")
    assert code == 2 and "my-app" in err


def test_a_wrong_definition_is_refused_naming_each_option(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "accounts", "custom", "add", "my-gitea",
                       "--authorize-url", "http://git.example/login/oauth/authorize",
                       "--token-url", "git.example/login/oauth/access_token",
                       "--client-id", "abc")
    assert code == 2
    assert err.strip() == (
        "hookline: --authorize-url: the authorize URL must start with https://: over plain "
        "http anyone on the network could read the codes and tokens (http is allowed only "
        "for 127.0.0.1 and localhost); --token-url: the token URL must be a web address "
        "starting with https://")
    code, out, _ = run(capsys, "accounts", "custom", "list")
    assert out.startswith("No custom providers yet.")
