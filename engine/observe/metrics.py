"""Prometheus metrics of the engine, answered at ``/metrics`` on the local listener.

Names (all ``hookline_``): ``events_accepted_total{kind}`` (webhook, poll, schedule,
manual, replay), ``runs_total{status}``, ``run_duration_seconds``,
``reaction_duration_seconds{service,reaction}`` (each attempt), ``poll_failing_total``
(failure streaks begun), ``polls_failing`` (areas whose checks fail now) and
``backlog`` (events waiting to run). A registry of Hookline's own, not the process's
default one.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from engine import bus as topics
from engine.bus import Bus, Message

log = logging.getLogger(__name__)

#: Headers a reverse proxy or tunnel adds: such a request is not from this computer.
FORWARDED = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")
#: Seconds: a webhook's reaction takes milliseconds, a mail or an upload seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def from_this_computer(request: web.Request, public_host: str | None) -> bool:
    """Whether ``request`` came from a loopback address, directly (not forwarded by a
    proxy or tunnel on this computer, which would make the world look local)."""
    try:
        loopback = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        loopback = False
    forwarded = any(name in request.headers for name in FORWARDED)
    through_public = public_host is not None and request.host.lower() == public_host
    return loopback and not forwarded and not through_public


class Metrics:
    """The engine's counters, fed by the bus and by the engine's run hook.

    Args:
        bus: the engine's bus (runs' statuses, failing checks).
        backlog: the number of events waiting to run, read at each scrape.
        failing: the number of areas whose checks fail now, read at each scrape.

    Attributes:
        registry: the registry ``/metrics`` answers with.
    """

    def __init__(self, bus: Bus, backlog: Callable[[], int],
                 failing: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("hookline_events_accepted", "Events accepted (journaled), "
                              "by trigger kind.", ["kind"], registry=self.registry)
        self.runs = Counter("hookline_runs", "Runs finished, by status.", ["status"],
                            registry=self.registry)
        self.run_seconds = Histogram("hookline_run_duration_seconds",
                                     "How long runs took, start to end.",
                                     buckets=BUCKETS, registry=self.registry)
        self.reaction_seconds = Histogram(
            "hookline_reaction_duration_seconds", "How long each reaction call took.",
            ["service", "reaction"], buckets=BUCKETS, registry=self.registry)
        self.poll_failing = Counter("hookline_poll_failing", "Failure streaks of "
                                    "checks begun (one per streak, not per check).",
                                    registry=self.registry)
        Gauge("hookline_polls_failing", "Areas whose checks fail now.",
              registry=self.registry).set_function(failing)
        Gauge("hookline_backlog", "Events accepted and waiting to run.",
              registry=self.registry).set_function(backlog)
        self._bus = bus
        self._stops: list[Callable[[], None]] = []

    def start(self) -> None:
        self._stops = [self._bus.subscribe(topics.RUN_FINISHED, self._finished),
                       self._bus.subscribe(topics.POLL_FAILING, self._failing)]

    def aclose(self) -> None:
        for stop in self._stops:
            stop()
        self._stops = []

    def accepted(self, kinds: Sequence[str]) -> None:
        for kind in kinds:
            self.events.labels(kind).inc()

    def ran(self, seconds: float, steps: Sequence[dict[str, Any]]) -> None:
        """A run ended after ``seconds``; each of its reactions' attempts is timed."""
        self.run_seconds.observe(seconds)
        for step in steps:
            for attempt in step.get("attempts") or ():
                if "seconds" in attempt:
                    self.reaction_seconds.labels(step["service"], step["reaction"]).observe(
                        attempt["seconds"])

    def _finished(self, message: Message) -> None:
        self.runs.labels(message.data["status"]).inc()

    def _failing(self, _message: Message) -> None:
        self.poll_failing.inc()

    def handler(self, public_host: Callable[[], str | None]
                ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The aiohttp handler of ``/metrics``: answers this computer only (403 else)."""

        async def metrics(request: web.Request) -> web.StreamResponse:
            if not from_this_computer(request, public_host()):
                return web.json_response(
                    {"error": "metrics are answered only to this computer (loopback), "
                              "not through a proxy or tunnel"}, status=403)
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        return metrics
