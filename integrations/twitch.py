"""Twitch: a channel going live, and new videos and clips of a channel."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from engine import (
    ApiKeySpec,
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
    Service,
    TransientError,
    iso_time,
)

if TYPE_CHECKING:
    from engine import AccountSession, HttpClient, HttpResponse

#: Tells which OAuth app (Client-Id) a token belongs to, and whose it is.
VALIDATE_URL = "https://id.twitch.tv/oauth2/validate"
#: "Your app must validate the OAuth token when it starts and on an hourly basis
#: thereafter" (https://dev.twitch.tv/docs/authentication/validate-tokens/, read 2026-12-06).
VALIDATE_EVERY = 3600.0
FIRST = 20
#: Get Clips: "first" is at most 100; clips come sorted by views, not by date, so every
#: page of the time window is read (https://dev.twitch.tv/docs/api/reference/#get-clips,
#: read 2026-12-06). Twitch returns at most 1,000 clips for one query.
CLIP_PAGE = 100
CLIP_PAGES = 10
#: How far back new clips are looked for at most (the first check, or after a long pause).
CLIP_DAYS = 7
#: Clips are looked for from this long before the previous check (a clip may reach the
#: API a while after it was made).
CLIP_OVERLAP = timedelta(days=1)

#: Seconds on a steady clock (tests move it).
_clock = time.monotonic


@dataclass(frozen=True)
class _Checked:
    client_id: str
    at: float


#: sha256(token) → the token's Client-Id (Helix needs both, and they must match) and when
#: Twitch last said the token is valid.
_client_ids: dict[str, _Checked] = {}


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _ask(http: HttpClient, token: str) -> HttpResponse:
    # The documented form of the header is "OAuth <token>", not "Bearer".
    return await http.get(VALIDATE_URL, headers={"Authorization": f"OAuth {token}"}, check=False)


def _remember(resp: HttpResponse, token: str) -> dict[str, Any]:
    _check(resp, "the token check")
    data = resp.json()
    if not isinstance(data, dict) or not data.get("client_id"):
        raise PermanentError("Twitch's token check answered without a client id")
    _client_ids[_key(token)] = _Checked(str(data["client_id"]), _clock())
    return data


async def _validate(http: HttpClient, token: str) -> dict[str, Any]:
    resp = await _ask(http, token)
    if resp.status == 401:
        raise AuthError(
            "Twitch says the access token is invalid or expired: reconnect your Twitch "
            "account in Hookline"
        )
    return _remember(resp, token)


async def _client_id(ctx: PollContext, account: AccountSession) -> str:
    """The Client-Id of the account's token, from Twitch's token check, made when the
    token is first used and again at least hourly while it is."""
    token = await account.token()
    known = _client_ids.get(_key(token))
    if known is not None and _clock() - known.at < VALIDATE_EVERY:
        return known.client_id
    resp = await _ask(ctx.http, token)
    if resp.status == 401:
        # The token is no longer valid: the user disconnected Hookline on Twitch, or it
        # was revoked or expired. Sent through the account's session, it is refused there
        # too, and the session does what it does for every service's refused token: it
        # renews the token if it can, else marks the account as needing reconnecting
        # (the accounts list and a notification say so) and raises that.
        _client_ids.pop(_key(token), None)
        await account.request("GET", VALIDATE_URL, check=False)
        token = await account.token()
        resp = await _ask(ctx.http, token)
        if resp.status == 401:
            raise AuthError(
                "Twitch no longer accepts this account's access token: reconnect your "
                f"Twitch account in Hookline (Accounts, or `hookline accounts connect "
                f"{service.id}`)"
            )
    return str(_remember(resp, token)["client_id"])


async def _whoami(http: HttpClient, token: str) -> str:
    data = await _validate(http, token)
    return str(data.get("login") or data.get("user_id") or "Twitch app")


service = Service(
    "twitch",
    "Twitch",
    "A Twitch channel going live, and new videos (broadcasts, highlights, uploads) and "
    "clips of a channel.",
    icon="twitch.svg",
    auth=AuthKind.OAUTH2,
    access_note="The Twitch API is free; you register your own app at "
    "https://dev.twitch.tv/console/apps (a Confidential client: Twitch supports no PKCE, "
    "so it needs its secret). Hookline checks the account's token with Twitch when it "
    "starts using it and every hour after, as Twitch requires: if you disconnect Hookline "
    "under Twitch's Settings → Connections, the account is marked as needing reconnecting.",
    api_base_url="https://api.twitch.tv/helix",
    oauth=OAuth2Spec(
        authorize_url="https://id.twitch.tv/oauth2/authorize",
        token_url="https://id.twitch.tv/oauth2/token",  # noqa: S106 - an address
        # Twitch revokes access tokens (a refresh token dies with its access token).
        revoke_url="https://id.twitch.tv/oauth2/revoke",
        revoke_token="access_token",  # noqa: S106 - a token type's name
        apps_url="https://www.twitch.tv/settings/connections",
        scopes=(),
        # Twitch documents no PKCE (dev.twitch.tv/docs/authentication/getting-tokens-oauth,
        # read 2026-12-06) and its staff confirm it is not supported
        # (github.com/twitchdev/issues/issues/1097, 2025-08-08): a confidential client.
        pkce=False,
        client_secret_required=True,
        loopback_host="localhost",
        fixed_port=17563,
        userinfo=_whoami,
        register_url="https://dev.twitch.tv/console/apps",
        client_help="(Twitch: https://dev.twitch.tv/console/apps → Register Your "
        "Application, category “Other”, client type Confidential; add exactly "
        "http://localhost:17563/callback as an OAuth Redirect URL — Twitch matches it "
        "exactly and allows plain http only for localhost. Copy the Client ID and a new "
        "secret.)",
    ),
    api_key=ApiKeySpec(
        "User access token",
        "A Twitch user access token made with your own app (for example with the Twitch "
        "CLI: `twitch token -u`). No scopes are needed. Hookline asks Twitch which app it "
        "belongs to; it cannot be renewed, so connecting with OAuth is better.",
        userinfo=_whoami,
    ),
)

_CHANNEL = Param(
    "channel",
    ParamType.TEXT,
    "Channel",
    help="The channel's login, as in twitch.tv/LOGIN (an address works too).",
    example="marta_plays",
)


# ---------------------------------------------------------------------- the API


def _url(path: str, query: Mapping[str, str]) -> str:
    return service.api_base_url.rstrip("/") + path + "?" + urlencode(query)


def _login(params: Mapping[str, Any]) -> str:
    text = str(params.get("channel") or "").strip().rstrip("/")
    if "twitch.tv/" in text:
        text = text.split("twitch.tv/", 1)[1].split("/", 1)[0].split("?", 1)[0]
    login = text.lower().removeprefix("@")
    if not login or not all(c.isalnum() or c == "_" for c in login) or len(login) > 25:
        raise PermanentError(
            f"{params.get('channel')!r} is not a Twitch channel: write its login, as in "
            "twitch.tv/LOGIN"
        )
    return login


def _message(resp: HttpResponse) -> str:
    try:
        data = resp.json()
    except PermanentError:
        return ""
    return str(data.get("message") or "") if isinstance(data, dict) else ""


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Twitch answer that is not a success."""
    status = resp.status
    if status < 300:
        return
    message = _message(resp)
    said = f": {message}" if message else ""
    if status == 429:
        wait = resp.retry_after()
        reset = resp.header("Ratelimit-Reset")
        if wait is None and reset and reset.isdigit():
            wait = max(0.0, int(reset) - time.time())
        raise RateLimited("Twitch's rate limit for this app is used up", wait)
    if status == 401:
        raise AuthError(f"Twitch refused the account's token{said}: reconnect the account")
    if status == 403:
        raise AuthError(f"Twitch does not let this account reach {what}{said}")
    if status == 404:
        raise PermanentError(f"Twitch has no {what}")
    if status >= 500:
        raise TransientError(f"Twitch had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"Twitch refused the request for {what}{said}")


async def _helix_page(
    ctx: PollContext, path: str, query: Mapping[str, str], what: str
) -> tuple[list[dict[str, Any]], str]:
    """GET one page of a Helix list as the account, with the token's Client-Id: its
    rows (``data``) and the cursor of the next page ("" on the last)."""
    account = ctx.require_account(service)
    client_id = await _client_id(ctx, account)
    resp = await account.request(
        "GET", _url(path, query), headers={"Client-Id": client_id}, check=False
    )
    _check(resp, what)
    data = resp.json()
    rows = data.get("data") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise PermanentError(f"Twitch answered for {what} without a list")
    pagination = data.get("pagination") if isinstance(data, dict) else None
    cursor = pagination.get("cursor") if isinstance(pagination, dict) else None
    return [r for r in rows if isinstance(r, dict)], str(cursor or "")


async def _helix(ctx: PollContext, path: str, query: Mapping[str, str], what: str) -> list[Any]:
    """GET the first page of a Helix list (its ``data``)."""
    return (await _helix_page(ctx, path, query, what))[0]


async def _clips(ctx: PollContext, user_id: str, login: str) -> list[dict[str, Any]]:
    """Every clip of the channel made since shortly before the previous check.

    Twitch sorts clips by views: a new clip with few views on a busy channel is on a
    later page, so every page of the window is read (a clip counted once)."""
    now = datetime.now(UTC)
    since = now - timedelta(days=CLIP_DAYS)
    checked = iso_time(ctx.state.get("clips_checked_at"))
    if checked is not None:
        since = max(since, checked - CLIP_OVERLAP)
    query = {
        "broadcaster_id": user_id,
        "started_at": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "first": str(CLIP_PAGE),
    }
    clips: dict[str, dict[str, Any]] = {}
    cursor = ""
    for _ in range(CLIP_PAGES):
        page, cursor = await _helix_page(
            ctx, "/clips", {**query, **({"after": cursor} if cursor else {})},
            f"clips of {login!r}",
        )
        for clip in page:
            clips.setdefault(str(clip.get("id")), clip)
        if not cursor or not page:
            break
    ctx.state["clips_checked_at"] = now.isoformat()
    return [c for c in clips.values() if c.get("id")]


async def _user_id(ctx: PollContext, login: str) -> str:
    """The channel's user id (kept in the trigger's state once known)."""
    known = ctx.state.get("user")
    if isinstance(known, dict) and known.get("login") == login and known.get("id"):
        return str(known["id"])
    users = await _helix(ctx, "/users", {"login": login}, f"channel {login!r}")
    if not users:
        raise PermanentError(f"Twitch has no channel {login!r}: check the login")
    ctx.state["user"] = {"login": login, "id": str(users[0]["id"])}
    return str(users[0]["id"])


def _thumb(url: Any) -> str:
    return (
        str(url or "")
        .replace("%{width}", "1280")
        .replace("%{height}", "720")
        .replace("{width}", "1280")
        .replace("{height}", "720")
    )


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "channel_live",
    "Channel goes live",
    "Fires once when a Twitch channel starts a broadcast.",
    params=[_CHANNEL],
    fields=[
        Field("stream_id", "Broadcast id", "40952121085"),
        Field("channel", "Channel login", "marta_plays"),
        Field("channel_name", "Channel name", "Marta_Plays"),
        Field("title", "Stream title", "Building a greenhouse controller"),
        Field("game", "Category", "Science & Technology"),
        Field("viewer_count", "Viewers", 78),
        Field("started_at", "Started at (UTC, ISO 8601)", "2025-03-14T18:00:01Z"),
        Field("language", "Language", "en"),
        Field(
            "thumbnail_url",
            "Preview image",
            "https://static-cdn.jtvnw.net/previews-ttv/live_user_marta_plays-1280x720.jpg",
        ),
        Field("url", "Channel address", "https://www.twitch.tv/marta_plays"),
    ],
    default_interval=120,
    min_interval=30,
)
async def channel_live(ctx: PollContext) -> PollResult:
    login = _login(ctx.params)
    streams = await _helix(ctx, "/streams", {"user_login": login}, f"channel {login!r}")
    items = []
    for stream in streams:
        if stream.get("type") not in (None, "live"):
            continue
        items.append(
            Item(
                str(stream["id"]),
                {
                    "stream_id": str(stream["id"]),
                    "channel": stream.get("user_login") or login,
                    "channel_name": stream.get("user_name") or "",
                    "title": stream.get("title") or "",
                    "game": stream.get("game_name") or "",
                    "viewer_count": stream.get("viewer_count"),
                    "started_at": stream.get("started_at"),
                    "language": stream.get("language") or "",
                    "thumbnail_url": _thumb(stream.get("thumbnail_url")),
                    "url": f"https://www.twitch.tv/{stream.get('user_login') or login}",
                },
            )
        )
    return PollResult(items)


@service.poll_trigger(
    "new_video_or_clip",
    "New video or clip",
    "Fires for each new video (past broadcast, highlight, upload) or clip of a Twitch "
    "channel. Every clip made since the previous check fires, however few views it has "
    f"(the first check looks {CLIP_DAYS} days back and fires nothing).",
    params=[
        _CHANNEL,
        Param(
            "kind",
            ParamType.CHOICE,
            "What",
            help="Videos, clips, or both.",
            choices=(("both", "Videos and clips"), ("videos", "Videos"), ("clips", "Clips")),
            default="both",
            required=False,
            example="both",
        ),
    ],
    fields=[
        Field("kind", "Kind (video or clip)", "video"),
        Field("id", "Id", "2398736413"),
        Field("title", "Title", "Greenhouse controller, part 3"),
        Field("url", "Address", "https://www.twitch.tv/videos/2398736413"),
        Field("channel", "Channel login", "marta_plays"),
        Field("creator", "Made by (clips: the clipper)", "Marta_Plays"),
        Field("created_at", "Created at (UTC, ISO 8601)", "2025-03-14T18:00:01Z"),
        Field("duration", "Length", "3h2m15s"),
        Field("view_count", "Views", 341),
        Field(
            "thumbnail_url",
            "Thumbnail",
            "https://static-cdn.jtvnw.net/cf_vods/d2nvs31859zcd8/thumb0-1280x720.jpg",
        ),
        Field("video_type", "Video type (archive, highlight, upload; clips: empty)", "archive"),
    ],
    default_interval=600,
    min_interval=60,
)
async def new_video_or_clip(ctx: PollContext) -> PollResult:
    login = _login(ctx.params)
    kind = str(ctx.params.get("kind") or "both")
    user_id = await _user_id(ctx, login)
    entries: list[dict[str, Any]] = []
    if kind in ("both", "videos"):
        query = {"user_id": user_id, "sort": "time", "first": str(FIRST)}
        for video in await _helix(ctx, "/videos", query, f"videos of {login!r}"):
            entries.append(
                {
                    "kind": "video",
                    "id": str(video["id"]),
                    "title": video.get("title") or "",
                    "url": video.get("url"),
                    "channel": video.get("user_login") or login,
                    "creator": video.get("user_name") or "",
                    "created_at": video.get("created_at"),
                    "duration": video.get("duration"),
                    "view_count": video.get("view_count"),
                    "thumbnail_url": _thumb(video.get("thumbnail_url")),
                    "video_type": video.get("type") or "",
                }
            )
    if kind in ("both", "clips"):
        for clip in await _clips(ctx, user_id, login):
            entries.append(
                {
                    "kind": "clip",
                    "id": str(clip["id"]),
                    "title": clip.get("title") or "",
                    "url": clip.get("url"),
                    "channel": login,
                    "creator": clip.get("creator_name") or "",
                    "created_at": clip.get("created_at"),
                    "duration": clip.get("duration"),
                    "view_count": clip.get("view_count"),
                    "thumbnail_url": clip.get("thumbnail_url"),
                    "video_type": "",
                }
            )
    entries.sort(key=lambda e: str(e.get("created_at") or ""), reverse=True)
    return PollResult([Item(f"{e['kind']}:{e['id']}", e) for e in entries])
