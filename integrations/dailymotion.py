"""Dailymotion: new videos of a channel or for a search; publish a video by its address."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

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
    ReactionContext,
    Service,
    TransientError,
)

if TYPE_CHECKING:
    from engine import HttpClient, HttpResponse

LIMIT = 30
VIDEO_FIELDS = (
    "id,title,description,url,thumbnail_720_url,created_time,duration,channel,"
    "owner.screenname,owner.username"
)
DESCRIPTION_LENGTH = 5_000
CHANNELS = (
    ("news", "News"),
    ("music", "Music"),
    ("videogames", "Gaming"),
    ("tech", "Tech"),
    ("school", "Education"),
    ("lifestyle", "Lifestyle"),
    ("travel", "Travel"),
    ("animals", "Animals"),
    ("sport", "Sports"),
    ("fun", "Comedy & entertainment"),
    ("shortfilms", "Short films"),
    ("creation", "Creation"),
    ("auto", "Auto-moto"),
    ("people", "Celebrities"),
    ("kids", "Kids"),
    ("tv", "TV"),
    ("webcam", "Webcam"),
)


async def _whoami(http: HttpClient, token: str) -> str:
    resp = await http.get(
        _url("/me", {"fields": "id,screenname,username"}),
        headers={"Authorization": f"Bearer {token}"},
        check=False,
    )
    _check(resp, "your user profile")
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError("Dailymotion answered /me with something that is not an object")
    return str(data.get("username") or data.get("screenname") or data.get("id"))


service = Service(
    "dailymotion",
    "Dailymotion",
    "New Dailymotion videos from a channel or for a search; publish a video from its "
    "address as your Dailymotion account.",
    icon="dailymotion.svg",
    auth=AuthKind.OAUTH2,
    api_base_url="https://api.dailymotion.com",
    oauth=OAuth2Spec(
        authorize_url="https://www.dailymotion.com/oauth/authorize",
        token_url="https://api.dailymotion.com/oauth/token",  # noqa: S106 - an address
        scopes=("manage_videos", "userinfo"),
        # No PKCE: Dailymotion documents no code_challenge or code_verifier, only the
        # client secret (authorize: response_type, client_id, redirect_uri, scope).
        pkce=False,
        client_secret_required=True,
        fixed_port=17564,
        userinfo=_whoami,
        register_url="https://www.dailymotion.com/settings/developer",
        client_help="(Dailymotion: in Partner HQ or https://www.dailymotion.com/settings/"
        "developer create an API key of type “Public API”; set its callback URL to "
        "http://127.0.0.1:17564/callback. The API key is the client id, the API secret "
        "the client secret.)",
    ),
    api_key=ApiKeySpec(
        "Access token",
        "An OAuth access token for your Dailymotion account with the manage_videos and "
        "userinfo scopes. It expires after a few hours and cannot be renewed here: "
        "connecting with OAuth is better.",
        userinfo=_whoami,
    ),
)


# ---------------------------------------------------------------------- the API


def _url(path: str, query: Mapping[str, Any] | None = None) -> str:
    url = service.api_base_url.rstrip("/") + path
    return url + "?" + urlencode(query) if query else url


def _error(resp: HttpResponse) -> tuple[str, str]:
    """Dailymotion's ``error.message`` and ``error.type`` from an error body."""
    try:
        data = resp.json()
    except PermanentError:
        return "", ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or ""), str(error.get("type") or "")
    return "", ""


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Dailymotion answer that is not a success."""
    status = resp.status
    if status < 300:
        return
    message, kind = _error(resp)
    said = f": {message}" if message else ""
    if status == 429 or kind == "rate_limit_exceeded":
        raise RateLimited(
            "Dailymotion's rate limit for this account is used up", resp.retry_after()
        )
    if status == 401:
        raise AuthError(f"Dailymotion refused the account's token{said}: reconnect the account")
    if status == 403:
        raise AuthError(
            f"Dailymotion does not let this account reach {what}{said}. Reconnect it "
            "with the manage_videos scope"
        )
    if status == 404:
        raise PermanentError(f"Dailymotion has no {what}: check the name")
    if status >= 500:
        raise TransientError(f"Dailymotion had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"Dailymotion refused the request for {what}{said}")


async def _videos(ctx: PollContext, path: str, query: Mapping[str, str], what: str) -> PollResult:
    full = {**query, "sort": "recent", "fields": VIDEO_FIELDS, "limit": str(LIMIT)}
    resp = await ctx.require_account(service).get(_url(path, full), check=False)
    _check(resp, what)
    data = resp.json()
    videos = data.get("list") if isinstance(data, dict) else None
    if not isinstance(videos, list):
        raise PermanentError(f"Dailymotion answered for {what} without a list of videos")
    return PollResult([
        Item(str(v["id"]), _video(v), at=_created(v))
        for v in videos if isinstance(v, dict) and v.get("id")
    ])


def _created(video: Mapping[str, Any]) -> datetime | None:
    """When the video was uploaded: ``created_time`` is in Unix seconds."""
    created = video.get("created_time")
    return datetime.fromtimestamp(created, UTC) if isinstance(created, int | float) else None


def _video(video: Mapping[str, Any]) -> dict[str, Any]:
    created = _created(video)
    when = created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else None
    description = str(video.get("description") or "")
    if len(description) > DESCRIPTION_LENGTH:
        description = description[:DESCRIPTION_LENGTH] + "…"
    return {
        "id": video.get("id"),
        "title": video.get("title") or "",
        "description": description,
        "url": video.get("url"),
        "thumbnail_url": video.get("thumbnail_720_url"),
        "duration": video.get("duration"),
        "channel": video.get("channel") or "",
        "owner": video.get("owner.screenname") or "",
        "owner_username": video.get("owner.username") or "",
        "created_at": when,
    }


_VIDEO_FIELDS = [
    Field("id", "Video id", "x8vx1ab"),
    Field("title", "Title", "Greenhouse time-lapse, March"),
    Field("description", "Description", "Four weeks of basil in 60 seconds."),
    Field("url", "Address", "https://www.dailymotion.com/video/x8vx1ab"),
    Field("thumbnail_url", "Thumbnail (720 px)", "https://s1.dmcdn.net/v/VGRxd1a0v8P/x720"),
    Field("duration", "Length (s)", 61),
    Field("channel", "Category", "lifestyle"),
    Field("owner", "Uploader", "Marta Kowal"),
    Field("owner_username", "Uploader's username", "marta-kowal"),
    Field("created_at", "Uploaded at (UTC, ISO 8601)", "2025-03-14T09:26:53Z"),
]


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_video_from_channel",
    "New video from a channel",
    "Fires for each new public video of a Dailymotion channel (user).",
    params=[
        Param(
            "user",
            ParamType.TEXT,
            "Channel",
            help="The channel's username, as in dailymotion.com/USERNAME, or its id.",
            example="marta-kowal",
        )
    ],
    fields=_VIDEO_FIELDS,
    default_interval=900,
    min_interval=120,
)
async def new_video_from_channel(ctx: PollContext) -> PollResult:
    user = str(ctx.params["user"]).strip().rstrip("/")
    if "dailymotion.com/" in user:
        user = user.split("dailymotion.com/", 1)[1].split("/", 1)[0].split("?", 1)[0]
    if not user or not all(c.isalnum() or c in "-_." for c in user):
        raise PermanentError(
            f"{ctx.params['user']!r} is not a Dailymotion channel: write its username, "
            "as in dailymotion.com/USERNAME"
        )
    return await _videos(ctx, f"/user/{quote(user)}/videos", {}, f"channel {user!r}")


@service.poll_trigger(
    "new_video_matching_search",
    "New video for a search",
    "Fires for each new public Dailymotion video that matches a search.",
    params=[
        Param(
            "search",
            ParamType.TEXT,
            "Search for",
            help="Words to search for in titles, descriptions and tags.",
            example="greenhouse time-lapse",
        )
    ],
    fields=_VIDEO_FIELDS,
    default_interval=900,
    min_interval=120,
)
async def new_video_matching_search(ctx: PollContext) -> PollResult:
    search = str(ctx.params["search"]).strip()  # the engine refuses an empty one
    return await _videos(ctx, "/videos", {"search": search}, f"videos for {search!r}")


# ---------------------------------------------------------------------- reactions


@service.reaction(
    "publish_video_by_url",
    "Publish a video from its address",
    "Creates and publishes a video on your Dailymotion channel from a video file's "
    "address. Dailymotion downloads the file itself, so the address must be public (a "
    "direct link to the file, not a page); for a private file use Dailymotion's upload "
    "flow (GET /file/upload, then POST the file to the upload_url it gives) and pass the "
    "address that returns.",
    params=[
        Param(
            "url",
            ParamType.URL,
            "Video file address",
            help="A public direct link to the video file (MP4, MOV…).",
            example="https://example.org/videos/greenhouse-march.mp4",
        ),
        Param(
            "title",
            ParamType.TEXT,
            "Title",
            help="The video's title.",
            example="Greenhouse time-lapse, March",
        ),
        Param(
            "channel",
            ParamType.CHOICE,
            "Category",
            help="The Dailymotion category (they call it channel) the video goes in.",
            choices=CHANNELS,
            default="lifestyle",
            required=False,
            example="lifestyle",
        ),
        Param(
            "description",
            ParamType.MULTILINE,
            "Description",
            help="Shown under the video.",
            required=False,
            example="Four weeks of basil in 60 seconds.",
        ),
        Param(
            "for_kids",
            ParamType.BOOL,
            "Made for children",
            help="Dailymotion asks this of every published video (children's privacy law).",
            required=False,
            default=False,
            example=False,
        ),
    ],
    fields=[
        Field("id", "Video id", "x8vx1ab"),
        Field("url", "Address", "https://www.dailymotion.com/video/x8vx1ab"),
        Field("status", "Processing status", "processing"),
    ],
    retry=False,
    timeout=60,
)
async def publish_video_by_url(ctx: ReactionContext) -> Mapping[str, Any]:
    form = {
        "url": str(ctx.params["url"]),
        "title": str(ctx.params["title"]),
        "channel": str(ctx.params.get("channel") or "lifestyle"),
        "published": "true",
        "is_created_for_kids": "true" if ctx.params.get("for_kids") else "false",
    }
    if ctx.params.get("description"):
        form["description"] = str(ctx.params["description"])
    resp = await ctx.require_account(service).request(
        "POST", _url("/me/videos", {"fields": "id,url,status"}), data=form, check=False
    )
    _check(resp, "your videos")
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError("Dailymotion answered the upload with something that is not an object")
    return {"id": data.get("id"), "url": data.get("url"), "status": data.get("status")}
