"""The engine's API over the control channel, for a desktop app attached from elsewhere:
a whitelist of calls (``POST /rpc/<name>``, JSON arguments), the bus as a websocket
(``GET /rpc/events``), and the typed codec for the values that cross.

The codec writes each engine value with a type tag from :data:`TYPES` and rebuilds the
same object on the other side; it never imports or calls a name the peer sends, and a
tag it does not know is refused (:class:`CodecError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import socket
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from datetime import date, datetime, time, timedelta
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import WSCloseCode, WSMsgType, web

import engine as package
from engine import area_files, lifecycle
from engine import why as explaining
from engine.app import Sample
from engine.areas import Area, AreaSpec, Step
from engine.auth.accounts import AccountNotFound, Removal
from engine.auth.custom import CustomProvider
from engine.auth.oauth import DEFAULT_TIMEOUT
from engine.auth.relay import Relayed, SignedIn
from engine.auth.session import Account
from engine.backup import (
    BackupError,
    backup_dir,
    list_backups,
    request_restore,
    sqlite_path,
    taken_at,
)
from engine.bus import Message
from engine.errors import (
    AuthError,
    CatalogError,
    ConfigError,
    HooklineError,
    ImportRefused,
    LifecycleError,
    SecretError,
    SeveralProblems,
    StorageError,
    TemplateError,
    ValidationError,
)
from engine.inspect import Found, ItemVerdict
from engine.journal import Journaled
from engine.remote.site import CLIENT
from engine.settings import Settings, save_settings
from engine.store import NotFound
from engine.windows import Weekly, Window

if TYPE_CHECKING:
    from engine.app import Engine

log = logging.getLogger(__name__)

#: The tag key of an encoded value (a dict that has it is a tagged value).
TAG = "$"

#: Every engine type that may cross, by its tag: dataclasses, named tuples and enums.
#: Add a type here (and nowhere else) to let it cross.
TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    Area, AreaSpec, Step, Window, Weekly,
    Account, Removal, CustomProvider, Relayed, SignedIn,
    Settings, Sample, Journaled,
    Found, ItemVerdict,
    lifecycle.Status, lifecycle.Transition,
    explaining.Why, explaining.State, explaining.Polling, explaining.Check,
    explaining.Fate, explaining.Failing, explaining.Timing, explaining.Miss,
    explaining.Webhook, explaining.DeliveryWhy, explaining.ReactionWhy,
    explaining.Outcome, explaining.Section,
)}

#: The errors that cross by name (each made from its message alone).
ERRORS: dict[str, type[HooklineError]] = {cls.__name__: cls for cls in (
    HooklineError, ConfigError, CatalogError, LifecycleError, SecretError, StorageError,
    NotFound, AccountNotFound, AuthError, BackupError,
)}

#: Where a client may ask whether a secret is saved (never for its value), and where
#: it may save one (the settings' own, such as the MQTT broker's password).
SECRETS_SHOWN = ("area/", "settings/")
SECRETS_SET = ("settings/",)

#: The messages that change what the client holds of an area (sent with the area).
AREA_TOPICS = ("area.", "poll.")

#: Messages held for a slow event stream before the oldest are dropped (the client is
#: then told to read everything again).
BACKLOG = 10_000


class CodecError(HooklineError):
    """A value that may not cross: an unregistered type, or an unknown tag."""


# --------------------------------------------------------------------- codec


def encode(value: Any) -> Any:
    """``value`` as JSON-able data, engine objects tagged (raises CodecError)."""
    if value is None or (isinstance(value, (bool, int, float, str))
                         and not isinstance(value, enum.Enum)):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: encode(v) for k, v in value.items()}
        return {TAG: "dict", "v": [[encode(k), encode(v)] for k, v in value.items()]}
    name = type(value).__name__
    if TYPES.get(name) is type(value):
        if isinstance(value, enum.Enum):
            return {TAG: name, "v": encode(value.value)}
        if isinstance(value, tuple):  # a named tuple
            return {TAG: name, "v": {k: encode(getattr(value, k))
                                     for k in type(value)._fields}}  # type: ignore[attr-defined]
        assert dataclasses.is_dataclass(value)
        return {TAG: name, "v": {f.name: encode(getattr(value, f.name))
                                 for f in dataclasses.fields(value) if f.init}}
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {TAG: type(value).__name__, "v": [encode(v) for v in value]}
    if isinstance(value, datetime):
        zone = value.tzinfo
        out = {TAG: "datetime", "v": value.isoformat()}
        if isinstance(zone, ZoneInfo):
            out["zone"] = zone.key
        return out
    if isinstance(value, date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, timedelta):
        return {TAG: "timedelta", "v": value.total_seconds()}
    if isinstance(value, PurePath):
        return {TAG: "path", "v": str(value)}
    raise CodecError(f"{type(value).__module__}.{type(value).__qualname__} may not cross "
                     "to another computer (not in engine.rpc.TYPES)")


def decode(data: Any) -> Any:
    """The value :func:`encode` made ``data`` from (raises CodecError on a tag it does
    not know or a value that does not fit its type)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if TAG not in data:
        return {k: decode(v) for k, v in data.items()}
    tag, value = data[TAG], data.get("v")
    try:
        return _decode_tagged(tag, value, data)
    except CodecError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CodecError(f"a {tag} that cannot be read: {exc}") from None


def _decode_tagged(tag: Any, value: Any, data: dict[str, Any]) -> Any:
    if tag == "dict":
        return {decode(k): decode(v) for k, v in value}
    if tag == "tuple":
        return tuple(decode(v) for v in value)
    if tag == "set":
        return {decode(v) for v in value}
    if tag == "frozenset":
        return frozenset(decode(v) for v in value)
    if tag == "datetime":
        moment = datetime.fromisoformat(value)
        zone = data.get("zone")
        if zone and moment.tzinfo is not None:
            # without such a zone here, the offset alone stays right
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                moment = moment.astimezone(ZoneInfo(zone))
        return moment
    if tag == "date":
        return date.fromisoformat(value)
    if tag == "time":
        return time.fromisoformat(value)
    if tag == "timedelta":
        return timedelta(seconds=value)
    if tag == "path":
        return PurePath(value)
    cls = TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise CodecError(f"refused a value of unknown type {tag!r}")
    if issubclass(cls, enum.Enum):
        return cls(decode(value))
    if not isinstance(value, dict):
        raise CodecError(f"a {tag} must be given as its fields")
    fields = {k: decode(v) for k, v in value.items()}
    return cls(**fields)


# --------------------------------------------------------------------- calls


@dataclasses.dataclass(frozen=True)
class Call:
    """One call a client may make: the function and the types of its arguments."""

    run: Callable[..., Awaitable[Any]]
    params: Mapping[str, Any]
    required: frozenset[str]

    def check(self, arguments: Mapping[str, Any]) -> None:
        """Refuse unknown, missing or mistyped arguments (ValidationError)."""
        unknown = set(arguments) - set(self.params)
        if unknown:
            raise ValidationError(", ".join(sorted(unknown)), "not an argument of this call")
        missing = self.required - set(arguments)
        if missing:
            raise ValidationError(", ".join(sorted(missing)), "missing")
        for name, value in arguments.items():
            if not _fits(value, self.params[name]):
                raise ValidationError(name, f"{type(value).__name__} is not "
                                            f"{self.params[name]}")


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    args = typing.get_args(hint)
    if origin is not None:
        hint = origin
    if hint is Mapping:
        hint = dict
    if not isinstance(value, hint):
        return False
    if hint is dict and len(args) == 2:  # its keys and values too
        return all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if hint is list and len(args) == 1:
        return all(_fits(item, args[0]) for item in value)
    return True


CALLS: dict[str, Call] = {}

#: What the call being answered leaves for after its answer is sent (see after_answer).
_AFTER_ANSWER: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "after_answer", default=None)


def after_answer(action: Callable[[], None]) -> None:
    """Do ``action`` once the answer to the call under way has been sent (at once
    outside a call): a call that ends the engine's life is heard by its caller first."""
    waiting = _AFTER_ANSWER.get()
    if waiting is None:
        action()
    else:
        waiting.append(action)


def rpc(name: str) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Offer ``function(engine, **arguments)`` as ``POST /rpc/<name>``, its arguments
    checked against its annotations."""

    def add(function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        import inspect

        hints = typing.get_type_hints(function, globalns={**globals(), "Engine": object})
        signature = inspect.signature(function)
        names = list(signature.parameters)[1:]  # after the engine
        CALLS[name] = Call(
            function, {n: hints.get(n, Any) for n in names},
            frozenset(n for n in names
                      if signature.parameters[n].default is inspect.Parameter.empty))
        return function

    return add


def held(engine: Engine, area: Area) -> dict[str, Any]:
    """An area with what the window reads about it without a call: its next firing
    (a one-time timer's), and its trigger's error while its checks fail."""
    return {"area": area, "next_fire": engine.scheduler.next_fire(area.id),
            "failing": engine.poller.failing(area.id)}


def webhook_base(engine: Engine) -> str | None:
    listener = engine.listener
    return None if listener is None or listener.port is None else listener.url_for("")


@rpc("snapshot")
async def _snapshot(engine: Engine) -> dict[str, Any]:
    return {"version": package.__version__, "name": socket.gethostname(),
            "services": sorted(engine.registry.services), "settings": engine.settings,
            "webhook_base": webhook_base(engine),
            "listener_port": engine.listener.port if engine.listener else None,
            "areas": [held(engine, a) for a in engine.areas()],
            # the restore asked for before this start: done (the backup's name) or why not
            "restored": engine.restored.name if engine.restored is not None else None,
            "restore_failed": engine.restore_failed}


@rpc("area")
async def _area(engine: Engine, area_id: str) -> dict[str, Any]:
    return held(engine, engine.area(area_id))


@rpc("create_area")
async def _create_area(engine: Engine, spec: AreaSpec) -> Area:
    return await engine.create_area(spec)


@rpc("update_area")
async def _update_area(engine: Engine, area_id: str, spec: AreaSpec) -> Area:
    return await engine.update_area(area_id, spec)


@rpc("import_areas")
async def _import_areas(engine: Engine, items: list[Any]) -> list[Area]:
    area_files.bounded(items, "the import")  # no more than a file may hold
    return await engine.import_areas(items)


@rpc("remove_area")
async def _remove_area(engine: Engine, area_id: str) -> None:
    await engine.remove_area(area_id)


@rpc("set_enabled")
async def _set_enabled(engine: Engine, area_id: str, enabled: bool) -> Area:
    return await engine.set_enabled(area_id, enabled)


@rpc("run_now")
async def _run_now(engine: Engine, area_id: str, payload: dict[str, Any] | None = None
                   ) -> list[Journaled]:
    return await engine.run_now(area_id, payload)


@rpc("replay")
async def _replay(engine: Engine, event_id: int, area_id: str | None = None
                  ) -> list[Journaled]:
    return await engine.replay(event_id, area_id)


@rpc("sample")
async def _sample(engine: Engine, spec: AreaSpec, area_id: str | None = None,
                  body: Any = None) -> Sample:
    return await engine.sample(spec, area_id, body)


@rpc("test_area")
async def _test_area(engine: Engine, spec: AreaSpec, payload: dict[str, Any] | None = None,
                     area_id: str | None = None, live: bool = False, body: Any = None
                     ) -> dict[str, Any]:
    return await engine.test_area(spec, payload, area_id, live=live, body=body)


@rpc("webhook_url")
async def _webhook_url(engine: Engine, area_id: str) -> str | None:
    return await engine.webhook_url(area_id)


@rpc("checks")
async def _checks(engine: Engine, area_id: str, limit: int = 50) -> list[dict[str, Any]]:
    return await engine.checks(area_id, limit)


@rpc("failing_checks")
async def _failing_checks(engine: Engine) -> list[dict[str, Any]]:
    return await engine.failing_checks()


@rpc("snooze")
async def _snooze(engine: Engine, area_id: str, until: datetime,
                  catch_up: bool | None = None) -> Area:
    return await engine.snooze(area_id, until, catch_up=catch_up)


@rpc("wake")
async def _wake(engine: Engine, area_id: str) -> Area:
    return await engine.wake(area_id)


@rpc("lifecycle")
async def _lifecycle(engine: Engine, area_id: str, limit: int = 10) -> lifecycle.Status:
    return await engine.lifecycle(area_id, limit)


@rpc("check_now")
async def _check_now(engine: Engine, area_id: str) -> list[ItemVerdict]:
    return await engine.check_now(area_id)


@rpc("find_item")
async def _find_item(engine: Engine, text: str, area_id: str | None = None) -> list[Found]:
    return await engine.find_item(text, area_id)


@rpc("why")
async def _why(engine: Engine, area_id: str) -> explaining.Why:
    return await engine.why(area_id)


@rpc("wait_idle")
async def _wait_idle(engine: Engine) -> None:
    await engine.wait_idle()


@rpc("store.runs")
async def _runs(engine: Engine, area_id: str | None = None, limit: int = 50,
                status: str | None = None) -> list[dict[str, Any]]:
    return await engine.store.runs(area_id, limit, status)


@rpc("store.run")
async def _run(engine: Engine, run_id: int) -> dict[str, Any]:
    return await engine.store.run(run_id)


@rpc("store.event")
async def _event(engine: Engine, event_id: int) -> dict[str, Any]:
    return await engine.store.event(event_id)


@rpc("store.last_runs")
async def _last_runs(engine: Engine) -> dict[str, dict[str, Any]]:
    return await engine.store.last_runs()


@rpc("accounts.accounts")
async def _accounts(engine: Engine, service_id: str | None = None) -> list[Account]:
    return await engine.accounts.accounts(service_id)


@rpc("accounts.has_client")
async def _has_client(engine: Engine, service_id: str) -> bool:
    try:
        await engine.accounts.oauth_client(service_id)
    except HooklineError:
        return False
    return True


@rpc("accounts.set_client")
async def _set_client(engine: Engine, service_id: str, client_id: str,
                      client_secret: str | None = None) -> None:
    await engine.accounts.set_client(service_id, client_id, client_secret)


@rpc("accounts.add_token")
async def _add_token(engine: Engine, service_id: str, token: str, name: str | None = None
                     ) -> Account:
    return await engine.accounts.add_token(service_id, token, name)


@rpc("accounts.sign_in_place")
async def _sign_in_place(engine: Engine, service_id: str) -> tuple[str, int | None]:
    return await engine.accounts.sign_in_place(service_id)


@rpc("accounts.begin_sign_in")
async def _begin_sign_in(engine: Engine, service_id: str, redirect_uri: str,
                         wait: float = DEFAULT_TIMEOUT) -> Relayed:
    return await engine.accounts.begin_sign_in(service_id, redirect_uri, wait)


@rpc("accounts.finish_sign_in")
async def _finish_sign_in(engine: Engine, sign_in: str, answer: dict[str, str]
                          ) -> SignedIn:
    return await engine.accounts.finish_sign_in(sign_in, answer)


@rpc("accounts.abandon_sign_in")
async def _abandon_sign_in(engine: Engine, sign_in: str) -> None:
    engine.accounts.abandon_sign_in(sign_in)


@rpc("accounts.remove")
async def _remove_account(engine: Engine, account_id: str) -> Removal:
    return await engine.accounts.remove(account_id)


@rpc("accounts.reload")
async def _reload_accounts(engine: Engine) -> None:
    await engine.accounts.reload()


@rpc("accounts.custom.all")
async def _custom_all(engine: Engine) -> list[CustomProvider]:
    return await engine.accounts.custom.all()


@rpc("accounts.custom.get")
async def _custom_get(engine: Engine, name: str) -> CustomProvider | None:
    return await engine.accounts.custom.get(name)


@rpc("accounts.custom.save")
async def _custom_save(engine: Engine, provider: CustomProvider) -> None:
    await engine.accounts.custom.save(provider)


@rpc("accounts.custom.delete")
async def _custom_delete(engine: Engine, name: str) -> None:
    await engine.accounts.custom.delete(name)


@rpc("secrets.saved")
async def _secret_saved(engine: Engine, ref: str) -> bool:
    """Whether a secret is saved (its value never leaves the engine's computer)."""
    if not ref.startswith(SECRETS_SHOWN):
        raise ValidationError("ref", "not a secret a client may ask about")
    return bool(await asyncio.to_thread(engine.secrets.get, ref))


@rpc("secrets.set")
async def _secret_set(engine: Engine, ref: str, value: str) -> None:
    if not ref.startswith(SECRETS_SET):
        raise ValidationError("ref", "not a secret a client may set")
    await asyncio.to_thread(engine.secrets.set, ref, value)


#: Settings that widen what Hookline may do on its computer, or who may reach it and
#: its data: a paired computer may read them but not change them (a stolen laptop's
#: pairing must not turn on shell commands or open the engine wider); they are changed
#: on the engine's own computer (its window, or ``hookline settings set``).
ON_ITS_OWN_COMPUTER = ("database_url", "allow_shell", "allow_internal_targets",
                       "secrets_file_fallback", "remote_enabled", "remote_host",
                       "remote_port")


def refuse_from_afar(current: Settings, wanted: Settings) -> None:
    """Raise if ``wanted`` changes a setting kept to the engine's own computer."""
    labels = {p.name: p.label for p in Settings.params()}
    changed = [name for name in ON_ITS_OWN_COMPUTER
               if getattr(current, name) != getattr(wanted, name)]
    if changed:
        named = ", ".join(f"“{labels[name]}”" for name in changed)
        raise HooklineError(
            f"{named} can be changed only on the computer Hookline runs on (its window, or "
            f"`hookline settings set {changed[0]} ...` there): from another computer, the "
            "settings that widen what Hookline may do there or who may reach it are "
            "read-only. Nothing was saved.")


@rpc("save_settings")
async def _save_settings(engine: Engine, settings: Settings) -> dict[str, Any]:
    """Save ``settings`` in the engine's data folder and apply them; what the window
    reads of them afterwards."""
    await asyncio.to_thread(save_settings, engine.data_dir, settings)
    engine.apply_settings(settings)
    return {"settings": engine.settings, "webhook_base": webhook_base(engine)}


async def _backups_of(engine: Engine) -> list[Path]:
    """The engine's regular backups, newest first (read off the loop)."""
    return await asyncio.to_thread(list_backups, backup_dir(engine.data_dir))


@rpc("backups.list")
async def _backups(engine: Engine) -> list[dict[str, Any]]:
    """The engine's regular backups, newest first: each its file name and when it was
    taken (nothing else of the engine's file system crosses)."""
    return [{"name": path.name, "taken_at": taken_at(path)}
            for path in await _backups_of(engine)]


@rpc("backups.restore")
async def _restore_backup(engine: Engine, name: str) -> None:
    """Restore the backup called ``name`` (one that ``backups.list`` names, nothing
    else): the engine answers, then starts again and restores it on its way up."""
    chosen = next((path for path in await _backups_of(engine) if path.name == name), None)
    if chosen is None:
        raise ValidationError("name", f"{name!r} is not one of this engine's backups "
                                      "(backups.list names them)")
    if sqlite_path(engine.url) is None:
        raise BackupError(
            "Hookline keeps its data in PostgreSQL there: its backups are restored from "
            "the command line on that computer (stop Hookline there, then `hookline backup "
            f"restore {name}`). Nothing was changed.")
    if not engine.restartable:
        raise BackupError(
            "Hookline cannot restart itself there to restore a backup: it runs in its "
            "desktop app, not as `hookline serve`. Restore it on that computer (Settings "
            f"→ Restore a backup…, or quit Hookline, then `hookline backup restore "
            f"{name}`). Nothing was changed.")
    await asyncio.to_thread(request_restore, chosen, engine.data_dir)
    log.warning("a restore of the backup %s was asked for from another computer", name)
    after_answer(engine.restart_wanted.set)


# --------------------------------------------------------------------- errors


def error_body(exc: HooklineError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body that carry ``exc`` to the client."""
    if isinstance(exc, SeveralProblems):
        return 422, {"kind": "ValidationError", "error": str(exc),
                     "problems": [[p.where, p.problem] for p in exc.problems]}
    if isinstance(exc, ValidationError):
        kind = "TemplateError" if isinstance(exc, TemplateError) else "ValidationError"
        return 422, {"kind": kind, "error": str(exc), "where": exc.where,
                     "problem": exc.problem}
    if isinstance(exc, ImportRefused):
        return 409, {"kind": "ImportRefused", "error": str(exc),
                     "failures": [list(f) for f in exc.failures], "total": exc.total}
    kind = next((name for name, cls in ERRORS.items() if type(exc) is cls),
                "HooklineError")
    return 404 if isinstance(exc, NotFound) else 409, {"kind": kind, "error": str(exc)}


def error_from(status: int, body: Any) -> HooklineError:
    """The engine's error that :func:`error_body` sent (HooklineError when unknown)."""
    if not isinstance(body, dict):
        return HooklineError(f"the engine answered {status}")
    kind, message = body.get("kind"), str(body.get("error") or f"the engine answered {status}")
    if kind in ("ValidationError", "TemplateError"):
        problems = body.get("problems")
        if problems:
            return SeveralProblems([ValidationError(str(w), str(p)) for w, p in problems])
        shape = TemplateError if kind == "TemplateError" else ValidationError
        return shape(str(body.get("where", "")), str(body.get("problem", message)))
    if kind == "ImportRefused":
        return ImportRefused([(str(w), str(p)) for w, p in body.get("failures", [])],
                             int(body.get("total", 0)))
    cls = ERRORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        cls = NotFound if status == 404 else HooklineError
    return cls(message)


# --------------------------------------------------------------------- routes


def add_routes(app: web.Application, engine: Engine) -> None:
    """Serve the calls and the event stream on ``app`` (behind its own auth)."""
    streams: set[web.WebSocketResponse] = set()

    async def close_streams(_app: web.Application) -> None:
        # a stop is not held up by clients that listen (they reconnect to the next start)
        for stream in list(streams):
            await stream.close(code=WSCloseCode.GOING_AWAY, message=b"engine stopping")

    app.on_shutdown.append(close_streams)
    app.router.add_post("/rpc/{name}", _handler(engine))
    app.router.add_get("/rpc/events", _events_handler(engine, streams))


def _handler(engine: Engine) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        call = CALLS.get(name)
        if call is None:
            return web.json_response({"kind": "NotFound", "error": f"no call {name!r}"},
                                     status=404)
        afterwards: list[Callable[[], None]] = []
        answering = _AFTER_ANSWER.set(afterwards)
        try:
            body = await request.json() if request.can_read_body else {}
            if not isinstance(body, dict):
                raise ValidationError("", "give the arguments as a JSON object")
            arguments = decode(body)
            call.check(arguments)
            if name == "save_settings" and CLIENT in request:  # over the remote site
                refuse_from_afar(engine.settings, arguments["settings"])
            result = encode(await call.run(engine, **arguments))
        except HooklineError as exc:
            status, answer = error_body(exc)
            return web.json_response(answer, status=status)
        except ValueError as exc:  # a body that is not JSON
            return web.json_response({"kind": "ValidationError", "error": str(exc),
                                      "where": "", "problem": "not JSON"}, status=422)
        finally:
            _AFTER_ANSWER.reset(answering)
        response = web.json_response({"result": result})
        if afterwards:  # sent now, so that the caller hears it before what follows
            try:
                await response.prepare(request)
                await response.write_eof()
            finally:
                for action in afterwards:
                    action()
        return response

    return handle


def _events_handler(engine: Engine, streams: set[web.WebSocketResponse]
                    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def stream(request: web.Request) -> web.StreamResponse:
        socket_ = web.WebSocketResponse(heartbeat=20.0)
        await socket_.prepare(request)
        streams.add(socket_)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        dropped = 0

        def relay(message: Message) -> None:
            nonlocal dropped
            if queue.qsize() >= BACKLOG:
                dropped += 1
                return
            queue.put_nowait(outgoing(engine, message))

        stop = engine.bus.subscribe("*", relay)
        reader = asyncio.create_task(_until_closed(socket_, queue))
        try:
            closed = False
            while not closed:
                batch: list[dict[str, Any]] = []
                item = await queue.get()
                while True:
                    if item is None:  # the client closed: send what came before, then end
                        closed = True
                        break
                    batch.append(item)
                    if queue.empty():
                        break
                    item = queue.get_nowait()
                if dropped:  # the client missed some: it reads everything again
                    batch.append({"topic": "rpc.resync", "data": {"dropped": dropped}})
                    dropped = 0
                if batch:
                    await socket_.send_json(batch)
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            stop()
            streams.discard(socket_)
            reader.cancel()
            await socket_.close()
        return socket_

    return stream


async def _until_closed(socket_: web.WebSocketResponse,
                        queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    async for message in socket_:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
    queue.put_nowait(None)


def outgoing(engine: Engine, message: Message) -> dict[str, Any]:
    """A bus message as sent: an area's message carries the area as it is now (None:
    removed), so the client's copy is current before the message is heard."""
    data: dict[str, Any] = {}
    for key, value in message.data.items():
        try:
            data[key] = encode(value)
        except CodecError:  # in-process only (a run's trace span): left out
            continue
    out: dict[str, Any] = {"topic": message.topic, "data": data}
    area_id = message.data.get("area_id")
    if isinstance(area_id, str) and message.topic.startswith(AREA_TOPICS):
        try:
            out["area"] = encode(held(engine, engine.area(area_id)))
        except NotFound:
            out["area"] = None
    return out


