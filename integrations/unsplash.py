"""Unsplash: new photos for a search or from a photographer, with the required attribution."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from engine import (
    ApiKeySpec,
    AuthError,
    AuthKind,
    Field,
    Item,
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

PER_PAGE = 30
#: Unsplash asks for these on every link back to it (the API guidelines' attribution).
UTM = "utm_source=hookline&utm_medium=referral"
#: Unsplash's demo keys allow 50 requests an hour, production keys 5000; it resets hourly.
HOUR = 3600.0


def _headers(key: str) -> dict[str, str]:
    """Unsplash wants "Client-ID <key>", not Bearer, and names the API version."""
    return {"Authorization": f"Client-ID {key}", "Accept-Version": "v1"}


async def _whoami(http: HttpClient, token: str) -> str:
    """Proves an Access Key works; it belongs to an app, not a user, and Unsplash has no
    way to name the app from it (no part of the key goes in the name)."""
    resp = await http.get(_url("/photos") + "?per_page=1", headers=_headers(token), check=False)
    _check(resp, "photos")
    return "Unsplash app"


service = Service(
    "unsplash",
    "Unsplash",
    "New free photos on Unsplash for a search or from a photographer, with the credit "
    "line Unsplash requires.",
    icon="unsplash.svg",
    account_label="Unsplash Access Key",
    auth=AuthKind.API_KEY,
    api_base_url="https://api.unsplash.com",
    api_key=ApiKeySpec(
        "Access Key",
        "Register an app at https://unsplash.com/oauth/applications (New Application) and "
        "copy its Access Key (not the Secret key). A new app is in demo mode: 50 requests "
        "an hour. Unsplash's API guidelines require crediting the photographer and "
        "Unsplash wherever a photo is shown (use the trigger's attribution field) and "
        "telling Unsplash when a photo is used (the “Track a photo download” reaction).",
        userinfo=_whoami,
        authorize=_headers,
    ),
)


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _message(resp: HttpResponse) -> str:
    try:
        data = resp.json()
    except PermanentError:
        return ""
    errors = data.get("errors") if isinstance(data, dict) else None
    return "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for an Unsplash answer that is not a success."""
    status = resp.status
    if status < 300:
        return
    if status == 429 or (status == 403 and resp.header("X-Ratelimit-Remaining") == "0"):
        wait = resp.retry_after()
        raise RateLimited(
            "Unsplash's hourly request limit for this Access Key is used up (a demo app "
            "has 50 an hour; apply for production in the app's settings for more)",
            wait if wait is not None else HOUR,
        )
    message = _message(resp)
    said = f": {message}" if message else ""
    if status == 401:
        raise AuthError(
            f"Unsplash refused the Access Key{said}: add a new one in Hookline "
            "(`hookline accounts token unsplash`)"
        )
    if status == 403:
        raise AuthError(f"Unsplash does not let this Access Key reach {what}{said}")
    if status == 404:
        raise PermanentError(f"Unsplash has no {what}: check the name")
    if status >= 500:
        raise TransientError(f"Unsplash had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"Unsplash refused the request for {what}{said}")


async def _get(ctx: PollContext | ReactionContext, path: str, what: str) -> Any:
    # Sent as "Client-ID <key>" (the service's authorize); a refused key marks the
    # account as needing a reconnect.
    resp = await ctx.require_account(service).get(_url(path), check=False)
    _check(resp, what)
    return resp.json()


def _link(url: Any) -> str:
    text = str(url or "")
    if not text:
        return ""
    return text + ("&" if "?" in text else "?") + UTM


def _photo(photo: Mapping[str, Any]) -> dict[str, Any]:
    user = photo.get("user") or {}
    urls = photo.get("urls") or {}
    links = photo.get("links") or {}
    name = str(user.get("name") or user.get("username") or "")
    profile = _link((user.get("links") or {}).get("html"))
    page = _link(links.get("html"))
    return {
        "id": photo.get("id"),
        "description": photo.get("description") or photo.get("alt_description") or "",
        "alt_description": photo.get("alt_description") or "",
        "url": page,
        "image_url": urls.get("regular"),
        "full_url": urls.get("full"),
        "raw_url": urls.get("raw"),
        "thumb_url": urls.get("thumb"),
        "width": photo.get("width"),
        "height": photo.get("height"),
        "color": photo.get("color"),
        "likes": photo.get("likes"),
        "photographer": name,
        "photographer_username": user.get("username") or "",
        "photographer_url": profile,
        "attribution": f"Photo by {name} on Unsplash",
        "attribution_html": (
            f'Photo by <a href="{escape(profile)}">{escape(name)}</a> on '
            f'<a href="{escape("https://unsplash.com/?" + UTM)}">Unsplash</a>'
        ),
        "download_location": links.get("download_location"),
        "created_at": photo.get("created_at"),
    }



# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_photo",
    "New photo",
    "Fires for each new photo matching a search, or uploaded by a photographer. Show "
    "its attribution wherever the photo appears (Unsplash's API guidelines).",
    params=[
        Param(
            "query",
            ParamType.TEXT,
            "Search for",
            help="Words to search for. Give this or a photographer, not both.",
            required=False,
            example="basil plant",
        ),
        Param(
            "username",
            ParamType.TEXT,
            "From photographer",
            help="A photographer's username (the part after unsplash.com/@).",
            required=False,
            example="marta_kowal",
        ),
    ],
    fields=[
        Field("id", "Photo id", "Dwu85P9SOIk"),
        Field("description", "Description", "Basil seedlings on a windowsill"),
        Field("alt_description", "Alt text", "green plant in white pot"),
        Field("url", "Its page on unsplash.com", "https://unsplash.com/photos/Dwu85P9SOIk?" + UTM),
        Field(
            "image_url",
            "Image (1080 px wide)",
            "https://images.unsplash.com/photo-1417325384643-aac51acc9e5d?w=1080",
        ),
        Field(
            "full_url",
            "Image (full size)",
            "https://images.unsplash.com/photo-1417325384643-aac51acc9e5d?q=85",
        ),
        Field(
            "raw_url",
            "Image (raw, add your own size)",
            "https://images.unsplash.com/photo-1417325384643-aac51acc9e5d",
        ),
        Field(
            "thumb_url",
            "Thumbnail (200 px wide)",
            "https://images.unsplash.com/photo-1417325384643-aac51acc9e5d?w=200",
        ),
        Field("width", "Width (px)", 4000),
        Field("height", "Height (px)", 6000),
        Field("color", "Main colour", "#60544D"),
        Field("likes", "Likes", 24),
        Field("photographer", "Photographer", "Marta Kowal"),
        Field("photographer_username", "Photographer's username", "marta_kowal"),
        Field(
            "photographer_url", "Photographer's profile", "https://unsplash.com/@marta_kowal?" + UTM
        ),
        Field("attribution", "Credit line", "Photo by Marta Kowal on Unsplash"),
        Field(
            "attribution_html",
            "Credit line (HTML, with links)",
            'Photo by <a href="https://unsplash.com/@marta_kowal?utm_source=hookline&amp;'
            'utm_medium=referral">Marta Kowal</a> on <a href="https://unsplash.com/?'
            'utm_source=hookline&amp;utm_medium=referral">Unsplash</a>',
        ),
        Field(
            "download_location",
            "Download tracking address",
            "https://api.unsplash.com/photos/Dwu85P9SOIk/download",
        ),
        Field("created_at", "Uploaded at (ISO 8601)", "2025-03-14T09:26:53Z"),
    ],
    default_interval=900,
    min_interval=300,
)
async def new_photo(ctx: PollContext) -> PollResult:
    query = str(ctx.params.get("query") or "").strip()
    username = str(ctx.params.get("username") or "").strip().removeprefix("@")
    if bool(query) == bool(username):
        raise PermanentError(
            "give words to search for or a photographer's username (one of the two, not both)"
        )
    if query:
        path = "/search/photos?" + urlencode(
            {"query": query, "order_by": "latest", "per_page": PER_PAGE}
        )
        data = await _get(ctx, path, f"photos for {query!r}")
        photos = data.get("results") if isinstance(data, dict) else None
    else:
        path = f"/users/{quote(username, safe='')}/photos?" + urlencode(
            {"order_by": "latest", "per_page": PER_PAGE}
        )
        photos = await _get(ctx, path, f"photographer {username!r}")
    if not isinstance(photos, list):
        raise PermanentError("Unsplash answered without a list of photos")
    return PollResult([
        Item(str(p["id"]), _photo(p), at=iso_time(p.get("created_at")))
        for p in photos if isinstance(p, dict) and p.get("id")
    ])


# ---------------------------------------------------------------------- reactions


@service.reaction(
    "track_download",
    "Track a photo download",
    "Tells Unsplash a photo was used (downloaded, posted, set as a wallpaper), as its API "
    "guidelines require; gives the address to fetch the image from.",
    params=[
        Param(
            "photo_id",
            ParamType.TEXT,
            "Photo id",
            help="The photo's id, e.g. {{ trigger.id }}.",
            example="Dwu85P9SOIk",
            templated=True,
        )
    ],
    fields=[
        Field(
            "url",
            "Image address to download",
            "https://images.unsplash.com/photo-1417325384643-aac51acc9e5d?ixid=M3w",
        ),
    ],
)
async def track_download(ctx: ReactionContext) -> Mapping[str, Any]:
    photo = str(ctx.params["photo_id"]).strip()
    if not photo or "/" in photo:
        raise PermanentError(f"{photo!r} is not a photo id: use {{{{ trigger.id }}}}")
    data = await _get(ctx, f"/photos/{quote(photo, safe='')}/download", f"photo {photo!r}")
    return {"url": data.get("url") if isinstance(data, dict) else None}
