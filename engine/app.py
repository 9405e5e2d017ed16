"""The engine: owns storage, scheduler, poller, listener, dispatcher and runner."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets as _secrets
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import bindparam, update

from engine import bus as topics
from engine import inspect as looking
from engine import lifecycle as life
from engine import why as explaining
from engine.areas import Area, AreaSpec, Checked, Step, check_area
from engine.auth.accounts import Accounts
from engine.auth.session import AccountSession
from engine.backup import (
    BackupError,
    backup_before_migration,
    daily_backup,
    restore_pending,
    sqlite_path,
)
from engine.bus import Bus, Message
from engine.catalog.context import PollContext, TriggerContext
from engine.catalog.params import format_duration
from engine.catalog.service import Item, PollResult, TriggerKind, TriggerSpec
from engine.control import ControlServer
from engine.dispatcher import Dispatcher
from engine.errors import (
    ConfigError,
    HooklineError,
    ImportRefused,
    LifecycleError,
    StorageError,
)
from engine.http import HttpClient, OutboundGuard
from engine.journal import Journal, Journaled, NewEvent, RunRecord
from engine.listener import Listener, Route, token_hash
from engine.lock import DataDirLock
from engine.observe import Observers, wanted
from engine.paths import data_dir as default_data_dir
from engine.poller import Poller
from engine.registry import Registry
from engine.remote.peer import Puller
from engine.remote.site import RemoteSite
from engine.remote.site import control_commands as remote_commands
from engine.runner import REDACTED, Runner, SecretResolver, template_context
from engine.scheduler import Scheduler, missed_between
from engine.secrets import SecretStore, open_secret_store
from engine.settings import Settings, load_settings
from engine.standby import (
    ACTIVE,
    CHECK_EVERY,
    ENGINE_ROLE,
    FENCED,
    FENCED_CLOSE,
    STANDBY,
    STANDBY_REASON,
    Lease,
    LeaseLost,
)
from engine.standby import wanted as lease_wanted
from engine.storage.db import database_url, migrate, open_async
from engine.storage.ledger import LEDGER_DIR, Ledger, TableLedger
from engine.storage.schema import area_transitions, utcnow
from engine.storage.schema import areas as areas_table
from engine.storage.writer import Statement, Writer
from engine.store import POLLS_PER_AREA, NotFound, Store
from engine.trace import installation_id

log = logging.getLogger(__name__)

WEBHOOK_SLOT = "webhook"
#: A stop slower than this says in the log where its time went.
SLOW_STOP = 3.0
RETENTION_EVERY = 6 * 3600.0
BACKUP_CHECK_EVERY = 3600.0


def secret_ref(area_id: str, slot: str, name: str) -> str:
    return f"area/{area_id}/{slot}/{name}"


#: The field of a push trigger's payload that a pasted sample body stands in for.
BODY_FIELDS = ("body", "payload")


@dataclass(frozen=True)
class Sample:
    """An event to try an area with (Test, Run now), and where it came from.

    Attributes:
        payload: the trigger's payload.
        source: ``trigger`` (a poll's newest item, a timer firing now), ``delivery``
            (the area's last real delivery), ``pasted`` (a body the user gave) or
            ``example`` (the trigger's example values).
        note: what to tell the user about it (None: nothing to say).
    """

    payload: dict[str, Any]
    source: str
    note: str | None = None


class Engine:
    """One automation engine on one data folder.

    Args:
        data_dir: the data folder (default: ``HOOKLINE_DATA_DIR`` or the OS's place).
        settings: overrides the saved settings (tests, benchmarks).
        listen: start the webhook listener (default: the setting).
        offline: open storage only, for one-shot commands: no triggers listen, nothing
            scheduled, no recovery (a later full start does that).
    """

    def __init__(self, data_dir: Path | None = None, *, settings: Settings | None = None,
                 registry: Registry | None = None, secrets: SecretStore | None = None,
                 listen: bool | None = None, offline: bool = False) -> None:
        self.data_dir = data_dir or default_data_dir()
        self.settings = settings or load_settings(self.data_dir)
        self.registry = registry or Registry.load()
        self.secrets = secrets or open_secret_store(
            self.data_dir, file_fallback=self.settings.secrets_file_fallback)
        self.bus = Bus()
        self.offline = offline
        self._listen = (self.settings.listener_enabled if listen is None else listen
                        ) and not offline
        self._lock = DataDirLock(self.data_dir)
        self.url = database_url(self.data_dir, self.settings.database_url)
        self.http = HttpClient(OutboundGuard(self.settings.allow_internal_targets))
        self._areas: dict[str, Area] = {}
        self._secret_cache: dict[str, str | None] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.listener: Listener | None = None
        #: the backup restored at this start (asked for in Settings), if any
        self.restored: Path | None = None
        #: why the restore asked for could not be done at this start (None: none failed)
        self.restore_failed: str | None = None
        self.control: ControlServer | None = None
        #: the control channel's TLS site for paired computers, when it is on
        self.remote: RemoteSite | None = None
        self.started = False
        self._timers_failing = False  # a timer could not be journaled; said once
        #: why runs wait for the disk (None: they do not): the listener refuses meanwhile
        self.disk_trouble: str | None = None
        #: MQTT events, metrics and spans (engine/observe), when one is on
        self.observe: Observers | None = None
        #: on PostgreSQL, the lock that makes this engine the active one (engine/standby.py)
        self.lease: Lease | None = None
        #: active | standby (another engine holds the database's lease) | fenced (the
        #: lease was lost: nothing fires until the engine starts again)
        self.role = ACTIVE
        #: set when the lease is lost: `hookline serve` then starts again, as a standby
        self.stepped_down = asyncio.Event()
        #: seconds to stand by before the first try of the lease (after stepping down)
        self.stand_by_first = 0.0
        #: whether whoever runs this engine stops it and starts it again when
        #: ``restart_wanted`` is set: only `hookline serve` (the desktop app's own engine
        #: is not restarted by a call from another computer)
        self.restartable = False
        #: set to be started again now (a restore asked for from another computer, which
        #: the next start carries out): `hookline serve` then stops it as a Ctrl+C would
        self.restart_wanted = asyncio.Event()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Lock the folder, migrate, recover unfinished events, activate areas.

        On PostgreSQL, while another engine holds the database's lease, this engine
        stands by first (its listener answers 503, its control channel says so) and
        returns once it has taken over (engine/standby.py)."""
        self._lock.acquire()
        try:
            if not self.offline:
                await self._restore_requested()
                await backup_before_migration(self.url, self.data_dir)
            await migrate(self.url)
            self.db = open_async(self.url)
            self.store = Store(self.db, installation_id(self.data_dir))  # for trace ids
            self.accounts = Accounts(self.db, self.secrets, self.http, self.bus, self.registry)
            if not self.offline and lease_wanted(self.url):
                await self._take_lease()  # the ids below are counted once it is ours
            self.writer = Writer(self.url)
            self.journal = Journal(self.writer, self.db.dialect.name, self._ledger())
            self.journal.replay()  # before the writer counts run ids
            self.writer.start()
            self.journal.ledger.open()
            self.runner = Runner(self.registry, self.settings, self.http, self.bus,
                                 self.journal, self._resolve_secret,
                                 sessions=self.accounts.session,
                                 installation=self.store.installation or "")
            self.dispatcher = Dispatcher(self._process)
            self.scheduler = Scheduler(self._fire_schedule)
            self.poller = Poller(self.store, self.journal, self.http, self.settings, self.bus,
                                 self._dispatch, self._delay_poll, self.scheduler.next_fire,
                                 self.scheduler.poll_soon)
            self._set_streak = update(areas_table).where(
                areas_table.c.id == bindparam("aid")).values(
                failure_streak=bindparam("streak"), paused_reason=bindparam("reason"))
            self._set_state = update(areas_table).where(
                areas_table.c.id == bindparam("aid")).values(state=bindparam("new_state"))
            if self._listen and self.listener is None:  # a standby's is up already
                await self._start_listener()
            for area in await self.store.areas():
                self._areas[area.id] = area
            if not self.offline and wanted(self.settings):  # opt-in: off, nothing listens
                self.observe = await Observers.start(
                    self.settings, self.bus, self.secrets, areas=self.areas,
                    backlog=lambda: self.dispatcher.backlog,
                    failing=lambda: len(self.poller.streaks()), listener=self.listener,
                    installation=self.store.installation or "")
            if not self.offline:
                self.scheduler.start()
                await self._recover()
                await self._apply_due_changes()
                for area in self._areas.values():
                    if area.active:
                        await self._activate(area, starting=True)
                if self.listener is not None:
                    self.listener.ready = True  # from now on an unknown address is dead
                self.scheduler.add_job(self._prune, RETENTION_EVERY, "retention")
                self.scheduler.add_job(self._backup, BACKUP_CHECK_EVERY, "backup")
                self.control = ControlServer(self)
                self.control.commands["accounts.changed"] = self._accounts_changed
                self.control.commands.update(looking.control_commands(self))
                self.control.commands.update(explaining.control_commands(self))
                await self.control.start()
                self.control.commands.update(remote_commands(self))
                if self.settings.remote_enabled:
                    self.remote = await RemoteSite.open(
                        self, self.control, self.settings.remote_host,
                        self.settings.remote_port)
                    self.http.guard.own_ports.add(self.remote.port)
                self.control.commands.update(self._lifecycle_commands())
                self._watch_accounts()
            if self.lease is not None:
                self._spawn(self._watch_lease())
                await self._took_over()
            self.started = True
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop everything; runs under way stay journaled and resume at the next start."""
        began = time.monotonic()
        if self.remote is not None:
            self.remote.close()  # a standby's poll for secrets is answered now
        for name in ("control", "listener"):
            part = getattr(self, name, None)
            if part is not None:
                await part.aclose()
        self.control = self.listener = None
        if hasattr(self, "scheduler"):
            await self.scheduler.aclose()
        if hasattr(self, "runner"):
            self.runner.closing.set()
        listening = time.monotonic() - began
        if hasattr(self, "dispatcher"):
            await self.dispatcher.aclose()
        running = time.monotonic() - began - listening
        if self.started and not self.offline:
            for service in self.registry.services.values():
                if service.on_close is not None:
                    try:
                        await service.on_close()
                    except Exception:
                        log.exception("%s did not close cleanly", service.id)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if hasattr(self, "journal"):
            await self._unless_cut_off(self.journal.settled(), "run records")
            self.journal.close()
        if hasattr(self, "writer"):
            await self._unless_cut_off(self.writer.aclose(), "writer")
        if self.lease is not None:  # after the ledger's last rows: they go on its session
            await asyncio.to_thread(self.lease.stop)  # a standby's start() ends too
            self.lease = None
        if self.observe is not None:  # after the last records: their events go out too
            await self.observe.aclose()
            self.observe = None
        if hasattr(self, "db"):
            await self.db.dispose()
        await self.http.aclose()
        self._lock.release()
        self.started = False
        took = time.monotonic() - began
        if took > SLOW_STOP:  # says where a slow Quit went
            log.warning("stopping took %.1f s: listeners %.1f s, runs under way %.1f s, "
                        "the rest %.1f s", took, listening, running,
                        took - listening - running)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def wait_idle(self) -> None:
        """Wait until every dispatched event has been processed and recorded."""
        await self.dispatcher.idle()
        await self.journal.settled()

    def apply_settings(self, settings: Settings) -> None:
        """Use ``settings`` from now on. The listener's address, port and on/off and the
        database URL stay as the engine started with them (they need a restart)."""
        self.settings = settings
        self.http.guard.allow_internal = settings.allow_internal_targets
        for part in ("runner", "poller"):
            if hasattr(self, part):
                getattr(self, part).settings = settings
        listener = self.listener
        bound = ("listener_enabled", "listener_host", "listener_port")
        if listener is not None and all(getattr(listener.settings, name) == getattr(
                settings, name) for name in bound):
            listener.settings = settings  # public URL: shown addresses, accepted Host
            listener.refresh_hosts()

    # ----------------------------------------------------------------- areas

    def areas(self) -> list[Area]:
        return list(self._areas.values())

    def area(self, area_id: str) -> Area:
        try:
            return self._areas[area_id]
        except KeyError:
            raise NotFound(f"no area {area_id!r}") from None

    async def check(self, spec: AreaSpec, area_id: str | None = None) -> Checked:
        """Validate ``spec`` as it would be saved (existing secrets count as given)."""

        def has_secret(slot: str, name: str) -> bool:
            return area_id is not None and self.secrets.get(
                secret_ref(area_id, slot, name)) is not None

        accounts = await self.accounts.accounts()
        return await asyncio.to_thread(check_area, spec, self.registry, self.settings,
                                       has_secret=has_secret, accounts=accounts)

    async def create_area(self, spec: AreaSpec) -> Area:
        checked = await self.check(spec)
        token = None
        if checked.trigger.kind is TriggerKind.PUSH:
            token = _secrets.token_urlsafe(24)
        area = await self.store.insert(checked.spec, token_hash(token) if token else None)
        try:
            await self._save_secrets(area.id, checked.secrets)
            if token:
                await asyncio.to_thread(self.secrets.set,
                                        secret_ref(area.id, WEBHOOK_SLOT, "token"), token)
        except HooklineError:
            await self.store.remove(area.id)
            raise
        self._areas[area.id] = area
        await self._record_change(area, life.DRAFT, "created")
        await self._apply_window(area)
        if area.active:
            await self._activate(area)
        self.bus.publish(topics.AREA_CHANGED, area_id=area.id, change="created")
        return area

    async def import_areas(self, items: Sequence[Any]) -> list[Area]:
        """Create an area for each of ``items`` (as read from an areas file), or none:
        every one is checked first and every problem is said at once (ImportRefused);
        one that still fails while being created takes away those made before it."""
        failures: list[tuple[str, str]] = []
        specs: list[AreaSpec] = []
        for number, item in enumerate(items, 1):
            name = item.get("name") if isinstance(item, dict) else None
            which = f"“{name}”" if isinstance(name, str) and name.strip() else f"area {number}"
            try:
                spec = AreaSpec.from_dict(item)
                await self.check(spec)
            except HooklineError as exc:
                failures.append((which, str(exc)))
                continue
            specs.append(spec)
        if failures:
            raise ImportRefused(failures, len(items))
        created: list[Area] = []
        try:
            for spec in specs:
                created.append(await self.create_area(spec))
        except BaseException:
            for area in created:
                try:
                    await self.remove_area(area.id)
                except HooklineError:
                    log.exception("could not take back the imported area %s", area.id)
            raise
        return created

    async def update_area(self, area_id: str, spec: AreaSpec) -> Area:
        old = self.area(area_id)
        checked = await self.check(spec, area_id)
        changed_trigger = (old.spec.trigger.service, old.spec.trigger.action,
                           old.spec.trigger.params) != (checked.spec.trigger.service,
                                                        checked.spec.trigger.action,
                                                        checked.spec.trigger.params)
        await self._save_secrets(area_id, checked.secrets)
        await self._deactivate(old)
        area = await self.store.update(area_id, checked.spec, reset_trigger=changed_trigger)
        if checked.trigger.kind is TriggerKind.PUSH and area.webhook_hash is None:
            token = _secrets.token_urlsafe(24)
            await asyncio.to_thread(self.secrets.set,
                                    secret_ref(area_id, WEBHOOK_SLOT, "token"), token)
            await self.store.set_webhook_hash(area_id, token_hash(token))
            area = await self.store.area(area_id)
        self._forget_secrets(area_id)
        self._areas[area_id] = area
        await self._record_change(area, old.state, "edited")
        await self._apply_window(area)
        if area.active:
            await self._activate(area)
        self.bus.publish(topics.AREA_CHANGED, area_id=area_id, change="updated")
        return area

    async def remove_area(self, area_id: str) -> None:
        area = self.area(area_id)
        await self._deactivate(area, forget=True)
        await self.store.remove(area_id)
        del self._areas[area_id]
        refs = [secret_ref(area_id, WEBHOOK_SLOT, "token")]
        for step, is_trigger in area.spec.steps():
            spec = self.registry.action(step.service, step.action, is_trigger)
            refs += [secret_ref(area_id, step.slot(is_trigger), p.name)
                     for p in spec.params if p.is_secret]
        for ref in refs:
            await asyncio.to_thread(self.secrets.delete, ref)
        self._forget_secrets(area_id)
        self.bus.publish(topics.AREA_CHANGED, area_id=area_id, change="removed")

    async def set_enabled(self, area_id: str, enabled: bool) -> Area:
        area = self.area(area_id)
        before = area.state
        if life.state_of(enabled, None) != before:
            life.check(before, life.state_of(enabled, None))
        await self._deactivate(area)
        await self.store.set_enabled(area_id, enabled)
        area = await self.store.area(area_id)
        self._areas[area_id] = area
        await self._record_change(area, before, "turned on" if enabled else "turned off")
        await self._apply_window(area)
        if area.active:
            await self._activate(area)
        self.bus.publish(topics.AREA_CHANGED, area_id=area_id,
                         change="enabled" if enabled else "disabled")
        return area

    async def reload(self) -> None:
        """Pick up changes other processes made to the areas (e.g. the CLI)."""
        fresh = {a.id: a for a in await self.store.areas()}
        for area_id, old in list(self._areas.items()):
            new = fresh.get(area_id)
            if new is None or (new.updated_at, new.state) != (old.updated_at, old.state):
                await self._deactivate(old)
                self._forget_secrets(area_id)
                del self._areas[area_id]
        for area_id, area in fresh.items():
            if area_id not in self._areas:
                self._areas[area_id] = area
                if area.active:
                    await self._activate(area)

    async def checks(self, area_id: str, limit: int = POLLS_PER_AREA) -> list[dict[str, Any]]:
        """The latest checks of the area's polling trigger, newest first: when, how long,
        the outcome, items returned and new, the error, and when the next was due."""
        return await self.store.checks(self.area(area_id).id, limit)

    async def failing_checks(self) -> list[dict[str, Any]]:
        """Each area whose trigger's checks fail now (by name): the first error of the
        streak, since when, how many in a row, and the next try with why then."""
        out = []
        for area_id, streak in self.poller.streaks().items():
            area = self._areas.get(area_id)
            if area is None:
                continue
            out.append({"area_id": area_id, "name": area.name, "error": streak.first_error,
                        "last_error": streak.last_error, "since": streak.since,
                        "failures": streak.failures,
                        "next_at": self.scheduler.next_fire(area_id),
                        "next_why": streak.next_why})
        return sorted(out, key=lambda f: (f["name"].casefold(), f["area_id"]))

    async def webhook_url(self, area_id: str) -> str | None:
        """The area's webhook address (its token is read from the keyring)."""
        area = self.area(area_id)
        if area.webhook_hash is None or self.listener is None:
            return None
        token = await asyncio.to_thread(self.secrets.get,
                                        secret_ref(area_id, WEBHOOK_SLOT, "token"))
        return self.listener.url_for(token) if token else None

    # ----------------------------------------------------------------- firing

    async def run_now(self, area_id: str, payload: Mapping[str, Any] | None = None
                      ) -> list[Journaled]:
        """Fire the area once, now: a poll trigger fires its newest item (and refuses
        when it finds none: example values would reach real reactions), others a
        sample payload (or ``payload``)."""
        area = self.area(area_id)
        spec = self.registry.trigger(area.spec.trigger.service, area.spec.trigger.action)
        if payload is None:
            sample = await self._sample_payload(area, spec)
            if sample.source == "example" and spec.kind is TriggerKind.POLL:
                raise HooklineError(f"nothing to run: {sample.note}; Run now sends the "
                                    "newest item, so try again once there is one")
            payload = sample.payload
        events = await self.journal.append([NewEvent(area.id, "manual", dict(payload))])
        self._dispatch(events)
        return events

    async def replay(self, event_id: int, area_id: str | None = None) -> list[Journaled]:
        """Send a past event's payload again, into the area as it is now."""
        event = await self.store.event(event_id)
        target = self.area(area_id or event["area_id"])
        events = await self.journal.append(
            [NewEvent(target.id, "replay", dict(event["payload"]))])
        self._dispatch(events)
        return events

    async def sample(self, spec: AreaSpec, area_id: str | None = None,
                     body: Any = None) -> Sample:
        """The event Test would try ``spec`` with (the editor offers its fields): for a
        push trigger the area's last delivery, or ``body`` (a sample the user pasted)
        in its trigger's payload."""
        trigger = self.registry.trigger(spec.trigger.service, spec.trigger.action)
        return await self._sample_payload(Area(area_id or "draft", spec), trigger, body=body)

    async def test_area(self, spec: AreaSpec, payload: Mapping[str, Any] | None = None,
                        area_id: str | None = None, live: bool = False, *,
                        body: Any = None) -> dict[str, Any]:
        """A dry run: what the condition says and what each reaction would send.
        Nothing is saved, no seen-keys are touched, no reaction runs — unless ``live``,
        when the reactions run for real (still nothing recorded). Without ``payload``
        the event is chosen as ``sample`` does (``body``: a pasted sample body); the
        result says which (``sample``, ``note``)."""
        checked = await self.check(spec, area_id)
        area = Area(area_id or "draft", checked.spec)
        sample = None
        if payload is None:
            sample = await self._sample_payload(area, checked.trigger, draft=checked,
                                                body=body)
            payload = sample.payload
        outputs: list[Any] = []
        result: dict[str, Any] = {"trigger": dict(payload), "condition": None, "reactions": []}
        if sample is not None:  # said, so examples are not taken for real data
            result["sample"] = sample.source
            if sample.note is not None:
                result["note"] = sample.note
        if spec.condition:
            from engine import templates

            rendered = templates.render(spec.condition, template_context(
                area, None, payload, outputs), where="condition")
            passed = templates.truthy(rendered)
            result["condition"] = passed
            if not passed:
                return result
        if live:
            live_area = Area(area.id, checked.spec)
            draft = Runner(self.registry, self.settings, self.http, self.bus, None,
                           self._draft_secrets(checked, area.id),
                           sessions=self.accounts.session)
            result["reactions"] = await draft.live_test(live_area, payload)
            return result
        for index, (step, reaction) in enumerate(zip(checked.spec.reactions,
                                                     checked.reactions, strict=True)):
            runner = Runner(self.registry, self.settings, self.http, self.bus, None,
                            self._draft_secrets(checked, area.id))
            params, _shown = await runner.render_params(area, None, index, step, reaction,
                                                       outputs, payload)
            preview = dict(reaction.preview(params)) if reaction.preview else dict(params)
            for p in reaction.params:
                if p.is_secret and p.name in preview:
                    preview[p.name] = REDACTED if preview[p.name] else None
            result["reactions"].append({"service": step.service, "reaction": step.action,
                                        "would_send": preview})
            outputs.append({f.name: f.example for f in reaction.fields})
        return result

    # ----------------------------------------------------------------- internals

    def _draft_secrets(self, checked: Checked, area_id: str) -> SecretResolver:
        """Secrets for an unsaved draft: those typed in, else the saved ones."""

        async def resolve(_area: str, slot: str, name: str) -> str | None:
            given = checked.secrets.get((slot, name))
            if given is not None:
                return given
            return await self._resolve_secret(area_id, slot, name)

        return resolve

    async def _sample_payload(self, area: Area, spec: TriggerSpec, draft: Checked | None = None,
                              body: Any = None) -> Sample:
        """An event to try the area with: a poll trigger's newest item, a timer's firing
        now, a push trigger's pasted ``body`` or last delivery, or else the trigger's
        example values (then saying why, so they are not taken for real data)."""
        examples = {f.name: f.example for f in spec.fields}
        if spec.kind is TriggerKind.POLL and spec.poll is not None:
            from engine.catalog.context import PollContext

            params = await self._trigger_params(area, spec, draft)
            ctx = PollContext(area.id, params, self.http, self.settings,
                              logging.LoggerAdapter(log, {"area_id": area.id}), {},
                              account=await self._account(area.spec.trigger), dry_run=True)
            result = await spec.poll(ctx)
            if result.items:
                return Sample(dict(result.items[0].data), "trigger")
            service = self.registry.services.get(area.spec.trigger.service)
            name = service.name if service is not None else area.spec.trigger.service
            return Sample(examples, "example", f"{name}: “{spec.name}” found nothing right "
                                               "now: the trigger's example values stand in "
                                               "for an item")
        if spec.kind is TriggerKind.SCHEDULE:
            now = utcnow().isoformat()
            return Sample({"scheduled_for": now, "fired_at": now, "catch_up": False,
                           "missed": 0}, "trigger")
        if spec.kind is TriggerKind.PUSH:
            return await self._push_sample(area, examples, body)
        return Sample(examples, "example")

    async def _push_sample(self, area: Area, examples: dict[str, Any], body: Any) -> Sample:
        """A pasted body in the trigger's payload, else the area's last delivery."""
        if body is not None:
            payload = dict(examples)
            payload[next((f for f in BODY_FIELDS if f in examples), "body")] = body
            if "received_at" in payload:
                payload["received_at"] = utcnow().isoformat(timespec="seconds")
            return Sample(payload, "pasted", "Tested with the sample body you pasted")
        last = (await self.store.last_event(area.id, "webhook")
                if area.id in self._areas else None)
        if last is not None:
            received = last["received_at"].astimezone()
            return Sample(dict(last["payload"]), "delivery",
                          f"Tested with the last delivery, received {received:%Y-%m-%d %H:%M:%S}")
        return Sample(examples, "example",
                      "No request has arrived yet: the trigger's example values stand in "
                      "(paste a sample body to test with your own data)")

    async def _trigger_params(self, area: Area, spec: TriggerSpec,
                              draft: Checked | None = None) -> dict[str, Any]:
        params = dict(area.spec.trigger.params)
        for p in spec.params:
            if p.is_secret:
                given = draft.secrets.get(("trigger", p.name)) if draft else None
                params[p.name] = given or await self._resolve_secret(area.id, "trigger", p.name)
        return params

    async def _resolve_secret(self, area_id: str, slot: str, name: str) -> str | None:
        ref = secret_ref(area_id, slot, name)
        if ref not in self._secret_cache:
            self._secret_cache[ref] = await asyncio.to_thread(self.secrets.get, ref)
        return self._secret_cache[ref]

    def _forget_secrets(self, area_id: str) -> None:
        prefix = f"area/{area_id}/"
        for ref in [r for r in self._secret_cache if r.startswith(prefix)]:
            del self._secret_cache[ref]

    async def _save_secrets(self, area_id: str, values: Mapping[tuple[str, str], str]) -> None:
        for (slot, name), value in values.items():
            await asyncio.to_thread(self.secrets.set, secret_ref(area_id, slot, name), value)

    def _webhook_owner(self, hashed: str) -> str | None:
        """The area whose webhook address hashes to ``hashed`` (a refused delivery only:
        an off or paused area answers 409, an address no area has 404)."""
        return next((a.id for a in self._areas.values() if a.webhook_hash == hashed), None)

    def _inactive_reason(self, area_id: str) -> str | None:
        area = self._areas.get(area_id)
        if area is None:
            return "removed"
        if area.paused_reason:
            return f"paused: {area.paused_reason}"
        if area.state == life.DONE:
            return "done: it has finished what it was made for"
        return None if area.spec.enabled else "turned off"

    async def _activate(self, area: Area, starting: bool = False) -> None:
        if self.offline:
            return
        self._plan_wake(area)
        spec = self.registry.trigger(area.spec.trigger.service, area.spec.trigger.action)
        params = await self._trigger_params(area, spec)
        if spec.kind is TriggerKind.SCHEDULE:
            assert spec.schedule is not None
            trigger = spec.schedule(params)
            area_id = area.id
            if isinstance(trigger, DateTrigger):  # once, at a date and time
                await self._plan_once(area, trigger.run_date)
                return
            if starting and isinstance(trigger, IntervalTrigger):
                # Keep the cadence across restarts: count from the last firing.
                state = await self.store.trigger_state(area_id)
                if state and state["last_fired_at"]:
                    trigger = IntervalTrigger(seconds=trigger.interval.total_seconds(),
                                              start_date=state["last_fired_at"],
                                              timezone=trigger.timezone, jitter=trigger.jitter)

            async def on_miss(scheduled: datetime) -> None:
                await self._missed_schedule(area_id, trigger)

            self.scheduler.add_schedule(area.id, trigger, on_miss)
            if starting:
                await self._missed_schedule(area.id, trigger)
        elif spec.kind is TriggerKind.POLL:
            interval = area.spec.interval or spec.default_interval
            area_id = area.id
            spec = self._as_account(spec, area.spec.trigger.account)

            async def poll() -> None:
                current = self._areas.get(area_id)
                if current is None or not current.active:
                    return
                if current.state == life.SNOOZED and current.catch_up_after_snooze:
                    return  # unchecked until the snooze ends: what came meanwhile fires then
                await self.poller.poll(current, spec, params, interval)

            self.scheduler.add_poll(area.id, interval, poll,
                                    first_within=min(interval, 30.0) if starting else 0.2)
        elif spec.kind is TriggerKind.PUSH and self.listener and area.webhook_hash:
            try:
                account = await self._account(area.spec.trigger)
            except HooklineError as exc:  # the push trigger itself says what is missing
                log.warning("area %r: %s", area.name, exc)
                account = None
            ctx = TriggerContext(area.id, params, self.http, self.settings,
                                 logging.LoggerAdapter(log, {"area_id": area.id}),
                                 account=account)
            self.listener.routes[area.webhook_hash] = Route(area, spec, ctx)

    async def _account(self, step: Step) -> AccountSession | None:
        return await self.accounts.session(step.account) if step.account else None

    def _as_account(self, spec: TriggerSpec, account_id: str | None) -> TriggerSpec:
        """The poll trigger with its context's ``account`` set at each poll (the session
        is looked up each time, so a removed account fails that poll with its reason)."""
        if account_id is None or spec.poll is None:
            return spec
        poll, accounts = spec.poll, self.accounts

        async def as_account(ctx: PollContext) -> PollResult:
            ctx.account = await accounts.session(account_id)
            return await poll(ctx)

        return replace(spec, poll=as_account)

    async def _accounts_changed(self, _body: dict[str, Any]) -> None:
        """Another process connected, reconnected or removed an account."""
        await self.accounts.reload()

    async def _deactivate(self, area: Area, *, forget: bool = False) -> None:
        self.scheduler.remove(area.id)
        self.poller.forget(area.id)
        if self.listener and area.webhook_hash:
            self.listener.routes.pop(area.webhook_hash, None)
        service = self.registry.services.get(area.spec.trigger.service)
        if service is not None and service.on_area_stop is not None and not self.offline:
            try:
                await service.on_area_stop(area.id, forget=forget)
            except Exception:
                log.exception("%s did not stop cleanly for area %s", service.id, area.id)

    async def _fire_schedule(self, area_ids: list[str], scheduled: datetime, *,
                             catch_up: bool = False, missed: int = 0) -> None:
        """Fire every area due at ``scheduled`` on one schedule, in one commit."""
        area_ids = [a for a in area_ids if (area := self._areas.get(a)) is not None
                    and area.state == life.ACTIVE]  # snoozed, waiting: not fired
        if not area_ids:
            return
        # One payload for the group (read-only, like every event's payload): the writer
        # serialises it once.
        payload = {"scheduled_for": scheduled.isoformat(), "fired_at": utcnow().isoformat(),
                   "catch_up": catch_up, "missed": missed}
        await self.dispatcher.room()
        try:
            events = await self.journal.append(
                [NewEvent(a, "schedule", payload) for a in area_ids],
                [self.journal.fired_statement(a, scheduled) for a in area_ids])
        except StorageError as exc:
            self._timer_not_saved(area_ids, exc)
            return
        if self._timers_failing:
            self._timers_failing = False
            log.info("timers are saved again")
        self._dispatch(events)

    def _timer_not_saved(self, area_ids: list[str], exc: StorageError) -> None:
        """A timer that cannot be journaled (a full disk) does not run: said once per
        streak, loudly. The next start records the runs it missed (catch-up policy)."""
        names = ", ".join(f"“{area.name}”" for a in area_ids[:3]  # removed meanwhile: skipped
                          if (area := self._areas.get(a)) is not None) or "an area"
        more = f" and {len(area_ids) - 3} more" if len(area_ids) > 3 else ""
        if self._timers_failing:
            log.debug("a timer of %s%s was not saved either: %s", names, more, exc)
            return
        self._timers_failing = True
        log.error("a timer of %s%s did not run: %s", names, more, exc)
        self.bus.publish(topics.NOTIFICATION, title="Timers are not running",
                         body=f"{names}{more} did not run: {exc}", level="error")

    async def _missed_schedule(self, area_id: str, trigger: Any) -> None:
        """Runs missed while the app was closed or the machine slept: record them, and
        with the area's catch-up policy 'once' fire one run now."""
        area = self._areas.get(area_id)
        if area is None:
            return
        state = await self.store.trigger_state(area_id)
        since = (state or {}).get("last_fired_at") or area.updated_at or utcnow()
        now = utcnow()
        missed = missed_between(trigger, since, now)
        if not missed:
            return
        self.bus.publish(topics.SCHEDULE_MISSED, area_id=area_id, missed=missed,
                         policy=area.spec.catch_up)
        if area.spec.catch_up == "once":
            await self._fire_schedule([area_id], now, catch_up=True, missed=missed)
            return
        payload = {"scheduled_for": since.isoformat(), "fired_at": now.isoformat(),
                   "catch_up": False, "missed": missed}
        events = await self.journal.append([NewEvent(area_id, "schedule", payload)],
                                           [self.journal.fired_statement(area_id, now)])
        for event in events:
            run_id = self.writer.run_id()
            self.journal.start_run(run_id, event, resumed=False, steps=[], status="missed")
            times = "time was" if missed == 1 else "times were"
            self.journal.finish_run(
                run_id, event.id, status="missed", steps=[], condition=None,
                error=f"{missed} scheduled {times} missed while Hookline was not running "
                      "or the computer slept; catch-up is 'skip', so nothing ran")
        await self.journal.settled()  # recorded by the time the area is active

    def _dispatch(self, events: list[Journaled]) -> None:
        for event in events:
            self.dispatcher.submit(event)
        if self.observe is not None:
            self.observe.accepted(events)

    def _delay_poll(self, area_id: str, seconds: float) -> None:
        self.scheduler.delay_poll(area_id, seconds)

    async def _ingest(self, area: Area, items: list[Item]) -> tuple[list[int], int]:
        """Journal a delivery's items; the ids of the events made, and how many items
        were repeats of ones received before (dropped)."""
        if not items:
            return [], 0
        await self.dispatcher.room()
        events = await self.journal.append(
            [NewEvent(area.id, "webhook", dict(i.data), i.key) for i in items])
        self._dispatch(events)
        return [e.id for e in events], len(items) - len(events)

    async def _recover(self) -> None:
        """Dispatch events journaled before a stop but not finished."""
        pending = await self.store.pending_events()
        if not pending:
            return
        started = await self.store.open_runs([e["id"] for e in pending])
        resumed = 0
        for row in pending:
            event = Journaled(row["id"], row["area_id"], row["source"], row["payload"])
            run = started.get(event.id)
            carried = None
            if run is not None and run["status"] == "running":
                carried = [dict(s) for s in run["steps"]]
                for step in carried:
                    if step.get("status") == "running":
                        step["status"] = "pending"
                        step["interrupted"] = True
                await self.journal.mark_interrupted(run["id"], run["steps"], run["condition"])
                resumed += 1
            self.dispatcher.submit(event, carried)
        log.info("resuming %d unfinished event(s) (%d interrupted mid-run)", len(pending),
                 resumed)

    async def _process(self, event: Journaled, carried: list[dict[str, Any]] | None) -> None:
        area = self._areas.get(event.area_id)
        if area is None:  # removed since: its events went with it
            return
        await self.journal.room()
        began = time.time()
        outcome = await self.runner.run(area, event, carried=carried)
        while outcome.deferred:  # the disk refused the run's record: nothing acted
            assert outcome.record is not None
            self.journal.save(outcome.record)  # said in Activity once the disk takes it
            await self._until_the_disk_takes_writes(outcome.error or "")
            outcome = await self.runner.run(area, event, carried=carried)
        record = outcome.record
        assert record is not None
        if self.observe is not None:  # metrics, MQTT, spans: when it began and ended
            self.observe.ran(area, event, outcome, began)
        try:
            if outcome.status == "failed":
                await self._count_failure(area, outcome.error or "failed", record)
            elif area.failure_streak:
                area.failure_streak = 0
                record.statements.append(Statement(6, self._set_streak, {
                    "aid": area.id, "streak": 0, "reason": area.paused_reason}))
        finally:  # before the area's next run starts
            self.journal.save(record)

    async def _until_the_disk_takes_writes(self, error: str) -> None:
        """Wait (holding the area's queue, so its order is kept) until the run ledger
        can be written again. Said once per streak, in the log and as a notification;
        meanwhile the listener answers 503 (nothing more is accepted than can run). A
        stop meanwhile leaves the event pending: the next start runs it."""
        if self.disk_trouble is None:
            self.disk_trouble = error
            log.error("runs are waiting: %s", error)
            self.bus.publish(topics.NOTIFICATION, title="Hookline's disk is full",
                             body=f"Runs wait until there is space again: {error}",
                             level="error")
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                self.journal.checkpoint()
            except StorageError:
                delay = min(delay * 2, 30.0)
                continue
            if self.disk_trouble is not None:
                self.disk_trouble = None
                log.warning("the disk takes writes again: waiting runs go on")
            return

    async def _count_failure(self, area: Area, error: str, record: RunRecord) -> None:
        area.failure_streak += 1
        limit = self.settings.pause_after_failures
        pause = bool(limit) and area.failure_streak >= limit and area.paused_reason is None
        change = None
        if pause:
            area.paused_reason = f"{area.failure_streak} runs in a row failed; last: {error}"
            if area.state != life.PAUSED:
                change = life.transition(area, life.PAUSED, area.paused_reason)
        record.statements.append(Statement(6, self._set_streak, {
            "aid": area.id, "streak": area.failure_streak, "reason": area.paused_reason}))
        if change is not None:
            record.statements += self._state_statements(area.id, change)
        if pause:
            await self._deactivate(area)
            reason = area.paused_reason

            def announce() -> None:  # once the pause is saved, with the run's record
                log.warning("area %r paused itself: %s", area.name, reason)
                if change is not None:
                    self._announce(area, change, notify=False)  # said just below
                self.bus.publish(topics.AREA_PAUSED, area_id=area.id, name=area.name,
                                 reason=reason)
                self.bus.publish(topics.NOTIFICATION, title=f"“{area.name}” paused",
                                 body=reason, level="error", area_id=area.id)

            record.after.append(announce)

    async def _restore_requested(self) -> None:
        """A restore asked for while the app ran (Settings): carried out now, before the
        database is opened. A failing one is logged and the start goes on."""
        db_path = sqlite_path(self.url)
        if db_path is None:
            return
        try:
            done = await asyncio.to_thread(restore_pending, db_path, self.data_dir)
        except BackupError as exc:
            log.error("the requested restore was not done: %s", exc)
            self.restore_failed = str(exc)
            return
        if done is not None:
            chosen, before = done
            self.restored = chosen
            log.warning("restored the backup %s%s", chosen,
                        f"; the database as it was is kept as {before}" if before else "")

    async def _backup(self) -> None:
        """A daily copy of the database (checked hourly: the app may not run all day)."""
        try:
            made = await daily_backup(self.url, self.data_dir)
        except BackupError as exc:
            log.warning("daily backup failed: %s", exc)
            self.bus.publish(topics.NOTIFICATION, title="Hookline could not back up its data",
                             body=str(exc), level="warning")
            return
        if made is not None:
            log.info("backed up the database to %s", made)

    async def _prune(self) -> None:
        removed = await self.store.prune(self.settings.keep_successful_runs_days,
                                         self.settings.keep_failed_runs_days,
                                         self.settings.max_runs_per_area)
        if removed:
            log.info("history retention removed %d old record(s)", removed)

    # ----------------------------------------------------------------- life in time

    async def snooze(self, area_id: str, until: datetime, *,
                     catch_up: bool | None = None) -> Area:
        """Stop the area firing until ``until`` (aware); it comes back by itself, also
        across restarts. A push delivery meanwhile is recorded as a skipped run; a poll
        keeps checking and remembers what it sees without firing it, or, with
        ``catch_up``, leaves it unseen so that it fires once the snooze ends. Snoozing
        a snoozed area moves its end. ``catch_up`` None: the area's own choice
        (``catch_up_after_snooze``)."""
        area = self.area(area_id)
        if catch_up is None:
            catch_up = area.spec.catch_up_after_snooze
        if until <= utcnow():
            raise LifecycleError("that moment is already past: snooze until a later one")
        if area.state == life.SNOOZED:
            await self.store.set_snooze(area.id, until, catch_up)
            area.snoozed_until, area.catch_up_after_snooze = until, catch_up
        else:
            await self._change(area, life.SNOOZED,
                               f"snoozed until {until.astimezone():%Y-%m-%d %H:%M}"
                               + (" (catching up after)" if catch_up else ""),
                               snoozed_until=until, catch_up_after_snooze=catch_up)
        self._plan_wake(area)
        return area

    async def wake(self, area_id: str) -> Area:
        """End the area's snooze now."""
        area = self.area(area_id)
        if area.state != life.SNOOZED:
            raise LifecycleError(f"“{area.name}” is not snoozed (it is "
                                 f"{life.LABELS[area.state]}): nothing to wake")
        await self._end_snooze(area, "woken before its snooze ended")
        return area

    async def lifecycle(self, area_id: str, limit: int = 10) -> life.Status:
        """The area's state, when it changes by itself next and to what, and its latest
        transitions (newest first)."""
        area = self.area(area_id)
        next_at, next_state = None, None
        if area.state == life.SNOOZED and area.snoozed_until is not None:
            next_at, next_state = area.snoozed_until, self._outside_snooze(area,
                                                                           area.snoozed_until)
        elif area.state in (life.ACTIVE, life.WAITING) and area.spec.window:
            window = area.spec.window
            next_at = window.next_change(utcnow())
            if next_at is not None:
                next_state = (life.DONE if window.ended(next_at) else life.ACTIVE
                              if window.is_open(next_at) else life.WAITING)
        return life.Status(area.id, area.state, life.LABELS[area.state], next_at,
                                next_state, await self.store.transitions(area.id, limit))

    async def _change(self, area: Area, to: str, cause: str,
                      **values: Any) -> life.Transition:
        """Move ``area`` to ``to`` (refused if the lifecycle does not allow it), save it
        with ``values`` and the record, then say so."""
        life.check(area.state, to)
        change = life.Transition(utcnow(), area.state, to, cause)
        await self.store.set_state(area.id, change, **values)
        area.state = to
        for name, value in values.items():
            setattr(area, name, value)
        self._announce(area, change)
        return change

    def _outside_snooze(self, area: Area, at: datetime | None = None) -> str:
        """What a snoozed area becomes when its snooze ends (at ``at``): active, or
        waiting when its window is closed then."""
        window = area.spec.window
        return life.ACTIVE if not window or window.is_open(at or utcnow()) else life.WAITING

    async def _apply_window(self, area: Area, when: str = "") -> None:
        """Active inside its window, waiting outside, done once it has ended; then the
        next opening or closing is scheduled."""
        window = area.spec.window
        if not window or area.state not in (life.ACTIVE, life.WAITING):
            return
        now = utcnow()
        said = f" {when}" if when else ""
        if window.ended(now):
            await self._change(area, life.DONE, f"its active window ended{said}")
            await self._deactivate(area)
            return
        target = life.ACTIVE if window.is_open(now) else life.WAITING
        if target != area.state:
            await self._change(area, target, f"its window opened{said}" if target == life.ACTIVE
                               else f"outside its window{said}")
        self._plan_wake(area)

    async def _record_change(self, area: Area, before: str, cause: str) -> None:
        """Record a state change another write already saved (created, edited, on/off)."""
        if area.state == before:
            return
        change = life.Transition(utcnow(), before, area.state, cause)
        await self.store.add_transition(area.id, change)
        self._announce(area, change)

    def _state_statements(self, area_id: str,
                          change: life.Transition) -> list[Statement]:
        """A state change saved with a run's record (a pause after failures)."""
        return [Statement(6, self._set_state, {"aid": area_id, "new_state": change.to_state}),
                Statement(6, area_transitions.insert(), {
                    "area_id": area_id, "at": change.at, "from_state": change.from_state,
                    "to_state": change.to_state, "cause": change.cause})]

    def _announce(self, area: Area, change: life.Transition, notify: bool = True) -> None:
        self.bus.publish(topics.AREA_STATE, area_id=area.id, name=area.name,
                         **{"from": change.from_state}, to=change.to_state,
                         cause=change.cause, at=change.at)
        if notify and change.to_state in life.NOTIFY:
            self.bus.publish(topics.NOTIFICATION,
                             title=f"“{area.name}” {life.NOTIFY[change.to_state]}",
                             body=change.cause, level="warning"
                             if change.to_state != life.DONE else "info",
                             area_id=area.id)

    async def _end_snooze(self, area: Area, cause: str) -> None:
        catch_up = area.catch_up_after_snooze
        await self._change(area, self._outside_snooze(area), cause, snoozed_until=None,
                           catch_up_after_snooze=False)
        if not self.offline and self.started:
            self.scheduler.remove_wake(area.id)
            spec = self.registry.trigger(area.spec.trigger.service, area.spec.trigger.action)
            if spec.kind is TriggerKind.SCHEDULE and self.scheduler.next_fire(area.id) is None:
                await self._activate(area)  # a one-time moment passed meanwhile: fires now
            if catch_up:  # what came during the snooze is still unseen: check now
                self.scheduler.poll_soon(area.id)

    def _plan_wake(self, area: Area) -> None:
        """Schedule the area's next change by itself (a snooze's end)."""
        if self.offline or not hasattr(self, "scheduler"):
            return
        if area.state == life.SNOOZED and area.snoozed_until is not None:
            area_id = area.id

            async def wake() -> None:
                current = self._areas.get(area_id)
                if current is not None and current.state == life.SNOOZED:
                    await self._end_snooze(current, "the snooze ended")

            self.scheduler.add_wake(area.id, area.snoozed_until, wake)
        elif area.state in (life.ACTIVE, life.WAITING) and area.spec.window:
            when = area.spec.window.next_change(utcnow())
            if when is not None:
                area_id = area.id

                async def turn() -> None:
                    current = self._areas.get(area_id)
                    if current is not None:
                        await self._apply_window(current)

                self.scheduler.add_wake(area.id, when, turn)

    async def _apply_due_changes(self) -> None:
        """At start: changes due while Hookline was not running happen now."""
        now = utcnow()
        usable = {a.id for a in await self.accounts.accounts() if a.status == "ok"}
        for area in list(self._areas.values()):
            if area.state == life.NEEDS_ACCOUNT and all(
                    step.account in usable for step, _ in area.spec.steps() if step.account):
                await self._change(area, self._outside_snooze(area), "its accounts were "
                                   "connected again while Hookline was not running")
            if (area.state == life.SNOOZED and area.snoozed_until is not None
                    and area.snoozed_until <= now):
                await self._change(area, self._outside_snooze(area), "the snooze ended "
                                   "while Hookline was not running", snoozed_until=None,
                                   catch_up_after_snooze=False)
            await self._apply_window(area, "while Hookline was not running")

    async def _plan_once(self, area: Area, when: datetime) -> None:
        """A one-time trigger: fire at ``when``, or now when that has passed while
        Hookline was not running (once, saying how late); done when it fired before."""
        state = await self.store.trigger_state(area.id)
        fired = (state or {}).get("last_fired_at")
        if fired is not None and fired >= when:  # fired, stopped before it was done
            await self._change(area, life.DONE, "it ran at its date and time")
            return
        if when <= utcnow():
            await self._fire_once(area.id, when)
            return
        self.scheduler.add_once(area.id, when, functools.partial(self._fire_once, area.id))

    async def _fire_once(self, area_id: str, scheduled: datetime) -> None:
        """Fire a one-time area (late_by: seconds after its time), then it is done. Not
        active then (snoozed, waiting for its window): it fires once it is again."""
        area = self._areas.get(area_id)
        if area is None or area.state != life.ACTIVE:
            return
        now = utcnow()
        late = max(0.0, (now - scheduled).total_seconds())
        late = late if late >= 1 else 0.0  # the timer's own delay is not lateness
        payload = {"scheduled_for": scheduled.isoformat(), "fired_at": now.isoformat(),
                   "catch_up": bool(late), "missed": 1 if late else 0,
                   "late_by": round(late)}
        events = await self.journal.append(
            [NewEvent(area_id, "schedule", payload)],
            [self.journal.fired_statement(area_id, scheduled)])
        self._dispatch(events)
        self.scheduler.remove(area_id)
        await self._change(area, life.DONE, "it ran at its date and time" + (
            f", {format_duration(late)} late (Hookline was not running then)" if late else ""))

    async def _take_delivery(self, area: Area, items: list[Item]) -> tuple[list[int], int]:
        """A push delivery: journaled to run when the area is active (one attribute
        read: the hot path), else recorded as skipped runs saying why."""
        current = self._areas.get(area.id, area)
        if current.state == life.ACTIVE:
            return await self._ingest(area, items)
        if not items:
            return [], 0
        if current.state == life.SNOOZED and current.snoozed_until is not None:
            reason = (f"not run: the area is snoozed until "
                      f"{current.snoozed_until.astimezone():%Y-%m-%d %H:%M}")
        else:
            reason = f"not run: the area is {life.LABELS[current.state]}"
        events = await self.journal.append(
            [NewEvent(area.id, "webhook", dict(i.data), i.key) for i in items])
        for event in events:
            run_id = self.writer.run_id()
            self.journal.start_run(run_id, event, resumed=False, steps=[], status="skipped")
            self.journal.finish_run(run_id, event.id, status="skipped", steps=[],
                                    condition=None, error=reason)
        return [e.id for e in events], len(items) - len(events)

    def _watch_accounts(self) -> None:
        """An area acting as an account that must be reconnected (or was removed) needs
        an account, and stops; once it is connected again the area goes on."""

        def later(message: Message) -> None:
            task = asyncio.get_running_loop().create_task(self._account_state(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self.bus.subscribe(topics.ACCOUNT_NEEDS_RECONNECT, later)
        self.bus.subscribe(topics.ACCOUNT_CHANGED, later)

    async def _account_state(self, message: Message) -> None:
        account_id, name = message.data["account_id"], message.data.get("name", "")
        change = message.data.get("change")
        lost = message.topic == topics.ACCOUNT_NEEDS_RECONNECT or change == "removed"
        if not lost and change not in ("connected", "reconnected"):
            return
        for area in list(self._areas.values()):
            if all(step.account != account_id for step, _ in area.spec.steps()):
                continue
            try:
                if lost and area.state in life.ATTACHED:
                    why = ("was removed" if change == "removed"
                           else f"must be reconnected ({message.data.get('error')})")
                    await self._deactivate(area)
                    await self._change(area, life.NEEDS_ACCOUNT, f"its account “{name}” {why}")
                elif not lost and area.state == life.NEEDS_ACCOUNT:
                    await self._change(area, self._outside_snooze(area),
                                       f"its account “{name}” is connected again")
                    await self._activate(area)
            except HooklineError:
                log.exception("area %r: its state did not follow its account", area.name)

    def _lifecycle_commands(self) -> dict[str, Any]:
        """The control channel's snooze, wake and lifecycle (the CLI while an engine runs)."""

        async def snooze(body: dict[str, Any]) -> Any:
            area = await self.store.area(str(body["area"]))
            until = datetime.fromisoformat(str(body["until"]))
            await self.snooze(area.id, until, catch_up=bool(body.get("catch_up")))
            return (await self.lifecycle(area.id)).to_dict()

        async def wake(body: dict[str, Any]) -> Any:
            area = await self.store.area(str(body["area"]))
            await self.wake(area.id)
            return (await self.lifecycle(area.id)).to_dict()

        async def status(body: dict[str, Any]) -> Any:
            area = await self.store.area(str(body["area"]))
            return (await self.lifecycle(area.id, int(body.get("limit", 10)))).to_dict()

        return {"areas.snooze": snooze, "areas.wake": wake, "areas.lifecycle": status}

    # ----------------------------------------------------------------- looking

    async def check_now(self, area_id: str) -> list[looking.ItemVerdict]:
        """Check the area's trigger once without firing: what each item it returns now
        would do (new, seen, filtered out, remembered at the first check). Nothing is
        saved (engine/inspect.py)."""
        return await looking.check_now(self, area_id)

    async def find_item(self, text: str, area_id: str | None = None) -> list[looking.Found]:
        """Whether and when an item (part of its id, link or title) was seen, by which
        area, and the run it started (engine/inspect.py); empty: not seen."""
        return await looking.find_item(self, text, area_id)

    # ----------------------------------------------------------------- why

    async def why(self, area_id: str) -> explaining.Why:
        """Why the area fired or did not: its state, its trigger's latest checks, timed
        runs or deliveries, and each reaction's last outcomes (engine/why.py)."""
        return await explaining.explain(self, area_id)

    # ----------------------------------------------------------------- one of several

    async def _take_lease(self) -> None:
        """PostgreSQL: take the database's lease, or stand by until it is free (the
        listener answers 503 with Retry-After, the control channel says so) and take it
        then. The writer's ids, the ledger replay and recovery all come after this."""
        lease = self.lease = Lease(self.url)
        await asyncio.to_thread(lease.open)
        if not self.stand_by_first and await asyncio.to_thread(lease.try_take):
            return
        self.role = STANDBY  # the listener and the control channel say so from the start
        if self._listen:
            await self._start_listener()
            assert self.listener is not None
            self.listener.standby = STANDBY_REASON
        self.control = ControlServer(self)  # says the role; the rest answers 503
        await self.control.start()
        self.control.commands.update(remote_commands(self))
        if self.settings.remote_enabled:  # the other machine may join this one meanwhile
            try:
                self.remote = await RemoteSite.open(
                    self, self.control, self.settings.remote_host, self.settings.remote_port)
            except ConfigError as exc:  # the active engine on this machine has the port
                log.warning("standing by without the remote control channel: %s", exc)
        self.bus.publish(ENGINE_ROLE, role=STANDBY, previous=None,
                         reason="another Hookline engine is active on this database")
        log.warning("standing by: another Hookline engine is active on this database; "
                    "this one takes over when it stops (its lease is tried every second)")
        # meanwhile, the active engine's secrets are copied here (engine/remote/peer.py)
        pulling = Puller(self.secrets, self.data_dir).start()
        try:
            self._stood_by = await lease.wait(first_after=self.stand_by_first)
        finally:
            await pulling.aclose()
        if self.remote is not None:  # opened again, with the active engine's control
            self.remote.close()
            self.remote = None
        await self.control.aclose()  # the active engine's own comes up once it is ready
        self.control = None
        await asyncio.to_thread(lease.settle)  # the previous engine's last commits land
        if self.listener is not None:
            self.listener.standby = None  # "not ready yet" (503) until the routes are up

    def _ledger(self) -> Ledger | TableLedger:
        """Where runs are recorded before a reaction acts: holding a lease, the shared
        database (another machine's engine must find them after a takeover), else a
        file in the data folder."""
        if self.lease is not None and self.lease.conn is not None:
            return TableLedger(self.lease.conn)
        return Ledger(self.data_dir / LEDGER_DIR)

    async def _start_listener(self) -> None:
        self.listener = Listener(self.settings, self._take_delivery, self._inactive_reason,
                                 lambda: self.disk_trouble, self._webhook_owner)
        port = await self.listener.start()
        self.http.guard.own_ports.add(port)

    def _set_role(self, role: str, reason: str, **more: Any) -> None:
        previous, self.role = self.role, role
        self.bus.publish(ENGINE_ROLE, role=role, previous=previous, reason=reason, **more)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _took_over(self) -> None:
        """Active on PostgreSQL: say so, and which secrets the areas need that this
        machine's keyring does not have (each machine has its own)."""
        waited: float | None = getattr(self, "_stood_by", None)
        if waited is None:
            self._set_role(ACTIVE, "it holds the database's lease")
        else:
            log.warning("took over after %.1f s standing by: the engine that was active "
                        "let go of the database", waited)
            self._set_role(ACTIVE, "the engine that was active stopped",
                           took_over_after=round(waited, 1))
        names = {a.id: f"{a.service_id}: {a.name}" for a in await self.accounts.accounts()}
        missing = await asyncio.to_thread(standby_secrets_missing, self, names)
        if missing:
            said = "; ".join(missing[:10]) + (f"; and {len(missing) - 10} more"
                                              if len(missing) > 10 else "")
            log.error("this computer's keyring lacks secrets the automations need "
                      "(enter them again here): %s", said)
            self.bus.publish(topics.NOTIFICATION, title="Secrets missing on this computer",
                             body=f"Enter them again in Hookline here: {said}",
                             level="error")

    async def _watch_lease(self) -> None:
        """Ask the lease connection every few seconds; when it does not answer, fence."""
        assert self.lease is not None
        while True:
            await asyncio.sleep(CHECK_EVERY)
            try:
                await self.lease.check()
            except LeaseLost as exc:
                await self._fence(str(exc))
                return

    async def _unless_cut_off(self, work: Awaitable[None], what: str) -> None:
        """Await ``work``; fenced (the database may not answer at all), for
        :data:`FENCED_CLOSE` seconds at most, so `hookline serve` can stand by again.
        What is left is journaled: the engine that took over runs it."""
        if self.role != FENCED:
            await work
            return
        try:
            await asyncio.wait_for(work, FENCED_CLOSE)
        except TimeoutError:
            log.warning("the database did not answer within %.0f s: the %s left behind "
                        "(the engine that took over goes on from the journal)",
                        FENCED_CLOSE, what)

    async def _fence(self, why: str) -> None:
        """The lease is lost: another engine may be active now. Stop firing at once
        (timers, polls, runs under way: their events stay pending for the engine that
        takes over), refuse webhooks (503), and say so; `hookline serve` starts again."""
        log.error("lost the database lease (%s): stopped firing so that two engines never "
                  "run the same automations; starting again as a standby", why)
        if self.listener is not None:
            self.listener.standby = ("stopped: this Hookline engine lost contact with its "
                                     "database; another one takes over")
        self._set_role(FENCED, why)
        await self.scheduler.aclose()
        self.runner.closing.set()
        await self.dispatcher.aclose(grace=0)
        self.bus.publish(topics.NOTIFICATION, title="Hookline stopped firing",
                         body=f"It lost contact with its database ({why}); another engine "
                              "takes over, or this one once the database answers again",
                         level="error")
        self.stepped_down.set()


def standby_secrets_missing(engine: Engine, accounts: Mapping[str, str]) -> list[str]:
    """What the areas need from this machine's keyring and cannot read: required secret
    parameters and the tokens of the accounts their steps act as (``accounts``: id ->
    how to name it). A webhook's own token only shows its address: deliveries are routed
    by its hash, from the database."""
    from engine.auth.accounts import token_ref
    from engine.standby import unreadable

    refs: list[tuple[str, str]] = []
    used: set[str] = set()
    for area in engine.areas():
        if area.state in (life.OFF, life.DONE, life.DRAFT):
            continue
        for index, (step, is_trigger) in enumerate(area.spec.steps()):
            try:
                spec = engine.registry.action(step.service, step.action, is_trigger)
            except HooklineError:
                continue
            where = "its trigger" if is_trigger else f"reaction {index}"
            refs += [(f"“{area.name}” {where}: {p.label}",
                      secret_ref(area.id, step.slot(is_trigger), p.name))
                     for p in spec.params if p.is_secret and p.required]
            if step.account:
                used.add(step.account)
    refs += [(f"the account {accounts.get(account, account)}", token_ref(account))
             for account in sorted(used)]
    return unreadable(refs, engine.secrets.get)




__all__ = ["ConfigError", "Engine", "Sample", "secret_ref"]
