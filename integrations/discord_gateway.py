"""Discord's Gateway: one websocket per bot token that hands each area the events it wants.

Follows https://discord.com/developers/docs/events/gateway and .../events/gateway-events
and .../topics/opcodes-and-status-codes (read 2026-12-06): GET /gateway/bot for the URL,
Hello (op 10) → heartbeats (op 1, the first after ``interval * random()``) answered by
op 11, Identify (op 2) with the intents the areas need, READY's ``session_id`` and
``resume_gateway_url`` kept for a Resume (op 6) with the last sequence after a drop;
Reconnect (op 7) resumes, Invalid Session (op 9) resumes when ``d`` is true and else
identifies afresh; close codes decide whether to resume, identify again or stop.

Each area's trigger is a poll trigger that picks up what its :class:`Listener` received,
as MQTT's subscriptions do: an :class:`Inbox` holds the items until the engine has saved
the check that handed them out (its token comes back in the area's poll state).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import random
import secrets
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine import (
    AuthError,
    Item,
    PermanentError,
    PollContext,
    PollResult,
    RateLimited,
    ServiceError,
    TransientError,
)

if TYPE_CHECKING:  # aiohttp is imported when a bot connects: `hookline services` stays quick
    import aiohttp

    from engine import HttpClient

# Intents (https://discord.com/developers/docs/events/gateway#list-of-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1  # privileged
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
MESSAGE_CONTENT = 1 << 15  # privileged
#: The Developer Portal's name for each privileged intent (Bot → Privileged Gateway Intents).
PRIVILEGED = {
    MESSAGE_CONTENT: "Message Content Intent",
    GUILD_MEMBERS: "Server Members Intent",
}

API_VERSION = 10
#: Items held per area between two checks; past it the oldest are handed out first and
#: the newest wait (nothing is dropped: Discord's own buffer is the far side).
BUFFER_LIMIT = 1000
#: Event identities each area remembers, so a replayed event is not taken twice.
MEMORY = 2000
#: Seconds between reconnection attempts: the first, doubling up to the last.
RECONNECT_MIN = 1.0
RECONNECT_MAX = 60.0
#: Seconds before trying again after Discord refused the intents or the token (it says
#: not to reconnect; the user may fix it in the Developer Portal meanwhile).
REFUSED_RETRY = 900.0
#: Failed attempts to reach the resume URL before identifying afresh at the cached URL.
RESUME_ATTEMPTS = 3
#: Seconds to wait for Hello, and for a first connection before a check goes on without.
CONNECT_TIMEOUT = 10.0
#: Close codes after which Discord says not to reconnect (opcodes-and-status-codes).
_NO_RECONNECT = frozenset({4004, 4010, 4011, 4012, 4013, 4014})
#: Close codes after which the session cannot be resumed: identify afresh.
_NO_RESUME = frozenset({4001, 4003, 4005, 4007, 4009})

Match = Callable[[str, Mapping[str, Any]], Item | None]


class _Refused(Exception):
    """Discord closed with a code after which reconnecting will not help."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class _Reconnect(Exception):
    """End this connection and open another (resuming when ``resume``)."""

    def __init__(self, resume: bool, why: str) -> None:
        super().__init__(why)
        self.resume = resume
        self.why = why


def intent_names(bits: int) -> list[str]:
    """The Developer Portal switches for the privileged intents in ``bits``."""
    return [name for bit, name in PRIVILEGED.items() if bits & bit]


# --- the inbox -----------------------------------------------------------------------------


class Inbox:
    """What one area received and the engine has not saved yet.

    An item is held from its arrival until a check handed it out and the engine saved
    that check: the state a check writes (:meth:`take`) comes back to the next check
    (:meth:`confirm`) only if the engine saved it with the check's events; a check the
    engine did not save is handed out again, under the same keys. An event seen again
    (Discord replaying after a resume, or sending it twice) is let go by its key.

    Attributes:
        received: items taken in (repeats not counted).
        checks: how many checks have taken from it.
    """

    def __init__(self, limit: int = BUFFER_LIMIT, memory: int = MEMORY) -> None:
        self.limit = limit
        self.memory = memory
        self.received = 0
        self.checks = 0
        self._held: deque[Item] = deque()
        self._handed = 0
        self._token: str | None = None
        self._tokens = (f"{secrets.token_hex(4)}.{n}" for n in itertools.count())
        self._known: OrderedDict[str, None] = OrderedDict()

    @property
    def waiting(self) -> int:
        """Items held that no check has handed out yet."""
        return len(self._held) - self._handed

    def receive(self, item: Item) -> bool:
        """Take in ``item``; False when its key was seen already."""
        if item.key is not None:
            if item.key in self._known:
                self._known.move_to_end(item.key)
                return False
            self._known[item.key] = None
            if len(self._known) > self.memory:
                self._known.popitem(last=False)
        self._held.append(item)
        self.received += 1
        return True

    def confirm(self, state: Mapping[str, Any]) -> None:
        """Let go of the last check's items if the engine saved that check."""
        if self._token is None or state.get("batch") != self._token:
            return
        for _ in range(self._handed):
            self._held.popleft()
        self._token = None
        self._handed = 0

    def take(self, state: dict[str, Any]) -> list[Item]:
        """The next check's items, oldest first; writes the check's token into ``state``."""
        batch = list(itertools.islice(self._held, self.limit))
        self._token = next(self._tokens)
        self._handed = len(batch)
        self.checks += 1
        state["batch"] = self._token
        return batch


# --- listeners and the connection -----------------------------------------------------------


@dataclass(eq=False)
class Listener:
    """One area's interest in a bot's events.

    Attributes:
        area_id: the area.
        intents: what its trigger needs Discord to send.
        match: turns an event (name, data) into the area's item, or None.
        inbox: what it received and the engine has not saved yet.
        catch_up: its next check should also look by REST (it just started, or the
            connection lost events it cannot replay).
        wake: asks the engine to check the area now (``PollContext.check_soon``).
    """

    area_id: str
    intents: int
    match: Match
    inbox: Inbox
    catch_up: bool = True
    falling_back: bool = False
    wake: Callable[[], None] | None = None


class Gateway:
    """One bot's Gateway connection, shared by every area that uses the bot.

    Args:
        token: the bot token (kept in memory only; never logged).
        locate: GET /gateway/bot: the URL to connect to.
        check_token: a REST call that raises the engine's AuthError (and marks the
            account for reconnecting) when Discord refuses the token.
        http: the engine's client (its guard decides which addresses may be reached).
        log: where the connection says what happened.

    Attributes:
        connected: READY (or RESUMED) arrived and no drop since.
        error: why the last attempt failed (None while connected).
        refused: privileged intents Discord refused (4014); areas needing them fall back.
        changed: set whenever an event arrives, a check takes what arrived, or the
            connection comes or goes.
        settled: set once the first attempt succeeded or failed.
    """

    def __init__(
        self,
        token: str,
        locate: Callable[[], Awaitable[str]],
        check_token: Callable[[], Awaitable[None]],
        http: HttpClient,
        log: logging.LoggerAdapter[logging.Logger] | logging.Logger,
    ) -> None:
        self._token = token
        self._locate = locate
        self._check_token = check_token
        self.http = http
        self.log = log
        self.loop = asyncio.get_running_loop()
        self.listeners: dict[str, Listener] = {}
        self.connected = False
        self.error: ServiceError | None = None
        self.refused = 0
        self.changed = asyncio.Event()
        self.settled = asyncio.Event()
        self.session_id: str | None = None
        self.resume_url: str | None = None
        self.seq: int | None = None
        self.identified_with = 0
        self._url: str | None = None
        self._client: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._retry_in = RECONNECT_MIN
        self._acked = True
        self._refused_at = 0.0
        self._resuming = False
        self._resume_failures = 0
        self._wake = asyncio.Event()
        self._intents_error: ServiceError | None = None  # Discord's last 4014
        self.task = self.loop.create_task(self._run(), name="discord gateway")

    @property
    def intents(self) -> int:
        """What the areas need, less what Discord refused."""
        wanted = GUILDS
        for listener in self.listeners.values():
            wanted |= listener.intents
        return wanted & ~self.refused

    @property
    def retry_in(self) -> float:
        return self._retry_in

    def working_for(self, listener: Listener) -> bool:
        """Whether events for ``listener`` arrive now."""
        return (
            self.connected
            and not listener.intents & self.refused
            and listener.intents & self.identified_with == listener.intents
        )

    def problem_for(self, listener: Listener) -> ServiceError | None:
        """Why events for ``listener`` do not arrive (None when they do, or may soon)."""
        missing = listener.intents & self.refused
        if missing:
            return PermanentError(
                "Discord refused the bot's privileged intents (close code 4014): in the "
                "Developer Portal (https://discord.com/developers/applications → your app → "
                "Bot → Privileged Gateway Intents) turn on "
                + " and ".join(f"“{n}”" for n in intent_names(missing))
                + ", then save"
            )
        if self.connected or (self.error is not None and self.error is self._intents_error):
            return None  # (Discord refused what other areas need; this one connects)
        return self.error

    def listen(self, listener: Listener) -> None:
        """Add or update an area's listener; reconnects when it needs more intents."""
        old = self.listeners.get(listener.area_id)
        if old is not None:  # what it holds and knows stays; what it wants may change
            old.intents, old.match = listener.intents, listener.match
        else:
            self.listeners[listener.area_id] = listener
            if not listener.intents & self.refused and self._retry_in >= REFUSED_RETRY:
                self._wake.set()
        if self.refused and self.loop.time() - self._refused_at > REFUSED_RETRY:
            self.refused = 0  # the user may have turned the switch on meanwhile
            self._restart(fresh=True)
        elif self.connected and self.intents & ~self.identified_with:
            # Resuming keeps the old intents: a fresh session is needed for the new ones.
            self._restart(fresh=True)

    def forget(self, area_id: str) -> Listener | None:
        return self.listeners.pop(area_id, None)

    def _restart(self, *, fresh: bool) -> None:
        if fresh:
            self.session_id = None
            self.seq = None
        ws = self._ws
        if ws is not None and not ws.closed:
            # Not 1000/1001: those end the session on Discord's side.
            _background(self.loop.create_task(ws.close(code=4000)))

    async def aclose(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        if self._client is not None:
            await self._client.close()

    # --- the connection's life ---------------------------------------------------------

    async def _run(self) -> None:
        import aiohttp

        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        delay = RECONNECT_MIN
        try:
            while True:
                try:
                    await self._connection()
                    raise _Reconnect(True, "the connection ended")
                except _Reconnect as again:
                    was_up = self.connected
                    if not again.resume:
                        self.session_id = None
                        self.seq = None
                    self._lost()
                    self.log.debug("Discord Gateway: reconnecting (%s)", again.why)
                    if was_up:
                        delay = RECONNECT_MIN
                    if not again.resume and again.why == "invalid session":
                        # Identify again after a moment, not at once (a burst of
                        # identifies is what Discord answers with op 9).
                        await asyncio.sleep(random.uniform(1.0, 5.0) * RECONNECT_MIN)  # noqa: S311
                    elif not was_up:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, RECONNECT_MAX)
                    continue
                except _Refused as exc:
                    error = await self._refusal(exc)
                    wait = REFUSED_RETRY
                    if exc.code == 4014 and self._still_useful():
                        # Carry on without the privileged intents: the areas that need
                        # them fall back to REST and say why; the others keep going.
                        self._down(error)
                        continue
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    error, wait = _unreachable(exc), delay
                    self._failed_to_connect()
                except ServiceError as exc:
                    error, wait = exc, delay
                self._down(error)
                self._retry_in = wait
                if not await self._pause(wait) and wait >= REFUSED_RETRY:
                    self.refused = 0  # the user may have turned the switch on meanwhile
                delay = min(delay * 2, RECONNECT_MAX)
        except Exception:
            self.log.exception("Discord Gateway connection crashed")
        finally:
            self.connected = False
            self.settled.set()
            self.changed.set()

    async def _pause(self, seconds: float) -> bool:
        """Wait before the next attempt; an area added meanwhile that Discord's refusal
        does not concern cuts a long wait short (then True)."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _failed_to_connect(self) -> None:
        """After failed attempts, the URL to try next (gateway#disconnecting): the
        resume URL a few times, then the cached URL with a new Identify; a cached URL
        that fails is asked for again."""
        if self._resuming:
            self._resume_failures += 1
            if self._resume_failures >= RESUME_ATTEMPTS:
                self.resume_url = None
                self._resume_failures = 0
        else:
            self._url = None

    def _still_useful(self) -> bool:
        """Whether some area can be served without the refused intents."""
        return any(not ls.intents & self.refused for ls in self.listeners.values())

    async def _refusal(self, exc: _Refused) -> ServiceError:
        if exc.code == 4014:
            self.refused |= self.identified_with & sum(PRIVILEGED)
            self._refused_at = self.loop.time()
            names = intent_names(self.refused) or list(PRIVILEGED.values())
            self.log.warning(
                "Discord refused the bot's privileged intents (4014): turn on %s in the "
                "Developer Portal (your app → Bot → Privileged Gateway Intents)",
                " and ".join(names),
            )
            self._intents_error = PermanentError(
                f"Discord refused the privileged intents {', '.join(names)}"
            )
            return self._intents_error
        if exc.code == 4004:
            try:
                await self._check_token()  # marks the account as needing a reconnect
            except AuthError as refused:
                return refused
            except ServiceError:
                pass
            return AuthError(
                "Discord refused the bot token on its Gateway (close code 4004): reset the "
                "token in the Developer Portal (your app → Bot → Reset Token) and reconnect "
                "the Discord account in Hookline"
            )
        return PermanentError(
            f"Discord's Gateway refused the connection (close code {exc.code}"
            + (f": {exc.reason}" if exc.reason else "")
            + "); Hookline tries again later"
        )

    async def _connection(self) -> None:
        """One websocket connection, until it ends (by a _Reconnect, a _Refused or a drop)."""
        import aiohttp

        assert self._client is not None
        resume = self.session_id is not None and self.resume_url is not None
        self._resuming = resume
        url = self.resume_url if resume and self.resume_url else await self._gateway_url()
        await self._check_address(url)
        target = _with_query(url)
        async with self._client.ws_connect(
            target, timeout=aiohttp.ClientWSTimeout(ws_close=5.0), autoping=True,
            max_msg_size=0,
        ) as ws:
            self._ws = ws
            try:
                await self._speak(ws, resume)
            finally:
                self._ws = None
        self._closed(ws.close_code)

    def _closed(self, code: int | None) -> None:
        if code in _NO_RECONNECT:
            raise _Refused(int(code or 0), "")
        if code in _NO_RESUME:
            raise _Reconnect(False, f"closed with {code}")
        raise _Reconnect(True, f"closed with {code}")

    async def _gateway_url(self) -> str:
        if self._url is None:
            self._url = await self._locate()
        return self._url

    async def _check_address(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise TransientError(f"Discord gave a Gateway address that is not a websocket: {url}")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        try:
            infos = await self.loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise TransientError(
                f"Discord's Gateway unreachable: cannot find {parts.hostname!r} ({exc.strerror})"
            ) from None
        try:
            for *_, address in infos:
                self.http.guard.check(str(address[0]), port)
        except OSError as exc:
            raise PermanentError(f"Discord's Gateway: {exc}") from None

    async def _speak(self, ws: aiohttp.ClientWebSocketResponse, resume: bool) -> None:
        hello = await _receive(ws, CONNECT_TIMEOUT)
        if hello is None:
            return
        if hello.get("op") == 7:
            raise _Reconnect(True, "reconnect asked before hello")
        if hello.get("op") != 10:
            raise TransientError("Discord's Gateway did not say hello")
        interval = float((hello.get("d") or {}).get("heartbeat_interval") or 41250) / 1000
        beat = self.loop.create_task(self._heartbeat(ws, interval), name="discord heartbeat")
        try:
            if resume:
                await ws.send_json(
                    {"op": 6, "d": {"token": self._token, "session_id": self.session_id,
                                    "seq": self.seq}}
                )
            else:
                self.identified_with = self.intents
                await ws.send_json({"op": 2, "d": self._identify()})
            while True:
                payload = await _receive(ws, None)
                if payload is None:
                    return
                await self._handle(ws, payload)
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)

    def _identify(self) -> dict[str, Any]:
        return {
            "token": self._token,
            "intents": self.identified_with,
            "properties": {"os": "hookline", "browser": "hookline", "device": "hookline"},
        }

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse, interval: float) -> None:
        self._acked = True
        await asyncio.sleep(interval * random.random())  # noqa: S311 - jitter, as documented
        while not ws.closed:
            if not self._acked:
                # A zombie connection: close (not 1000/1001, which end the session), resume.
                self.log.debug("Discord Gateway: no heartbeat ACK; reconnecting")
                await ws.close(code=4000)
                return
            self._acked = False
            await ws.send_json({"op": 1, "d": self.seq})
            await asyncio.sleep(interval)

    async def _handle(
        self, ws: aiohttp.ClientWebSocketResponse, payload: Mapping[str, Any]
    ) -> None:
        op = payload.get("op")
        if op == 0:
            name = str(payload.get("t") or "")
            data = payload.get("d")
            if isinstance(data, Mapping):
                self._dispatch(name, data)
            # The sequence moves on only once the event is held, so a resume replays
            # anything not yet taken in.
            if isinstance(payload.get("s"), int):
                self.seq = payload["s"]
        elif op == 1:
            await ws.send_json({"op": 1, "d": self.seq})
        elif op == 11:
            self._acked = True
        elif op == 7:
            await ws.close(code=4000)
            raise _Reconnect(True, "reconnect asked")
        elif op == 9:
            await ws.close(code=4000)
            raise _Reconnect(bool(payload.get("d")), "invalid session")

    def _dispatch(self, name: str, data: Mapping[str, Any]) -> None:
        if name == "READY":
            self.session_id = str(data.get("session_id") or "") or None
            self.resume_url = str(data.get("resume_gateway_url") or "") or None
            if self.error is not None or self.settled.is_set():
                # A new session: what happened since the last one is not replayed.
                for listener in self.listeners.values():
                    listener.catch_up = True
            self._up()
            if self.intents & ~self.identified_with:
                self._restart(fresh=True)  # an area came with more intents meanwhile
            return
        if name == "RESUMED":
            self._up()
            return
        received = False
        for listener in list(self.listeners.values()):
            if listener.intents & self.refused:
                continue
            try:
                item = listener.match(name, data)
            except Exception:  # one area's odd event must not end everyone's connection
                self.log.exception("Discord: could not read a %s event", name)
                continue
            if item is not None and listener.inbox.receive(item):
                received = True
                if listener.wake is not None:
                    listener.wake()  # fire it now, not at the area's next check
        if received:
            self.changed.set()

    def _up(self) -> None:
        self._resume_failures = 0
        if self.error is not None:
            self.log.info("Discord Gateway: connected again")
        self.connected = True
        self.error = None
        self._retry_in = RECONNECT_MIN
        self.settled.set()
        self.changed.set()

    def _lost(self) -> None:
        self.connected = False
        self.changed.set()

    def _down(self, error: ServiceError) -> None:
        if self.error is None:
            self.log.warning("Discord Gateway: %s", error)
        else:
            self.log.debug("Discord Gateway: still failing: %s", error)
        self.connected = False
        self.error = error
        self.settled.set()
        self.changed.set()


async def _receive(
    ws: aiohttp.ClientWebSocketResponse, timeout: float | None
) -> Mapping[str, Any] | None:
    """The next payload, or None when the connection closed."""
    import aiohttp

    while True:
        try:
            message = await ws.receive(timeout=timeout)
        except TimeoutError:
            raise TransientError("Discord's Gateway did not answer") from None
        if message.type == aiohttp.WSMsgType.TEXT:
            payload = json.loads(message.data)
            if isinstance(payload, Mapping):
                return payload
            continue
        if message.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        ):
            return None


def _with_query(url: str) -> str:
    base = url.rstrip("/") if urlsplit(url).path in ("", "/") else url
    separator = "&" if "?" in base else "/?" if urlsplit(base).path in ("", "/") else "?"
    return f"{base}{separator}v={API_VERSION}&encoding=json"


def _unreachable(exc: BaseException) -> TransientError:
    text = str(exc) or type(exc).__name__
    return TransientError(f"Discord's Gateway unreachable: {text}")


# --- one gateway per bot token ---------------------------------------------------------------

_gateways: dict[str, Gateway] = {}
_tasks: set[asyncio.Task[Any]] = set()


def _background(task: asyncio.Task[Any]) -> None:
    """Keep a fire-and-forget task referenced until it ends."""
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def key_of(token: str) -> str:
    """How the gateways are filed: the token's digest, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def gateway(
    token: str,
    *,
    locate: Callable[[], Awaitable[str]],
    check_token: Callable[[], Awaitable[None]],
    http: HttpClient,
    log: logging.LoggerAdapter[logging.Logger] | logging.Logger,
) -> Gateway:
    """The bot's running gateway, started if needed."""
    key = key_of(token)
    loop = asyncio.get_running_loop()
    current = _gateways.get(key)
    if current is not None and current.loop is loop and not current.task.done():
        return current
    created = Gateway(token, locate, check_token, http, log)
    if current is not None and current.loop is loop:
        for listener in current.listeners.values():
            created.listeners[listener.area_id] = listener
    _gateways[key] = created
    return created


def running() -> list[Gateway]:
    """The gateways running on this loop (for tests and diagnostics)."""
    loop = asyncio.get_running_loop()
    return [g for g in _gateways.values() if g.loop is loop]


def attach(bot: Gateway, listener: Listener) -> Listener:
    """Give the area's listener to ``bot`` (taking it from another bot's gateway, as
    when the area's account or its token changed); the listener now in use."""
    for key, other in list(_gateways.items()):
        if other is bot or other.loop is not bot.loop:
            continue
        old = other.forget(listener.area_id)
        if old is not None and listener.area_id not in bot.listeners:
            listener.inbox = old.inbox
            if not other.listeners:
                del _gateways[key]
                _background(bot.loop.create_task(other.aclose()))
    bot.listen(listener)
    return bot.listeners[listener.area_id]


def listener_of(area_id: str) -> tuple[Gateway, Listener] | None:
    for current in running():
        found = current.listeners.get(area_id)
        if found is not None:
            return current, found
    return None


async def aclose_area(area_id: str, *, forget: bool = False) -> None:
    """The area stopped listening: drop its listener; a gateway nobody uses closes."""
    for key, current in list(_gateways.items()):
        if current.loop is not asyncio.get_running_loop():
            continue
        gone = current.forget(area_id)
        if gone is None:
            continue
        if gone.inbox.waiting:
            current.log.warning(
                "Discord: area %s stopped listening with %d event(s) not picked up yet; "
                "messages and members among them are looked up by REST when it listens "
                "again, reactions are lost",
                area_id,
                gone.inbox.waiting,
            )
        if not current.listeners:
            del _gateways[key]
            await current.aclose()


async def aclose_all() -> None:
    """Close every gateway (the engine is stopping)."""
    loop = asyncio.get_running_loop()
    current = [g for g in _gateways.values() if g.loop is loop]
    for key in [k for k, g in _gateways.items() if g.loop is loop]:
        del _gateways[key]
    with contextlib.suppress(Exception):
        await asyncio.gather(*(g.aclose() for g in current))


# --- a check of one area ----------------------------------------------------------------------


async def check(
    ctx: PollContext,
    bot: Gateway,
    listener: Listener,
    rest: Callable[[PollContext], Awaitable[list[Item]]] | None,
    rest_every: float,
) -> PollResult:
    """The area's items from the bot's Gateway connection, and by REST (``rest``) where
    the trigger has a REST form: once when the area starts listening or the Gateway lost
    events it cannot replay, and every ``rest_every`` s while the Gateway cannot be used
    for this area (unreachable, or an intent refused), which is said once in the log."""
    if not bot.settled.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(bot.settled.wait(), CONNECT_TIMEOUT)
    listener.wake = ctx.check_soon
    listener.inbox.confirm(ctx.state)
    working = bot.working_for(listener)
    problem = bot.problem_for(listener)
    # (Between a drop and the next READY events wait on Discord's side: not a fallback.)
    down = not working and (problem is not None or not bot.settled.is_set())
    found: list[Item] = []
    if rest is not None and (listener.catch_up or down):
        if down and not listener.falling_back:
            listener.falling_back = True
            why = f" ({problem})" if problem is not None else ""
            ctx.log.warning(
                "Discord: this area cannot use the Gateway%s; checking by REST every %g s "
                "meanwhile",
                why,
                rest_every,
            )
        last = ctx.state.get("rest_at")
        if listener.catch_up or not isinstance(last, int | float) or (
            time.time() - last >= rest_every
        ):
            try:
                found = await rest(ctx)
            except ServiceError as exc:
                if down and not listener.inbox.waiting:
                    raise  # a failed check: nothing reaches the area now, say so
                # Looking back failed, but the Gateway's events keep coming: go on.
                ctx.log.warning("Discord: could not look back by REST: %s", exc)
            ctx.state["rest_at"] = time.time()
            listener.catch_up = False
    if working and listener.falling_back:
        listener.falling_back = False
        ctx.log.info("Discord: this area receives the Gateway's events again")
    held = listener.inbox.take(ctx.state)
    bot.changed.set()
    if rest is None and not working and problem is not None and not held:
        if isinstance(problem, TransientError):
            # Check again when the next attempt is due, not after the engine's backoff.
            raise RateLimited(str(problem), retry_after=max(1.0, bot.retry_in))
        raise type(problem)(*problem.args)
    # Newest first, as the engine expects of items without times.
    return PollResult(items=[*held[::-1], *found])
