"""The event journal and run records: every write of the hot path, as group commits."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.errors import StorageError
from engine.storage.db import RawJSON, fitting, storable_text
from engine.storage.ledger import RunLedger, apply, fold
from engine.storage.schema import events, polls, runs, seen_keys, trigger_state, utcnow
from engine.storage.writer import Statement, Writer

log = logging.getLogger(__name__)

#: The state a timer's row starts with (one object: the writer serialises it once a group).
_NO_STATE: dict[str, Any] = {}
#: Run-record statements sent but not committed beyond which runs wait for the writer.
MAX_INFLIGHT = 50_000
#: A run still under way this long after its start gets its database row (as
#: ``running``); one that ends sooner is inserted finished, in one write.
HOLD_RUNNING = 0.5
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _to_json(value: Any) -> RawJSON:
    """``storage.db.to_json`` with one encoder for the journal's life, not one a call."""
    return RawJSON(_encode(value))


class NewEvent(NamedTuple):
    """An event to journal (a named tuple: a timer group makes a thousand at once)."""

    area_id: str
    source: str
    payload: dict[str, Any]
    dedup_key: str | None = None


@dataclass
class RunRecord:
    """A finished run's record, not saved yet: the engine may add writes (the area's
    failure streak) and what to do once it is in the database, then :meth:`Journal.save`."""

    entry: dict[str, Any]
    at: datetime
    steps: RawJSON
    statements: list[Statement] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)


class _Unsent(NamedTuple):
    """A started run's insert, held back (:meth:`Journal.start_run`)."""

    params: dict[str, Any]
    after: list[Callable[[], None]]
    since: float  # loop time of its start


class Journaled(NamedTuple):
    """A committed event, ready to dispatch."""

    id: int
    area_id: str
    source: str
    payload: dict[str, Any]


class Journal:
    """Builds the statements once per dialect and sends writes to the group writer.

    Events are committed before anyone is told they were accepted. A run's start, steps
    and finish are appended to the run ledger at once and committed in the background
    (see :mod:`engine.storage.ledger`); ``after`` callbacks run once they are committed.
    """

    def __init__(self, writer: Writer, dialect: str, ledger: RunLedger) -> None:
        self.writer = writer
        self.ledger = ledger
        self._inflight: set[asyncio.Future[Any]] = set()
        self._inflight_statements = 0
        #: A run record failed to commit: the ledger is kept for the next start.
        self.dirty = False
        # This turn's run records, sent to the writer together at its end.
        self._batch: list[Statement] = []
        self._batch_after: list[Callable[[], None]] = []
        self._flush_handle: asyncio.Handle | None = None
        #: run id -> its insert, held back while the run is young (oldest first)
        self._unsent: dict[int, _Unsent] = {}
        self._unsent_handle: asyncio.TimerHandle | None = None
        self._ledger_failing = False
        ins: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._insert_event = ins(events).on_conflict_do_nothing(
            index_elements=["area_id", "dedup_key"])
        seen_ins = ins(seen_keys)
        # a key seen again is touched: the cleanup keeps what the source still shows
        self._upsert_seen = seen_ins.on_conflict_do_update(
            index_elements=["area_id", "key"], set_={"seen_at": seen_ins.excluded.seen_at})
        poll_ins = ins(trigger_state)
        self._upsert_poll = poll_ins.on_conflict_do_update(
            index_elements=["area_id"],
            set_={"state": poll_ins.excluded.state, "primed": True,
                  "last_check_at": poll_ins.excluded.last_check_at, "last_error": None})
        fire_ins = ins(trigger_state)
        self._upsert_fired = fire_ins.on_conflict_do_update(
            index_elements=["area_id"], set_={"last_fired_at": fire_ins.excluded.last_fired_at})
        self._insert_run = runs.insert()
        self._insert_poll = polls.insert()
        self._update_steps = update(runs).where(runs.c.id == bindparam("rid")).values(
            steps=bindparam("steps"))
        self._finish_run = update(runs).where(runs.c.id == bindparam("rid")).values(
            status=bindparam("status"), steps=bindparam("steps"), error=bindparam("error"),
            condition=bindparam("cond"), finished_at=bindparam("at"))
        self._finish_event = update(events).where(events.c.id == bindparam("eid")).values(
            status="done", finished_at=bindparam("at"))

    def _event_statements(self, new: Sequence[NewEvent], now: datetime
                          ) -> tuple[list[Statement], list[Journaled], list[int]]:
        statements: list[Statement] = []
        journaled: list[Journaled] = []
        keyed: list[int] = []
        for item in new:
            event_id = self.writer.event_id()
            statements.append(Statement(0, self._insert_event, {
                "id": event_id, "area_id": item.area_id, "source": item.source,
                "dedup_key": (None if item.dedup_key is None
                              else fitting(item.dedup_key, events.c.dedup_key)),
                "payload": item.payload, "received_at": now,
                "status": "pending", "finished_at": None}))
            journaled.append(Journaled(event_id, item.area_id, item.source, item.payload))
            if item.dedup_key is not None:
                keyed.append(event_id)
        return statements, journaled, keyed

    async def append(self, new: Sequence[NewEvent], extra: Sequence[Statement] = ()
                     ) -> list[Journaled]:
        """Commit ``new`` events (and ``extra`` statements) together; returns the events
        that were stored — a repeated dedup key is dropped silently."""
        now = utcnow()
        statements, journaled, keyed = self._event_statements(new, now)

        def stored(conn: Connection) -> set[int]:
            if not keyed:
                return set()
            rows = conn.execute(select(events.c.id).where(events.c.id.in_(keyed)))
            return {r[0] for r in rows}

        present: set[int] = await self.writer.write(
            [*statements, *extra], stored if keyed else None, durable=bool(statements)
        ) or set()
        return [j for j in journaled if j.id not in keyed or j.id in present]

    def poll_statements(self, area_id: str, keys: Sequence[str], state: dict[str, Any]
                        ) -> list[Statement]:
        """Remember ``keys`` (every key the poll returned, new or not) as seen now, and
        save the poll's state — with its events. Every key the source still shows thus
        carries the latest poll's time, which the seen-key cleanup never deletes."""
        now = utcnow()
        out = [Statement(0, self._upsert_seen, {"area_id": area_id, "key": k, "seen_at": now})
               for k in keys]
        out.append(Statement(1, self._upsert_poll, {
            "area_id": area_id, "state": state, "primed": True, "last_check_at": now,
            "last_fired_at": None, "last_error": None}))
        return out

    def poll_record_statement(self, area_id: str, *, at: datetime, seconds: float,
                              outcome: str, items: int, new: int, error: str | None,
                              next_at: datetime | None, next_why: str | None) -> Statement:
        """One check of a polling trigger for its history (``polls``): sent with the
        poll's events and seen keys, so the history never says "new" for a poll whose
        events were not saved."""
        return Statement(1, self._insert_poll, {
            "area_id": area_id, "at": at, "seconds": seconds, "outcome": outcome,
            "items": items, "new": new, "error": error, "next_at": next_at,
            "next_why": next_why})

    def fired_statement(self, area_id: str, at: datetime) -> Statement:
        return Statement(1, self._upsert_fired, {
            "area_id": area_id, "state": _NO_STATE, "primed": True, "last_check_at": None,
            "last_fired_at": at, "last_error": None})

    # ------------------------------------------------------------ run records

    def replay(self) -> int:
        """Fold run records left in the ledger (a killed process, a failed write) into
        the database, then drop them; before the writer starts. Returns runs changed."""
        segments = self.ledger.segments()
        if not segments:
            return 0
        try:
            state = fold(self.ledger.read(segments))
            changed: int = self.writer.run_sync(lambda conn: apply(conn, state))
        except Exception as exc:  # start anyway; the records stay on disk, set aside
            kept = self.ledger.set_aside(segments)
            log.error("could not bring the run ledger into the database (%s); runs "
                      "recorded only there are kept in %s and may run again",
                      exc, ", ".join(str(p) for p in kept))
            return 0
        self.ledger.remove(segments)
        if changed:
            log.info("recovered %d run record(s) from the run ledger", changed)
        return changed

    def _record(self, entry: dict[str, Any], raw: dict[str, str],
                statements: Sequence[Statement] = (),
                after: Sequence[Callable[[], None]] = ()) -> None:
        """Buffer a ledger line and its database writes until the end of this turn of
        the loop (or the next :meth:`checkpoint`)."""
        self.ledger.append(entry, raw)
        self._batch.extend(statements)
        self._batch_after.extend(after)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def checkpoint(self) -> None:
        """Make every record so far safe against a kill: called before a reaction acts."""
        self.ledger.flush()

    def _release_unsent(self, everything: bool) -> None:
        """Send the inserts of runs still under way after :data:`HOLD_RUNNING` seconds
        (or all of them), with their steps as they are now."""
        if not self._unsent:
            return
        young = asyncio.get_running_loop().time() - HOLD_RUNNING
        while self._unsent:
            run_id = next(iter(self._unsent))
            unsent = self._unsent[run_id]
            if not everything and unsent.since > young:
                break
            del self._unsent[run_id]
            params = unsent.params
            if not isinstance(params["steps"], RawJSON):
                params["steps"] = _to_json(params["steps"])
            self._batch.append(Statement(2, self._insert_run, params))
            self._batch_after.extend(unsent.after)

    def _release_held(self) -> None:
        self._unsent_handle = None
        if self._flush_handle is None:
            self._flush()

    def _flush(self, everything: bool = False) -> None:
        """One ledger write and one writer submission for this turn's run records."""
        self._flush_handle = None
        try:
            self.ledger.flush()
        except StorageError as exc:  # the database still gets them; runs stop before acting
            if not self._ledger_failing:
                log.error("%s", exc)
            self._ledger_failing = True
        else:
            if self._ledger_failing:
                log.warning("the run ledger can be written again")
            self._ledger_failing = False
        rotate = self.ledger.rotate_due() and not self._ledger_failing
        # A segment goes once what was written to it is committed: held rows go first.
        self._release_unsent(everything or rotate)
        if self._unsent and self._unsent_handle is None:
            self._unsent_handle = asyncio.get_running_loop().call_later(
                HOLD_RUNNING, self._release_held)
        statements, after = self._batch, self._batch_after
        self._batch, self._batch_after = [], []
        if not statements and not after:
            return
        future = self.writer.submit(statements)
        self._inflight.add(future)
        self._inflight_statements += len(statements)
        future.add_done_callback(partial(self._committed, after, len(statements)))
        if rotate:
            closed = self.ledger.rotate()
            barrier = self.writer.submit()  # commits after everything written to `closed`
            self._inflight.add(barrier)
            barrier.add_done_callback(partial(self._retire, closed))

    def _committed(self, after: list[Callable[[], None]], statements: int,
                   future: asyncio.Future[Any]) -> None:
        self._inflight.discard(future)
        self._inflight_statements -= statements
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            if not self.dirty:
                log.error("%s; the run records are kept in %s and saved at the next start",
                          error, self.ledger.folder)
            self.dirty = True
        for callback in after:
            callback()

    def _retire(self, closed: Any, future: asyncio.Future[Any]) -> None:
        self._inflight.discard(future)
        if not future.cancelled() and future.exception() is None and not self.dirty:
            self.ledger.remove([closed])

    async def settled(self) -> None:
        """Wait until every run record so far has committed."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        if self._flush_handle is not None or self._unsent:
            self._flush(everything=True)
        while self._inflight:
            await asyncio.wait(list(self._inflight))

    async def room(self) -> None:
        """Wait while the writer is far behind (bounds memory under a long burst)."""
        if self._inflight_statements > MAX_INFLIGHT:
            await self.settled()

    def close(self) -> None:
        """Close the ledger; it is removed when every record reached the database."""
        if self._unsent_handle is not None:
            self._unsent_handle.cancel()
            self._unsent_handle = None
        self.ledger.close(remove=not self.dirty and not self._inflight and not self._batch
                          and not self._unsent)

    def start_run(self, run_id: int, event: Journaled, *, resumed: bool,
                  steps: list[dict[str, Any]], status: str = "running",
                  after: Sequence[Callable[[], None]] = ()) -> None:
        """Record the run as started (safe against a kill after :meth:`checkpoint`).

        A fresh run's steps are not serialised now: a replay restarts them from the
        area (an empty list). Its database row is held back while the run is young
        (:data:`HOLD_RUNNING`): a run that ends by then is inserted finished, one row
        written once; ``after`` runs when the row is committed."""
        now = utcnow()
        params = {"id": run_id, "event_id": event.id, "area_id": event.area_id,
                  "status": status, "resumed": resumed, "trigger_payload": event.payload,
                  "condition": None, "steps": steps, "error": None, "started_at": now,
                  "finished_at": None}
        self._unsent[run_id] = _Unsent(params, list(after),
                                       asyncio.get_running_loop().time())
        self._record(
            {"run": run_id, "event": event.id, "area": event.area_id, "resumed": resumed,
             "started_status": status, "started": now.isoformat()},
            {"steps": _to_json(steps)} if resumed else {})

    def save_steps(self, run_id: int, steps: list[dict[str, Any]]) -> None:
        steps_json = _to_json(steps)
        unsent = self._unsent.get(run_id)
        if unsent is not None:  # its insert is still held back
            unsent.params["steps"] = steps_json
            self._record({"run": run_id}, {"steps": steps_json})
            return
        self._record({"run": run_id}, {"steps": steps_json},
                     [Statement(3, self._update_steps, {"rid": run_id, "steps": steps_json})])

    def finished(self, run_id: int, event_id: int | None, *, status: str,
                 steps: list[dict[str, Any]], error: str | None,
                 condition: dict[str, Any] | None) -> RunRecord:
        """A finished run's record, for :meth:`save`."""
        now = utcnow()
        return RunRecord({"run": run_id, "event": event_id, "status": status,
                          "error": storable_text(error), "condition": condition,
                          "finished": now.isoformat()},
                         now, _to_json(steps))

    def save(self, record: RunRecord) -> None:
        """Record a finished run (safe against a kill after :meth:`checkpoint`): when its
        insert is still held back, the run is inserted finished."""
        entry, at, steps = record.entry, record.at, record.steps
        run_id, event_id = entry["run"], entry["event"]
        statements = list(record.statements)
        after: Sequence[Callable[[], None]] = record.after
        unsent = self._unsent.pop(run_id, None)
        if unsent is not None:
            unsent.params.update(status=entry["status"], steps=steps, error=entry["error"],
                                 condition=entry["condition"], finished_at=at)
            statements.append(Statement(2, self._insert_run, unsent.params))
            after = [*unsent.after, *record.after]
        else:
            statements.append(Statement(4, self._finish_run, {
                "rid": run_id, "status": entry["status"], "steps": steps,
                "error": entry["error"], "cond": entry["condition"], "at": at}))
        if event_id is not None:
            statements.append(Statement(5, self._finish_event, {"eid": event_id, "at": at}))
        self._record(entry, {"steps": steps}, statements, after)

    def finish_run(self, run_id: int, event_id: int | None, *, status: str,
                   steps: list[dict[str, Any]], error: str | None,
                   condition: dict[str, Any] | None) -> None:
        self.save(self.finished(run_id, event_id, status=status, steps=steps, error=error,
                                condition=condition))

    async def mark_interrupted(self, run_id: int, steps: list[dict[str, Any]],
                               condition: dict[str, Any] | None) -> None:
        await self.writer.write([Statement(4, self._finish_run, {
            "rid": run_id, "status": "interrupted", "steps": steps,
            "error": "Hookline stopped while this run was under way; it was resumed",
            "cond": condition, "at": utcnow()})])
