"""The ``hookline`` command: serve headless, inspect services, manage areas and runs.

Each command imports the machinery it needs when it runs, so that ``hookline --version``
loads none of aiohttp, the database layer, the scheduler or Qt, and ``hookline services``
only the catalog of services (tests/engine/test_cli.py holds them to it).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine import __version__
from engine import bus as topics
from engine.bus import Message
from engine.errors import ConfigError, HooklineError, ValidationError
from engine.paths import data_dir as resolve_data_dir
from engine.settings import Settings, load_settings, save_settings

if TYPE_CHECKING:
    import asyncio

    from engine.app import Engine
    from engine.control import ControlClient
    from engine.logs import RunLog

log = logging.getLogger("hookline")

def demo_area(data_dir: Path) -> dict[str, Any]:
    """A first area that visibly works with nothing to set up."""
    return {
        "name": "Demo: a heartbeat every 10 seconds",
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "10s"}},
        "reactions": [
            {"service": "notify", "reaction": "notify",
             "params": {"title": "Hookline is working",
                        "message": "Tick at {{ trigger.fired_at[11:19] }} UTC"}},
            {"service": "files", "reaction": "append_text",
             "params": {"path": str(data_dir / "demo-heartbeat.log"),
                        "text": "{{ trigger.fired_at }} heartbeat\n"}},
        ],
    }


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))


class Session:
    """What a command works on: the running engine (through its control channel)
    or, when none runs, an engine opened offline in this process.

    Args:
        data_dir: the data folder.
        change: the command's words after ``hookline`` (``areas enable NAME``) when it
            changes areas, runs or secrets; None when it only reads. A change is
            refused offline while an engine on another machine is active on the same
            PostgreSQL database (:func:`_refuse_behind_active`).
    """

    def __init__(self, data_dir: Path, change: Sequence[str] | None = None) -> None:
        self.data_dir = data_dir
        self.change = change
        self.remote: ControlClient | None = None
        self.local: Engine | None = None

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[Session]:
        from engine.app import Engine
        from engine.control import ControlClient
        from engine.lock import DataDirLock
        from engine.registry import Registry
        from engine.storage.db import database_url, open_async
        from engine.store import Store

        lock = DataDirLock(self.data_dir)
        if lock.held_elsewhere() and ControlClient.available(self.data_dir):
            self.remote = ControlClient(self.data_dir)
            settings = load_settings(self.data_dir)
            url = database_url(self.data_dir, settings.database_url)
            db = open_async(url)
            self.store = Store(db)
            self.registry = Registry.load()
            try:
                yield self
            finally:
                await db.dispose()
            return
        if self.change is not None and not lock.held_elsewhere():  # else: EngineLocked
            await _refuse_behind_active(self.data_dir, self.change)
        self.local = Engine(self.data_dir, offline=True)
        await self.local.start()
        self.store = self.local.store
        self.registry = self.local.registry
        try:
            yield self
        finally:
            await self.local.aclose()

    async def area_id(self, ref: str) -> str:
        return (await self.store.area(ref)).id

    async def create(self, data: dict[str, Any]) -> str:
        from engine.areas import AreaSpec

        if self.remote:
            return str((await self.remote.call("POST", "/areas", data))["id"])
        assert self.local
        return (await self.local.create_area(AreaSpec.from_dict(data))).id

    async def import_areas(self, items: list[Any]) -> list[str]:
        """Every area of an areas file, or none (ImportRefused says why)."""
        if self.remote:
            return [str(i) for i in (await self.remote.call(
                "POST", "/areas/import", {"areas": items}))["ids"]]
        assert self.local
        return [a.id for a in await self.local.import_areas(items)]

    async def update(self, area_id: str, data: dict[str, Any]) -> None:
        from engine.areas import AreaSpec

        if self.remote:
            await self.remote.call("PUT", f"/areas/{area_id}", data)
        else:
            assert self.local
            await self.local.update_area(area_id, AreaSpec.from_dict(data))

    async def set_enabled(self, area_id: str, enabled: bool) -> None:
        if self.remote:
            await self.remote.call("POST", f"/areas/{area_id}/{'enable' if enabled else 'disable'}")
        else:
            assert self.local
            await self.local.set_enabled(area_id, enabled)

    async def remove(self, area_id: str) -> None:
        if self.remote:
            await self.remote.call("DELETE", f"/areas/{area_id}")
        else:
            assert self.local
            await self.local.remove_area(area_id)

    async def webhook_url(self, area_id: str) -> str | None:
        if self.remote:
            return (await self.remote.call("GET", f"/areas/{area_id}/webhook"))["url"]  # type: ignore[no-any-return]
        return None

    async def test(self, data: dict[str, Any], payload: Any) -> dict[str, Any]:
        from engine.areas import AreaSpec

        if self.remote:
            return await self.remote.call("POST", "/test",  # type: ignore[no-any-return]
                                          {"area": data, "payload": payload})
        assert self.local
        return await self.local.test_area(AreaSpec.from_dict(data), payload)

    async def run(self, area_id: str) -> list[int]:
        if self.remote:
            return list((await self.remote.call("POST", f"/areas/{area_id}/run"))["events"])
        assert self.local
        events = await self.local.run_now(area_id)
        await self.local.wait_idle()
        return [e.id for e in events]


async def _refuse_behind_active(data_dir: Path, change: Sequence[str]) -> None:
    """Refuse ``change`` made offline while another engine is active on the shared
    database: that engine counts event and run ids in memory (the offline ones would
    clash with its next ones) and attaches areas only at its start. SQLite: one
    machine's file, nothing to refuse; a lease that cannot be read: the start's own
    error says it better."""
    import asyncio
    import shlex

    from engine import standby
    from engine.remote.cli import AREA_ACTIONS
    from engine.storage.db import database_url

    url = database_url(data_dir, load_settings(data_dir).database_url)
    if not standby.wanted(url):
        return
    try:
        holder = await asyncio.to_thread(standby.lease_holder, url)
    except Exception:
        return
    if holder is None:
        return
    here = ""
    if change[0] == "areas" and change[1] in AREA_ACTIONS:
        here = (f", or from here: `{shlex.join(['hookline', 'remote', *change])}` "
                "(with this computer paired with it: `hookline remote connect`)")
    raise ConfigError(
        f"another Hookline engine is active on this database ({holder}): a change made "
        "here would go behind its back (it sees changes only when it starts again, and "
        "runs made here take ids it counts on). Nothing was changed. Run the command on "
        f"that engine's computer{here}.")


# ---------------------------------------------------------------------- commands


#: Why one engine's life in `hookline serve` ended when another starts after it.
STEPPED_DOWN = "stepped down"
RESTART = "restart"


async def cmd_serve(args: argparse.Namespace, data_dir: Path) -> int:
    """Run the engine until Ctrl+C or SIGTERM. On a shared PostgreSQL database an
    engine that lost its lease stops firing and starts again, as a standby; one asked
    to restart (a restore from another computer) stops and starts again at once."""
    stepped_down = False
    while True:
        ended = await _serve_once(args, data_dir, stepped_down)
        if isinstance(ended, int):
            return ended
        stepped_down = ended == STEPPED_DOWN
        if stepped_down:
            print("Lost the database's lease: starting again as a standby…", flush=True)


async def _serve_once(args: argparse.Namespace, data_dir: Path,
                      stepped_down: bool = False) -> int | str:
    """One engine's life: 0 when asked to stop, STEPPED_DOWN when it lost the lease
    (then the next stands by a while before trying it: the other engine goes first),
    RESTART when it was asked to start again (``Engine.restart_wanted``)."""
    import asyncio
    import signal

    from engine import logs, standby
    from engine.app import Engine
    from engine.areas import AreaSpec
    from engine.memory import settle_after_start

    settings = load_settings(data_dir)
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["listener_port"] = args.port
    if args.host:
        overrides["listener_host"] = args.host
    if args.remote:
        overrides["remote_enabled"] = True
    if args.remote_host:
        overrides["remote_host"] = args.remote_host
    if args.remote_port is not None:
        overrides["remote_port"] = args.remote_port
    if overrides:
        settings = settings.replace(**overrides)
    logs.configure(data_dir, "DEBUG" if args.verbose else settings.log_level)
    engine = Engine(data_dir, settings=settings)
    engine.restartable = True  # started again below when it asks
    if stepped_down:
        engine.stand_by_first = standby.STEP_DOWN_PAUSE
    engine.bus.subscribe("*", functools.partial(_log_message, logs.RunLog(log)))
    engine.bus.subscribe(standby.ENGINE_ROLE, functools.partial(_say_role, engine))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if not await _started(engine, stop):  # stopped while standing by
        print("Stopping…", flush=True)
        return 0
    try:
        if args.demo and not engine.areas():
            area = await engine.create_area(AreaSpec.from_dict(demo_area(data_dir)))
            print(f"Created the demo area “{area.name}”: every 10 seconds it shows a "
                  f"notification (here: a log line) and appends to "
                  f"{data_dir / 'demo-heartbeat.log'}")
        if engine.restored is not None:
            print(f"Restored the backup {engine.restored.name}.")
        if engine.restore_failed is not None:
            print(f"The backup asked for was not restored: {engine.restore_failed}. "
                  "Hookline runs with its data as it was.", flush=True)
        print(f"Hookline {__version__} is running on {data_dir} (log: "
              f"{logs.log_file(data_dir)})")
        if engine.listener is not None:
            print(f"Webhooks: http://{engine.settings.listener_host}:{engine.listener.port}"
                  "/hooks/<area token>  (see `hookline areas show AREA`)")
        if engine.remote is not None:
            print(f"Remote control: https://{engine.remote.host}:{engine.remote.port} for "
                  "paired computers (`hookline pair` gives a code)")
        print(f"{len(engine.areas())} area(s), "
              f"{sum(1 for a in engine.areas() if a.active)} active. Ctrl+C stops.",
              flush=True)
        settle_after_start()
        lost = asyncio.ensure_future(engine.stepped_down.wait())
        again = asyncio.ensure_future(engine.restart_wanted.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({lost, again, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for waiting in (lost, again, stopping):
            waiting.cancel()
        if stop.is_set():
            print("Stopping…", flush=True)
        elif engine.restart_wanted.is_set():
            print("Restarting to restore the backup…", flush=True)
            log.warning("restarting to restore the backup asked for")
            return RESTART  # (the engine stops first, just below, as for Ctrl+C)
        else:
            return STEPPED_DOWN
    finally:
        await engine.aclose()
    return 0


async def _started(engine: Engine, stop: asyncio.Event) -> bool:
    """Start ``engine`` (which, standing by, returns only once it took over); False
    when ``stop`` came first."""
    import asyncio

    starting = asyncio.ensure_future(engine.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()  # start() closes what it opened
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return False
    starting.result()
    return True


def _say_role(engine: Engine, message: Message) -> None:
    """A standby's own lines: where its listener is and that it answers 503."""
    from engine.standby import STANDBY

    if message.data["role"] != STANDBY:
        return
    print(f"Standing by: {message.data['reason']}; this one takes over when it stops.",
          flush=True)
    if engine.listener is not None:
        print(f"Webhooks: http://{engine.settings.listener_host}:{engine.listener.port}"
              "/hooks/<area token>  (503 until this engine is active)", flush=True)


def _log_message(runs: RunLog, message: Message) -> None:
    data = message.data
    if message.topic == topics.RUN_FINISHED:
        runs.finished(data)
    elif message.topic == topics.NOTIFICATION:
        log.info("notification: %s — %s", data.get("title"), data.get("body"))
    elif message.topic == topics.AREA_PAUSED:
        log.warning("area “%s” paused: %s", data["name"], data["reason"])
    elif message.topic == topics.SCHEDULE_MISSED:
        log.warning("area %s missed %s scheduled run(s) (catch-up: %s)",
                    data["area_id"][:8], data["missed"], data["policy"])


def cmd_services(args: argparse.Namespace, _data_dir: Path) -> int:
    from engine.registry import Registry

    registry = Registry.load()
    services = list(registry)
    if args.service:
        services = [registry.service(args.service)]
    if args.json:
        _print_json([s.describe() for s in services])
        return 0
    if args.markdown:  # the built-in services only: the page ships with Hookline
        from engine.catalog.docs import markdown

        sys.stdout.write(markdown(Registry.load(plugins=False)))
        return 0
    for service in services:
        auth = "" if service.auth.value == "none" else f"  [needs {service.auth.value}]"
        print(f"{service.id:10} {service.name}{auth}")
        print(textwrap.indent(textwrap.fill(service.description, 76), "           "))
        if args.service and service.access_note:
            print(textwrap.indent(textwrap.fill("Cost and access: " + service.access_note, 76),
                                  "           "))
        for t in service.triggers.values():
            print(f"           trigger  {t.id:20} {t.name}")
            if args.service:
                _print_params(t.params)
        for r in service.reactions.values():
            print(f"           reaction {r.id:20} {r.name}")
            if args.service:
                _print_params(r.params)
    for name, error in registry.broken.items():
        print(f"(plugin {name} failed to load: {error})")
    return 0


def _print_params(params: Sequence[Any]) -> None:
    for p in params:
        need = "required" if p.required and p.default is None else "optional"
        print(f"                      {p.name}: {p.type.value}, {need}"
              + (f" — {p.help}" if p.help else ""))


def _say_attached(data_dir: Path) -> None:
    """When this folder's app is attached to an engine elsewhere, say that what was
    listed is this computer's own engine's, and where the other's are listed."""
    from engine.remote.client import RemoteTarget

    try:
        target = RemoteTarget.load(data_dir)
    except HooklineError:
        return
    if target is not None:
        print(f"(These are this computer's own automations. The app here is attached to "
              f"Hookline on {target.name} ({target.host}): `hookline remote areas` lists "
              "its automations.)", file=sys.stderr)


#: the ``hookline areas`` actions that change nothing (``sync`` too, without ``--apply``)
READ_ONLY_ACTIONS = frozenset({"list", "show", "export", "checks", "why", "check-now",
                               "find", "test"})


def _change_of(args: argparse.Namespace) -> list[str] | None:
    """The words of a ``hookline areas`` command that changes something (its area, if
    it names one); None for one that only reads."""
    if args.action in READ_ONLY_ACTIONS or (args.action == "sync" and not args.apply):
        return None
    area = getattr(args, "area", None)
    return ["areas", args.action, *([area] if area else [])]


async def cmd_areas(args: argparse.Namespace, data_dir: Path) -> int:
    import getpass

    import yaml

    from engine import folder
    from engine.app import secret_ref
    from engine.auth.accounts import AccountStore
    from engine.secrets import EncryptedFileSecretStore, secret_store_of

    async with Session(data_dir, _change_of(args)).open() as s:
        action = args.action
        if action == "list":
            areas = await s.store.areas()
            last = await s.store.last_runs()
            rows: list[dict[str, Any]] = []
            for a in areas:
                run = last.get(a.id)
                state = "on" if a.state == "active" else a.state  # "on": as before states
                rows.append({"id": a.id, "name": a.name, "state": state,
                             "snoozed_until": a.snoozed_until,
                             "trigger": f"{a.spec.trigger.service}.{a.spec.trigger.action}",
                             "reactions": [f"{r.service}.{r.action}" for r in a.spec.reactions],
                             "last_run": run["started_at"] if run else None,
                             "last_status": run["status"] if run else None,
                             "paused_reason": a.paused_reason})
            if args.json:
                _print_json(rows)
            elif not rows:
                print("No areas yet. Import one: hookline areas import FILE.yaml "
                      "(see README for the format)")
            # done areas come last, apart: they finished what they were made for
            ordered = sorted(rows, key=lambda r: r["state"] == "done")
            for i, r in enumerate([] if args.json else ordered):
                if r["state"] == "done" and (i == 0 or ordered[i - 1]["state"] != "done"):
                    print("Done:")
                last_run = (f"{r['last_status']} {r['last_run']:%Y-%m-%d %H:%M}"
                            if r["last_run"] else "never ran")
                until = (f" until {r['snoozed_until'].astimezone():%m-%d %H:%M}"
                         if r["snoozed_until"] else "")
                print(f"{r['id'][:8]}  {r['state'] + until:7} {r['name'][:40]:40} "
                      f"{r['trigger']} -> {', '.join(r['reactions'])}  ({last_run})")
            _say_attached(data_dir)
            return 0
        if action == "import":
            from engine.area_files import read_area_file

            created = await s.import_areas(read_area_file(args.file))
            print(f"imported {len(created)} area(s) from {args.file}:")
            for area_id in created:
                area = await s.store.area(area_id)
                print(f"imported {area_id[:8]}  {area.name}")
                url = await s.webhook_url(area_id)
                if url:
                    print(f"          webhook: {url}")
            return 0
        if action == "export":
            areas = [await s.store.area(args.area)] if args.area else await s.store.areas()
            names = {a.id: a.name for a in await AccountStore(s.store.db).accounts()}
            if args.folder:
                written = folder.export_folder(
                    {a.id: a.spec.to_dict(s.registry, names) for a in areas}, Path(args.folder))
                print(f"exported {len(written)} area(s) to {args.folder}, one file each "
                      "(secrets left out)")
                return 0
            docs = [a.spec.to_dict(s.registry, names) for a in areas]
            out: Any = docs[0] if args.area else {"areas": docs}
            text = (json.dumps(out, indent=2, ensure_ascii=False) + "\n" if args.format == "json"
                    else yaml.safe_dump(out, sort_keys=False, allow_unicode=True))
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
                print(f"exported {len(docs)} area(s) to {args.output} (secrets left out)")
            else:
                sys.stdout.write(text)
            return 0
        if action == "sync":
            names = {a.id: a.name for a in await AccountStore(s.store.db).accounts()}
            current = {a.id: a.spec.to_dict(s.registry, names) for a in await s.store.areas()}
            changes = folder.plan(Path(args.folder), current)
            for change in changes:
                detail = f" ({', '.join(change.changed)})" if change.changed else ""
                print(f"{change.kind:7} {change.name}{detail}  [{change.path.name}]")
            todo = [c for c in changes if c.kind != "same"]
            if not args.apply:
                print(f"{len(todo)} change(s); run again with --apply to make them"
                      if todo else "nothing to change")
                return 0
            for change in todo:
                try:
                    if change.kind == "add":  # the file learns its area's id
                        new_id = await s.create(change.data)
                        saved = (await s.store.area(new_id)).spec.to_dict(s.registry, names)
                        change.path.write_text(folder.dump(new_id, saved), encoding="utf-8")
                    else:
                        assert change.area_id is not None
                        await s.update(change.area_id, change.data)
                except ValidationError as exc:
                    raise HooklineError(f"{change.path.name}: {exc}") from None
            print(f"applied {len(todo)} change(s)")
            return 0
        if action == "test":
            path = Path(args.area)
            if path.exists():
                from engine.area_files import read_area_file

                data = read_area_file(args.area)[0]
            else:
                data = (await s.store.area(args.area)).spec.to_dict(s.registry)
            payload = json.loads(args.payload) if args.payload else None
            _print_json(await s.test(data, payload))
            return 0
        if action == "find":
            found = await _find_item(s, args.text, args.area)
            if args.json:
                _print_json(found)
            elif not found:
                keep_days = load_settings(data_dir).keep_failed_runs_days
                from engine.inspect import not_seen

                print(not_seen(args.text, keep_days))
            for hit in [] if args.json else found:
                print(hit["answer"])
                print(f"    found in {hit['field']}: {_cut(hit['value'], 76)}")
            return 0
        area_id = await s.area_id(args.area)
        if action in ("snooze", "wake"):
            status = await _snooze_or_wake(s, area_id, args)
            if args.json:
                _print_json(status)
            else:
                sys.stdout.write(_status_text(status))
            return 0
        if action == "check-now":
            area = await s.store.area(area_id)
            verdicts = await _check_now(s, area_id)
            if args.json:
                _print_json(verdicts)
            else:
                _print_verdicts(area.name, verdicts)
            return 0
        if action == "show":
            area = await s.store.area(area_id)
            names = {a.id: a.name for a in await AccountStore(s.store.db).accounts()}
            info = {"id": area.id, **area.spec.to_dict(s.registry, names),
                    "paused_reason": area.paused_reason,
                    "webhook_url": await s.webhook_url(area_id) if area.webhook_hash else None,
                    **_lifecycle_info(await _lifecycle(s, area_id))}
            if area.webhook_hash and info["webhook_url"] is None:
                info["webhook_url"] = "(shown while Hookline runs: start `hookline serve`)"
            if args.json:
                _print_json(info)
            else:
                sys.stdout.write(yaml.safe_dump(info, sort_keys=False, allow_unicode=True))
            return 0
        if action == "checks":
            area = await s.store.area(area_id)
            checks = await s.store.checks(area_id, args.limit)
            if args.json:
                _print_json(checks)
            else:
                _print_checks(area.name, checks)
            return 0
        if action == "why":
            why, text = await _why(s, area_id)
            if args.json:
                _print_json(why)
            else:
                sys.stdout.write(text)
            return 0
        if action in ("enable", "disable"):
            await s.set_enabled(area_id, action == "enable")
            print(f"{action}d {area_id[:8]}")
            return 0
        if action == "remove":
            await s.remove(area_id)
            print(f"removed {area_id[:8]}")
            return 0
        if action == "run":
            events = await s.run(area_id)
            print(f"fired event {', '.join(map(str, events))}; see `hookline runs --area "
                  f"{area_id[:8]}`")
            return 0
        if action == "secret":
            value = getpass.getpass(f"Value for {args.param}: ")
            slot, _, name = args.param.rpartition(".")
            area = await s.store.area(area_id)
            step_slot = "trigger"
            if slot.startswith("reactions["):
                index = int(slot[len("reactions["):].split("]")[0])
                step_slot = area.spec.reactions[index].uid
            store = secret_store_of(data_dir)
            store.set(secret_ref(area_id, step_slot, name), value)
            print("saved in the encrypted secrets file" if isinstance(
                store, EncryptedFileSecretStore) else "saved in the OS keyring")
            return 0
    raise AssertionError(action)  # pragma: no cover


#: Why a check's next one is when it is, in words.
NEXT_WHY = {"interval": "on schedule", "backoff": "backing off after failures",
            "retry-after": "when the service asked"}


def _print_checks(name: str, checks: Sequence[dict[str, Any]]) -> None:
    """An area's check history as a table, newest first, local times, errors in full."""
    if not checks:
        print(f"“{name}” has not been checked yet. Only automations whose trigger looks "
              "for new items (a feed, a folder, a service's API) are checked; the others "
              "fire by themselves.")
        return
    print(f"Checks of “{name}”, newest first (times are local):")
    print(f"{'WHEN':19}  {'TOOK':>7}  {'RESULT':12}  {'ITEMS':>5}  {'NEW':>4}  NEXT CHECK")
    for check in checks:
        at = check["at"].astimezone()
        failed = check["outcome"] == "failed"
        items = "—" if failed else str(check["items"])
        new = "—" if failed else str(check["new"])
        after = "—"
        if check["next_at"] is not None:
            next_at = check["next_at"].astimezone()
            when = f"{next_at:%H:%M:%S}" if next_at.date() == at.date() else \
                f"{next_at:%Y-%m-%d %H:%M:%S}"
            after = f"{when} ({NEXT_WHY.get(check['next_why'], check['next_why'])})"
        print(f"{at:%Y-%m-%d %H:%M:%S}  {check['seconds']:>6.2f}s  {check['outcome']:12}  "
              f"{items:>5}  {new:>4}  {after}")
        if check["error"]:
            print(textwrap.indent(textwrap.fill(check["error"], 88), "    "))


async def _why(s: Session, area_id: str) -> tuple[dict[str, Any], str]:
    """Why the area fired or did not, as data and as text: from the running engine (its
    next times, failure streaks and deliveries are in it), else from this process."""
    if s.remote:
        answer = await s.remote.call("POST", "/command/areas.why", {"area": area_id})
        return dict(answer["result"]["why"]), str(answer["result"]["text"])
    from engine.why import render_text

    assert s.local
    why = await s.local.why(area_id)
    return why.to_dict(), render_text(why)


async def _lifecycle(s: Session, area_id: str) -> dict[str, Any]:
    """The area's state, next change and latest transitions (engine/lifecycle.py)."""
    if s.remote:
        answer = await s.remote.call("POST", "/command/areas.lifecycle", {"area": area_id})
        return dict(answer["result"])
    assert s.local
    return (await s.local.lifecycle(area_id)).to_dict()


async def _snooze_or_wake(s: Session, area_id: str, args: argparse.Namespace
                          ) -> dict[str, Any]:
    """Snooze (``args.until``: 2h, until 18:00, ...) or wake the area, in the running
    engine when there is one (its timers end the snooze), else in the database."""
    import tzlocal

    from engine.lifecycle import parse_snooze
    from engine.storage.schema import utcnow

    body: dict[str, Any] = {"area": area_id}
    if args.action == "snooze":
        until = parse_snooze(" ".join(args.until), utcnow(), tzlocal.get_localzone())
        body.update(until=until.isoformat(), catch_up=args.catch_up)
    if s.remote:
        answer = await s.remote.call("POST", f"/command/areas.{args.action}", body)
        return dict(answer["result"])
    assert s.local
    if args.action == "snooze":
        await s.local.snooze(area_id, until, catch_up=args.catch_up)
    else:
        await s.local.wake(area_id)
    return (await s.local.lifecycle(area_id)).to_dict()


def _lifecycle_info(status: dict[str, Any]) -> dict[str, Any]:
    """``areas show``'s lines of the area's life: state, next change, transitions."""
    from datetime import datetime

    def local(at: str) -> str:
        return f"{datetime.fromisoformat(at).astimezone():%Y-%m-%d %H:%M}"

    nxt = (f"{status['next_state']} at {local(status['next_change'])}"
           if status["next_change"] else None)
    return {"state": status["label"], "next_change": nxt,
            "transitions": [f"{local(t['at'])}  {t['from']} -> {t['to']}: {t['cause']}"
                            for t in status["history"]]}


def _status_text(status: dict[str, Any]) -> str:
    info = _lifecycle_info(status)
    line = f"{status['area_id'][:8]} is {info['state']}"
    return line + (f"; next: {info['next_change']}\n" if info["next_change"] else "\n")


async def _check_now(s: Session, area_id: str) -> list[dict[str, Any]]:
    """Check now through the running engine (a trigger's background connection is
    its), else in this process."""
    if s.remote:
        answer = await s.remote.call("POST", "/command/check-now", {"area": area_id})
        return list(answer["result"])
    assert s.local
    return [v.to_dict() for v in await s.local.check_now(area_id)]


async def _find_item(s: Session, text: str, area: str | None) -> list[dict[str, Any]]:
    area_id = await s.area_id(area) if area else None
    if s.remote:
        answer = await s.remote.call("POST", "/command/find-item",
                                     {"text": text, "area": area_id})
        return list(answer["result"])
    assert s.local
    return [f.to_dict() for f in await s.local.find_item(text, area_id)]


def _print_verdicts(name: str, verdicts: Sequence[dict[str, Any]]) -> None:
    """What each item the trigger returns now would do, in the trigger's order."""
    count = f"{len(verdicts)} item{'s' if len(verdicts) != 1 else ''}"
    print(f"“{name}”'s trigger returns {count} now (nothing was fired or saved)"
          + (":" if verdicts else "."))
    for verdict in verdicts:
        print(f"- {_cut(verdict['title'], 86)}")
        print(textwrap.indent(textwrap.fill(verdict["reason"], 84), "    "))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


async def cmd_runs(args: argparse.Namespace, data_dir: Path) -> int:
    from engine.storage.db import database_url, migrate, open_async
    from engine.store import Store
    from engine.trace import installation_id

    settings = load_settings(data_dir)
    url = database_url(data_dir, settings.database_url)
    await migrate(url)
    db = open_async(url)
    try:
        store = Store(db, installation_id(data_dir))
        if args.run_id:
            run = await store.run(args.run_id)
            _print_json(run)
            return 0
        area_id = (await store.area(args.area)).id if args.area else None
        runs = await store.runs(area_id, args.limit, args.status)
        if args.json:
            _print_json(runs)
            return 0
        if not runs:
            print("No runs yet.")
        for run in runs:
            took = ""
            if run["finished_at"]:
                took = f" {(run['finished_at'] - run['started_at']).total_seconds():.2f}s"
            resumed = " (resumed)" if run["resumed"] else ""
            trace = (run["trace_id"] or "-")[:8]  # the log's [trace …] starts with it
            print(f"#{run['id']:<6} {run['started_at']:%Y-%m-%d %H:%M:%S} "
                  f"{run['status']:11}{took:>8}  {trace:8}  {run['area_name'][:40]}{resumed}")
            if run["error"]:
                print(textwrap.indent(textwrap.fill(run["error"], 90), "         "))
        return 0
    finally:
        await db.dispose()


async def _role(data_dir: Path) -> str:
    """``, active`` (or standby, fenced) as the running engine says over its control
    channel; empty when it cannot be asked."""
    from engine.control import ControlClient

    if not ControlClient.available(data_dir):
        return ""
    try:
        answer = await ControlClient(data_dir).call("GET", "/role")
    except (HooklineError, OSError, ValueError):
        return ""
    return f", {answer.get('role')}"


async def cmd_doctor(_args: argparse.Namespace, data_dir: Path) -> int:
    import asyncio

    from engine import logs
    from engine.lock import DataDirLock
    from engine.registry import Registry
    from engine.secrets import EncryptedFileSecretStore, SecretStore, open_secret_store
    from engine.storage.db import database_url, migrate, shown_url

    problems = 0

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal problems
        problems += not ok
        print(f"{'ok ' if ok else 'BAD'}  {what:14} {detail}")

    line(True, "version", __version__)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".doctor"
        probe.write_text("x")
        probe.unlink()
        line(True, "data folder", str(data_dir))
    except OSError as exc:
        line(False, "data folder", f"{data_dir}: {exc.strerror}")
    try:
        settings = load_settings(data_dir)
        line(True, "settings", str(data_dir / "settings.json"))
    except HooklineError as exc:
        line(False, "settings", str(exc))
        settings = Settings()
    url = database_url(data_dir, settings.database_url)
    try:
        await migrate(url)
        line(True, "database", shown_url(url))
    except HooklineError as exc:
        line(False, "database", str(exc))
    ok, why = SecretStore.available()
    if not ok and settings.secrets_file_fallback:
        try:
            kept = open_secret_store(data_dir, file_fallback=True)
            where = kept.path if isinstance(kept, EncryptedFileSecretStore) else "the keyring"
            line(True, "secrets", f"the encrypted file {where} (no OS keyring: {why})")
        except HooklineError as exc:
            line(False, "secrets", str(exc))
    else:
        line(ok, "keyring", why)
    lock = DataDirLock(data_dir)
    running = lock.held_elsewhere()
    line(True, "engine", f"running (pid {lock.holder()}{await _role(data_dir)})"
         if running else "not running")
    from engine import standby

    if standby.wanted(url):
        try:
            holder = await asyncio.to_thread(standby.lease_holder, url)
        except Exception as exc:
            line(False, "lease", f"cannot read the database's locks: {exc}")
        else:
            line(True, "lease", f"an engine is active on this database ({holder})"
                 if holder else "no engine is active on this database")
    from engine.remote import peer

    try:
        described = peer.describe(data_dir)
    except HooklineError as exc:
        described = (False, str(exc))
    if described is not None:
        line(described[0], "standby peer", described[1])
    line(True, "log", f"{logs.log_file(data_dir)} (level {settings.log_level})")
    if settings.listener_enabled and not running:
        import socket

        with socket.socket() as sock:
            try:
                sock.bind((settings.listener_host, settings.listener_port))
                line(True, "listener port", f"{settings.listener_host}:{settings.listener_port}"
                                            " is free")
            except OSError as exc:
                line(False, "listener port", f"{settings.listener_port}: {exc.strerror}; "
                                             "choose another with `hookline settings set "
                                             "listener_port N`")
    registry = Registry.load()
    line(not registry.broken, "services", f"{len(registry.services)} loaded"
         + "".join(f"; plugin {n} broken: {e}" for n, e in registry.broken.items()))
    return 1 if problems else 0


def cmd_settings(args: argparse.Namespace, data_dir: Path) -> int:
    settings = load_settings(data_dir)
    if args.action == "set":
        value = args.value
        if args.name == "database_url":  # a password goes to the keyring
            from engine.storage.db import keep_password_in_keyring

            value = keep_password_in_keyring(value)
        settings = settings.replace(**{args.name: value})
        save_settings(data_dir, settings)
        print(f"{args.name} = {getattr(settings, args.name)!r} (restart a running Hookline)")
        return 0
    values = settings.to_mapping()
    if values["database_url"]:  # one typed into settings.json may hold a password
        from engine.storage.db import shown_setting

        values["database_url"] = shown_setting(values["database_url"])
    if args.json:
        _print_json(values)
        return 0
    for param in Settings.params():
        print(f"{param.name:28} {values[param.name]!r:24} {param.label}")
    return 0


# ---------------------------------------------------------------------- parser


class _AskTheFullParser(Exception):
    """The quick parser cannot answer this command line as the full one would."""


class _QuickParser(argparse.ArgumentParser):
    """The command line without ``accounts`` and ``backup``, whose arguments are declared
    beside their machinery (aiohttp, the database) and take half a second to import.

    It answers what needs neither (``--version``, ``services``, ``areas`` ...) and hands
    help, errors and the commands it leaves out to the full parser, so that whatever is
    printed is the full parser's.
    """

    def error(self, message: str) -> NoReturn:
        raise _AskTheFullParser(message)

    def print_help(self, file: Any = None) -> None:
        raise _AskTheFullParser("help")


def build_parser(quick: bool = False) -> argparse.ArgumentParser:
    """The ``hookline`` command line; ``quick``: without the commands that are costly to
    declare (see ``_QuickParser``)."""
    parser = (_QuickParser if quick else argparse.ArgumentParser)(
        prog="hookline", description="Personal automation on your own machine.")
    parser.add_argument("--version", action="version", version=f"hookline {__version__}")
    parser.add_argument("--data-dir", help="data folder (default: $HOOKLINE_DATA_DIR or the "
                                           "OS's application data folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the engine headless (Ctrl+C stops)")
    serve.add_argument("--port", type=int, help="webhook listener port (overrides settings)")
    serve.add_argument("--host", help="webhook listener address (overrides settings)")
    serve.add_argument("--remote", action="store_true",
                       help="let paired computers control this engine over the network "
                            "(TLS; `hookline pair` gives a code)")
    serve.add_argument("--remote-host", help="remote control address (overrides settings)")
    serve.add_argument("--remote-port", type=int,
                       help="remote control port (overrides settings)")
    serve.add_argument("--demo", action="store_true",
                       help="create a demo area first if there are none")
    # also after the command, as README writes it; SUPPRESS keeps a -v given before it
    serve.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging (Hookline's own; the database layer stays quiet)")

    services = sub.add_parser("services", help="list services, their triggers and reactions")
    services.add_argument("service", nargs="?", help="one service, with its parameters")
    services.add_argument("--json", action="store_true")
    services.add_argument("--markdown", action="store_true",
                          help="the reference page (docs/services.md)")

    areas = sub.add_parser("areas", help="list, import, export and manage areas")
    asub = areas.add_subparsers(dest="action", required=True, metavar="ACTION")
    asub.add_parser("list", help="all areas").add_argument("--json", action="store_true")
    p = asub.add_parser("show", help="one area (and its webhook address)")
    p.add_argument("area", help="id, id prefix or name")
    p.add_argument("--json", action="store_true")
    p = asub.add_parser("import", help="add areas from a YAML or JSON file ('-' for stdin)")
    p.add_argument("file")
    p = asub.add_parser("export", help="write areas as YAML/JSON (secrets left out)")
    p.add_argument("area", nargs="?")
    p.add_argument("-o", "--output")
    p.add_argument("--folder", help="one YAML file per area in this folder (for git)")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml")
    for action, text in (("enable", "turn an area on"), ("disable", "turn an area off"),
                         ("remove", "delete an area and its secrets"),
                         ("run", "fire an area once now")):
        asub.add_parser(action, help=text).add_argument("area")
    p = asub.add_parser("checks", help="the latest checks of an area's trigger: what each "
                                       "found or why it failed, and when the next is due")
    p.add_argument("area", help="id, id prefix or name")
    p.add_argument("--limit", type=int, default=50, help="how many (the last 50 are kept)")
    p.add_argument("--json", action="store_true")
    p = asub.add_parser("why", help="why an area fired or did not: its state, its trigger's "
                                    "latest checks, times or deliveries, its reactions")
    p.add_argument("area", help="id, id prefix or name")
    p.add_argument("--json", action="store_true")
    p = asub.add_parser("snooze", help="stop an area firing for a while; it comes back by "
                                       "itself (deliveries meanwhile are recorded as skipped)")
    p.add_argument("area", help="id, id prefix or name")
    p.add_argument("until", nargs="+", help="how long: 30m, 2h, until 18:00, until tomorrow "
                                            "(08:00), until 2027-01-01 09:00")
    p.add_argument("--catch-up", action="store_true",
                   help="a polling trigger fires what it found during the snooze once it ends "
                        "(else that is remembered and never fires)")
    p.add_argument("--json", action="store_true")
    p = asub.add_parser("wake", help="end an area's snooze now")
    p.add_argument("area", help="id, id prefix or name")
    p.add_argument("--json", action="store_true")
    p = asub.add_parser("check-now", help="check an area's trigger once without firing: "
                                          "what each item would do (new, seen, filtered)")
    p.add_argument("area", help="id, id prefix or name")
    p.add_argument("--json", action="store_true")
    p = asub.add_parser("find", help="whether and when an item was seen (part of its id, "
                                     "link or title), and the run it started")
    p.add_argument("text", help="the item's id, link or part of its title")
    p.add_argument("--area", help="only this area (id, id prefix or name)")
    p.add_argument("--json", action="store_true")
    p = asub.add_parser("sync", help="show (and with --apply make) the changes a folder "
                                     "written by `export --folder` holds")
    p.add_argument("folder")
    p.add_argument("--apply", action="store_true")
    p = asub.add_parser("test", help="dry run: what each reaction would send")
    p.add_argument("area", help="an area, or a YAML/JSON file with one")
    p.add_argument("--payload", help="trigger payload as JSON (default: a sample)")
    p = asub.add_parser("secret", help="set a secret parameter (asks for the value)")
    p.add_argument("area")
    p.add_argument("param", help="e.g. trigger.secret or reactions[0].password")

    runs = sub.add_parser("runs", help="recent runs, newest first")
    runs.add_argument("run_id", nargs="?", type=int, help="one run in full")
    runs.add_argument("--area")
    runs.add_argument("--status", choices=("running", "succeeded", "failed", "skipped",
                                           "missed", "interrupted"))
    runs.add_argument("--limit", type=int, default=30)
    runs.add_argument("--json", action="store_true")

    sub.add_parser("doctor", help="check the data folder, database, keyring and port")

    from engine.os_service import add_parser as add_service_parser

    add_service_parser(sub)

    if not quick:
        from engine.auth import cli as accounts_cli
        from engine.backup import add_parser as add_backup_parser
        from engine.remote import cli as remote_cli
        from engine.remote import peer_cli

        accounts_cli.add_parser(sub)
        add_backup_parser(sub)
        remote_cli.add_parser(sub)
        peer_cli.add_parser(sub)

    st = sub.add_parser("settings", help="show or change settings")
    ssub = st.add_subparsers(dest="action", metavar="ACTION")
    ssub.add_parser("list").add_argument("--json", action="store_true")
    p = ssub.add_parser("set")
    p.add_argument("name")
    p.add_argument("value")
    return parser


def parse_args(argv: Sequence[str] | None = None,
               build: Callable[[bool], argparse.ArgumentParser] = build_parser,
               ) -> argparse.Namespace:
    """``argv`` parsed by the quick parser, or by the full one where the quick one cannot
    answer; ``build`` makes either (the launcher adds its own options)."""
    try:
        return build(True).parse_args(argv)
    except _AskTheFullParser:
        return build(False).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("aiohttp.access", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command is None:
        # Until the desktop app lands, no command means: the engine, with a demo.
        args = parse_args([*(argv or sys.argv[1:]), "serve", "--demo"])
    data_dir = resolve_data_dir(args.data_dir)
    try:
        if args.command == "services":
            return cmd_services(args, data_dir)
        if args.command == "settings":
            if args.action is None:
                args.action, args.json = "list", False
            return cmd_settings(args, data_dir)
        if args.command == "backup":
            from engine.backup import cmd_backup

            return cmd_backup(args, data_dir)
        if args.command == "service":
            from engine.os_service import cmd_service

            return cmd_service(args, data_dir, lambda serve: parse_args(["serve", *serve]))
        import asyncio

        if args.command == "accounts":
            from engine.auth import cli as accounts_cli

            return asyncio.run(accounts_cli.cmd_accounts(args, data_dir))
        if args.command in ("pair", "remote"):
            from engine.remote import cli as remote_cli

            return asyncio.run(remote_cli.main(args, data_dir))
        if args.command == "standby":
            from engine.remote import peer_cli

            return asyncio.run(peer_cli.main(args, data_dir))
        handler = {"serve": cmd_serve, "areas": cmd_areas, "runs": cmd_runs,
                   "doctor": cmd_doctor}[args.command]
        return asyncio.run(handler(args, data_dir))
    except HooklineError as exc:
        print(f"hookline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
