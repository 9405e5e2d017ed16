"""Discord: channel messages, new server members and reactions seen by a bot (over the
Gateway while Hookline runs, by REST where the Gateway cannot be used); post messages
and embeds."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
    ServiceError,
    TransientError,
    iso_time,
)
from integrations import discord_gateway as gateway

if TYPE_CHECKING:
    from engine import HttpClient, HttpResponse

_log = logging.getLogger(__name__)

#: Messages read per poll (the API's maximum is 100).
MESSAGE_LIMIT = 50
#: Members per page (the API's maximum) and pages read per poll.
MEMBER_LIMIT = 1000
MEMBER_PAGES = 10
#: Seconds between checks when nothing comes: a Gateway event asks for a check at once
#: (``PollContext.check_soon``), so this only paces the REST fallback and idle checks.
CHECK_INTERVAL = 15.0
#: Seconds between REST checks while the Gateway cannot be used (the old cadence).
MESSAGE_REST_INTERVAL = 60.0
MEMBER_REST_INTERVAL = 300.0
CONTENT_LENGTH = 2000
#: Who a posted message may ping: people and roles, never @everyone / @here.
ALLOWED_MENTIONS = {"parse": ["users", "roles"]}
WEBHOOK_HOSTS = ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com")

_ID_RE = re.compile(r"^\d{15,21}$")
_WEBHOOK_PATH_RE = re.compile(r"^/api(?:/v\d+)?/webhooks/\d{15,21}/[A-Za-z0-9_-]+/?$")
_COLOR_RE = re.compile(r"^#?([0-9A-Fa-f]{6})$")
_CONTENT_NOTE = (
    " The bot must be in the server and see the channel; to read message text turn on "
    "“Message Content Intent” for the bot (Developer Portal → your app → Bot)."
)


def _bot(token: str) -> dict[str, str]:
    """Discord's header for a bot token (``Bot``, not ``Bearer``)."""
    return {"Authorization": f"Bot {token}"}


async def _whoami(http: HttpClient, token: str) -> str:
    """The bot's user name (GET /users/@me), which also proves the token works."""
    resp = await http.get(_api("/users/@me"), headers=_bot(token), check=False)
    user = _json(resp, "the bot's profile")
    return str(user.get("username") or "bot") if isinstance(user, dict) else "bot"


service = Service(
    "discord",
    "Discord",
    "Messages, reactions and new members in servers your Discord bot is in, as they "
    "happen; post messages and embeds as the bot or through a channel webhook.",
    icon="discord.svg",
    account_label="Discord bot",
    auth=AuthKind.API_KEY,
    api_base_url="https://discord.com/api/v10",
    api_key=ApiKeySpec(
        "Bot token",
        "Create an application at https://discord.com/developers/applications, open "
        "Bot → Reset Token and paste the token. Invite the bot to your server (OAuth2 → "
        "URL Generator, scope bot, permissions View Channels, Read Message History and "
        "Send Messages). Reading message text needs the Message Content Intent and "
        "watching new members the Server Members Intent (both on the Bot page).",
        userinfo=_whoami,
        authorize=_bot,
    ),
)


# ---------------------------------------------------------------------- the API


def _hide(text: str, secret: str) -> str:
    return text.replace(secret, "<hidden>") if secret else text


def _api(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


async def _call(
    ctx: PollContext | ReactionContext,
    method: str,
    path: str,
    what: str,
    *,
    params: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
) -> Any:
    """One call to the bot API as the step's bot; its JSON, or the engine error (a
    refused token marks the account as needing a reconnect)."""
    resp = await ctx.require_account(service).request(
        method,
        _api(path),
        params=params,
        json_body=dict(body) if body is not None else None,
        check=False,
    )
    return _json(resp, what)


def _json(resp: HttpResponse, what: str) -> Any:
    """The JSON of a success, or the engine error for Discord's answer."""
    try:
        data = json.loads(resp.body) if resp.body else None
    except ValueError:
        data = None
    status = resp.status
    if 200 <= status < 300:
        if data is None:
            raise TransientError(f"Discord answered {what} with something that is not JSON")
        return data
    message = str(data.get("message") or "") if isinstance(data, dict) else ""
    said = f": {message}" if message else ""
    if status == 429:
        wait = data.get("retry_after") if isinstance(data, dict) else None
        seconds = float(wait) if isinstance(wait, int | float) else resp.retry_after()
        scope = " (for the whole bot)" if isinstance(data, dict) and data.get("global") else ""
        raise RateLimited(f"Discord asks to slow down{scope} for {what}", seconds)
    if status == 401:
        raise AuthError(
            f"Discord refused the bot token{said}: reset it in the Developer Portal and "
            "update the Discord account in Hookline"
        )
    if status == 403:
        raise PermanentError(
            f"Discord does not let the bot reach {what}{said}: invite it to the server and "
            "give it access to the channel (View Channel, Read Message History, Send Messages)"
        )
    if status == 404:
        raise PermanentError(f"Discord has no {what}{said}: check the id")
    if status >= 500:
        raise TransientError(f"Discord had a problem answering {what} (HTTP {status})")
    raise PermanentError(f"Discord refused {what}{said}")


def _snowflake(value: Any, what: str) -> str:
    """A Discord id; a channel link (…/channels/SERVER/CHANNEL) gives its last part."""
    text = str(value or "").strip()
    if text.startswith(("https://", "http://")):
        text = urlsplit(text).path.rstrip("/").rsplit("/", 1)[-1]
    if not _ID_RE.match(text):
        raise PermanentError(
            f"{value!r} is not a Discord {what} id: turn on Developer Mode (User Settings → "
            f"Advanced), right-click the {what} and choose “Copy {what.title()} ID”"
        )
    return text


def _author(user: Any) -> tuple[str, str, str, bool]:
    if not isinstance(user, dict):
        return "", "", "", False
    name = str(user.get("username") or "")
    return (
        str(user.get("id") or ""),
        str(user.get("global_name") or name),
        name,
        bool(user.get("bot")),
    )


def _message_data(message: Mapping[str, Any]) -> dict[str, Any]:
    author_id, author_name, username, _bot = _author(message.get("author"))
    attachments = [
        str(a["url"])
        for a in message.get("attachments") or []
        if isinstance(a, dict) and a.get("url")
    ]
    return {
        "message_id": str(message.get("id") or ""),
        "channel_id": str(message.get("channel_id") or ""),
        "author_id": author_id,
        "author_name": author_name,
        "author_username": username,
        "content": str(message.get("content") or ""),
        "attachments": attachments,
        "timestamp": str(message.get("timestamp") or ""),
    }



def _message_item(data: dict[str, Any]) -> Item:
    """A message as an item: it fires in the order the messages were sent."""
    return Item(key=data["message_id"], data=data, at=iso_time(data["timestamp"]))


async def _messages(ctx: PollContext) -> list[dict[str, Any]]:
    """The channel's latest messages, newest first (bots' and webhooks' left out unless
    asked for)."""
    channel = _snowflake(ctx.params["channel_id"], "channel")
    data = await _call(
        ctx,
        "GET",
        f"/channels/{channel}/messages",
        f"channel {channel}",
        params={"limit": str(MESSAGE_LIMIT)},
    )
    if not isinstance(data, list):
        raise TransientError("Discord answered the channel's messages with something unexpected")
    out = []
    for message in data:
        if not isinstance(message, dict) or not message.get("id"):
            continue
        from_bot = _author(message.get("author"))[3] or bool(message.get("webhook_id"))
        if from_bot and not ctx.params.get("include_bots"):
            continue
        out.append(_message_data(message))
    return out


_CHANNEL = Param(
    "channel_id",
    ParamType.TEXT,
    "Channel id",
    help="The channel's id (Developer Mode → right-click the channel → Copy Channel ID) "
    "or its link.",
    example="1103442133558341712",
)
_INCLUDE_BOTS = Param(
    "include_bots",
    ParamType.BOOL,
    "Include bots",
    help="Also fire for messages from bots and webhooks (off: a bot's own posts cannot loop back).",
    required=False,
    default=False,
    example=False,
)
_MESSAGE_FIELDS = [
    Field("message_id", "Message id", "1311578390443421736"),
    Field("channel_id", "Channel id", "1103442133558341712"),
    Field("author_id", "Author id", "80351110224678912"),
    Field("author_name", "Author display name", "Marta"),
    Field("author_username", "Author user name", "marta.kowal"),
    Field("content", "Text", "Frost tonight: cover the seedlings"),
    Field("attachments", "Attachment links", ["https://cdn.discordapp.com/attachments/1/2/a.png"]),
    Field("timestamp", "Sent at (ISO 8601)", "2026-11-22T03:10:11.123000+00:00"),
]


# ---------------------------------------------------------------------- the Gateway


async def _listen(
    ctx: PollContext,
    intents: int,
    match: gateway.Match,
    rest: Callable[[PollContext], Awaitable[list[Item]]] | None,
    rest_every: float,
) -> PollResult:
    """The area's items from the bot's Gateway connection (shared by every area using
    the bot), and by REST where one exists: once when the area starts listening or the
    Gateway lost events it cannot replay, and every ``rest_every`` s while the Gateway
    cannot be used for this area (unreachable, or an intent refused)."""
    account = ctx.require_account(service)
    token = await account.token()

    async def locate() -> str:
        data = await _call(ctx, "GET", "/gateway/bot", "the Gateway's address")
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise TransientError("Discord answered the Gateway's address with something unexpected")
        return url

    async def check_token() -> None:
        await _call(ctx, "GET", "/users/@me", "the bot's profile")

    bot = gateway.gateway(token, locate=locate, check_token=check_token, http=ctx.http, log=_log)
    listener = gateway.attach(bot, gateway.Listener(ctx.area_id, intents, match, gateway.Inbox()))
    return await gateway.check(ctx, bot, listener, rest, rest_every)


def _from_bot(message: Mapping[str, Any]) -> bool:
    return _author(message.get("author"))[3] or bool(message.get("webhook_id"))


def _keywords(ctx: PollContext) -> list[str]:
    keywords = [k.strip() for k in str(ctx.params["keyword"]).split(",") if k.strip()]
    if not keywords:
        raise PermanentError("write at least one keyword, e.g. frost")
    return keywords


def _with_keyword(message: dict[str, Any], keywords: list[str]) -> dict[str, Any] | None:
    text = message["content"].casefold()
    found = next((k for k in keywords if k.casefold() in text), None)
    return None if found is None else {**message, "keyword": found}


def _message_match(channel: str, include_bots: bool, keywords: list[str] | None) -> gateway.Match:
    """MESSAGE_CREATE in ``channel`` as the area's item (gateway-events#message-create)."""

    def match(name: str, data: Mapping[str, Any]) -> Item | None:
        if name != "MESSAGE_CREATE" or str(data.get("channel_id") or "") != channel:
            return None
        if _from_bot(data) and not include_bots:
            return None
        message: dict[str, Any] | None = _message_data(data)
        if keywords is not None and message is not None:
            message = _with_keyword(message, keywords)
        return None if message is None else _message_item(message)

    return match


_MESSAGE_INTENTS = gateway.GUILDS | gateway.GUILD_MESSAGES | gateway.MESSAGE_CONTENT
_LISTENING = (
    " While Hookline runs it listens on Discord's Gateway and fires within a second or "
    "two; messages sent while it was closed are found by REST when it starts again, and "
    "when the Gateway cannot be reached it checks by REST every minute."
)


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_message",
    "New message in a channel",
    "Fires for each new message in a channel." + _LISTENING + _CONTENT_NOTE,
    params=[_CHANNEL, _INCLUDE_BOTS],
    fields=_MESSAGE_FIELDS,
    default_interval=CHECK_INTERVAL,
    min_interval=1.0,
)
async def new_message(ctx: PollContext) -> PollResult:
    channel = _snowflake(ctx.params["channel_id"], "channel")

    async def rest(ctx: PollContext) -> list[Item]:
        return [_message_item(m) for m in await _messages(ctx)]

    if ctx.dry_run:
        return PollResult(items=await rest(ctx))
    match = _message_match(channel, bool(ctx.params.get("include_bots")), None)
    return await _listen(ctx, _MESSAGE_INTENTS, match, rest, MESSAGE_REST_INTERVAL)


@service.poll_trigger(
    "message_with_keyword",
    "Message with a keyword",
    "Fires for each new message in a channel that contains a keyword (any of several, "
    "upper or lower case alike)." + _LISTENING + _CONTENT_NOTE,
    params=[
        _CHANNEL,
        Param(
            "keyword",
            ParamType.TEXT,
            "Keywords",
            help="A word or phrase; several separated by commas match any of them.",
            example="frost, storm",
        ),
        _INCLUDE_BOTS,
    ],
    fields=[*_MESSAGE_FIELDS, Field("keyword", "The keyword found", "frost")],
    default_interval=CHECK_INTERVAL,
    min_interval=1.0,
)
async def message_with_keyword(ctx: PollContext) -> PollResult:
    keywords = _keywords(ctx)
    channel = _snowflake(ctx.params["channel_id"], "channel")

    async def rest(ctx: PollContext) -> list[Item]:
        items = []
        for message in await _messages(ctx):
            found = _with_keyword(message, keywords)
            if found is not None:
                items.append(_message_item(found))
        return items

    if ctx.dry_run:
        return PollResult(items=await rest(ctx))
    match = _message_match(channel, bool(ctx.params.get("include_bots")), keywords)
    return await _listen(ctx, _MESSAGE_INTENTS, match, rest, MESSAGE_REST_INTERVAL)


def _member_item(member: Mapping[str, Any], guild: str) -> Item | None:
    user_id, name, username, is_bot = _author(member.get("user"))
    if not user_id:
        return None
    data = {
        "user_id": user_id,
        "username": username,
        "display_name": str(member.get("nick") or name),
        "is_bot": is_bot,
        "joined_at": str(member.get("joined_at") or ""),
        "guild_id": guild,
    }
    return Item(key=user_id, data=data, at=iso_time(data["joined_at"]))


def _member_match(guild: str) -> gateway.Match:
    """GUILD_MEMBER_ADD in ``guild`` as the area's item (gateway-events#guild-member-add)."""

    def match(name: str, data: Mapping[str, Any]) -> Item | None:
        if name != "GUILD_MEMBER_ADD" or str(data.get("guild_id") or "") != guild:
            return None
        return _member_item(data, guild)

    return match


def _snowflake_number(value: str) -> int:
    return int(value) if value.isdigit() else 0


async def _members(ctx: PollContext, guild: str) -> list[Item]:
    """Members who joined since the area started watching, by REST.

    The list is sorted by user id, oldest accounts first, ``MEMBER_PAGES`` pages a
    check. A server whose list fits in one check is read whole each time (an old
    account joining is seen too); past that the next check goes on after the highest
    id read (``after``), so the newest accounts are reached however large the server.
    Only members who joined after the area started watching are items: the pages
    walked on the way there are not news."""
    start = str(ctx.state.get("member_after") or "0")
    after = start
    members: list[Mapping[str, Any]] = []
    more = True
    for _page in range(MEMBER_PAGES):
        page = await _call(
            ctx,
            "GET",
            f"/guilds/{guild}/members",
            f"the members of server {guild}",
            params={"limit": str(MEMBER_LIMIT), "after": after},
        )
        if not isinstance(page, list):
            raise TransientError("Discord answered the member list with something unexpected")
        listed = [m for m in page if isinstance(m, dict)]
        members.extend(listed)
        ids = [_snowflake_number(_author(m.get("user"))[0]) for m in listed]
        if ids and max(ids) > _snowflake_number(after):
            after = str(max(ids))
        if len(page) < MEMBER_LIMIT:
            more = False
            break
    ctx.state["member_after"] = "0" if start == "0" and not more else after
    since = ctx.state.get("member_since")
    if not isinstance(since, str) or iso_time(since) is None:
        since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        ctx.state["member_since"] = since
    watching_since = iso_time(since)
    items = []
    for member in members:
        item = _member_item(member, guild)
        if item is None:
            continue
        if ctx.dry_run or (item.at is not None and watching_since is not None
                           and item.at >= watching_since):
            items.append(item)
    # Newest joiners first, as the engine expects of items without times.
    items.sort(key=lambda item: str(item.data["joined_at"]), reverse=True)
    return items


@service.poll_trigger(
    "new_member",
    "New member in a server",
    "Fires when someone joins a server the bot is in. Needs the Server Members Intent: "
    "Developer Portal → your app → Bot → Privileged Gateway Intents. While Hookline runs "
    "it listens on Discord's Gateway and fires within a second or two; when the Gateway "
    "cannot be used it checks the member list every 5 minutes (there a new member whose "
    "account is older than the server's newest ones may be missed in a server of over "
    f"{MEMBER_LIMIT * MEMBER_PAGES:,} members).",
    params=[
        Param(
            "guild_id",
            ParamType.TEXT,
            "Server id",
            help="The server's id (Developer Mode → right-click the server icon → Copy Server ID).",
            example="1103442132836929548",
        )
    ],
    fields=[
        Field("user_id", "User id", "80351110224678912"),
        Field("username", "User name", "marta.kowal"),
        Field("display_name", "Display name (server nickname first)", "Marta"),
        Field("is_bot", "Is a bot", False),
        Field("joined_at", "Joined at (ISO 8601)", "2026-11-22T03:10:11.123000+00:00"),
        Field("guild_id", "Server id", "1103442132836929548"),
    ],
    default_interval=CHECK_INTERVAL,
    min_interval=1.0,
)
async def new_member(ctx: PollContext) -> PollResult:
    guild = _snowflake(ctx.params["guild_id"], "server")

    async def rest(ctx: PollContext) -> list[Item]:
        return await _members(ctx, guild)

    if ctx.dry_run:
        return PollResult(items=await rest(ctx))
    intents = gateway.GUILDS | gateway.GUILD_MEMBERS
    return await _listen(ctx, intents, _member_match(guild), rest, MEMBER_REST_INTERVAL)


_CUSTOM_EMOJI_RE = re.compile(r"^<a?:(\w+):(\d+)>$")


def _emoji_text(emoji: Mapping[str, Any]) -> str:
    """The emoji as a message would write it: 🔥, or <:name:id> for a server's own."""
    name = str(emoji.get("name") or "")
    if emoji.get("id"):
        prefix = "a" if emoji.get("animated") else ""
        return f"<{prefix}:{name or '_'}:{emoji['id']}>"
    return name


def _emoji_wanted(wanted: str, emoji: Mapping[str, Any]) -> bool:
    """Whether ``emoji`` is the one the area asked for (🔥, a custom emoji's name, its
    id, or <:name:id>); an empty filter takes every emoji."""
    wanted = wanted.strip()
    if not wanted:
        return True
    custom = _CUSTOM_EMOJI_RE.match(wanted)
    if custom:
        return str(emoji.get("id") or "") == custom.group(2)
    name = str(emoji.get("name") or "")
    return wanted in (name, str(emoji.get("id") or "")) or (
        wanted.strip(":") == name and bool(emoji.get("id"))
    )


def _reaction_match(channel: str, wanted: str) -> gateway.Match:
    """MESSAGE_REACTION_ADD in ``channel`` as the area's item
    (gateway-events#message-reaction-add)."""

    def match(name: str, data: Mapping[str, Any]) -> Item | None:
        if name != "MESSAGE_REACTION_ADD" or str(data.get("channel_id") or "") != channel:
            return None
        emoji = data.get("emoji")
        if not isinstance(emoji, Mapping) or not _emoji_wanted(wanted, emoji):
            return None
        member = data.get("member") if isinstance(data.get("member"), Mapping) else {}
        assert isinstance(member, Mapping)
        user_id = str(data.get("user_id") or "")
        _id, display, username, is_bot = _author(member.get("user"))
        message_id = str(data.get("message_id") or "")
        guild = str(data.get("guild_id") or "")
        link = f"https://discord.com/channels/{guild or '@me'}/{channel}/{message_id}"
        item = {
            "emoji": _emoji_text(emoji),
            "emoji_name": str(emoji.get("name") or ""),
            "emoji_id": str(emoji.get("id") or ""),
            "user_id": user_id,
            "user_name": str(member.get("nick") or display),
            "username": username,
            "is_bot": is_bot,
            "message_id": message_id,
            "message_link": link,
            "message_author_id": str(data.get("message_author_id") or ""),
            "channel_id": channel,
            "guild_id": guild,
            "super_reaction": bool(data.get("burst")),
            "reacted_at": datetime.now(UTC).isoformat(),
        }
        key = f"{message_id}:{user_id}:{item['emoji_id'] or item['emoji_name']}"
        return Item(key=key, data=item)

    return match


@service.poll_trigger(
    "reaction_added",
    "Reaction added to a message",
    "Fires when someone reacts to a message in a channel, with any emoji or the one you "
    "choose. Hookline listens on Discord's Gateway while it runs and fires within a second "
    "or two; reactions added while it was closed are not seen (Discord keeps no list of "
    "them to read afterwards). The bot needs View Channel there.",
    params=[
        _CHANNEL,
        Param(
            "emoji",
            ParamType.TEXT,
            "Emoji",
            help="Only this emoji: paste it (🔥), or a server emoji's name or <:name:id>. "
            "Empty: every reaction.",
            required=False,
            example="🔥",
        ),
    ],
    fields=[
        Field("emoji", "Emoji (as a message writes it)", "🔥"),
        Field("emoji_name", "Emoji name", "🔥"),
        Field("emoji_id", "Server emoji id (empty for a standard emoji)", ""),
        Field("user_id", "Who reacted (user id)", "80351110224678912"),
        Field("user_name", "Who reacted (display name)", "Marta"),
        Field("username", "Who reacted (user name)", "marta.kowal"),
        Field("is_bot", "Reacted by a bot", False),
        Field("message_id", "Message id", "1311578390443421736"),
        Field(
            "message_link",
            "Link to the message",
            "https://discord.com/channels/1103442132836929548/1103442133558341712/"
            "1311578390443421736",
        ),
        Field("message_author_id", "Author of the message (user id)", "119884937112961024"),
        Field("channel_id", "Channel id", "1103442133558341712"),
        Field("guild_id", "Server id", "1103442132836929548"),
        Field("super_reaction", "A super reaction", False),
        Field("reacted_at", "Seen at (ISO 8601, UTC)", "2026-11-22T03:12:00.000000+00:00"),
    ],
    default_interval=CHECK_INTERVAL,
    min_interval=1.0,
)
async def reaction_added(ctx: PollContext) -> PollResult:
    channel = _snowflake(ctx.params["channel_id"], "channel")
    if ctx.dry_run:
        return PollResult(items=[])  # nothing to read back: a reaction comes only live
    intents = gateway.GUILDS | gateway.GUILD_MESSAGE_REACTIONS
    match = _reaction_match(channel, str(ctx.params.get("emoji") or ""))
    return await _listen(ctx, intents, match, None, 0.0)


# The engine closes the Gateway's listeners when an area stops and all when it stops.
service.on_close = gateway.aclose_all
service.on_area_stop = gateway.aclose_area


# ---------------------------------------------------------------------- reactions


def _webhook(value: Any) -> str | None:
    text = str(value or "").strip()
    if not text:
        return None
    parts = urlsplit(text)
    own = urlsplit(service.api_base_url).netloc
    if (
        parts.scheme not in ("https", "http")
        or (parts.hostname not in WEBHOOK_HOSTS and parts.netloc != own)
        or not _WEBHOOK_PATH_RE.match(parts.path)
    ):
        raise PermanentError(
            "the webhook URL is not a Discord webhook: copy it from the channel's Edit "
            "Channel → Integrations → Webhooks → Copy Webhook URL "
            "(https://discord.com/api/webhooks/…)"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


async def _post(ctx: ReactionContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Post ``payload`` through the webhook when one is given, else as the bot."""
    payload["allowed_mentions"] = ALLOWED_MENTIONS
    hook = _webhook(ctx.params.get("webhook_url"))
    if hook is not None:
        try:
            resp = await ctx.http.post(
                hook, params={"wait": "true"}, json_body=payload, check=False
            )
        except ServiceError as exc:
            # The engine's message names the address, and the address holds the token.
            raise type(exc)(_hide(str(exc), hook)) from None
        sent = _json(resp, "the message to the webhook")
    else:
        if not ctx.params.get("channel_id"):
            raise PermanentError("give a channel id (the bot posts) or a webhook URL")
        channel = _snowflake(ctx.params["channel_id"], "channel")
        sent = await _call(
            ctx,
            "POST",
            f"/channels/{channel}/messages",
            f"channel {channel}",
            body=payload,
        )
    if not isinstance(sent, dict):
        raise TransientError("Discord answered the message with something unexpected")
    return {
        "message_id": str(sent.get("id") or ""),
        "channel_id": str(sent.get("channel_id") or ""),
        "timestamp": str(sent.get("timestamp") or ""),
    }


_TARGET = [
    Param(
        "channel_id",
        ParamType.TEXT,
        "Channel id",
        help="Where the bot posts (Copy Channel ID); leave empty when a webhook URL is given.",
        required=False,
        example="1103442133558341712",
        templated=True,
    ),
    Param(
        "webhook_url",
        ParamType.SECRET,
        "Webhook URL",
        help="Post through a channel webhook instead of the bot (Edit Channel → "
        "Integrations → Webhooks → Copy Webhook URL); then no bot is needed.",
        required=False,
        example="https://discord.com/api/webhooks/1311578390443421736/AbCdEf…",
    ),
]
_SENT_FIELDS = [
    Field("message_id", "Message id", "1311578390443421736"),
    Field("channel_id", "Channel id", "1103442133558341712"),
    Field("timestamp", "Sent at (ISO 8601)", "2026-11-22T03:12:00.000000+00:00"),
]


@service.reaction(
    "send_message",
    "Send a message",
    "Posts a text message in a channel, as the bot or through a webhook. "
    "@everyone and @here do not ping.",
    params=[
        *_TARGET,
        Param(
            "content",
            ParamType.TEMPLATE,
            "Message",
            help="Up to 2000 characters; Discord's Markdown (**bold**, [link](url)) works.",
            example="New post: {{ trigger.title }}",
        ),
    ],
    fields=_SENT_FIELDS,
    retry=False,
    account_optional=True,  # a webhook URL needs no bot
)
async def send_message(ctx: ReactionContext) -> Mapping[str, Any]:
    content = str(ctx.params["content"])
    if len(content) > CONTENT_LENGTH:
        raise PermanentError(
            f"the message has {len(content)} characters; Discord takes at most {CONTENT_LENGTH}"
        )
    return await _post(ctx, {"content": content})


def _color(value: Any) -> int | None:
    text = str(value or "").strip()
    if not text:
        return None
    match = _COLOR_RE.match(text)
    if not match:
        raise PermanentError(f"{text!r} is not a color: write it as #RRGGBB, e.g. #5865F2")
    return int(match.group(1), 16)


@service.reaction(
    "send_embed",
    "Send an embed",
    "Posts a rich embed (a card with a title, text, link and color bar) in a channel, as "
    "the bot or through a webhook.",
    params=[
        *_TARGET,
        Param(
            "title",
            ParamType.TEMPLATE,
            "Title",
            help="Up to 256 characters.",
            example="{{ trigger.title }}",
        ),
        Param(
            "description",
            ParamType.TEMPLATE,
            "Description",
            help="The embed's text, up to 4096 characters (Markdown works).",
            required=False,
            example="{{ trigger.summary }}",
        ),
        Param(
            "url",
            ParamType.TEXT,
            "Link",
            help="Where the title links to (http or https).",
            required=False,
            example="{{ trigger.link }}",
            templated=True,
        ),
        Param(
            "color",
            ParamType.TEXT,
            "Color",
            help="The bar's color as #RRGGBB.",
            required=False,
            example="#5865F2",
        ),
    ],
    fields=_SENT_FIELDS,
    retry=False,
    account_optional=True,  # a webhook URL needs no bot
)
async def send_embed(ctx: ReactionContext) -> Mapping[str, Any]:
    title = str(ctx.params["title"])
    description = str(ctx.params.get("description") or "")
    if len(title) > 256:
        raise PermanentError(f"the title has {len(title)} characters; Discord takes at most 256")
    if len(description) > 4096:
        raise PermanentError(
            f"the description has {len(description)} characters; Discord takes at most 4096"
        )
    embed: dict[str, Any] = {"title": title}
    if description:
        embed["description"] = description
    url = str(ctx.params.get("url") or "").strip()
    if url:
        if urlsplit(url).scheme not in ("http", "https"):
            raise PermanentError(f"{url!r} is not a link: it must start with https://")
        embed["url"] = url
    color = _color(ctx.params.get("color"))
    if color is not None:
        embed["color"] = color
    return await _post(ctx, {"embeds": [embed]})
