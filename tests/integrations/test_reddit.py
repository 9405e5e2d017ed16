"""Reddit against a local server that answers with Reddit-shaped responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from engine import AuthError, PermanentError, RateLimited, TransientError
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import reddit, rss
from tests.integrations.provider import (
    FIXTURES,
    FakeProvider,
    Reply,
    Seen,
    load_fixture,
    serve,
)

TOKEN = "1419384-Zk3yQ8vR2mLw7nXcT5hJbA9sPdEfGu"


def fixture(name: str) -> Any:
    return load_fixture("reddit", name)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    async with serve(fake.handle) as base:
        monkeypatch.setattr(reddit.service, "api_base_url", base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(reddit.service, TOKEN, http, name="martakowal")


def poll(
    trigger: str,
    params: dict[str, Any],
    http: HttpClient,
    account: Any,
    state: dict[str, Any] | None = None,
) -> Any:
    spec = reddit.service.triggers[trigger]
    ctx = poll_context(spec, params, http, state=state)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(reaction: str, params: dict[str, Any], http: HttpClient, account: Any) -> Any:
    spec = reddit.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


UA = "desktop:org.hookline.app:1 (Hookline personal automation)"
LISTING = {"limit": "25", "raw_json": "1"}


def assert_headers(seen: Seen) -> None:
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["User-Agent"] == UA


def form(seen: Seen) -> dict[str, str]:
    assert seen.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    return dict(parse_qsl(seen.body.decode()))


# ---------------------------------------------------------------------- triggers


async def test_new_post_in_subreddit_lists_new_posts(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/r/gardening/new", Reply(fixture("subreddit_new.json")))
    params = {"subreddit": "https://www.reddit.com/r/gardening/"}
    result = await poll("new_post_in_subreddit", params, http, account)
    assert [i.key for i in result.items] == ["t3_1gx4m9r", "t3_1gx4k2p"]
    link, text = (i.data for i in result.items)
    assert link["link"] == "https://i.redd.it/k2l3m4n5o6.jpg"
    assert text == {
        "id": "t3_1gx4k2p",
        "title": "My balcony tomatoes in November",
        "text": "Still fruiting thanks to the warm wall & the sun.",
        "link": None,
        "author": "martakowal",
        "subreddit": "gardening",
        "url": "https://www.reddit.com/r/gardening/comments/1gx4k2p/my_balcony_tomatoes_in_november/",
        "created_at": "2025-11-22T10:41:06+00:00",
    }
    (seen,) = api.seen
    assert_headers(seen)
    assert seen.query == LISTING


async def test_bad_or_unknown_subreddits(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="not a subreddit"):
        await poll("new_post_in_subreddit", {"subreddit": "garden ing"}, http, account)
    assert api.seen == []
    api.on("GET", "/r/nosuchsub/new", Reply({"kind": "t5", "data": {}}))
    with pytest.raises(PermanentError, match="could not find subreddit r/nosuchsub"):
        await poll("new_post_in_subreddit", {"subreddit": "r/nosuchsub"}, http, account)


async def test_new_comment_on_my_post_keeps_only_post_replies(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/message/inbox", Reply(fixture("inbox.json")))
    result = await poll("new_comment_on_my_post", {}, http, account)
    (item,) = result.items
    assert item.key == "t1_lz9x0ab"
    assert item.data == {
        "id": "t1_lz9x0ab",
        "text": "Which variety is that?",
        "author": "jonaseberle",
        "post_title": "My balcony tomatoes in November",
        "subreddit": "gardening",
        "url": "https://www.reddit.com/r/gardening/comments/1gx4k2p/my_balcony_tomatoes_in_november/lz9x0ab/",
        "created_at": "2025-11-22T11:05:30+00:00",
    }
    assert api.seen[0].query == LISTING


async def test_new_posts_and_replies_fire_oldest_first_whatever_the_listing_order(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    posts = fixture("subreddit_new.json")
    posts["data"]["children"].reverse()  # oldest first: the times they were written decide
    api.on("GET", "/r/gardening/new", Reply(posts))
    inbox = fixture("inbox.json")
    replies = inbox["data"]["children"] = inbox["data"]["children"][1::-1]
    replies[0]["data"]["type"] = "post_reply"
    api.on("GET", "/message/inbox", Reply(inbox))
    new_posts = await poll("new_post_in_subreddit", {"subreddit": "gardening"}, http, account)
    new_replies = await poll("new_comment_on_my_post", {}, http, account)
    assert [i.key for i in oldest_first(new_posts.items)] == ["t3_1gx4k2p", "t3_1gx4m9r"]
    assert [i.key for i in oldest_first(new_replies.items)] == ["t1_lz9w111", "t1_lz9x0ab"]


async def test_new_saved_item_lists_posts_and_comments(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/api/v1/me", Reply(fixture("me.json")))
    api.on("GET", "/user/martakowal/saved", Reply(fixture("saved.json")))
    state: dict[str, Any] = {}
    result = await poll("new_saved_item", {}, http, account, state)
    assert [(i.key, i.data["kind"]) for i in result.items] == [
        ("t1_lz8a1b2", "comment"),
        ("t3_1gx4m9r", "post"),
    ]
    assert result.items[0].data["title"] == "How do you save seeds?"
    assert result.items[0].data["text"] == "Ferment the seeds for three days before drying."
    await poll("new_saved_item", {}, http, account, state)
    assert [s.path for s in api.seen] == [
        "/api/v1/me",
        "/user/martakowal/saved",
        "/user/martakowal/saved",
    ]


@pytest.mark.parametrize(
    ("status", "headers", "error", "message"),
    [
        (401, {}, AuthError, "needs reconnecting"),
        (403, {}, AuthError, "does not let this account reach your inbox"),
        (404, {}, PermanentError, "Reddit could not find your inbox"),
        (429, {"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "42"}, RateLimited, "42 s"),
        (500, {}, TransientError, "HTTP 500"),
    ],
)
async def test_errors_become_engine_errors(
    api: FakeProvider,
    http: HttpClient,
    account: AccountSession,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    api.on("GET", "/message/inbox", Reply({"message": "x", "error": status}, status, headers))
    with pytest.raises(error, match=message) as caught:
        await poll("new_comment_on_my_post", {}, http, account)
    assert TOKEN not in str(caught.value)
    if status == 429:
        assert isinstance(caught.value, RateLimited)
        assert caught.value.retry_after == 42


async def test_without_an_account_says_how_to_connect(http: HttpClient) -> None:
    with pytest.raises(AuthError, match="hookline accounts connect reddit"):
        await poll("new_comment_on_my_post", {}, http, None)


# ---------------------------------------------------------------------- reactions


async def test_submit_a_text_post(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/api/submit", Reply(fixture("submitted.json")))
    params = {"subreddit": "test", "title": "Hello from Hookline", "text": "It *works*."}
    out = await react("submit_post", params, http, account)
    assert out == {
        "id": "t3_1gx5m7q",
        "url": "https://www.reddit.com/r/test/comments/1gx5m7q/hello_from_hookline/",
    }
    (seen,) = api.seen
    assert_headers(seen)
    assert form(seen) == {
        "sr": "test",
        "title": "Hello from Hookline",
        "resubmit": "true",
        "kind": "self",
        "text": "It *works*.",
        "api_type": "json",
    }
    assert reddit.service.reactions["submit_post"].retry is False


async def test_submit_a_link_post_and_refusals(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/api/submit", Reply(fixture("submit_error.json")))
    params = {"subreddit": "nosuchsub", "title": "Look", "link": "https://example.org/a"}
    with pytest.raises(PermanentError, match="that subreddit doesn't exist"):
        await react("submit_post", params, http, account)
    sent = form(api.seen[0])
    assert (sent["kind"], sent["url"]) == ("link", "https://example.org/a")
    assert "text" not in sent
    with pytest.raises(PermanentError, match="not a web address"):
        await react("submit_post", {**params, "link": "example.org"}, http, account)
    api.on("POST", "/api/submit", Reply(fixture("submit_ratelimit.json")))
    with pytest.raises(RateLimited, match="Take a break for 9 minutes"):
        await react("submit_post", params, http, account)


async def test_reply_to_a_comment_address(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/api/comment", Reply(fixture("commented.json")))
    url = "https://www.reddit.com/r/gardening/comments/1gx4k2p/my_balcony_tomatoes_in_november/lz9x0ab/"
    out = await react("reply", {"to": url, "text": "Thanks!"}, http, account)
    assert out == {
        "id": "t1_lz9y1cd",
        "url": "https://www.reddit.com/r/gardening/comments/1gx4k2p/my_balcony_tomatoes_in_november/lz9y1cd/",
    }
    assert form(api.seen[0]) == {"thing_id": "t1_lz9x0ab", "text": "Thanks!", "api_type": "json"}
    await react("reply", {"to": "t3_1gx4k2p", "text": "Hi"}, http, account)
    assert form(api.seen[1])["thing_id"] == "t3_1gx4k2p"


async def test_reply_to_something_else_is_refused(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="not a Reddit post or comment"):
        await react("reply", {"to": "t5_2qh1i", "text": "Hi"}, http, account)
    assert api.seen == []


async def test_oauth_spec_and_userinfo(api: FakeProvider, http: HttpClient) -> None:
    spec = reddit.service.oauth
    assert spec is not None and spec.userinfo is not None
    assert spec.pkce is False and spec.client_secret_required is False
    assert spec.extra_authorize_params == {"duration": "permanent"}
    api.on("GET", "/api/v1/me", Reply(fixture("me.json")))
    assert await spec.userinfo(http, TOKEN) == "martakowal"
    assert api.seen[0].headers["User-Agent"] == UA


# ---------------------------------------------------------------------- without approval


async def test_without_api_approval_a_subreddit_is_watched_through_its_public_feed(
    http: HttpClient,
) -> None:
    # Reddit closed self-service API access in November 2025; a subreddit's feed of new
    # posts needs no account (https://www.reddit.com/wiki/rss, read 2026-12-06).
    url = reddit.feed_url("https://www.reddit.com/r/gardening/")
    assert url == "https://www.reddit.com/r/gardening/new/.rss"
    feed = (FIXTURES / "reddit" / "subreddit_new.atom").read_text(encoding="utf-8")
    fake = FakeProvider()
    fake.on("GET", urlsplit(url).path,
            Reply(feed, headers={"Content-Type": "application/atom+xml; charset=UTF-8"}))
    async with serve(fake.handle) as base:
        spec = rss.service.triggers["new_item"]
        ctx = poll_context(spec, {"url": base + urlsplit(url).path}, http)
        assert spec.poll is not None
        result = await spec.poll(ctx)  # the RSS / Atom service, no Reddit account
    assert [i.data["title"] for i in result.items] == [
        "Frost tonight: cover the leeks?", "Garlic in, finally", "Seed swap on Sunday"]
    assert result.items[0].data["link"] == (
        "https://www.reddit.com/r/gardening/comments/1h4zq7c/frost_tonight_cover_the_leeks/")
    assert "Authorization" not in fake.seen[0].headers


def test_help_says_what_reddit_requires_today() -> None:
    spec = reddit.service.oauth
    assert spec is not None
    for text in (spec.client_help, reddit.service.access_note):
        assert "Responsible Builder Policy" in text
        assert reddit.POLICY_URL in text
        assert "https://www.reddit.com/r/NAME/new/.rss" in text  # what works without it
    assert not spec.client_help.startswith("(Reddit: https://www.reddit.com/prefs/apps")
    trigger = reddit.service.triggers["new_post_in_subreddit"]
    assert f"{rss.service.name} service" in trigger.description
    assert "https://www.reddit.com/r/NAME/new/.rss" in trigger.description
