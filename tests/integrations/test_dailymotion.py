"""Dailymotion against a local server that answers with Dailymotion-shaped responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine import AuthError, PermanentError, RateLimited, TransientError, ValidationError
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import dailymotion
from tests.integrations.provider import FakeProvider, Reply, load_fixture, serve

TOKEN = "eHZYGl0QCQhUHwEFBgIbHwQTXF4VAVNOHRIFSE1ACVBVBQ"
FIELDS = (
    "id,title,description,url,thumbnail_720_url,created_time,duration,channel,"
    "owner.screenname,owner.username"
)


def fixture(name: str) -> Any:
    return load_fixture("dailymotion", name)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(not_found=Reply(fixture("error_not_found.json"), status=404))
    async with serve(fake.handle) as base:
        monkeypatch.setattr(dailymotion.service, "api_base_url", base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(dailymotion.service, TOKEN, http, name="marta-kowal")


def poll(
    trigger: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = dailymotion.service.triggers[trigger]
    ctx = poll_context(spec, params, http)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(params: dict[str, Any], http: HttpClient, account: AccountSession | None) -> Any:
    spec = dailymotion.service.reactions["publish_video_by_url"]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


async def test_new_video_from_channel(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/user/marta-kowal/videos", Reply(fixture("user_videos.json")))
    result = await poll(
        "new_video_from_channel", {"user": "https://www.dailymotion.com/marta-kowal"}, http, account
    )
    [seen] = api.seen
    assert (seen.method, seen.path) == ("GET", "/user/marta-kowal/videos")
    assert seen.query == {"sort": "recent", "fields": FIELDS, "limit": "30"}
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert [i.key for i in result.items] == ["x8vx1ab", "x8vr7zq"]
    assert result.items[0].data == {
        "id": "x8vx1ab",
        "title": "Greenhouse time-lapse, March",
        "description": "Four weeks of basil in 60 seconds.",
        "url": "https://www.dailymotion.com/video/x8vx1ab",
        "thumbnail_url": "https://s1.dmcdn.net/v/VGRxd1a0v8P/x720",
        "duration": 61,
        "channel": "lifestyle",
        "owner": "Marta Kowal",
        "owner_username": "marta-kowal",
        "created_at": "2025-03-14T09:26:53Z",
    }


async def test_new_video_matching_search(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/videos", Reply(fixture("search_videos.json")))
    result = await poll(
        "new_video_matching_search", {"search": "greenhouse time-lapse"}, http, account
    )
    [seen] = api.seen
    assert seen.query == {
        "search": "greenhouse time-lapse",
        "sort": "recent",
        "fields": FIELDS,
        "limit": "30",
    }
    assert [i.key for i in result.items] == ["x8vx1ab"]


async def test_new_videos_fire_oldest_first_whatever_the_listing_order(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    listing = fixture("user_videos.json")
    listing["list"].reverse()  # oldest first: the upload times, not the order, decide
    api.on("GET", "/user/marta-kowal/videos", Reply(listing))
    result = await poll("new_video_from_channel", {"user": "marta-kowal"}, http, account)
    assert [i.key for i in oldest_first(result.items)] == ["x8vr7zq", "x8vx1ab"]


async def test_publish_video_by_url(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/me/videos", Reply(fixture("video_created.json")))
    out = await react(
        {
            "url": "https://example.org/videos/greenhouse-march.mp4",
            "title": "Greenhouse time-lapse, March",
            "channel": "tech",
            "description": "Four weeks of basil.",
        },
        http,
        account,
    )
    [seen] = api.seen
    assert (seen.method, seen.path, seen.query) == (
        "POST",
        "/me/videos",
        {"fields": "id,url,status"},
    )
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.form == {
        "url": "https://example.org/videos/greenhouse-march.mp4",
        "title": "Greenhouse time-lapse, March",
        "channel": "tech",
        "published": "true",
        "is_created_for_kids": "false",
        "description": "Four weeks of basil.",
    }
    assert out == {
        "id": "x8vz3kd",
        "url": "https://www.dailymotion.com/video/x8vz3kd",
        "status": "processing",
    }
    assert dailymotion.service.reactions["publish_video_by_url"].retry is False

    api.on("POST", "/me/videos", Reply(fixture("error_invalid.json"), status=400))
    with pytest.raises(PermanentError, match="Unable to retrieve the video at this URL"):
        await react({"url": "https://example.org/private.mp4", "title": "x"}, http, account)


async def test_the_account_name(api: FakeProvider, http: HttpClient) -> None:
    api.on("GET", "/me", Reply(fixture("me.json")))
    assert dailymotion.service.oauth is not None and dailymotion.service.oauth.userinfo
    assert await dailymotion.service.oauth.userinfo(http, TOKEN) == "marta-kowal"
    assert api.seen[0].query == {"fields": "id,screenname,username"}
    assert api.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_refused_token_asks_for_reconnecting(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/videos", Reply(fixture("error_unauthorized.json"), status=401))
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll("new_video_matching_search", {"search": "basil"}, http, account)
    assert len(api.seen) == 1


async def test_forbidden_missing_rate_limited_and_server_errors(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/me/videos", Reply(fixture("error_forbidden.json"), status=403))
    with pytest.raises(AuthError, match="required scope is `manage_videos`"):
        await react({"url": "https://example.org/a.mp4", "title": "x"}, http, account)

    with pytest.raises(PermanentError, match="Dailymotion has no channel 'nobody-here'"):
        await poll("new_video_from_channel", {"user": "nobody-here"}, http, account)

    api.on("GET", "/videos", Reply(fixture("error_rate_limit.json"), status=403))
    with pytest.raises(RateLimited, match="rate limit"):
        await poll("new_video_matching_search", {"search": "basil"}, http, account)
    api.on(
        "GET",
        "/videos",
        Reply(fixture("error_rate_limit.json"), status=429, headers={"Retry-After": "12"}),
    )
    with pytest.raises(RateLimited) as caught:
        await poll("new_video_matching_search", {"search": "basil"}, http, account)
    assert caught.value.retry_after == 12

    api.on("GET", "/videos", Reply(fixture("error_server.json"), status=500))
    with pytest.raises(TransientError, match=r"Dailymotion had a problem .* \(HTTP 500\)"):
        await poll("new_video_matching_search", {"search": "basil"}, http, account)


async def test_bad_input_and_a_missing_account(http: HttpClient, account: AccountSession) -> None:
    with pytest.raises(PermanentError, match="is not a Dailymotion channel"):
        await poll("new_video_from_channel", {"user": "marta kowal"}, http, account)
    with pytest.raises(ValidationError, match="Search for is required"):
        await poll("new_video_matching_search", {"search": "  "}, http, account)
    with pytest.raises(AuthError, match="choose the Dailymotion account"):
        await react({"url": "https://example.org/a.mp4", "title": "x"}, http, None)


def test_the_declaration() -> None:
    spec = dailymotion.service.oauth
    assert spec is not None and spec.authorize_url == "https://www.dailymotion.com/oauth/authorize"
    assert spec.token_url == "https://api.dailymotion.com/oauth/token"
    assert "manage_videos" in spec.scopes
    assert dailymotion.service.api_base_url == "https://api.dailymotion.com"
    assert set(dailymotion.service.triggers) == {
        "new_video_from_channel",
        "new_video_matching_search",
    }
    assert set(dailymotion.service.reactions) == {"publish_video_by_url"}
    icon = Path(__file__).parents[2] / "resources" / "icons" / dailymotion.service.icon
    assert icon.is_file()
