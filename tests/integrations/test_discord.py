"""Discord against a local server that answers with Discord API-shaped responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from engine import (
    AuthError,
    PermanentError,
    RateLimited,
    ServiceError,
    TransientError,
    ValidationError,
)
from engine.areas import Step, link_account
from engine.auth import NEEDS_RECONNECT, AccountSession
from engine.http import HttpClient
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import discord, discord_gateway
from tests.integrations.provider import Seen, load_fixture, serve

TOKEN = "MTMxMTU3MDAwMDAwMDAwMDAwMQ.GhT3xY.k2B8mN4pQ7rS1vW5yZ9aC3eF6hJ0lO2uX8iK4"
CHANNEL = "1103442133558341712"
GUILD = "1103442132836929548"
HOOK_PATH = "/api/webhooks/1311579000000000000/wH-9sEcReT_tOkEn"


def fixture(name: str) -> Any:
    return load_fixture("discord", name)


@dataclass
class FakeDiscord:
    """Answers each (method, path) with a set (status, body, headers); records requests."""

    base: str = ""
    replies: dict[tuple[str, str], list[tuple[int, Any, dict[str, str]]]] = field(
        default_factory=dict
    )
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, body: Any, status: int = 200, **headers: str) -> None:
        self.replies.setdefault((method, path), []).append((status, body, headers))

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
        queue = self.replies.get((request.method, request.path))
        if not queue:
            return web.json_response({"message": "404: Not Found", "code": 0}, status=404)
        status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def dc(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    async with serve(fake.handle) as fake.base:
        monkeypatch.setattr(discord.service, "api_base_url", fake.base + "/api/v10")
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(discord.service, TOKEN, http, name="Garden helper")


@pytest.fixture(autouse=True)
async def _no_gateway_left() -> AsyncIterator[None]:
    yield
    await discord_gateway.aclose_all()


async def poll(
    trigger: str,
    params: dict[str, Any],
    http: HttpClient,
    account: AccountSession | None,
    *,
    state: dict[str, Any] | None = None,
    dry_run: bool = True,
) -> Any:
    """A check by REST: a Test in the editor (``dry_run``), or, without, a check while
    the Gateway cannot be used (the fake answers /gateway/bot with 404)."""
    spec = discord.service.triggers[trigger]
    ctx = poll_context(spec, params, http, state=state, dry_run=dry_run)
    ctx.account = account
    assert spec.poll is not None
    return await spec.poll(ctx)


async def react(
    reaction: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = discord.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return await spec.run(ctx)


def assert_bot(seen: Seen) -> None:
    assert seen.headers["Authorization"] == f"Bot {TOKEN}"


# ---------------------------------------------------------------------- account


async def test_userinfo_names_the_bot(dc: FakeDiscord, http: HttpClient) -> None:
    dc.on("GET", "/api/v10/users/@me", fixture("user_me.json"))
    spec = discord.service.api_key
    assert spec is not None and spec.userinfo is not None
    assert await spec.userinfo(http, TOKEN) == "Garden helper"
    assert_bot(dc.seen[0])


# ---------------------------------------------------------------------- triggers


async def test_new_message_lists_the_channel_without_bots(
    dc: FakeDiscord, http: HttpClient, account: AccountSession
) -> None:
    dc.on("GET", f"/api/v10/channels/{CHANNEL}/messages", fixture("messages.json"))
    result = await poll("new_message", {"channel_id": CHANNEL}, http, account)
    [seen] = dc.seen
    assert (seen.method, seen.query) == ("GET", {"limit": "50"})
    assert_bot(seen)
    assert [item.key for item in result.items] == ["1311578390443421736", "1311575487921356810"]
    assert result.items[0].data == {
        "message_id": "1311578390443421736",
        "channel_id": CHANNEL,
        "author_id": "80351110224678912",
        "author_name": "Marta",
        "author_username": "marta.kowal",
        "content": "FROST tonight, cover the seedlings",
        "attachments": [
            "https://cdn.discordapp.com/attachments/1103442133558341712/"
            "1311578390020000000/forecast.png?ex=674a&is=6748&hm=9f"
        ],
        "timestamp": "2026-11-22T03:10:11.123000+00:00",
    }
    assert result.items[1].data["author_name"] == "jonas_b"


async def test_new_message_with_bots_and_a_channel_link(
    dc: FakeDiscord, http: HttpClient, account: AccountSession
) -> None:
    dc.on("GET", f"/api/v10/channels/{CHANNEL}/messages", fixture("messages.json"))
    link = f"https://discord.com/channels/{GUILD}/{CHANNEL}"
    result = await poll("new_message", {"channel_id": link, "include_bots": True}, http, account)
    assert len(result.items) == 3


async def test_new_messages_fire_oldest_first_whatever_the_listing_order(
    dc: FakeDiscord, http: HttpClient, account: AccountSession
) -> None:
    messages = fixture("messages.json")[::-1]  # oldest first: the send times decide
    dc.on("GET", f"/api/v10/channels/{CHANNEL}/messages", messages)
    result = await poll("new_message", {"channel_id": CHANNEL, "include_bots": True}, http, account)
    assert [i.key for i in oldest_first(result.items)] == [
        "1311575487921356810",
        "1311578390443421736",
        "1311578390443421740",
    ]


async def test_message_with_keyword_matches_any_keyword_ignoring_case(
    dc: FakeDiscord, http: HttpClient, account: AccountSession
) -> None:
    dc.on("GET", f"/api/v10/channels/{CHANNEL}/messages", fixture("messages.json"))
    result = await poll(
        "message_with_keyword", {"channel_id": CHANNEL, "keyword": "storm, frost"}, http, account
    )
    [item] = result.items
    assert item.key == "1311578390443421736"
    assert item.data["keyword"] == "frost"
    with pytest.raises(PermanentError, match="at least one keyword"):
        await poll("message_with_keyword", {"channel_id": CHANNEL, "keyword": " , "}, http, account)


async def test_bad_channel_id_says_how_to_copy_one(
    dc: FakeDiscord, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="Copy Channel ID"):
        await poll("new_message", {"channel_id": "#general"}, http, account)
    assert dc.seen == []


async def test_new_member_test_pages_and_lists_newest_joiners_first(
    dc: FakeDiscord,
    http: HttpClient,
    account: AccountSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(discord, "MEMBER_LIMIT", 2)
    members = fixture("members.json")
    path = f"/api/v10/guilds/{GUILD}/members"
    dc.on("GET", path, members[:2])
    dc.on("GET", path, members[2:])
    result = await poll("new_member", {"guild_id": GUILD}, http, account)
    assert [s.query for s in dc.seen] == [
        {"limit": "2", "after": "0"},
        {"limit": "2", "after": "119884937112961024"},
    ]
    assert_bot(dc.seen[1])
    assert [item.key for item in result.items] == [
        "119884937112961024",
        "1311570000000000001",
        "80351110224678912",
    ]
    assert result.items[0].data == {
        "user_id": "119884937112961024",
        "username": "jonas_b",
        "display_name": "Jonas (balcony)",
        "is_bot": False,
        "joined_at": "2026-11-22T03:01:44.020000+00:00",
        "guild_id": GUILD,
    }


def member(number: int, joined: datetime) -> dict[str, Any]:
    """A guild member of the fixture's shape; a higher number is a newer account."""
    [template] = fixture("members.json")[:1]
    user = template["user"] | {
        "id": str(1311600000000000000 + number),
        "username": f"gardener{number}",
        "global_name": f"Gardener {number}",
    }
    found: dict[str, Any] = template | {"user": user, "joined_at": joined.isoformat()}
    return found


async def test_new_member_reaches_the_newest_accounts_past_the_page_cap(
    dc: FakeDiscord,
    http: HttpClient,
    account: AccountSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server larger than one check's pages (here 2 pages of 2; Discord: 10 of 1000):
    the checks page on from the highest id read, so a new account joining at the end
    of the list is found, and none of the members already there fires."""
    monkeypatch.setattr(discord, "MEMBER_LIMIT", 2)
    monkeypatch.setattr(discord, "MEMBER_PAGES", 2)
    monkeypatch.setattr(discord, "MEMBER_REST_INTERVAL", 0.0)  # each check reads
    old = datetime(2025, 3, 1, tzinfo=UTC)
    server = [member(n, old) for n in range(1, 7)]  # 6 members: 3 pages, over the cap
    path = f"/api/v10/guilds/{GUILD}/members"
    state: dict[str, Any] = {}

    def pages(*after: int) -> None:
        dc.replies[("GET", path)] = []
        for n in after:  # the page after member n, as Discord lists them (by id)
            dc.on("GET", path, server[n:n + 2])

    pages(0, 2)
    assert (await poll("new_member", {"guild_id": GUILD}, http, account, state=state,
                       dry_run=False)).items == []
    newcomer = member(7, datetime.now(UTC))
    server.append(newcomer)
    pages(4, 6)
    result = await poll("new_member", {"guild_id": GUILD}, http, account, state=state,
                        dry_run=False)
    assert [item.data["username"] for item in result.items] == ["gardener7"]
    members = [s.query["after"] for s in dc.seen if s.path == path]
    assert members == ["0", server[1]["user"]["id"], server[3]["user"]["id"],
                       server[5]["user"]["id"]]
    # Caught up: the next check reads only what comes after the newest.
    pages(7)
    await poll("new_member", {"guild_id": GUILD}, http, account, state=state, dry_run=False)
    assert [s.query["after"] for s in dc.seen if s.path == path][-1] == newcomer["user"]["id"]


async def test_no_account_says_how_to_add_one(dc: FakeDiscord, http: HttpClient) -> None:
    with pytest.raises(AuthError, match="hookline accounts token discord"):
        await poll("new_message", {"channel_id": CHANNEL}, http, None)


@pytest.mark.parametrize(
    ("name", "status", "error", "text"),
    [
        ("error_unauthorized.json", 401, AuthError, "needs reconnecting.*accounts token discord"),
        ("error_missing_access.json", 403, PermanentError, "Missing Access: invite it"),
        ("error_unknown_channel.json", 404, PermanentError, "Unknown Channel: check the id"),
    ],
)
async def test_errors_name_discords_reason(
    dc: FakeDiscord,
    http: HttpClient,
    account: AccountSession,
    name: str,
    status: int,
    error: type[Exception],
    text: str,
) -> None:
    dc.on("GET", f"/api/v10/channels/{CHANNEL}/messages", fixture(name), status=status)
    with pytest.raises(error, match=text) as caught:
        await poll("new_message", {"channel_id": CHANNEL}, http, account)
    assert TOKEN not in str(caught.value)


async def test_a_refused_bot_token_marks_the_account_for_reconnecting(
    dc: FakeDiscord, http: HttpClient, account: AccountSession
) -> None:
    dc.on("GET", f"/api/v10/channels/{CHANNEL}/messages", fixture("error_unauthorized.json"), 401)
    with pytest.raises(AuthError, match=r"needs reconnecting.*reconnect the account in Hookline"):
        await poll("new_message", {"channel_id": CHANNEL}, http, account)
    assert account.account.status == NEEDS_RECONNECT
    assert [s.headers["Authorization"] for s in dc.seen] == [f"Bot {TOKEN}"]  # sent once
    with pytest.raises(AuthError, match="needs reconnecting"):  # no more calls until then
        await poll("new_message", {"channel_id": CHANNEL}, http, account)
    assert len(dc.seen) == 1


async def test_rate_limit_uses_retry_after_from_the_json(
    dc: FakeDiscord, http: HttpClient, account: AccountSession
) -> None:
    dc.on(
        "GET",
        f"/api/v10/channels/{CHANNEL}/messages",
        fixture("error_rate_limited.json"),
        status=429,
        **{"Retry-After": "2", "X-RateLimit-Scope": "user"},
    )
    with pytest.raises(RateLimited) as caught:
        await poll("new_message", {"channel_id": CHANNEL}, http, account)
    assert caught.value.retry_after == 1.5


async def test_server_error_is_transient(
    dc: FakeDiscord, http: HttpClient, account: AccountSession
) -> None:
    dc.on("GET", f"/api/v10/guilds/{GUILD}/members", {"message": "oops"}, status=502)
    with pytest.raises(TransientError, match="HTTP 502"):
        await poll("new_member", {"guild_id": GUILD}, http, account)


# ---------------------------------------------------------------------- reactions


async def test_send_message_as_the_bot(
    dc: FakeDiscord, http: HttpClient, account: AccountSession
) -> None:
    dc.on("POST", f"/api/v10/channels/{CHANNEL}/messages", fixture("message_created.json"))
    out = await react(
        "send_message", {"channel_id": CHANNEL, "content": "Frost tonight"}, http, account
    )
    [seen] = dc.seen
    assert_bot(seen)
    assert seen.body == {
        "content": "Frost tonight",
        "allowed_mentions": {"parse": ["users", "roles"]},
    }
    assert out == {
        "message_id": "1311580000000000000",
        "channel_id": CHANNEL,
        "timestamp": "2026-11-22T03:20:00.000000+00:00",
    }


async def test_send_embed_through_a_webhook_needs_no_bot(dc: FakeDiscord, http: HttpClient) -> None:
    dc.on("POST", HOOK_PATH, fixture("webhook_message.json"))
    out = await react(
        "send_embed",
        {
            "webhook_url": dc.base + HOOK_PATH,
            "title": "Frost warning",
            "description": "Cover the seedlings",
            "url": "https://example.org/frost",
            "color": "#5865F2",
        },
        http,
        None,
    )
    [seen] = dc.seen
    assert seen.method == "POST"
    assert seen.query == {"wait": "true"}
    assert "Authorization" not in seen.headers
    assert seen.body == {
        "embeds": [
            {
                "title": "Frost warning",
                "description": "Cover the seedlings",
                "url": "https://example.org/frost",
                "color": 0x5865F2,
            }
        ],
        "allowed_mentions": {"parse": ["users", "roles"]},
    }
    assert out["message_id"] == "1311580100000000000"


async def test_webhook_errors_never_show_the_webhook_token(
    dc: FakeDiscord, http: HttpClient
) -> None:
    dc.on("POST", HOOK_PATH, fixture("error_invalid_form_body.json"), status=400)
    with pytest.raises(PermanentError, match="Invalid Form Body") as caught:
        await react(
            "send_message", {"webhook_url": dc.base + HOOK_PATH, "content": "Hi"}, http, None
        )
    assert "tOkEn" not in str(caught.value)
    dead = "http://127.0.0.1:9" + HOOK_PATH
    with pytest.raises(ServiceError) as unreachable:
        await react("send_message", {"webhook_url": dead, "content": "Hi"}, http, None)
    assert "tOkEn" not in str(unreachable.value)


@pytest.mark.parametrize(
    ("reaction", "params", "text"),
    [
        ("send_message", {"content": "Hi"}, "give a channel id"),
        ("send_message", {"channel_id": CHANNEL, "content": "x" * 2001}, "at most 2000"),
        (
            "send_message",
            {"webhook_url": "https://example.org/api/webhooks/1/x", "content": "Hi"},
            "not a Discord webhook",
        ),
        ("send_embed", {"channel_id": CHANNEL, "title": "T", "color": "blue"}, "#RRGGBB"),
        ("send_embed", {"channel_id": CHANNEL, "title": "T", "url": "ftp://x"}, "not a link"),
        ("send_embed", {"channel_id": CHANNEL, "title": "T" * 257}, "at most 256"),
    ],
)
async def test_reaction_bad_input(
    dc: FakeDiscord,
    http: HttpClient,
    account: AccountSession,
    reaction: str,
    params: dict[str, Any],
    text: str,
) -> None:
    with pytest.raises(PermanentError, match=text):
        await react(reaction, params, http, account)
    assert dc.seen == []


def test_reactions_may_name_no_account_but_triggers_must() -> None:
    service = discord.service
    for reaction in service.reactions.values():
        assert reaction.account_optional
        step = Step("discord", reaction.id, {}, uid="r1")
        assert link_account(step, service, "reactions[0]", [], optional=True) is None
    with pytest.raises(ValidationError, match="choose one with account"):
        link_account(Step("discord", "new_message"), service, "trigger", [])
