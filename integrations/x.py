"""X (Twitter): new posts from a user, mentions and search results; post and reply."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

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
)

if TYPE_CHECKING:
    from engine import HttpClient, HttpResponse

MAX_RESULTS = 20
POST_LENGTH = 280
#: Fields asked for with every list of posts (the author's handle comes as an expansion).
POST_QUERY = {
    "tweet.fields": "created_at,author_id,conversation_id",
    "expansions": "author_id",
    "user.fields": "username,name",
}
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_POST_URL_RE = re.compile(r"(?:x|twitter)\.com/[A-Za-z0-9_]+/status(?:es)?/(\d+)")
#: X's pay-per-use rates in US$, from https://docs.x.com/x-api/getting-started/pricing
#: (read 2026-12-06). X charges a resource once per UTC day however often it is fetched.
POST_READ = 0.005
USER_READ = 0.010
POST_CREATE = 0.015
POST_CREATE_WITH_URL = 0.200
ACCESS_NOTE = (
    "X's API is pay-per-use: before connecting, buy credits in the X Developer Console "
    "(https://console.x.com, Billing) and set a spending limit there. Every post X "
    f"returns costs ${POST_READ:.3f}, a profile ${USER_READ:.3f}, a post or reply you "
    f"publish ${POST_CREATE:.3f} (${POST_CREATE_WITH_URL:.2f} when its text holds a link); "
    "X charges the same post or profile once per UTC day. Rates from "
    "https://docs.x.com/x-api/getting-started/pricing on 2026-12-06; the console shows "
    "the current ones."
)


async def _whoami(http: HttpClient, token: str) -> str:
    """The @username of the account a token belongs to."""
    resp = await http.get(
        _url("/users/me"), headers={"Authorization": f"Bearer {token}"}, check=False
    )
    _check(resp, "your profile")
    return str(_object(resp, "your profile").get("data", {}).get("username") or "X")


service = Service(
    "x",
    "X (Twitter)",
    "New posts from an account, mentions of you and search results on X; post and "
    "reply as your X account.",
    icon="x.svg",
    account_label="X account",
    access_note=ACCESS_NOTE,
    auth=AuthKind.OAUTH2,
    api_base_url="https://api.x.com/2",
    oauth=OAuth2Spec(
        authorize_url="https://twitter.com/i/oauth2/authorize",
        token_url="https://api.x.com/2/oauth2/token",  # noqa: S106 - an address
        revoke_url="https://api.x.com/2/oauth2/revoke",
        apps_url="https://x.com/settings/connected_apps",
        scopes=("tweet.read", "tweet.write", "users.read", "offline.access"),
        # X matches the callback URL exactly, port included.
        fixed_port=17571,
        pkce=True,
        userinfo=_whoami,
        register_url="https://console.x.com",
        client_help="(X Developer Console, https://console.x.com → your app → User "
        "authentication settings: type “Native App” (a public client, no secret), "
        "permissions “Read and write”, and this exact callback URL. X's API is "
        "pay-per-use: buy credits under Billing first, or every request is refused.)",
    ),
)

_POST_FIELDS = [
    Field("id", "Post id", "1861123456789012345"),
    Field("text", "Text", "New firmware for the garden sensors is out."),
    Field("author", "Author (@username, without @)", "martakowal"),
    Field("author_name", "Author's name", "Marta Kowal"),
    Field("url", "Address", "https://x.com/martakowal/status/1861123456789012345"),
    Field("created_at", "Posted at (UTC, ISO 8601)", "2026-11-22T10:41:06.000Z"),
    Field("conversation_id", "Conversation id", "1861123456789012345"),
]


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _message(resp: HttpResponse) -> str:
    """X's own explanation (``detail``/``title``, or the ``errors`` list)."""
    try:
        data = resp.json()
    except PermanentError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(data[k]) for k in ("detail", "title") if data.get(k)][:1]
    for error in data.get("errors") or []:
        if isinstance(error, dict) and (error.get("detail") or error.get("message")):
            parts.append(str(error.get("detail") or error.get("message")))
    return "; ".join(parts)


def _reset_wait(resp: HttpResponse) -> float | None:
    reset = resp.header("x-rate-limit-reset")
    if reset and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return resp.retry_after()


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for an X answer that is not a success."""
    status = resp.status
    if status < 300:
        return
    message = _message(resp)
    said = f": {message}" if message else ""
    if status == 429 or (status == 403 and resp.header("x-rate-limit-remaining") == "0"):
        wait = _reset_wait(resp)
        when = f"; it resets in {wait:.0f} s" if wait is not None else ""
        raise RateLimited(f"X's rate limit for {what} is used up{when}", wait)
    if status == 401:
        raise AuthError(f"X refused the account's token{said}: reconnect the account")
    if status == 403 and "duplicate" in message.lower():
        raise PermanentError(f"X refused {what}{said}")
    if status == 403:
        raise AuthError(
            f"X does not let this account reach {what}{said}. X's API is pay-per-use: check "
            "that your app has credits left in the X Developer Console (https://console.x.com,"
            " Billing), is attached to a project there, and, for posting, has the “Read and "
            "write” permission"
        )
    if status == 404:
        raise PermanentError(f"X could not find {what}: check it")
    if status >= 500:
        raise TransientError(f"X had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"X refused the request for {what} (HTTP {status}){said}")


def _object(resp: HttpResponse, what: str) -> dict[str, Any]:
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"X answered {what} with something unexpected")
    return data


async def _get(ctx: PollContext, path: str, what: str, query: Mapping[str, str]) -> dict[str, Any]:
    resp = await ctx.require_account(service).get(_url(path), params=dict(query), check=False)
    _check(resp, what)
    data = _object(resp, what)
    # X answers some failures with 200 and only "errors" (e.g. a suspended user).
    if "data" not in data and data.get("errors") and not data.get("meta"):
        raise PermanentError(f"X could not show {what}: {_message(resp)}")
    return data


def _username(value: Any) -> str:
    text = str(value or "").strip().lstrip("@")
    match = re.search(r"(?:x|twitter)\.com/([A-Za-z0-9_]{1,15})", text)
    if match:
        text = match.group(1)
    if not _USERNAME_RE.match(text):
        raise PermanentError(
            f"{value!r} is not an X username: write it as on the profile, e.g. @XDevelopers"
        )
    return text


async def _new_posts(ctx: PollContext, path: str, what: str,
                     query: dict[str, str]) -> PollResult:
    """The posts of a timeline newer than the newest one seen (X bills every post it
    returns, so after the first check only new ones are asked for)."""
    since = str(ctx.state.get(f"since_id:{path}") or "")
    if since:
        query = {**query, "since_id": since}
    items = _posts(await _get(ctx, path, what, query))
    if items:
        ctx.state[f"since_id:{path}"] = max([str(i.key) for i in items], key=int)
    return PollResult(items)


async def _user_id(ctx: PollContext, username: str | None) -> str:
    """The numeric id of ``username`` (``None``: the account's own), kept in the state."""
    key = f"user_id:{(username or '').lower()}"
    if ctx.state.get(key):
        return str(ctx.state[key])
    path = f"/users/by/username/{quote(username)}" if username else "/users/me"
    what = f"user @{username}" if username else "your profile"
    user = (await _get(ctx, path, what, {})).get("data") or {}
    if not user.get("id"):
        raise PermanentError(f"X could not find {what}: check the username")
    ctx.state[key] = str(user["id"])
    return str(user["id"])


def _posts(data: Mapping[str, Any]) -> list[Item]:
    users = {
        str(u.get("id")): u
        for u in (data.get("includes") or {}).get("users") or []
        if isinstance(u, dict)
    }
    items = []
    for post in data.get("data") or []:
        if not isinstance(post, dict) or not post.get("id"):
            continue
        author = users.get(str(post.get("author_id")), {})
        handle = str(author.get("username") or "")
        post_id = str(post["id"])
        url = f"https://x.com/{handle or 'i/web'}/status/{post_id}"
        items.append(
            Item(
                post_id,
                {
                    "id": post_id,
                    "text": post.get("text") or "",
                    "author": handle,
                    "author_name": author.get("name") or "",
                    "url": url,
                    "created_at": post.get("created_at"),
                    "conversation_id": post.get("conversation_id"),
                },
            )
        )
    # Newest first (post ids grow with time).
    return sorted(items, key=lambda i: int(str(i.key)), reverse=True)


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_post_from_user",
    "New post from an account",
    "Fires for each new post of an X account. Cost (X's pay-per-use credits): "
    f"${POST_READ:.3f} for each new post found (a check that finds none costs nothing), "
    f"${USER_READ:.3f} for the author's profile sent with them (once a day), and "
    f"${USER_READ:.3f} once to look the account up; the first check reads up to "
    f"{MAX_RESULTS} recent posts (${MAX_RESULTS * POST_READ:.2f}) and fires none.",
    params=[
        Param(
            "username",
            ParamType.TEXT,
            "Account",
            help="The @username (or profile address) whose posts to watch.",
            example="@XDevelopers",
        ),
        Param(
            "replies",
            ParamType.BOOL,
            "Include replies and reposts",
            help="Also fire for the account's replies and reposts.",
            required=False,
            default=False,
            example=False,
        ),
    ],
    fields=_POST_FIELDS,
    default_interval=900,
    min_interval=120,
)
async def new_post_from_user(ctx: PollContext) -> PollResult:
    username = _username(ctx.params.get("username"))
    user_id = await _user_id(ctx, username)
    query = {**POST_QUERY, "max_results": str(MAX_RESULTS)}
    if not ctx.params.get("replies"):
        query["exclude"] = "replies,retweets"
    return await _new_posts(ctx, f"/users/{user_id}/tweets", f"posts of @{username}", query)


@service.poll_trigger(
    "new_mention",
    "New mention",
    "Fires for each post that mentions your account. Cost (X's pay-per-use credits): "
    f"${POST_READ:.3f} for each new mention found (a check that finds none costs nothing), "
    f"${USER_READ:.3f} for each author's profile sent with them (once a day), and "
    f"${USER_READ:.3f} once to look your account up; the first check reads up to "
    f"{MAX_RESULTS} recent mentions (${MAX_RESULTS * POST_READ:.2f}) and fires none.",
    fields=_POST_FIELDS,
    default_interval=900,
    min_interval=120,
)
async def new_mention(ctx: PollContext) -> PollResult:
    user_id = await _user_id(ctx, None)
    query = {**POST_QUERY, "max_results": str(MAX_RESULTS)}
    return await _new_posts(ctx, f"/users/{user_id}/mentions", "your mentions", query)


@service.poll_trigger(
    "new_post_matching_search",
    "New post matching a search",
    "Fires for each new post (of the last 7 days) that matches a search. Cost (X's "
    f"pay-per-use credits): each check reads the {MAX_RESULTS} newest matches at "
    f"${POST_READ:.3f} a post, and X charges a post once per UTC day: about "
    f"${MAX_RESULTS * POST_READ:.2f} a day for a quiet search, plus ${POST_READ:.3f} for "
    f"each new match and ${USER_READ:.3f} for each author's profile sent with them.",
    params=[
        Param(
            "query",
            ParamType.TEXT,
            "Search",
            help="X search syntax: words, #hashtags, from:user, -is:retweet, lang:en "
            "(512 characters at most).",
            example="#gardening -is:retweet lang:en",
        ),
    ],
    fields=_POST_FIELDS,
    default_interval=900,
    min_interval=120,
)
async def new_post_matching_search(ctx: PollContext) -> PollResult:
    search = str(ctx.params.get("query") or "").strip()
    if not search or len(search) > 512:
        raise PermanentError("write a search of 1 to 512 characters, e.g. #gardening lang:en")
    query = {**POST_QUERY, "query": search, "max_results": str(MAX_RESULTS)}
    data = await _get(ctx, "/tweets/search/recent", f"the search {search!r}", query)
    return PollResult(_posts(data))


# ---------------------------------------------------------------------- reactions


async def _create_post(ctx: ReactionContext, body: dict[str, Any], what: str) -> dict[str, Any]:
    text = str(body["text"])
    if len(text) > POST_LENGTH:
        raise PermanentError(
            f"the post is {len(text)} characters long; X allows {POST_LENGTH} (shorten it, "
            "e.g. {{ trigger.text[:250] }})"
        )
    resp = await ctx.require_account(service).post(_url("/tweets"), json_body=body, check=False)
    _check(resp, what)
    post = _object(resp, what).get("data") or {}
    post_id = str(post.get("id") or "")
    if not post_id:
        raise PermanentError(f"X answered {what} without the new post's id")
    handle = ctx.account.name if ctx.account else "i/web"
    return {"id": post_id, "url": f"https://x.com/{handle}/status/{post_id}"}


_TEXT = Param(
    "text",
    ParamType.MULTILINE,
    "Text",
    help=f"What to post ({POST_LENGTH} characters at most). X charges "
    f"${POST_CREATE_WITH_URL:.2f} instead of ${POST_CREATE:.3f} for a post with a link in it.",
    example="New release: {{ trigger.name }} {{ trigger.url }}",
)
_OUT = [
    Field("id", "Post id", "1861123456789012399"),
    Field("url", "Address", "https://x.com/martakowal/status/1861123456789012399"),
]


@service.reaction(
    "post",
    "Post",
    "Publishes a post as your X account. Cost (X's pay-per-use credits): "
    f"${POST_CREATE:.3f} a post, ${POST_CREATE_WITH_URL:.2f} when its text holds a link.",
    params=[_TEXT],
    fields=_OUT,
    retry=False,
)
async def post(ctx: ReactionContext) -> Mapping[str, Any]:
    return await _create_post(ctx, {"text": ctx.params["text"]}, "a new post")


@service.reaction(
    "reply",
    "Reply",
    "Replies to a post as your X account. Cost (X's pay-per-use credits): "
    f"${POST_CREATE:.3f} a reply, ${POST_CREATE_WITH_URL:.2f} when its text holds a link.",
    params=[
        Param(
            "post",
            ParamType.TEXT,
            "Post",
            help="The post to reply to: its id (e.g. {{ trigger.id }}) or its address.",
            example="{{ trigger.id }}",
            templated=True,
        ),
        _TEXT,
    ],
    fields=_OUT,
    retry=False,
)
async def reply(ctx: ReactionContext) -> Mapping[str, Any]:
    target = str(ctx.params.get("post") or "").strip()
    match = _POST_URL_RE.search(target)
    post_id = match.group(1) if match else target
    if not post_id.isdigit():
        raise PermanentError(
            f"{target!r} is not an X post: give its id (digits) or its x.com/…/status/… address"
        )
    body = {"text": ctx.params["text"], "reply": {"in_reply_to_tweet_id": post_id}}
    return await _create_post(ctx, body, f"a reply to post {post_id}")
