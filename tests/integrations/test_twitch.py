"""Twitch against a local server that answers with Helix-shaped responses."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

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
    """Helix and the token check, which finds the token valid unless told otherwise."""

    def __init__(self) -> None:
        super().__init__(
            not_found=Reply({"error": "Not Found", "status": 404, "message": ""}, status=404)
        )
        self.on("GET", "/oauth2/validate", Reply(fixture("validate.json")))

    def helix(self) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith("/helix/")]


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTwitch]:
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
    async with serve(fake.handle) as base:
        spec = replace(twitch.service.oauth, revoke_url=f"{base}/oauth2/revoke")  # type: ignore[type-var]
        tokens = TokenSet(TOKEN, "eyJfMzUtNDU0OC04MWYwLTQ5MDY5ODY4NGNlMSJ9%asdfasdf=")
        assert await revoke(spec, OAuthClient(CLIENT_ID, "app-secret"), http, tokens)
        fake.on("POST", "/oauth2/revoke", Reply({"status": 400, "message": "Invalid token"},
                                                status=400))
        assert not await revoke(spec, OAuthClient(CLIENT_ID, "app-secret"), http, tokens)
    form = fake.seen[0].form
    assert form["token"] == TOKEN and form["client_id"] == CLIENT_ID  # not the refresh token
