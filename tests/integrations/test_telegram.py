"""Telegram against a local server that answers like the Bot API (one long poll per bot)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from engine import AuthError, PermanentError, PollContext, PollResult, RateLimited, ServiceError
from engine import bus as topics
from engine.app import Engine
from engine.areas import AreaSpec
from engine.auth import AccountSession
from engine.bus import Message
from engine.http import HttpClient
from engine.storage.schema import events
from engine.testing import poll_context, reaction_context
from integrations import telegram
from integrations.telegram import Bot
from tests.integrations.engines import start_engine
from tests.integrations.provider import Seen, load_fixture, serve

TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT = f"/bot{TOKEN}"
FIRST_UPDATE = 871234501


def fixture(name: str) -> Any:
    return load_fixture("telegram", name)


class FakeBotApi:
    """The Bot API's side of a bot: the updates Telegram keeps until they are confirmed,
    and getUpdates as core.telegram.org/bots/api#getupdates describes it (read
    2026-12-06): ``offset`` confirms every update below it, without it the earliest
    unconfirmed come first, at most ``limit``, and with ``timeout`` the request is held
    until an update exists. A second getUpdates ends one still held with 409, as
    Telegram does. Other methods answer what ``on`` set.

    Attributes:
        kept: the updates not confirmed yet, oldest first.
        confirmed_below: the highest offset getUpdates was called with.
        polling: getUpdates requests held open now; ``most_polling``: at most, at once.
        answers: (loop time, update ids) of each getUpdates answered.
    """

    def __init__(self) -> None:
        self.base = ""
        self.kept: list[dict[str, Any]] = []
        self.confirmed_below = 0
        self.polling = 0
        self.most_polling = 0
        self.answers: list[tuple[float, list[int]]] = []
        self.seen: list[Seen] = []
        self.replies: dict[str, tuple[int, Any]] = {}
        self.fail: tuple[int, Any] | None = None
        #: ("kept", area, update ids) as a test saves a check; ("confirmed", offset).
        self.log: list[tuple[Any, ...]] = []
        self.posted: list[int] = []
        self.changed = asyncio.Event()
        self._next_id = FIRST_UPDATE
        self._generation = 0

    def on(self, method: str, body: Any, status: int = 200) -> None:
        self.replies[method] = (status, body)

    def post(self, text: str, chat: int = 987654321) -> int:
        """Someone writes to the bot: Telegram keeps the update; its id."""
        update = copy.deepcopy(fixture("updates.json")["result"][0])
        update["update_id"] = self._next_id
        message = update["message"]
        message["message_id"] = self._next_id - FIRST_UPDATE + 600
        message["chat"]["id"] = chat
        message["date"] = 1763780411 + self._next_id - FIRST_UPDATE
        message["text"] = text
        self.posted.append(self._next_id)
        self._next_id += 1
        self.keep([update])
        return int(update["update_id"])

    def keep(self, updates: list[dict[str, Any]]) -> None:
        self.kept.extend(updates)
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait (on the fake's own signal) until ``predicate`` holds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self.changed.wait()

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                json.loads(raw) if raw else None,
            )
        )
        method = request.path.rsplit("/", 1)[-1]
        if not request.path.startswith(BOT + "/"):
            return web.json_response(fixture("error_not_found.json"), status=404)
        if method == "getUpdates" and self.fail is None:
            return await self._get_updates(request)
        status, body = (
            self.fail
            if method == "getUpdates" and self.fail
            else (self.replies.get(method, (404, fixture("error_not_found.json"))))
        )
        return web.json_response(body, status=status)

    async def _get_updates(self, request: web.Request) -> web.Response:
        query = request.query
        if "offset" in query:
            offset = int(query["offset"])
            self.confirmed_below = max(self.confirmed_below, offset)
            self.log.append(("confirmed", offset))
            self.kept = [u for u in self.kept if u["update_id"] >= offset]
        self._generation += 1
        mine = self._generation
        self.polling += 1
        self.most_polling = max(self.most_polling, self.polling)
        self._wake()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + int(query.get("timeout", "0"))
        try:
            while not self.kept and mine == self._generation and loop.time() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
            if mine != self._generation:
                return web.json_response(fixture("error_conflict_other_reader.json"), status=409)
            result = self.kept[: int(query.get("limit", "100"))]
            self.answers.append((loop.time(), [u["update_id"] for u in result]))
            return web.json_response({"ok": True, "result": result})
        finally:
            self.polling -= 1
            self._wake()


@pytest.fixture
async def tg(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    fake.on("getMe", fixture("get_me.json"))
    FAKES.append(fake)
    # a request whose client went away is cancelled, so the fake knows when Hookline
    # ends a long poll
    async with serve(fake.handle, handler_cancellation=True) as fake.base:
        monkeypatch.setattr(telegram.service, "api_base_url", fake.base)
        yield fake
        await telegram.aclose_all()  # (else the fake's held getUpdates keeps it open)
    FAKES.clear()


@pytest.fixture(autouse=True)
async def _stop_bots(http: HttpClient) -> AsyncIterator[None]:
    """Every bot a test started stops before the HTTP client closes (set up first, so
    torn down after the fake Bot API)."""
    yield
    await telegram.aclose_all()


#: The running test's fake (for check() to log what it saw kept).
FAKES: list[FakeBotApi] = []


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(telegram.service, TOKEN, http, name="@garden_helper_bot")


#: Each area's poll state as the engine saved it (it saves it with the check's events).
saved: dict[str, dict[str, Any]] = {}


@pytest.fixture(autouse=True)
def _saved() -> None:
    saved.clear()


async def check(
    http: HttpClient,
    account: AccountSession | None,
    area_id: str = "area-a",
    params: dict[str, Any] | None = None,
    *,
    trigger: str = "new_message",
    save: bool = True,
) -> PollResult:
    """One check of the area, its state kept as the engine keeps it: saved (through
    JSON, as in the database) unless ``save`` is off, as when the engine could not."""
    spec = telegram.service.triggers[trigger]
    state = json.loads(json.dumps(saved.get(area_id, {})))
    ctx = poll_context(spec, params or {}, http, state=state, area_id=area_id)
    ctx.account = account
    assert spec.poll is not None
    result = await spec.poll(ctx)
    if save:
        saved[area_id] = json.loads(json.dumps(state))
        if FAKES and trigger == "new_message" and not params:
            kept = [_update_id(item.data) for item in result.items]
            FAKES[-1].log.append(("kept", area_id, kept))
    return result


def _update_id(data: Any) -> int:
    """The update a message the fake posted came in (see FakeBotApi.post)."""
    return int(data["message_id"]) - 600 + FIRST_UPDATE


def confirmed_only_what_every_area_kept(fake: FakeBotApi, areas: list[str]) -> None:
    """Each getUpdates that confirmed updates came after every area had saved them."""
    kept: dict[str, set[int]] = {area: set() for area in areas}
    for entry in fake.log:
        if entry[0] == "kept":
            kept[entry[1]].update(entry[2])
            continue
        below = [n for n in fake.posted if n < entry[1]]
        for area in areas:
            assert set(below) <= kept[area], (entry, area)


async def texts(
    http: HttpClient, account: AccountSession, area_id: str = "area-a", **kw: Any
) -> list[str]:
    """The texts one check hands out, oldest first."""
    result = await check(http, account, area_id, **kw)
    return [item.data["text"] for item in reversed(result.items)]


async def until(area_id: str, predicate: Callable[[Bot], bool], timeout: float = 10.0) -> Bot:
    """Wait (on the bot's own signal, not a sleep) until ``predicate`` holds."""
    bot = telegram.bot_of(area_id)
    assert bot is not None
    async with asyncio.timeout(timeout):
        while not predicate(bot):
            bot.changed.clear()
            await bot.changed.wait()
    return bot


async def react(params: dict[str, Any], http: HttpClient, account: AccountSession | None) -> Any:
    spec = telegram.service.reactions["send_message"]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return await spec.run(ctx)


async def listening(tg: FakeBotApi, http: HttpClient, account: AccountSession, *areas: str) -> None:
    """The areas' first checks (nothing to hand out yet), then the bot's long poll held."""
    for area_id in areas:
        assert await texts(http, account, area_id) == []
    await tg.wait(lambda: tg.polling == 1)


async def arrive(tg: FakeBotApi, area_id: str, *messages: str) -> None:
    """People write to the bot; wait until the area's bot has received it all."""
    bot = telegram.bot_of(area_id)
    assert bot is not None
    total = bot.received + len(messages)
    for text in messages:
        tg.post(text)
    await until(area_id, lambda b: b.received == total)


def test_declaration() -> None:
    for name in ("new_message", "command_received"):
        spec = telegram.service.triggers[name]
        # Idle checks are seldom: the bot asks for one as updates come (a run starts
        # within about a second: the through-engine test below).
        assert (spec.default_interval, spec.min_interval) == (15.0, 1.0)
    assert telegram.service.on_close is telegram.aclose_all
    assert telegram.service.on_area_stop is telegram.aclose_area


async def test_userinfo_names_the_bot(tg: FakeBotApi, http: HttpClient) -> None:
    assert telegram.service.api_key is not None
    assert telegram.service.api_key.userinfo is not None
    assert await telegram.service.api_key.userinfo(http, TOKEN) == "@garden_helper_bot"
    assert tg.seen[0].path == f"{BOT}/getMe"


# ---------------------------------------------------------------------- one long poll per bot


async def test_two_areas_on_one_bot_each_get_every_update_once(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    assert await texts(http, account, "area-a") == []
    assert await texts(http, account, "area-b") == []
    await tg.wait(lambda: tg.polling == 1)
    assert telegram.bot_of("area-b") is telegram.bot_of("area-a") is not None
    await arrive(tg, "area-a", "Are the tomatoes ripe?", "/water balcony 2 l")

    assert await texts(http, account, "area-a") == ["Are the tomatoes ripe?", "/water balcony 2 l"]
    assert await texts(http, account, "area-b") == ["Are the tomatoes ripe?", "/water balcony 2 l"]
    # Both saved: the next checks confirm them, and the bot asks for the next ones.
    assert await texts(http, account, "area-a") == []
    assert await texts(http, account, "area-b") == []
    await tg.wait(lambda: tg.confirmed_below == FIRST_UPDATE + 2 and tg.polling == 1)
    await arrive(tg, "area-a", "Frost tonight")
    assert await texts(http, account, "area-b") == ["Frost tonight"]
    assert await texts(http, account, "area-a") == ["Frost tonight"]

    # One long poll for the bot, never two at once (Telegram would end one with 409).
    assert tg.most_polling == 1
    asks = [s.query for s in tg.seen if s.path == f"{BOT}/getUpdates"]
    assert asks[0] == {
        "timeout": "50",
        "limit": "100",
        "allowed_updates": '["message", "channel_post"]',
    }
    assert [a.get("offset") for a in asks] == [None, str(FIRST_UPDATE + 2)]
    confirmed_only_what_every_area_kept(tg, ["area-a", "area-b"])
    assert "Authorization" not in tg.seen[0].headers  # the token is in the address only


async def test_messages_and_channel_posts_become_items(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    await check(http, account, "area-a")
    await check(http, account, "area-b", trigger="command_received")
    await tg.wait(lambda: tg.polling == 1)
    tg.keep(fixture("updates.json")["result"])
    await until("area-a", lambda b: b.received == 4)
    result = await check(http, account, "area-a")
    # Newest first, as the engine expects; every message and channel post.
    assert [item.key for item in result.items] == [
        "987654321:512",
        "-1009876543210:77",
        "-1001234567890:211",
        "987654321:510",
    ]
    assert result.items[-1].data == {
        "message_id": 510,
        "chat_id": 987654321,
        "chat_title": "Marta Kowal",
        "chat_type": "private",
        "from_id": 987654321,
        "from_name": "Marta Kowal",
        "from_username": "marta_k",
        "text": "Are the tomatoes ripe?",
        "date": "2025-11-22T03:00:11+00:00",
    }
    commands = await check(http, account, "area-b", trigger="command_received")
    assert [(i.data["command"], i.data["arguments"]) for i in commands.items] == [
        ("status", ""),
        ("water", "balcony 2 l"),
    ]
    assert commands.items[1].data["chat_title"] == "Garden club"


@pytest.mark.parametrize(
    ("chat", "keys"),
    [("-1001234567890", ["-1001234567890:211"]), ("@Garden_News", ["-1009876543210:77"])],
)
async def test_chat_filter(
    tg: FakeBotApi, http: HttpClient, account: AccountSession, chat: str, keys: list[str]
) -> None:
    await check(http, account, params={"chat": chat})
    await tg.wait(lambda: tg.polling == 1)
    tg.keep(fixture("updates.json")["result"])
    await until("area-a", lambda b: b.received == 4)
    result = await check(http, account, params={"chat": chat})
    assert [item.key for item in result.items] == keys
    await check(http, account, params={"chat": chat})
    # The updates of other chats are confirmed too: they are not this area's.
    await tg.wait(lambda: tg.confirmed_below == 871234505)


async def test_a_named_command(tg: FakeBotApi, http: HttpClient, account: AccountSession) -> None:
    params = {"command": "/Water"}
    await check(http, account, params=params, trigger="command_received")
    await tg.wait(lambda: tg.polling == 1)
    await arrive(tg, "area-a", "/status", "/water@garden_helper_bot balcony 2 l")
    result = await check(http, account, params=params, trigger="command_received")
    [item] = result.items
    assert (item.data["command"], item.data["arguments"]) == ("water", "balcony 2 l")


async def test_an_area_added_later_gets_only_what_comes_after_it(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    await listening(tg, http, account, "area-a", "area-b")
    await arrive(tg, "area-a", "before the third area")
    # Telegram still keeps it (not confirmed), but it came before area-c existed.
    assert await texts(http, account, "area-c") == []
    for area_id in ("area-a", "area-b"):
        assert await texts(http, account, area_id) == ["before the third area"]
        assert await texts(http, account, area_id) == []
    await tg.wait(lambda: tg.confirmed_below == FIRST_UPDATE + 1 and tg.polling == 1)
    await arrive(tg, "area-a", "after")
    for area_id in ("area-a", "area-b", "area-c"):
        assert await texts(http, account, area_id) == ["after"]


async def test_updates_are_confirmed_only_once_every_area_saved_them(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    await listening(tg, http, account, "area-a", "area-b")
    await arrive(tg, "area-a", "one", "two")
    assert await texts(http, account, "area-a") == ["one", "two"]
    assert await texts(http, account, "area-a") == []  # area-a's check was saved
    # The engine could not save area-b's check: it gets them again, and Telegram keeps
    # them meanwhile.
    assert await texts(http, account, "area-b", save=False) == ["one", "two"]
    assert await texts(http, account, "area-b") == ["one", "two"]
    assert tg.confirmed_below == 0
    assert tg.polling == 0  # the bot waits: asking for more would confirm them
    assert await texts(http, account, "area-b") == []
    await tg.wait(lambda: tg.confirmed_below == FIRST_UPDATE + 2)
    confirmed_only_what_every_area_kept(tg, ["area-a", "area-b"])


async def test_more_updates_than_one_answer_holds_fire_once_each_in_order(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    await listening(tg, http, account, "area-a", "area-b")
    sent = [str(n) for n in range(250)]
    ids = [tg.post(text) for text in sent]
    got: dict[str, list[str]] = {"area-a": [], "area-b": []}
    while len(got["area-b"]) < len(sent):
        await until("area-a", lambda b: b.received > len(got["area-a"]))
        for area_id in got:
            got[area_id] += await texts(http, account, area_id)
        for area_id in got:
            assert await texts(http, account, area_id) == []  # saved: the bot goes on
    assert got == {"area-a": sent, "area-b": sent}
    # Telegram handed them out 100 at a time; each batch was confirmed only once both
    # areas had saved it, so nothing waited in Hookline's memory alone.
    assert [len(ids) for _, ids in tg.answers] == [100, 100, 50]
    assert tg.answers[-1][1][-1] == ids[-1]
    confirmed_only_what_every_area_kept(tg, ["area-a", "area-b"])


async def test_an_area_that_does_not_keep_up_does_not_stop_the_others(
    tg: FakeBotApi, http: HttpClient, account: AccountSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram, "STALL_AFTER", 0.2)
    monkeypatch.setattr(telegram, "BUFFER_LIMIT", 3)
    await listening(tg, http, account, "area-a", "area-late")
    await arrive(tg, "area-a", "batch 1.0", "batch 1.1")
    assert await texts(http, account, "area-a") == ["batch 1.0", "batch 1.1"]
    assert await texts(http, account, "area-a") == []
    # area-late's checks are not saved (failing): after STALL_AFTER the bot goes on.
    assert await texts(http, account, "area-late", save=False) == ["batch 1.0", "batch 1.1"]
    await tg.wait(lambda: tg.confirmed_below == FIRST_UPDATE + 2 and tg.polling == 1)
    bot = telegram.bot_of("area-a")
    assert bot is not None and bot.behind == {"area-late"}
    await arrive(tg, "area-a", "batch 2.0", "batch 2.1", "batch 2.2")
    assert await texts(http, account, "area-a") == ["batch 2.0", "batch 2.1", "batch 2.2"]

    # area-late kept what it could (3) and is told, in a failed check, what it skipped.
    with pytest.raises(PermanentError, match=r"2 update\(s\) \(ids 871234504 to 871234505\)"):
        await check(http, account, "area-late")
    assert await texts(http, account, "area-late") == ["batch 1.0", "batch 1.1", "batch 2.0"]
    assert await texts(http, account, "area-late") == []
    assert bot.behind == set()  # caught up: it counts again before anything is confirmed


async def test_an_area_that_stops_listening_holds_up_nothing_and_the_last_ends_the_poll(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    await listening(tg, http, account, "area-a", "area-b")
    await arrive(tg, "area-a", "one")
    assert await texts(http, account, "area-a") == ["one"]
    await telegram.aclose_area("area-b")  # turned off before it took "one"
    assert await texts(http, account, "area-a") == []
    await tg.wait(lambda: tg.confirmed_below == FIRST_UPDATE + 1 and tg.polling == 1)

    # A Test in the editor meanwhile shows what the bot received, without a second
    # getUpdates (Telegram would end the bot's long poll with 409).
    spec = telegram.service.triggers["new_message"]
    assert spec.poll is not None
    ctx = poll_context(spec, {}, http, dry_run=True)
    ctx.account = account
    sample = await spec.poll(ctx)
    assert [item.data["text"] for item in sample.items] == ["one"]
    assert tg.most_polling == 1

    await telegram.aclose_area("area-a")
    assert telegram.bot_of("area-a") is None
    await tg.wait(lambda: tg.polling == 0, timeout=5)  # the long poll ended at once


async def bot_failing(http: HttpClient, account: AccountSession) -> Exception:
    """The error an area's check raises once its bot's getUpdates has failed."""
    await check(http, account)  # starts the bot
    await until("area-a", lambda b: b.error is not None)
    with pytest.raises(ServiceError) as caught:
        await check(http, account)
    assert TOKEN.split(":")[1] not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("error_conflict_webhook.json", "a webhook is set on this bot.*deleteWebhook"),
        ("error_conflict_other_reader.json", "another program is reading them.*stop the other"),
    ],
)
async def test_a_conflict_says_what_to_do(
    tg: FakeBotApi, http: HttpClient, account: AccountSession, name: str, says: str
) -> None:
    tg.fail = (409, fixture(name))
    error = await bot_failing(http, account)
    assert isinstance(error, PermanentError)
    assert re.search(says, str(error)), error


async def test_a_revoked_token_asks_to_reconnect_the_account(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    tg.fail = (401, fixture("error_unauthorized.json"))
    error = await bot_failing(http, account)
    assert isinstance(error, AuthError)
    assert "needs reconnecting" in str(error)
    assert "`hookline accounts token telegram`" in str(error)
    assert account.account.status == "needs_reconnect"
    asks = [s for s in tg.seen if s.path.endswith("/getUpdates")]
    assert len(asks) == 1  # not asked again and again with a dead token


async def test_telegram_down_is_retried_without_growing_backoff(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    tg.fail = (502, fixture("error_bad_gateway.json"))
    error = await bot_failing(http, account)
    assert isinstance(error, RateLimited) and "HTTP 502" in str(error)
    assert error.retry_after is not None and error.retry_after <= 1.0
    tg.fail = None
    # The first try after a failure asks without waiting, so the areas hear at once.
    await until("area-a", lambda b: b.error is None, timeout=15)
    assert await texts(http, account) == []


async def test_unreachable_telegram_never_shows_the_token(
    http: HttpClient, account: AccountSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram.service, "api_base_url", "http://127.0.0.1:9")
    assert "<bot token>" in str(await bot_failing(http, account))


async def test_command_must_be_a_word(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="not a command"):
        await check(http, account, params={"command": "/wa ter"}, trigger="command_received")
    assert tg.seen == []
    assert telegram.bot_of("area-a") is None  # it holds up no other area


async def test_no_account_says_how_to_add_one(tg: FakeBotApi, http: HttpClient) -> None:
    with pytest.raises(AuthError, match="hookline accounts token telegram"):
        await check(http, None)


async def test_a_test_in_the_editor_confirms_nothing_and_starts_nothing(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    tg.keep(fixture("updates.json")["result"])
    spec = telegram.service.triggers["new_message"]
    assert spec.poll is not None
    ctx: PollContext = poll_context(spec, {}, http, dry_run=True)
    ctx.account = account
    result = await spec.poll(ctx)
    assert result.items[0].data["text"] == "/status"
    [ask] = tg.seen
    assert "offset" not in ask.query and ask.query["timeout"] == "0"
    assert telegram.bot_of("test-area") is None
    assert len(tg.kept) == 4


# ---------------------------------------------------------------------- through a real engine


def watching(account_id: str, name: str, interval: float | None = None) -> AreaSpec:
    """An area that notifies each message the bot receives."""
    spec: dict[str, Any] = {
        "name": name,
        "trigger": {"service": "telegram", "trigger": "new_message", "account": account_id},
        "reactions": [
            {"service": "notify", "reaction": "notify", "params": {"title": "{{ trigger.text }}"}}
        ],
    }
    if interval is not None:
        spec["interval"] = interval
    return AreaSpec.from_dict(spec)


async def by_hand(engine: Engine, account_id: str, *names: str) -> list[str]:
    """Areas the test checks by hand (the engine's own checks would race with it)."""
    ids = []
    for name in names:
        area = await engine.create_area(watching(account_id, name, interval=3600))
        engine.scheduler.remove(area.id)
        ids.append(area.id)
    return ids


async def engine_check(engine: Engine, area_id: str) -> int:
    """One check of the area as the engine's schedule makes it; how many events fired."""
    area = engine.area(area_id)
    spec = engine.registry.trigger("telegram", "new_message")
    assert spec.poll is not None and area.spec.trigger.account is not None
    session = await engine.accounts.session(area.spec.trigger.account)
    poll = spec.poll

    async def as_account(ctx: PollContext) -> PollResult:
        ctx.account = session
        return await poll(ctx)

    return await engine.poller.poll(area, replace(spec, poll=as_account), {}, 3600)


async def fired(engine: Engine, area_id: str) -> list[str]:
    """The texts of the area's events, in the order they were journaled."""
    async with engine.store.db.connect() as conn:
        rows = await conn.execute(
            select(events.c.payload).where(events.c.area_id == area_id).order_by(events.c.id)
        )
        return [row[0]["text"] for row in rows]


async def test_a_restart_neither_loses_nor_repeats_updates(tg: FakeBotApi, data_dir: Path) -> None:
    engine = await start_engine(data_dir)
    # Checks only when the test says, not even those the bot asks for as updates come
    # (the one after a saved check would confirm them to Telegram at once).
    engine.poller.check_soon = lambda area_id: None  # type: ignore[method-assign]
    try:
        account = await engine.accounts.add_token("telegram", TOKEN)
        a, b = await by_hand(engine, account.id, "Area A", "Area B")
        assert await engine_check(engine, a) == 0  # primes
        assert await engine_check(engine, b) == 0
        await tg.wait(lambda: tg.polling == 1)
        await arrive(tg, a, "one", "two")
        assert await engine_check(engine, a) == 2
        assert await engine_check(engine, b) == 2
        # Stopped after both saved them, before the next checks let the bot confirm
        # them: Telegram still keeps them. Then a message comes while Hookline is closed.
        await engine.aclose()
        assert tg.confirmed_below == 0
        tg.post("three")

        engine = await start_engine(data_dir)
        engine.poller.check_soon = lambda area_id: None  # type: ignore[method-assign]
        for area_id in (a, b):
            engine.scheduler.remove(area_id)
        assert await engine_check(engine, a) == 0  # starts the bot again
        await until(a, lambda bot: bot.received == 3)
        assert await engine_check(engine, a) == 1  # "one" and "two" were seen already
        assert await engine_check(engine, a) == 0  # (area A has saved all three)
        # Area B's first check comes later (the engine spreads them over 30 s at a
        # start): Telegram still keeps "three" for it, nothing was confirmed meanwhile.
        assert tg.confirmed_below == 0
        assert await engine_check(engine, b) == 1
        assert await engine_check(engine, b) == 0
        assert await fired(engine, a) == ["one", "two", "three"]
        assert await fired(engine, b) == ["one", "two", "three"]
        assert [ids for _, ids in tg.answers] == [
            [FIRST_UPDATE, FIRST_UPDATE + 1],
            [FIRST_UPDATE, FIRST_UPDATE + 1, FIRST_UPDATE + 2],
        ]
    finally:
        await engine.aclose()


def next_run(engine: Engine, area_id: str) -> asyncio.Future[float]:
    """When (loop time) the area's next run starts."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[float] = loop.create_future()

    def listener(message: Message) -> None:
        if message.data.get("area_id") == area_id and not future.done():
            future.set_result(loop.time())

    stop = engine.bus.subscribe(topics.RUN_STARTED, listener)
    future.add_done_callback(lambda _: stop())
    return future


async def test_an_update_fires_within_a_second_in_every_area_and_quit_ends_the_long_poll(
    tg: FakeBotApi, data_dir: Path
) -> None:
    engine = await start_engine(data_dir)
    try:
        account = await engine.accounts.add_token("telegram", TOKEN)
        areas = [
            (await engine.create_area(watching(account.id, name))).id
            for name in ("Area A", "Area B")
        ]  # the trigger's own interval (15 s): updates ask for a check at once
        await tg.wait(lambda: tg.polling == 1)
        bot = telegram.bot_of(areas[0]) or telegram.bot_of(areas[1])
        assert bot is not None
        async with asyncio.timeout(10):  # both areas' first checks (primed: nothing fires)
            while not set(areas) <= set(bot.members):
                bot.changed.clear()
                await bot.changed.wait()
        for text in ("first", "second"):
            runs = [next_run(engine, area_id) for area_id in areas]
            tg.post(text)
            started = await asyncio.wait_for(asyncio.gather(*runs), 30)
            answered = tg.answers[-1][0]
            # Within about a second of Telegram's answer (a check asked for as the
            # updates came, and a loaded test machine's slack).
            assert max(started) - answered < 2.0, (text, [s - answered for s in started])
        await engine.wait_idle()
        for area_id in areas:
            assert await fired(engine, area_id) == ["first", "second"]

        await tg.wait(lambda: tg.polling == 1)  # the long poll is held open
        began = time.monotonic()
        await engine.aclose()
        assert time.monotonic() - began < 5  # not the 50 s Telegram would hold it
        await tg.wait(lambda: tg.polling == 0, timeout=5)  # the connection was dropped
        assert tg.most_polling == 1
    finally:
        await engine.aclose()


# ---------------------------------------------------------------------- reactions


@pytest.mark.parametrize(
    ("mode", "sent"), [("none", None), ("markdown", "Markdown"), ("html", "HTML")]
)
async def test_send_message_posts_json(
    tg: FakeBotApi, http: HttpClient, account: AccountSession, mode: str, sent: str | None
) -> None:
    tg.on("sendMessage", fixture("send_message.json"))
    out = await react(
        {"chat_id": "-1001234567890", "text": "Frost tonight", "parse_mode": mode},
        http,
        account,
    )
    [seen] = tg.seen
    assert (seen.method, seen.path) == ("POST", f"{BOT}/sendMessage")
    expected: dict[str, Any] = {"chat_id": -1001234567890, "text": "Frost tonight"}
    if sent:
        expected["parse_mode"] = sent
    assert seen.body == expected
    assert out == {
        "message_id": 513,
        "chat_id": -1001234567890,
        "date": "2025-11-22T03:05:20+00:00",
    }


async def test_send_message_to_a_channel_name(
    tg: FakeBotApi, http: HttpClient, account: AccountSession
) -> None:
    tg.on("sendMessage", fixture("send_message.json"))
    await react({"chat_id": "@garden_news", "text": "Hi"}, http, account)
    assert tg.seen[0].body == {"chat_id": "@garden_news", "text": "Hi"}


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"chat_id": "garden club", "text": "Hi"}, "not a Telegram chat"),
        ({"chat_id": "42", "text": "x" * 4097}, "at most 4096"),
    ],
)
async def test_send_message_bad_input(
    tg: FakeBotApi, http: HttpClient, account: AccountSession, params: dict[str, Any], text: str
) -> None:
    with pytest.raises(PermanentError, match=text):
        await react(params, http, account)
    assert tg.seen == []


@pytest.mark.parametrize(
    ("name", "status", "text"),
    [
        ("error_chat_not_found.json", 400, "refused chat 42: Bad Request: chat not found"),
        ("error_forbidden.json", 403, "bot was blocked by the user"),
    ],
)
async def test_send_message_refused(
    tg: FakeBotApi,
    http: HttpClient,
    account: AccountSession,
    name: str,
    status: int,
    text: str,
) -> None:
    tg.on("sendMessage", fixture(name), status=status)
    with pytest.raises(PermanentError, match=text):
        await react({"chat_id": "42", "text": "Hi"}, http, account)
