"""The one crossing between the window's thread and the engine's: engine bus -> Qt
signals, engine calls for the views (run on the engine's thread, awaited on Qt's)."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QMetaMethod, QObject, Qt, Signal

from desktop.engine_thread import EngineThread
from desktop.forms import FieldChoice, payload_choices
from desktop.remote_engine import CONNECTION, THIS_COMPUTER, RemoteEngine
from desktop.state import PAUSED_AREAS, DesktopState
from engine import bus as topics
from engine import lifecycle as life
from engine.app import Engine, Sample, secret_ref
from engine.areas import Area, AreaSpec
from engine.auth.accounts import Removal
from engine.auth.session import Account
from engine.bus import Message
from engine.catalog.service import Service
from engine.errors import CatalogError, HooklineError
from engine.inspect import Found, ItemVerdict, not_seen
from engine.journal import Journaled
from engine.registry import Registry
from engine.settings import Settings, save_settings
from engine.why import Why

T = TypeVar("T")

#: How long the engine's messages gather before the window's thread is woken (s).
BATCH = 0.05

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
    #: its lifecycle state (engine/lifecycle.py) and when it changes by itself next
    state: str = life.ACTIVE
    next_change: datetime | None = None

    @property
    def summary(self) -> str:
        return f"{self.trigger_label} → {', '.join(self.reaction_labels)}"


def is_once(spec: AreaSpec | None) -> bool:
    """Whether the area fires once at a date and time (the timer's ``at``)."""
    return spec is not None and (spec.trigger.service, spec.trigger.action) == ("timer", "at")


class EngineBridge(QObject):
    """Publishes the engine's happenings as Qt signals and offers its calls to views.

    The engine runs on its own thread (:class:`EngineThread`). Every engine call a view
    makes is carried out there and awaited here; the engine's bus messages are queued
    and handed to this (the window's) thread in batches, one wake-up per batch, so a
    storm of runs costs the engine a list append each and the window one wake-up per
    turn of its loop. Views read settled state (the areas, the settings, the catalog)
    directly: whole objects the engine replaces, never changes in place.

    Args:
        engine: the engine, started on ``thread``.
        thread: the engine's thread.

    Signals:
        runStarted(dict): a run began (run_id, area_id, event_id).
        runFinished(dict): a run ended (run_id, area_id, status, error).
        runsFinished(list): the runs that ended since the last batch (each a dict as
            runFinished's), once per batch: what views listen to, so a storm of runs
            costs the window one call per batch, not one per run and view.
        areaChanged(str, str): area id and what changed (created, updated, removed,
            enabled, disabled).
        areaPaused(str, str, str): area id, name and the reason it paused itself.
        areaState(str, str, str): area id, its new lifecycle state and why it changed.
        notification(str, str, str): title, body, level (info, warning, error).
        triggerHealth(str, str): area id and its trigger's error ('' when recovered).
        accountChanged(str): an account was connected, reconnected, removed or needs
            reconnecting.
        pausedAllChanged(bool): "Pause all" took effect (True) or was undone (False).
        settingsChanged(): new settings were saved and applied (``settings``).
        showRequested(): a second launch asked this app to show its window.
        connection(str, str): an engine on another computer was reached again
            (``connected``) or is being reached again (``reconnecting``), and the words
            to show.
        switchRequested(): another engine was chosen (Connect to another computer…,
            Use this computer's engine): the app reopens on it.
    """

    runStarted = Signal(dict)
    runFinished = Signal(dict)
    runsFinished = Signal(list)
    areaChanged = Signal(str, str)
    areaPaused = Signal(str, str, str)
    areaState = Signal(str, str, str)
    notification = Signal(str, str, str)
    triggerHealth = Signal(str, str)
    accountChanged = Signal(str)
    pausedAllChanged = Signal(bool)
    settingsChanged = Signal()
    showRequested = Signal()
    connection = Signal(str, str)
    switchRequested = Signal()
    #: Internal: the engine's thread has queued messages (emitted there, queued here).
    _wake = Signal()
    #: Internal: a function to call on this thread (from the engine's).
    _invoke = Signal(object)

    def __init__(self, engine: Engine, thread: EngineThread,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.engine_thread = thread
        #: the engine on another computer this app is attached to (None: its own)
        self.remote = engine if isinstance(engine, RemoteEngine) else None
        #: Small things the app remembers between runs (paused-all areas, tray hint).
        self.state = DesktopState(engine.data_dir)
        self._inbox: deque[Message] = deque()
        self._wake_pending = False
        self._last_wake = 0.0  # monotonic time of the last wake-up (engine's thread)
        self._wake.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._invoke.connect(self._call_here, Qt.ConnectionType.QueuedConnection)
        self._unsubscribe: list[Callable[[], None]] = [engine.bus.subscribe("*", self._relay)]

    def close(self) -> None:
        for stop in self._unsubscribe:
            stop()
        self._unsubscribe.clear()
        if self.engine.control is not None:
            self.engine.control.commands.pop("show", None)

    def call(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Run ``coro`` (an engine coroutine) on the engine's thread; await it here."""
        return self.engine_thread.call(coro)

    def in_window(self, function: Callable[..., Any]) -> Callable[..., None]:
        """``function`` made safe to call from the engine's thread: it runs here."""

        def queued(*args: Any) -> None:
            self._invoke.emit(functools.partial(function, *args))

        return queued

    def _call_here(self, function: Callable[[], Any]) -> None:
        function()

    def accept_hand_offs(self) -> None:
        """Answer a second launch's "show" (control channel) with :attr:`showRequested`."""
        if self.engine.control is not None:
            self.engine.control.commands["show"] = self._show_requested

    async def _show_requested(self, _body: dict[str, object]) -> str:
        self.showRequested.emit()  # queued to the window's thread
        return "shown"

    # ----------------------------------------------------------------- bus

    def _relay(self, message: Message) -> None:
        """On the engine's thread: queue, and wake the window's thread once per batch.

        A quiet engine wakes it at once; a busy one at most once per BATCH seconds, so a
        stream of runs wakes the window 20 times a second, not once per run: each
        wake-up makes the two threads hand Python's lock to each other, which slowed
        the engine by a third."""
        self._inbox.append(message)
        if self._wake_pending:
            return
        self._wake_pending = True
        now = time.monotonic()
        wait = self._last_wake + BATCH - now
        loop = self.engine_thread.loop
        if wait > 0 and loop.is_running() and threading.get_ident() == self.engine_thread.ident:
            self._last_wake = now + wait
            loop.call_later(wait, self._wake.emit)
        else:  # quiet until now (or published off the engine's loop): at once
            self._last_wake = now
            self._wake.emit()

    def _deliver(self) -> None:
        """On the window's thread: turn every queued message into its signal."""
        self._wake_pending = False
        inbox = self._inbox
        # runStarted and runFinished have no listener in the app (views take the batch):
        # emitting them per run would cost for nothing
        started = self.isSignalConnected(QMetaMethod.fromSignal(self.runStarted))
        each = self.isSignalConnected(QMetaMethod.fromSignal(self.runFinished))
        finished: list[dict[str, Any]] = []
        while inbox:
            message = inbox.popleft()
            if message.topic == topics.RUN_FINISHED:
                run = dict(message.data)
                finished.append(run)
                if each:
                    self.runFinished.emit(run)
            else:
                self._emit(message, started)
        if finished:
            self.runsFinished.emit(finished)

    def _emit(self, message: Message, started: bool = True) -> None:
        data = message.data
        topic = message.topic
        if topic == topics.RUN_STARTED:
            if started:
                self.runStarted.emit(dict(data))
        elif topic == topics.AREA_CHANGED:
            self.areaChanged.emit(data["area_id"], data["change"])
        elif topic == topics.AREA_PAUSED:
            self.areaPaused.emit(data["area_id"], data["name"], data["reason"])
        elif topic == topics.AREA_STATE:
            self.areaState.emit(data["area_id"], data["to"], data["cause"])
        elif topic == topics.NOTIFICATION:
            self.notification.emit(str(data.get("title", "")), str(data.get("body", "")),
                                   str(data.get("level", "info")))
        elif topic == topics.POLL_FAILING:
            self.triggerHealth.emit(data["area_id"], data["error"])
        elif topic == topics.POLL_RECOVERED:
            self.triggerHealth.emit(data["area_id"], "")
        elif topic in (topics.ACCOUNT_CHANGED, topics.ACCOUNT_NEEDS_RECONNECT):
            self.accountChanged.emit(str(data.get("account_id", "")))
        elif topic == CONNECTION:
            self.connection.emit(data["state"], data["text"])

    # ----------------------------------------------------------------- reads

    @property
    def where(self) -> str:
        """Which engine, in the window's title and the tray ("this computer", a name:
        the one the app follows to, after a takeover on the other computers)."""
        return self.remote.name if self.remote is not None else THIS_COMPUTER

    @property
    def settings(self) -> Settings:
        """The settings in force (replaced whole when new ones are saved)."""
        return self.engine.settings

    @property
    def data_dir(self) -> Path:
        return self.engine.data_dir

    @property
    def registry(self) -> Registry:
        """The catalog of services (read-only use: forms, pickers, labels)."""
        return self.engine.registry

    def webhook_base(self) -> str | None:
        """The base of every webhook address, ``http://host:port/hooks/`` (None: the
        listener is off)."""
        listener = self.engine.listener
        if listener is None or listener.port is None:
            return None
        return listener.url_for("")

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
        """Every area as the automations list shows it (read on the engine's thread)."""
        return await self.call(self._area_rows())

    async def _area_rows(self) -> list[AreaRow]:
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
                state=area.state,
                next_change=self._next_change(area),
            ))
        return rows

    def _next_change(self, area: Area) -> datetime | None:
        """When the area's state changes by itself next (a snooze's end, its window
        opening or closing), without a database read."""
        if area.state == life.SNOOZED:
            return area.snoozed_until
        if area.state == life.ACTIVE and is_once(area.spec):  # it fires, then is done
            scheduler = getattr(self.engine, "scheduler", None)
            return scheduler.next_fire(area.id) if scheduler is not None else None
        if area.state in (life.ACTIVE, life.WAITING) and area.spec.window:
            return area.spec.window.next_change(datetime.now(UTC))
        return None

    def areas(self) -> list[Area]:
        """Every area as the engine holds it now."""
        return self.engine.areas()

    def area_names(self) -> list[tuple[str, str]]:
        """(id, name) of every area, by name (filter menus; no database round trip)."""
        return sorted(((a.id, a.name) for a in self.engine.areas()),
                      key=lambda pair: pair[1].lower())

    def area(self, area_id: str) -> Area:
        """A saved area as the engine holds it (raises NotFound)."""
        return self.engine.area(area_id)

    async def account_choices(self, service_id: str) -> list[tuple[str, str]]:
        """(id, name) of the service's connected accounts, for the editor's picker; for
        a service that acts as a custom OAuth 2 provider's account (HTTP), those
        accounts, named "PROVIDER: NAME"."""
        service = self.registry.services.get(service_id)
        if service is not None and service.custom_accounts and not service.needs_account:
            return [(a.id, f"{a.service_id}: {a.name}") for a in await self.accounts()
                    if a.service_id not in self.registry.services]
        return [(a.id, a.name) for a in await self.accounts(service_id)]

    async def saved_secrets(self, area_id: str) -> set[tuple[str, str]]:
        """(slot, param name) of the area's secret parameters set in the keyring; the
        editor shows those as "saved — leave empty to keep"."""
        area = self.engine.area(area_id)
        found: set[tuple[str, str]] = set()
        for step, is_trigger in area.spec.steps():
            try:
                spec = self.registry.action(step.service, step.action, is_trigger)
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
        return await self.call(self.engine.store.runs(area_id, limit, status))

    async def journaled_event(self, event_id: int) -> dict[str, Any]:
        """A journaled event (its payload, source and time)."""
        return await self.call(self.engine.store.event(event_id))

    async def checks(self, area_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The latest checks of an area's polling trigger, newest first (outcome, items,
        new, error, when the next was due and why then)."""
        return await self.call(self.engine.checks(area_id, limit))

    async def failing_checks(self) -> list[dict[str, Any]]:
        """The areas whose trigger's checks fail now: name, the streak's first error,
        since, failures in a row, the next try and why then."""
        return await self.call(self.engine.failing_checks())

    async def why(self, area_id: str) -> Why:
        """Why the area fired or did not (its state, its trigger's latest checks, times
        or deliveries, its reactions' outcomes), worked out on the engine's thread."""
        return await self.call(self.engine.why(area_id))

    # ----------------------------------------------------------------- actions

    async def save_area(self, spec: AreaSpec, area_id: str | None = None) -> Area:
        if area_id is None:
            return await self.call(self.engine.create_area(spec))
        return await self.call(self.engine.update_area(area_id, spec))

    async def import_areas(self, items: list[Any]) -> list[Area]:
        """Every area of an areas file, or none (ImportRefused lists what is wrong)."""
        return await self.call(self.engine.import_areas(items))

    async def remove_area(self, area_id: str) -> None:
        await self.call(self.engine.remove_area(area_id))

    async def set_enabled(self, area_id: str, enabled: bool) -> Area:
        return await self.call(self.engine.set_enabled(area_id, enabled))

    async def run_now(self, area_id: str) -> list[Journaled]:
        return await self.call(self.engine.run_now(area_id))

    async def test_area(self, spec: AreaSpec, payload: Mapping[str, Any] | None = None,
                        area_id: str | None = None, live: bool = False, *,
                        body: Any = None) -> dict[str, Any]:
        return await self.call(self.engine.test_area(spec, payload, area_id, live=live,
                                                     body=body))

    async def sample_choices(self, spec: AreaSpec, area_id: str | None = None,
                             body: Any = None) -> tuple[Sample, tuple[FieldChoice, ...]]:
        """The event Test would use (a push trigger's last delivery, or ``body``) and
        the fields in it a template may insert, read and flattened on the engine's
        thread (a delivery may be large)."""

        async def read() -> tuple[Sample, tuple[FieldChoice, ...]]:
            sample = await self.engine.sample(spec, area_id, body)
            return sample, payload_choices(sample.payload)

        return await self.call(read())

    async def replay(self, event_id: int, area_id: str | None = None) -> list[Journaled]:
        return await self.call(self.engine.replay(event_id, area_id))

    async def webhook_url(self, area_id: str) -> str | None:
        return await self.call(self.engine.webhook_url(area_id))

    # ----------------------------------------------------------------- life in time

    async def snooze(self, area_id: str, until: datetime,
                     catch_up: bool | None = None) -> Area:
        """Stop the area firing until ``until`` (aware); it comes back by itself."""
        return await self.call(self.engine.snooze(area_id, until, catch_up=catch_up))

    async def wake(self, area_id: str) -> Area:
        """End the area's snooze now."""
        return await self.call(self.engine.wake(area_id))

    async def lifecycle(self, area_id: str, limit: int = 10) -> life.Status:
        """The area's state, its next change by itself and its latest transitions."""
        return await self.call(self.engine.lifecycle(area_id, limit))

    async def snooze_all(self, until: datetime) -> list[str]:
        """Snooze every active area until ``until``; the ids of those snoozed."""
        return await self.call(self._snooze_all(until))

    async def _snooze_all(self, until: datetime) -> list[str]:
        ids = [a.id for a in self.engine.areas() if a.state == life.ACTIVE]
        for area_id in ids:
            await self.engine.snooze(area_id, until)
        return ids

    async def wake_all(self) -> list[str]:
        """Wake every snoozed area; their ids."""
        return await self.call(self._wake_all())

    async def _wake_all(self) -> list[str]:
        ids = [a.id for a in self.engine.areas() if a.state == life.SNOOZED]
        for area_id in ids:
            await self.engine.wake(area_id)
        return ids

    # ----------------------------------------------------------------- accounts

    async def accounts(self, service_id: str | None = None) -> list[Account]:
        """The connected accounts (of ``service_id``), newest state from the store."""
        return await self.call(self.engine.accounts.accounts(service_id))

    def client_missing(self, service: Service) -> str:
        """What to do before ``service`` can sign in (its own OAuth app)."""
        return self.engine.accounts.client_missing(service)

    async def has_oauth_client(self, service_id: str) -> bool:
        try:
            await self.call(self.engine.accounts.oauth_client(service_id))
        except HooklineError:
            return False
        return True

    async def set_oauth_client(self, service_id: str, client_id: str,
                               client_secret: str | None = None) -> None:
        await self.call(self.engine.accounts.set_client(service_id, client_id, client_secret))

    async def connect_account(self, service_id: str,
                              show: Callable[[str, str], None] | None = None) -> Account:
        """Sign in through the browser; ``show(url, redirect)`` is called here (on the
        window's thread) with the address to open if the browser did not."""
        return await self.call(self.engine.accounts.connect(
            service_id, show=self.in_window(show) if show is not None else None))

    async def add_token(self, service_id: str, token: str, name: str | None = None
                        ) -> Account:
        return await self.call(self.engine.accounts.add_token(service_id, token, name))

    async def remove_account(self, account_id: str) -> Removal:
        return await self.call(self.engine.accounts.remove(account_id))

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
        await self.call(self._set_enabled_all(on, False))
        self.pausedAllChanged.emit(True)
        return remembered

    async def resume_all(self) -> list[str]:
        """Turn back on the areas "Pause all" turned off (those that still exist)."""
        remembered = self.state.get(PAUSED_AREAS) or []
        resumed = await self.call(self._set_enabled_all(remembered, True))
        await asyncio.to_thread(self.state.set, PAUSED_AREAS, None)
        self.pausedAllChanged.emit(False)
        return resumed

    async def _set_enabled_all(self, area_ids: list[str], enabled: bool) -> list[str]:
        """On the engine's thread: switch each area that still exists; their ids."""
        done = []
        for area_id in area_ids:
            area = next((a for a in self.engine.areas() if a.id == area_id), None)
            if area is None:
                continue
            if area.spec.enabled != enabled:
                await self.engine.set_enabled(area_id, enabled)
            done.append(area_id)
        return done

    # ----------------------------------------------------------------- settings

    async def save_settings(self, settings: Settings) -> None:
        """Write ``settings`` to the data folder and apply what can change at once."""
        if self.remote is not None:  # kept in the engine's folder, on its computer
            await self.call(self.remote.save_settings(settings))
            self.settingsChanged.emit()
            return
        await asyncio.to_thread(save_settings, self.engine.data_dir, settings)
        await self.apply_settings(settings)

    async def apply_settings(self, settings: Settings) -> None:
        """Use ``settings`` from now on (on the engine's thread), without saving them."""
        await self.engine_thread.run(self.engine.apply_settings, settings)
        self.settingsChanged.emit()

    # ----------------------------------------------------------------- looking

    async def check_now(self, area_id: str) -> list[ItemVerdict]:
        """What each item the area's trigger returns now would do (new, seen, filtered
        out), without firing or saving anything."""
        return await self.call(self.engine.check_now(area_id))

    async def find_item(self, text: str, area_id: str | None = None) -> list[Found]:
        """Whether and when an item (its id, link or part of its title) was seen, and
        the run it started; empty: not seen (``not_seen`` says so)."""
        return await self.call(self.engine.find_item(text, area_id))

    def not_seen(self, text: str) -> str:
        """What to say when ``find_item`` found nothing (what Hookline keeps)."""
        return not_seen(text, self.settings.keep_failed_runs_days)

    async def run(self, run_id: int) -> dict[str, Any]:
        """One run with its automation's name (to open one a search found)."""
        run = await self.call(self.engine.store.run(run_id))
        return {**run, "area_name": dict(self.area_names()).get(run["area_id"])}
