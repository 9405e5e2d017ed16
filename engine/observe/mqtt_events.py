"""Hookline's own events as JSON on an MQTT broker, for Home Assistant or Node-RED.

Topics (``<prefix>`` is the setting, ``hookline`` by default; QoS 1, not retained):

- ``<prefix>/<area>/run``: a run started (``status: running``) and finished
  ``{"area", "area_id", "run_id", "event_id", "status", "started_at", "finished_at",
  "error"}``
- ``<prefix>/<area>/paused``: the area paused itself ``{"area", "area_id", "reason",
  "at"}``
- ``<prefix>/<area>/poll``: its checks fail or recovered ``{"area", "area_id",
  "state": "failing"|"recovered", "error", "at"}``
- ``<prefix>/account/<service>/<name>/needs_reconnect``: ``{"service", "name",
  "account_id", "error", "at"}``
- ``<prefix>/status``: ``online``, or ``offline`` (retained; the broker says offline
  for us if the connection dies: the Last Will).

Publishing never holds up the engine: bus handlers only queue (the oldest dropped past
:data:`QUEUE_SIZE`, counted in one log line), one task sends, reconnecting with backoff;
a broker that is down is one warning per streak.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from engine import bus as topics
from engine.areas import Area
from engine.bus import Bus, Message
from engine.observe.slugs import area_slugs, slugify, topic_prefix
from engine.settings import Settings

log = logging.getLogger(__name__)

#: Keyring reference of the broker's password (never in the settings file).
PASSWORD_REF = "settings/events_mqtt/password"  # noqa: S105 - a keyring name
#: Messages waiting for the broker at most; older ones are dropped past it.
QUEUE_SIZE = 1000
#: Reconnecting waits this long at first, doubling up to :data:`MAX_BACKOFF`.
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
#: A stop gives queued messages and the "offline" status this long to go out.
CLOSE_GRACE = 2.0

_WATCHED = (topics.RUN_STARTED, topics.RUN_FINISHED, topics.AREA_PAUSED,
            topics.AREA_CHANGED, topics.POLL_FAILING, topics.POLL_RECOVERED,
            topics.ACCOUNT_NEEDS_RECONNECT)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class MqttEvents:
    """Publishes the bus's runs, pauses, failing checks and accounts to a broker.

    Args:
        settings: the ``events_mqtt_*`` settings (host, port, user, TLS, prefix).
        password: the broker's password (from the keyring), or None.
        bus: the engine's bus.
        areas: the engine's areas now (their names make the topics).

    Attributes:
        dropped: messages dropped since the last line that said so.
        connected: set while connected to the broker.
    """

    def __init__(self, settings: Settings, password: str | None, bus: Bus,
                 areas: Callable[[], list[Area]]) -> None:
        self._settings = settings
        self._password = password
        self._bus = bus
        self._areas = areas
        self._prefix = topic_prefix(settings.events_mqtt_prefix)
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._stops: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._slugs: dict[str, str] | None = None
        self._names: dict[str, str] = {}
        #: run id -> (started, finished) as the engine saw them (``ran``)
        self._times: dict[int, tuple[datetime, datetime]] = {}
        self.dropped = 0
        self.connected = asyncio.Event()
        self._closing = False

    @property
    def status_topic(self) -> str:
        return f"{self._prefix}/status"

    def start(self) -> None:
        """Listen to the bus and start sending."""
        handlers: dict[str, Callable[[Message], None]] = {
            topics.RUN_STARTED: self._run, topics.RUN_FINISHED: self._run,
            topics.AREA_PAUSED: self._paused, topics.AREA_CHANGED: self._area_changed,
            topics.POLL_FAILING: self._poll, topics.POLL_RECOVERED: self._poll,
            topics.ACCOUNT_NEEDS_RECONNECT: self._account,
        }
        assert set(handlers) == set(_WATCHED)
        self._stops = [self._bus.subscribe(topic, handler)
                       for topic, handler in handlers.items()]
        self._task = asyncio.create_task(self._send(), name="mqtt-events")

    def ran(self, run_id: int | None, started: datetime, finished: datetime) -> None:
        """When a run really started and ended (its bus messages come once saved)."""
        if run_id is not None:
            self._times[run_id] = (started, finished)
            if len(self._times) > QUEUE_SIZE:  # a run whose message never came
                del self._times[next(iter(self._times))]

    async def aclose(self) -> None:
        """Stop listening; send what is queued and ``offline`` (briefly), then close."""
        for stop in self._stops:
            stop()
        self._stops = []
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), CLOSE_GRACE)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.dropped:
            self._say_dropped()

    # ----------------------------------------------------------------- bus handlers

    def _slug(self, area_id: str) -> str:
        if self._slugs is None:
            areas = self._areas()
            self._slugs = area_slugs(areas)
            self._names = {area.id: area.name for area in areas}
        return self._slugs.get(area_id) or f"area-{area_id[:8]}"

    def _area_changed(self, message: Message) -> None:
        if message.data.get("change") in ("created", "updated", "removed"):
            self._slugs = None  # names may have changed: worked out again when needed

    def _area(self, area_id: str) -> dict[str, Any]:
        slug = self._slug(area_id)
        return {"area": self._names.get(area_id), "area_id": area_id, "_slug": slug}

    def _run(self, message: Message) -> None:
        data = message.data
        run_id = data["run_id"]
        finished = message.topic == topics.RUN_FINISHED
        times = self._times.pop(run_id, None) if finished else self._times.get(run_id)
        now = datetime.now(UTC)
        if finished:  # a run the engine did not time (a missed timer): it ended now
            started, ended = times or (None, now)
        else:  # its start is published once saved: at most a moment after it began
            started, ended = (times[0] if times else now), None
        self._put(data["area_id"], "run", {
            "run_id": run_id, "event_id": data.get("event_id"),
            "status": data["status"] if finished else "running",
            "started_at": started.isoformat() if started else None,
            "finished_at": ended.isoformat() if ended else None,
            "error": data.get("error") if finished else None})

    def _paused(self, message: Message) -> None:
        self._put(message.data["area_id"], "paused",
                  {"reason": message.data.get("reason"), "at": _now()})

    def _poll(self, message: Message) -> None:
        failing = message.topic == topics.POLL_FAILING
        self._put(message.data["area_id"], "poll", {
            "state": "failing" if failing else "recovered",
            "error": message.data.get("error") if failing else None, "at": _now()})

    def _account(self, message: Message) -> None:
        data = message.data
        topic = (f"{self._prefix}/account/{slugify(data['service_id'], 'service')}/"
                 f"{slugify(data['name'], 'account')}/needs_reconnect")
        self._queue_message(topic, {"service": data["service_id"], "name": data["name"],
                                    "account_id": data["account_id"],
                                    "error": data.get("error"), "at": _now()})

    def _put(self, area_id: str, kind: str, body: dict[str, Any]) -> None:
        area = self._area(area_id)
        slug = area.pop("_slug")
        self._queue_message(f"{self._prefix}/{slug}/{kind}", {**area, **body})

    def _queue_message(self, topic: str, body: dict[str, Any]) -> None:
        if len(self._queue) >= QUEUE_SIZE:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((topic, json.dumps(body, default=str).encode()))
        self._wake.set()

    def _say_dropped(self) -> None:
        log.warning("%d Hookline event(s) were not sent to the MQTT broker: more than %d "
                    "waited for it", self.dropped, QUEUE_SIZE)
        self.dropped = 0

    # ----------------------------------------------------------------- sending

    def _client(self) -> aiomqtt.Client:
        settings = self._settings
        return aiomqtt.Client(
            settings.events_mqtt_host, settings.events_mqtt_port,
            username=settings.events_mqtt_username or None, password=self._password,
            will=aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            tls_context=ssl.create_default_context() if settings.events_mqtt_tls else None,
            timeout=5, logger=logging.getLogger(f"{__name__}.client"))

    async def _send(self) -> None:
        """Connect, say online, send the queue in order; on a failure wait and again."""
        backoff = FIRST_BACKOFF
        down = False
        where = f"{self._settings.events_mqtt_host}:{self._settings.events_mqtt_port}"
        while True:
            try:
                async with self._client() as client:
                    await client.publish(self.status_topic, b"online", qos=1, retain=True)
                    self.connected.set()
                    if down:
                        log.info("sending Hookline's events to the MQTT broker %s again",
                                 where)
                    down, backoff = False, FIRST_BACKOFF
                    while True:
                        while self._queue:
                            topic, payload = self._queue[0]
                            await client.publish(topic, payload, qos=1)
                            if self._queue and self._queue[0][1] is payload:
                                self._queue.popleft()
                        if self.dropped:
                            self._say_dropped()
                        if self._closing:
                            await client.publish(self.status_topic, b"offline", qos=1,
                                                 retain=True)
                            return
                        self._wake.clear()
                        await self._wake.wait()
            except (aiomqtt.MqttError, OSError) as exc:  # refused, unreachable, TLS
                self.connected.clear()
                if self._closing:
                    return
                if not down:
                    down = True
                    log.warning("cannot send Hookline's events to the MQTT broker %s: %s; "
                                "trying again in the background", where, exc)
                else:
                    log.debug("MQTT broker %s still unreachable: %s", where, exc)
                try:  # a stop meanwhile ends the wait
                    await asyncio.wait_for(self._closed(), backoff)
                    return
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _closed(self) -> None:
        while not self._closing:
            self._wake.clear()
            await self._wake.wait()
