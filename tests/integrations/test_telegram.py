"""Telegram against a local server that answers with Bot API-shaped responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from engine import AuthError, PermanentError, RateLimited, ServiceError, TransientError
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.testing import poll_context, reaction_context
from integrations import telegram
from tests.integrations.provider import Seen, load_fixture, serve

TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT = f"/bot{TOKEN}"


def fixture(name: str) -> Any:
    return load_fixture("telegram", name)


@dataclass
class FakeTelegram:
    """Answers each Bot API method with a set (status, body); records every request."""

    base: str = ""
    replies: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, body: Any, status: int = 200, **headers: str) -> None:
        self.replies[method] = (status, body, headers)

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
        if not request.path.startswith(BOT + "/") or method not in self.replies:
            return web.json_response(fixture("error_not_found.json"), status=404)
        status, body, headers = self.replies[method]
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def tg(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    async with serve(fake.handle) as fake.base:
        monkeypatch.setattr(telegram.service, "api_base_url", fake.base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(telegram.service, TOKEN, http, name="@garden_helper_bot")


async def poll(
    trigger: str,
    params: dict[str, Any],
    http: HttpClient,
    account: AccountSession | None,
    state: dict[str, Any],
) -> Any:
    spec = telegram.service.triggers[trigger]
    ctx = poll_context(spec, params, http, state=state)
    ctx.account = account
    assert spec.poll is not None
    return await spec.poll(ctx)


async def react(params: dict[str, Any], http: HttpClient, account: AccountSession | None) -> Any:
    spec = telegram.service.reactions["send_message"]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return await spec.run(ctx)


# ---------------------------------------------------------------------- account


async def test_userinfo_names_the_bot(tg: FakeTelegram, http: HttpClient) -> None:
    tg.on("getMe", fixture("get_me.json"))
    assert telegram.service.api_key is not None
    assert telegram.service.api_key.userinfo is not None
    assert await telegram.service.api_key.userinfo(http, TOKEN) == "@garden_helper_bot"
    assert tg.seen[0].path == f"{BOT}/getMe"


# ---------------------------------------------------------------------- triggers


async def test_new_message_reads_updates_and_keeps_the_offset(
    tg: FakeTelegram, http: HttpClient, account: AccountSession
) -> None:
    tg.on("getUpdates", fixture("updates.json"))
    state: dict[str, Any] = {}
    result = await poll("new_message", {}, http, account, state)
    first = tg.seen[0]
    assert (first.method, first.path) == ("GET", f"{BOT}/getUpdates")
    assert first.query == {
        "timeout": "0",
        "limit": "100",
        "allowed_updates": '["message", "channel_post"]',
    }
    assert "Authorization" not in first.headers
    assert state["offset"] == 871234505
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
    tg.on("getUpdates", fixture("updates_empty.json"))
    again = await poll("new_message", {}, http, account, state)
    assert again.items == []
    assert tg.seen[1].query["offset"] == "871234505"


@pytest.mark.parametrize(
    ("chat", "keys"),
    [("-1001234567890", ["-1001234567890:211"]), ("@Garden_News", ["-1009876543210:77"])],
)
async def test_new_message_chat_filter(
    tg: FakeTelegram, http: HttpClient, account: AccountSession, chat: str, keys: list[str]
) -> None:
    tg.on("getUpdates", fixture("updates.json"))
    state: dict[str, Any] = {}
    result = await poll("new_message", {"chat": chat}, http, account, state)
    assert [item.key for item in result.items] == keys
    assert state["offset"] == 871234505  # the others are confirmed too


async def test_command_received_any_and_named(
    tg: FakeTelegram, http: HttpClient, account: AccountSession
) -> None:
    tg.on("getUpdates", fixture("updates.json"))
    result = await poll("command_received", {}, http, account, {})
    assert [(i.data["command"], i.data["arguments"]) for i in result.items] == [
        ("status", ""),
        ("water", "balcony 2 l"),
    ]
    result = await poll("command_received", {"command": "/Water"}, http, account, {})
    [item] = result.items
    assert item.key == "-1001234567890:211"
    assert item.data["from_username"] == "jonas_b"
    assert item.data["chat_title"] == "Garden club"


async def test_command_must_be_a_word(
    tg: FakeTelegram, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="not a command"):
        await poll("command_received", {"command": "/wa ter"}, http, account, {})
    assert tg.seen == []


async def test_no_account_says_how_to_add_one(tg: FakeTelegram, http: HttpClient) -> None:
    with pytest.raises(AuthError, match="hookline accounts token telegram"):
        await poll("new_message", {}, http, None, {})


@pytest.mark.parametrize(
    ("name", "status", "error", "text"),
    [
        ("error_unauthorized.json", 401, AuthError, "refused the bot token: Unauthorized"),
        ("error_not_found.json", 404, AuthError, "refused the bot token"),
        ("error_conflict_webhook.json", 409, PermanentError, "deleteWebhook"),
        ("error_bad_gateway.json", 502, TransientError, "HTTP 502"),
    ],
)
async def test_errors_never_show_the_token(
    tg: FakeTelegram,
    http: HttpClient,
    account: AccountSession,
    name: str,
    status: int,
    error: type[Exception],
    text: str,
) -> None:
    tg.on("getUpdates", fixture(name), status=status)
    with pytest.raises(error, match=text) as caught:
        await poll("new_message", {}, http, account, {})
    assert TOKEN not in str(caught.value)
    assert TOKEN.split(":")[1] not in str(caught.value)


async def test_rate_limit_uses_retry_after_from_the_body(
    tg: FakeTelegram, http: HttpClient, account: AccountSession
) -> None:
    tg.on("getUpdates", fixture("error_too_many_requests.json"), status=429)
    with pytest.raises(RateLimited) as caught:
        await poll("new_message", {}, http, account, {})
    assert caught.value.retry_after == 7


async def test_unreachable_api_error_hides_the_token(
    http: HttpClient, account: AccountSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram.service, "api_base_url", "http://127.0.0.1:9")
    with pytest.raises(ServiceError) as caught:
        await poll("new_message", {}, http, account, {})
    assert "<bot token>" in str(caught.value)
    assert TOKEN.split(":")[1] not in str(caught.value)


# ---------------------------------------------------------------------- reactions


@pytest.mark.parametrize(
    ("mode", "sent"), [("none", None), ("markdown", "Markdown"), ("html", "HTML")]
)
async def test_send_message_posts_json(
    tg: FakeTelegram, http: HttpClient, account: AccountSession, mode: str, sent: str | None
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
    tg: FakeTelegram, http: HttpClient, account: AccountSession
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
    tg: FakeTelegram, http: HttpClient, account: AccountSession, params: dict[str, Any], text: str
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
    tg: FakeTelegram,
    http: HttpClient,
    account: AccountSession,
    name: str,
    status: int,
    text: str,
) -> None:
    tg.on("sendMessage", fixture(name), status=status)
    with pytest.raises(PermanentError, match=text):
        await react({"chat_id": "42", "text": "Hi"}, http, account)
