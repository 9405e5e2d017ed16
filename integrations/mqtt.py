"""MQTT: react to messages on a broker's topics and publish messages to it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiomqtt

from engine import (
    AuthError,
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
    from engine import HttpClient

#: Messages kept per area between two checks; past it the oldest are dropped.
BUFFER_LIMIT = 1000
#: The largest payload turned into an event (the webhook listener's limit too).
MAX_PAYLOAD = 1024 * 1024
#: Seconds between reconnection attempts: the first, doubling up to the last.
RECONNECT_MIN = 1.0
RECONNECT_MAX = 60.0
#: Seconds a Test in the editor listens for a sample message.
SAMPLE_WAIT = 2.0
#: Seconds one MQTT exchange (connect, subscribe, publish) may take.
OPERATION_TIMEOUT = 10.0
#: Seconds between keep-alive pings, so a dead connection is noticed.
KEEPALIVE = 30
#: A subscription nobody checked for this long (or for three times the gap between its
#: last two checks, if longer) stops itself; the next check starts it again.
IDLE_AFTER = 900.0

# CONNACK codes meaning "bad user name or password" / "not authorised" (MQTT 3.1.1 and 5).
_AUTH_CODES = frozenset({4, 5, 134, 135})
# CONNACK codes meaning "client identifier not accepted".
_ID_CODES = frozenset({2, 133})

service = Service(
    "mqtt",
    "MQTT",
    "React to messages on an MQTT broker (Mosquitto, Home Assistant, Zigbee2MQTT, "
    "Tasmota...) and publish messages to it.",
    icon="mqtt.svg",
)

_QOS = (
    ("0", "At most once (0): fastest, may lose a message"),
    ("1", "At least once (1): may repeat a message"),
    ("2", "Exactly once (2): slowest"),
)


def _connection_params() -> list[Param]:
    return [
        Param(
            "host",
            ParamType.TEXT,
            "Broker",
            help="The broker's host name or IP address, without mqtt:// (for Home "
            "Assistant's add-on: the Home Assistant machine).",
            example="192.168.1.10",
        ),
        Param(
            "port",
            ParamType.INTEGER,
            "Port",
            help="1883 for plain MQTT, 8883 for MQTT over TLS.",
            default=1883,
            minimum=1,
            maximum=65535,
            example=1883,
        ),
        Param(
            "tls",
            ParamType.BOOL,
            "Use TLS",
            help="Encrypt the connection (the broker's certificate must be trusted by "
            "this computer). Usually together with port 8883.",
            default=False,
            example=False,
        ),
        Param(
            "username",
            ParamType.TEXT,
            "User name",
            required=False,
            help="Leave empty if the broker accepts anonymous clients.",
            example="hookline",
        ),
        Param(
            "password",
            ParamType.SECRET,
            "Password",
            required=False,
            help="The password of that user on the broker.",
            example="correct horse battery staple",
        ),
    ]


# --- topics --------------------------------------------------------------------------------


def check_topic_filter(text: str) -> str:
    """``text`` if it is a valid topic filter to subscribe to (``+`` and ``#`` allowed)."""
    _check_topic(text)
    levels = text.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise PermanentError(
                f"Topic {text!r}: '#' matches every level below, so it must be a whole "
                "level and the last one, like home/#"
            )
        if "+" in level and level != "+":
            raise PermanentError(
                f"Topic {text!r}: '+' must be a whole level, like home/+/temperature "
                "(not home/kitchen+)"
            )
    return text


def check_topic_name(text: str) -> str:
    """``text`` if it is a valid topic to publish to (one exact topic, no wildcards)."""
    _check_topic(text)
    if "+" in text or "#" in text:
        raise PermanentError(
            f"Topic {text!r}: a message goes to one exact topic; '+' and '#' are only "
            "for subscribing"
        )
    if text.startswith("$"):
        raise PermanentError(
            f"Topic {text!r}: topics starting with $ belong to the broker; choose another"
        )
    return text


def _check_topic(text: str) -> None:
    if not text:
        raise PermanentError("Topic is empty: give one like home/kitchen/temperature")
    if "\0" in text:
        raise PermanentError(f"Topic {text!r} contains a NUL character, which MQTT forbids")
    if text != text.strip():
        raise PermanentError(
            f"Topic {text!r} starts or ends with a space; MQTT compares topics exactly, "
            "so remove it"
        )
    if len(text.encode("utf-8")) > 65535:
        raise PermanentError("Topic is longer than MQTT's limit of 65,535 bytes")


def client_id(area_id: str, topic: str) -> str:
    """The area's stable client id (23 characters: every broker accepts that many).

    The broker keeps a persistent session under it; a new topic gets a new session, so
    the old subscription does not linger in it."""
    digest = hashlib.sha256(f"{area_id}\0{topic}".encode()).hexdigest()
    return f"hookline-{digest[:14]}"


# --- connection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    """Where and as whom to connect."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Broker:
        host = str(params["host"]).strip()
        if "://" in host or "/" in host:
            raise PermanentError(
                f"Broker {host!r}: give the host name or IP address only, like "
                "broker.local or 192.168.1.10 (no mqtt:// and no path)"
            )
        username = params.get("username") or None
        password = params.get("password") or None
        if password and not username:
            raise PermanentError(
                "A password is set but no user name: fill in the user name the broker expects."
            )
        return cls(host, int(params["port"]), bool(params.get("tls")), username, password)

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def client(
        self, identifier: str | None = None, *, clean_session: bool | None = None
    ) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            clean_session=clean_session,
            timeout=OPERATION_TIMEOUT,
            keepalive=KEEPALIVE,
            tls_context=ssl.create_default_context() if self.tls else None,
        )

    async def check_address(self, http: HttpClient) -> None:
        """Refuse addresses the engine's outbound guard refuses (as for HTTP)."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise TransientError(
                f"MQTT broker {self.where} unreachable: cannot find {self.host!r} ({exc.strerror})"
            ) from None
        try:
            for *_, address in infos:
                http.guard.check(str(address[0]), self.port)
        except OSError as exc:
            raise PermanentError(f"MQTT broker {self.where}: {exc}") from None

    def error(self, exc: BaseException) -> ServiceError:
        """The engine error for a failed MQTT exchange."""
        if isinstance(exc, ServiceError):
            return exc
        if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
            code = _code(exc.rc)
            reason = exc.rc if isinstance(exc.rc, int) else str(exc.rc)
            if code in _AUTH_CODES:
                return AuthError(
                    f"MQTT broker {self.where} refused the login ({reason}): check the "
                    "user name and password"
                )
            if code in _ID_CODES:
                return PermanentError(
                    f"MQTT broker {self.where} refused Hookline's client id ({reason})"
                )
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return PermanentError(
                f"MQTT broker {self.where}: its TLS certificate is not trusted by this "
                f"computer ({text})"
            )
        if text == "Operation timed out":
            text = f"no answer within {OPERATION_TIMEOUT:g} s"
        elif text == "Disconnected during message iteration":
            text = "the connection was lost"
        if self.tls and "SSL" in text:
            text += " (is TLS on for a port without it? 1883 is usually plain, 8883 TLS)"
        return TransientError(f"MQTT broker {self.where} unreachable: {text}")


def _read_disconnection(client: aiomqtt.Client) -> None:
    """Read the error of a connection that was lost outside message iteration.

    aiomqtt leaves it unread then (e.g. lost while stopping, or during a publish), and
    asyncio would log "Future exception was never retrieved"."""
    future = getattr(client, "_disconnected", None)
    if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
        future.exception()


def _code(rc: Any) -> int:
    return int(getattr(rc, "value", rc))


async def _subscribe_or_refuse(
    client: aiomqtt.Client, broker: Broker, topic: str, qos: int
) -> None:
    """Subscribe; a broker that refuses (its access rules) is a PermanentError."""
    granted: Sequence[Any] = await client.subscribe(topic, qos)
    if any(_code(rc) >= 0x80 for rc in granted):
        raise PermanentError(
            f"MQTT broker {broker.where} refused the subscription to {topic!r}: "
            "the user may not read it (check the broker's access rules)"
        )


def _json(text: str) -> Any:
    """The payload parsed as JSON, or None (NaN and Infinity are not JSON)."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError):
        return None


# --- subscribing ---------------------------------------------------------------------------


class Subscription:
    """One area's subscription: a background task that stays connected, reconnects with
    backoff, and keeps received messages until the next check.

    Attributes:
        connected: whether the broker has accepted the connection and subscription.
        error: why the last attempt failed (cleared on reconnection).
        changed: set whenever a message arrives or the connection comes or goes.
        received: how many messages arrived since the subscription started.
    """

    def __init__(
        self,
        area_id: str,
        broker: Broker,
        topic: str,
        qos: int,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.area_id = area_id
        self.broker = broker
        self.topic = topic
        self.qos = qos
        self.log = log
        self.loop = asyncio.get_running_loop()
        self.client_id = client_id(area_id, topic)
        self.connected = False
        self.error: ServiceError | None = None
        self.settled = asyncio.Event()
        self.changed = asyncio.Event()
        self.received = 0
        self._buffer: deque[Item] = deque()
        self._previous: list[Item] = []
        self._dropped = 0
        self._counter = itertools.count()
        self._last_check = self.loop.time()
        self._retry_in = RECONNECT_MIN
        self._deadline: asyncio.Timeout | None = None
        self.task = self.loop.create_task(self._run(), name=f"mqtt subscription {area_id}")

    @property
    def waiting(self) -> int:
        """Messages received and not yet handed to a check."""
        return len(self._buffer)

    @property
    def config(self) -> tuple[Broker, str, int]:
        return self.broker, self.topic, self.qos

    async def check(self) -> PollResult:
        """The messages received since the check before last, newest first.

        Each message is handed out by two checks in a row: if the engine could not save
        the first, the second still has it (the engine fires a key only once)."""
        now = self.loop.time()
        if self._deadline is not None:
            self._deadline.reschedule(now + max(IDLE_AFTER, 3 * (now - self._last_check)))
        self._last_check = now
        if not self.settled.is_set():
            try:
                await asyncio.wait_for(self.settled.wait(), OPERATION_TIMEOUT + 5)
            except TimeoutError:
                raise TransientError(
                    f"MQTT broker {self.broker.where} unreachable: no answer within "
                    f"{OPERATION_TIMEOUT + 5:g} s"
                ) from None
        fresh = list(self._buffer)
        self._buffer.clear()
        if self._dropped:
            self.log.info("MQTT %s: %d message(s) were dropped", self.topic, self._dropped)
            self._dropped = 0
        items = self._previous + fresh
        self._previous = fresh
        if not items and not self.connected and self.error is not None:
            if isinstance(self.error, TransientError):
                # Check again when the next reconnection attempt is due, not after the
                # engine's ever longer backoff: messages wait here meanwhile.
                raise RateLimited(str(self.error), retry_after=max(1.0, self._retry_in))
            raise type(self.error)(*self.error.args)
        return PollResult(items=items[::-1])

    async def aclose(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            async with asyncio.timeout_at(self.loop.time() + IDLE_AFTER) as deadline:
                self._deadline = deadline
                await self._stay_connected()
        except TimeoutError:
            if self._deadline is None or not self._deadline.expired():
                raise
            self.log.info(
                "MQTT: stopped listening to %s on %s: the area was not checked for a while",
                self.topic,
                self.broker.where,
            )
        except Exception:
            self.log.exception("MQTT subscription to %s crashed", self.topic)
        finally:
            self.connected = False
            self.settled.set()
            self.changed.set()
            if _subscriptions.get(self.area_id) is self:
                del _subscriptions[self.area_id]

    async def _stay_connected(self) -> None:
        delay = RECONNECT_MIN
        while True:
            try:
                await self._session()
                error: ServiceError = TransientError(
                    f"MQTT broker {self.broker.where} ended the connection"
                )
            except (aiomqtt.MqttError, ServiceError) as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Stopping: an error while hanging up must not swallow the cancellation.
                    raise asyncio.CancelledError from exc
                error = self.broker.error(exc)
            if self.connected:
                delay = RECONNECT_MIN
            self._down(error)
            self._retry_in = delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _session(self) -> None:
        # qos 0: nothing is queued for us anyway, so no session is kept on the broker.
        client = self.broker.client(self.client_id, clean_session=self.qos == 0)
        try:
            async with client:
                await _subscribe_or_refuse(client, self.broker, self.topic, self.qos)
                self._up()
                async for message in client.messages:
                    self._receive(message)
        finally:
            _read_disconnection(client)

    def _up(self) -> None:
        if self.error is not None:
            self.log.info("MQTT: reconnected to %s, listening to %s", self.broker.where, self.topic)
        self.connected = True
        self.error = None
        self.settled.set()
        self.changed.set()

    def _down(self, error: ServiceError) -> None:
        if self.error is None:  # the first failure of a streak
            self.log.warning(
                "MQTT: %s; retrying every %g to %g s", error, RECONNECT_MIN, RECONNECT_MAX
            )
        else:
            self.log.debug("MQTT: still failing: %s", error)
        self.connected = False
        self.error = error
        self.settled.set()
        self.changed.set()

    def _receive(self, message: aiomqtt.Message) -> None:
        item = _message_item(message, next(self._counter), self.log)
        if item is None:
            return
        if len(self._buffer) >= BUFFER_LIMIT:
            self._buffer.popleft()
            self._dropped += 1
            if self._dropped == 1:
                self.log.warning(
                    "MQTT %s: more than %d messages arrived between two checks; dropping "
                    "the oldest (check more often, or narrow the topic)",
                    self.topic,
                    BUFFER_LIMIT,
                )
        self._buffer.append(item)
        self.received += 1
        self.changed.set()


def _message_item(
    message: aiomqtt.Message, serial: int, log: logging.LoggerAdapter[logging.Logger]
) -> Item | None:
    """The item a message becomes (None, and a warning, when it is too large)."""
    payload = message.payload
    raw = payload if isinstance(payload, bytes) else str(payload or "").encode()
    topic = str(message.topic)
    if len(raw) > MAX_PAYLOAD:
        log.warning(
            "MQTT: skipped a %d-byte message on %s: one event holds at most 1 MiB",
            len(raw),
            topic,
        )
        return None
    text = raw.decode("utf-8", errors="replace")
    if message.retain:
        # The broker's stored value, sent again on every (re)subscription: one key
        # per value, so a reconnection does not fire it again.
        digest = hashlib.sha256(topic.encode() + b"\0" + raw).hexdigest()
        key = f"retained:{digest[:32]}"
    else:
        key = f"{time.time_ns()}:{serial}"
    return Item(
        key,
        {
            "topic": topic,
            "payload": text,
            "json": _json(text),
            "qos": int(message.qos),
            "retain": bool(message.retain),
            "received_at": datetime.now(UTC).isoformat(),
        },
    )


_subscriptions: dict[str, Subscription] = {}


def subscription(area_id: str) -> Subscription | None:
    """The area's running subscription, if any (for tests and diagnostics)."""
    return _subscriptions.get(area_id)


async def _subscribe(ctx: PollContext, broker: Broker, topic: str, qos: int) -> Subscription:
    loop = asyncio.get_running_loop()
    current = _subscriptions.get(ctx.area_id)
    if current is not None:
        if (
            current.loop is loop
            and not current.task.done()
            and current.config == (broker, topic, qos)
        ):
            return current
        del _subscriptions[ctx.area_id]
        if current.loop is loop:  # (one from a finished event loop is simply forgotten)
            await current.aclose()
            if current.qos and current.client_id != client_id(ctx.area_id, topic):
                await _end_session(current)  # the topic changed: its queue is no use
    await broker.check_address(ctx.http)
    current = _subscriptions.get(ctx.area_id)  # a concurrent check may have started one
    if current is not None and current.loop is loop and current.config == (broker, topic, qos):
        return current
    created = Subscription(ctx.area_id, broker, topic, qos, ctx.log)
    _subscriptions[ctx.area_id] = created
    return created


async def aclose_area(area_id: str, *, forget: bool = False) -> None:
    """Stop the area's subscription (the area was turned off, changed or removed).

    With ``forget`` (the area was removed) the broker is also asked to drop the session
    it keeps for the area with QoS 1 or 2, so it stops queueing messages for it."""
    current = _subscriptions.pop(area_id, None)
    if current is not None and current.loop is asyncio.get_running_loop():
        await current.aclose()
        if forget and current.qos:
            await _end_session(current)


async def _end_session(old: Subscription) -> None:
    """Connect once under the old client id with a clean session: the broker drops it."""
    client = old.broker.client(old.client_id, clean_session=True)
    try:
        async with client:
            pass
    except aiomqtt.MqttError as exc:
        old.log.warning(
            "MQTT: could not end the session %s keeps for %s: %s",
            old.broker.where,
            old.topic,
            old.broker.error(exc),
        )
    finally:
        _read_disconnection(client)


async def aclose_all() -> None:
    """Stop every subscription (the engine is closing)."""
    loop = asyncio.get_running_loop()
    current = [s for s in _subscriptions.values() if s.loop is loop]
    _subscriptions.clear()
    await asyncio.gather(*(s.aclose() for s in current))


@service.poll_trigger(
    "message",
    "New message",
    "Fires for each message published on a topic. While the area is on, Hookline stays "
    "connected to the broker and picks up received messages every few seconds. Messages "
    "published while Hookline is closed are missed, unless QoS is 1 or 2: then the broker "
    "keeps a session for this area and holds its messages until Hookline is back. "
    "A retained message (the last value the broker keeps for a topic) fires once per value.",
    params=[
        *_connection_params(),
        Param(
            "topic",
            ParamType.TEXT,
            "Topic",
            help="The topic to listen to. '+' matches one level and '#' every level below, "
            "e.g. home/+/temperature or zigbee2mqtt/#.",
            example="home/+/temperature",
        ),
        Param(
            "qos",
            ParamType.CHOICE,
            "Quality of service",
            help="0: messages sent while Hookline is closed are missed. 1 or 2: the broker "
            "keeps them for Hookline (a persistent session under a fixed client id for "
            "this area) and delivers them when it reconnects.",
            choices=_QOS,
            default="0",
            example="1",
        ),
    ],
    fields=[
        Field("topic", "Topic", "home/kitchen/temperature"),
        Field("payload", "Payload (text)", '{"temperature": 21.5}'),
        Field("json", "Payload parsed as JSON (empty if it is not JSON)", {"temperature": 21.5}),
        Field("qos", "Quality of service", 0),
        Field("retain", "Retained message", False),
        Field("received_at", "Received at (ISO 8601, UTC)", "2024-05-01T08:30:00.123456+00:00"),
    ],
    default_interval=2.0,
    min_interval=1.0,
)
async def new_message(ctx: PollContext) -> PollResult:
    broker = Broker.from_params(ctx.params)
    topic = check_topic_filter(ctx.params["topic"])
    if ctx.dry_run:
        return await _sample(ctx, broker, topic)
    current = await _subscribe(ctx, broker, topic, int(ctx.params["qos"]))
    return await current.check()


async def _sample(ctx: PollContext, broker: Broker, topic: str) -> PollResult:
    """A Test or "run now": listen up to ``SAMPLE_WAIT`` s on a throwaway connection (a
    retained message comes at once) and leave nothing behind: the area's own
    subscription, its buffer and its session on the broker are not touched."""
    await broker.check_address(ctx.http)
    client = broker.client(None, clean_session=True)
    try:
        async with asyncio.timeout(SAMPLE_WAIT + OPERATION_TIMEOUT), client:
            await _subscribe_or_refuse(client, broker, topic, 0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SAMPLE_WAIT):
                    async for message in client.messages:
                        item = _message_item(message, 0, ctx.log)
                        if item is not None:
                            return PollResult(items=[item])
    except aiomqtt.MqttError as exc:
        raise broker.error(exc) from None
    except TimeoutError:
        raise TransientError(f"MQTT broker {broker.where} did not answer") from None
    finally:
        _read_disconnection(client)
    return PollResult(items=[])


# --- publishing ----------------------------------------------------------------------------


@service.reaction(
    "publish",
    "Publish a message",
    "Publish one message on a topic.",
    params=[
        *_connection_params(),
        Param(
            "topic",
            ParamType.TEXT,
            "Topic",
            help="One exact topic (no + or #); a template may fill it in.",
            example="home/hall/light/set",
        ),
        Param(
            "payload",
            ParamType.MULTILINE,
            "Payload",
            required=False,
            help='The message: text or JSON, e.g. {"state": "ON"}. Empty with '
            "'Retain' on deletes the topic's retained message.",
            example='{"state": "ON", "brightness": {{ trigger.json.level | default(128) }}}',
        ),
        Param(
            "qos",
            ParamType.CHOICE,
            "Quality of service",
            help="0 sends and forgets; 1 and 2 wait until the broker confirms.",
            choices=_QOS,
            default="0",
            example="1",
        ),
        Param(
            "retain",
            ParamType.BOOL,
            "Retain",
            help="Ask the broker to keep this as the topic's last value, sent to every "
            "new subscriber.",
            default=False,
            example=False,
        ),
    ],
    fields=[
        Field("topic", "Topic", "home/hall/light/set"),
        Field("bytes", "Payload size in bytes", 17),
    ],
    timeout=3 * OPERATION_TIMEOUT,
)
async def publish(ctx: ReactionContext) -> Mapping[str, Any]:
    broker = Broker.from_params(ctx.params)
    topic = check_topic_name(ctx.params["topic"])
    data = (ctx.params.get("payload") or "").encode("utf-8")
    await broker.check_address(ctx.http)
    client = broker.client()
    try:
        async with client:
            await client.publish(
                topic, data, qos=int(ctx.params["qos"]), retain=bool(ctx.params.get("retain"))
            )
    except aiomqtt.MqttError as exc:
        raise broker.error(exc) from None
    finally:
        _read_disconnection(client)
    return {"topic": topic, "bytes": len(data)}


# The engine closes subscriptions when an area stops listening and when it stops.
service.on_close = aclose_all
service.on_area_stop = aclose_area
