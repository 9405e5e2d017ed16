"""Discord's Gateway triggers against a local websocket server that speaks the documented
payloads (https://discord.com/developers/docs/events/gateway, .../events/gateway-events
and .../topics/opcodes-and-status-codes, read 2026-12-06), with the fake REST API beside it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine import AuthError, HttpClient, PollResult
from engine import bus as topics
from engine.app import Engine
from engine.areas import AreaSpec
from engine.auth import AccountSession
from engine.bus import Message
from engine.registry import Registry
from engine.settings import Settings
from engine.testing import poll_context
from integrations import discord, discord_gateway
from integrations.discord_gateway import Gateway, Listener
from tests.integrations.provider import Seen, load_fixture, serve

TOKEN = "MTMxMTU3MDAwMDAwMDAwMDAwMQ.GhT3xY.k2B8mN4pQ7rS1vW5yZ9aC3eF6hJ0lO2uX8iK4"
CHANNEL = "1103442133558341712"
GUILD = "1103442132836929548"


def fixture(name: str) -> Any:
    return load_fixture("discord", f"gateway/{name}")


# --- the fake Gateway ------------------------------------------------------------------------


@dataclass
class Connection:
    """One websocket the client opened: where, and what it sent."""

    path: str
    query: dict[str, str]
    request: web.Request
    ws: web.WebSocketResponse
    sent: list[dict[str, Any]] = field(default_factory=list)
    closed_with: int | None = None  # the close code the fake sent

    def ops(self) -> list[int]:
        return [p["op"] for p in self.sent if p["op"] != 1]  # heartbeats aside


class FakeGateway:
    """Discord's Gateway as documented: Hello, Identify → READY, Resume → replay →
    RESUMED, heartbeats answered with op 11, and the close codes for a bad token (4004)
    and disallowed intents (4014). Dispatches are numbered per session (READY is 1);
    a Resume replays those after the client's ``seq`` (and ``overlap`` before it, as a
    replay that repeats an event the client has)."""

    def __init__(self) -> None:
        self.base = ""
        self.connections: list[Connection] = []
        self.current: web.WebSocketResponse | None = None
        self.log: list[tuple[int, str, Mapping[str, Any]]] = []
        self.sessions = 0
        self.session_id = ""
        self.refuse = 0  # privileged intents not switched on in the Developer Portal
        self.overlap = 0
        self.heartbeat_interval = 45000
        self.ack = True  # answer heartbeats (False: a zombie connection)
        self.changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(request.path, dict(request.query), request, ws)
        self.connections.append(conn)
        self.changed.set()
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval},
                            "s": None, "t": None})
        async for message in ws:
            payload = json.loads(message.data)
            conn.sent.append(payload)
            self.changed.set()
            op, data = payload["op"], payload["d"]
            if op == 1 and self.ack:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif op == 2:
                if data["token"] != TOKEN:
                    conn.closed_with = 4004
                    await ws.close(code=4004, message=b"Authentication failed.")
                elif data["intents"] & self.refuse:
                    conn.closed_with = 4014
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                else:
                    self.sessions += 1
                    self.session_id = f"session-{self.sessions}"
                    self.log = []
                    self.current = ws
                    ready = fixture("ready.json") | {
                        "session_id": self.session_id,
                        "resume_gateway_url": self.base.replace("http", "ws") + "/resume",
                    }
                    await self.dispatch("READY", ready)
            elif op == 6:
                if data["session_id"] != self.session_id or data["token"] != TOKEN:
                    await ws.send_json({"op": 9, "d": False, "s": None, "t": None})
                    continue
                self.current = ws
                for seq, name, event in self.log:
                    if seq > data["seq"] - self.overlap:
                        await ws.send_json({"op": 0, "d": event, "s": seq, "t": name})
                await ws.send_json({"op": 0, "d": {}, "s": len(self.log) + 1, "t": "RESUMED"})
                self.log.append((len(self.log) + 1, "RESUMED", {}))
        if self.current is ws:
            self.current = None
        self.changed.set()
        return ws

    async def dispatch(self, name: str, event: Mapping[str, Any]) -> int:
        """Send a dispatch (kept for a replay when nobody is connected); its sequence."""
        seq = len(self.log) + 1
        self.log.append((seq, name, event))
        if self.current is not None:
            await self.current.send_json({"op": 0, "d": event, "s": seq, "t": name})
        return seq

    def drop(self) -> None:
        """The connection dies without a close frame (a network drop)."""
        assert self.current is not None
        transport = self.connections[-1].request.transport
        self.current = None
        assert transport is not None
        transport.close()

    async def invalidate(self) -> None:
        """Op 9 with d false: the session is gone; the client must identify afresh."""
        assert self.current is not None
        self.session_id = "gone"
        await self.current.send_json({"op": 9, "d": False, "s": None, "t": None})

    @property
    def ready(self) -> bool:
        return self.current is not None and bool(self.log) and self.log[0][1] == "READY"


@dataclass
class FakeRest:
    """Discord's REST API: set replies per (method, path); records every request."""

    replies: dict[tuple[str, str], Any] = field(default_factory=dict)
    status: dict[tuple[str, str], int] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path, dict(request.query),
                              dict(request.headers), None))
        key = (request.method, request.path)
        if key not in self.replies:
            return web.json_response({"message": "404: Not Found", "code": 0}, status=404)
        return web.json_response(self.replies[key], status=self.status.get(key, 200))

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


@dataclass
class Discord:
    gateway: FakeGateway
    rest: FakeRest
    base: str


@pytest.fixture
async def dc(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Discord]:
    monkeypatch.setattr(discord_gateway, "RECONNECT_MIN", 0.01)
    fake, rest = FakeGateway(), FakeRest()

    async def route(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            return await rest.handle(request)
        return await fake.handle(request)

    async with serve(route) as base:
        fake.base = base
        monkeypatch.setattr(discord.service, "api_base_url", base + "/api/v10")
        rest.replies[("GET", "/api/v10/gateway/bot")] = fixture("gateway_bot.json") | {
            "url": base.replace("http", "ws")
        }
        rest.replies[("GET", "/api/v10/users/@me")] = load_fixture("discord", "user_me.json")
        rest.replies[("GET", f"/api/v10/channels/{CHANNEL}/messages")] = []
        rest.replies[("GET", f"/api/v10/guilds/{GUILD}/members")] = []
        yield Discord(fake, rest, base)
        await discord_gateway.aclose_all()


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(discord.service, TOKEN, http, name="Garden helper")


#: Each area's poll state as the engine saved it.
saved: dict[str, dict[str, Any]] = {}


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    saved.clear()


async def check(
    trigger: str, params: dict[str, Any], http: HttpClient, account: AccountSession,
    area_id: str = "area-1",
) -> PollResult:
    """One check, its state kept as the engine keeps it (saved through JSON)."""
    spec = discord.service.triggers[trigger]
    assert spec.poll is not None
    state = json.loads(json.dumps(saved.get(area_id, {})))
    ctx = poll_context(spec, params, http, area_id=area_id, state=state)
    ctx.account = account
    result = await spec.poll(ctx)
    saved[area_id] = json.loads(json.dumps(state))
    return result


def current(area_id: str = "area-1") -> tuple[Gateway, Listener]:
    found = discord_gateway.listener_of(area_id)
    assert found is not None
    return found


async def settled(dc: Discord, area_id: str = "area-1", sessions: int = 1) -> Gateway:
    """Wait until the client has taken in the fake's ``sessions``-th READY."""
    await dc.gateway.until(lambda: dc.gateway.sessions == sessions and dc.gateway.ready)
    bot, _ = current(area_id)
    async with asyncio.timeout(10):
        while not (bot.connected and bot.session_id == dc.gateway.session_id):
            bot.changed.clear()
            await bot.changed.wait()
    return bot


async def arrived(area_id: str, count: int) -> None:
    """Wait (on the connection's own signal) until ``count`` items wait for a check."""
    bot, listener = current(area_id)
    async with asyncio.timeout(10):
        while listener.inbox.waiting < count:
            bot.changed.clear()
            await bot.changed.wait()


def message(number: int, text: str) -> dict[str, Any]:
    """A MESSAGE_CREATE of its own id and text, sent now."""
    event: dict[str, Any] = fixture("message_create.json") | {
        "id": str(1311583012345678901 + number),
        "content": text,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    return event


def texts(result: PollResult) -> list[str]:
    return [item.data["content"] for item in result.items]


# --- through a real engine: each trigger fires within 2 s --------------------------------------


@pytest.fixture
async def engine(data_dir: Path, dc: Discord) -> AsyncIterator[Engine]:
    """A whole engine, checking its areas on its own schedule (every second)."""
    engine = Engine(data_dir, settings=Settings.from_mapping({"retry_delay": 0.01}),
                    registry=Registry.load(plugins=False), listen=False)
    await engine.start()
    yield engine
    await engine.aclose()


def notifications(engine: Engine, area_id: str) -> asyncio.Queue[Message]:
    queue: asyncio.Queue[Message] = asyncio.Queue()

    def heard(message: Message) -> None:
        if message.data.get("area_id") == area_id:
            queue.put_nowait(message)

    engine.bus.subscribe(topics.NOTIFICATION, heard)
    return queue


@pytest.mark.parametrize(
    ("trigger", "params", "event", "fixture_name", "title", "shown"),
    [
        (
            "new_message",
            {"channel_id": CHANNEL},
            "MESSAGE_CREATE",
            "message_create.json",
            "{{ trigger.author_name }}: {{ trigger.content }}",
            "Marta: Greenhouse door is open, close it before dark",
        ),
        (
            "new_member",
            {"guild_id": GUILD},
            "GUILD_MEMBER_ADD",
            "guild_member_add.json",
            "Welcome {{ trigger.display_name }} ({{ trigger.username }})",
            "Welcome Ola (ola.seeds)",
        ),
        (
            "reaction_added",
            {"channel_id": CHANNEL, "emoji": "🔥"},
            "MESSAGE_REACTION_ADD",
            "message_reaction_add.json",
            "{{ trigger.user_name }} {{ trigger.emoji }} {{ trigger.message_link }}",
            "Jonas (balcony) 🔥 https://discord.com/channels/1103442132836929548/"
            "1103442133558341712/1311578390443421736",
        ),
    ],
)
async def test_each_trigger_fires_within_2_s_of_the_gateways_event(
    engine: Engine,
    dc: Discord,
    trigger: str,
    params: dict[str, Any],
    event: str,
    fixture_name: str,
    title: str,
    shown: str,
) -> None:
    await engine.accounts.add_token("discord", TOKEN)
    area = await engine.create_area(AreaSpec.from_dict({
        "name": f"Discord {trigger}",
        "trigger": {"service": "discord", "trigger": trigger, "account": "Garden helper",
                    "params": params},
        "reactions": [{"service": "notify", "reaction": "notify", "params": {"title": title}}],
    }))
    heard = notifications(engine, area.id)
    # The engine's own checks: connected, and the first check (which only notes what
    # is there already) saved; the next comes when an event asks for it.
    await dc.gateway.until(lambda: dc.gateway.ready)
    await dc.gateway.until(lambda: discord_gateway.listener_of(area.id) is not None)
    bot, listener = current(area.id)
    async with asyncio.timeout(10):
        while listener.inbox.checks < 1:
            bot.changed.clear()
            await bot.changed.wait()
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await dc.gateway.dispatch(event, fixture(fixture_name))
    notified = await asyncio.wait_for(heard.get(), 5)
    assert loop.time() - sent_at < 2.0
    assert notified.data["title"] == shown
    assert heard.empty()


async def test_intents_are_what_the_areas_need(
    dc: Discord, http: HttpClient, account: AccountSession
) -> None:
    await check("reaction_added", {"channel_id": CHANNEL}, http, account, "reactions")
    await dc.gateway.until(lambda: dc.gateway.ready)
    first = next(p for p in dc.gateway.connections[-1].sent if p["op"] == 2)
    assert first["d"]["intents"] == discord_gateway.GUILDS | discord_gateway.GUILD_MESSAGE_REACTIONS
    assert first["d"]["token"] == TOKEN
    assert dc.gateway.connections[-1].query == {"v": "10", "encoding": "json"}
    # A second area on the same bot shares the connection; needing more, it identifies
    # again with both areas' intents.
    await check("new_message", {"channel_id": CHANNEL}, http, account, "messages")
    await dc.gateway.until(lambda: dc.gateway.sessions == 2 and dc.gateway.ready)
    second = next(p for p in dc.gateway.connections[-1].sent if p["op"] == 2)
    assert second["d"]["intents"] == (
        discord_gateway.GUILDS
        | discord_gateway.GUILD_MESSAGE_REACTIONS
        | discord_gateway.GUILD_MESSAGES
        | discord_gateway.MESSAGE_CONTENT
    )
    assert len(discord_gateway.running()) == 1


# --- resuming ------------------------------------------------------------------------------


async def test_a_dropped_connection_resumes_and_replayed_events_fire_once(
    dc: Discord, http: HttpClient, account: AccountSession
) -> None:
    params = {"channel_id": CHANNEL}
    assert (await check("new_message", params, http, account)).items == []
    await dc.gateway.until(lambda: dc.gateway.ready)
    await dc.gateway.dispatch("MESSAGE_CREATE", message(1, "one"))
    await arrived("area-1", 1)
    assert texts(await check("new_message", params, http, account)) == ["one"]

    session = dc.gateway.session_id
    dc.gateway.overlap = 1  # the replay repeats "one", which the client had
    dc.gateway.drop()
    missed = await dc.gateway.dispatch("MESSAGE_CREATE", message(2, "sent while dropped"))
    await dc.gateway.until(lambda: any(p["op"] == 6 for p in dc.gateway.connections[-1].sent))
    resumed = dc.gateway.connections[-1]
    resume = next(p for p in resumed.sent if p["op"] == 6)
    assert resumed.path == "/resume"  # READY's resume_gateway_url
    assert resume["d"] == {"token": TOKEN, "session_id": session, "seq": missed - 1}
    assert 2 not in resumed.ops()  # no identify: the session goes on
    await arrived("area-1", 1)
    assert texts(await check("new_message", params, http, account)) == ["sent while dropped"]
    assert (await check("new_message", params, http, account)).items == []
    # Nothing was lost, so nothing had to be looked up by REST after the first check.
    assert dc.rest.paths().count(f"/api/v10/channels/{CHANNEL}/messages") == 1


async def test_heartbeats_carry_the_last_sequence_and_a_silent_gateway_is_left(
    dc: Discord, http: HttpClient, account: AccountSession
) -> None:
    dc.gateway.heartbeat_interval = 50  # ms
    await check("reaction_added", {"channel_id": CHANNEL}, http, account)
    await settled(dc)
    seq = await dc.gateway.dispatch("MESSAGE_REACTION_ADD", fixture("message_reaction_add.json"))
    first = dc.gateway.connections[0]
    await dc.gateway.until(lambda: any(p == {"op": 1, "d": seq} for p in first.sent))
    # No ACK between two heartbeats: a zombie connection, closed and resumed.
    dc.gateway.ack = False
    await dc.gateway.until(lambda: len(dc.gateway.connections) == 2
                           and bool(dc.gateway.connections[1].sent))
    assert dc.gateway.connections[1].sent[0]["op"] == 6


async def test_reconnect_op_7_resumes(
    dc: Discord, http: HttpClient, account: AccountSession
) -> None:
    await check("new_member", {"guild_id": GUILD}, http, account)
    await dc.gateway.until(lambda: dc.gateway.ready)
    assert dc.gateway.current is not None
    await dc.gateway.current.send_json({"op": 7, "d": None, "s": None, "t": None})
    await dc.gateway.until(lambda: len(dc.gateway.connections) == 2 and bool(
        dc.gateway.connections[1].sent))
    assert dc.gateway.connections[1].ops()[0] == 6
    await dc.gateway.dispatch("GUILD_MEMBER_ADD", fixture("guild_member_add.json"))
    await arrived("area-1", 1)
    result = await check("new_member", {"guild_id": GUILD}, http, account)
    assert [i.data["username"] for i in result.items] == ["ola.seeds"]


async def test_an_invalid_session_identifies_afresh_and_looks_back_by_rest(
    dc: Discord, http: HttpClient, account: AccountSession
) -> None:
    params = {"channel_id": CHANNEL}
    await check("new_message", params, http, account)
    await dc.gateway.until(lambda: dc.gateway.ready)
    await dc.gateway.invalidate()
    await settled(dc, sessions=2)
    fresh = dc.gateway.connections[-1]
    assert fresh.path == "/"  # the cached Gateway URL, not the resume URL
    assert fresh.ops() == [2]  # identify, no resume
    # What was sent between the two sessions is not replayed: the next check looks it up.
    dc.rest.replies[("GET", f"/api/v10/channels/{CHANNEL}/messages")] = [
        message(3, "sent between sessions")
    ]
    assert texts(await check("new_message", params, http, account)) == ["sent between sessions"]


# --- refusals and the REST fallback -----------------------------------------------------------


async def test_disallowed_intents_say_which_switch_to_turn_on(
    dc: Discord, http: HttpClient, account: AccountSession, caplog: pytest.LogCaptureFixture
) -> None:
    dc.gateway.refuse = discord_gateway.GUILD_MEMBERS
    caplog.set_level(logging.INFO)
    newest = fixture("guild_member_add.json") | {"joined_at": datetime.now(UTC).isoformat()}
    await check("reaction_added", {"channel_id": CHANNEL}, http, account, "reactions")
    await check("new_member", {"guild_id": GUILD}, http, account, "members")
    # Closed with 4014: the reactions area goes on without the privileged intent...
    await dc.gateway.until(lambda: dc.gateway.sessions == 2 and dc.gateway.ready)
    assert [c.closed_with for c in dc.gateway.connections].count(4014) == 1
    await dc.gateway.dispatch("MESSAGE_REACTION_ADD", fixture("message_reaction_add.json"))
    await arrived("reactions", 1)
    assert len((await check("reaction_added", {"channel_id": CHANNEL}, http, account,
                            "reactions")).items) == 1
    # ...and the members area says once which switch to turn on, and checks by REST.
    dc.rest.replies[("GET", f"/api/v10/guilds/{GUILD}/members")] = [newest]
    saved["members"]["rest_at"] = 0
    result = await check("new_member", {"guild_id": GUILD}, http, account, "members")
    assert [i.data["username"] for i in result.items] == ["ola.seeds"]
    await check("new_member", {"guild_id": GUILD}, http, account, "members")
    said = [r.getMessage() for r in caplog.records if "Server Members Intent" in r.getMessage()]
    assert any("Developer Portal" in line for line in said)
    fallback = [r for r in caplog.records if "checking by REST" in r.getMessage()]
    assert len(fallback) == 1
    assert "turn on “Server Members Intent”" in fallback[0].getMessage()
    assert TOKEN not in caplog.text


async def test_after_a_refusal_an_area_that_needs_no_privileged_intent_connects_at_once(
    dc: Discord, http: HttpClient, account: AccountSession
) -> None:
    dc.gateway.refuse = discord_gateway.GUILD_MEMBERS
    await check("new_member", {"guild_id": GUILD}, http, account, "members")
    assert dc.gateway.sessions == 0  # refused; Discord says not to try again soon
    await check("reaction_added", {"channel_id": CHANNEL}, http, account, "reactions")
    await settled(dc, "reactions")
    identify = next(p for p in dc.gateway.connections[-1].sent if p["op"] == 2)
    assert identify["d"]["intents"] == (
        discord_gateway.GUILDS | discord_gateway.GUILD_MESSAGE_REACTIONS
    )


async def test_a_bad_token_says_to_reconnect_the_account(
    dc: Discord, http: HttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = AccountSession.for_token(discord.service, "not-the-token", http, name="old")
    dc.rest.replies[("GET", "/api/v10/users/@me")] = load_fixture(
        "discord", "error_unauthorized.json")
    dc.rest.status[("GET", "/api/v10/users/@me")] = 401
    with pytest.raises(AuthError, match="reconnect"):
        await check("reaction_added", {"channel_id": CHANNEL}, http, wrong)
    assert dc.gateway.connections[-1].closed_with == 4004
    assert "not-the-token" not in caplog.text


async def test_an_unreachable_gateway_falls_back_to_rest(
    dc: Discord,
    http: HttpClient,
    account: AccountSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    # A firewall lets REST through but not the websocket.
    dc.rest.replies[("GET", "/api/v10/gateway/bot")] = {"url": "ws://127.0.0.1:9"}
    params = {"channel_id": CHANNEL}
    assert (await check("new_message", params, http, account)).items == []
    path = ("GET", f"/api/v10/channels/{CHANNEL}/messages")
    dc.rest.replies[path] = [message(4, "sent while the Gateway is blocked")]
    assert (await check("new_message", params, http, account)).items == []  # not due yet
    monkeypatch.setattr(discord, "MESSAGE_REST_INTERVAL", 0.0)
    assert texts(await check("new_message", params, http, account)) == [
        "sent while the Gateway is blocked"
    ]
    said = [r.getMessage() for r in caplog.records if "checking by REST" in r.getMessage()]
    assert len(said) == 1 and "every 60 s" in said[0]
    assert dc.gateway.connections == []


async def test_keyword_and_emoji_filters_pick_their_events(
    dc: Discord, http: HttpClient, account: AccountSession
) -> None:
    keyword = {"channel_id": CHANNEL, "keyword": "frost, storm"}
    custom = {"channel_id": CHANNEL, "emoji": ":tomato_happy:"}
    await check("message_with_keyword", keyword, http, account, "keyword")
    await check("reaction_added", custom, http, account, "custom")
    await settled(dc, "keyword", sessions=2)  # identified again with both areas' intents
    await dc.gateway.dispatch("MESSAGE_CREATE", message(5, "Lovely sunny day"))
    await dc.gateway.dispatch("MESSAGE_CREATE", message(6, "STORM warning for tonight"))
    await dc.gateway.dispatch("MESSAGE_REACTION_ADD", fixture("message_reaction_add.json"))
    await dc.gateway.dispatch("MESSAGE_REACTION_ADD",
                              fixture("message_reaction_add_custom.json"))
    await arrived("keyword", 1)
    await arrived("custom", 1)
    [found] = (await check("message_with_keyword", keyword, http, account, "keyword")).items
    assert (found.data["content"], found.data["keyword"]) == ("STORM warning for tonight",
                                                              "storm")
    [reaction] = (await check("reaction_added", custom, http, account, "custom")).items
    assert reaction.data["emoji"] == "<:tomato_happy:1311000000000000042>"
    assert reaction.data["user_name"] == "Marta"


def test_declarations() -> None:
    for name in ("new_message", "message_with_keyword", "new_member", "reaction_added"):
        spec = discord.service.triggers[name]
        # Idle checks are seldom; events ask for one at once (the test above: within 2 s).
        assert spec.default_interval >= 10, name
    reaction = discord.service.triggers["reaction_added"]
    assert {"emoji", "user_name", "message_link"} <= {f.name for f in reaction.fields}
