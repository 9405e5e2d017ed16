"""X against a local server that answers with X-shaped responses."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine import (
    AuthError,
    PermanentError,
    RateLimited,
    ReactionSpec,
    TransientError,
    TriggerSpec,
)
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.testing import poll_context, reaction_context
from integrations import x
from tests.integrations.provider import FakeProvider, Reply, Seen, load_fixture, serve

TOKEN = "bWRWa2xRNm9NbDlXaXpHU2ZZd0hSUmt5cmZlRkZXVmdPOjE3MzI0MDQ3MDE"


def fixture(name: str) -> Any:
    return load_fixture("x", name)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    async with serve(fake.handle) as base:
        monkeypatch.setattr(x.service, "api_base_url", base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(x.service, TOKEN, http, name="martakowal")


def poll(
    trigger: str,
    params: dict[str, Any],
    http: HttpClient,
    account: Any,
    state: dict[str, Any] | None = None,
) -> Any:
    spec = x.service.triggers[trigger]
    ctx = poll_context(spec, params, http, state=state)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(reaction: str, params: dict[str, Any], http: HttpClient, account: Any) -> Any:
    spec = x.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


ME = "1452869102233456640"
DEV = "2244994945"


def assert_bearer(seen: Seen) -> None:
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"


POST_QUERY = {
    "tweet.fields": "created_at,author_id,conversation_id",
    "expansions": "author_id",
    "user.fields": "username,name",
    "max_results": "20",
}


# ---------------------------------------------------------------------- triggers


async def test_new_post_from_user_looks_the_user_up_once(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/users/by/username/XDevelopers", Reply(fixture("user_by_username.json")))
    api.on("GET", f"/users/{DEV}/tweets", Reply(fixture("user_posts.json")))
    state: dict[str, Any] = {}
    params = {"username": "https://x.com/XDevelopers"}
    result = await poll("new_post_from_user", params, http, account, state)
    assert [i.key for i in result.items] == ["1861123456789012345", "1861000000000000001"]
    assert result.items[0].data == {
        "id": "1861123456789012345",
        "text": "The v2 posts endpoint now returns edit history.",
        "author": "XDevelopers",
        "author_name": "Developers",
        "url": "https://x.com/XDevelopers/status/1861123456789012345",
        "created_at": "2026-11-22T10:41:06.000Z",
        "conversation_id": "1861123456789012345",
    }
    lookup, posts = api.seen
    assert_bearer(lookup)
    assert_bearer(posts)
    assert posts.query == {**POST_QUERY, "exclude": "replies,retweets"}
    await poll(
        "new_post_from_user", {"username": "@XDevelopers", "replies": True}, http, account, state
    )
    assert [s.path for s in api.seen[2:]] == [f"/users/{DEV}/tweets"]
    assert api.seen[2].query == {**POST_QUERY, "since_id": "1861123456789012345"}


async def test_after_the_first_check_only_new_posts_are_asked_for_and_paid(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    # X bills every post it returns (https://docs.x.com/x-api/getting-started/pricing,
    # read 2026-12-06); a timeline asked with since_id returns only newer posts, and
    # {"meta": {"result_count": 0}} when there are none (GET /2/users/:id/mentions).
    api.on("GET", "/users/me", Reply(fixture("me.json")))
    api.on(
        "GET",
        f"/users/{ME}/mentions",
        Reply(fixture("mentions.json")),
        Reply(fixture("search_empty.json")),
        Reply(fixture("mentions_newer.json")),
    )
    state: dict[str, Any] = {}
    first = await poll("new_mention", {}, http, account, state)
    assert [i.key for i in first.items] == ["1861200000000000002"]
    assert "since_id" not in api.seen[1].query
    quiet = await poll("new_mention", {}, http, account, state)
    assert quiet.items == []
    assert api.seen[2].query == {**POST_QUERY, "since_id": "1861200000000000002"}
    newer = await poll("new_mention", {}, http, account, state)
    assert [i.key for i in newer.items] == ["1861250000000000007"]
    assert api.seen[3].query["since_id"] == "1861200000000000002"  # none came meanwhile
    await poll("new_mention", {}, http, account, state)
    assert api.seen[4].query["since_id"] == "1861250000000000007"


def test_every_trigger_and_reaction_says_what_it_costs() -> None:
    # Rates from https://docs.x.com/x-api/getting-started/pricing (read 2026-12-06).
    specs: list[TriggerSpec | ReactionSpec] = [*x.service.triggers.values(),
                                               *x.service.reactions.values()]
    for spec in specs:
        assert "pay-per-use credits" in spec.description, spec.id
        assert "$0.0" in spec.description, spec.id
        assert "paid API access level" not in spec.description
    assert "$0.20 when its text holds a link" in x.service.reactions["post"].description
    assert "https://console.x.com" in x.service.access_note
    assert x.service.oauth is not None and "Basic" not in x.service.oauth.client_help
    assert "buy credits" in x.service.oauth.client_help


async def test_new_mention_uses_the_accounts_own_id(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/users/me", Reply(fixture("me.json")))
    api.on("GET", f"/users/{ME}/mentions", Reply(fixture("mentions.json")))
    result = await poll("new_mention", {}, http, account)
    (item,) = result.items
    assert item.key == "1861200000000000002"
    assert item.data["author"] == "jonaseberle"
    assert item.data["url"] == "https://x.com/jonaseberle/status/1861200000000000002"
    assert api.seen[1].query == POST_QUERY


async def test_search_sends_the_query_and_handles_no_results(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/tweets/search/recent", Reply(fixture("search_empty.json")))
    params = {"query": "#gardening -is:retweet lang:en"}
    result = await poll("new_post_matching_search", params, http, account)
    assert result.items == []
    assert api.seen[0].query == {**POST_QUERY, "query": "#gardening -is:retweet lang:en"}
    with pytest.raises(PermanentError, match="1 to 512 characters"):
        await poll("new_post_matching_search", {"query": "a" * 513}, http, account)


async def test_unknown_user_and_bad_usernames(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/users/by/username/nosuchuser_zz", Reply(fixture("error_user_not_found.json")))
    with pytest.raises(PermanentError, match=r"Could not find user with username"):
        await poll("new_post_from_user", {"username": "nosuchuser_zz"}, http, account)
    with pytest.raises(PermanentError, match="not an X username"):
        await poll("new_post_from_user", {"username": "marta kowal"}, http, account)
    assert len(api.seen) == 1


async def test_rate_limit_uses_the_reset_header(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    reset = str(int(time.time()) + 600)
    headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}
    api.on("GET", "/tweets/search/recent", Reply(fixture("error_too_many.json"), 429, headers))
    with pytest.raises(RateLimited, match="rate limit") as caught:
        await poll("new_post_matching_search", {"query": "hookline"}, http, account)
    assert caught.value.retry_after is not None
    assert 590 <= caught.value.retry_after <= 600


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (401, "error_unauthorized.json", AuthError, "needs reconnecting"),
        (403, "error_client_forbidden.json", AuthError, "credits left in the X Developer Console"),
        (404, None, PermanentError, "X could not find your mentions"),
        (503, None, TransientError, "HTTP 503"),
    ],
)
async def test_errors_become_engine_errors(
    api: FakeProvider,
    http: HttpClient,
    account: AccountSession,
    status: int,
    body: str | None,
    error: type[Exception],
    message: str,
) -> None:
    api.on("GET", "/users/me", Reply(fixture("me.json")))
    reply = fixture(body) if body else "Service Unavailable"
    api.on("GET", f"/users/{ME}/mentions", Reply(reply, status))
    with pytest.raises(error, match=message) as caught:
        await poll("new_mention", {}, http, account)
    assert TOKEN not in str(caught.value)


async def test_without_an_account_says_how_to_connect(http: HttpClient) -> None:
    with pytest.raises(AuthError, match="hookline accounts connect x"):
        await poll("new_mention", {}, http, None)


# ---------------------------------------------------------------------- reactions


async def test_post_publishes_it(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/tweets", Reply(fixture("post_created.json"), 201))
    out = await react("post", {"text": "Hello from Hookline"}, http, account)
    assert out == {
        "id": "1861300000000000003",
        "url": "https://x.com/martakowal/status/1861300000000000003",
    }
    (seen,) = api.seen
    assert_bearer(seen)
    assert json.loads(seen.body) == {"text": "Hello from Hookline"}
    assert x.service.reactions["post"].retry is False


async def test_reply_to_a_post_address(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/tweets", Reply(fixture("post_created.json"), 201))
    params = {"post": "https://x.com/jonaseberle/status/1861200000000000002", "text": "The v3."}
    await react("reply", params, http, account)
    assert json.loads(api.seen[0].body) == {
        "text": "The v3.",
        "reply": {"in_reply_to_tweet_id": "1861200000000000002"},
    }


async def test_bad_posts_are_refused_before_sending(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="X allows 280"):
        await react("post", {"text": "a" * 281}, http, account)
    with pytest.raises(PermanentError, match="not an X post"):
        await react("reply", {"post": "yesterday's", "text": "Hi"}, http, account)
    assert api.seen == []


async def test_duplicate_post_is_a_permanent_error(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/tweets", Reply(fixture("error_duplicate.json"), 403))
    with pytest.raises(PermanentError, match="duplicate content"):
        await react("post", {"text": "Hello"}, http, account)


async def test_userinfo_names_the_account(api: FakeProvider, http: HttpClient) -> None:
    api.on("GET", "/users/me", Reply(fixture("me.json")))
    assert x.service.oauth is not None and x.service.oauth.userinfo is not None
    assert await x.service.oauth.userinfo(http, TOKEN) == "martakowal"
    assert x.service.oauth.pkce is True
