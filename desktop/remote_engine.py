"""An engine on another computer (or another process), with the surface of ``Engine``
that the desktop app uses: calls over ``engine/rpc.py``, its bus fed by the event stream.

It runs on the app's engine thread like a local engine, so ``EngineBridge`` stays the
one crossing and the views cannot tell. No Qt here.

Attached through a pairing (:class:`Attachment`), it follows the active engine of the
database: the engine it reaches lists the others (engine/remote/sites.py), and when it
stops answering or stands by, whichever of them says it is active is used instead, and
kept as the app's target.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp

import engine as package
from engine import bus as topics
from engine import lifecycle as life
from engine import rpc
from engine import why as explaining
from engine.app import Sample
from engine.areas import Area, AreaSpec
from engine.auth import relay
from engine.auth.accounts import Accounts, Removal
from engine.auth.custom import CustomProvider
from engine.auth.oauth import DEFAULT_TIMEOUT, Browser, Show, system_browser
from engine.auth.session import Account
from engine.bus import Bus
from engine.control import CONTROL_FILE, CommandChannel
from engine.errors import HooklineError
from engine.inspect import Found, ItemVerdict
from engine.journal import Journaled
from engine.lock import DataDirLock
from engine.registry import Registry
from engine.remote import client as remote_client
from engine.remote.client import RemoteTarget
from engine.remote.errors import RemoteError
from engine.settings import Settings
from engine.store import NotFound

if TYPE_CHECKING:
    from engine.app import Engine

log = logging.getLogger(__name__)

#: The bus topic on which a RemoteEngine says how its connection is
#: [state: connected|reconnecting, text: what to show].
CONNECTION = "remote.connection"
CONNECTED = "connected"
RECONNECTING = "reconnecting"

#: How the window names the app's own engine.
THIS_COMPUTER = "this computer"

#: Waits between attempts to reach the engine again after the stream dropped (s).
BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

#: The calls that change nothing: one cut short by a dropped connection is made again
#: once the engine is back (a change is not: it may have been made).
READS = frozenset({
    "snapshot", "area", "webhook_url", "checks", "failing_checks", "lifecycle", "why",
    "check_now", "find_item", "sample", "store.runs", "store.run", "store.event",
    "store.last_runs", "accounts.accounts", "accounts.has_client", "accounts.custom.all",
    "accounts.custom.get", "secrets.saved", "wait_idle", "backups.list",
})

#: What a secret saved on the engine's computer reads as here (its value never comes).
SAVED = "••••••"

#: A call's bound: the window waits on none of them, but a lost answer must end.
CALL_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)

#: How often an attached app asks again which engines share the database (s): one that
#: joined meanwhile is then followed too.
LEARN_EVERY = 300.0

#: How long closing the stream waits for its connection to close (s).
SOCKET_CLOSE = 2.0

#: How long a stop lets TLS connections finish closing (s; aiohttp's "graceful shutdown").
TLS_SETTLE = 0.25

SessionFactory = Callable[[], aiohttp.ClientSession]


def local_session(data_dir: Path) -> aiohttp.ClientSession:
    """A session to the engine that holds ``data_dir`` on this computer, through its
    control channel (``control.json``: loopback port and bearer token)."""
    try:
        info = json.loads((data_dir / CONTROL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HooklineError(f"no Hookline engine is running on {data_dir} (its "
                            f"{CONTROL_FILE} cannot be read: "
                            f"{getattr(exc, 'strerror', None) or exc})") from None
    return aiohttp.ClientSession(base_url=f"http://127.0.0.1:{info['port']}",
                                 headers={"Authorization": f"Bearer {info['token']}"})


@dataclass
class Attachment:
    """The pairing the app attached with: its target and token, and how the target is
    kept (the app's ``remote.json``) when it follows another engine of the database."""

    target: RemoteTarget
    token: str
    keep: Callable[[RemoteTarget], None]

    def session(self) -> aiohttp.ClientSession:
        """A session on the target's engine now."""
        return self.target.session(self.token)


@dataclass
class _Held:
    """What the window reads of the engine without a call, kept current by the stream."""

    areas: dict[str, Area] = field(default_factory=dict)
    next_fire: dict[str, datetime | None] = field(default_factory=dict)
    failing: dict[str, str | None] = field(default_factory=dict)

    def keep(self, held: Mapping[str, Any]) -> Area:
        area: Area = held["area"]
        self.areas[area.id] = area
        self.next_fire[area.id] = held.get("next_fire")
        self.failing[area.id] = held.get("failing")
        return area

    def forget(self, area_id: str) -> None:
        for part in (self.areas, self.next_fire, self.failing):
            part.pop(area_id, None)


class RemoteEngine:
    """An engine reached over the network, offering what the desktop app calls.

    Args:
        session: makes the session to the engine (base URL and credentials set), on
            the loop this engine runs on.
        data_dir: a folder on this computer for the app's own state (Pause all, hints).
        name: how the window names the engine (default: its computer's name).
        host: its computer's address (the window shows it beside the name).
        registry: the catalog (this computer's: the same Hookline).
        home: the app's own data folder (where it keeps the target; default data_dir).
            While it runs, it holds that folder as the app's own engine would: a second
            Hookline on it is refused, and a second launch's hand-off (``control``)
            reaches this app.
        attachment: the pairing, when the engine is reached through one: then it
            follows the database's active engine (``session`` is the attachment's).

    Attributes:
        control: while it runs, the channel on ``home`` that answers only the app's own
            commands (a second launch's "show"); no call of the engine crosses it.
        version / services: what the engine said it is, at the last connection.
        mismatch: what differs from this app's Hookline (None: nothing).
        connected: whether the event stream is up now.
        moved: why the app left the engine it was attached to for this one, and when
            (None: it did not).
    """

    def __init__(self, session: SessionFactory, data_dir: Path, *, name: str | None = None,
                 host: str = "", registry: Registry | None = None,
                 home: Path | None = None, attachment: Attachment | None = None) -> None:
        self._make_session = attachment.session if attachment is not None else session
        self.attachment = attachment
        self.moved: str | None = None
        self.data_dir = data_dir
        self.home = home or data_dir
        self.name = name or host or "the other computer"
        self.host = host or self.name
        self.registry = registry or Registry.load()
        self.bus = Bus()
        self.settings = Settings()
        self.control: CommandChannel | None = None
        self._lock = DataDirLock(self.home)
        self.listener = RemoteListener()
        self.poller = RemotePoller(self)
        self.scheduler = RemoteScheduler(self)
        self.store = RemoteStore(self)
        self.accounts = RemoteAccounts(self)
        self.secrets = RemoteSecrets(self)
        self.version = ""
        self.services: tuple[str, ...] = ()
        self.mismatch: str | None = None
        #: the backup the engine restored as it last started (its name), or why the one
        #: asked for was not (the engine's own restored / restore_failed)
        self.restored: str | None = None
        self.restore_failed: str | None = None
        self.connected = False
        self.started = False
        self._held = _Held()
        self._session: aiohttp.ClientSession | None = None
        self._stream: asyncio.Task[None] | None = None
        self._learning: asyncio.Task[None] | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._up = asyncio.Event()  # connected: calls go at once (else they wait)
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Reach the engine, read what it holds and follow its bus (raises HooklineError
        when it cannot be reached or refuses)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        await self._hold_home()
        try:
            try:
                socket = await self._reach(announce=False)
            except HooklineError as exc:  # another engine of its database may be active
                if not await self._follow_elsewhere(exc, datetime.now().astimezone()):
                    raise
                socket = await self._reach(announce=False)
        except BaseException:
            await self._let_go_home()  # (this computer's engine may open on it now)
            raise
        await self._learn()
        self.connected = self.started = True
        self._up.set()
        self._stream = asyncio.create_task(self._follow(socket), name="remote-engine-stream")
        if self.attachment is not None:
            self._learning = asyncio.create_task(self._keep_learning(),
                                                 name="remote-engine-sites")

    async def _reach(self, announce: bool) -> aiohttp.ClientWebSocketResponse:
        """A new session on the engine, its stream and what it holds (the session is
        dropped again when any of it fails)."""
        await self._drop_session()
        try:
            self._session = self._make_session()
            socket = await self._open_stream()
            await self._read_snapshot(announce=announce)
        except BaseException:
            await self._drop_session()
            raise
        return socket

    async def _learn(self) -> None:
        """Note the other engines of the database, as the engine says now (kept with the
        target, so they are known at the next start too)."""
        attachment = self.attachment
        if attachment is None:
            return
        try:
            found = await remote_client.engines(attachment.target, attachment.token)
        except RemoteError as exc:  # not followed until it says: the same as before
            log.info("%s", exc)
            return
        known = attachment.target.knowing(found)
        if known != attachment.target:
            attachment.target = known
            await self._keep_target(known)

    async def _keep_target(self, target: RemoteTarget) -> None:
        """Save ``target`` as the app's (a full disk is said; the app goes on with it)."""
        assert self.attachment is not None
        try:
            await asyncio.to_thread(self.attachment.keep, target)
        except OSError as exc:
            log.warning("could not save where %s answers (%s): the next start may not "
                        "know it", target.name, exc.strerror or exc)

    async def _keep_learning(self) -> None:
        while True:
            await asyncio.sleep(LEARN_EVERY)
            if self.connected:
                await self._learn()

    async def _follow_elsewhere(self, why: BaseException, since: datetime) -> bool:
        """The engine cannot be reached or stands by: when another engine of its
        database says it is active, attach to that one (True) and keep it as the
        target."""
        attachment = self.attachment
        if attachment is None or not attachment.target.also:
            return False
        moved = await remote_client.active_elsewhere(attachment.target, attachment.token)
        if moved is None:
            return False
        left = f"{self.name} ({self.host})"
        reason = ("it stands by" if isinstance(why, _StandsBy) else
                  "it stopped answering")
        attachment.target = moved
        self.name, self.host = moved.name, moved.host
        if self.control is not None:
            self.control.refusal = self._refusal()
        self.moved = f"moved from {left} at {since:%H:%M}: {reason}"
        log.warning("attached to %s at %s:%d instead of %s (%s): it is the active engine "
                    "of the same database now", moved.name, moved.host, moved.port, left,
                    why)
        await self._keep_target(moved)
        return True

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        learning, self._learning = self._learning, None
        if learning is not None:
            learning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await learning
        try:
            if stream is not None:
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream
        finally:
            try:
                await self._drop_session()
            finally:
                await self._let_go_home()
        # A call cancelled as the app quits closes its TLS connection without waiting for
        # the closing exchange; aiohttp's advice for a graceful shutdown is this short
        # wait, else the loop ends first and the socket is left open (also on the engine).
        await asyncio.sleep(TLS_SETTLE)
        self.started = self.connected = False

    async def _hold_home(self) -> None:
        """Hold the app's folder as its own engine would, and answer there what a second
        launch asks (raises EngineLocked when Hookline already runs on it)."""
        self._lock.acquire()
        control = CommandChannel(self.home, refusal=self._refusal())
        try:
            await control.start()
        except BaseException:
            self._lock.release()
            raise
        self.control = control

    def _refusal(self) -> str:
        """What a command on the app's folder is told while the app is attached."""
        return (f"this Hookline app is attached to the engine on {self.host}: use "
                "`hookline` there, or quit the app here to use this computer's own engine")

    async def _let_go_home(self) -> None:
        control, self.control = self.control, None
        try:
            if control is not None:
                await control.aclose()
        finally:
            self._lock.release()

    # ----------------------------------------------------------------- calls

    async def call(self, name: str, /, **arguments: Any) -> Any:
        """Make one call of ``engine/rpc.py``; its answer, or the engine's error."""
        await self._until_up()
        try:
            return await self._send(name, arguments)
        except _NotSent:  # the engine went away just now: once it is back, once more
            self._up.clear()
            await self._until_up()
            return await self._send(name, arguments)

    async def _until_up(self) -> None:
        """While reconnecting, wait for the engine (a view's read waits, not fails)."""
        if self.started and not self._up.is_set():
            try:
                async with asyncio.timeout(CALL_TIMEOUT.total):
                    await self._up.wait()
            except TimeoutError:
                raise HooklineError(f"{self.name} cannot be reached now") from None

    async def _send(self, name: str, arguments: Mapping[str, Any]) -> Any:
        session = self._session
        if session is None:
            raise HooklineError(f"not connected to {self.name}")
        try:
            async with session.post(f"/rpc/{name}", json=rpc.encode(arguments),
                                    timeout=CALL_TIMEOUT) as answer:
                try:
                    body = await answer.json()
                except (aiohttp.ContentTypeError, ValueError):
                    body = None
                if answer.status == 401:
                    raise HooklineError(f"{self.name} no longer accepts this app: connect "
                                        "to it again with a new code")
                if answer.status != 200 or not isinstance(body, dict):
                    raise rpc.error_from(answer.status, body)
                return rpc.decode(body.get("result"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            said = f"cannot reach {self.name}: {_said(exc)}"
            if isinstance(exc, aiohttp.ClientConnectorError) or (
                    name in READS and isinstance(exc, aiohttp.ClientError)):
                raise _NotSent(said) from None  # never sent, or a read: safe to send again
            raise HooklineError(said) from None

    # ----------------------------------------------------------------- stream

    async def _open_stream(self) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        try:
            return await self._session.ws_connect("/rpc/events", heartbeat=20.0,
                                                  timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise HooklineError(f"{self.name} no longer accepts this app: connect to "
                                    "it again with a new code") from None
            if exc.status == 503:  # engine/standby.py: another engine has the database
                raise _StandsBy(
                    f"Hookline on {self.name} stands by: another Hookline engine is active "
                    "on its database. Use that one: Settings → Connect to another "
                    "computer…, with a code from `hookline pair` there") from None
            raise HooklineError(f"cannot reach {self.name}: {_said(exc)}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HooklineError(f"cannot reach {self.name}: {_said(exc)}") from None

    async def _follow(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """Hear the engine's bus for as long as this engine is open, reconnecting with
        backoff whenever the stream drops."""
        try:
            await self._follow_from(socket)
        finally:
            await self._close_socket()

    async def _close_socket(self) -> None:
        """Close the stream and wait (briefly) until its connection is closed: over TLS
        that takes an exchange with the engine, which a loop ending at once would cut
        short, leaving the socket open."""
        socket, self._socket = self._socket, None
        if socket is None:
            return
        # aiohttp offers no public handle on a websocket's connection: its protocol's
        # ``closed`` future is read defensively (None: nothing to wait for)
        protocol = getattr(getattr(socket, "_conn", None), "protocol", None)
        closed = getattr(protocol, "closed", None)
        with contextlib.suppress(aiohttp.ClientError, OSError, ssl.SSLError):
            await socket.close()  # (the engine may be gone, or still sending)
        if isinstance(closed, asyncio.Future):  # (it may end with the error that closed it)
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError,
                                     ssl.SSLError):
                await asyncio.wait_for(asyncio.shield(closed), SOCKET_CLOSE)

    async def _follow_from(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        attempt = 0
        self._socket = socket
        while True:
            try:
                async for message in socket:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        await self._hear(json.loads(message.data))
                    elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                        break
            except (aiohttp.ClientError, ValueError, HooklineError) as exc:
                log.warning("the stream from %s broke: %s", self.name, exc)
            await self._close_socket()
            self._say(RECONNECTING, f"Reconnecting to {self.name}…")
            since = datetime.now().astimezone()
            said = ""
            while True:
                await self._drop_session()
                await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                attempt += 1
                try:  # a new session: the engine may have come back elsewhere (its port)
                    socket = self._socket = await self._reach(announce=True)
                except (HooklineError, OSError, ValueError, KeyError) as exc:
                    log.info("still cannot reach %s: %s", self.name, exc)
                    if await self._follow_elsewhere(exc, since):
                        attempt = 0
                        continue
                    why = (str(exc).removeprefix(f"cannot reach {self.name}: ").rstrip(".")
                           or type(exc).__name__)
                    if why != said:  # why it is away, said once each time it changes
                        said = why
                        self._say(RECONNECTING, f"Reconnecting to {self.name}… (since "
                                                f"{since:%H:%M}: {why})")
                    continue
                attempt = 0
                await self._learn()
                self._say(CONNECTED, f"Connected to {self.name}" + (
                    f" ({self.moved})" if self.moved else ""))
                break

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _say(self, state: str, text: str) -> None:
        self.connected = state == CONNECTED
        if self.connected:
            self._up.set()
        else:
            self._up.clear()
        self.bus.publish(CONNECTION, state=state, text=text, name=self.name)

    async def _hear(self, batch: Sequence[Mapping[str, Any]]) -> None:
        """Take a batch of the engine's messages: what they change of an area first,
        so a view that hears one reads the area as it is now."""
        for message in batch:
            topic = str(message.get("topic", ""))
            if topic == "rpc.resync":  # the engine dropped messages for this app
                await self._read_snapshot(announce=True)
                continue
            if "area" in message:
                area_id = message.get("data", {}).get("area_id")
                held = rpc.decode(message["area"])
                if held is None:
                    if isinstance(area_id, str):
                        self._held.forget(area_id)
                else:
                    self._held.keep(held)
            data = rpc.decode(message.get("data") or {})
            self.bus.publish(topic, **data)

    async def _read_snapshot(self, announce: bool) -> None:
        """Read everything the window holds; with ``announce``, say what changed since
        (as area.changed), as the messages missed while away would have."""
        snapshot = await self._send("snapshot", {})
        self.version = str(snapshot["version"])
        self.services = tuple(snapshot["services"])
        self.mismatch = self._compare(self.version, self.services)
        self.settings = snapshot["settings"]
        self.listener.base = snapshot["webhook_base"]
        self.restored = snapshot.get("restored")
        self.restore_failed = snapshot.get("restore_failed")
        self.listener.port = snapshot["listener_port"]
        before = dict(self._held.areas)
        self._held = _Held()
        for held in snapshot["areas"]:
            self._held.keep(held)
        if not announce:
            return
        for area_id, area in self._held.areas.items():
            if area_id not in before:
                self.bus.publish(topics.AREA_CHANGED, area_id=area_id, change="created")
            elif before[area_id] != area:
                self.bus.publish(topics.AREA_CHANGED, area_id=area_id, change="updated")
        for area_id in before.keys() - self._held.areas.keys():
            self.bus.publish(topics.AREA_CHANGED, area_id=area_id, change="removed")

    def _compare(self, version: str, services: Sequence[str]) -> str | None:
        """What differs between the engine's Hookline and this app's (None: nothing)."""
        problems = []
        if version != package.__version__:
            problems.append(f"{self.name} runs Hookline {version}, this app is "
                            f"{package.__version__}: update both to the same version")
        here = set(self.registry.services)
        missing_here = sorted(set(services) - here)
        missing_there = sorted(here - set(services))
        if missing_here:
            problems.append(f"services on {self.name} that this app does not have: "
                            + ", ".join(missing_here))
        if missing_there:
            problems.append(f"services this app has that {self.name} does not: "
                            + ", ".join(missing_there))
        return "; ".join(problems) or None

    # ----------------------------------------------------------------- areas

    def areas(self) -> list[Area]:
        return list(self._held.areas.values())

    def area(self, area_id: str) -> Area:
        try:
            return self._held.areas[area_id]
        except KeyError:
            raise NotFound(f"no area {area_id!r}") from None

    def _keep(self, area: Area) -> Area:
        self._held.areas[area.id] = area
        return area

    async def create_area(self, spec: AreaSpec) -> Area:
        return self._keep(await self.call("create_area", spec=spec))

    async def update_area(self, area_id: str, spec: AreaSpec) -> Area:
        return self._keep(await self.call("update_area", area_id=area_id, spec=spec))

    async def import_areas(self, items: Sequence[Any]) -> list[Area]:
        return [self._keep(a) for a in await self.call("import_areas", items=list(items))]

    async def remove_area(self, area_id: str) -> None:
        await self.call("remove_area", area_id=area_id)
        self._held.forget(area_id)

    async def set_enabled(self, area_id: str, enabled: bool) -> Area:
        return self._keep(await self.call("set_enabled", area_id=area_id, enabled=enabled))

    async def run_now(self, area_id: str, payload: Mapping[str, Any] | None = None
                      ) -> list[Journaled]:
        result: list[Journaled] = await self.call(
            "run_now", area_id=area_id, payload=dict(payload) if payload is not None else None)
        return result

    async def replay(self, event_id: int, area_id: str | None = None) -> list[Journaled]:
        result: list[Journaled] = await self.call("replay", event_id=event_id,
                                                  area_id=area_id)
        return result

    async def sample(self, spec: AreaSpec, area_id: str | None = None,
                     body: Any = None) -> Sample:
        result: Sample = await self.call("sample", spec=spec, area_id=area_id, body=body)
        return result

    async def test_area(self, spec: AreaSpec, payload: Mapping[str, Any] | None = None,
                        area_id: str | None = None, live: bool = False, *,
                        body: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "test_area", spec=spec, payload=dict(payload) if payload is not None else None,
            area_id=area_id, live=live, body=body)
        return result

    async def webhook_url(self, area_id: str) -> str | None:
        result: str | None = await self.call("webhook_url", area_id=area_id)
        return result

    async def checks(self, area_id: str, limit: int = 50) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("checks", area_id=area_id, limit=limit)
        return result

    async def failing_checks(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("failing_checks")
        return result

    async def snooze(self, area_id: str, until: datetime, *,
                     catch_up: bool | None = None) -> Area:
        return self._keep(await self.call("snooze", area_id=area_id, until=until,
                                          catch_up=catch_up))

    async def wake(self, area_id: str) -> Area:
        return self._keep(await self.call("wake", area_id=area_id))

    async def lifecycle(self, area_id: str, limit: int = 10) -> life.Status:
        result: life.Status = await self.call("lifecycle", area_id=area_id, limit=limit)
        return result

    async def check_now(self, area_id: str) -> list[ItemVerdict]:
        result: list[ItemVerdict] = await self.call("check_now", area_id=area_id)
        return result

    async def find_item(self, text: str, area_id: str | None = None) -> list[Found]:
        result: list[Found] = await self.call("find_item", text=text, area_id=area_id)
        return result

    async def why(self, area_id: str) -> explaining.Why:
        result: explaining.Why = await self.call("why", area_id=area_id)
        return result

    async def wait_idle(self) -> None:
        await self.call("wait_idle")

    # ----------------------------------------------------------------- settings

    async def save_settings(self, settings: Settings) -> None:
        """Save ``settings`` on the engine's computer (its data folder) and apply them."""
        answer = await self.call("save_settings", settings=settings)
        self.settings = answer["settings"]
        self.listener.base = answer["webhook_base"]

    def apply_settings(self, settings: Settings) -> None:
        raise HooklineError(f"the settings of {self.name} are saved there: use "
                            "save_settings")

    # ----------------------------------------------------------------- backups

    async def backups(self) -> list[dict[str, Any]]:
        """The engine's regular backups, newest first: each its ``name`` and when it was
        ``taken_at``."""
        return cast(list[dict[str, Any]], await self.call("backups.list"))

    async def restore_backup(self, name: str) -> None:
        """Have the engine restore its backup ``name``: it answers, then starts again
        and restores it on its way up (the stream reconnects meanwhile). Raises the
        engine's refusal (BackupError) when it cannot restart itself or is on
        PostgreSQL."""
        await self.call("backups.restore", name=name)


class _StandsBy(HooklineError):
    """The engine stands by: another engine is active on its database."""


class _NotSent(HooklineError):
    """A call that never reached the engine (its connection was refused)."""


def as_engine(remote: RemoteEngine) -> Engine:
    """``remote`` where an ``Engine`` is taken (EngineThread, EngineBridge): it offers
    what the desktop app uses of one, which the desktop's tests of it check."""
    return cast("Engine", remote)


def _said(exc: BaseException) -> str:
    """A network error in users' words."""
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return ("its certificate changed since this app was paired with it: if Hookline "
                "was set up again there, connect again with a new code; if not, someone "
                "may be between this computer and it")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "its certificate is not the one paired with this app"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "nothing answers at that address (is Hookline running there?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"it refused the connection ({exc.status})"
    return str(exc) or type(exc).__name__


class RemoteListener:
    """The engine's webhook listener as the window shows it: its base address."""

    def __init__(self) -> None:
        #: ``http://host:port/hooks/`` as the engine gives it (None: the listener is off)
        self.base: str | None = None
        self.port: int | None = None

    def url_for(self, token: str) -> str:
        if self.base is None:
            raise HooklineError("the webhook listener is off")
        return self.base + token


class RemotePoller:
    """The poller's failing checks, as the stream last said them."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    def failing(self, area_id: str) -> str | None:
        return self._engine._held.failing.get(area_id)


class RemoteScheduler:
    """When an area fires next, as the engine said with the area."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    def next_fire(self, area_id: str) -> datetime | None:
        return self._engine._held.next_fire.get(area_id)


class RemoteStore:
    """The history reads the window makes."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    async def runs(self, area_id: str | None = None, limit: int = 50,
                   status: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._engine.call(
            "store.runs", area_id=area_id, limit=limit, status=status)
        return result

    async def run(self, run_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._engine.call("store.run", run_id=run_id)
        return result

    async def event(self, event_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._engine.call("store.event", event_id=event_id)
        return result

    async def last_runs(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = await self._engine.call("store.last_runs")
        return result


class RemoteCustomProviders:
    """The custom OAuth 2 providers declared on the engine's computer."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    async def all(self) -> list[CustomProvider]:
        result: list[CustomProvider] = await self._engine.call("accounts.custom.all")
        return result

    async def get(self, name: str) -> CustomProvider | None:
        result: CustomProvider | None = await self._engine.call("accounts.custom.get",
                                                                name=name)
        return result

    async def save(self, provider: CustomProvider) -> None:
        await self._engine.call("accounts.custom.save", provider=provider)

    async def delete(self, name: str) -> None:
        await self._engine.call("accounts.custom.delete", name=name)


class RemoteAccounts:
    """The accounts kept on the engine's computer. Signing in through the browser is
    done from here (:meth:`connect`): the browser's answer comes back to this computer
    and is forwarded to the engine, which exchanges it."""

    client_missing = staticmethod(Accounts.client_missing)

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine
        self.custom = RemoteCustomProviders(engine)

    @property
    def registry(self) -> Registry:
        return self._engine.registry

    async def accounts(self, service_id: str | None = None) -> list[Account]:
        result: list[Account] = await self._engine.call("accounts.accounts",
                                                        service_id=service_id)
        return result

    async def oauth_client(self, service_id: str) -> None:
        """Raises HooklineError when ``service_id`` has no OAuth app on the engine."""
        if not await self._engine.call("accounts.has_client", service_id=service_id):
            raise HooklineError(f"{service_id} has no OAuth app on {self._engine.name}")

    async def set_client(self, service_id: str, client_id: str,
                         client_secret: str | None = None) -> None:
        await self._engine.call("accounts.set_client", service_id=service_id,
                                client_id=client_id, client_secret=client_secret)

    async def connect(self, service_id: str, *, browser: Browser = system_browser,
                      show: Show | None = None, timeout: float = DEFAULT_TIMEOUT
                      ) -> Account:
        """Sign in through the browser on this computer, as the engine's own
        ``Accounts.connect`` does there: the provider's redirect comes back to a
        listener here, whose answer is forwarded to the engine. The engine begins the
        request and exchanges the code (engine/auth/relay.py), so the OAuth app's
        secret and the PKCE verifier never leave its computer."""
        signed = await relay.sign_in_from_here(self._engine.call, service_id,
                                               browser=browser, show=show, timeout=timeout)
        return signed.account

    async def add_token(self, service_id: str, token: str, name: str | None = None
                        ) -> Account:
        result: Account = await self._engine.call("accounts.add_token", service_id=service_id,
                                                  token=token, name=name)
        return result

    async def remove(self, account_id: str) -> Removal:
        result: Removal = await self._engine.call("accounts.remove", account_id=account_id)
        return result

    async def reload(self) -> None:
        await self._engine.call("accounts.reload")


class RemoteSecrets:
    """The keyring of the engine's computer, as the window may use it: whether a secret
    is saved (read as ``••••••``, never its value) and saving the settings' own."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine

    def _wait(self, name: str, /, **arguments: Any) -> Any:
        """From a worker thread (the window reads the keyring in one): the call, made
        on the engine's loop."""
        loop = self._engine._loop
        if loop is None:
            raise HooklineError(f"not connected to {self._engine.name}")
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                raise HooklineError("the keyring of a remote engine is read from a thread")
        future = asyncio.run_coroutine_threadsafe(self._engine.call(name, **arguments), loop)
        return future.result(timeout=CALL_TIMEOUT.total)

    def get(self, ref: str) -> str | None:
        return SAVED if self._wait("secrets.saved", ref=ref) else None

    def set(self, ref: str, value: str) -> None:
        self._wait("secrets.set", ref=ref, value=value)

