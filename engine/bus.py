"""A small in-process event bus: the engine publishes, the GUI and CLI listen."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Topics the engine publishes (payload keys in brackets).
RUN_STARTED = "run.started"  # [run_id, area_id, event_id]
RUN_FINISHED = "run.finished"  # [run_id, area_id, status, error]
AREA_PAUSED = "area.paused"  # [area_id, name, reason]
AREA_STATE = "area.state"  # [area_id, name, from, to, cause, at] (engine/lifecycle.py)
AREA_CHANGED = "area.changed"  # [area_id, change: created|updated|removed|enabled|disabled]
EVENT_RECEIVED = "event.received"  # [event_id, area_id, source]
NOTIFICATION = "notification"  # [title, body, level]
SCHEDULE_MISSED = "schedule.missed"  # [area_id, missed, policy]
POLL_FAILING = "poll.failing"  # [area_id, error]
POLL_RECOVERED = "poll.recovered"  # [area_id]
ACCOUNT_CHANGED = "account.changed"  # [account_id, service_id, name, change]
ACCOUNT_NEEDS_RECONNECT = "account.needs_reconnect"  # [account_id, service_id, name, error]


@dataclass(frozen=True)
class Message:
    """One published happening."""

    topic: str
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Message], None]


class Bus:
    """Publish/subscribe by topic; ``"*"`` hears everything.

    Listeners are called synchronously, in order; one that raises is logged and
    the others still hear the message.
    """

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def subscribe(self, topic: str, listener: Listener) -> Callable[[], None]:
        """Listen to ``topic``; returns the function that stops listening."""
        self._listeners.setdefault(topic, []).append(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(topic, [])
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    def publish(self, topic: str, **data: Any) -> None:
        message = Message(topic, data)
        for listener in [*self._listeners.get(topic, ()), *self._listeners.get("*", ())]:
            try:
                listener(message)
            except Exception:
                log.exception("listener of %s failed", topic)
