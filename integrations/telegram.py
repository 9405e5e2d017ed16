"""Telegram: messages and commands a bot receives; send messages as the bot."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
)

if TYPE_CHECKING:
    from engine import HttpClient, HttpResponse

#: Updates asked for per poll (the Bot API's maximum).
LIMIT = 100
TEXT_LENGTH = 4096
PARSE_MODES = {"none": None, "markdown": "Markdown", "html": "HTML"}

_POLL_NOTE = (
    " A bot hands each update out once: use one Telegram trigger per bot, and no "
    "webhook on it (getUpdates does not work while a webhook is set)."
)


async def _whoami(http: HttpClient, token: str) -> str:
    """The bot's @username (getMe), which also proves the token works."""
    data = await _call(http, token, "getMe", "the bot's profile")
    return "@" + str(data.get("username") or data.get("first_name") or "bot")


service = Service(
    "telegram",
    "Telegram",
    "Messages and /commands your Telegram bot receives; send messages as the bot.",
    icon="telegram.svg",
    account_label="Telegram bot",
    auth=AuthKind.API_KEY,
    api_base_url="https://api.telegram.org",
    api_key=ApiKeySpec(
        "Bot token",
        "Talk to @BotFather in Telegram, send /newbot and paste the token it gives you "
        "(it looks like 123456789:AAE…). For the bot to see every message in a group, "
        "turn its privacy mode off with /setprivacy, or make it an admin.",
        userinfo=_whoami,
    ),
)


# ---------------------------------------------------------------------- the API


def _hide(text: str, token: str) -> str:
    return text.replace(token, "<bot token>") if token else text


async def _call(
    http: HttpClient,
    token: str,
    method: str,
    what: str,
    *,
    params: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
) -> Any:
    """One Bot API method; its ``result``, or the engine error (never naming the token)."""
    url = f"{service.api_base_url.rstrip('/')}/bot{token}/{method}"
    try:
        if body is None:
            resp = await http.get(url, params=params, check=False)
        else:
            resp = await http.post(url, json_body=dict(body), check=False)
    except ServiceError as exc:
        # The engine's message names the address, and the address holds the token.
        raise type(exc)(_hide(str(exc), token)) from None
    return _result(resp, what)


def _result(resp: HttpResponse, what: str) -> Any:
    try:
        data = json.loads(resp.body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("ok") is True:
        return data.get("result")
    status = resp.status
    said = ""
    wait: float | None = None
    if isinstance(data, dict):
        said = f": {data['description']}" if data.get("description") else ""
        extra = data.get("parameters")
        if isinstance(extra, dict) and isinstance(extra.get("retry_after"), int | float):
            wait = float(extra["retry_after"])
    if status == 429:
        raise RateLimited(f"Telegram asks the bot to slow down{said}", wait or resp.retry_after())
    # A malformed token reaches no bot at all: Telegram answers 404 "Not Found".
    if status == 401 or (status == 404 and said == ": Not Found"):
        raise AuthError(
            f"Telegram refused the bot token{said}: check it with @BotFather (/token) and "
            "update the Telegram account in Hookline"
        )
    if status == 403:
        raise PermanentError(
            f"Telegram does not let the bot reach {what}{said} (was it removed from the "
            "chat, or has the user not started it?)"
        )
    if status == 409:
        raise PermanentError(
            f"Telegram refused {what}{said}. Only one reader per bot may fetch updates: "
            "stop the other program using this bot, or delete its webhook"
        )
    if status >= 500 or status == 0:
        raise TransientError(f"Telegram had a problem answering {what} (HTTP {status})")
    if status >= 400:
        raise PermanentError(f"Telegram refused {what}{said}")
    raise TransientError(f"Telegram answered {what} with something unexpected")


def _iso(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return ""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _name(user: Any) -> str:
    if not isinstance(user, dict):
        return ""
    return " ".join(str(user[k]) for k in ("first_name", "last_name") if user.get(k))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _message_data(message: Mapping[str, Any]) -> dict[str, Any]:
    chat = _dict(message.get("chat"))
    sender = _dict(message.get("from"))
    chat_title = chat.get("title") or _name(chat) or chat.get("username") or ""
    return {
        "message_id": message.get("message_id"),
        "chat_id": chat.get("id"),
        "chat_title": str(chat_title),
        "chat_type": str(chat.get("type") or ""),
        "from_id": sender.get("id"),
        "from_name": _name(sender),
        "from_username": str(sender.get("username") or ""),
        "text": str(message.get("text") or message.get("caption") or ""),
        "date": _iso(message.get("date")),
    }


def _matches_chat(data: Mapping[str, Any], wanted: str) -> bool:
    wanted = wanted.strip()
    if not wanted:
        return True
    if wanted.startswith("@"):
        return str(data.get("chat_username") or "").casefold() == wanted[1:].casefold()
    return str(data["chat_id"]) == wanted


async def _messages(ctx: PollContext) -> list[dict[str, Any]]:
    """The messages of new updates, oldest first; the offset kept in the state confirms
    them.

    Telegram hands updates over oldest first ("update identifiers ... increase
    sequentially", core.telegram.org/bots/api#update), so the triggers reverse them into
    the newest-first list the engine expects. They give no ``Item.at``: a message's
    ``date`` is only to the second, and a burst within one second would lose the exact
    order the update ids keep."""
    token = await ctx.require_account(service).token()
    query = {
        "timeout": "0",
        "limit": str(LIMIT),
        "allowed_updates": json.dumps(["message", "channel_post"]),
    }
    if isinstance(ctx.state.get("offset"), int):
        query["offset"] = str(ctx.state["offset"])
    updates = await _call(ctx.http, token, "getUpdates", "the bot's updates", params=query)
    if not isinstance(updates, list):
        raise TransientError("Telegram answered the bot's updates with something unexpected")
    found = []
    for update in updates:
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            continue
        ctx.state["offset"] = max(int(ctx.state.get("offset") or 0), update["update_id"] + 1)
        message = update.get("message") or update.get("channel_post")
        if isinstance(message, dict):
            data = _message_data(message)
            data["chat_username"] = _dict(message.get("chat")).get("username")
            found.append(data)
    wanted = str(ctx.params.get("chat") or "")
    return [m for m in found if _matches_chat(m, wanted)]


def _key(data: Mapping[str, Any]) -> str:
    return f"{data['chat_id']}:{data['message_id']}"


def _public(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "chat_username"}


_CHAT_FILTER = Param(
    "chat",
    ParamType.TEXT,
    "Only in chat",
    help="A chat id (a number; groups are negative) or a public @channel / @group name; "
    "empty: every chat the bot is in.",
    required=False,
    example="-1001234567890",
)

_MESSAGE_FIELDS = [
    Field("message_id", "Message id", 512),
    Field("chat_id", "Chat id", -1001234567890),
    Field("chat_title", "Chat (group title or person)", "Garden club"),
    Field("chat_type", "Chat type (private, group, supergroup, channel)", "supergroup"),
    Field("from_id", "Sender id", 987654321),
    Field("from_name", "Sender name", "Marta Kowal"),
    Field("from_username", "Sender @username (without @)", "marta_k"),
    Field("text", "Text", "The tomatoes are ripe"),
    Field("date", "Sent at (UTC, ISO 8601)", "2026-11-22T03:10:11+00:00"),
]


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_message",
    "New message to the bot",
    "Fires for each message the bot receives (in private chats, groups it is in, and "
    "channels it administers)." + _POLL_NOTE,
    params=[_CHAT_FILTER],
    fields=_MESSAGE_FIELDS,
    default_interval=60.0,
    min_interval=10.0,
)
async def new_message(ctx: PollContext) -> PollResult:
    messages = await _messages(ctx)
    return PollResult(items=[Item(key=_key(m), data=_public(m)) for m in reversed(messages)])


@service.poll_trigger(
    "command_received",
    "Command sent to the bot",
    "Fires for each message that starts with a /command, e.g. /water or /status "
    "(register it with @BotFather's /setcommands so it is offered)." + _POLL_NOTE,
    params=[
        Param(
            "command",
            ParamType.TEXT,
            "Command",
            help="The command, with or without the slash; empty: any command.",
            required=False,
            example="/water",
        ),
        _CHAT_FILTER,
    ],
    fields=[
        *_MESSAGE_FIELDS,
        Field("command", "Command (without the slash)", "water"),
        Field("arguments", "Text after the command", "balcony 2 l"),
    ],
    default_interval=60.0,
    min_interval=10.0,
)
async def command_received(ctx: PollContext) -> PollResult:
    wanted = str(ctx.params.get("command") or "").strip().lstrip("/").casefold()
    if wanted and not wanted.replace("_", "").isalnum():
        raise PermanentError(
            f"{ctx.params['command']!r} is not a command: use letters, digits and _, e.g. /water"
        )
    items = []
    for message in await _messages(ctx):
        text = str(message["text"])
        if not text.startswith("/"):
            continue
        head, _, rest = text.partition(" ")
        command = head[1:].split("@", 1)[0].casefold()  # /water@garden_bot in groups
        if not command or (wanted and command != wanted):
            continue
        data = {**_public(message), "command": command, "arguments": rest.strip()}
        items.append(Item(key=_key(message), data=data))
    return PollResult(items=list(reversed(items)))


# ---------------------------------------------------------------------- reactions


@service.reaction(
    "send_message",
    "Send a message",
    "The bot sends a text message to a chat (the person must have started the bot, or "
    "the bot must be in the group or an admin of the channel).",
    params=[
        Param(
            "chat_id",
            ParamType.TEXT,
            "Chat",
            help="The chat id (a number; groups are negative, see a trigger's chat_id) "
            "or a public @channel name.",
            example="-1001234567890",
            templated=True,
        ),
        Param(
            "text",
            ParamType.TEMPLATE,
            "Text",
            help="The message, up to 4096 characters; templates such as "
            "{{ trigger.title }} are filled in (with HTML formatting, what they insert is "
            "escaped, so a title with < or & shows as written).",
            example="New post: {{ trigger.title }}",
            html_when=("parse_mode", "html"),
        ),
        Param(
            "parse_mode",
            ParamType.CHOICE,
            "Formatting",
            help="How Telegram reads the text: plain, Markdown (*bold*, _italic_, "
            "[link](url)) or HTML (<b>, <i>, <a href>).",
            choices=(("none", "Plain text"), ("markdown", "Markdown"), ("html", "HTML")),
            default="none",
            required=False,
            example="none",
        ),
    ],
    fields=[
        Field("message_id", "Message id", 513),
        Field("chat_id", "Chat id", -1001234567890),
        Field("date", "Sent at (UTC, ISO 8601)", "2026-11-22T03:12:00+00:00"),
    ],
    retry=False,
)
async def send_message(ctx: ReactionContext) -> Mapping[str, Any]:
    chat = str(ctx.params["chat_id"]).strip()
    if not chat or not (chat.lstrip("-").isdigit() or chat.startswith("@")):
        raise PermanentError(
            f"{chat!r} is not a Telegram chat: give its id (e.g. -1001234567890) or a "
            "public @channel name"
        )
    text = str(ctx.params["text"])
    if len(text) > TEXT_LENGTH:
        raise PermanentError(
            f"the message has {len(text)} characters; Telegram takes at most {TEXT_LENGTH}"
        )
    body: dict[str, Any] = {
        "chat_id": int(chat) if chat.lstrip("-").isdigit() else chat,
        "text": text,
    }
    mode = PARSE_MODES[str(ctx.params.get("parse_mode") or "none")]
    if mode:
        body["parse_mode"] = mode
    token = await ctx.require_account(service).token()
    sent = await _call(ctx.http, token, "sendMessage", f"chat {chat}", body=body)
    if not isinstance(sent, dict):
        raise TransientError("Telegram answered the message with something unexpected")
    data = _message_data(sent)
    return {"message_id": data["message_id"], "chat_id": data["chat_id"], "date": data["date"]}
