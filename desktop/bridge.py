"""The one bridge between Qt and the engine: engine bus -> Qt signals, engine calls
for the views (all on the shared qasync loop, no threads)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.state import PAUSED_AREAS, DesktopState
from engine import bus as topics
from engine.app import Engine, secret_ref
from engine.areas import Area, AreaSpec
from engine.bus import Message
from engine.errors import CatalogError
from engine.journal import Journaled
from engine.registry import Registry
from engine.settings import Settings, save_settings

#: Health of an area, as the automations list shows it.
HEALTHS = ("working", "waiting", "failing", "paused", "off", "needs account")


@dataclass(frozen=True)
class AreaRow:
    """What the automations list needs to show about one area."""

    id: str
    name: str
    enabled: bool
    health: str
    trigger_service: str
    trigger_label: str
    reaction_services: tuple[str, ...]
    reaction_labels: tuple[str, ...]
    last_run_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    paused_reason: str | None = None
    has_webhook: bool = False
    spec: AreaSpec | None = field(default=None, compare=False)

    @property
    def summary(self) -> str:
        return f"{self.trigger_label} → {', '.join(self.reaction_labels)}"


class EngineBridge(QObject):
    """Publishes the engine's happenings as Qt signals and offers its calls to views.

    Args:
        engine: a started engine.

    Signals:
        runStarted(dict): a run began (run_id, area_id, event_id).
        runFinished(dict): a run ended (run_id, area_id, status, error).
        areaChanged(str, str): area id and what changed (created, updated, removed,
            enabled, disabled).
        areaPaused(str, str, str): area id, name and the reason it paused itself.
        notification(str, str, str): title, body, level (info, warning, error).
        triggerHealth(str, str): area id and its trigger's error ('' when recovered).
        accountChanged(str): an account was connected, reconnected, removed or needs
            reconnecting.
        pausedAllChanged(bool): "Pause all" took effect (True) or was undone (False).
        settingsChanged(): new settings were saved and applied (``engine.settings``).
    """

    runStarted = Signal(dict)
    runFinished = Signal(dict)
    areaChanged = Signal(str, str)
    areaPaused = Signal(str, str, str)
    notification = Signal(str, str, str)
    triggerHealth = Signal(str, str)
    accountChanged = Signal(str)
    pausedAllChanged = Signal(bool)
    settingsChanged = Signal()

    def __init__(self, engine: Engine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        #: Small things the app remembers between runs (paused-all areas, tray hint).
        self.state = DesktopState(engine.data_dir)
        self._unsubscribe: list[Callable[[], None]] = [engine.bus.subscribe("*", self._relay)]

    def close(self) -> None:
        for stop in self._unsubscribe:
            stop()
        self._unsubscribe.clear()

    def _relay(self, message: Message) -> None:
        data = message.data
        topic = message.topic
        if topic == topics.RUN_STARTED:
            self.runStarted.emit(dict(data))
        elif topic == topics.RUN_FINISHED:
            self.runFinished.emit(dict(data))
        elif topic == topics.AREA_CHANGED:
            self.areaChanged.emit(data["area_id"], data["change"])
        elif topic == topics.AREA_PAUSED:
            self.areaPaused.emit(data["area_id"], data["name"], data["reason"])
        elif topic == topics.NOTIFICATION:
            self.notification.emit(str(data.get("title", "")), str(data.get("body", "")),
                                   str(data.get("level", "info")))
        elif topic == topics.POLL_FAILING:
            self.triggerHealth.emit(data["area_id"], data["error"])
        elif topic == topics.POLL_RECOVERED:
            self.triggerHealth.emit(data["area_id"], "")
        elif topic in (topics.ACCOUNT_CHANGED, topics.ACCOUNT_NEEDS_RECONNECT):
            self.accountChanged.emit(str(data.get("account_id", "")))

    # ----------------------------------------------------------------- reads

    def label(self, service_id: str, action: str, reaction: bool) -> str:
        registry = self.engine.registry
        try:
            spec = (registry.reaction(service_id, action) if reaction
                    else registry.trigger(service_id, action))
            return f"{registry.service(service_id).name}: {spec.name}"
        except Exception:
            return f"{service_id}.{action} (missing service)"

    def health(self, area: Area, last_status: str | None,
               reconnect: frozenset[str] = frozenset()) -> str:
        """working / waiting / failing / paused / off / needs account (``reconnect``:
        ids of accounts that must be connected again)."""
        if area.paused_reason:
            return "paused"
        if not area.spec.enabled:
            return "off"
        if any(step.account in reconnect for step, _ in area.spec.steps() if step.account):
            return "needs account"
        if self.engine.poller.failing(area.id) or last_status == "failed":
            return "failing"
        return "working" if last_status else "waiting"

    async def area_rows(self) -> list[AreaRow]:
        last = await self.engine.store.last_runs()
        reconnect = frozenset(a.id for a in await self.engine.accounts.accounts()
                              if a.status != "ok")
        rows = []
        for area in self.engine.areas():
            run = last.get(area.id)
            status = run["status"] if run else None
            rows.append(AreaRow(
                id=area.id, name=area.name, enabled=area.spec.enabled,
                health=self.health(area, status, reconnect),
                trigger_service=area.spec.trigger.service,
                trigger_label=self.label(area.spec.trigger.service, area.spec.trigger.action,
                                         False),
                reaction_services=tuple(r.service for r in area.spec.reactions),
                reaction_labels=tuple(self.label(r.service, r.action, True)
                                      for r in area.spec.reactions),
                last_run_at=run["started_at"] if run else None,
                last_status=status,
                last_error=(run["error"] if run else None) or self.engine.poller.failing(area.id),
                paused_reason=area.paused_reason,
                has_webhook=area.webhook_hash is not None,
                spec=area.spec,
            ))
        return rows

    def area_names(self) -> list[tuple[str, str]]:
        """(id, name) of every area, by name (filter menus; no database round trip)."""
        return sorted(((a.id, a.name) for a in self.engine.areas()),
                      key=lambda pair: pair[1].lower())

    @property
    def registry(self) -> Registry:
        """The catalog of services (read-only use: forms, pickers, labels)."""
        return self.engine.registry

    def area(self, area_id: str) -> Area:
        """A saved area as the engine holds it (raises NotFound)."""
        return self.engine.area(area_id)

    async def account_choices(self, service_id: str) -> list[tuple[str, str]]:
        """(id, name) of the service's connected accounts, for the editor's picker."""
        accounts = getattr(self.engine, "accounts", None)
        if accounts is None:
            return []
        return [(a.id, a.name) for a in await accounts.accounts(service_id)]

    async def saved_secrets(self, area_id: str) -> set[tuple[str, str]]:
        """(slot, param name) of the area's secret parameters set in the keyring; the
        editor shows those as "saved — leave empty to keep"."""
        area = self.engine.area(area_id)
        found: set[tuple[str, str]] = set()
        for step, is_trigger in area.spec.steps():
            try:
                spec = (self.registry.trigger(step.service, step.action) if is_trigger
                        else self.registry.reaction(step.service, step.action))
            except CatalogError:
                continue
            slot = step.slot(is_trigger)
            for param in spec.params:
                if not param.is_secret:
                    continue
                value = await asyncio.to_thread(self.engine.secrets.get,
                                                secret_ref(area_id, slot, param.name))
                if value:
                    found.add((slot, param.name))
        return found

    async def runs(self, area_id: str | None = None, status: str | None = None,
                   limit: int = 200) -> list[dict[str, Any]]:
        return await self.engine.store.runs(area_id, limit, status)

    # ----------------------------------------------------------------- actions

    async def save_area(self, spec: AreaSpec, area_id: str | None = None) -> Area:
        if area_id is None:
            return await self.engine.create_area(spec)
        return await self.engine.update_area(area_id, spec)

    async def remove_area(self, area_id: str) -> None:
        await self.engine.remove_area(area_id)

    async def set_enabled(self, area_id: str, enabled: bool) -> Area:
        return await self.engine.set_enabled(area_id, enabled)

    async def run_now(self, area_id: str) -> list[Journaled]:
        return await self.engine.run_now(area_id)

    async def test_area(self, spec: AreaSpec, payload: Mapping[str, Any] | None = None,
                        area_id: str | None = None, live: bool = False) -> dict[str, Any]:
        return await self.engine.test_area(spec, payload, area_id, live=live)

    async def replay(self, event_id: int, area_id: str | None = None) -> list[Journaled]:
        return await self.engine.replay(event_id, area_id)

    async def webhook_url(self, area_id: str) -> str | None:
        return await self.engine.webhook_url(area_id)

    # ----------------------------------------------------------------- pause all

    def paused_all(self) -> bool:
        """Whether "Pause all" is in effect (remembered across restarts)."""
        return self.state.get(PAUSED_AREAS) is not None

    async def pause_all(self) -> list[str]:
        """Turn off every area that is on, remembering which, so :meth:`resume_all`
        turns exactly those back on. Returns the ids it remembers."""
        on = [a.id for a in self.engine.areas() if a.spec.enabled]
        remembered = list(dict.fromkeys([*(self.state.get(PAUSED_AREAS) or []), *on]))
        # Remember first: if the app stops half-way, resume still knows every one.
        await asyncio.to_thread(self.state.set, PAUSED_AREAS, remembered)
        for area_id in on:
            await self.engine.set_enabled(area_id, False)
        self.pausedAllChanged.emit(True)
        return remembered

    async def resume_all(self) -> list[str]:
        """Turn back on the areas "Pause all" turned off (those that still exist)."""
        remembered = self.state.get(PAUSED_AREAS) or []
        resumed = []
        for area_id in remembered:
            area = next((a for a in self.engine.areas() if a.id == area_id), None)
            if area is not None:
                if not area.spec.enabled:
                    await self.engine.set_enabled(area_id, True)
                resumed.append(area_id)
        await asyncio.to_thread(self.state.set, PAUSED_AREAS, None)
        self.pausedAllChanged.emit(False)
        return resumed

    # ----------------------------------------------------------------- settings

    async def save_settings(self, settings: Settings) -> None:
        """Write ``settings`` to the data folder and apply what can change at once."""
        await asyncio.to_thread(save_settings, self.engine.data_dir, settings)
        self.engine.apply_settings(settings)
        self.settingsChanged.emit()
