"""What the user opts into to watch Hookline from outside: its events on MQTT, metrics,
runs as OpenTelemetry spans.

Each part listens to the bus only when its setting is on; with every one off the engine
makes none of this (:func:`wanted`), so the hot path costs nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine.areas import Area
from engine.bus import Bus
from engine.errors import HooklineError
from engine.secrets import SecretStore
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.journal import Journaled
    from engine.listener import Listener
    from engine.observe.metrics import Metrics
    from engine.observe.mqtt_events import MqttEvents
    from engine.observe.otel import RunSpans
    from engine.runner import Outcome

log = logging.getLogger(__name__)


def wanted(settings: Settings) -> bool:
    """Whether any observer is on."""
    return settings.events_mqtt_enabled or settings.metrics_enabled or bool(
        settings.otel_endpoint)


class Observers:
    """The observers that are on, fed by the bus and by the engine's two hooks
    (:meth:`accepted` for each batch of events, :meth:`ran` for each run's end).

    Attributes:
        mqtt: publishes Hookline's events (``events_mqtt_enabled``), else None.
        metrics: the Prometheus metrics (``metrics_enabled``), else None.
        spans: exports runs as spans (``otel_endpoint``), else None.
    """

    def __init__(self) -> None:
        self.mqtt: MqttEvents | None = None
        self.metrics: Metrics | None = None
        self.spans: RunSpans | None = None

    @classmethod
    async def start(cls, settings: Settings, bus: Bus, secrets: SecretStore, *,
                    areas: Callable[[], list[Area]], backlog: Callable[[], int],
                    failing: Callable[[], int], listener: Listener | None,
                    installation: str) -> Observers:
        observers = cls()
        if settings.otel_endpoint:
            from engine.observe import otel

            if otel.available():
                observers.spans = otel.RunSpans(installation,
                                                otel.make_exporter(settings.otel_endpoint))
            else:
                log.warning("runs are not sent to %s as OpenTelemetry spans: the "
                            "OpenTelemetry SDK is not installed (%s)",
                            settings.otel_endpoint, otel.INSTALL_HINT)
        if settings.metrics_enabled:
            from engine.observe.metrics import Metrics

            observers.metrics = Metrics(bus, backlog, failing)
            observers.metrics.start()
            if listener is not None:
                public = urlsplit(settings.public_url).netloc.lower() or None
                listener.metrics = observers.metrics.handler(lambda: public)
        if settings.events_mqtt_enabled and settings.events_mqtt_host:
            from engine.observe.mqtt_events import PASSWORD_REF, MqttEvents

            try:
                password = await asyncio.to_thread(secrets.get, PASSWORD_REF)
            except HooklineError as exc:  # says which secret, never its value
                log.warning("the MQTT broker's password could not be read: %s", exc)
                password = None
            observers.mqtt = MqttEvents(settings, password, bus, areas)
            observers.mqtt.start()
        elif settings.events_mqtt_enabled:
            log.warning("sharing Hookline's events over MQTT is on but no broker address "
                        "is set: set one in Settings")
        return observers

    def accepted(self, events: Sequence[Journaled]) -> None:
        if self.metrics is not None:
            self.metrics.accepted([event.source for event in events])

    def ran(self, area: Area, event: Journaled, outcome: Outcome, began: float) -> None:
        """A run ended (not saved yet); ``began`` is its start (``time.time()``)."""
        ended = time.time()
        if self.spans is not None:
            self.spans.ran(area.id, area.name, (event.id, event.source, event.payload),
                           outcome.run_id, outcome.status, outcome.error, outcome.steps,
                           began, ended)
        if self.metrics is not None:
            self.metrics.ran(ended - began, outcome.steps)
        if self.mqtt is not None:
            self.mqtt.ran(outcome.run_id, datetime.fromtimestamp(began, UTC),
                          datetime.fromtimestamp(ended, UTC))

    async def aclose(self) -> None:
        if self.metrics is not None:
            self.metrics.aclose()
        if self.mqtt is not None:
            await self.mqtt.aclose()
        if self.spans is not None:  # what is batched goes out (the exporter's timeout)
            await asyncio.to_thread(self.spans.close)


__all__: list[Any] = ["Observers", "wanted"]
