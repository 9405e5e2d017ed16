"""GitHub against a local server that answers with GitHub-shaped responses."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine import AuthError, OAuthClient, PermanentError, RateLimited, TransientError
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import github
from tests.integrations.provider import FakeProvider, Reply, Seen, load_fixture, serve

TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
REPO = "marta-kowal/garden-sensors"
REPO_PATH = f"/repos/{REPO}"


def fixture(name: str) -> Any:
    return load_fixture("github_api", name)


@pytest.fixture
async def gh(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(
        not_found=Reply(fixture("error_not_found.json"), status=404),
        match_query=("page",),
        json_body=True,
    )
    async with serve(fake.handle) as fake.base:
        monkeypatch.setattr(github.service, "api_base_url", fake.base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(github.service, TOKEN, http, name="marta-kowal")


def poll(
    trigger: str,
    params: dict[str, Any],
    http: HttpClient,
    account: AccountSession,
    state: dict[str, Any] | None = None,
) -> Any:
    ctx = poll_context(github.service.triggers[trigger], params, http, state=state)
    ctx.account = account
    spec = github.service.triggers[trigger]
    assert spec.poll is not None
    return spec.poll(ctx)


def react(
    reaction: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = github.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


def assert_api_headers(seen: Seen, accept: str = "application/vnd.github+json") -> None:
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Accept"] == accept
    assert seen.headers["X-GitHub-Api-Version"] == "2022-11-28"


# ---------------------------------------------------------------------- triggers


async def test_new_issue_lists_issues_without_pull_requests_and_uses_the_etag(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    gh.on("GET", f"{REPO_PATH}/issues", Reply(fixture("issues.json"), etag='W/"5c7e1f"'))
    state: dict[str, Any] = {}

    result = await poll("new_issue", {"repo": REPO}, http, account, state)

    [first] = gh.seen
    assert (first.method, first.path) == ("GET", f"{REPO_PATH}/issues")
    assert first.query == {"state": "all", "sort": "created", "direction": "desc", "per_page": "50"}
    assert_api_headers(first)
    assert "If-None-Match" not in first.headers
    assert [i.key for i in result.items] == ["2715544120", "2712093384"]  # #18 is a PR
    issue = result.items[1].data
    assert issue == {
        "number": 17,
        "title": "Soil moisture reads 0% after firmware 1.4",
        "body": "Since updating to 1.4, every sensor reports 0%.",
        "url": f"https://github.com/{REPO}/issues/17",
        "author": "jonas-eberle",
        "labels": ["bug"],
        "created_at": "2025-03-14T09:26:53Z",
        "repo": REPO,
    }
    assert result.items[0].data["labels"] == ["bug", "help wanted"]

    again = await poll("new_issue", {"repo": REPO}, http, account, state)
    assert gh.seen[1].headers["If-None-Match"] == 'W/"5c7e1f"'
    assert again.not_modified and again.items == []


async def test_new_issue_label_filter_goes_to_github(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    gh.on("GET", f"{REPO_PATH}/issues", Reply(fixture("issues.json")[:1]))
    await poll("new_issue", {"repo": REPO, "labels": "bug, help wanted"}, http, account)
    assert gh.seen[0].query["labels"] == "bug,help wanted"


async def test_new_pull_request(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    gh.on("GET", f"{REPO_PATH}/pulls", Reply(fixture("pulls.json")))
    result = await poll("new_pull_request", {"repo": f"https://github.com/{REPO}"}, http, account)
    [seen] = gh.seen
    assert seen.path == f"{REPO_PATH}/pulls"
    assert seen.query == {"state": "all", "sort": "created", "direction": "desc", "per_page": "50"}
    assert_api_headers(seen)
    assert [i.key for i in result.items] == ["2390175748", "2371002219"]
    assert result.items[0].data == {
        "number": 18,
        "title": "Calibrate moisture against firmware 1.4",
        "body": "Fixes #17.",
        "url": f"https://github.com/{REPO}/pull/18",
        "author": "marta-kowal",
        "head": "fix-moisture",
        "base": "main",
        "draft": False,
        "created_at": "2025-03-14T10:02:11Z",
        "repo": REPO,
    }
    assert result.items[1].data["draft"] is True


async def test_new_star_asks_for_star_times_and_lists_newest_first(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    gh.on("GET", f"{REPO_PATH}/stargazers", Reply(fixture("stargazers.json"), etag='"s1"'))
    state: dict[str, Any] = {}
    result = await poll("new_star", {"repo": REPO}, http, account, state)
    [seen] = gh.seen
    assert seen.query == {"per_page": "100", "page": "1"}
    assert_api_headers(seen, accept="application/vnd.github.star+json")
    assert [i.data["user"] for i in result.items] == ["hubot", "octocat"]
    assert result.items[0].key == "hubot@2025-03-14T11:45:00Z"
    assert result.items[0].data == {
        "user": "hubot",
        "user_url": "https://github.com/hubot",
        "starred_at": "2025-03-14T11:45:00Z",
        "repo": REPO,
    }
    again = await poll("new_star", {"repo": REPO}, http, account, state)
    assert again.not_modified and len(gh.seen) == 2


async def test_new_star_follows_the_last_page(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    last = f"<{gh.base}{REPO_PATH}/stargazers?per_page=100&page=2>"
    gh.on(
        "GET",
        f"{REPO_PATH}/stargazers?page=1",
        Reply(
            fixture("stargazers.json"), headers={"Link": f'{last}; rel="next", {last}; rel="last"'}
        ),
    )
    gh.on(
        "GET",
        f"{REPO_PATH}/stargazers?page=2",
        Reply(fixture("stargazers_next_page.json"), etag='"p2"'),
    )
    state: dict[str, Any] = {}
    result = await poll("new_star", {"repo": REPO}, http, account, state)
    assert [s.query["page"] for s in gh.seen] == ["1", "2"]
    assert [i.data["user"] for i in result.items] == ["jonas-eberle", "hubot", "octocat"]
    assert state["stars_page"] == 2


async def test_new_star_looks_past_a_full_page(
    gh: FakeProvider, http: HttpClient, account: AccountSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(github, "STARS_PER_PAGE", 2)  # the fixture's two stars fill it
    gh.on("GET", f"{REPO_PATH}/stargazers?page=1", Reply(fixture("stargazers.json"), etag='"p1"'))
    gh.on("GET", f"{REPO_PATH}/stargazers?page=2", Reply([], etag='"empty"'))
    state: dict[str, Any] = {}
    await poll("new_star", {"repo": REPO}, http, account, state)
    quiet = await poll("new_star", {"repo": REPO}, http, account, state)
    assert quiet.not_modified
    assert [s.query["page"] for s in gh.seen] == ["1", "1", "2"]
    assert gh.seen[1].headers["If-None-Match"] == '"p1"'

    gh.on("GET", f"{REPO_PATH}/stargazers?page=2", Reply(fixture("stargazers_next_page.json")))
    fresh = await poll("new_star", {"repo": REPO}, http, account, state)
    assert [i.data["user"] for i in fresh.items] == ["jonas-eberle"]
    assert state["stars_page"] == 2


async def test_new_release_leaves_out_drafts_and_optionally_prereleases(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    gh.on("GET", f"{REPO_PATH}/releases", Reply(fixture("releases.json")))
    result = await poll("new_release", {"repo": REPO}, http, account)
    assert gh.seen[0].query == {"per_page": "50"}
    assert_api_headers(gh.seen[0])
    assert [i.data["tag"] for i in result.items] == ["v1.4.1", "v1.4.0-rc.1"]
    assert result.items[0].key == "204873311"
    assert result.items[0].data == {
        "tag": "v1.4.1",
        "name": "Firmware 1.4.1",
        "body": "Fixes the moisture reading (#17).",
        "url": f"https://github.com/{REPO}/releases/tag/v1.4.1",
        "author": "marta-kowal",
        "prerelease": False,
        "published_at": "2025-03-15T08:00:00Z",
        "repo": REPO,
    }
    stable = await poll("new_release", {"repo": REPO, "prereleases": False}, http, account)
    assert [i.data["tag"] for i in stable.items] == ["v1.4.1"]


async def test_new_items_fire_oldest_first_whatever_the_listing_order(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    # Listed oldest first, and a release created first but published last: times decide.
    gh.on("GET", f"{REPO_PATH}/issues", Reply(fixture("issues.json")[::-1]))
    gh.on("GET", f"{REPO_PATH}/pulls", Reply(fixture("pulls.json")[::-1]))
    created_last, created_first = fixture("releases.json")[1:]
    created_first["published_at"] = "2025-03-16T09:00:00Z"
    gh.on("GET", f"{REPO_PATH}/releases", Reply([created_last, created_first]))
    issues = await poll("new_issue", {"repo": REPO}, http, account)
    pulls = await poll("new_pull_request", {"repo": REPO}, http, account)
    releases = await poll("new_release", {"repo": REPO}, http, account)
    assert [i.data["number"] for i in oldest_first(issues.items)] == [17, 19]
    assert [i.data["number"] for i in oldest_first(pulls.items)] == [15, 18]
    assert [i.data["tag"] for i in oldest_first(releases.items)] == ["v1.4.1", "v1.4.0-rc.1"]


async def test_new_commit_on_a_branch(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    gh.on("GET", f"{REPO_PATH}/commits", Reply(fixture("commits.json")))
    result = await poll("new_commit", {"repo": REPO, "branch": "main"}, http, account)
    assert gh.seen[0].query == {"per_page": "50", "sha": "main"}
    assert_api_headers(gh.seen[0])
    sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    assert result.items[0].key == sha
    assert result.items[0].data == {
        "sha": sha,
        "short_sha": "6dcb09b",
        "title": "Fix moisture calibration",
        "message": "Fix moisture calibration\n\nCloses #17.",
        "author": "Marta Kowal",
        "author_login": "marta-kowal",
        "url": f"https://github.com/{REPO}/commit/{sha}",
        "committed_at": "2025-03-14T12:00:00Z",
        "branch": "main",
        "repo": REPO,
    }
    assert result.items[1].data["author_login"] == ""  # an author GitHub does not know
    await poll("new_commit", {"repo": REPO}, http, account)
    assert "sha" not in gh.seen[1].query  # the default branch


# ---------------------------------------------------------------------- reactions


async def test_create_issue(gh: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    gh.on("POST", f"{REPO_PATH}/issues", Reply(fixture("issue_created.json"), status=201))
    out = await react(
        "create_issue",
        {
            "repo": REPO,
            "title": "Sensor 3 is offline",
            "body": "Seen at 2025-03-18T06:00:00Z.",
            "labels": "triage",
            "assignees": "marta-kowal",
        },
        http,
        account,
    )
    [seen] = gh.seen
    assert (seen.method, seen.path) == ("POST", f"{REPO_PATH}/issues")
    assert_api_headers(seen)
    assert seen.body == {
        "title": "Sensor 3 is offline",
        "body": "Seen at 2025-03-18T06:00:00Z.",
        "labels": ["triage"],
        "assignees": ["marta-kowal"],
    }
    assert out == {
        "number": 20,
        "url": f"https://github.com/{REPO}/issues/20",
        "title": "Sensor 3 is offline",
    }
    assert github.service.reactions["create_issue"].retry is False


async def test_comment(gh: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    gh.on(
        "POST",
        f"{REPO_PATH}/issues/17/comments",
        Reply(fixture("comment_created.json"), status=201),
    )
    out = await react(
        "comment", {"repo": REPO, "number": "17", "body": "Thanks, jonas-eberle!"}, http, account
    )
    assert gh.seen[0].body == {"body": "Thanks, jonas-eberle!"}
    assert_api_headers(gh.seen[0])
    assert out == {
        "id": 2734512208,
        "url": f"https://github.com/{REPO}/issues/17#issuecomment-2734512208",
    }


async def test_create_gist(gh: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    gh.on("POST", "/gists", Reply(fixture("gist_created.json"), status=201))
    out = await react(
        "create_gist",
        {
            "filename": "sensor-log.md",
            "content": "Sensor 3 went offline.",
            "description": "Saved by Hookline",
        },
        http,
        account,
    )
    assert gh.seen[0].body == {
        "files": {"sensor-log.md": {"content": "Sensor 3 went offline."}},
        "public": False,
        "description": "Saved by Hookline",
    }
    assert out == {
        "id": "aa5a315d61ae9438b18d",
        "url": "https://gist.github.com/marta-kowal/aa5a315d61ae9438b18d",
    }
    with pytest.raises(PermanentError, match="cannot contain /"):
        await react("create_gist", {"filename": "a/b.md", "content": "x"}, http, account)


async def test_add_labels(gh: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    gh.on("POST", f"{REPO_PATH}/issues/17/labels", Reply(fixture("labels_added.json")))
    out = await react("add_labels", {"repo": REPO, "number": 17, "labels": "triage"}, http, account)
    assert gh.seen[0].body == {"labels": ["triage"]}
    assert out == {"labels": ["bug", "triage"]}


async def test_the_account_name_comes_from_the_token(gh: FakeProvider, http: HttpClient) -> None:
    gh.on("GET", "/user", Reply(fixture("user.json")))
    assert github.service.api_key is not None and github.service.api_key.userinfo is not None
    assert await github.service.api_key.userinfo(http, TOKEN) == "marta-kowal"
    assert_api_headers(gh.seen[0])


# ---------------------------------------------------------------------- errors


async def test_a_refused_token_asks_for_reconnecting(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    gh.on("GET", f"{REPO_PATH}/issues", Reply(fixture("error_bad_credentials.json"), status=401))
    with pytest.raises(AuthError, match=r"needs reconnecting.*reconnect the account in Hookline"):
        await poll("new_issue", {"repo": REPO}, http, account)
    assert len(gh.seen) == 1  # a token that cannot be renewed is not retried


async def test_rate_limits_say_when_to_come_back(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    reset = int(time.time()) + 120
    gh.on(
        "GET",
        f"{REPO_PATH}/issues",
        Reply(
            fixture("error_rate_limit.json"),
            status=403,
            headers={
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Resource": "core",
            },
        ),
    )
    with pytest.raises(RateLimited, match="rate limit") as caught:
        await poll("new_issue", {"repo": REPO}, http, account)
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120

    gh.on(
        "POST",
        f"{REPO_PATH}/issues",
        Reply(
            fixture("error_secondary_rate_limit.json"), status=403, headers={"Retry-After": "60"}
        ),
    )
    with pytest.raises(RateLimited) as caught:
        await react("create_issue", {"repo": REPO, "title": "x"}, http, account)
    assert caught.value.retry_after == 60

    gh.on(
        "GET",
        f"{REPO_PATH}/pulls",
        Reply({"message": "Too many requests"}, status=429, headers={"Retry-After": "30"}),
    )
    with pytest.raises(RateLimited) as caught:
        await poll("new_pull_request", {"repo": REPO}, http, account)
    assert caught.value.retry_after == 30


async def test_forbidden_not_found_invalid_and_server_errors(
    gh: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    gh.on("POST", f"{REPO_PATH}/issues", Reply(fixture("error_forbidden.json"), status=403))
    with pytest.raises(
        AuthError,
        match=f"does not let this account reach repository {REPO}: Resource not accessible",
    ):
        await react("create_issue", {"repo": REPO, "title": "x"}, http, account)

    with pytest.raises(
        PermanentError, match=f"GitHub has no repository {REPO}, or this account cannot see it"
    ):
        await poll("new_release", {"repo": REPO}, http, account)
    with pytest.raises(PermanentError, match=f"no issue #99 in repository {REPO}"):
        await react("comment", {"repo": REPO, "number": 99, "body": "x"}, http, account)

    gh.on("POST", f"{REPO_PATH}/issues", Reply(fixture("error_validation.json"), status=422))
    with pytest.raises(PermanentError, match=r"Validation Failed \(title missing_field\)"):
        await react("create_issue", {"repo": REPO, "title": "x"}, http, account)

    gh.on("GET", f"{REPO_PATH}/commits", Reply(fixture("error_server.json"), status=502))
    with pytest.raises(TransientError, match=r"GitHub had a problem .* \(HTTP 502\)"):
        await poll("new_commit", {"repo": REPO}, http, account)


async def test_bad_repository_names_and_a_missing_account(
    http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="is not a repository: write OWNER/NAME"):
        await poll("new_issue", {"repo": "garden-sensors"}, http, account)
    with pytest.raises(AuthError, match="choose the GitHub account"):
        await react("comment", {"repo": REPO, "number": 1, "body": "x"}, http, None)


def test_the_declaration() -> None:
    spec = github.service.oauth
    assert spec is not None and spec.authorize_url == "https://github.com/login/oauth/authorize"
    assert {"repo", "read:user", "gist"} <= set(spec.scopes) and spec.client_secret_required
    assert github.service.api_base_url == "https://api.github.com"
    assert set(github.service.triggers) == {
        "new_issue",
        "new_pull_request",
        "new_star",
        "new_release",
        "new_commit",
    }
    assert set(github.service.reactions) == {"create_issue", "comment", "create_gist", "add_labels"}
    icon = Path(__file__).parents[2] / "resources" / "icons" / github.service.icon
    assert icon.is_file()


async def test_removing_the_account_deletes_the_oauth_apps_grant(
    gh: FakeProvider, account: AccountSession
) -> None:
    client = OAuthClient("Iv1.8a61f9b3a7aba766", "app-secret")
    gh.on("DELETE", f"/applications/{client.client_id}/grant", Reply(status=204))
    revoke = github.service.oauth.revoke  # type: ignore[union-attr]
    assert revoke is not None and await revoke(account, client) is True
    (seen,) = gh.seen
    assert seen.method == "DELETE" and seen.body == {"access_token": TOKEN}
    assert seen.headers["Authorization"] == "Basic " + base64.b64encode(
        b"Iv1.8a61f9b3a7aba766:app-secret").decode()
    assert seen.headers["X-GitHub-Api-Version"] == github.API_VERSION


async def test_a_grant_github_does_not_know_is_reported_as_not_revoked(
    gh: FakeProvider, account: AccountSession
) -> None:
    # GitHub answers 404 for a client id/secret pair it does not accept.
    revoke = github.service.oauth.revoke  # type: ignore[union-attr]
    assert revoke is not None
    assert await revoke(account, OAuthClient("Iv1.unknown", "wrong")) is False
