"""Telegram: messages and commands a bot receives; send messages as the bot."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    from engine import AccountSession, HttpClient, HttpResponse

#: Updates asked for per getUpdates (the Bot API's maximum).
LIMIT = 100
#: Seconds Telegram holds a getUpdates open until an update comes (its long poll).
LONG_POLL = 50
#: Seconds, past LONG_POLL, to wait for Telegram's answer before calling it lost.
ANSWER_MARGIN = 15
#: Updates one area keeps while it falls behind the others on its bot; past it the rest
#: is skipped and its next check fails saying so.
BUFFER_LIMIT = 1000
#: Seconds an area may take to save a batch of updates before the others on its bot go
#: on without it (its checks are late or failing).
STALL_AFTER = 30.0
#: Seconds after Hookline starts listening to a bot in which nothing is confirmed to
#: Telegram, so that every area on the bot gets what came while Hookline was closed
#: (the engine spreads the areas' first checks over up to 30 s).
JOIN_WINDOW = 35.0
#: Seconds between attempts after getUpdates failed: the first, doubling up to the last.
RECONNECT_MIN = 1.0
RECONNECT_MAX = 60.0
#: Seconds between an area's checks when nothing comes: the bot asks the engine for a
#: check as updates arrive (``PollContext.check_soon``), so this only paces idle checks.
CHECK_INTERVAL = 15.0
#: Recent messages kept for a Test in the editor.
SAMPLES = 20
ALLOWED_UPDATES = ["message", "channel_post"]
TEXT_LENGTH = 4096
PARSE_MODES = {"none": None, "markdown": "Markdown", "html": "HTML"}

_POLL_NOTE = (
    " Hookline keeps one connection per bot, shared by every automation on it, and fires "
    "within about a second. Telegram keeps a bot's updates until every automation on the bot "
    "has saved them (up to 24 hours), so none is lost while Hookline is closed. An automation "
    f"whose checks fall more than {STALL_AFTER:g} s behind stops holding up the others "
    f"and keeps up to {BUFFER_LIMIT:,} updates for itself (past that, its check fails "
    "saying how many it skipped). The bot must have no webhook, and no other program "
    "may read its updates."
)


def _token_in_path(token: str) -> dict[str, str]:
    """No header: the Bot API takes the token in the address (``/bot<token>/``)."""
    return {}


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
        authorize=_token_in_path,
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
    account: AccountSession | None = None,
    timeout: float | None = None,
) -> Any:
    """One Bot API method; its ``result``, or the engine error (never naming the token).

    Through ``account`` a refused token (401) marks the account as needing a reconnect,
    and the error says so as for every service."""
    url = f"{service.api_base_url.rstrip('/')}/bot{token}/{method}"
    try:
        if account is not None:
            resp = await account.request(
                "GET" if body is None else "POST",
                url,
                params=params,
                json_body=dict(body) if body is not None else None,
                timeout=timeout,
                check=False,
            )
        elif body is None:
            resp = await http.get(url, params=params, check=False, timeout=timeout)
        else:
            resp = await http.post(url, json_body=dict(body), check=False, timeout=timeout)
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
    if status == 409 and "webhook" in said:
        raise PermanentError(
            f"Telegram will not hand out {what}: a webhook is set on this bot{said}. "
            "Telegram sends a bot's updates either to a webhook or to Hookline: remove the "
            "webhook in the program that set it, or open "
            "https://api.telegram.org/bot<your bot token>/deleteWebhook in a browser"
        )
    if status == 409:
        raise PermanentError(
            f"Telegram will not hand out {what}: another program is reading them{said}. "
            "Only one program may read a bot's updates: stop the other one (a second "
            "Hookline, or a bot program using the same token), or give Hookline a bot of "
            "its own with @BotFather's /newbot"
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


# ---------------------------------------------------------------------- the bot's long poll
#
# Telegram hands a bot's updates to one reader at a time (getUpdates), and forgets an
# update once a later getUpdates asks for an ``offset`` above its ``update_id``
# (core.telegram.org/bots/api#getupdates, read 2026-12-06). So each bot has one long
# poll (:class:`Bot`), shared by every automation on it, and each area an :class:`Inbox`: the
# updates it has not saved yet. An area's check hands out what its inbox holds and the
# engine saves that check's poll state with its events; only the next check learns that
# it was saved (as MQTT's Inbox does). Telegram itself keeps the updates meanwhile: the
# bot asks for the next ones, which confirms these, only once every area has kept them.


@dataclass(frozen=True, slots=True)
class _Update:
    """One update as the areas see it: its id, and its message (None: no message)."""

    update_id: int
    message: Mapping[str, Any] | None


def _update(raw: Any) -> _Update | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
        return None
    message = raw.get("message") or raw.get("channel_post")
    if not isinstance(message, dict):
        return _Update(raw["update_id"], None)
    data = _message_data(message)
    data["chat_username"] = _dict(message.get("chat")).get("username")
    return _Update(raw["update_id"], data)


class Inbox:
    """The updates one area got from its bot and the engine has not saved yet.

    An update is held from its arrival until a check handed it out and the engine saved
    that check: the state a check writes (:meth:`take`) comes back to the next check
    (:meth:`confirm`) only if the engine saved it with the check's events. A check the
    engine did not save is handed out again.

    Args:
        limit: updates held at most; past it an update is skipped and counted.

    Attributes:
        skipped: ids of updates skipped past ``limit``, for the area's check to report.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.skipped: list[int] = []
        #: asks the engine to check the area now (``PollContext.check_soon``)
        self.wake: Callable[[], None] | None = None
        self._held: deque[_Update] = deque()
        self._handed = 0
        self._token: str | None = None
        self._tokens = (f"{secrets.token_hex(4)}.{n}" for n in itertools.count())

    @property
    def pending(self) -> int:
        """Updates held: not saved by the engine yet."""
        return len(self._held)

    def receive(self, updates: Sequence[_Update]) -> None:
        held = {u.update_id for u in self._held}
        for update in updates:
            if update.update_id in held:
                continue
            if len(self._held) >= self.limit:
                self.skipped.append(update.update_id)
            else:
                self._held.append(update)

    def confirm(self, state: Mapping[str, Any]) -> bool:
        """Let go of the last check's updates if the engine saved that check (``state``,
        as saved, carries its token); whether it did."""
        if self._token is None or state.get("batch") != self._token:
            return False
        for _ in range(self._handed):
            self._held.popleft()
        self._token = None
        self._handed = 0
        return True

    def take(self, state: dict[str, Any]) -> list[_Update]:
        """Every update held, oldest first (those of a check not saved again); writes
        the check's token into ``state``, which the engine saves with its events."""
        self._token = next(self._tokens)
        self._handed = len(self._held)
        state["batch"] = self._token
        state.pop("offset", None)  # each area kept its own offset before issue 14
        return list(self._held)


class Bot:
    """One bot's long poll: a background task that asks Telegram for updates, hands
    each to every area's :class:`Inbox`, and asks for the next ones (which confirms
    these) only once every area has saved them.

    An area whose updates wait more than ``STALL_AFTER`` s no longer holds up the
    others: it falls behind, its inbox keeps its updates (up to ``BUFFER_LIMIT``, the
    rest skipped and reported), and it catches up on its next saved check.

    Args:
        session: the bot's account (any of the areas' sessions on this token).
        hold: an area that listened before started the bot (Hookline starting): do not
            confirm anything for ``JOIN_WINDOW`` s, so that the other areas on the bot,
            whose first checks the engine spreads over up to 30 s, get what Telegram
            kept while Hookline was closed.

    Attributes:
        members: each area's inbox, by area id.
        behind: the areas that fell behind.
        error: why the last getUpdates failed (None once one succeeds).
        received: updates received since the bot started.
        changed: set whenever an area joins, updates arrive or the poll fails (for
            tests).
    """

    def __init__(
        self,
        key: str,
        session: AccountSession,
        log: logging.LoggerAdapter[logging.Logger],
        *,
        hold: bool,
    ) -> None:
        self.key = key
        self.session = session
        self.log = log
        self.loop = asyncio.get_running_loop()
        self.members: dict[str, Inbox] = {}
        self.behind: set[str] = set()
        self.error: ServiceError | None = None
        self.received = 0
        self.changed = asyncio.Event()
        self.recent: deque[Mapping[str, Any]] = deque(maxlen=SAMPLES)
        self._offset: int | None = None
        self._unconfirmed: list[_Update] = []
        self._batch_at = self.loop.time()
        self._hold_until = self.loop.time() + (JOIN_WINDOW if hold else 0.0)
        self._kept = asyncio.Event()  # an area saved, joined or left: look again
        self._retry_at = 0.0
        self.task = self.loop.create_task(self._run(), name=f"telegram bot {key}")

    # --- the areas' side

    def join(self, area_id: str, state: Mapping[str, Any]) -> Inbox:
        """The area's inbox, made on its first check. An area that listened before (its
        state is not empty) gets what Telegram still keeps unconfirmed: it may not have
        saved it. A new area gets only updates that come after it."""
        inbox = self.members.get(area_id)
        if inbox is None:
            inbox = self.members[area_id] = Inbox(BUFFER_LIMIT)
            if state:
                inbox.receive(self._unconfirmed)
            self._kept.set()
            self.changed.set()
        return inbox

    def kept(self, area_id: str) -> None:
        """The area's last check was saved."""
        inbox = self.members.get(area_id)
        if inbox is not None and not inbox.pending and area_id in self.behind:
            self.behind.discard(area_id)
            self.log.info("Telegram: area %s caught up with its bot's updates", area_id)
        self._kept.set()

    def leave(self, area_id: str) -> None:
        self.members.pop(area_id, None)
        self.behind.discard(area_id)
        self._kept.set()

    def failure(self) -> ServiceError | None:
        """The error an area's check should raise while the poll fails (a transient one
        as "check again when the bot tries again", not the engine's growing backoff)."""
        if self.error is None:
            return None
        if isinstance(self.error, TransientError) and not isinstance(self.error, RateLimited):
            wait = max(1.0, self._retry_at - self.loop.time())
            return RateLimited(str(self.error), retry_after=wait)
        return self.error

    async def aclose(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    # --- Telegram's side

    async def _run(self) -> None:
        delay = RECONNECT_MIN
        try:
            while True:
                await self._ready()
                try:
                    updates = await self._fetch()
                except ServiceError as exc:
                    wait = self._down(exc, delay)
                    delay = min(delay * 2, RECONNECT_MAX)
                    await asyncio.sleep(wait)
                    continue
                delay = RECONNECT_MIN
                self._deliver(updates)
        except Exception:
            self.log.exception("Telegram: the bot's long poll crashed")
        finally:
            if _bots.get(self.key) is self:
                del _bots[self.key]
            for area_id, inbox in self.members.items():
                if area_id in self.behind and inbox.pending:
                    self.log.warning(
                        "Telegram: stopped with %d update(s) that area %s had not picked "
                        "up yet and Telegram has let go; they are lost for it",
                        inbox.pending,
                        area_id,
                    )

    async def _ready(self) -> None:
        """Wait until asking for more updates confirms nothing an area still needs."""
        while True:
            now = self.loop.time()
            waits: list[float] = []
            if self._offset is not None:  # the next getUpdates confirms the last batch
                if now < self._hold_until:
                    waits.append(self._hold_until - now)
                late = [
                    area_id
                    for area_id, inbox in self.members.items()
                    if inbox.pending and area_id not in self.behind
                ]
                if late and now - self._batch_at >= STALL_AFTER:
                    for area_id in late:
                        self.behind.add(area_id)
                        self.log.warning(
                            "Telegram: area %s has not saved its bot's updates for %g s; "
                            "the other areas on the bot go on, and it keeps up to %d "
                            "updates until its next check",
                            area_id,
                            STALL_AFTER,
                            BUFFER_LIMIT,
                        )
                elif late:
                    waits.append(self._batch_at + STALL_AFTER - now)
            if not self.members:
                waits.append(RECONNECT_MAX)  # (stopped by the last area leaving)
            if not waits:
                return
            self._kept.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kept.wait(), min(waits))

    async def _fetch(self) -> list[_Update]:
        query = {
            # After a failure, an answer at once says whether Telegram is back.
            "timeout": "0" if self.error is not None else str(LONG_POLL),
            "limit": str(LIMIT),
            "allowed_updates": json.dumps(ALLOWED_UPDATES),
        }
        if self._offset is not None:
            query["offset"] = str(self._offset)
            self._unconfirmed = []  # confirmed by this request: an area joining now had its turn
        token = await self.session.token()
        answer = await _call(
            self.session.http,
            token,
            "getUpdates",
            "the bot's updates",
            params=query,
            account=self.session,
            timeout=LONG_POLL + ANSWER_MARGIN,
        )
        if not isinstance(answer, list):
            raise TransientError("Telegram answered the bot's updates with something unexpected")
        return [u for u in map(_update, answer) if u is not None]

    def _deliver(self, updates: list[_Update]) -> None:
        if self.error is not None:
            self.log.info("Telegram: the bot's updates come in again")
            self.error = None
        # This answer confirmed the last batch; Telegram keeps these until getUpdates
        # asks for an offset above them.
        self._unconfirmed = updates
        if updates:
            self._offset = max(u.update_id for u in updates) + 1
            self._batch_at = self.loop.time()
            for inbox in self.members.values():
                inbox.receive(updates)
                if inbox.wake is not None:
                    inbox.wake()  # fire them now, not at the area's next check
            self.received += len(updates)
            self.recent.extend(u.message for u in updates if u.message is not None)
        self.changed.set()

    def _down(self, error: ServiceError, delay: float) -> float:
        """Note the failure (logged once per streak); seconds until the next try."""
        if isinstance(error, RateLimited) and error.retry_after:
            wait = error.retry_after
        elif isinstance(error, AuthError):
            wait = RECONNECT_MAX  # (the account says so without asking Telegram)
        else:
            wait = delay
        if self.error is None:
            self.log.warning("Telegram: %s; trying again in %g s", error, wait)
        self.error = error
        self._retry_at = self.loop.time() + wait
        self.changed.set()
        return wait


_bots: dict[str, Bot] = {}


def _bot_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def bot_of(area_id: str) -> Bot | None:
    """The bot whose updates the area gets, if it listens (for tests and diagnostics)."""
    loop = asyncio.get_running_loop()
    return next((b for b in _bots.values() if b.loop is loop and area_id in b.members), None)


async def _join(ctx: PollContext, session: AccountSession, token: str) -> tuple[Bot, Inbox]:
    key = _bot_key(token)
    loop = asyncio.get_running_loop()
    for other in list(_bots.values()):
        if other.key != key and other.loop is loop and ctx.area_id in other.members:
            await _leave(other, ctx.area_id)  # the account's token changed
    bot = _bots.get(key)
    if bot is None or bot.loop is not loop or bot.task.done():
        bot = _bots[key] = Bot(key, session, ctx.log, hold=bool(ctx.state))
    bot.session = session
    return bot, bot.join(ctx.area_id, ctx.state)


async def _leave(bot: Bot, area_id: str) -> None:
    bot.leave(area_id)
    if not bot.members:
        if _bots.get(bot.key) is bot:
            del _bots[bot.key]
        await bot.aclose()


async def aclose_area(area_id: str, *, forget: bool = False) -> None:
    """The area stopped listening (turned off, changed or removed)."""
    loop = asyncio.get_running_loop()
    for bot in list(_bots.values()):
        if bot.loop is loop and area_id in bot.members:
            await _leave(bot, area_id)


async def aclose_all() -> None:
    """Stop every bot's long poll at once (the engine is closing)."""
    loop = asyncio.get_running_loop()
    current = [b for b in _bots.values() if b.loop is loop]
    for bot in current:
        del _bots[bot.key]
    await asyncio.gather(*(b.aclose() for b in current))


async def _messages(ctx: PollContext) -> list[dict[str, Any]]:
    """The messages of updates new to this area, oldest first.

    Telegram hands updates over oldest first ("update identifiers ... increase
    sequentially", core.telegram.org/bots/api#update), so the triggers reverse them into
    the newest-first list the engine expects. They give no ``Item.at``: a message's
    ``date`` is only to the second, and a burst within one second would lose the exact
    order the update ids keep."""
    session = ctx.require_account(service)
    token = await session.token()
    if ctx.dry_run:
        found = await _sample(ctx, session, token)
    else:
        bot, inbox = await _join(ctx, session, token)
        inbox.wake = ctx.check_soon
        if inbox.confirm(ctx.state):
            bot.kept(ctx.area_id)
        if inbox.skipped:
            skipped, inbox.skipped = inbox.skipped, []
            raise PermanentError(
                f"Telegram: {len(skipped)} update(s) (ids {skipped[0]} to {skipped[-1]}) "
                f"were skipped for this area: more than {BUFFER_LIMIT:,} came while its "
                "checks did not keep up (the other areas on the bot got them). Their "
                "messages did not fire here."
            )
        error = bot.failure()
        if error is not None and not inbox.pending:
            raise error
        taken = inbox.take(ctx.state)
        if taken and inbox.wake is not None:
            inbox.wake()  # the next check tells the bot these were saved
        found = [u.message for u in taken if u.message is not None]
    wanted = str(ctx.params.get("chat") or "")
    return [dict(m) for m in found if _matches_chat(m, wanted)]


async def _sample(ctx: PollContext, session: AccountSession, token: str) -> list[Mapping[str, Any]]:
    """A Test in the editor: messages the running bot received lately, or else what
    Telegram keeps unconfirmed (getUpdates without an offset confirms nothing). A second
    reader would end the running one's long poll, so it is not asked while one runs."""
    bot = _bots.get(_bot_key(token))
    if bot is not None and bot.loop is asyncio.get_running_loop() and not bot.task.done():
        return list(bot.recent)
    query = {"timeout": "0", "limit": str(LIMIT), "allowed_updates": json.dumps(ALLOWED_UPDATES)}
    answer = await _call(
        ctx.http, token, "getUpdates", "the bot's updates", params=query, account=session
    )
    if not isinstance(answer, list):
        raise TransientError("Telegram answered the bot's updates with something unexpected")
    return [u.message for u in map(_update, answer) if u is not None and u.message is not None]


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
    default_interval=CHECK_INTERVAL,
    min_interval=1.0,
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
    default_interval=CHECK_INTERVAL,
    min_interval=1.0,
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


# The engine ends the bot's long poll when an area stops listening and when it stops.
service.on_close = aclose_all
service.on_area_stop = aclose_area
