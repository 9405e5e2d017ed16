"""Spotify against a local server that answers with Spotify-shaped responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

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
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import spotify
from tests.integrations.provider import FakeProvider, Reply, Seen, load_fixture, serve

#: Every paged Web API endpoint Hookline reads documents "Maximum: 50" for `limit`
#: (https://developer.spotify.com/documentation/web-api/reference/get-playlists-tracks,
#: read 2026-12-06) and answers more with 400 {"error": {"status": 400, "message":
#: "Invalid limit"}}.
MAX_LIMIT = 50

TOKEN = "BQDtest-spotify-token"
#: A playlist a user made (Spotify's own, e.g. 37i9dQZF1DXcBWIGoYBM5M, answer 404 to apps
#: in development mode since 2024-11-27).
PLAYLIST = "3cEYpjA9oz9GiPac4AsH4n"
TRACK = "11dFghVXANMlKmJXsNCbNl"


def fixture(name: str) -> Any:
    return load_fixture("spotify", name)


class FakeSpotify(FakeProvider):
    """Spotify's Web API, which refuses a page larger than it documents."""

    async def handle(self, request: web.Request) -> web.Response:
        limit = request.query.get("limit", "")
        if limit.isdigit() and int(limit) > MAX_LIMIT:
            self.seen.append(Seen(request.method, request.path, dict(request.query),
                                  dict(request.headers), None))
            return web.json_response(fixture("error_invalid_limit.json"), status=400)
        return await super().handle(request)


@pytest.fixture
async def sp(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeSpotify(
        not_found=Reply(fixture("error_not_found.json"), status=404),
        match_query=("offset", "after"),
        json_body=True,
    )
    async with serve(fake.handle) as base:
        monkeypatch.setattr(spotify.service, "api_base_url", base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(spotify.service, TOKEN, http, name="Marta Kowal")


def poll(
    trigger: str,
    params: dict[str, Any],
    http: HttpClient,
    account: AccountSession | None,
    state: dict[str, Any] | None = None,
) -> Any:
    spec = spotify.service.triggers[trigger]
    ctx = poll_context(spec, params, http, state=state)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(
    reaction: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = spotify.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


# ---------------------------------------------------------------------- triggers


async def test_new_saved_track(sp: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    sp.on("GET", "/v1/me/tracks", Reply(fixture("saved_tracks.json")))
    result = await poll("new_saved_track", {}, http, account)
    [seen] = sp.seen
    assert (seen.method, seen.path, seen.query) == ("GET", "/v1/me/tracks", {"limit": "50"})
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert [i.key for i in result.items] == [
        f"{TRACK}@2025-03-14T09:26:53Z",
        "3AJwUDP919kvQ9QcozQPxg@2025-03-10T18:02:00Z",
    ]
    assert result.items[0].data == {
        "id": TRACK,
        "uri": f"spotify:track:{TRACK}",
        "name": "Cut To The Feeling",
        "artists": "Carly Rae Jepsen",
        "album": "Cut To The Feeling",
        "url": f"https://open.spotify.com/track/{TRACK}",
        "duration_ms": 207959,
        "added_at": "2025-03-14T09:26:53Z",
    }


async def test_new_track_in_playlist_reads_the_last_page(
    sp: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    path = f"/v1/playlists/{PLAYLIST}/items"
    sp.on("GET", path, Reply(fixture("playlist_items.json")))
    state: dict[str, Any] = {}
    link = f"https://open.spotify.com/playlist/{PLAYLIST}?si=4f1e2a9c"
    result = await poll("new_track_in_playlist", {"playlist": link}, http, account, state)
    [seen] = sp.seen
    assert seen.path == path
    assert seen.query == {"limit": "50", "offset": "0", "additional_types": "track,episode"}
    # Newest first; the removed track (track: null) is left out.
    assert [i.data["name"] for i in result.items] == ["Cut To The Feeling", "Yellow"]
    assert result.items[0].key == f"{TRACK}@2025-03-14T09:26:53Z"
    assert result.items[0].data["added_by"] == "jonas.eberle"
    assert result.items[0].data["playlist_id"] == PLAYLIST

    # Apps in extended quota mode still get the pre-2026 shape ("track", not "item").
    grown = fixture("playlist_tracks.json") | {"total": 250}
    sp.on("GET", path, Reply(grown))
    sp.on("GET", f"{path}?offset=200", Reply(fixture("playlist_tracks.json") | {"total": 250}))
    later = await poll(
        "new_track_in_playlist", {"playlist": f"spotify:playlist:{PLAYLIST}"}, http, account, state
    )
    assert [s.query["offset"] for s in sp.seen[1:]] == ["0", "200"]
    assert [s.query["limit"] for s in sp.seen] == ["50"] * 3
    assert state["offset"] == 200
    assert [i.data["name"] for i in later.items] == ["Cut To The Feeling", "Yellow"]


async def test_a_playlist_made_by_spotify_says_what_to_watch_instead(
    sp: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    # Since 2024-11-27 development-mode apps get 404 for Spotify's own playlists
    # (developer.spotify.com/blog/2024-11-27-changes-to-the-web-api, read 2026-12-06).
    editorial = "37i9dQZF1DXcBWIGoYBM5M"
    sp.on("GET", f"/v1/playlists/{editorial}/items",
          Reply(fixture("error_not_found.json"), status=404))
    with pytest.raises(PermanentError, match="copy its songs to a playlist of your own"):
        await poll("new_track_in_playlist", {"playlist": editorial}, http, account)


def test_examples_name_things_a_development_mode_app_can_use() -> None:
    specs: list[TriggerSpec | ReactionSpec] = [*spotify.service.triggers.values(),
                                               *spotify.service.reactions.values()]
    params = [p for spec in specs for p in spec.params]
    for param in params:
        # 37i9dQZF1… ids are Spotify's own playlists, out of reach in development mode.
        assert "37i9dQZF1" not in str(param.example), param.name
    assert "Premium" in spotify.service.access_note
    assert "User Management" in spotify.service.access_note


async def test_songs_fire_in_the_order_they_were_added_whatever_the_listing_order(
    sp: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    liked = fixture("saved_tracks.json")
    liked["items"].reverse()  # oldest first
    sp.on("GET", "/v1/me/tracks", Reply(liked))
    playlist = fixture("playlist_items.json")
    playlist["items"].insert(0, playlist["items"].pop())  # the newest moved to the top
    sp.on("GET", f"/v1/playlists/{PLAYLIST}/items", Reply(playlist))
    saved = await poll("new_saved_track", {}, http, account)
    added = await poll("new_track_in_playlist", {"playlist": PLAYLIST}, http, account)
    assert [i.data["name"] for i in oldest_first(saved.items)] == ["Yellow", "Cut To The Feeling"]
    assert [i.data["name"] for i in oldest_first(added.items)] == ["Yellow", "Cut To The Feeling"]


async def test_new_releases_look_at_followed_artists_in_turn(
    sp: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    recent = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    coldplay = fixture("artist_albums_coldplay.json")
    coldplay["items"][0]["release_date"] = recent
    sp.on("GET", "/v1/me/following", Reply(fixture("following.json")))
    sp.on(
        "GET",
        "/v1/me/following?after=6sFIWsNpZYqfjUpaCgueju",
        Reply(fixture("following_last.json")),
    )
    sp.on("GET", "/v1/artists/4gzpq5DPGxSnKTe4SA8HAU/albums", Reply(coldplay))
    sp.on(
        "GET", "/v1/artists/6sFIWsNpZYqfjUpaCgueju/albums", Reply(fixture("artist_albums_crj.json"))
    )
    state: dict[str, Any] = {}

    result = await poll("new_release_from_followed_artist", {}, http, account, state)

    following, *albums = sp.seen
    assert following.query == {"type": "artist", "limit": "20"}
    assert [s.path for s in albums] == [
        "/v1/artists/4gzpq5DPGxSnKTe4SA8HAU/albums",
        "/v1/artists/6sFIWsNpZYqfjUpaCgueju/albums",
    ]
    assert albums[0].query == {"include_groups": "album,single", "limit": "10"}
    [item] = result.items  # Parachutes (2000) and Emotion (2015) are too old
    assert item.key == "2vnPOJbNa8YQK7eq4vR1hV"
    assert item.data == {
        "id": "2vnPOJbNa8YQK7eq4vR1hV",
        "uri": "spotify:album:2vnPOJbNa8YQK7eq4vR1hV",
        "name": "All My Love",
        "type": "single",
        "artists": "Coldplay",
        "release_date": recent,
        "total_tracks": 1,
        "url": "https://open.spotify.com/album/2vnPOJbNa8YQK7eq4vR1hV",
        "image": "https://i.scdn.co/image/ab67616d0000b273e5a2c8bb3e5d3f4a9c1b7d2e",
    }
    assert state["after"] == "6sFIWsNpZYqfjUpaCgueju"

    nothing = await poll("new_release_from_followed_artist", {}, http, account, state)
    assert sp.seen[3].query["after"] == "6sFIWsNpZYqfjUpaCgueju"
    assert nothing.items == [] and state["after"] is None  # from the start next time


async def test_now_playing_fires_once_per_track_and_again_after_a_stop(
    sp: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    path = "/v1/me/player/currently-playing"
    sp.on("GET", path, Reply(fixture("currently_playing.json")))
    state: dict[str, Any] = {}
    first = await poll("now_playing_changed", {}, http, account, state)
    assert sp.seen[0].query == {"additional_types": "track,episode"}
    [item] = first.items
    assert item.data["name"] == "Cut To The Feeling"
    assert item.data["device"] == "Kitchen speaker"
    assert item.data["type"] == "track"
    same = await poll("now_playing_changed", {}, http, account, state)
    assert [i.key for i in same.items] == [item.key]  # still the same: no new key

    sp.on("GET", path, Reply(None, status=204))
    stopped = await poll("now_playing_changed", {}, http, account, state)
    assert stopped.items == [] and "current" not in state

    sp.on("GET", path, Reply(fixture("currently_playing.json") | {"is_playing": False}))
    paused = await poll("now_playing_changed", {}, http, account, state)
    assert paused.items == []


# ---------------------------------------------------------------------- reactions


async def test_add_to_playlist(sp: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    sp.on("POST", f"/v1/playlists/{PLAYLIST}/items", Reply(fixture("snapshot.json"), 201))
    out = await react(
        "add_to_playlist",
        {"playlist": PLAYLIST, "track": f"https://open.spotify.com/intl-de/track/{TRACK}?si=x"},
        http,
        account,
    )
    [seen] = sp.seen
    assert seen.method == "POST"
    assert seen.body == {"uris": [f"spotify:track:{TRACK}"]}
    assert out == {"snapshot_id": "AAAAB8C+GbbOShsTCZAdUe0Ti1lNNVHd"}
    assert spotify.service.reactions["add_to_playlist"].retry is False


async def test_save_track(sp: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    sp.on("PUT", "/v1/me/library", Reply(None, status=200))
    out = await react("save_track", {"track": f"spotify:track:{TRACK}"}, http, account)
    [seen] = sp.seen
    assert (seen.method, seen.query, seen.body) == ("PUT", {"uris": f"spotify:track:{TRACK}"}, None)
    assert out == {"id": TRACK}


async def test_playback(sp: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    sp.on("PUT", "/v1/me/player/pause", Reply(None, status=204))
    sp.on("PUT", "/v1/me/player/play", Reply(None, status=204))
    sp.on("POST", "/v1/me/player/next", Reply(None, status=204))
    assert await react("playback", {"action": "pause"}, http, account) == {"action": "pause"}
    await react(
        "playback",
        {"action": "play", "what": f"https://open.spotify.com/playlist/{PLAYLIST}"},
        http,
        account,
    )
    await react("playback", {"action": "play", "what": f"spotify:track:{TRACK}"}, http, account)
    await react("playback", {"action": "next"}, http, account)
    assert [(s.method, s.path, s.body) for s in sp.seen] == [
        ("PUT", "/v1/me/player/pause", None),
        ("PUT", "/v1/me/player/play", {"context_uri": f"spotify:playlist:{PLAYLIST}"}),
        ("PUT", "/v1/me/player/play", {"uris": [f"spotify:track:{TRACK}"]}),
        ("POST", "/v1/me/player/next", None),
    ]


async def test_playback_without_premium_or_a_device(
    sp: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    sp.on("PUT", "/v1/me/player/pause", Reply(fixture("error_premium_required.json"), 403))
    with pytest.raises(PermanentError, match="needs a Spotify Premium account"):
        await react("playback", {"action": "pause"}, http, account)
    sp.on("PUT", "/v1/me/player/pause", Reply(fixture("error_no_active_device.json"), 404))
    with pytest.raises(PermanentError, match="no Spotify device is active: start Spotify"):
        await react("playback", {"action": "pause"}, http, account)


async def test_the_account_name_comes_from_the_token(sp: FakeProvider, http: HttpClient) -> None:
    sp.on("GET", "/v1/me", Reply(fixture("me.json")))
    spec = spotify.service.oauth
    assert spec is not None and spec.userinfo is not None
    assert await spec.userinfo(http, TOKEN) == "Marta Kowal"
    assert sp.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


# ---------------------------------------------------------------------- errors


async def test_a_refused_token_asks_for_reconnecting(
    sp: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    sp.on("GET", "/v1/me/tracks", Reply(fixture("error_expired_token.json"), 401))
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll("new_saved_track", {}, http, account)
    assert len(sp.seen) == 1


async def test_errors(sp: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    sp.on("GET", "/v1/me/tracks", Reply(fixture("error_forbidden.json"), 403))
    with pytest.raises(
        AuthError, match=r"Insufficient client scope\. If the app is in development"
    ):
        await poll("new_saved_track", {}, http, account)

    sp.on(
        "GET", "/v1/me/tracks", Reply(fixture("error_rate_limit.json"), 429, {"Retry-After": "7"})
    )
    with pytest.raises(RateLimited, match="try again in 7 s") as caught:
        await poll("new_saved_track", {}, http, account)
    assert caught.value.retry_after == 7

    with pytest.raises(PermanentError, match=f"Spotify has no playlist {PLAYLIST}"):
        await poll("new_track_in_playlist", {"playlist": PLAYLIST}, http, account)

    sp.on("GET", "/v1/me/tracks", Reply(fixture("error_server.json"), 502))
    with pytest.raises(TransientError, match=r"Spotify had a problem .* \(HTTP 502\)"):
        await poll("new_saved_track", {}, http, account)


async def test_bad_links_and_a_missing_account(http: HttpClient, account: AccountSession) -> None:
    with pytest.raises(PermanentError, match="is not a Spotify playlist: paste its link"):
        await poll("new_track_in_playlist", {"playlist": "Road trip"}, http, account)
    with pytest.raises(PermanentError, match="is not a Spotify track"):
        await react(
            "save_track", {"track": f"https://open.spotify.com/album/{TRACK}"}, http, account
        )
    with pytest.raises(PermanentError, match="is not a Spotify track, album or playlist"):
        await react("playback", {"action": "play", "what": "Yellow"}, http, account)
    with pytest.raises(PermanentError, match="is not a Spotify track, album or playlist"):
        await react("playback", {"action": "play", "what": "spotify:artist:x"}, http, account)
    with pytest.raises(AuthError, match="choose the Spotify account"):
        await react("save_track", {"track": TRACK}, http, None)


def test_the_declaration() -> None:
    spec = spotify.service.oauth
    assert spec is not None
    assert spec.authorize_url == "https://accounts.spotify.com/authorize"
    assert spec.token_url == "https://accounts.spotify.com/api/token"
    assert spec.pkce and not spec.client_secret_required
    assert spec.redirect_uri() == "http://127.0.0.1/callback"
    assert "user-modify-playback-state" in spec.scopes
    assert set(spotify.service.triggers) == {
        "new_saved_track",
        "new_track_in_playlist",
        "new_release_from_followed_artist",
        "now_playing_changed",
    }
    assert set(spotify.service.reactions) == {"add_to_playlist", "save_track", "playback"}
    icon = Path(__file__).parents[2] / "resources" / "icons" / spotify.service.icon
    assert icon.is_file()
