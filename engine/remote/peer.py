"""A standby engine's live copy of the active engine's secrets, over the paired TLS site.

Each machine keeps its secrets in its own OS keyring, and OAuth providers rotate refresh
tokens: a copy taken once is dead after the active engine's next refresh. So a standby
engine on another machine, paired as an *engine* (``hookline pair --standby`` there,
``hookline standby join`` here), keeps asking the active engine while it stands by:

- the active engine (:class:`SecretSource`, on its remote site) answers
  ``GET /peer/secrets?after=<version>`` to engine-kind clients only. It waits (up to
  :data:`LONG_POLL` seconds) until its secrets' version differs from ``after``, then
  answers every secret it uses: each account's tokens, each OAuth app's client secret,
  the areas' secret parameters and the ``settings/`` secrets that are set. Never the
  machine's own: the database password, the remote channel's and this module's tokens.
  The version is a counter bumped by each change through the engine's
  :class:`~engine.secrets.SecretStore`, after a random epoch per start (a restart is
  noticed). Nothing is logged but counts; the answer says ``Cache-Control: no-store``.
- the standby (:class:`Puller`, during ``Engine._take_lease``'s wait) writes each value
  that differs into its own store; it stops once it takes over. Failures back off from
  1 to 30 s, logged once per kind of failure; ``peer-sync.json`` keeps when it last
  synced (``hookline standby status``, ``hookline doctor``).

Deleting is conservative: the standby deletes a copy only when it wrote that copy from
the peer itself and the peer's answer neither has the ref nor names it as one its
database still uses (an account, OAuth app or area it has no readable value for: the
standby's copy may then be the only one left). So a removed account's tokens go, a
keyring the active engine cannot read deletes nothing, and a secret the user entered
on the standby is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets as _secrets
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from sqlalchemy import select

from engine.errors import HooklineError
from engine.os_service import write_atomic
from engine.remote import client
from engine.remote.client import CONNECT_TIMEOUT, RemoteTarget, pair
from engine.remote.pairing import ENGINE, Caller
from engine.storage.schema import utcnow

if TYPE_CHECKING:
    from engine.app import Engine
    from engine.secrets import SecretStore

log = logging.getLogger(__name__)

#: The routes of the remote site an engine-kind client may use, and the one it does.
PREFIX = "/peer/"
SECRETS_PATH = "/peer/secrets"
#: How long the active engine holds a poll open when nothing changed.
LONG_POLL = 25.0
#: Where a standby keeps its peer (no secret in it) and how its copying goes. Not in
#: ``remote/``: that folder is copied to a standby to share the certificate.
PEER_FILE = "peer.json"
SYNC_FILE = "peer-sync.json"
#: The standby's waits after a failure: the first, and the longest.
BACKOFF = (1.0, 30.0)
#: Every so often the standby asks for everything again, whatever the version says: a
#: secret changed by another process there (the CLI) does not bump the version.
FULL_EVERY = 600.0
#: How often a standby with no peer looks whether one was joined meanwhile.
NO_PEER_RECHECK = 5.0
#: The families of refs copied; of ``settings/``, not this machine's own.
SHARED = ("account/", "oauth_client/", "area/", "settings/")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def machine_local(ref: str) -> bool:
    """Refs that belong to this machine and are never copied: the database password
    (each machine may reach the server as another user), the remote channel's tokens."""
    from engine.storage.db import PASSWORD_REF

    return ref == PASSWORD_REF or not ref.startswith(SHARED)


def token_ref(client_id: str) -> str:
    """Where a standby keeps its token for its peer (never copied: see SHARED)."""
    return f"peer/{client_id}/token"


# ------------------------------------------------------------------ the active engine


class SecretSource:
    """The active engine's secrets, as a standby copies them, and their version.

    Args:
        engine: the active engine (its store, database and areas).

    Attributes:
        epoch: random per start, the version's first part.
        count: changes through the engine's store since the start.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.epoch = _secrets.token_hex(4)
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._closed = False
        self._settings: set[str] = set()  # settings/ refs set since the start
        self._unsubscribe = engine.secrets.on_change(self._on_change)

    @property
    def version(self) -> str:
        return f"{self.epoch}.{self.count}"

    def _on_change(self, ref: str) -> None:  # in the thread that wrote
        if not machine_local(ref):
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._bump, ref)

    def _bump(self, ref: str) -> None:
        if ref.startswith("settings/"):
            self._settings.add(ref)
        self.count += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """The engine stops: answer the waiting polls now, watch no more."""
        self._unsubscribe()
        self._closed = True
        self._changed.set()

    async def changed(self, after: str, timeout: float = LONG_POLL) -> bool:
        """Wait until the version differs from ``after`` (True) or ``timeout`` passes or
        the engine stops (False)."""
        deadline = time.monotonic() + timeout
        while self.version == after and not self._closed:
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                return False
        return self.version != after

    async def refs(self) -> tuple[list[str], set[str]]:
        """Every ref this engine's secrets may be at, and those its database still
        names (accounts, OAuth apps, areas)."""
        from engine.app import WEBHOOK_SLOT, secret_ref
        from engine.auth.accounts import client_secret_ref
        from engine.auth.accounts import token_ref as account_ref
        from engine.observe.mqtt_events import PASSWORD_REF as MQTT_PASSWORD
        from engine.storage.schema import accounts, oauth_clients

        engine = self.engine
        async with engine.db.connect() as conn:
            named = [account_ref(i) for i in (await conn.execute(
                select(accounts.c.id))).scalars()]
            named += [client_secret_ref(s) for s in (await conn.execute(
                select(oauth_clients.c.service_id))).scalars()]
        for area in engine.areas():
            named.append(secret_ref(area.id, WEBHOOK_SLOT, "token"))
            for step, is_trigger in area.spec.steps():
                try:
                    spec = engine.registry.action(step.service, step.action, is_trigger)
                except HooklineError:
                    continue
                named += [secret_ref(area.id, step.slot(is_trigger), p.name)
                          for p in spec.params if p.is_secret]
        optional = sorted({MQTT_PASSWORD, *self._settings} - set(named))
        return [r for r in [*named, *optional] if not machine_local(r)], set(named)

    def read(self, refs: list[str], named: set[str]) -> tuple[dict[str, str], list[str]]:
        """(blocking) The values there are, and the named refs with none to give (not
        set, or the keyring cannot read them: the standby keeps its copy)."""
        values: dict[str, str] = {}
        unread: list[str] = []
        for ref in refs:
            try:
                value = self.engine.secrets.get(ref)
            except HooklineError as exc:
                log.warning("cannot read the secret %s for the standby engine: %s", ref, exc)
                unread.append(ref)
                continue
            if value is not None:
                values[ref] = value
            elif ref in named:
                unread.append(ref)
        return values, unread

    async def snapshot(self) -> dict[str, Any]:
        """The version, then everything at it (a change meanwhile bumps the version
        again: the standby's next poll gets it)."""
        version = self.version
        refs, named = await self.refs()
        values, unread = await asyncio.to_thread(self.read, refs, named)
        return {"version": version, "secrets": values, "unread": unread}


async def answer(source: SecretSource | None, request: web.Request,
                 caller: Caller) -> web.StreamResponse:
    """The remote site's answer to a paired client under ``/peer/``, or to an engine-kind
    client anywhere: the secrets for a standby engine, 403 to anyone else."""
    from engine.standby import ACTIVE

    if caller.kind != ENGINE:
        return web.json_response(
            {"error": "this computer is paired as a window (the app or `hookline remote`): "
                      "only a standby engine, paired with a `hookline pair --standby` code, "
                      "may copy the engine's secrets"}, status=403)
    if request.path != SECRETS_PATH or request.method != "GET" or source is None:
        return web.json_response(
            {"error": "a standby engine's pairing only copies the secrets "
                      f"(GET {SECRETS_PATH}); pair the app with `hookline pair`"}, status=403)
    if source.engine.role != ACTIVE:
        return web.json_response(
            {"error": f"this engine is {source.engine.role}: copy from the active one"},
            status=503, headers={"Retry-After": "2", **NO_STORE})
    if not await source.changed(request.query.get("after", "")):
        return web.Response(status=204, headers=NO_STORE)
    body = await source.snapshot()
    log.debug("gave the standby engine %s %d secrets (version %s)", caller.id[:8],
              len(body["secrets"]), body["version"])
    return web.json_response(body, headers=NO_STORE)


# ------------------------------------------------------------------ the standby


def load_target(data_dir: Path) -> RemoteTarget | None:
    """The joined peer, or None."""
    return RemoteTarget.load(data_dir, PEER_FILE)


@dataclasses.dataclass
class SyncState:
    """How a standby's copying goes (``peer-sync.json``: names and times, no value).

    Attributes:
        peer: the client id it copies as.
        last_sync_at: when the peer last said this copy is current.
        last_change_at: when the copy last changed.
        synced: the refs this standby wrote from the peer (only these are ever deleted).
        error: why the last try failed (None: it did not).
    """

    peer: str = ""
    last_sync_at: str | None = None
    last_change_at: str | None = None
    synced: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None

    @classmethod
    def load(cls, data_dir: Path, peer: str = "") -> SyncState:
        """The saved state of copying as ``peer`` (a fresh one for another peer)."""
        try:
            raw = json.loads((data_dir / SYNC_FILE).read_text(encoding="utf-8"))
            state = cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)
                           if f.name in raw})
        except (OSError, ValueError, TypeError):
            return cls(peer)
        return state if not peer or state.peer == peer else cls(peer)

    def save(self, data_dir: Path) -> None:
        write_atomic(data_dir / SYNC_FILE,
                     json.dumps(dataclasses.asdict(self), indent=2).encode())


class PullFailed(HooklineError):
    """One try of copying failed; ``kind`` groups failures for the log."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Puller:
    """While its engine stands by: keeps the joined peer's secrets copied into its own
    store (see the module's docstring).

    Args:
        secrets: the standby engine's own store.
        data_dir: its data folder (``peer.json``, ``peer-sync.json``).
    """

    def __init__(self, secrets: SecretStore, data_dir: Path) -> None:
        self.secrets = secrets
        self.data_dir = data_dir
        self.version = ""
        self._full_at = 0.0
        self._delay = BACKOFF[0]
        self._failing: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._applying: asyncio.Future[None] | None = None

    def start(self) -> Puller:
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def aclose(self) -> None:
        """Stop copying; a copy being written finishes first (the engine taking over
        reads the store next)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        applying, self._applying = self._applying, None
        if applying is not None:
            await asyncio.wait([applying])
            if not applying.cancelled() and applying.exception() is not None:
                log.warning("the last copy of the secrets was not written whole: %s",
                            applying.exception())

    async def run(self) -> None:
        """Copy until cancelled."""
        while True:
            try:
                target = await asyncio.to_thread(load_target, self.data_dir)
                if target is None:
                    await asyncio.sleep(NO_PEER_RECHECK)
                    continue
                token = await asyncio.to_thread(self.secrets.get, token_ref(target.client_id))
                if not token:
                    raise PullFailed("token", f"this computer's keyring lacks its token for "
                                              f"{target.name}: join again (`hookline standby "
                                              "join`)")
                timeout = aiohttp.ClientTimeout(total=LONG_POLL + 20,
                                                sock_connect=CONNECT_TIMEOUT)
                async with target.session(token, timeout=timeout) as session:
                    while await asyncio.to_thread(load_target, self.data_dir) == target:
                        await self._pull(session, target)
            except PullFailed as exc:
                self._failed(exc.kind, str(exc))
            except HooklineError as exc:  # a keyring that cannot be read or written, a file
                self._failed(type(exc).__name__, str(exc))
            except Exception as exc:
                if self._failing != "unexpected":
                    log.exception("copying the active engine's secrets failed")
                self._failed("unexpected", f"{type(exc).__name__}: {exc}", said=True)
            else:
                continue
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, BACKOFF[1])

    async def _pull(self, session: aiohttp.ClientSession, target: RemoteTarget) -> None:
        """One poll, and what it brings written into this engine's store."""
        full = time.monotonic() - self._full_at >= FULL_EVERY
        where = f"{target.name} at {target.host}:{target.port}"
        try:
            async with session.get(SECRETS_PATH, params={
                    "after": "" if full else self.version}) as resp:
                if resp.status == 401:
                    raise PullFailed("refused", f"{where} refused this engine: it was "
                                                "unpaired there; join again (`hookline "
                                                "standby join`)")
                if resp.status in (403, 503):
                    said = (await resp.json(content_type=None) or {}).get("error")
                    raise PullFailed(f"status {resp.status}", f"{where}: {said}")
                if resp.status not in (200, 204):
                    raise PullFailed("answer", f"{where} answered {resp.status}")
                body = await resp.json() if resp.status == 200 else None
        except aiohttp.ServerFingerprintMismatch:
            raise PullFailed("certificate", f"{where} shows another certificate than the one "
                                            "pinned when joining: someone may be between, or "
                                            "Hookline there was set up again (join again)"
                             ) from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PullFailed("unreachable", f"cannot reach {where}: "
                                            f"{exc or type(exc).__name__}") from None
        if body is not None:  # written whole even if the engine takes over meanwhile
            self._applying = asyncio.ensure_future(asyncio.to_thread(self._apply, target, body))
            try:
                await asyncio.shield(self._applying)
            finally:
                if self._applying.done():  # else cancelled meanwhile: aclose waits for it
                    self._applying = None
            if full:
                self._full_at = time.monotonic()
        else:
            state = SyncState.load(self.data_dir, target.client_id)
            state.last_sync_at, state.error = utcnow().isoformat(), None
            await asyncio.to_thread(state.save, self.data_dir)
        if self._failing is not None:
            log.info("copying the active engine's secrets from %s again", where)
        self._failing, self._delay = None, BACKOFF[0]

    def _apply(self, target: RemoteTarget, body: Any) -> None:
        """(blocking) Write what differs, delete what the peer let go (conservatively)."""
        try:
            version, values = str(body["version"]), dict(body["secrets"])
            unread = {str(r) for r in body.get("unread") or ()}
        except (KeyError, TypeError, ValueError):
            raise PullFailed("answer", f"{target.name} answered with something else than "
                                       "Hookline's secrets") from None
        state = SyncState.load(self.data_dir, target.client_id)
        synced = set(state.synced)
        changed: dict[str, str] = {}
        for ref, value in values.items():
            if not isinstance(ref, str) or not isinstance(value, str) or machine_local(ref):
                continue  # not ours to take
            try:
                same = self.secrets.get(ref) == value
            except HooklineError:
                same = False  # damaged here: the peer's is whole
            if not same:
                changed[ref] = value
        if not synced.issuperset(changed):
            # named as ours before it is written: a kill between the two must not leave a
            # copy this standby would never let go of
            state.synced = sorted(synced | changed.keys())
            state.save(self.data_dir)
        for ref, value in changed.items():
            self.secrets.set(ref, value)
            synced.add(ref)
        wrote = len(changed)
        gone = sorted(r for r in synced if r not in values and r not in unread)
        for ref in gone:  # named until the next save: deleting twice is harmless
            self.secrets.delete(ref)
            synced.discard(ref)
        now = utcnow().isoformat()
        state.synced, state.last_sync_at, state.error = sorted(synced), now, None
        if wrote or gone:
            state.last_change_at = now
            log.info("copied the active engine's secrets: %d changed, %d removed", wrote,
                     len(gone))
        state.save(self.data_dir)
        self.version = version

    def _failed(self, kind: str, message: str, *, said: bool = False) -> None:
        if kind != self._failing and not said:
            log.warning("standing by, but cannot copy the active engine's secrets: %s "
                        "(trying again, every %.0f s at most)", message, BACKOFF[1])
        self._failing = kind
        with contextlib.suppress(OSError):
            state = SyncState.load(self.data_dir)
            state.error = message
            state.save(self.data_dir)


# ------------------------------------------------------------------ joining, leaving


async def join(host: str, port: int, code: str, *, secrets: SecretStore, data_dir: Path,
               name: str) -> RemoteTarget:
    """Pair with the engine at host:port as a standby engine (a ``hookline pair
    --standby`` code) and keep it as this data folder's peer (the token in ``secrets``)."""
    target, token = await pair(host, port, code, client_name=name, kind=ENGINE)
    before = load_target(data_dir)
    await asyncio.to_thread(secrets.set, token_ref(target.client_id), token)
    write_atomic(data_dir / PEER_FILE,
                 json.dumps(dataclasses.asdict(target), indent=2).encode())
    SyncState(target.client_id).save(data_dir)
    if before is not None and before.client_id != target.client_id:
        await asyncio.to_thread(secrets.delete, token_ref(before.client_id))
    return target


async def ask(target: RemoteTarget, token: str, method: str, path: str) -> str:
    """One call on the peer (``/remote/hello``, ``/remote/unpair``): "answers", or what
    went wrong, in words (a standby answers them too: its remote site is open)."""
    return await client.ask(target, token, method, path, who="this engine",
                            again="join again")


async def leave(*, secrets: SecretStore, data_dir: Path) -> tuple[RemoteTarget, str] | None:
    """Forget the peer (unpaired there when it answers); what it answered. The copied
    secrets stay: they are this engine's now."""
    from engine.remote.site import UNPAIR

    target = load_target(data_dir)
    if target is None:
        return None
    token = await asyncio.to_thread(secrets.get, token_ref(target.client_id))
    answered = await ask(target, token or "", "POST", UNPAIR)
    await asyncio.to_thread(secrets.delete, token_ref(target.client_id))
    for name in (PEER_FILE, SYNC_FILE):
        with contextlib.suppress(FileNotFoundError):
            (data_dir / name).unlink()
    return target, answered


def describe(data_dir: Path) -> tuple[bool, str] | None:
    """``hookline doctor``'s line on the peer (ok, what to say); None: none joined."""
    target = load_target(data_dir)
    if target is None:
        return None
    state = SyncState.load(data_dir, target.client_id)
    synced = (f"last synced {_local(state.last_sync_at)}" if state.last_sync_at
              else "not synced yet (it copies while this engine stands by)")
    said = f"{target.name} at {target.host}:{target.port}: {synced}"
    if state.error:
        said += f"; the last try failed: {state.error}"
    return not (state.error and "refused" in state.error), said


def _local(at: str) -> str:
    return f"{datetime.fromisoformat(at).astimezone():%Y-%m-%d %H:%M:%S}"
