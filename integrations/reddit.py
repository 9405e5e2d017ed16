"""Reddit: new posts in a subreddit, replies to your posts, saved items; post and reply."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
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

#: Reddit asks every client for a unique, descriptive User-Agent.
USER_AGENT = "desktop:org.hookline.app:1 (Hookline personal automation)"
HEADERS = {"User-Agent": USER_AGENT}
LIMIT = 25
TEXT_LENGTH = 10_000
SITE = "https://www.reddit.com"
#: Since November 2025 Reddit approves each new API client by hand under this policy
#: (r/redditdev, "Introducing the Responsible Builder Policy + new approval process for
#: API access"; read 2026-12-06).
POLICY_URL = "https://support.reddithelp.com/hc/articles/42728983564564"
#: A subreddit's public feed of new posts, which needs no account and no approval.
FEED_URL = SITE + "/r/{subreddit}/new/.rss"

_SUB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")
_THING_RE = re.compile(r"^t[13]_[a-z0-9]{1,13}$")
_COMMENTS_URL_RE = re.compile(r"/comments/([a-z0-9]{1,13})(?:/[^/]*/([a-z0-9]{1,13}))?")
_WITHOUT_APPROVAL = (
    "Without Reddit's approval, watch a subreddit with the RSS / Atom service's “New feed "
    f"item” instead: its feed is {FEED_URL.format(subreddit='NAME')} (no account needed)."
)


def feed_url(subreddit: str) -> str:
    """The public feed of a subreddit's new posts (for the RSS / Atom service)."""
    return FEED_URL.format(subreddit=_subreddit(subreddit))


async def _whoami(http: HttpClient, token: str) -> str:
    """The username of the account a token belongs to."""
    resp = await http.get(
        _url("/api/v1/me"), headers={**HEADERS, "Authorization": f"bearer {token}"}, check=False
    )
    _check(resp, "your profile")
    return str(_object(resp, "your profile").get("name") or "reddit")


service = Service(
    "reddit",
    "Reddit",
    "New posts in a subreddit, replies to your posts and items you save on Reddit; submit "
    "posts and reply as your Reddit account.",
    icon="reddit.svg",
    auth=AuthKind.OAUTH2,
    access_note="Since November 2025 Reddit's API needs Reddit's approval: new apps can no "
    "longer be made self-service. Request access under Reddit's Responsible Builder Policy "
    f"({POLICY_URL}; as a developer whose use is not a Devvit app, “file a ticket”) and "
    "describe this personal use; apps you made before then keep working. "
    + _WITHOUT_APPROVAL,
    api_base_url="https://oauth.reddit.com",
    oauth=OAuth2Spec(
        authorize_url="https://www.reddit.com/api/v1/authorize",
        token_url="https://www.reddit.com/api/v1/access_token",  # noqa: S106 - an address
        revoke_url="https://www.reddit.com/api/v1/revoke_token",
        apps_url="https://www.reddit.com/prefs/apps",
        scopes=("identity", "read", "submit", "history", "privatemessages"),
        # A refresh token only comes with a "permanent" grant.
        extra_authorize_params={"duration": "permanent"},
        # Reddit matches the redirect URI exactly, port included.
        fixed_port=17572,
        # Reddit does not support PKCE; an "installed app" has no secret (Reddit expects
        # HTTP Basic auth with "client_id:" at its token endpoint).
        pkce=False,
        client_secret_required=False,
        client_auth="basic",
        userinfo=_whoami,
        register_url="https://www.reddit.com/prefs/apps",
        client_help="(Reddit approves API access by hand since November 2025: request it under "
        f"the Responsible Builder Policy, {POLICY_URL}. Once approved, or with an app you "
        "made before: https://www.reddit.com/prefs/apps → your app of type “installed app” "
        "with this exact redirect URI; its client id is the string under the app's name. "
        "Not approved? Watch subreddits with the RSS / Atom service: "
        f"{FEED_URL.format(subreddit='NAME')})",
    ),
)

_POST_FIELDS = [
    Field("id", "Post id (fullname)", "t3_1gx4k2p"),
    Field("title", "Title", "My balcony tomatoes in November"),
    Field("text", "Text (self posts)", "Still fruiting thanks to the warm wall."),
    Field("link", "Linked address (link posts)", "https://i.redd.it/abc123.jpg"),
    Field("author", "Author (username)", "martakowal"),
    Field("subreddit", "Subreddit", "gardening"),
    Field("url", "Address on reddit.com", f"{SITE}/r/gardening/comments/1gx4k2p/my_balcony/"),
    Field("created_at", "Posted at (UTC, ISO 8601)", "2026-11-22T10:41:06+00:00"),
]


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Reddit answer that is not a success."""
    status = resp.status
    if status < 300:
        return
    if status == 429:
        wait = resp.retry_after()
        reset = resp.header("X-Ratelimit-Reset")
        if wait is None and reset:
            try:
                wait = max(0.0, float(reset))  # seconds until the window resets
            except ValueError:
                wait = None
        when = f"; it resets in {wait:.0f} s" if wait is not None else ""
        raise RateLimited(f"Reddit's rate limit for this account is used up{when}", wait)
    if status == 401:
        raise AuthError("Reddit refused the account's token: reconnect the account")
    if status == 403:
        raise AuthError(
            f"Reddit does not let this account reach {what} (private, quarantined or banned "
            "there, or a scope is missing: reconnect the account)"
        )
    if status == 404:
        raise PermanentError(f"Reddit could not find {what}: check the name")
    if status >= 500:
        raise TransientError(f"Reddit had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"Reddit refused the request for {what} (HTTP {status})")


def _object(resp: HttpResponse, what: str) -> dict[str, Any]:
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"Reddit answered {what} with something unexpected")
    return data


async def _listing(ctx: PollContext, path: str, what: str) -> list[tuple[str, dict[str, Any]]]:
    resp = await ctx.require_account(service).get(
        _url(path),
        headers=HEADERS,
        params={"limit": str(LIMIT), "raw_json": "1"},
        check=False,
    )
    _check(resp, what)
    data = _object(resp, what)
    # A subreddit that does not exist may answer 200 with a search redirect, not a listing.
    if data.get("kind") != "Listing":
        raise PermanentError(f"Reddit could not find {what}: check the name")
    children = (data.get("data") or {}).get("children") or []
    return [
        (str(c.get("kind")), c["data"])
        for c in children
        if isinstance(c, dict) and isinstance(c.get("data"), dict) and c["data"].get("name")
    ]


def _cut(text: Any) -> str:
    value = str(text or "")
    return value if len(value) <= TEXT_LENGTH else value[:TEXT_LENGTH] + "…"


def _created(data: Mapping[str, Any]) -> datetime | None:
    """When a post or comment was written: ``created_utc`` is in Unix seconds."""
    created = data.get("created_utc")
    return datetime.fromtimestamp(created, UTC) if isinstance(created, int | float) else None


def _when(data: Mapping[str, Any]) -> str | None:
    created = _created(data)
    return created.isoformat() if created else None


def _post(data: Mapping[str, Any]) -> dict[str, Any]:
    is_self = bool(data.get("is_self"))
    return {
        "id": data.get("name"),
        "title": data.get("title") or "",
        "text": _cut(data.get("selftext")),
        "link": None if is_self else data.get("url"),
        "author": data.get("author"),
        "subreddit": data.get("subreddit"),
        "url": SITE + str(data.get("permalink") or ""),
        "created_at": _when(data),
    }


def _subreddit(value: Any) -> str:
    text = str(value or "").strip().strip("/")
    text = re.sub(r"^(?:https?://(?:www\.|old\.)?reddit\.com/)?r/", "", text).split("/")[0]
    if not _SUB_RE.match(text):
        raise PermanentError(
            f"{value!r} is not a subreddit: write its name as in r/NAME, e.g. gardening"
        )
    return text


async def _me(ctx: PollContext) -> str:
    if not ctx.state.get("me"):
        resp = await ctx.require_account(service).get(_url("/api/v1/me"), headers=HEADERS,
                                                      check=False)
        _check(resp, "your profile")
        ctx.state["me"] = str(_object(resp, "your profile").get("name") or "")
    return str(ctx.state["me"])


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_post_in_subreddit",
    "New post in a subreddit",
    "Fires for each new post in a subreddit. " + _WITHOUT_APPROVAL,
    params=[
        Param(
            "subreddit",
            ParamType.TEXT,
            "Subreddit",
            help="Its name (as in r/NAME) or address.",
            example="gardening",
        ),
    ],
    fields=_POST_FIELDS,
    default_interval=600,
    min_interval=60,
)
async def new_post_in_subreddit(ctx: PollContext) -> PollResult:
    sub = _subreddit(ctx.params.get("subreddit"))
    things = await _listing(ctx, f"/r/{quote(sub)}/new", f"subreddit r/{sub}")
    return PollResult(
        [Item(str(d["name"]), _post(d), at=_created(d)) for kind, d in things if kind == "t3"]
    )


@service.poll_trigger(
    "new_comment_on_my_post",
    "New reply to my post",
    "Fires for each comment made directly on one of your posts (from your inbox).",
    fields=[
        Field("id", "Comment id (fullname)", "t1_lz9x0ab"),
        Field("text", "Comment", "Which variety is that?"),
        Field("author", "Written by", "jonaseberle"),
        Field("post_title", "On post", "My balcony tomatoes in November"),
        Field("subreddit", "Subreddit", "gardening"),
        Field("url", "Address on reddit.com", f"{SITE}/r/gardening/comments/1gx4k2p/_/lz9x0ab/"),
        Field("created_at", "Written at (UTC, ISO 8601)", "2026-11-22T11:05:30+00:00"),
    ],
    default_interval=600,
    min_interval=60,
)
async def new_comment_on_my_post(ctx: PollContext) -> PollResult:
    things = await _listing(ctx, "/message/inbox", "your inbox")
    items = []
    for kind, data in things:
        if kind != "t1" or data.get("type") != "post_reply":
            continue
        context = str(data.get("context") or "").split("?")[0]
        items.append(
            Item(
                str(data["name"]),
                {
                    "id": data["name"],
                    "text": _cut(data.get("body")),
                    "author": data.get("author"),
                    "post_title": data.get("link_title") or "",
                    "subreddit": data.get("subreddit"),
                    "url": SITE + context,
                    "created_at": _when(data),
                },
                at=_created(data),
            )
        )
    return PollResult(items)


@service.poll_trigger(
    "new_saved_item",
    "New saved item",
    "Fires when you save a post or a comment on Reddit.",
    fields=[
        Field("id", "Id (fullname)", "t3_1gx4k2p"),
        Field("kind", "Kind", "post"),
        Field("title", "Title (of the post)", "My balcony tomatoes in November"),
        Field("text", "Text", "Still fruiting thanks to the warm wall."),
        Field("author", "Author", "martakowal"),
        Field("subreddit", "Subreddit", "gardening"),
        Field("url", "Address on reddit.com", f"{SITE}/r/gardening/comments/1gx4k2p/my_balcony/"),
    ],
    default_interval=900,
    min_interval=60,
)
async def new_saved_item(ctx: PollContext) -> PollResult:
    me = await _me(ctx)
    things = await _listing(ctx, f"/user/{quote(me)}/saved", "your saved items")
    items = []
    # No time of their own: created_utc is when the post was written, not saved. Reddit
    # lists saved items most recently saved first, the order the engine expects.
    for kind, data in things:
        is_post = kind == "t3"
        items.append(
            Item(
                str(data["name"]),
                {
                    "id": data["name"],
                    "kind": "post" if is_post else "comment",
                    "title": data.get("title") if is_post else data.get("link_title"),
                    "text": _cut(data.get("selftext") if is_post else data.get("body")),
                    "author": data.get("author"),
                    "subreddit": data.get("subreddit"),
                    "url": SITE + str(data.get("permalink") or ""),
                },
            )
        )
    return PollResult(items)


# ---------------------------------------------------------------------- reactions


async def _form(ctx: ReactionContext, path: str, form: dict[str, str], what: str) -> Any:
    resp = await ctx.require_account(service).post(
        _url(path), headers=HEADERS, data={**form, "api_type": "json"}, check=False
    )
    _check(resp, what)
    answer = _object(resp, what).get("json") or {}
    errors = [e for e in answer.get("errors") or [] if isinstance(e, list) and e]
    if errors:
        said = "; ".join(str(e[1] if len(e) > 1 else e[0]) for e in errors)
        if any(e[0] == "RATELIMIT" for e in errors):
            raise RateLimited(f"Reddit asks to wait before {what}: {said}", None)
        raise PermanentError(f"Reddit refused {what}: {said}")
    return answer.get("data") or {}


@service.reaction(
    "submit_post",
    "Submit a post",
    "Posts to a subreddit as your Reddit account: text, or a link when you give one.",
    params=[
        Param(
            "subreddit",
            ParamType.TEXT,
            "Subreddit",
            help="Where to post (its name as in r/NAME).",
            example="test",
        ),
        Param(
            "title",
            ParamType.TEXT,
            "Title",
            help="The post's title.",
            example="{{ trigger.title }}",
        ),
        Param(
            "text",
            ParamType.MULTILINE,
            "Text",
            help="The post's text (Markdown). Left out for a link post.",
            required=False,
            example="Seen at {{ now }}.",
        ),
        Param(
            "link",
            ParamType.TEXT,
            "Link",
            help="An address to post as a link post instead of text.",
            required=False,
            example="{{ trigger.url }}",
        ),
    ],
    fields=[
        Field("id", "Post id (fullname)", "t3_1gx5m7q"),
        Field("url", "Address on reddit.com", f"{SITE}/r/test/comments/1gx5m7q/hello/"),
    ],
    retry=False,
)
async def submit_post(ctx: ReactionContext) -> Mapping[str, Any]:
    sub = _subreddit(ctx.params.get("subreddit"))
    form = {"sr": sub, "title": str(ctx.params["title"]), "resubmit": "true"}
    link = str(ctx.params.get("link") or "").strip()
    if link:
        if not link.startswith(("https://", "http://")):
            raise PermanentError(f"{link!r} is not a web address: start it with https://")
        form.update(kind="link", url=link)
    else:
        form.update(kind="self", text=str(ctx.params.get("text") or ""))
    data = await _form(ctx, "/api/submit", form, f"a post to r/{sub}")
    return {"id": data.get("name"), "url": data.get("url")}


@service.reaction(
    "reply",
    "Reply",
    "Replies to a post or a comment as your Reddit account.",
    params=[
        Param(
            "to",
            ParamType.TEXT,
            "Reply to",
            help="The post or comment: its id (e.g. {{ trigger.id }}, like t3_1gx4k2p) or "
            "its address on reddit.com.",
            example="{{ trigger.id }}",
            templated=True,
        ),
        Param(
            "text",
            ParamType.MULTILINE,
            "Text",
            help="The reply (Markdown).",
            example="Thanks, u/{{ trigger.author }}!",
        ),
    ],
    fields=[
        Field("id", "Comment id (fullname)", "t1_lz9y1cd"),
        Field("url", "Address on reddit.com", f"{SITE}/r/gardening/comments/1gx4k2p/_/lz9y1cd/"),
    ],
    retry=False,
)
async def reply(ctx: ReactionContext) -> Mapping[str, Any]:
    target = str(ctx.params.get("to") or "").strip()
    match = _COMMENTS_URL_RE.search(target)
    if match:
        target = f"t1_{match.group(2)}" if match.group(2) else f"t3_{match.group(1)}"
    if not _THING_RE.match(target):
        raise PermanentError(
            f"{ctx.params.get('to')!r} is not a Reddit post or comment: give its id (t3_… "
            "or t1_…) or its address"
        )
    data = await _form(
        ctx, "/api/comment", {"thing_id": target, "text": str(ctx.params["text"])}, "the reply"
    )
    things = data.get("things") or []
    comment = things[0].get("data") if things and isinstance(things[0], dict) else {}
    comment = comment if isinstance(comment, dict) else {}
    return {"id": comment.get("name"), "url": SITE + str(comment.get("permalink") or "")}
