"""Two engines on one PostgreSQL database: one active, the others standing by.

Only one engine may fire triggers, poll, dispatch and run reactions against a database,
or areas would run twice. On PostgreSQL the active engine holds a session-level advisory
lock (:class:`Lease`) on a connection of its own, kept out of every pool. The server lets
go of it when that session ends: at once when the process dies (the kernel closes its
socket), and for a machine that vanishes once TCP keepalives on that connection (asked
of the server for its side, and of libpq for ours) have gone unanswered, about
:data:`KEEPALIVE_NOTICE` seconds. A standby tries the lock every :data:`RETRY` seconds
and, once it has it, starts as the active engine would (ledger replay, id counters,
recovery, areas attached).

Fencing: the active engine asks its lease connection every :data:`CHECK_EVERY` seconds
(each ask bounded by :data:`CHECK_TIMEOUT`); when it cannot answer, the engine stops
firing at once (scheduler, pollers and dispatch stop, the listener answers 503) instead
of risking a second active. On PostgreSQL the run ledger is a table written on this
same connection (:class:`engine.storage.ledger.TableLedger`), and a reaction acts only
after its run's start is in it: a reaction can start only while the session that holds
the lock is alive. What a partition still allows: a reaction already under way when it
began finishes its effect (an HTTP call sent), and the engine that takes over resumes
that run (the one repeat per takeover the run ledger already allows after a kill);
events and run records that engine's writer had not committed are not lost for a sender
(202 only after the commit) but are run by the new active engine.

SQLite is one machine's file: there is no lease, the data-folder lock
(``engine/lock.py``) keeps one engine per database, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from engine.errors import HooklineError
from engine.storage.db import asked_for_password, keyring_password, sync_url

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

#: The bus topic saying an engine's role changed: [role, previous, reason, took_over_after].
ENGINE_ROLE = "engine.role"
ACTIVE = "active"
STANDBY = "standby"
#: the lease was lost while active: nothing fires until the engine starts again
FENCED = "fenced"
#: what a standby's listener tells a webhook sender (503, Retry-After: 2)
STANDBY_REASON = "standby: another Hookline engine is active on this database"
#: seconds between a standby's tries of the lock
RETRY = 1.0
#: seconds an engine that lost its lease stands by before trying it again: the standby
#: (trying every second) takes over first
STEP_DOWN_PAUSE = 5.0
#: seconds between the active engine's checks of its lease connection, and each one's bound
CHECK_EVERY = 2.0
CHECK_TIMEOUT = 3.0
#: seconds a fenced engine waits for its writer at its stop (the database may be gone)
FENCED_CLOSE = 5.0
#: TCP keepalives on the lease connection (both ends): idle, interval, count
KEEPALIVE = (3, 2, 3)
#: roughly how long the server takes to notice a vanished machine (and free the lock)
KEEPALIVE_NOTICE = KEEPALIVE[0] + KEEPALIVE[1] * KEEPALIVE[2]
#: the advisory lock's key. Advisory locks belong to one database, so one constant
#: means "the active engine of this database" (64 bits of a hash: no other program's)
LEASE_KEY = int.from_bytes(hashlib.blake2b(b"hookline.active-engine", digest_size=8)
                           .digest(), "big", signed=True)


def wanted(url: str) -> bool:
    """Whether engines on ``url`` take turns through a lease (PostgreSQL only)."""
    return make_url(url).get_backend_name() == "postgresql"


def connect_args(url: str) -> dict[str, Any]:
    """libpq's connection parameters for the SQLAlchemy ``url`` (psycopg's own names)."""
    parsed = make_url(sync_url(url))
    args: dict[str, Any] = {k: v for k, v in parsed.translate_connect_args(
        username="user", database="dbname").items() if v is not None}
    args.update({k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()})
    return args


def connect(url: str, **options: Any) -> psycopg.Connection[Any]:
    """A psycopg connection to ``url``'s database; when the server asks for a password
    the URL does not give, the keyring's (as the engine's own connections do)."""
    import psycopg

    args = connect_args(url)
    try:
        return psycopg.connect(**args, **options)
    except psycopg.OperationalError as exc:
        password = None if args.get("password") or not asked_for_password(exc) \
            else keyring_password()
        if not password:
            raise
        return psycopg.connect(**args, password=password, **options)


class LeaseLost(HooklineError):
    """The lease connection did not answer (the lock may be someone else's now), or the
    engine was stopped while it stood by."""


class Lease:
    """The active engine's PostgreSQL advisory lock, on a connection of its own.

    The connection is a blocking psycopg one: the run ledger writes on it from the
    event loop (one round trip, before a reaction acts), the lock is tried and checked
    in a worker thread; psycopg serialises the two.

    Attributes:
        held: whether this engine holds the lock.
        conn: the connection (None until :meth:`open`).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.held = False
        self.conn: psycopg.Connection[Any] | None = None
        #: the engine is stopping: a standby's wait ends
        self.stopped = False

    def open(self) -> None:
        """Connect (blocking): keepalives both ends, a bounded wait for a dead peer."""

        idle, interval, count = KEEPALIVE
        notice_ms = KEEPALIVE_NOTICE * 1000
        server = (f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval} "
                  f"-c tcp_keepalives_count={count} -c tcp_user_timeout={notice_ms} "
                  "-c synchronous_commit=off -c idle_session_timeout=0 "
                  "-c idle_in_transaction_session_timeout=0")
        self.conn = connect(
            self.url, autocommit=True, connect_timeout=5,
            application_name="hookline-lease", keepalives=1, keepalives_idle=idle,
            keepalives_interval=interval, keepalives_count=count,
            tcp_user_timeout=notice_ms, options=server)

    def try_take(self) -> bool:
        """Try the lock once (blocking); True when this engine holds it now."""
        if self.conn is None:
            self.open()
        assert self.conn is not None
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LEASE_KEY,)).fetchone()
        self.held = bool(row and row[0])
        return self.held

    async def wait(self, every: float = RETRY, first_after: float = 0.0) -> float:
        """Try the lock every ``every`` seconds (the first time after ``first_after``)
        until it is ours; the seconds waited. A dropped connection (the server
        restarting) is opened again."""
        began = time.monotonic()
        failing = False
        await asyncio.sleep(first_after)
        while True:
            if self.stopped:
                raise LeaseLost("the engine was stopped while it stood by")
            try:
                if await asyncio.to_thread(self.try_take):
                    return time.monotonic() - began
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("standing by, but the database does not answer: %s", exc)
                failing = True
                self.close()
            await asyncio.sleep(every)

    def _ping(self) -> None:
        if self.conn is None or self.conn.closed:
            raise LeaseLost("the lease connection is closed")
        self.conn.execute("SELECT 1")

    async def check(self, timeout: float = CHECK_TIMEOUT) -> None:
        """Raise :class:`LeaseLost` unless the lease connection answers within
        ``timeout`` (its session alive: the lock is still ours)."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self._ping), timeout)
        except LeaseLost:
            raise
        except TimeoutError:
            raise LeaseLost(f"the database did not answer within {timeout:.0f} s") from None
        except Exception as exc:
            raise LeaseLost(str(exc).strip() or type(exc).__name__) from None

    def settle(self, timeout: float = 5.0) -> None:
        """Just taken over: wait (up to ``timeout``) until no other session of this
        database is inside a transaction. A killed engine's writer may have sent a
        COMMIT its server is still finishing when its lease session is already gone;
        the ids counted after this see it."""
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
                "AND backend_type = 'client backend'").fetchone()
            if not row or not row[0]:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """For good: close, and end a standby's :meth:`wait`."""
        self.stopped = True
        self.close()

    def close(self) -> None:
        """Close the connection (the server frees the lock with the session)."""
        conn, self.conn = self.conn, None
        self.held = False
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("the lease connection did not close cleanly", exc_info=True)


def unreadable(refs: Iterable[tuple[str, str]], read: Any) -> list[str]:
    """Of ``refs`` (what needs it, keyring ref), the ones ``read(ref)`` cannot give:
    a standby on another machine has its own OS keyring."""
    missing = []
    for what, ref in refs:
        try:
            value = read(ref)
        except Exception:
            value = None
        if value is None:
            missing.append(what)
    return missing


def lease_holder(url: str) -> str | None:
    """Who holds the lease of ``url``'s database (the server's pid and the client's
    address), without taking it; None when no engine is active (``hookline doctor``)."""

    unsigned = LEASE_KEY & 0xFFFF_FFFF_FFFF_FFFF
    with connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT l.pid, a.client_addr FROM pg_locks l LEFT JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND "
            "l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
            (unsigned >> 32, unsigned & 0xFFFF_FFFF)).fetchone()
    if row is None:
        return None
    return f"server pid {row[0]}, from {row[1] or 'a local socket'}"
