"""Pairing codes and paired clients, kept in the database as hashes only.

Why the database: an active and a standby engine share one, so a client paired with
one is known to the other (each engine has its own certificate, though: see
``engine/remote/tls.py``). ``pairing_codes`` holds a pending code's scrypt key (never
the code), ``remote_clients`` a paired client's token's SHA-256 (never the token).

A code is single-use and lasts ``CODE_LIFETIME``: using it deletes its row in the same
statement that checks it is still there and unexpired, so two engines (or two clients)
cannot both redeem it. After ``MAX_FAILURES`` wrong pairing attempts in a row, pairing
is refused for ``PAUSE`` (said in the log): 10 guesses in 15 minutes at a 50-bit code.
A client's token expires after ``IDLE_EXPIRY`` without use.

A code pairs one kind of client only, and the client says which it is: a ``window``
(the desktop app, ``hookline remote``) or an ``engine`` (a standby engine copying the
secrets, ``hookline standby join``, from a ``hookline pair --standby`` code), so a
window's pairing can never read secrets (engine/remote/peer.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.errors import HooklineError
from engine.remote import codes
from engine.storage.schema import pairing_codes, remote_clients, utcnow

log = logging.getLogger(__name__)

#: The kinds of paired client: the app or `hookline remote`, and a standby engine.
WINDOW = "window"
ENGINE = "engine"
KINDS = (WINDOW, ENGINE)
CODE_LIFETIME = timedelta(minutes=10)
MAX_FAILURES = 10
PAUSE = timedelta(minutes=15)
#: A client's last-seen time is written at most this often (not once per request).
SEEN_EVERY = timedelta(minutes=1)
#: A client's token expires when it has not been used for this long (a lost laptop's
#: pairing does not last for ever); the client then pairs again.
IDLE_EXPIRY = timedelta(days=90)


def printable(name: str) -> str:
    """A client's name as it may be listed and logged: what it sent, without control
    characters (no forged log lines), at most 200 characters."""
    return "".join(c if c.isprintable() else " " for c in name).strip()[:200]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Issued:
    """A new pairing code, to show once; only its key is kept."""

    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Paired:
    """What a client gets for a right code (``token`` is shown once, then only hashed)."""

    client_id: str
    token: str
    key: bytes


@dataclass(frozen=True)
class PairedClient:
    """A paired client as ``hookline pair --list`` shows it."""

    id: str
    name: str
    created_at: datetime
    last_seen_at: datetime | None
    #: its token was not used for ``IDLE_EXPIRY``: it is refused until it pairs again
    expired: bool = False
    #: ``window`` or ``engine`` (a standby engine copying the secrets)
    kind: str = WINDOW

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at.isoformat(),
                "last_seen_at": self.last_seen_at.isoformat() if self.last_seen_at else None,
                "expired": self.expired, "kind": self.kind}


@dataclass(frozen=True)
class Caller:
    """The paired client a request's token belongs to."""

    id: str
    kind: str


class WrongKind(HooklineError):
    """A right code, for another kind of client than the one pairing (nothing is used
    up: the code still pairs its own kind)."""

    def __init__(self, code_kind: str) -> None:
        super().__init__(
            "This code pairs a standby engine (`hookline standby join`), not the app or "
            "`hookline remote`: for those, run `hookline pair` without --standby on the "
            "engine's computer." if code_kind == ENGINE else
            "This code pairs the app or `hookline remote`, not a standby engine: run "
            "`hookline pair --standby` on the active engine's computer for one.")
        self.code_kind = code_kind


class Pairing:
    """Issues and redeems pairing codes, and checks clients' tokens.

    Args:
        db: the engine's database.
        clock: the current UTC time (tests move it instead of sleeping).

    Attributes:
        failures: wrong pairing attempts in a row (reset by a right one).
        paused_until: no pairing until then, after ``MAX_FAILURES`` wrong attempts.
    """

    def __init__(self, db: AsyncEngine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock
        self.failures = 0
        self.paused_until: datetime | None = None
        self._seen: dict[str, datetime] = {}

    async def issue(self, kind: str = WINDOW) -> Issued:
        """A new code for a client of ``kind``, valid for ``CODE_LIFETIME``; expired
        codes are dropped now."""
        if kind not in KINDS:
            raise HooklineError(f"no such kind of paired client: {kind!r}")
        now = self.clock()
        code = codes.new_code()
        key = await asyncio.to_thread(codes.code_key, code)  # ~50 ms: off the loop
        async with self.db.begin() as conn:
            await conn.execute(delete(pairing_codes).where(pairing_codes.c.expires_at <= now))
            await conn.execute(insert(pairing_codes).values(
                code_key=key.hex(), created_at=now, expires_at=now + CODE_LIFETIME,
                kind=kind))
        return Issued(code, now + CODE_LIFETIME)

    async def redeem(self, proof: str, fingerprint: str, name: str,
                     kind: str = WINDOW) -> Paired | None:
        """The new client of ``kind`` for a proof made from a pending code and this
        engine's certificate ``fingerprint``; None (and one more failure) for anything
        else; :class:`WrongKind` for a right code of another kind."""
        now = self.clock()
        if self.paused_until is not None:
            if now < self.paused_until:
                return None
            self.paused_until, self.failures = None, 0
        async with self.db.connect() as conn:
            pending = (await conn.execute(select(
                pairing_codes.c.code_key, pairing_codes.c.kind).where(
                pairing_codes.c.expires_at > now))).all()
        found = next(((bytes.fromhex(k), code_kind) for k, code_kind in pending
                      if hmac.compare_digest(codes.client_proof(bytes.fromhex(k),
                                                                fingerprint), proof)), None)
        if found is None:
            self._failed(now)
            return None
        match, code_kind = found
        if code_kind != kind:
            raise WrongKind(code_kind)
        token, client_id = secrets.token_urlsafe(32), str(uuid.uuid4())
        async with self.db.begin() as conn:
            used = await conn.execute(delete(pairing_codes).where(
                pairing_codes.c.code_key == match.hex(), pairing_codes.c.expires_at > now))
            if used.rowcount != 1:  # redeemed a moment ago by someone else
                return None
            await conn.execute(insert(remote_clients).values(
                id=client_id, name=printable(name) or "unnamed", created_at=now,
                token_hash=token_hash(token), last_seen_at=now, kind=kind))
        self.failures = 0
        log.info("paired a new remote client “%s” (%s%s)", printable(name), client_id[:8],
                 ", a standby engine" if kind == ENGINE else "")
        return Paired(client_id, token, match)

    def _failed(self, now: datetime) -> None:
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            self.paused_until = now + PAUSE
            log.warning("%d wrong pairing codes in a row: pairing is refused until %s "
                        "(someone may be guessing; `hookline pair` codes still print, but "
                        "wait before using one)", self.failures,
                        f"{self.paused_until.astimezone():%H:%M}")

    async def client(self, token: str) -> str | None:
        """The id of the paired client whose token this is (None: no such client, e.g.
        revoked, or its token expired); notes when it was last seen, once a minute at
        most."""
        caller = await self.caller(token)
        return caller.id if caller is not None else None

    async def caller(self, token: str) -> Caller | None:
        """:meth:`client`, with the client's kind."""
        if not token:
            return None
        async with self.db.connect() as conn:
            row = (await conn.execute(select(
                remote_clients.c.id, remote_clients.c.created_at,
                remote_clients.c.last_seen_at, remote_clients.c.kind).where(
                remote_clients.c.token_hash == token_hash(token)))).first()
        now = self.clock()
        if row is None or now - (row.last_seen_at or row.created_at) > IDLE_EXPIRY:
            return None
        client_id = row.id
        last = self._seen.get(client_id)
        if last is None or now - last >= SEEN_EVERY:
            self._seen[client_id] = now
            async with self.db.begin() as conn:
                await conn.execute(update(remote_clients).where(
                    remote_clients.c.id == client_id).values(last_seen_at=now))
        return Caller(str(client_id), str(row.kind))

    async def clients(self) -> list[PairedClient]:
        """Every paired client, oldest first."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(remote_clients).order_by(
                remote_clients.c.created_at))).all()
        now = self.clock()
        return [PairedClient(r.id, r.name, r.created_at, r.last_seen_at,
                             now - (r.last_seen_at or r.created_at) > IDLE_EXPIRY, r.kind)
                for r in rows]

    async def revoke(self, ref: str) -> PairedClient:
        """Unpair the client whose id, id prefix or name is ``ref``: its next request
        gets 401."""
        chosen = [c for c in await self.clients() if c.id == ref]
        if not chosen:
            chosen = [c for c in await self.clients()
                      if c.id.startswith(ref) or c.name == ref] if ref else []
        if len(chosen) != 1:
            known = ", ".join(f"{c.id[:8]} ({c.name})" for c in await self.clients())
            raise HooklineError(
                f"{'Several' if chosen else 'No'} paired clients match {ref!r}: give "
                f"more of its id. Paired: {known or 'none'}.")
        async with self.db.begin() as conn:
            await conn.execute(delete(remote_clients).where(
                remote_clients.c.id == chosen[0].id))
        self._seen.pop(chosen[0].id, None)
        log.info("unpaired the remote client “%s” (%s)", chosen[0].name, chosen[0].id[:8])
        return chosen[0]
