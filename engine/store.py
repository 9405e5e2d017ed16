"""Reading and writing areas and run history through the async database engine."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from engine import trace, windows
from engine.areas import Area, AreaSpec, Step
from engine.errors import CatalogError, HooklineError
from engine.lifecycle import TRANSITIONS_PER_AREA, Transition, state_of
from engine.storage.schema import (
    area_transitions,
    areas,
    events,
    polls,
    runs,
    seen_keys,
    trigger_state,
    utcnow,
)

#: How many checks of a polling trigger each area's history keeps (the newest).
POLLS_PER_AREA = 50
#: A run's event's source, for its trace id (a webhook delivery's may be its own).
_EVENT_SOURCE = events.c.source.label("event_source")


class NotFound(HooklineError):
    """No area (or run, or event) matches what was asked for."""


def _area(row: Row[Any]) -> Area:
    trig = row.trigger
    spec = AreaSpec(
        name=row.name,
        trigger=Step(trig["service"], trig["trigger"], dict(trig.get("params") or {}),
                     account=trig.get("account")),
        reactions=[Step(r["service"], r["reaction"], dict(r.get("params") or {}), r["uid"],
                        account=r.get("account"))
                   for r in row.reactions],
        condition=row.condition,
        enabled=row.enabled,
        catch_up=row.catch_up,
        interval=row.interval,
        window=windows.from_json(row.window),
        catch_up_after_snooze=bool((row.window or {}).get("catch_up_after_snooze")),
    )
    return Area(row.id, spec, row.paused_reason, row.failure_streak, row.webhook_hash,
                row.created_at, row.updated_at, row.state, row.snoozed_until,
                row.catch_up_after_snooze)


def _account(step: Step) -> dict[str, Any]:
    """The step's account id (only for steps that have one)."""
    return {"account": step.account} if step.account else {}


def _columns(spec: AreaSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "enabled": spec.enabled,
        "trigger": {"service": spec.trigger.service, "trigger": spec.trigger.action,
                    "params": spec.trigger.params, **_account(spec.trigger)},
        "condition": spec.condition,
        "reactions": [{"uid": r.uid, "service": r.service, "reaction": r.action,
                       "params": r.params, **_account(r)} for r in spec.reactions],
        "catch_up": spec.catch_up,
        "interval": spec.interval,
        "window": ({**spec.window.to_dict(), "catch_up_after_snooze": True}
                   if spec.catch_up_after_snooze else spec.window.to_dict()) or None,
    }


def _transition_row(area_id: str, record: Transition) -> Any:
    return area_transitions.insert().values(
        area_id=area_id, at=record.at, from_state=record.from_state,
        to_state=record.to_state, cause=record.cause)


class Store:
    """Areas and history on the async engine (not the hot path: that is the writer).

    Args:
        installation: the installation's random id (:func:`engine.trace.installation_id`);
            without it runs are read without their ``trace_id``.
    """

    def __init__(self, db: AsyncEngine, installation: str | None = None) -> None:
        self.db = db
        self.installation = installation

    async def areas(self) -> list[Area]:
        async with self.db.connect() as conn:
            result = await conn.execute(select(areas).order_by(areas.c.created_at))
            return [_area(r) for r in result]

    async def area(self, ref: str) -> Area:
        """An area by id, id prefix (at least 4 characters) or exact name."""
        async with self.db.connect() as conn:
            row = (await conn.execute(select(areas).where(areas.c.id == ref))).first()
            if row is None and len(ref) >= 4:
                rows = (await conn.execute(
                    select(areas).where(areas.c.id.startswith(ref, autoescape=True)))).all()
                row = rows[0] if len(rows) == 1 else None
            if row is None:
                rows = (await conn.execute(select(areas).where(areas.c.name == ref))).all()
                if len(rows) > 1:
                    raise NotFound(f"{len(rows)} areas are named {ref!r}: use the id instead")
                row = rows[0] if rows else None
            if row is None:
                names = (await conn.execute(select(areas.c.name))).scalars().all()
                raise NotFound(CatalogError.unknown("area", ref, names).args[0])
            return _area(row)

    async def insert(self, spec: AreaSpec, webhook_hash: str | None) -> Area:
        now = utcnow()
        area_id = str(uuid.uuid4())
        async with self.db.begin() as conn:
            await conn.execute(areas.insert().values(
                id=area_id, created_at=now, updated_at=now, webhook_hash=webhook_hash,
                failure_streak=0, state=state_of(spec.enabled, None), **_columns(spec)))
        return await self.area(area_id)

    async def update(self, area_id: str, spec: AreaSpec, *, reset_trigger: bool) -> Area:
        async with self.db.begin() as conn:
            await conn.execute(update(areas).where(areas.c.id == area_id).values(
                updated_at=utcnow(), paused_reason=None, failure_streak=0,
                state=state_of(spec.enabled, None), snoozed_until=None, **_columns(spec)))
            if reset_trigger:
                # A different trigger or parameters: forget what the old one saw, prime anew.
                await conn.execute(delete(seen_keys).where(seen_keys.c.area_id == area_id))
                await conn.execute(delete(trigger_state).where(
                    trigger_state.c.area_id == area_id))
        return await self.area(area_id)

    async def set_webhook_hash(self, area_id: str, webhook_hash: str | None) -> None:
        async with self.db.begin() as conn:
            await conn.execute(update(areas).where(areas.c.id == area_id).values(
                webhook_hash=webhook_hash))

    async def set_enabled(self, area_id: str, enabled: bool) -> None:
        async with self.db.begin() as conn:
            values: dict[str, Any] = {"enabled": enabled, "updated_at": utcnow(),
                                      "state": state_of(enabled, None), "snoozed_until": None}
            if enabled:
                values.update(paused_reason=None, failure_streak=0)
            await conn.execute(update(areas).where(areas.c.id == area_id).values(**values))

    async def set_state(self, area_id: str, record: Transition, **values: Any) -> None:
        """Save the area's new state (with ``values``: snoozed_until, ...) and the
        record of the transition, in one commit."""
        async with self.db.begin() as conn:
            await conn.execute(update(areas).where(areas.c.id == area_id).values(
                state=record.to_state, **values))
            await conn.execute(_transition_row(area_id, record))

    async def set_snooze(self, area_id: str, until: datetime | None, catch_up: bool) -> None:
        """Move a snooze's end (the area stays snoozed: no transition)."""
        async with self.db.begin() as conn:
            await conn.execute(update(areas).where(areas.c.id == area_id).values(
                snoozed_until=until, catch_up_after_snooze=catch_up))

    async def add_transition(self, area_id: str, record: Transition) -> None:
        """Only the record of a transition whose state another write saved."""
        async with self.db.begin() as conn:
            await conn.execute(_transition_row(area_id, record))

    async def transitions(self, area_id: str, limit: int = TRANSITIONS_PER_AREA
                          ) -> list[Transition]:
        """The area's latest state changes, newest first."""
        query = (select(area_transitions).where(area_transitions.c.area_id == area_id)
                 .order_by(area_transitions.c.id.desc()).limit(limit))
        async with self.db.connect() as conn:
            return [Transition(r.at, r.from_state, r.to_state, r.cause)
                    for r in await conn.execute(query)]

    async def remove(self, area_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(areas).where(areas.c.id == area_id))

    async def runs(self, area_id: str | None = None, limit: int = 50,
                   status: str | None = None) -> list[dict[str, Any]]:
        """The newest runs, each with its ``trace_id`` (see :meth:`run`)."""
        query = select(runs, areas.c.name.label("area_name"), _EVENT_SOURCE).join(
            areas, areas.c.id == runs.c.area_id).outerjoin(
            events, events.c.id == runs.c.event_id).order_by(runs.c.id.desc()).limit(limit)
        if area_id:
            query = query.where(runs.c.area_id == area_id)
        if status:
            query = query.where(runs.c.status == status)
        async with self.db.connect() as conn:
            return [self._traced(r) for r in await conn.execute(query)]

    async def run(self, run_id: int) -> dict[str, Any]:
        """A run's row and its ``trace_id``: the trace its event's requests carried
        (``traceparent``), None once the event is gone."""
        query = select(runs, _EVENT_SOURCE).outerjoin(
            events, events.c.id == runs.c.event_id).where(runs.c.id == run_id)
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound(f"no run #{run_id}")
        return self._traced(row)

    def _traced(self, row: Row[Any]) -> dict[str, Any]:
        run = dict(row._mapping)
        run["trace_id"] = (trace.run_trace_id(self.installation, run)
                           if self.installation else None)
        del run["event_source"]
        return run

    async def event(self, event_id: int) -> dict[str, Any]:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(events).where(events.c.id == event_id))).first()
        if row is None:
            raise NotFound(f"no event #{event_id} (it may have been removed by retention)")
        return dict(row._mapping)

    async def last_event(self, area_id: str, source: str) -> dict[str, Any] | None:
        """The area's newest event from ``source`` (its payload, when it arrived)."""
        query = (select(events).where(events.c.area_id == area_id, events.c.source == source)
                 .order_by(events.c.id.desc()).limit(1))
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).first()
        return dict(row._mapping) if row is not None else None

    async def pending_events(self) -> list[dict[str, Any]]:
        async with self.db.connect() as conn:
            rows = await conn.execute(
                select(events).where(events.c.status == "pending").order_by(events.c.id))
            return [dict(r._mapping) for r in rows]

    async def open_runs(self, event_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The latest run of each event, if it started."""
        out: dict[int, dict[str, Any]] = {}
        async with self.db.connect() as conn:
            for start in range(0, len(event_ids), 500):
                chunk = event_ids[start:start + 500]
                rows = await conn.execute(
                    select(runs).where(runs.c.event_id.in_(chunk)).order_by(runs.c.id))
                for row in rows:
                    out[row.event_id] = dict(row._mapping)
        return out

    async def trigger_state(self, area_id: str) -> dict[str, Any] | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(
                select(trigger_state).where(trigger_state.c.area_id == area_id))).first()
        return dict(row._mapping) if row else None

    async def seen_count(self, area_id: str) -> int:
        async with self.db.connect() as conn:
            return int(await conn.scalar(
                select(func.count()).select_from(seen_keys).where(
                    seen_keys.c.area_id == area_id)) or 0)

    async def checks(self, area_id: str, limit: int = POLLS_PER_AREA) -> list[dict[str, Any]]:
        """The area's latest checks of its polling trigger, newest first."""
        query = (select(polls).where(polls.c.area_id == area_id)
                 .order_by(polls.c.id.desc()).limit(limit))
        async with self.db.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def last_runs(self) -> dict[str, dict[str, Any]]:
        """Each area's newest run (for lists: last run time and result)."""
        # One index lookup per area (ix_runs_area_started), not a pass over every run:
        # the lists ask for this several times a second while runs stream in.
        newest = (select(runs.c.id).where(runs.c.area_id == areas.c.id)
                  .order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(1)
                  .correlate(areas).scalar_subquery())
        query = select(runs).select_from(areas).join(runs, runs.c.id == newest)
        async with self.db.connect() as conn:
            rows = await conn.execute(query)
            return {r.area_id: dict(r._mapping) for r in rows}

    async def prune(self, keep_ok_days: int, keep_failed_days: int, per_area: int,
                    seen_per_area: int = 5000, polls_per_area: int = POLLS_PER_AREA,
                    transitions_per_area: int = TRANSITIONS_PER_AREA) -> int:
        """Drop old history: successes sooner than failures; bound runs, seen keys,
        the check history and the record of state changes."""
        now = utcnow()
        removed = 0
        async with self.db.begin() as conn:
            ok_cut: datetime = now - timedelta(days=keep_ok_days)
            bad_cut: datetime = now - timedelta(days=keep_failed_days)
            result = await conn.execute(delete(runs).where(
                runs.c.status.in_(("succeeded", "skipped")), runs.c.started_at < ok_cut))
            removed += result.rowcount or 0
            result = await conn.execute(delete(runs).where(runs.c.started_at < bad_cut))
            removed += result.rowcount or 0
            for (area_id,) in (await conn.execute(select(areas.c.id))).all():
                cutoff = (await conn.execute(
                    select(runs.c.id).where(runs.c.area_id == area_id)
                    .order_by(runs.c.id.desc()).offset(per_area).limit(1))).scalar()
                if cutoff is not None:
                    result = await conn.execute(delete(runs).where(
                        runs.c.area_id == area_id, runs.c.id <= cutoff))
                    removed += result.rowcount or 0
                removed += await _prune_seen(conn, area_id, seen_per_area)
                removed += await _keep_newest(conn, polls, area_id, polls_per_area)
                removed += await _keep_newest(conn, area_transitions, area_id,
                                              transitions_per_area)
            await conn.execute(delete(events).where(
                events.c.status == "done", events.c.received_at < bad_cut))
        return removed


async def _keep_newest(conn: AsyncConnection, table: Table, area_id: str, bound: int) -> int:
    """Keep the newest ``bound`` rows of the area in ``table`` (checks, state changes)."""
    cutoff = (await conn.execute(
        select(table.c.id).where(table.c.area_id == area_id)
        .order_by(table.c.id.desc()).offset(bound).limit(1))).scalar()
    if cutoff is None:
        return 0
    result = await conn.execute(delete(table).where(
        table.c.area_id == area_id, table.c.id <= cutoff))
    return result.rowcount or 0


async def _prune_seen(conn: AsyncConnection, area_id: str, bound: int) -> int:
    """Forget the oldest seen keys past ``bound``, but never one the source still shows:
    each poll touches every key it returned, so those carry the newest time, and keys
    at the cut-off's own time stay (a folder of 10,000 files primed in one poll has
    10,000 keys of one time: deleting "at or before" the cut-off forgot them all, and
    the next poll fired 10,000 runs). Past the bound by what the source shows."""
    seen_at = seen_keys.c.seen_at
    cutoff = (await conn.execute(
        select(seen_at).where(seen_keys.c.area_id == area_id)
        .order_by(seen_at.desc()).offset(bound).limit(1))).scalar()
    if cutoff is None:
        return 0
    result = await conn.execute(delete(seen_keys).where(
        seen_keys.c.area_id == area_id, seen_at < cutoff))
    return result.rowcount or 0
