"""Spotify: saved tracks, playlists, new releases and what plays; control playback."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from engine import (
    AuthError,
    AuthKind,
    Field,
    Item,
    OAuth2Spec,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    RateLimited,
    ReactionContext,
    Service,
    TransientError,
    iso_time,
)

if TYPE_CHECKING:
    from engine import HttpClient, HttpResponse

PAGE = 50
#: Get Playlist Items: "Maximum: 50"; Spotify answers a larger limit with 400 "Invalid
#: limit" (https://developer.spotify.com/documentation/web-api/reference/get-playlists-tracks,
#: read 2026-12-06).
PLAYLIST_PAGE = 50
#: Followed artists whose albums one poll looks at (one call each); the next poll
#: goes on with the next ones, so every artist is looked at in turn.
ARTISTS_PER_POLL = 20
_ID_RE = re.compile(r"^[A-Za-z0-9]{22}$")


async def _whoami(http: HttpClient, token: str) -> str:
    """The display name (else the user id) of the account a token belongs to."""
    resp = await http.get(_url("/v1/me"), headers={"Authorization": f"Bearer {token}"}, check=False)
    _check(resp, "your profile")
    data = resp.json()
    return str(data.get("display_name") or data.get("id"))


service = Service(
    "spotify",
    "Spotify",
    "Saved tracks, playlist additions, new releases of artists you follow and what is "
    "playing; add to playlists, save tracks and control playback as your Spotify account.",
    icon="spotify.svg",
    auth=AuthKind.OAUTH2,
    access_note="The Web API is free, but an app in development mode (the kind you create "
    "in Spotify's dashboard) works only while its owner has Spotify Premium, and only for "
    "the accounts (5 at most) added under User Management in the app's settings (Spotify's "
    "February 2026 rules). Such apps cannot read playlists made by Spotify (Today's Top "
    "Hits, Discover Weekly, Daily Mix…): watch a playlist you made, or copy its songs to "
    "one of yours.",
    api_base_url="https://api.spotify.com",
    oauth=OAuth2Spec(
        authorize_url="https://accounts.spotify.com/authorize",
        token_url="https://accounts.spotify.com/api/token",  # noqa: S106 - an address
        apps_url="https://www.spotify.com/account/apps/",
        scopes=(
            "user-library-read",
            "user-library-modify",
            "playlist-read-private",
            "playlist-modify-public",
            "playlist-modify-private",
            "user-follow-read",
            "user-read-currently-playing",
            "user-read-playback-state",
            "user-modify-playback-state",
        ),
        # Spotify refuses "localhost" redirect URIs; 127.0.0.1 with any port is allowed.
        loopback_host="127.0.0.1",
        pkce=True,
        userinfo=_whoami,
        register_url="https://developer.spotify.com/dashboard",
        client_help="(Spotify: https://developer.spotify.com/dashboard → Create app, tick "
        "“Web API”; add http://127.0.0.1/callback as a Redirect URI — Spotify refuses "
        "“localhost”, and accepts any port on 127.0.0.1. Copy the Client ID; with PKCE no "
        "secret is needed. An app in development mode works only while its owner has "
        "Spotify Premium, and for the accounts added under User Management)",
    ),
)

_PLAYLIST = Param(
    "playlist",
    ParamType.TEXT,
    "Playlist",
    help="The playlist's link (Share → Copy link to playlist), its spotify:playlist: URI, "
    "or its id. Use a playlist you or a friend made: Spotify does not let apps in "
    "development mode read its own playlists (Today's Top Hits, Discover Weekly, Daily Mix…).",
    example="https://open.spotify.com/playlist/3cEYpjA9oz9GiPac4AsH4n",
)
_TRACK = Param(
    "track",
    ParamType.TEXT,
    "Track",
    help="The track's link (Share → Copy song link), its spotify:track: URI, or its id.",
    example="{{ trigger.uri }}",
)
_TRACK_FIELDS = [
    Field("id", "Track id", "11dFghVXANMlKmJXsNCbNl"),
    Field("uri", "Track URI", "spotify:track:11dFghVXANMlKmJXsNCbNl"),
    Field("name", "Title", "Cut To The Feeling"),
    Field("artists", "Artists", "Carly Rae Jepsen"),
    Field("album", "Album", "Cut To The Feeling"),
    Field("url", "Link", "https://open.spotify.com/track/11dFghVXANMlKmJXsNCbNl"),
    Field("duration_ms", "Length (ms)", 207959),
]


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _spotify_id(value: Any, kind: str) -> str:
    """The id in a link (open.spotify.com/<kind>/ID), a URI (spotify:<kind>:ID) or an id."""
    text = str(value or "").strip()
    if text.startswith(f"spotify:{kind}:"):
        text = text.rsplit(":", 1)[1]
    elif text.startswith(("https://", "http://")):
        segments = [s for s in urlsplit(text).path.split("/") if s]
        text = segments[segments.index(kind) + 1] if kind in segments[:-1] else ""
    if not _ID_RE.match(text):
        raise PermanentError(
            f"{value!r} is not a Spotify {kind}: paste its link (Share → Copy link), "
            f"e.g. https://open.spotify.com/{kind}/11dFghVXANMlKmJXsNCbNl"
        )
    return text


def _error(resp: HttpResponse) -> tuple[str, str]:
    """Spotify's message and reason (e.g. ``PREMIUM_REQUIRED``) from an error body."""
    try:
        data = resp.json()
    except PermanentError:
        return resp.text()[:200].strip(), ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or ""), str(error.get("reason") or "")
    if isinstance(data, dict):  # the accounts service: {"error": "...", "error_description"}
        return str(data.get("error_description") or error or ""), ""
    return "", ""


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Spotify answer that is not a success."""
    status = resp.status
    if status < 300:
        return
    message, reason = _error(resp)
    said = f": {message}" if message else ""
    if status == 429:
        wait = resp.retry_after()
        when = f"; try again in {wait:.0f} s" if wait is not None else ""
        raise RateLimited(f"Spotify asks this app to slow down{when}", wait)
    if status == 401:
        raise AuthError(f"Spotify refused the account's token{said}: reconnect the account")
    if reason == "PREMIUM_REQUIRED":
        raise PermanentError(
            "Spotify lets only Premium accounts control playback: this step needs a "
            "Spotify Premium account"
        )
    if reason == "NO_ACTIVE_DEVICE":
        raise PermanentError(
            "no Spotify device is active: start Spotify on a phone, computer or speaker first"
        )
    if status == 403:
        raise AuthError(
            f"Spotify does not let this account reach {what}{said}. If the app is in "
            "development mode, add the account under User Management in Spotify's "
            "dashboard; else reconnect it to grant the permissions"
        )
    if status == 404:
        # Since 2024-11-27 Spotify answers 404 to apps in development mode for the
        # playlists it makes itself (editorial and algorithmic ones).
        made_by_spotify = (
            ". Apps in development mode cannot read playlists made by Spotify (Today's Top "
            "Hits, Discover Weekly, Daily Mix…): copy its songs to a playlist of your own "
            "and watch that one"
            if what.startswith("playlist ")
            else ""
        )
        raise PermanentError(
            f"Spotify has no {what}, or this account cannot see it{made_by_spotify}"
        )
    if status >= 500:
        raise TransientError(f"Spotify had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"Spotify refused the request for {what} (HTTP {status}){said}")


async def _get(ctx: PollContext, path: str, query: Mapping[str, str], what: str) -> HttpResponse:
    resp = await ctx.require_account(service).get(_url(path), params=query, check=False)
    _check(resp, what)
    return resp


def _object(resp: HttpResponse, what: str) -> dict[str, Any]:
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"Spotify answered {what} with something unexpected")
    return data



def _names(things: Any) -> str:
    return ", ".join(str(t.get("name")) for t in things or [] if isinstance(t, dict))


def _track(track: Mapping[str, Any]) -> dict[str, Any]:
    album = track.get("album") or track.get("show") or {}
    return {
        "id": track.get("id"),
        "uri": track.get("uri"),
        "name": track.get("name"),
        "artists": _names(track.get("artists")),
        "album": album.get("name") if isinstance(album, dict) else None,
        "url": (track.get("external_urls") or {}).get("spotify"),
        "duration_ms": track.get("duration_ms"),
    }


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_saved_track",
    "New liked song",
    "Fires for each track you save to Liked Songs.",
    fields=[*_TRACK_FIELDS, Field("added_at", "Saved at (UTC, ISO 8601)", "2025-03-14T09:26:53Z")],
    default_interval=300,
    min_interval=30,
)
async def new_saved_track(ctx: PollContext) -> PollResult:
    resp = await _get(ctx, "/v1/me/tracks", {"limit": str(PAGE)}, "your liked songs")
    items = []
    for entry in _object(resp, "your liked songs").get("items") or []:
        track = entry.get("track") if isinstance(entry, dict) else None
        if not isinstance(track, dict) or not track.get("id"):
            continue
        added = entry.get("added_at")
        data = {**_track(track), "added_at": added}
        items.append(Item(f"{track['id']}@{added}", data, at=iso_time(added)))
    return PollResult(items)


@service.poll_trigger(
    "new_track_in_playlist",
    "New track in a playlist",
    "Fires for each track or episode added to a playlist.",
    params=[_PLAYLIST],
    fields=[
        *_TRACK_FIELDS,
        Field("added_at", "Added at (UTC, ISO 8601)", "2025-03-14T09:26:53Z"),
        Field("added_by", "Added by (user id)", "jonas.eberle"),
        Field("playlist_id", "Playlist id", "3cEYpjA9oz9GiPac4AsH4n"),
    ],
    default_interval=300,
    min_interval=30,
)
async def new_track_in_playlist(ctx: PollContext) -> PollResult:
    """Playlists list oldest first, so the newest tracks are on the last page: the
    trigger remembers where that page starts and moves on when the playlist grew.
    Tracks fire by when they were added (a track may be moved anywhere)."""
    playlist = _spotify_id(ctx.params.get("playlist"), "playlist")
    path = f"/v1/playlists/{quote(playlist)}/items"
    what = f"playlist {playlist}"

    async def page(offset: int) -> dict[str, Any]:
        query = {
            "limit": str(PLAYLIST_PAGE),
            "offset": str(offset),
            "additional_types": "track,episode",
        }
        return _object(await _get(ctx, path, query, what), what)

    offset = int(ctx.state.get("offset") or 0)
    data = await page(offset)
    total = int(data.get("total") or 0)
    last = max(0, total - PLAYLIST_PAGE)
    if last != offset:  # grew past this page, or shrank below it
        offset = last
        data = await page(offset)
    ctx.state["offset"] = offset
    items = []
    for entry in reversed(data.get("items") or []):  # newest first
        # "item" since Spotify's 2026 API changes; "track" before them.
        track = (entry.get("item") or entry.get("track")) if isinstance(entry, dict) else None
        if not isinstance(track, dict) or not (track.get("id") or track.get("uri")):
            continue
        added = entry.get("added_at")
        adder = entry.get("added_by") or {}
        items.append(
            Item(
                f"{track.get('id') or track.get('uri')}@{added}",
                {
                    **_track(track),
                    "added_at": added,
                    "added_by": adder.get("id") if isinstance(adder, dict) else None,
                    "playlist_id": playlist,
                },
                at=iso_time(added),
            )
        )
    return PollResult(items)


def _released_since(album: Mapping[str, Any], since: datetime) -> bool:
    """Whether a release date (``2025``, ``2025-03`` or ``2025-03-14``) is on or after
    ``since`` (a year or month counts from its first day)."""
    text = str(album.get("release_date") or "")
    parts = [*text.split("-"), "01", "01"][:3]
    try:
        released = datetime(int(parts[0]), int(parts[1]), int(parts[2]), tzinfo=UTC)
    except ValueError:
        return False
    return released >= since


@service.poll_trigger(
    "new_release_from_followed_artist",
    "New release by an artist you follow",
    f"Fires for each new album or single of the artists you follow. Each check looks at "
    f"{ARTISTS_PER_POLL} artists in turn (one request each), so with many followed "
    "artists a release is noticed within a few checks.",
    params=[
        Param(
            "days",
            ParamType.INTEGER,
            "Released within (days)",
            help="Only releases dated this many days back or newer fire (keeps an artist "
            "you start following from firing their whole back catalogue).",
            required=False,
            default=14,
            minimum=1,
            maximum=365,
            example=14,
        ),
    ],
    fields=[
        Field("id", "Album id", "4aawyAB9vmqN3uQ7FjRGTy"),
        Field("uri", "Album URI", "spotify:album:4aawyAB9vmqN3uQ7FjRGTy"),
        Field("name", "Title", "Global Warming"),
        Field("type", "Kind (album, single, compilation)", "album"),
        Field("artists", "Artists", "Pitbull"),
        Field("release_date", "Release date", "2025-03-14"),
        Field("total_tracks", "Number of tracks", 18),
        Field("url", "Link", "https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy"),
        Field(
            "image",
            "Cover image",
            "https://i.scdn.co/image/ab67616d00001e02ff9ca10b55ce82ae553c8228",
        ),
    ],
    default_interval=3600,
    min_interval=900,
)
async def new_release_from_followed_artist(ctx: PollContext) -> PollResult:
    query = {"type": "artist", "limit": str(ARTISTS_PER_POLL)}
    if ctx.state.get("after"):
        query["after"] = str(ctx.state["after"])
    resp = await _get(ctx, "/v1/me/following", query, "the artists you follow")
    artists = _object(resp, "the artists you follow").get("artists") or {}
    following = [a for a in artists.get("items") or [] if isinstance(a, dict) and a.get("id")]
    # Next time the next artists; after the last ones, from the start again.
    ctx.state["after"] = (
        (artists.get("cursors") or {}).get("after") if artists.get("next") else None
    )
    since = datetime.now(UTC) - timedelta(days=int(ctx.params.get("days") or 14))
    items = []
    for artist in following:
        what = f"the releases of {artist.get('name') or artist['id']}"
        albums = await _get(
            ctx,
            f"/v1/artists/{quote(str(artist['id']))}/albums",
            {"include_groups": "album,single", "limit": "10"},
            what,
        )
        for album in _object(albums, what).get("items") or []:
            if not isinstance(album, dict) or not album.get("id"):
                continue
            if not _released_since(album, since):
                continue
            images = album.get("images") or [{}]
            items.append(
                Item(
                    str(album["id"]),
                    {
                        "id": album.get("id"),
                        "uri": album.get("uri"),
                        "name": album.get("name"),
                        "type": album.get("album_type"),
                        "artists": _names(album.get("artists")),
                        "release_date": album.get("release_date"),
                        "total_tracks": album.get("total_tracks"),
                        "url": (album.get("external_urls") or {}).get("spotify"),
                        "image": images[0].get("url") if isinstance(images[0], dict) else None,
                    },
                )
            )
    # Newest first by release date, which is only a day (or a month, or a year).
    items.sort(key=lambda i: str(i.data.get("release_date")), reverse=True)
    return PollResult(items)


@service.poll_trigger(
    "now_playing_changed",
    "Now playing changed",
    "Fires when a different track or episode starts playing on your account.",
    fields=[
        *_TRACK_FIELDS,
        Field("type", "Kind (track or episode)", "track"),
        Field("device", "Playing on", "Kitchen speaker"),
    ],
    default_interval=30,
    min_interval=10,
)
async def now_playing_changed(ctx: PollContext) -> PollResult:
    resp = await _get(
        ctx,
        "/v1/me/player/currently-playing",
        {"additional_types": "track,episode"},
        "what is playing",
    )
    if resp.status == 204 or not resp.body:
        ctx.state.pop("current", None)  # nothing plays: the next track fires, even the same
        return PollResult()
    data = _object(resp, "what is playing")
    item = data.get("item")
    if not data.get("is_playing") or not isinstance(item, dict) or not item.get("uri"):
        return PollResult()  # paused, or an ad
    current = ctx.state.get("current") or {}
    if current.get("uri") != item["uri"]:
        current = {"uri": item["uri"], "key": f"{item['uri']}@{int(time.time())}"}
        ctx.state["current"] = current
    device = data.get("device") or {}
    return PollResult(
        [
            Item(
                str(current["key"]),
                {
                    **_track(item),
                    "type": data.get("currently_playing_type") or item.get("type"),
                    "device": device.get("name") if isinstance(device, dict) else None,
                },
            )
        ]
    )


# ---------------------------------------------------------------------- reactions


async def _send(
    ctx: ReactionContext,
    method: str,
    path: str,
    what: str,
    body: Any = None,
    query: Mapping[str, str] | None = None,
) -> HttpResponse:
    resp = await ctx.require_account(service).request(
        method, _url(path), json_body=body, params=query, check=False
    )
    _check(resp, what)
    return resp


@service.reaction(
    "add_to_playlist",
    "Add a track to a playlist",
    "Adds a track at the end of one of your playlists (added again if it is there).",
    params=[_PLAYLIST, _TRACK],
    fields=[Field("snapshot_id", "Playlist version", "AAAAB8C+GbbOShsTCZAdUe0Ti1lNNVHd")],
    retry=False,
)
async def add_to_playlist(ctx: ReactionContext) -> Mapping[str, Any]:
    playlist = _spotify_id(ctx.params["playlist"], "playlist")
    track = _spotify_id(ctx.params["track"], "track")
    resp = await _send(
        ctx,
        "POST",
        f"/v1/playlists/{quote(playlist)}/items",
        f"playlist {playlist}",
        {"uris": [f"spotify:track:{track}"]},
    )
    return {"snapshot_id": _object(resp, "the playlist").get("snapshot_id")}


@service.reaction(
    "save_track",
    "Like a song",
    "Saves a track to your Liked Songs (nothing changes if it is there).",
    params=[_TRACK],
    fields=[Field("id", "Track id", "11dFghVXANMlKmJXsNCbNl")],
)
async def save_track(ctx: ReactionContext) -> Mapping[str, Any]:
    track = _spotify_id(ctx.params["track"], "track")
    uri = f"spotify:track:{track}"
    await _send(ctx, "PUT", "/v1/me/library", f"track {track}", query={"uris": uri})
    return {"id": track}


_ACTIONS = {
    "play": ("PUT", "/v1/me/player/play"),
    "pause": ("PUT", "/v1/me/player/pause"),
    "next": ("POST", "/v1/me/player/next"),
    "previous": ("POST", "/v1/me/player/previous"),
}


@service.reaction(
    "playback",
    "Control playback",
    "Plays, pauses or skips on your active Spotify device (needs Spotify Premium).",
    params=[
        Param(
            "action",
            ParamType.CHOICE,
            "Action",
            help="What to do on the device that is playing (or last played).",
            choices=(
                ("play", "Play"),
                ("pause", "Pause"),
                ("next", "Next track"),
                ("previous", "Previous track"),
            ),
            example="pause",
        ),
        Param(
            "what",
            ParamType.TEXT,
            "Play this",
            help="For Play: a track, album or playlist link or URI to start. Empty: "
            "resume what was playing.",
            required=False,
            example="https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy",
        ),
    ],
    fields=[Field("action", "Action done", "pause")],
)
async def playback(ctx: ReactionContext) -> Mapping[str, Any]:
    action = str(ctx.params["action"])
    method, path = _ACTIONS[action]
    body: dict[str, Any] | None = None
    what = str(ctx.params.get("what") or "").strip()
    if action == "play" and what:
        if what.startswith("spotify:"):
            named = what.split(":")[1:2]
        else:
            named = [s for s in urlsplit(what).path.split("/") if s]
        kind = next((k for k in ("track", "album", "playlist") if k in named), "")
        if not kind:
            raise PermanentError(
                f"{what!r} is not a Spotify track, album or playlist: paste its link"
            )
        uri = f"spotify:{kind}:{_spotify_id(what, kind)}"
        body = {"uris": [uri]} if kind == "track" else {"context_uri": uri}
    await _send(ctx, method, path, "the player", body)
    return {"action": action}
