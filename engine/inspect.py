"""Looking without touching: "Check now" asks a polling trigger for its items and says
what each would do (new, seen, filtered out), and "Find an item" says whether and when
Hookline saw an item and which run it started. Neither writes anything."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, and_, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from engine import templates
from engine.areas import Area
from engine.catalog.context import PollContext
from engine.catalog.service import Item, TriggerKind
from engine.errors import HooklineError, PermanentError
from engine.poller import POLL_TIMEOUT, _unique
from engine.runner import template_context
from engine.storage.schema import areas, events, polls, runs, seen_keys, utcnow

if TYPE_CHECKING:
    from engine.app import Engine

log = logging.getLogger(__name__)

#: What Check now says of an item.
NEW, FILTERED, SEEN, FIRST_CHECK, NO_KEY = "new", "filtered", "seen", "first check", "no key"
#: How many answers Find gives at most.
FIND_LIMIT = 50
#: How many seen keys each area keeps (``Store.prune``'s bound).
SEEN_KEYS_KEPT = 5000
#: Fields that name an item (matched first, and used to tie an item to its event).
ID_FIELDS = ("id", "guid", "uid", "key", "message_id", "path", "link", "url", "html_url",
             "permalink")
TITLE_FIELDS = ("title", "subject", "name", "text", "summary")
_BATCH = 200  # events read per query while searching


@dataclass(frozen=True)
class ItemVerdict:
    """What one item the trigger returns now would do at a real check.

    Attributes:
        verdict: ``new``, ``filtered``, ``seen``, ``first check`` or ``no key``.
        reason: the verdict in a sentence, for the user.
        title: a short name for the item (its title, subject, name or key).
        key: the item's key (None: the trigger gives it none).
        data: the item's payload, as a run would get it.
        seen_at: when Hookline saw it (its event's time, else the first check's).
        run_id / run_status: the run it started when it fired, if that is kept.
    """

    verdict: str
    reason: str
    title: str
    key: str | None
    data: dict[str, Any]
    seen_at: datetime | None = None
    run_id: int | None = None
    run_status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class Found:
    """Something Hookline has of a searched item: an event, or a remembered key.

    Attributes:
        answer: what it means, in a sentence ("seen on … by …; it fired: run #N").
        area_id / area_name: the automation that saw it.
        seen_at: when (the event's arrival, or the first check).
        field / value: where the text was found (``title``, ``key``...) and its value.
        fired: whether it started a run.
        event_id: the event it came as (None: only its key is remembered).
        run_id / run_status: its run, if kept.
    """

    answer: str
    area_id: str
    area_name: str
    seen_at: datetime | None
    field: str
    value: str
    fired: bool
    event_id: int | None = None
    run_id: int | None = None
    run_status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


# ---------------------------------------------------------------------- check now


async def check_now(engine: Engine, area_id: str) -> list[ItemVerdict]:
    """Ask the area's polling trigger for its items once, as the Test in the editor does
    (``dry_run``: a background connection's held messages are not taken, no cursor
    moves on the far side, an empty state so a "not modified" answer hides nothing), and
    say for each what a real check would do. Nothing is written: no seen keys, state,
    events, runs or check history."""
    area = engine.area(area_id)
    spec = engine.registry.trigger(area.spec.trigger.service, area.spec.trigger.action)
    if spec.kind is not TriggerKind.POLL or spec.poll is None:
        raise HooklineError(f"“{area.name}” is not checked: its trigger “{spec.name}” fires "
                            "by itself (a schedule or a delivery). Check now is for triggers "
                            "that look for new items (a feed, a folder, a service).")
    params = await engine._trigger_params(area, spec)
    ctx = PollContext(area.id, params, engine.http, engine.settings,
                      logging.LoggerAdapter(log, {"area_id": area.id}), {},
                      account=await engine._account(area.spec.trigger), dry_run=True)
    try:
        result = await asyncio.wait_for(spec.poll(ctx), POLL_TIMEOUT)
    except TimeoutError:
        raise HooklineError(f"the service did not answer within {POLL_TIMEOUT:g} s; "
                            "try again later") from None
    except HooklineError:
        raise
    except Exception as exc:
        log.exception("Check now of %s crashed", spec.qualified)
        raise PermanentError(f"internal error in {spec.qualified}: {type(exc).__name__}: "
                             f"{exc} (the details are in Hookline's log)") from exc
    items = _unique(result.items)
    state = await engine.store.trigger_state(area.id)
    primed = bool(state and state["primed"])
    async with engine.store.db.connect() as conn:
        if not primed:
            return [_first_check(item) for item in items]
        keys = [k for i in items if i.key is not None for k in (i.key, *i.aliases)]
        seen = await _seen(conn, area.id, keys)
        fired = await _fired(conn, area.id, [i for i in items if _seen_at(i, seen)])
        first = await _primed_at(conn, area.id)
    horizon = utcnow() - timedelta(days=engine.settings.keep_failed_runs_days)
    return [_verdict(area, item, seen, fired, first, horizon) for item in items]


def _first_check(item: Item) -> ItemVerdict:
    if item.key is None:
        return _no_key(item)
    return ItemVerdict(FIRST_CHECK, "first check: would be remembered as already there "
                       "(the first check starts no run)", _title(item.data), item.key,
                       dict(item.data))


def _no_key(item: Item) -> ItemVerdict:
    return ItemVerdict(NO_KEY, "has no key: Hookline cannot tell it from the others, so it "
                       "never fires", _title(item.data), None, dict(item.data))


def _verdict(area: Area, item: Item, seen: Mapping[str, datetime],
             fired: Mapping[str, dict[str, Any]], first: datetime | None,
             horizon: datetime) -> ItemVerdict:
    if item.key is None:
        return _no_key(item)
    title, data = _title(item.data), dict(item.data)
    last_seen = _seen_at(item, seen)
    if last_seen is not None:
        event = fired.get(item.key)
        if event is not None:
            return ItemVerdict(SEEN, f"already seen on {_when(event['received_at'])} "
                               f"(fired then: {_run_words(event)})", title, item.key, data,
                               event["received_at"], event["run_id"], event["run_status"])
        if first is not None and first >= horizon:
            return ItemVerdict(SEEN, f"already seen on {_when(first)} (was there at the "
                               "first check)", title, item.key, data, first)
        return ItemVerdict(SEEN, f"already seen (last on {_when(last_seen)}); no run of it "
                           "is kept: it was there at the first check, or its run has been "
                           "cleaned up", title, item.key, data, last_seen)
    condition = area.spec.condition
    if condition:
        try:  # as a run works it out (engine/runner.py), without running the reactions
            rendered = templates.render(condition, template_context(area, None, data, []),
                                        where="condition")
            passed = templates.truthy(rendered)
        except HooklineError as exc:
            return ItemVerdict(NEW, f"new — would fire, but the condition {condition} "
                               f"cannot be worked out for it, so its run would fail: {exc}",
                               title, item.key, data)
        if not passed:
            return ItemVerdict(FILTERED, f"would be filtered out: the condition "
                               f"{condition} is false for it", title, item.key, data)
    return ItemVerdict(NEW, "new — would fire", title, item.key, data)


def _seen_at(item: Item, seen: Mapping[str, datetime]) -> datetime | None:
    """When the item was last seen, under its key or one it had before (as the poller
    decides what is new)."""
    if item.key is None:
        return None
    times = [seen[k] for k in (item.key, *item.aliases) if k in seen]
    return max(times) if times else None


async def _seen(conn: AsyncConnection, area_id: str, keys: Sequence[str]
                ) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    for start in range(0, len(keys), 500):
        rows = await conn.execute(select(seen_keys.c.key, seen_keys.c.seen_at).where(
            seen_keys.c.area_id == area_id, seen_keys.c.key.in_(keys[start:start + 500])))
        found.update((key, at) for key, at in rows)
    return found


async def _fired(conn: AsyncConnection, area_id: str, items: Sequence[Item]
                 ) -> dict[str, dict[str, Any]]:
    """The event each item fired as, by the item's key: the area's earliest polled event
    whose payload holds the key (or an alias) as a value, the same id, link or path, or
    the same payload. Read a chunk of items at a time, each chunk in one query."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(items), 40):
        chunk = items[start:start + 40]
        probes = {p for item in chunk for p in _probes(item)}
        if not probes:
            continue
        text = cast(events.c.payload, Text)  # PostgreSQL's json has no LIKE
        query = (select(events.c.id, events.c.payload, events.c.received_at)
                 .where(events.c.area_id == area_id, events.c.source == "poll",
                        or_(*(text.ilike(_like(p), escape="!") for p in sorted(probes))))
                 .order_by(events.c.id))
        for event_id, payload, received_at in await conn.execute(query):
            for item in chunk:
                assert item.key is not None
                if item.key not in out and _same_item(item, payload):
                    out[item.key] = {"event_id": event_id, "received_at": received_at}
    runs_of = await _runs(conn, [e["event_id"] for e in out.values()])
    for event in out.values():
        run = runs_of.get(event["event_id"])
        event["run_id"] = run[0] if run else None
        event["run_status"] = run[1] if run else None
    return out


def _probes(item: Item) -> list[str]:
    """Text a payload holding this item must contain (each a JSON string's inside)."""
    values = [item.key or "", *item.aliases]
    values += [str(item.data[f]) for f in ID_FIELDS
               if isinstance(item.data.get(f), str | int) and str(item.data[f])]
    if not any(values):
        values += [v for v in _leaves(item.data) if v][:1]
    return [_json_inside(v) for v in values if v]


def _same_item(item: Item, payload: Any) -> bool:
    if not isinstance(payload, dict):
        return False
    if payload == dict(item.data):
        return True
    keys = {item.key, *item.aliases}
    if any(value in keys for value in _leaves(payload)):
        return True
    return any(f in payload and payload[f] == item.data[f] and item.data[f] not in ("", None)
               for f in ID_FIELDS if f in item.data)


async def _runs(conn: AsyncConnection, event_ids: Sequence[int]
                ) -> dict[int, tuple[int, str]]:
    """The first run of each event (the one it started when it fired)."""
    out: dict[int, tuple[int, str]] = {}
    for start in range(0, len(event_ids), 500):
        rows = await conn.execute(
            select(runs.c.event_id, runs.c.id, runs.c.status)
            .where(runs.c.event_id.in_(event_ids[start:start + 500])).order_by(runs.c.id))
        for event_id, run_id, status in rows:
            out.setdefault(event_id, (run_id, status))
    return out


async def _primed_at(conn: AsyncConnection, area_id: str) -> datetime | None:
    """When the area's (latest) first check was made, while its history keeps it."""
    return (await conn.execute(
        select(polls.c.at).where(polls.c.area_id == area_id, polls.c.outcome == "primed")
        .order_by(polls.c.id.desc()).limit(1))).scalar()


# ---------------------------------------------------------------------- find


async def find_item(engine: Engine, text: str, area_id: str | None = None,
                    limit: int = FIND_LIMIT) -> list[Found]:
    """Whether and when Hookline saw an item: the events (of ``area_id``, or of every
    area) whose payload holds ``text`` in a value (any case: an id, a link, a title),
    newest first, each with the run it started; and the areas that remember ``text``
    as an item's key without an event of it (there at the first check). At most
    ``limit``; an empty list: not seen (:func:`not_seen` says so)."""
    text = text.strip()
    if not text:
        raise HooklineError("type part of an item's id, link or title to look for")
    if area_id is not None:
        area_id = engine.area(area_id).id
    keep_days = engine.settings.keep_failed_runs_days
    async with engine.store.db.connect() as conn:
        names = dict((await conn.execute(select(areas.c.id, areas.c.name))).all())
        found = await _found_events(conn, text, area_id, names, limit)
        if len(found) < limit:
            with_event = {f.area_id for f in found}
            found += await _found_keys(conn, text, area_id, names, with_event,
                                       utcnow() - timedelta(days=keep_days),
                                       limit - len(found))
    return found


def not_seen(text: str, keep_days: int) -> str:
    """What to say when :func:`find_item` found nothing."""
    return (f"not seen: Hookline has no event or key matching '{text.strip()}' (it keeps "
            f"the newest {SEEN_KEYS_KEPT:,} keys per automation and events for "
            f"{keep_days} days; older ones may have been cleaned up)")


async def _found_events(conn: AsyncConnection, text: str, area_id: str | None,
                        names: Mapping[str, str], limit: int) -> list[Found]:
    """Newest first, read a batch at a time: SQL's LIKE on the payload's text (ASCII
    case aside, as JSON writes it) narrows, the payload's values decide (a match in a
    field's name, say ``title``, is not one)."""
    payload = cast(events.c.payload, Text)
    patterns = {_json_inside(t) for t in (text, text.lower(), text.upper())}
    wanted = text.casefold()
    where = [or_(*(payload.ilike(_like(p), escape="!") for p in sorted(patterns)))]
    if area_id is not None:
        where.append(events.c.area_id == area_id)
    hits: list[tuple[dict[str, Any], str, str]] = []
    before: int | None = None
    while len(hits) < limit:
        query = (select(events.c.id, events.c.area_id, events.c.source, events.c.payload,
                        events.c.received_at, events.c.status)
                 .where(and_(*where, *([events.c.id < before] if before is not None
                                       else [])))
                 .order_by(events.c.id.desc()).limit(_BATCH))
        rows = (await conn.execute(query)).all()
        for row in rows:
            match = _match(row.payload, wanted)
            if match is not None:
                hits.append((dict(row._mapping), *match))
                if len(hits) == limit:
                    break
        if len(rows) < _BATCH:
            break
        before = rows[-1].id
    runs_of = await _runs(conn, [h[0]["id"] for h in hits])
    out = []
    for event, field, value in hits:
        run = runs_of.get(event["id"])
        name = names.get(event["area_id"], event["area_id"])
        out.append(Found(_event_answer(event, name, run), event["area_id"], name,
                         event["received_at"], field, value, True, event["id"],
                         run[0] if run else None, run[1] if run else None))
    return out


def _event_answer(event: Mapping[str, Any], name: str, run: tuple[int, str] | None) -> str:
    when = _when(event["received_at"])
    source = event["source"]
    if source == "manual":
        said = f"sent to “{name}” by Run now on {when}"
    elif source == "replay":
        said = f"replayed into “{name}” on {when}"
    else:
        said = f"seen on {when} by “{name}”"
    if run is not None:
        return f"{said}; it fired: run #{run[0]} ({run[1]})"
    if event["status"] == "pending":
        return f"{said}; it fired: its run has not finished yet"
    return f"{said}; it fired, but its run is no longer kept"


async def _found_keys(conn: AsyncConnection, text: str, area_id: str | None,
                      names: Mapping[str, str], with_event: set[str], horizon: datetime,
                      limit: int) -> list[Found]:
    """Areas that remember an item's key that is ``text`` (first) or holds it (any
    case: a file's key starts with its path), though no event of theirs holds ``text``:
    the item was there at their first check. Said for sure when the area's first check
    is kept, and either its trigger fired nothing since or its keys are made of what
    its payloads show (a feed's guid, a file's path), so the item's event would have
    been found."""
    query = (select(seen_keys.c.area_id, seen_keys.c.key, seen_keys.c.seen_at)
             .where(seen_keys.c.key.ilike(_like(text), escape="!"))
             .order_by((seen_keys.c.key != text), seen_keys.c.seen_at.desc())
             .limit(limit))
    if area_id is not None:
        query = query.where(seen_keys.c.area_id == area_id)
    out = []
    for key_area, key, seen_at in (await conn.execute(query)).all():
        if key_area in with_event or await _fired(conn, key_area, [Item(key, {})]):
            continue  # its event was found, or holds the key as a value
        name = names.get(key_area, key_area)
        first = await _primed_at(conn, key_area)
        if first is not None and first >= horizon and (
                not await _fired_since(conn, key_area, first)
                or await _keys_show_in_payloads(conn, key_area)):
            answer = (f"seen at the first check on {_when(first)} by “{name}”, so it did "
                      "not fire")
            when = first
        else:  # a key alone cannot be tied to an event that does not show it
            answer = (f"seen by “{name}” (still there on {_when(seen_at)}), but no event "
                      "Hookline keeps shows this key: it was there at the first check, or "
                      "it fired with a payload that does not show its key (look for part "
                      "of its title to find its run)")
            when = seen_at
        out.append(Found(answer, key_area, name, when, "key", key, False))
    return out


async def _fired_since(conn: AsyncConnection, area_id: str, since: datetime) -> bool:
    """Whether the area's trigger fired anything since ``since``."""
    return (await conn.execute(select(events.c.id).where(
        events.c.area_id == area_id, events.c.source == "poll",
        events.c.received_at >= since).limit(1))).first() is not None


async def _keys_show_in_payloads(conn: AsyncConnection, area_id: str) -> bool:
    """Whether the area's keys are made of values its payloads show, judged on its
    newest polled event: one of its values is part of a key the area remembers."""
    payload = (await conn.execute(
        select(events.c.payload).where(events.c.area_id == area_id,
                                       events.c.source == "poll")
        .order_by(events.c.id.desc()).limit(1))).scalar()
    for value in [v for v in _leaves(payload) if len(v) >= 4][:20]:
        hit = (await conn.execute(select(seen_keys.c.key).where(
            seen_keys.c.area_id == area_id,
            seen_keys.c.key.ilike(_like(value), escape="!")).limit(1))).first()
        if hit is not None:
            return True
    return False


def _match(payload: Any, wanted: str) -> tuple[str, str] | None:
    """Where in ``payload`` a value holds ``wanted`` (casefolded): an id or link field
    first, then a title, then any value; as (field path, value)."""
    found = [(path, value) for path, value in _paths(payload, "")
             if wanted in value.casefold()]
    if not found:
        return None

    def rank(hit: tuple[str, str]) -> int:
        last = hit[0].rsplit(".", 1)[-1]
        return 0 if last in ID_FIELDS else 1 if last in TITLE_FIELDS else 2

    return min(found, key=rank)


def _paths(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, f"{path}[{index}]")
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield path or "value", str(value)


def _leaves(value: Any) -> Iterator[str]:
    for _path, leaf in _paths(value, ""):
        yield leaf


# ---------------------------------------------------------------------- words


def _title(data: Mapping[str, Any]) -> str:
    for name in (*TITLE_FIELDS, *ID_FIELDS):
        value = data.get(name)
        if isinstance(value, str | int) and str(value).strip():
            text = " ".join(str(value).split())
            return text if len(text) <= 120 else text[:119] + "…"
    return next(_leaves(data), "(an item without a title)")[:120]


def _when(at: datetime) -> str:
    return f"{at.astimezone():%Y-%m-%d %H:%M}"


def _run_words(event: Mapping[str, Any]) -> str:
    if event["run_id"] is None:
        return "its run is no longer kept"
    return f"run #{event['run_id']} ({event['run_status']})"


def _json_inside(value: str) -> str:
    """``value`` as it is written inside a JSON string in the database."""
    return json.dumps(value)[1:-1]


def _like(fragment: str) -> str:
    """An ILIKE pattern holding ``fragment`` (ILIKE: SQLite's LIKE ignores ASCII case,
    PostgreSQL's does not)."""
    escaped = fragment.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as JSON gives it back (times as ISO 8601 text)."""
    out: dict[str, Any] = json.loads(json.dumps(value, default=lambda v: v.isoformat()
                                 if isinstance(v, datetime) else str(v)))
    return out


# ---------------------------------------------------------------------- control channel


def control_commands(engine: Engine) -> dict[str, Callable[[dict[str, Any]],
                                                          Awaitable[Any]]]:
    """The control channel's ``check-now`` and ``find-item`` (the CLI while an engine
    runs: a trigger's background connection belongs to that engine)."""

    async def check(body: dict[str, Any]) -> Any:
        area = await engine.store.area(str(body["area"]))
        return [v.to_dict() for v in await check_now(engine, area.id)]

    async def find(body: dict[str, Any]) -> Any:
        area_id = (await engine.store.area(str(body["area"]))).id if body.get("area") else None
        return [f.to_dict() for f in await find_item(engine, str(body["text"]), area_id)]

    return {"check-now": check, "find-item": find}
