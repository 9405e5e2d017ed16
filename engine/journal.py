"""The event journal and run records: every write of the hot path, as group commits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.storage.schema import events, runs, seen_keys, trigger_state, utcnow
from engine.storage.writer import Statement, Writer


@dataclass(frozen=True)
class NewEvent:
    """An event to journal."""

    area_id: str
    source: str
    payload: dict[str, Any]
    dedup_key: str | None = None


@dataclass
class Pending:
    """Writes that may ride along with the next commit (a finished run's record rides
    with the next run's start: one commit per run), and what to do once durable."""

    statements: list[Statement] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)

    def settled(self) -> None:
        for callback in self.after:
            callback()


@dataclass(frozen=True)
class Journaled:
    """A committed event, ready to dispatch."""

    id: int
    area_id: str
    source: str
    payload: dict[str, Any]


class Journal:
    """Builds the statements once per dialect and sends writes to the group writer."""

    def __init__(self, writer: Writer, dialect: str) -> None:
        self.writer = writer
        ins: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._insert_event = ins(events).on_conflict_do_nothing(
            index_elements=["area_id", "dedup_key"])
        self._insert_seen = ins(seen_keys).on_conflict_do_nothing()
        poll_ins = ins(trigger_state)
        self._upsert_poll = poll_ins.on_conflict_do_update(
            index_elements=["area_id"],
            set_={"state": poll_ins.excluded.state, "primed": True,
                  "last_check_at": poll_ins.excluded.last_check_at, "last_error": None})
        fire_ins = ins(trigger_state)
        self._upsert_fired = fire_ins.on_conflict_do_update(
            index_elements=["area_id"], set_={"last_fired_at": fire_ins.excluded.last_fired_at})
        self._insert_run = runs.insert()
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
                "dedup_key": item.dedup_key, "payload": item.payload, "received_at": now,
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
        """Remember ``keys`` as seen and save the poll's state — with its events."""
        now = utcnow()
        out = [Statement(0, self._insert_seen, {"area_id": area_id, "key": k, "seen_at": now})
               for k in keys]
        out.append(Statement(1, self._upsert_poll, {
            "area_id": area_id, "state": state, "primed": True, "last_check_at": now,
            "last_fired_at": None, "last_error": None}))
        return out

    def fired_statement(self, area_id: str, at: datetime) -> Statement:
        return Statement(1, self._upsert_fired, {
            "area_id": area_id, "state": {}, "primed": True, "last_check_at": None,
            "last_fired_at": at, "last_error": None})

    async def start_run(self, run_id: int, event: Journaled, *, resumed: bool,
                        steps: list[dict[str, Any]], status: str = "running",
                        pending: Pending | None = None) -> None:
        """Record the run as started (with ``pending`` writes in the same commit)."""
        await self.writer.write([*(pending.statements if pending else ()),
                                 Statement(2, self._insert_run, {
            "id": run_id, "event_id": event.id, "area_id": event.area_id, "status": status,
            "resumed": resumed, "trigger_payload": event.payload, "condition": None,
            "steps": steps, "error": None, "started_at": utcnow(), "finished_at": None})])
        if pending:
            pending.settled()

    async def save_steps(self, run_id: int, steps: list[dict[str, Any]]) -> None:
        await self.writer.write([Statement(3, self._update_steps,
                                           {"rid": run_id, "steps": steps})])

    def finish_statements(self, run_id: int, event_id: int | None, *, status: str,
                          steps: list[dict[str, Any]], error: str | None,
                          condition: dict[str, Any] | None) -> list[Statement]:
        now = utcnow()
        statements = [Statement(4, self._finish_run, {
            "rid": run_id, "status": status, "steps": steps, "error": error,
            "cond": condition, "at": now})]
        if event_id is not None:
            statements.append(Statement(5, self._finish_event, {"eid": event_id, "at": now}))
        return statements

    async def finish_run(self, run_id: int, event_id: int | None, *, status: str,
                         steps: list[dict[str, Any]], error: str | None,
                         condition: dict[str, Any] | None) -> None:
        await self.writer.write(self.finish_statements(
            run_id, event_id, status=status, steps=steps, error=error, condition=condition))

    async def flush(self, pending: Pending) -> None:
        """Commit ``pending`` on its own (nothing came along to carry it)."""
        if pending.statements:
            await self.writer.write(pending.statements)
        pending.settled()

    async def mark_interrupted(self, run_id: int, steps: list[dict[str, Any]],
                               condition: dict[str, Any] | None) -> None:
        await self.writer.write([Statement(4, self._finish_run, {
            "rid": run_id, "status": "interrupted", "steps": steps,
            "error": "Hookline stopped while this run was under way; it was resumed",
            "cond": condition, "at": utcnow()})])
