"""MQTT: react to messages on a broker's topics and publish messages to it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import secrets
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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

#: Messages kept per area between two checks (and the most one check hands out). Past
#: it a QoS 1 or 2 message is not acknowledged, so the broker holds back the rest (up to
#: its own limit: Mosquitto's max_queued_messages, 1000 by default); a QoS 0 message is
#: dropped, and the next check fails saying how many were.
BUFFER_LIMIT = 1000
#: QoS 1 and 2 messages are left unacknowledged until the engine has saved them, so
#: that the broker sends them again if Hookline stops first. The broker sends only so
#: many unacknowledged (its in-flight window: Mosquitto 20 by default) and then waits;
#: a subscription asks the engine for a check as messages arrive, so the wait is short.
#: Only where nobody can be asked (a subscription started outside the engine's
#: schedule) is the oldest acknowledged on arrival past this many.
ACK_WINDOW = 5
#: Topics whose latest value each area remembers, so that the value a broker keeps for
#: a topic (retained), sent again on every reconnection, fires only when it is new. Each
#: takes about 30 bytes of the area's saved state (hashes of the topic and the value).
#: Past it the least recently changed are forgotten; a kept value that comes again for a
#: forgotten topic does not fire (it may be one the area had), and the next check fails
#: saying how many did not.
VALUE_MEMORY = 10_000
#: Hex digits of the topic's and of the value's hash kept per remembered topic.
VALUE_KEY = 12
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
# The CONNACK code of a broker that does not speak MQTT 5 (its 3.1.1 code 1, as paho reads it).
_UNSUPPORTED_PROTOCOL = 132

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
        self,
        identifier: str | None = None,
        *,
        clean_session: bool | None = None,
        protocol: aiomqtt.ProtocolVersion | None = None,
    ) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host, self.port, protocol=protocol, **self._options(identifier, clean_session)
        )

    def connection(
        self,
        identifier: str,
        *,
        clean_session: bool,
        on_connect: Callable[[_Connection, bool], None],
        on_message: Callable[[paho.MQTTMessage, bool], None],
    ) -> _Connection:
        """A client for a subscription: see :class:`_Connection`."""
        return _Connection(
            self.host,
            self.port,
            on_connect=on_connect,
            on_message=on_message,
            **self._options(identifier, clean_session),
        )

    def _options(self, identifier: str | None, clean_session: bool | None) -> dict[str, Any]:
        return {
            "username": self.username,
            "password": self.password,
            "identifier": identifier,
            "clean_session": clean_session,
            "timeout": OPERATION_TIMEOUT,
            "keepalive": KEEPALIVE,
            "tls_context": ssl.create_default_context() if self.tls else None,
        }

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


class _Connection(aiomqtt.Client):
    """An aiomqtt client that hands each message to ``on_message`` as it arrives (no
    queue in between) and, once the subscription is confirmed, leaves acknowledging QoS
    1 and 2 messages to the receiver (:meth:`ack`).

    Until then paho acknowledges by itself: what comes first is the broker sending again
    what the session left unacknowledged, and only so does paho complete a QoS 2 exchange
    that an earlier connection began (it answers a PUBREL for a message it never saw
    only when it acknowledges by itself). ``on_message`` learns which it was.

    aiomqtt 2.5 offers no manual acknowledgement, so this reaches into it (its paho
    client and callbacks); the tests run against a real broker and would notice.

    Args:
        on_connect: called as the broker accepts the connection, with whether it kept
            the session (before any message of the connection).
        on_message: called with each message and whether paho acknowledged it already.
    """

    def __init__(
        self,
        *args: Any,
        on_connect: Callable[[_Connection, bool], None],
        on_message: Callable[[paho.MQTTMessage, bool], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._connect_hook = on_connect
        self._message_hook = on_message
        self._manual = False

    def ack(self, mid: int, qos: int) -> bool:
        """Acknowledge a message (PUBACK, or PUBCOMP for QoS 2); whether it was sent."""
        if not self._manual:
            return False  # paho acknowledges by itself, or already did
        return self._client.ack(mid, qos) == paho.MQTT_ERR_SUCCESS

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: Any,
        properties: Any = None,
    ) -> None:
        if reason_code == paho.CONNACK_ACCEPTED and not self._connected.done():
            self._connect_hook(self, bool(flags.session_present))
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: Any,
        properties: Any = None,
    ) -> None:
        self._client.manual_ack_set(True)
        self._manual = True
        super()._on_subscribe(client, userdata, mid, reason_codes, properties)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._message_hook(message, not self._manual)


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


# --- the inbox -----------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Held:
    """A received message that the engine has not saved yet."""

    serial: int
    item: Item | None  # None: skipped (too large); acknowledged in its turn, never fires
    topic: str
    digest: str  # of topic and payload (:func:`_digest`)
    retained: bool  # sent because the broker keeps it as the topic's value (retain=1)
    qos: int
    mid: int
    acked: bool


class Inbox:
    """What one area's subscription received and the engine has not saved yet, and when
    to acknowledge it to the broker. Bookkeeping only: :class:`Subscription` feeds it
    from the connection; a property test drives it alone.

    A message is held from its arrival until a check handed it out and the engine saved
    that check: the state a check writes (:meth:`take`) comes back to the next check
    (:meth:`confirm`) only if the engine saved it with the check's events. A check the
    engine did not save is handed out again, under the same keys.

    QoS 1 and 2 messages are acknowledged in the order they arrived, once saved, so that
    the broker sends one again if Hookline stops first (or is killed). The broker sends
    only so many unacknowledged (its in-flight window) and then waits: the owner makes
    sure checks come soon (``hold``). Without that, the oldest is acknowledged on
    arrival when more than ``window`` wait (and is lost if Hookline stops before a
    check saved it). None is acknowledged past ``limit`` held, so that the broker holds
    back the rest. A QoS 0 message past ``limit`` is dropped, and counted in ``dropped``.

    On a connection to a session it kept, the broker first sends again what the session
    left unacknowledged; a repeat of a message held or saved already is let go.

    Args:
        limit: messages held at most (QoS 1 and 2: and the broker's in-flight window).
        window: QoS 1 and 2 messages left unacknowledged until they are saved.
        memory: topics whose latest value is remembered.
        state: the area's poll state as the engine last saved it: after a restart it
            names the saved messages that the broker may send again.
        hold: acknowledge nothing before it is saved, however many wait (the owner
            asks for a check as messages arrive).

    Attributes:
        received: messages taken in so far (the broker's repeats not counted).
        dropped: QoS 0 messages dropped past ``limit``, for the owner to report.
    """

    def __init__(
        self,
        limit: int,
        window: int,
        memory: int,
        state: Mapping[str, Any] | None = None,
        *,
        hold: bool = False,
    ) -> None:
        self.limit = limit
        self.window = window
        self.memory = memory
        self.hold = hold
        self.received = 0
        self.dropped = 0
        self.unsure = 0  # kept values of forgotten topics not fired (saved checks)
        self._unsure_taken = 0  # ... in the last check, until the engine saved it
        self._held: deque[_Held] = deque()
        self._serials = itertools.count()
        self._handed = 0  # how many of the first held the last check handed out
        self._token: str | None = None  # the last check's, as its saved state carries it
        self._tokens = (f"{secrets.token_hex(4)}.{n}" for n in itertools.count())
        self._ack: Callable[[int, int], bool] | None = None  # None: not connected
        self._owed: dict[int, _Held] = {}  # mid -> not acknowledged yet, oldest first
        self._acked: OrderedDict[int, _Held] = OrderedDict()  # on this connection, latest
        self._confirmed: list[_Held] = []  # acknowledged as the last check was saved
        self._repeats: dict[int, str] = {}  # what the broker may send again, this connection
        resend = (state or {}).get("resend", ())
        self._restored = {int(mid): str(digest) for mid, digest in resend}

    @property
    def waiting(self) -> int:
        """Messages held that no check has handed out yet."""
        return len(self._held) - self._handed

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def owing(self) -> bool:
        """Whether a message waits to be acknowledged (once a check has saved it)."""
        return bool(self._owed)

    def unsaved(self) -> int:
        """Messages no check has handed out that the broker will not send again
        (acknowledged, or QoS 0): lost if listening stops now."""
        waiting = itertools.islice(self._held, self._handed, None)
        return sum(1 for held in waiting if held.acked and held.item is not None)

    def connected(self, ack: Callable[[int, int], bool], session_present: bool) -> None:
        """A connection began; acknowledgements go through ``ack`` from now on.

        What was owed an acknowledgement is done with: the broker sends it again before
        it confirms the subscription, when it kept the session (paho acknowledges those,
        see :class:`_Connection`), or else it forgot it."""
        repeats: dict[int, str] = {}
        if session_present:
            repeats.update(self._restored)
            # (an acknowledgement may have died with the connection)
            for mid, held in [*self._acked.items(), *self._owed.items()]:
                repeats[mid] = held.digest
        for held in self._owed.values():
            held.acked = True
        self._owed.clear()
        self._acked.clear()
        self._confirmed = []
        self._restored = {}
        self._repeats = repeats
        self._ack = ack

    def disconnected(self) -> None:
        self._ack = None

    def receive(
        self,
        item: Item | None,
        *,
        topic: str,
        digest: str,
        retained: bool,
        qos: int,
        mid: int,
        acked: bool,
    ) -> None:
        """Take in a message; ``acked``: paho acknowledged it already (it came before the
        subscription was confirmed)."""
        if qos and acked and self._repeats.get(mid) == digest:
            del self._repeats[mid]  # the broker sending again one held or saved already
            return
        if not qos and len(self._held) >= self.limit:
            self.dropped += 1
            return
        held = _Held(next(self._serials), item, topic, digest, retained, qos, mid, acked or not qos)
        self._held.append(held)
        if item is not None:
            self.received += 1
        if not held.acked:
            self._owed[mid] = held
            self._pump()

    def confirm(self, state: Mapping[str, Any]) -> None:
        """Let go of the last check's messages, and acknowledge them, if the engine saved
        that check (``state``, as saved, carries its token)."""
        if self._token is None or state.get("batch") != self._token:
            return
        self._confirmed = []
        self.unsure += self._unsure_taken
        self._unsure_taken = 0
        for _ in range(self._handed):
            held = self._held.popleft()
            if not held.acked:
                self._confirmed.append(held)
                self._send_ack(held)
        self._token = None
        self._handed = 0
        self._pump()

    def take(self, state: dict[str, Any]) -> list[Item]:
        """The next check's items, oldest first: the first ``limit`` messages held (those
        of a check not saved again, same keys), less a topic's kept value sent again
        unchanged. Writes into ``state`` what the engine saves with them: the check's
        token, each topic's latest value, the saved messages the broker may send again."""
        batch = list(itertools.islice(self._held, self.limit))
        values = _kept_values(state)
        forgot = bool(state.get("forgot"))
        items: list[Item] = []
        self._unsure_taken = 0
        for held in batch:
            if held.item is None:
                continue
            topic, value = _short(held.topic), held.digest[:VALUE_KEY]
            before = values.pop(topic, None)
            values[topic] = value  # last: the least recently changed go first
            if held.retained and value == before:
                continue  # the broker's kept value, sent again on subscribing: had it
            if held.retained and before is None and forgot:
                self._unsure_taken += 1  # a forgotten topic's: maybe a value it had
                continue
            item = held.item
            if held.retained and before is None:
                # Hookline used to key a kept value by its digest: seen so, it is not new.
                item = replace(item, aliases=(f"retained:{held.digest}",))
            items.append(item)
        self._token = next(self._tokens)
        self._handed = len(batch)
        # Saved with this state or before, maybe not acknowledged on the broker's side:
        # after a restart, the broker sending one again is no news.
        unsaved = set(itertools.islice(self._held, len(batch), None))
        # What this connection acknowledged may not have reached the broker yet, live or
        # not: Hookline may be killed right after this state is saved, with the
        # acknowledgement still on the wire, and the broker then sends it again.
        doubtful = [*self._confirmed, *self._owed.values(), *self._acked.values()]
        resend = dict(self._restored)
        resend.update((held.mid, held.digest) for held in doubtful if held not in unsaved)
        state["batch"] = self._token
        if len(values) > self.memory:
            values = dict(itertools.islice(values.items(), len(values) - self.memory, None))
            state["forgot"] = True
        state["kept"] = values
        state.pop("values", None)  # (the form before: whole topics and digests)
        state["resend"] = [[mid, digest] for mid, digest in resend.items()]
        return items

    def _pump(self) -> None:
        """Unless holding, acknowledge the oldest while more than ``window`` wait, but
        none past ``limit`` held: there the broker is left to hold back the rest."""
        if self.hold:
            return
        first = self._held[0].serial if self._held else 0
        while len(self._owed) > self.window:
            held = next(iter(self._owed.values()))
            if held.serial - first >= self.limit or not self._send_ack(held):
                return

    def _send_ack(self, held: _Held) -> bool:
        if self._ack is None or not self._ack(held.mid, held.qos):
            return False  # still owed: on the next connection the broker sends it again
        held.acked = True
        del self._owed[held.mid]
        self._acked[held.mid] = held
        if len(self._acked) > self.limit + self.window:  # (what one check acknowledges)
            self._acked.popitem(last=False)
        return True


def _kept_values(state: Mapping[str, Any]) -> dict[str, str]:
    """The area's remembered topics (hashed) and their latest values' hashes, least
    recently changed first, from the saved state (also as saved before: ``values``)."""
    kept = state.get("kept")
    if isinstance(kept, dict):
        return {str(topic): str(value) for topic, value in kept.items()}
    return {_short(str(t)): str(d)[:VALUE_KEY] for t, d in state.get("values", ())}


def _short(topic: str) -> str:
    return hashlib.sha256(topic.encode("utf-8", "surrogatepass")).hexdigest()[:VALUE_KEY]


def _digest(topic: str, payload: bytes) -> str:
    """A message's topic and payload in 32 hex digits (as kept values used to be keyed)."""
    return hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:32]


# --- subscribing ---------------------------------------------------------------------------


class Subscription:
    """One area's subscription: a background task that stays connected, reconnects with
    backoff, and keeps received messages in an :class:`Inbox` until the engine saved them.

    Attributes:
        connected: whether the broker has accepted the connection and subscription.
        error: why the last attempt failed (cleared on reconnection).
        changed: set whenever a message arrives or the connection comes or goes.
        inbox: the messages received and not saved yet.
    """

    def __init__(
        self,
        area_id: str,
        broker: Broker,
        topic: str,
        qos: int,
        log: logging.LoggerAdapter[logging.Logger],
        state: Mapping[str, Any] | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.area_id = area_id
        self.wake = wake  # asks the engine to check the area soon
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
        self.inbox = Inbox(BUFFER_LIMIT, ACK_WINDOW, VALUE_MEMORY, state, hold=wake is not None)
        self._counter = itertools.count()
        self._last_check = self.loop.time()
        self._retry_in = RECONNECT_MIN
        self._deadline: asyncio.Timeout | None = None
        self.task = self.loop.create_task(self._run(), name=f"mqtt subscription {area_id}")

    @property
    def waiting(self) -> int:
        """Messages received and not yet handed to a check."""
        return self.inbox.waiting

    @property
    def received(self) -> int:
        """Messages received since the subscription started (the broker's repeats of
        messages held or saved already not counted)."""
        return self.inbox.received

    @property
    def config(self) -> tuple[Broker, str, int]:
        return self.broker, self.topic, self.qos

    async def check(self, state: dict[str, Any]) -> PollResult:
        """The messages received and not saved yet, newest first (at most BUFFER_LIMIT).

        ``state`` is the area's poll state, which the engine saves with this check's
        events: through it the next check learns that these were saved (and lets them
        go); a check the engine could not save is handed out again."""
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
        self.inbox.confirm(state)
        if self.inbox.unsure:
            unsure, self.inbox.unsure = self.inbox.unsure, 0
            raise PermanentError(
                f"MQTT {self.topic}: {unsure} retained message(s) came again for topics "
                f"whose last value Hookline no longer remembers (it remembers "
                f"{VALUE_MEMORY:,} topics per automation), and did not fire: they may be "
                "values this automation already had. Choose a narrower topic if every "
                "topic's changes matter."
            )
        if self.inbox.dropped:
            dropped, self.inbox.dropped = self.inbox.dropped, 0
            # A failed check is what the engine records and shows; the messages held
            # come with the next one.
            raise PermanentError(
                f"MQTT {self.topic}: {dropped} message(s) dropped: more than "
                f"{BUFFER_LIMIT} arrived between two checks, and with QoS 0 the broker "
                "holds none back for Hookline. Choose QoS 1 (the broker then keeps them "
                "until Hookline takes them) or a narrower topic."
            )
        if not self.inbox.holding and not self.connected and self.error is not None:
            if isinstance(self.error, TransientError):
                # Check again when the next reconnection attempt is due, not after the
                # engine's ever longer backoff: messages wait here meanwhile.
                raise RateLimited(str(self.error), retry_after=max(1.0, self._retry_in))
            raise type(self.error)(*self.error.args)
        items = self.inbox.take(state)
        if self.wake is not None and self.inbox.owing():
            self.wake()  # the next check acknowledges what this one's save keeps
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
            lost = self.inbox.unsaved()
            if lost:
                self.log.warning(
                    "MQTT %s: stopped listening with %d received message(s) not picked up "
                    "yet; they are lost",
                    self.topic,
                    lost,
                )

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
        client = self.broker.connection(
            self.client_id,
            clean_session=self.qos == 0,
            on_connect=self._connected,
            on_message=self._receive,
        )
        try:
            async with client:
                await _subscribe_or_refuse(client, self.broker, self.topic, self.qos)
                self._up()
                # Messages go to _receive as they arrive: this only waits for the end.
                async for _ in client.messages:
                    pass
        finally:
            self.inbox.disconnected()
            _read_disconnection(client)

    def _connected(self, client: _Connection, session_present: bool) -> None:
        self.inbox.connected(client.ack, session_present)

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

    def _receive(self, message: paho.MQTTMessage, acked: bool) -> None:
        payload = bytes(message.payload)
        try:
            topic = message.topic
        except UnicodeDecodeError:  # MQTT forbids it; skipped, but acknowledged in turn
            self.log.warning("MQTT: skipped a message on a topic that is not UTF-8")
            topic, item = "", None
        else:
            item = _message_item(
                topic, payload, message.qos, message.retain, next(self._counter), self.log
            )
        self.inbox.receive(
            item,
            topic=topic,
            digest=_digest(topic, payload),
            retained=bool(message.retain),
            qos=int(message.qos),
            mid=int(message.mid),
            acked=acked,
        )
        self.changed.set()
        if self.wake is not None:
            self.wake()


def _raw(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else str(payload or "").encode()


def _message_item(
    topic: str,
    raw: bytes,
    qos: int,
    retain: bool,
    serial: int,
    log: logging.LoggerAdapter[logging.Logger],
) -> Item | None:
    """The item a message becomes (None, and a warning, when it is too large)."""
    if len(raw) > MAX_PAYLOAD:
        log.warning(
            "MQTT: skipped a %d-byte message on %s: one event holds at most 1 MiB",
            len(raw),
            topic,
        )
        return None
    text = raw.decode("utf-8", errors="replace")
    return Item(
        # One key per delivery: the broker's kept value sent again is recognised by
        # the area's memory of each topic's latest value (Inbox.take), not by its key.
        f"{time.time_ns()}:{serial}",
        {
            "topic": topic,
            "payload": text,
            "json": _json(text),
            "qos": int(qos),
            "retain": bool(retain),
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
    created = Subscription(ctx.area_id, broker, topic, qos, ctx.log, ctx.state, ctx.check_soon)
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
    "Fires for each message published on a topic. While the automation is on, Hookline stays "
    "connected to the broker and picks up received messages every few seconds. Messages "
    "published while Hookline is closed are missed, unless QoS is 1 or 2: then the broker "
    "keeps a session for this automation and holds its messages until Hookline is back. "
    f"Hookline keeps up to {BUFFER_LIMIT:,} messages between two checks; with QoS 1 or 2 "
    "the broker holds back the rest until Hookline takes them, up to its own limit "
    "(Mosquitto: max_queued_messages, 1,000 by default; past it the broker drops them). "
    "With QoS 0 the rest is dropped, and the check fails saying how many. "
    "A retained message (the value the broker keeps for a topic and sends again on every "
    "reconnection) fires once per value: again only when the value changes (on a topic "
    "that also carries messages that are not retained, after each of those). Hookline "
    f"remembers the latest value of {VALUE_MEMORY:,} topics per automation; past that, a "
    "kept value sent again for a topic it forgot does not fire, and the check says so.",
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
            help="0: messages sent while Hookline is closed are missed, and so are those "
            f"past {BUFFER_LIMIT:,} between two checks. 1 or 2: the broker keeps them for "
            "Hookline (a persistent session under a fixed client id for this automation) and "
            "delivers them when it reconnects, or when Hookline has room again.",
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
    return await current.check(ctx.state)


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
                        item = _message_item(
                            str(message.topic),
                            _raw(message.payload),
                            message.qos,
                            message.retain,
                            0,
                            ctx.log,
                        )
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
    qos, retain = int(ctx.params["qos"]), bool(ctx.params.get("retain"))
    traceparent = ctx.http.traceparent()
    try:
        if traceparent is None or not await _publish_traced(
            broker, topic, data, qos, retain, traceparent
        ):
            client = broker.client()
            try:
                async with client:
                    await client.publish(topic, data, qos=qos, retain=retain)
            finally:
                _read_disconnection(client)
    except aiomqtt.MqttError as exc:
        raise broker.error(exc) from None
    return {"topic": topic, "bytes": len(data)}


async def _publish_traced(
    broker: Broker, topic: str, data: bytes, qos: int, retain: bool, traceparent: str
) -> bool:
    """Publish over MQTT 5 with the run's trace as the user property ``traceparent``
    (MQTT 3.1.1 has no properties); False when the broker does not speak MQTT 5, and
    nothing was sent: the caller publishes over 3.1.1, without it."""
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # (paho)
    properties.UserProperty = ("traceparent", traceparent)
    client = broker.client(protocol=aiomqtt.ProtocolVersion.V5)
    try:
        async with client:
            await client.publish(topic, data, qos=qos, retain=retain, properties=properties)
    except aiomqtt.MqttCodeError as exc:
        if exc.rc is None or _code(exc.rc) != _UNSUPPORTED_PROTOCOL:
            raise
        return False
    finally:
        _read_disconnection(client)
    return True


# The engine closes subscriptions when an area stops listening and when it stops.
service.on_close = aclose_all
service.on_area_stop = aclose_area
