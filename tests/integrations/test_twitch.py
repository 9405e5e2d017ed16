"""Twitch against a local server that answers with Helix-shaped responses."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine import AuthError, PermanentError, RateLimited, TransientError
from engine.auth import AccountSession
from engine.auth.oauth import OAuthClient, revoke
from engine.catalog.auth import TokenSet
from engine.http import HttpClient
from engine.testing import poll_context
from integrations import twitch
from tests.integrations.provider import FakeProvider, Reply, Seen, load_fixture, serve

TOKEN = "cfabdegwdoklmawdzdo98xt2fo512y"
CLIENT_ID = "wbmytr93xzw8zbg0p1izqyzzc5mbiz"
USER_ID = "101051819"


def fixture(name: str) -> Any:
    return load_fixture("twitch", name)


class FakeTwitch(FakeProvider):
    """Helix and the token check. The check answers as documented: a token it knows,
    sent as "Authorization: OAuth <token>", gets the set reply (validate.json unless told
    otherwise); any other gets 401 "invalid access token"."""

    def __init__(self) -> None:
        super().__init__(
            not_found=Reply({"error": "Not Found", "status": 404, "message": ""}, status=404),
            match_query=("after",),
        )
        self.valid = {TOKEN}
        self.on("GET", "/oauth2/validate", Reply(fixture("validate.json")))

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == "/oauth2/validate":
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme != "OAuth" or token not in self.valid:
                self.seen.append(Seen(request.method, request.path, dict(request.query),
                                      dict(request.headers), b""))
                return web.json_response(fixture("error_validate.json"), status=401)
        return await super().handle(request)

    def helix(self) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith("/helix/")]

    def checks(self) -> int:
        return [s.path for s in self.seen].count("/oauth2/validate")


class Clock:
    """A steady clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    steady = Clock()
    monkeypatch.setattr(twitch, "_clock", steady, raising=False)
    return steady


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> AsyncIterator[FakeTwitch]:
    fake = FakeTwitch()
    async with serve(fake.handle) as base:
        monkeypatch.setattr(twitch.service, "api_base_url", f"{base}/helix")
        monkeypatch.setattr(twitch, "VALIDATE_URL", f"{base}/oauth2/validate")
        monkeypatch.setattr(twitch, "_client_ids", {})
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(twitch.service, TOKEN, http, name="marta_kowal")


def poll(
    trigger: str,
    params: dict[str, Any],
    http: HttpClient,
    account: AccountSession | None,
    state: dict[str, Any] | None = None,
) -> Any:
    spec = twitch.service.triggers[trigger]
    ctx = poll_context(spec, params, http, state=state)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def assert_api_headers(seen: Seen) -> None:
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Client-Id"] == CLIENT_ID


async def test_channel_live_asks_for_the_client_id_once(
    api: FakeTwitch, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/helix/streams", Reply(fixture("streams.json")))
    result = await poll(
        "channel_live", {"channel": "https://www.twitch.tv/Marta_Plays"}, http, account
    )
    validate, streams = api.seen
    assert validate.path == "/oauth2/validate"
    assert validate.headers["Authorization"] == f"OAuth {TOKEN}"
    assert (streams.method, streams.path) == ("GET", "/helix/streams")
    assert streams.query == {"user_login": "marta_plays"}
    assert_api_headers(streams)
    [item] = result.items
    assert item.key == "40952121085"
    assert item.data == {
        "stream_id": "40952121085",
        "channel": "marta_plays",
        "channel_name": "Marta_Plays",
        "title": "Building a greenhouse controller",
        "game": "Science & Technology",
        "viewer_count": 78,
        "started_at": "2025-03-14T18:00:01Z",
        "language": "en",
        "thumbnail_url": "https://static-cdn.jtvnw.net/previews-ttv/live_user_marta_plays-1280x720.jpg",
        "url": "https://www.twitch.tv/marta_plays",
    }

    api.on("GET", "/helix/streams", Reply(fixture("streams_offline.json")))
    offline = await poll("channel_live", {"channel": "marta_plays"}, http, account)
    assert offline.items == []
    assert [s.path for s in api.seen].count("/oauth2/validate") == 1


async def test_new_video_or_clip_resolves_the_login_and_merges_newest_first(
    api: FakeTwitch, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/helix/users", Reply(fixture("users.json")))
    api.on("GET", "/helix/videos", Reply(fixture("videos.json")))
    api.on("GET", "/helix/clips", Reply(fixture("clips.json")))
    state: dict[str, Any] = {}
    result = await poll("new_video_or_clip", {"channel": "marta_plays"}, http, account, state)
    users, videos, clips = api.helix()
    assert users.query == {"login": "marta_plays"}
    assert videos.query == {"user_id": USER_ID, "sort": "time", "first": "20"}
    for seen in (users, videos, clips):
        assert_api_headers(seen)
    assert set(clips.query) == {"broadcaster_id", "started_at", "first"}
    assert clips.query["broadcaster_id"] == USER_ID
    since = datetime.strptime(clips.query["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(since - (datetime.now(UTC) - timedelta(days=7))) < timedelta(minutes=1)
    assert [i.key for i in result.items] == [
        "clip:AwkwardHelplessSalamanderSwiftRage",
        "video:2398736413",
        "clip:BraveTinyOwlKappa",
        "video:2391002218",
    ]
    assert result.items[1].data == {
        "kind": "video",
        "id": "2398736413",
        "title": "Greenhouse controller, part 3",
        "url": "https://www.twitch.tv/videos/2398736413",
        "channel": "marta_plays",
        "creator": "Marta_Plays",
        "created_at": "2025-03-14T18:00:01Z",
        "duration": "3h2m15s",
        "view_count": 341,
        "thumbnail_url": "https://static-cdn.jtvnw.net/cf_vods/d2nvs31859zcd8/thumb0-1280x720.jpg",
        "video_type": "archive",
    }
    assert result.items[0].data["creator"] == "jonas_eberle"
    assert state["user"] == {"login": "marta_plays", "id": USER_ID}

    only_clips = await poll(
        "new_video_or_clip", {"channel": "marta_plays", "kind": "clips"}, http, account, state
    )
    assert [s.path for s in api.helix()[3:]] == ["/helix/clips"]  # the id was remembered
    assert {i.data["kind"] for i in only_clips.items} == {"clip"}


def busy_first_page(count: int = 100) -> dict[str, Any]:
    """The first page of a busy channel's clips: `count` much-watched clips, shaped as
    clips.json (Twitch sorts by views), and a cursor to the next page."""
    template = fixture("clips.json")["data"][0]
    clips = [
        template | {"id": f"PopularClip{n:03d}", "url": f"https://clips.twitch.tv/PopularClip{n:03d}",
                    "view_count": 50_000 - n, "created_at": f"2026-12-0{1 + n % 5}T12:00:00Z"}
        for n in range(count)
    ]
    return {"data": clips, "pagination": {"cursor": "eyJiIjpudWxsLCJhIjp7Ik9mZnNldCI6MTAwfX0"}}


def fire(result: Any, seen: set[str]) -> list[str]:
    """What the engine fires for a poll: the keys it has not seen before (then remembered)."""
    new = [str(i.key) for i in result.items if i.key not in seen]
    seen.update(str(i.key) for i in result.items)
    return new


async def test_a_new_clip_with_few_views_on_page_two_fires_exactly_once(
    api: FakeTwitch, http: HttpClient, account: AccountSession
) -> None:
    # Get Clips lists by views, `first` at most 100 a page, with pagination.cursor while
    # more follow (https://dev.twitch.tv/docs/api/reference/#get-clips, read 2026-12-06).
    api.on("GET", "/helix/users", Reply(fixture("users.json")))
    api.on("GET", "/helix/clips", Reply(busy_first_page()))
    cursor = busy_first_page()["pagination"]["cursor"]
    api.on("GET", f"/helix/clips?after={cursor}", Reply({"data": [], "pagination": {}}))
    params = {"channel": "marta_plays", "kind": "clips"}
    state: dict[str, Any] = {}
    seen: set[str] = set()
    fire(await poll("new_video_or_clip", params, http, account, state), seen)  # primes

    # A clip made since, with 3 views: the 100 popular ones fill page 1, it is on page 2.
    api.on("GET", f"/helix/clips?after={cursor}", Reply(fixture("clips_busy_page2.json")))
    fired = fire(await poll("new_video_or_clip", params, http, account, state), seen)
    assert fired == ["clip:TinyQuietFerretWutFace"]
    page1, page2 = [s for s in api.helix() if s.path == "/helix/clips"][-2:]
    assert page1.query["first"] == page2.query["first"] == "100"
    assert "after" not in page1.query and page2.query["after"] == cursor
    assert page2.query["started_at"] == page1.query["started_at"]
    # The window starts shortly before the previous check, not a week back.
    since = datetime.strptime(page1.query["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(since - (datetime.now(UTC) - twitch.CLIP_OVERLAP)) < timedelta(minutes=1)

    # It gains views and moves to page 1: the same clip, so nothing fires again.
    risen = busy_first_page(99)
    risen["data"].insert(0, fixture("clips_busy_page2.json")["data"][0] | {"view_count": 61_000})
    api.on("GET", "/helix/clips", Reply(risen))
    api.on("GET", f"/helix/clips?after={cursor}", Reply({"data": [], "pagination": {}}))
    assert fire(await poll("new_video_or_clip", params, http, account, state), seen) == []


async def test_the_token_is_checked_with_twitch_at_least_hourly(
    api: FakeTwitch, http: HttpClient, account: AccountSession, clock: Clock
) -> None:
    # "Your app must validate the OAuth token when it starts and on an hourly basis
    # thereafter" (https://dev.twitch.tv/docs/authentication/validate-tokens/, 2026-12-06).
    api.on("GET", "/helix/streams", Reply(fixture("streams_offline.json")))
    params = {"channel": "marta_plays"}
    await poll("channel_live", params, http, account)
    clock.now += 3599
    await poll("channel_live", params, http, account)
    assert api.checks() == 1
    clock.now += 1
    await poll("channel_live", params, http, account)
    assert api.checks() == 2
    assert [s.path for s in api.seen][-2:] == ["/oauth2/validate", "/helix/streams"]
    assert all(s.headers["Authorization"] == f"OAuth {TOKEN}"
               for s in api.seen if s.path == "/oauth2/validate")


async def test_a_token_twitch_no_longer_accepts_asks_to_reconnect_the_account(
    api: FakeTwitch, http: HttpClient, clock: Clock
) -> None:
    account = AccountSession.for_token(twitch.service, TOKEN, http, name="marta_kowal",
                                       kind="oauth2")
    api.on("GET", "/helix/streams", Reply(fixture("streams_offline.json")))
    params = {"channel": "marta_plays"}
    await poll("channel_live", params, http, account)
    api.valid.clear()  # the user disconnected Hookline under Settings → Connections
    clock.now += 3600
    with pytest.raises(AuthError) as caught:
        await poll("channel_live", params, http, account)
    message = str(caught.value)
    assert "Twitch account “marta_kowal” needs reconnecting" in message
    assert "reconnect the account in Hookline" in message
    assert "`hookline accounts connect twitch`" in message
    assert TOKEN not in message
    assert account.account.status == "needs_reconnect"  # the accounts list says so too
    assert [s.path for s in api.helix()] == ["/helix/streams"]  # nothing asked after
    checks = api.checks()
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll("channel_live", params, http, account)
    assert api.checks() == checks  # no more calls with a dead token


async def test_unknown_channel_and_bad_logins(
    api: FakeTwitch, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/helix/users", Reply({"data": []}))
    with pytest.raises(PermanentError, match="Twitch has no channel 'nobody_here'"):
        await poll("new_video_or_clip", {"channel": "nobody_here"}, http, account)
    with pytest.raises(PermanentError, match="is not a Twitch channel: write its login"):
        await poll("channel_live", {"channel": "marta plays"}, http, account)
    with pytest.raises(AuthError, match="choose the Twitch account"):
        await poll("channel_live", {"channel": "marta_plays"}, http, None)


async def test_the_account_name_comes_from_the_token_check(
    api: FakeTwitch, http: HttpClient
) -> None:
    assert twitch.service.oauth is not None and twitch.service.oauth.userinfo is not None
    assert await twitch.service.oauth.userinfo(http, TOKEN) == "marta_kowal"
    api.on("GET", "/oauth2/validate", Reply(fixture("error_validate.json"), status=401))
    with pytest.raises(AuthError, match="access token is invalid or expired"):
        await twitch.service.oauth.userinfo(http, TOKEN)


async def test_refused_forbidden_rate_limited_and_server_errors(
    api: FakeTwitch, http: HttpClient, account: AccountSession
) -> None:
    params = {"channel": "marta_plays"}
    api.on("GET", "/helix/streams", Reply(fixture("error_unauthorized.json"), status=401))
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll("channel_live", params, http, account)
    assert [s.path for s in api.helix()] == ["/helix/streams"]  # not retried

    account = AccountSession.for_token(twitch.service, TOKEN, http)  # a fresh one
    api.on("GET", "/helix/streams", Reply(fixture("error_forbidden.json"), status=403))
    with pytest.raises(AuthError, match=r"does not let this account reach .*Missing scope"):
        await poll("channel_live", params, http, account)

    reset = int(time.time()) + 40
    api.on(
        "GET",
        "/helix/streams",
        Reply(
            fixture("error_rate_limited.json"),
            status=429,
            headers={
                "Ratelimit-Limit": "800",
                "Ratelimit-Remaining": "0",
                "Ratelimit-Reset": str(reset),
            },
        ),
    )
    with pytest.raises(RateLimited, match="rate limit") as caught:
        await poll("channel_live", params, http, account)
    assert caught.value.retry_after is not None and 30 < caught.value.retry_after <= 40

    api.on("GET", "/helix/streams", Reply(fixture("error_bad_request.json"), status=400))
    with pytest.raises(PermanentError, match="Malformed query params"):
        await poll("channel_live", params, http, account)

    api.on("GET", "/helix/streams", Reply(fixture("error_server.json"), status=503))
    with pytest.raises(TransientError, match=r"Twitch had a problem .* \(HTTP 503\)"):
        await poll("channel_live", params, http, account)


def test_the_declaration() -> None:
    spec = twitch.service.oauth
    assert spec is not None and spec.authorize_url == "https://id.twitch.tv/oauth2/authorize"
    assert spec.token_url == "https://id.twitch.tv/oauth2/token"
    assert spec.redirect_uri() == "http://localhost:17563/callback"
    # Twitch documents no PKCE (twitchdev/issues#1097: "PKCE is not supported"), so the
    # app is a confidential client with a secret.
    assert spec.pkce is False and spec.client_secret_required
    assert "Confidential" in spec.client_help
    assert twitch.service.api_base_url == "https://api.twitch.tv/helix"
    assert set(twitch.service.triggers) == {"channel_live", "new_video_or_clip"}
    assert twitch.service.reactions == {}
    icon = Path(__file__).parents[2] / "resources" / "icons" / twitch.service.icon
    assert icon.is_file()


async def test_removing_the_account_revokes_its_access_token_at_twitch(
    http: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twitch's /oauth2/revoke takes the client id and the access token, answers 200
    # with no body, and 400 {"status": 400, "message": "Invalid token"} for a bad one.
    fake = FakeProvider()
    fake.on("POST", "/oauth2/revoke", Reply(status=200))
    assert twitch.service.oauth is not None
    async with serve(fake.handle) as base:
        spec = replace(twitch.service.oauth, revoke_url=f"{base}/oauth2/revoke")
        tokens = TokenSet(TOKEN, "eyJfMzUtNDU0OC04MWYwLTQ5MDY5ODY4NGNlMSJ9%asdfasdf=")
        assert await revoke(spec, OAuthClient(CLIENT_ID, "app-secret"), http, tokens)
        fake.on("POST", "/oauth2/revoke", Reply({"status": 400, "message": "Invalid token"},
                                                status=400))
        assert not await revoke(spec, OAuthClient(CLIENT_ID, "app-secret"), http, tokens)
    form = fake.seen[0].form
    assert form["token"] == TOKEN and form["client_id"] == CLIENT_ID  # not the refresh token
