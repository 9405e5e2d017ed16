"""The group-commit writer: one thread, one transaction per group of waiting writes.

An awaited commit per row through the async driver costs about a millisecond; here
every write that arrives while a commit is under way joins the next group, the group
commits once, and each waiter is released when its group is durable. Statements of the
same kind in a group run as one ``executemany``.

Durability: a group that carries a ``durable`` write (a journaled event: the sender was
or will be told "accepted") commits with an fsync (SQLite ``synchronous=FULL``); a group
of run bookkeeping only commits without one (``NORMAL``: safe against a killed process,
and made durable by the next fsync, which covers every earlier WAL frame). PostgreSQL
makes the same promise with ``synchronous_commit``: on (its default) for a durable
group, ``SET LOCAL synchronous_commit TO OFF`` for bookkeeping (the server flushes it
within moments, and a crash of the server, not of Hookline, may lose only that tail).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.sql import Executable

from engine.errors import StorageError
from engine.storage.db import open_sync
from engine.storage.schema import events, runs

log = logging.getLogger(__name__)

MAX_GROUP = 2000
MAX_PLANS = 256


class Statement(NamedTuple):
    """One statement with its parameters; ``rank`` orders kinds inside a group
    (inserts before the updates that may touch the same rows)."""

    rank: int
    stmt: Executable
    params: dict[str, Any]


@dataclass
class _Write:
    statements: Sequence[Statement]
    after: Callable[[Connection], Any] | None
    durable: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop = field(repr=False)


_STOP = object()


class Writer:
    """Serialises every write of the hot path through one thread.

    Args:
        url: the database URL (async form; the writer uses its blocking twin).
    """

    def __init__(self, url: str) -> None:
        self._engine: Engine = open_sync(url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._synced: bool | None = None  # the connection's current synchronous mode
        self._queue: queue.SimpleQueue[_Write | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._next_event_id = 1
        self._next_run_id = 1
        self.groups = 0
        self.writes = 0
        self._plans: dict[tuple[Executable, frozenset[str]], _Plan | None] = {}

    def start(self) -> None:
        with self._engine.connect() as conn:
            self._next_event_id = (conn.scalar(select(func.max(events.c.id))) or 0) + 1
            self._next_run_id = (conn.scalar(select(func.max(runs.c.id))) or 0) + 1
        self._thread = threading.Thread(target=self._work, name="hookline-writer", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        self._engine.dispose()

    def event_id(self) -> int:
        """A fresh event id (allocated here, so a group needs no RETURNING)."""
        value = self._next_event_id
        self._next_event_id += 1
        return value

    def run_id(self) -> int:
        value = self._next_run_id
        self._next_run_id += 1
        return value

    def run_sync(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work`` in one transaction now (before :meth:`start` only: a start-up
        repair such as replaying the run ledger)."""
        if self._thread is not None:
            raise StorageError("the writer is running; use write()")
        with self._engine.begin() as conn:
            return work(conn)

    def submit(
        self,
        statements: Sequence[Statement] = (),
        after: Callable[[Connection], Any] | None = None,
        durable: bool = False,
    ) -> asyncio.Future[Any]:
        """Queue ``statements`` (then ``after(conn)``) for the next group; the future
        holds ``after``'s result once the group has committed (with an fsync if
        ``durable``). Writes commit in the order they were submitted."""
        if self._thread is None:
            raise StorageError("the writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Write(statements, after, durable, future, loop))
        return future

    async def write(
        self,
        statements: Sequence[Statement] = (),
        after: Callable[[Connection], Any] | None = None,
        durable: bool = False,
    ) -> Any:
        """:meth:`submit`, waiting for the commit."""
        return await self.submit(statements, after, durable)

    def _work(self) -> None:
        # One connection for the writer's life, opened in its own thread.
        self._conn = self._engine.connect()
        try:
            self._loop()
        finally:
            self._conn.close()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            group: list[_Write] = [first]  # type: ignore[list-item]
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                group.append(item)  # type: ignore[arg-type]
            self._commit_group(group)

    def _commit_group(self, group: list[_Write]) -> None:
        try:
            results = self._commit(group)
        except Exception as exc:
            if len(group) == 1:
                _settle([(group[0], None, _storage_error(exc))])
                return
            # One bad write must not sink its neighbours: retry each on its own.
            log.debug("group of %d failed (%s); committing one by one", len(group), exc)
            for write in group:
                self._commit_group([write])
            return
        self.groups += 1
        self.writes += len(group)
        _settle([(w, r, None) for w, r in zip(group, results, strict=True)])

    def _commit(self, group: list[_Write]) -> list[Any]:
        conn = self._conn
        with conn.begin():
            durable = any(w.durable for w in group)
            if not self._sqlite:
                if not durable:  # for this transaction only; see the module's docstring
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            elif durable is not self._synced:  # before the first write: no transaction yet
                mode = "FULL" if durable else "NORMAL"
                conn.exec_driver_sql(f"PRAGMA synchronous={mode}")
                self._synced = durable
            kinds: dict[int, tuple[int, Executable, list[dict[str, Any]]]] = {}
            for write in group:
                for st in write.statements:
                    key = id(st.stmt)
                    if key not in kinds:
                        kinds[key] = (st.rank, st.stmt, [])
                    kinds[key][2].append(st.params)
            for _rank, stmt, params in sorted(kinds.values(), key=lambda k: k[0]):
                plan = self._plan(conn, stmt, params[0]) if self._sqlite else None
                if plan is None:
                    conn.execute(stmt, params)
                else:
                    conn.exec_driver_sql(plan.sql, plan.rows(params))
            return [w.after(conn) if w.after else None for w in group]

    def _plan(self, conn: Connection, stmt: Executable, sample: dict[str, Any]) -> _Plan | None:
        key = (stmt, frozenset(sample))  # the statement itself: its id could be reused
        if key in self._plans:
            return self._plans[key]
        plan = _Plan.make(conn, stmt, sample)
        if len(self._plans) < MAX_PLANS:  # the journal's statements are long-lived
            self._plans[key] = plan
        return plan


@dataclass(frozen=True)
class _Plan:
    """A statement compiled once, its rows turned into tuples by its bind processors
    (SQLAlchemy's per-row machinery took ~25 µs a row, most of a large group's time)."""

    sql: str
    columns: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]

    @staticmethod
    def make(conn: Connection, stmt: Executable, sample: dict[str, Any]) -> _Plan | None:
        """None when the statement needs SQLAlchemy's own handling (a default to fill in,
        a non-positional dialect)."""
        compiled: Any = stmt.compile(dialect=conn.dialect,  # type: ignore[attr-defined]
                                     column_keys=list(sample))
        order = compiled.positiontup
        if not order:
            return None
        columns = []
        for name in order:
            bind = compiled.binds[name]
            process = bind.type.bind_processor(conn.dialect)
            if name in sample:
                columns.append((name, None, process))
            elif not bind.required and bind.value is not None and not callable(bind.value):
                value = process(bind.value) if process else bind.value
                columns.append((None, value, None))  # a literal in the statement
            else:
                return None
        return _Plan(compiled.string, tuple(columns))

    def rows(self, params: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """The rows as tuples; a column holding the same object in every row (a group's
        timestamp) is processed once."""
        out: list[list[Any]] = [[] for _ in params]
        for name, value, process in self.columns:
            if name is None:
                for row in out:
                    row.append(value)
                continue
            values = [p[name] for p in params]
            if process is not None:
                first = values[0]
                if all(v is first for v in values):
                    done = process(first)
                    values = [done] * len(values)
                else:
                    values = [process(v) for v in values]
            for row, v in zip(out, values, strict=True):
                row.append(v)
        return [tuple(row) for row in out]


def _storage_error(exc: Exception) -> StorageError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if any(sign in text.lower() for sign in ("disk", "full", "no space left")):
        text += " — free some disk space; nothing was lost, the sender should retry"
    return StorageError(f"could not save to the database: {text}")


def _settle(outcomes: list[tuple[_Write, Any, Exception | None]]) -> None:
    """Release waiters on their loop: one call per loop, not one per waiter."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Write, Any, Exception | None]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, batch in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed while we wrote
            loop.call_soon_threadsafe(_resolve, batch)


def _resolve(batch: list[tuple[_Write, Any, Exception | None]]) -> None:
    for write, result, error in batch:
        if write.future.done():
            continue
        if error is not None:
            write.future.set_exception(error)
        else:
            write.future.set_result(result)
