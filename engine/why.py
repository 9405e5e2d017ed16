"""Why an area fired or did not: its state, its trigger's latest checks, firings or
deliveries, and each reaction's last outcomes, in plain words (:func:`explain`), with
the sections the CLI and the desktop app show (:func:`sections`, :func:`render_text`).

Nothing here is stored anew: it reads what the engine keeps already (the check history,
runs and their events, the poller's failure streaks, the scheduler's next times, the
listener's ring of deliveries) and says it together."""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from engine import lifecycle as life
from engine.catalog.params import spoken_duration
from engine.catalog.service import TriggerKind, TriggerSpec
from engine.deliveries import PER_AREA, Delivery
from engine.errors import CatalogError, HooklineError
from engine.inspect import ID_FIELDS, TITLE_FIELDS
from engine.poller import BACKOFF, INTERVAL, RETRY_AFTER, Streak
from engine.scheduler import missed_between
from engine.storage.schema import events, runs, utcnow
from engine.store import POLLS_PER_AREA

if TYPE_CHECKING:
    from engine.app import Engine
    from engine.areas import Area

#: Newest runs read for the reactions' outcomes, and outcomes shown per reaction.
REACTION_RUNS = 20
OUTCOMES_PER_REACTION = 5
#: Events of the checks in the history read to say what became of each (the newest).
POLL_EVENTS = 200
#: Timed runs read to find the missed and caught-up ones, and next times shown.
SCHEDULE_RUNS = 50
NEXT_TIMES = 3
#: Checks each renderer lists (the JSON has every one kept).
SHOWN_CHECKS = 10
#: Fields that name an item, in order of preference (as Check now and Find name it).
LABEL_FIELDS = (*TITLE_FIELDS, *ID_FIELDS)



# ---------------------------------------------------------------------- the tree


@dataclass
class Fate:
    """What became of one event: its run, or why there is none.

    Attributes:
        event_id: the event.
        received_at: when it was journaled.
        item: a short name for what fired (a poll item's title), if it has one.
        run_id / status: its newest run (None: not run yet, or no longer kept).
        condition / passed: the area's condition and what it came out as, if it has one.
        error: the run's error.
        text: all of it, said of the event ("fired: run #41 succeeded").
    """

    event_id: int
    received_at: datetime
    item: str | None
    run_id: int | None
    status: str | None
    condition: str | None
    passed: bool | None
    error: str | None
    text: str


@dataclass
class Check:
    """One check of a polling trigger, and what its new items became.

    Attributes:
        seen: items already seen before this check (they do not fire).
        primed: items the first check remembered without firing them.
        filtered: new items the condition filtered out.
        fates: the new items' fates, oldest first (while their events are kept).
        text: the check in a sentence.
    """

    at: datetime
    seconds: float
    outcome: str
    items: int
    new: int
    seen: int
    primed: int
    filtered: int
    error: str | None
    next_at: datetime | None
    next_why: str | None
    fates: list[Fate]
    text: str


@dataclass
class Failing:
    """The trigger's checks failing now (kept in memory by the poller)."""

    failures: int
    since: datetime | None
    first_error: str
    last_error: str


@dataclass
class Polling:
    """A polling trigger: when the next check is due and why then, the latest checks.

    Attributes:
        interval: seconds between checks.
        next_at / next_why: the next check and why then (interval, backoff,
            retry-after); None: none is scheduled.
        next_text: that in a sentence ("Not due yet: the next check is at 14:05 (every
            10 minutes).").
        checks: the latest checks, newest first (the history keeps 50).
        last_new: the newest item the trigger fired, while its event is kept.
        text: the answer for this trigger.
    """

    interval: float
    next_at: datetime | None
    next_why: str | None
    next_text: str
    failing: Failing | None
    checks: list[Check]
    last_new: Fate | None
    text: str


@dataclass
class Miss:
    """Scheduled times missed (Hookline not running, the computer asleep) and what the
    catch-up policy made of them."""

    at: datetime
    missed: int
    policy: str
    run_id: int
    status: str
    text: str


@dataclass
class Timing:
    """A schedule: its next times, the missed ones and the catch-up policy.

    Attributes:
        every: the interval in words, for an interval schedule ("every 10 minutes").
        catch_up / policy_text: the catch-up policy and what it does.
        next_times: the next times it is due (while it is on and Hookline runs).
        waiting_misses: times due since its last run while Hookline was not running:
            the next start handles them by the policy.
        misses: recorded misses, newest first.
    """

    every: str | None
    catch_up: str
    policy_text: str
    next_times: list[datetime]
    next_text: str
    waiting_misses: int
    misses: list[Miss]
    text: str


@dataclass
class DeliveryWhy:
    """One request to the area's webhook address and what became of it."""

    at: datetime
    status: int
    reason: str | None
    duplicates: int
    fates: list[Fate]
    text: str


@dataclass
class Webhook:
    """A webhook trigger's deliveries since the listener started (refused ones too).

    Attributes:
        listening: whether the listener takes deliveries now.
        since: the start of the deliveries' record (the listener's start).
        deliveries: newest first, at most the ring's size per area.
    """

    listening: bool
    since: datetime | None
    deliveries: list[DeliveryWhy]
    note: str
    text: str


@dataclass
class Outcome:
    """What one reaction did in one run."""

    run_id: int
    at: datetime
    status: str
    attempts: int
    error: str | None
    text: str


@dataclass
class ReactionWhy:
    index: int
    label: str
    outcomes: list[Outcome]
    text: str


@dataclass
class State:
    """Where the area is in its life (engine/lifecycle.py), and why.

    Attributes:
        status: its lifecycle state (active, snoozed, waiting, paused, needs_account, off,
            done, draft); ``label`` says it in words, ``text`` in a sentence.
        since / cause: the change that brought it there (while its history keeps it).
        next_change / next_state: when it changes by itself next (a snooze ends, its
            window opens or closes), and to what.
        paused_reason: why it paused itself.
        accounts: what is wrong with the accounts its steps act as (an area can need
            one before it is marked so).
    """

    status: str
    label: str
    text: str
    since: datetime | None = None
    cause: str | None = None
    next_change: datetime | None = None
    next_state: str | None = None
    paused_reason: str | None = None
    accounts: list[str] = field(default_factory=list)


@dataclass
class Why:
    """Why an area fired or did not, from what the engine keeps.

    Attributes:
        answer: the one-line answer, to read first.
        at: when this was worked out.
        running: whether an engine runs the area (False: read from storage only).
        kind: the trigger's kind (poll, schedule, push; unknown: its service is gone).
        polling / timing / webhook: the trigger's part (the one of its kind).
        reactions: each reaction's last outcomes, in the area's order.
    """

    area_id: str
    name: str
    at: datetime
    running: bool
    trigger: str
    kind: str
    answer: str
    state: State
    polling: Polling | None = None
    timing: Timing | None = None
    webhook: Webhook | None = None
    reactions: list[ReactionWhy] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO 8601 text)."""
        out: dict[str, Any] = _jsonable(asdict(self))
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------------- words


def when_words(when: datetime, now: datetime | None = None, *, seconds: bool = False) -> str:
    """A moment as a user says it, in local time: ``at 14:05``, ``tomorrow at 09:00``,
    ``yesterday at 18:30``, ``on 3 Dec at 09:12`` (``on 3 Dec 2025 at 09:12``)."""
    local = when.astimezone()
    today = (now or utcnow()).astimezone().date()
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    day = local.date()
    if day == today:
        return f"at {clock}"
    if day == today + timedelta(days=1):
        return f"tomorrow at {clock}"
    if day == today - timedelta(days=1):
        return f"yesterday at {clock}"
    year = f" {local.year}" if local.year != today.year else ""
    return f"on {local.day} {local:%b}{year} at {clock}"


def stamp(when: datetime, now: datetime | None = None) -> str:
    """A moment for a dated line, in local time: ``14:05:09`` today, else
    ``3 Dec 14:05:09``."""
    local = when.astimezone()
    today = (now or utcnow()).astimezone().date()
    if local.date() == today:
        return f"{local:%H:%M:%S}"
    year = f" {local.year}" if local.year != today.year else ""
    return f"{local.day} {local:%b}{year} {local:%H:%M:%S}"


def every(seconds: float) -> str:
    """``every 10 minutes``, ``every hour``."""
    words = spoken_duration(seconds)
    if words.startswith("1 ") and " " not in words[2:]:
        words = words[2:]
    return f"every {words}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _them(count: int) -> str:
    return "it" if count == 1 else "them"


def _sentence(text: str | None) -> str:
    """``text`` ending as a sentence does (an error as the service worded it)."""
    text = (text or "").strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _took(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def item_label(payload: Any) -> str | None:
    """A short name for a fired item (its title, subject, name...), if it has one."""
    if not isinstance(payload, Mapping):
        return None
    for name in LABEL_FIELDS:
        value = payload.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            text = " ".join(str(value).split())
            return text if len(text) <= 80 else text[:79] + "…"
    return None


def _fate_words(run_id: int | None, status: str | None, condition: Mapping[str, Any] | None,
                error: str | None, pending: bool) -> str:
    """What became of an event, said of it ("fired: run #41 succeeded"): a subject goes
    before it (an item's name, "it")."""
    if run_id is None:
        return "waits to run" if pending else "fired, but its run is no longer kept"
    run = f"run #{run_id}"
    expression = condition.get("expression") if condition else None
    if status == "skipped" and condition is not None and condition.get("result") is False:
        return (f"was filtered out: the condition “{expression}” was false, so nothing ran "
                f"({run})")
    if status == "failed" and condition is not None and "error" in condition:
        return (f"could not be checked against the condition “{expression}”, so {run} "
                f"failed: {condition['error']}")
    if status == "skipped" and error:  # not run: the area was snoozed, waiting...
        return f"was {error} ({run})" if error.startswith("not run") \
            else f"was skipped: {error} ({run})"
    if status == "succeeded":
        return f"fired: {run} succeeded"
    if status == "failed":
        return f"fired, but {run} failed: {error}" if error else f"fired, but {run} failed"
    if status == "running":
        return f"fired: {run} is under way"
    if status == "interrupted":
        return f"fired: {run} was interrupted when Hookline stopped, and resumed"
    return f"got {run} ({status})"


# ---------------------------------------------------------------------- explain


async def explain(engine: Engine, area_id: str) -> Why:
    """Why the area fired or did not, from what ``engine`` keeps (NotFound: no area)."""
    area = engine.area(area_id)
    now = utcnow()
    spec = _trigger(engine, area)
    running = not engine.offline
    state, state_answer = await _state(engine, area, now,
                                       await _account_problems(engine, area), running)
    polling = timing = webhook = None
    async with engine.store.db.connect() as conn:
        if spec is not None and spec.kind is TriggerKind.POLL:
            polling = await _polling(engine, conn, area, spec, now, running)
        elif spec is not None and spec.kind is TriggerKind.SCHEDULE:
            timing = await _timing(engine, conn, area, spec, now, running)
        elif spec is not None and spec.kind is TriggerKind.PUSH:
            webhook = await _webhook(engine, conn, area, now, running)
    recent = await engine.store.runs(area.id, REACTION_RUNS)
    reactions = _reactions(engine, area, recent)
    if spec is None:
        trigger = f"{area.spec.trigger.service}.{area.spec.trigger.action}"
        kind = "unknown"
    else:
        trigger = f"{_service_name(engine, spec.service_id)}: {spec.name}"
        kind = spec.kind.value
    why = Why(area.id, area.name, now, running, trigger, kind, "", state, polling, timing,
              webhook, reactions)
    why.answer = _answer(why, state_answer, recent[0] if recent else None)
    return why


def _trigger(engine: Engine, area: Area) -> TriggerSpec | None:
    try:
        return engine.registry.trigger(area.spec.trigger.service, area.spec.trigger.action)
    except CatalogError:
        return None


def _service_name(engine: Engine, service_id: str) -> str:
    service = engine.registry.services.get(service_id)
    return service.name if service is not None else service_id


async def _account_problems(engine: Engine, area: Area) -> list[str]:
    """What keeps the accounts the area's steps act as from working."""
    accounts = {a.id: a for a in await engine.accounts.accounts()}
    problems: list[str] = []
    for step, _is_trigger in area.spec.steps():
        if not step.account:
            continue
        account = accounts.get(step.account)
        if account is None:
            said = (f"the {_service_name(engine, step.service)} account it acted as was "
                    "removed: choose another in the automation's editor")
        elif account.status != "ok":
            said = (f"the {_service_name(engine, account.service_id)} account "
                    f"“{account.name}” must be reconnected (Accounts → Reconnect)"
                    + (f"; it said: {account.last_error}" if account.last_error else ""))
        else:
            continue
        if said not in problems:
            problems.append(said)
    return problems


async def _state(engine: Engine, area: Area, now: datetime, accounts: list[str],
                 running: bool) -> tuple[State, str | None]:
    """The area's state, and the answer when the state is the answer (None: its
    trigger's part answers)."""
    status = await engine.lifecycle(area.id, limit=1)
    last = status.history[0] if status.history else None
    came = last if last is not None and last.to_state == area.state else None
    state = State(area.state, status.label, "", came.at if came else None,
                  came.cause if came else None, status.next_change, status.next_state,
                  area.paused_reason, accounts)
    state.text, answer = _state_words(state, area, now, running, engine.disk_trouble)
    return state, answer


def _state_words(state: State, area: Area, now: datetime, running: bool,
                 disk_trouble: str | None) -> tuple[str, str | None]:
    """The state in a sentence, and the answer when it is the answer."""
    if state.status == life.PAUSED:
        reason = state.paused_reason or state.cause
        return (f"Paused by Hookline: {reason}. Fix the cause, then switch it on again.",
                f"It is paused: {reason}. Switch it on again once that is fixed.")
    if state.status == life.OFF:
        return ("Off: it is switched off, so nothing fires it. Switch it on to let it fire.",
                "It is off: switch it on to let it fire.")
    if state.status == life.DRAFT:
        return ("A draft: it was never switched on.",
                "It is a draft: switch it on to let it fire.")
    if state.status == life.DONE:
        return (f"Done{f' ({state.cause})' if state.cause else ''}: nothing fires it any "
                "more.", f"It is done{f': {state.cause}' if state.cause else ''}; nothing "
                "fires it any more.")
    if state.status == life.NEEDS_ACCOUNT or state.accounts:
        problems = state.accounts or [state.cause or "its account must be connected"]
        return (f"Needs an account: {'; '.join(problems)}. Until then it does not run.",
                f"It needs an account: {problems[0]}.")
    if not running:
        return ("On, but Hookline is not running: nothing is checked, timed or received "
                "until it starts (the app, or `hookline serve`).",
                "Hookline is not running: nothing fires until it starts.")
    if disk_trouble:
        return (f"On, but runs wait: Hookline's disk refuses writes ({disk_trouble}).",
                f"Its runs wait: Hookline's disk refuses writes ({disk_trouble}).")
    if state.status == life.SNOOZED:
        until = (f" until {when_words(state.next_change, now)}" if state.next_change
                 else "")
        meanwhile = ("what its trigger finds meanwhile fires when the snooze ends" if
                     area.catch_up_after_snooze else "what comes meanwhile is remembered or "
                     "recorded, and does not fire")
        return f"Snoozed{until}: {meanwhile}.", f"It is snoozed{until}: {meanwhile}."
    if state.status == life.WAITING:
        opens = (f"; it opens {when_words(state.next_change, now)}" if state.next_change
                 and state.next_state == life.ACTIVE else "")
        return (f"Waiting for its active window{opens}: it does not fire meanwhile.",
                f"It is waiting for its active window{opens}: it does not fire meanwhile.")
    return "On.", None


def _answer(why: Why, state_answer: str | None, last_run: Mapping[str, Any] | None) -> str:
    if state_answer is not None:
        return state_answer
    part = why.polling or why.timing or why.webhook
    if part is None:
        return (f"Its trigger ({why.trigger}) is not available: its service is not "
                "installed, so nothing fires it.")
    if last_run is not None and f"run #{last_run['id']}" not in part.text:
        return _last_run(last_run, why.at) + part.text
    return part.text


def _last_run(run: Mapping[str, Any], now: datetime) -> str:
    """The area's newest run as a sentence, when it did not do its work (else "")."""
    said = f"Its last run, #{run['id']} {when_words(run['started_at'], now)},"
    condition = run["condition"] if isinstance(run["condition"], Mapping) else {}
    if run["status"] == "failed":
        return f"{said} failed: {_sentence(run['error'])} "
    if run["status"] == "skipped" and condition.get("result") is False:
        return (f"{said} was filtered out: the condition “{condition.get('expression')}” "
                "was false. ")
    return ""


# ---------------------------------------------------------------------- history


async def _event_fates(conn: AsyncConnection, area_id: str, *, source: str | None = None,
                       since: datetime | None = None, ids: Sequence[int] = (),
                       limit: int = POLL_EVENTS) -> list[Fate]:
    """The area's events (of ``source`` since ``since``, or ``ids``), newest first,
    each with its newest run."""
    columns = [events.c.id, events.c.received_at, events.c.status.label("event_status"),
               runs.c.id.label("run_id"), runs.c.status, runs.c.condition, runs.c.error]
    if source == "poll":
        columns.append(events.c.payload)  # the item's name
    query = (select(*columns).outerjoin(runs, runs.c.event_id == events.c.id)
             .where(events.c.area_id == area_id)
             .order_by(events.c.id.desc(), runs.c.id.desc()).limit(limit))
    if source is not None:
        query = query.where(events.c.source == source)
    if since is not None:
        query = query.where(events.c.received_at >= since)
    if ids:
        query = query.where(events.c.id.in_(list(ids)))
    fates: dict[int, Fate] = {}
    for row in await conn.execute(query):
        if row.id in fates:
            continue  # an older run of the same event (interrupted, then resumed)
        cond = row.condition if isinstance(row.condition, Mapping) else None
        fates[row.id] = Fate(
            row.id, row.received_at, item_label(row.payload) if source == "poll" else None,
            row.run_id, row.status, (cond or {}).get("expression"),
            (cond or {}).get("result"), row.error,
            _fate_words(row.run_id, row.status, cond, row.error,
                        row.event_status == "pending"))
    return list(fates.values())


async def _polling(engine: Engine, conn: AsyncConnection, area: Area, spec: TriggerSpec,
                   now: datetime, running: bool) -> Polling:
    interval = area.spec.interval or spec.default_interval
    rows = await engine.store.checks(area.id, POLLS_PER_AREA)
    live = running and area.active
    streak = engine.poller.streaks().get(area.id) if live else None
    next_at = engine.scheduler.next_fire(area.id) if live else None
    next_why = (streak.next_why if streak is not None else INTERVAL) if next_at else None
    fates = (await _event_fates(conn, area.id, source="poll", since=rows[-1]["at"])
             if rows else [])
    # Each event belongs to the newest check made before it (checks never overlap).
    by_check: dict[int, list[Fate]] = {}
    for fate in fates:
        owner = next((i for i, row in enumerate(rows) if row["at"] <= fate.received_at),
                     None)
        if owner is not None:
            by_check.setdefault(owner, []).insert(0, fate)
    checks = [_check(row, by_check.get(i, []), now) for i, row in enumerate(rows)]
    if not fates:  # the last new item came before the checks kept
        fates = await _event_fates(conn, area.id, source="poll", limit=1)
    last_new = fates[0] if fates else None
    failing = (Failing(streak.failures, streak.since, streak.first_error, streak.last_error)
               if streak is not None else None)
    next_text = _next_check(area, interval, next_at, next_why, streak, now, running)
    polling = Polling(interval, next_at, next_why, next_text, failing, checks, last_new, "")
    polling.text = _polling_answer(polling, now, live)
    return polling


def _check(row: Mapping[str, Any], fates: list[Fate], now: datetime) -> Check:
    outcome, items, new = row["outcome"], int(row["items"]), int(row["new"])
    seen = items - new if outcome in ("new", "nothing new") else 0
    primed = items if outcome == "primed" else 0
    filtered = sum(1 for f in fates if f.status == "skipped" and f.passed is False)
    if outcome == "primed":
        text = (f"First check: remembered the {_plural(items, 'item')} already there "
                f"without firing {_them(items)}; items that appear after it fire." if items else
                "First check: nothing there yet; items that appear after it fire.")
    elif outcome == "nothing new":
        text = (f"Nothing new: the {_plural(items, 'item')} it found had all been seen "
                "before." if items else "Nothing new: the trigger found no items.")
    elif outcome == "not modified":
        text = "Nothing new: the service said nothing changed since the last check."
    elif outcome in life.LABELS:  # new items while it did not fire (snoozed, waiting)
        text = (f"Nothing fired: it was {life.LABELS[outcome]}; new items among the "
                f"{_plural(items, 'item')} it found are remembered as seen.")
    elif outcome == "failed":
        text = f"Failed: {_sentence(row['error'])}"
        if row["next_at"] is not None and row["next_why"] in (BACKOFF, RETRY_AFTER):
            then = ("backing off" if row["next_why"] == BACKOFF
                    else "as the service asked")
            text += f" Next try {when_words(row['next_at'], now)} ({then})."
    else:
        text = _plural(new, "new item") + (f" of {items} ({seen} already seen)" if seen
                                            else "") + ": "
        shown = [f"“{f.item}” {f.text}" if f.item else f"an item {f.text}" for f in fates[:5]]
        if shown and max(new, len(fates)) > len(shown):
            shown.append(f"and {max(new, len(fates)) - len(shown)} more")
        text += ("; ".join(shown) + ".") if shown else "their events are no longer kept."
    return Check(row["at"], float(row["seconds"]), outcome, items, new, seen, primed,
                 filtered, row["error"], row["next_at"], row["next_why"], fates, text)


def _next_check(area: Area, interval: float, next_at: datetime | None, why: str | None,
                streak: Streak | None, now: datetime, running: bool) -> str:
    """When the next check is due and why then, in a sentence."""
    cadence = every(interval)
    if not running:
        return f"No check until Hookline runs; then it checks {cadence}."
    if not area.active:
        return f"No check is due: it is {life.LABELS[area.state]}."
    if area.state == life.SNOOZED and area.catch_up_after_snooze:
        return ("No check until the snooze ends: what appeared meanwhile fires then "
                f"(then {cadence}).")
    if next_at is None:
        return f"No check is scheduled now ({cadence})."
    at = when_words(next_at, now, seconds=interval < 120)
    if next_at <= now + timedelta(seconds=1):
        return f"A check is due now ({cadence})."
    if why == BACKOFF and streak is not None:
        return (f"Backing off after {_plural(streak.failures, 'failed check')} in a row: the "
                f"next check is {at} instead of {cadence}.")
    if why == RETRY_AFTER:
        return f"The service asked Hookline to wait (Retry-After): the next check is {at}."
    if streak is not None:
        return f"The next try is {at} ({cadence})."
    return f"Not due yet: the next check is {at} ({cadence})."


def _waiting(next_text: str) -> str:
    """The next check's sentence as the answer says it ("It is waiting: ...")."""
    prefix = "Not due yet: "
    return "It is waiting: " + next_text[len(prefix):] if next_text.startswith(prefix) \
        else next_text


def _polling_answer(polling: Polling, now: datetime, live: bool) -> str:
    checks = polling.checks
    failing = polling.failing
    if failing is not None:
        streak = (f" ({failing.failures} checks in a row since "
                  f"{when_words(failing.since, now)})" if failing.failures > 1
                  and failing.since is not None else "")
        return (f"Its checks fail: {_sentence(failing.last_error.rstrip('.') + streak)} "
                f"{polling.next_text}")
    if not checks:
        if not live:
            return "Not checked yet."
        due = polling.next_text.removeprefix("Not due yet: ")
        return (f"Not checked yet: {due[0].lower()}{due[1:]} The first check only remembers "
                "what is there; items that appear after it fire.")
    last = checks[0]
    when = when_words(last.at, now)
    if last.outcome == "failed":
        return f"Its last check {when} failed: {_sentence(last.error)} {polling.next_text}"
    waiting = _waiting(polling.next_text)
    if last.outcome == "primed":
        return (f"Its first check {when} remembered the {_plural(last.items, 'item')} "
                f"already there without firing {_them(last.items)}; items that appear after "
                f"it fire. {waiting}")
    if last.outcome == "new":
        return f"The last check {when} found {last.text} {waiting}"
    if last.outcome in life.LABELS:  # it found new items while it did not fire
        return f"{waiting} The last check {when}: {last.text[0].lower()}{last.text[1:]}"
    found = (f"; the {_plural(last.items, 'item')} it found had all been seen before"
             if last.outcome == "nothing new" and last.items else "")
    said = f"{waiting} The last check {when} found nothing new{found}."
    fate = polling.last_new
    if fate is not None:
        name = f", “{fate.item}”," if fate.item else ""
        said += (f" The last new item{name} was found {when_words(fate.received_at, now)} "
                 f"and {fate.text}.")
    return said


async def _timing(engine: Engine, conn: AsyncConnection, area: Area, spec: TriggerSpec,
                  now: datetime, running: bool) -> Timing:
    try:
        assert spec.schedule is not None
        trigger: Any = spec.schedule(dict(area.spec.trigger.params))
    except (HooklineError, ValueError, TypeError):
        trigger = None
    interval = (trigger.interval.total_seconds() if isinstance(trigger, IntervalTrigger)
                else None)
    cadence = every(interval) if interval is not None else None
    policy = ("Catch-up is “once”: after times missed while Hookline was not running or "
              "the computer slept, it runs once to catch up." if area.spec.catch_up == "once"
              else "Catch-up is “skip”: times missed while Hookline was not running or the "
              "computer slept are recorded as missed, and nothing runs for them.")
    next_times: list[datetime] = []
    first = engine.scheduler.next_fire(area.id) if running and area.active else None
    while first is not None and trigger is not None and len(next_times) < NEXT_TIMES:
        next_times.append(first)
        first = trigger.get_next_fire_time(first, first + timedelta(microseconds=1))
    waiting = 0
    if not running and area.active and trigger is not None:
        state = await engine.store.trigger_state(area.id)
        since = (state or {}).get("last_fired_at") or area.updated_at or now
        waiting = missed_between(trigger, since, now)
    misses = await _misses(conn, area, now)
    seconds = interval is not None and interval < 120
    if not running:
        next_text = "No run until Hookline runs."
        if waiting:
            happens = ("it runs once to catch up" if area.spec.catch_up == "once" else
                       "they are recorded as missed and nothing runs for them")
            next_text += (f" {_plural(waiting, 'scheduled time')} passed since its last run; "
                          f"when Hookline starts, {happens} (catch-up “{area.spec.catch_up}”).")
    elif area.state != life.ACTIVE:
        next_text = f"No run while it is {life.LABELS[area.state]}."
    elif not next_times:
        next_text = "No run is scheduled now."
    else:
        first_at = when_words(next_times[0], now, seconds=seconds)
        next_text = (f"Not due yet: the next run is {first_at}"
                     + (f" ({cadence})" if cadence else "") + ".")
    text = _waiting(next_text)
    if len(next_times) > 1 and area.state == life.ACTIVE:
        then = ", ".join(when_words(t, now, seconds=seconds).removeprefix("at ")
                         for t in next_times[1:])
        next_text += f" Then {then}."
    if misses and misses[0].at >= now - timedelta(days=1):
        text += f" {misses[0].text}"
    return Timing(cadence, area.spec.catch_up, policy, next_times, next_text, waiting, misses,
                  text)


async def _misses(conn: AsyncConnection, area: Area, now: datetime) -> list[Miss]:
    """The area's recorded misses (a ``missed`` run, or a run that caught up), newest
    first, among its latest timed runs."""
    query = (select(runs.c.id, runs.c.status, runs.c.started_at, runs.c.trigger_payload)
             .join(events, events.c.id == runs.c.event_id)
             .where(runs.c.area_id == area.id, events.c.source == "schedule")
             .order_by(runs.c.id.desc()).limit(SCHEDULE_RUNS))
    out = []
    for row in await conn.execute(query):
        payload = row.trigger_payload if isinstance(row.trigger_payload, Mapping) else {}
        count = int(payload.get("missed") or 0)
        when = when_words(row.started_at, now)
        times = _plural(count, "scheduled time")
        if row.status == "missed":
            text = (f"{when[0].upper()}{when[1:]}, {times} had been missed (Hookline was not "
                    "running or the computer slept); catch-up is “skip”, so nothing ran "
                    f"for them (run #{row.id}).")
            out.append(Miss(row.started_at, count, "skip", row.id, row.status, text))
        elif payload.get("catch_up"):
            text = (f"{when[0].upper()}{when[1:]}, {times} had been missed; catch-up is "
                    f"“once”, so it ran once to catch up: run #{row.id} {row.status}.")
            out.append(Miss(row.started_at, count, "once", row.id, row.status, text))
    return out


async def _webhook(engine: Engine, conn: AsyncConnection, area: Area, now: datetime,
                   running: bool) -> Webhook:
    listener = engine.listener
    if listener is None:
        said = ("Hookline is not running: no delivery can arrive until it starts." if not
                running else "The webhook listener is off in Settings: no delivery can "
                "arrive. Turn it on (and restart Hookline) to receive this automation's.")
        return Webhook(False, None, [], said, said)
    ring = listener.deliveries
    kept = ring.of(area.id)
    ids = [e for d in kept for e in d.events]
    fates = await _event_fates(conn, area.id, ids=ids, limit=PER_AREA * 10) if ids else []
    by_event = {f.event_id: f for f in fates}
    deliveries = [_delivery(d, [by_event[e] for e in d.events if e in by_event])
                  for d in kept]
    since = when_words(ring.since, now)
    note = (f"Deliveries since Hookline started {since}, the last {ring.per_area} (kept in "
            "memory only; no body or header is kept).")
    if not deliveries:
        text = f"It is waiting for a delivery: none has arrived since Hookline started {since}."
    else:
        last = deliveries[0]
        when = when_words(last.at, now, seconds=True)
        if last.status == 202:
            text = (f"It is waiting for the next delivery. The last one, {when}, was "
                    f"{last.text[0].lower()}{last.text[1:]}")
        else:
            text = f"The last delivery, {when}, was {last.text[0].lower()}{last.text[1:]}"
        if area.state != life.ACTIVE:
            text += (f" It is {life.LABELS[area.state]}: deliveries are not run meanwhile"
                     + (" (they are refused)." if not area.active else "."))
    return Webhook(True, ring.since, deliveries, note, text)


def _delivery(delivery: Delivery, fates: list[Fate]) -> DeliveryWhy:
    if delivery.status != 202:
        text = f"Refused ({delivery.status}): {delivery.reason}"
        text += "" if text.endswith(".") else "."
    elif fates:
        text = "Accepted; " + "; ".join(f"it {f.text}" for f in fates) + "."
    elif delivery.events:
        text = "Accepted; its run is no longer kept."
    elif delivery.duplicates:
        text = ("Accepted as a repeat of a delivery already received (the same delivery "
                "id): not run again.")
    else:
        text = "Accepted, but it held nothing to fire."
    return DeliveryWhy(delivery.at, delivery.status, delivery.reason, delivery.duplicates,
                       fates, text)


def _reactions(engine: Engine, area: Area, recent: Sequence[Mapping[str, Any]]
               ) -> list[ReactionWhy]:
    """Each reaction's outcomes in ``recent`` runs (newest first)."""
    out = []
    for index, step in enumerate(area.spec.reactions):
        try:
            spec = engine.registry.reaction(step.service, step.action)
            label = f"{_service_name(engine, step.service)}: {spec.name}"
        except CatalogError:
            label = f"{step.service}.{step.action} (its service is not installed)"
        outcomes = []
        for run in recent:
            steps = run["steps"] if isinstance(run["steps"], list) else []
            done = steps[index] if index < len(steps) else None
            if (not isinstance(done, Mapping) or done.get("status") in (None, "pending")
                    or (done.get("service"), done.get("reaction")) != (step.service,
                                                                      step.action)):
                continue
            outcomes.append(_outcome(run, done))
            if len(outcomes) == OUTCOMES_PER_REACTION:
                break
        if outcomes or not recent:
            text = "" if outcomes else "Has not acted yet."
        else:  # the condition, or an earlier reaction, stopped every run read
            runs_read = "run" if len(recent) == 1 else f"{len(recent)} runs"
            text = f"Has not acted in the automation's latest {runs_read}."
        out.append(ReactionWhy(index, label, outcomes, text))
    return out


def _outcome(run: Mapping[str, Any], step: Mapping[str, Any]) -> Outcome:
    status = str(step.get("status"))
    attempts = len(step.get("attempts") or [])
    error = step.get("error")
    tries = f" after {_plural(attempts, 'attempt')}" if attempts > 1 else ""
    if status == "succeeded":
        said = f"succeeded{tries}"
    elif status == "failed":
        said = f"failed{tries}: {error}" if error else f"failed{tries}"
    elif status == "stopped":
        reason = (step.get("output") or {}).get("reason")
        said = f"stopped the run: {reason}" if reason else "stopped the run"
    elif status == "skipped":
        said = "skipped: an earlier reaction stopped the run"
    elif status == "waiting":
        said = f"waits until {step.get('until')}"
    else:
        said = status
    return Outcome(int(run["id"]), run["started_at"], status, attempts, error,
                   f"run #{run['id']} {said}")


# ---------------------------------------------------------------------- renderers


@dataclass(frozen=True)
class Section:
    """A part of the view: a heading, sentences, dated lines (newest first) and small
    print."""

    heading: str
    lines: tuple[str, ...] = ()
    entries: tuple[tuple[datetime, str], ...] = ()
    note: str = ""


def sections(why: Why) -> list[Section]:
    """The view's parts after the answer, in reading order."""
    out = [Section("State", (why.state.text,))]
    if why.polling is not None:
        polling = why.polling
        lines = [polling.next_text]
        if polling.failing is not None and polling.failing.first_error != \
                polling.failing.last_error:
            lines.append(f"The failures began with: {polling.failing.first_error}")
        entries = tuple((c.at, f"{c.text} (took {_took(c.seconds)})")
                        for c in polling.checks[:SHOWN_CHECKS])
        kept = len(polling.checks)
        note = (f"The newest {SHOWN_CHECKS} of the {kept} checks kept (Hookline keeps the "
                f"last {POLLS_PER_AREA})." if kept > SHOWN_CHECKS else
                f"Hookline keeps each automation's last {POLLS_PER_AREA} checks.")
        out.append(Section("Checks", tuple(lines), entries if kept else (),
                           note if kept else ""))
    if why.timing is not None:
        timing = why.timing
        out.append(Section("Schedule", (timing.next_text, timing.policy_text),
                           tuple((m.at, m.text) for m in timing.misses[:SHOWN_CHECKS])))
    if why.webhook is not None:
        webhook = why.webhook
        out.append(Section("Deliveries", () if webhook.deliveries else ("None yet.",),
                           tuple((d.at, d.text) for d in webhook.deliveries), webhook.note))
    for reaction in why.reactions:
        out.append(Section(f"Reaction {reaction.index + 1} ({reaction.label})",
                           (reaction.text,) if reaction.text else (),
                           tuple((o.at, o.text) for o in reaction.outcomes)))
    return out


def render_text(why: Why, width: int = 88) -> str:
    """The view as plain text (the CLI): the answer, then each section."""
    now = why.at
    out = [*textwrap.wrap(why.answer, width), ""]
    out.append(f"“{why.name}” ({why.trigger}), as of {stamp(now, now)}; times are local.")
    for section in sections(why):
        out += ["", section.heading, "-" * min(len(section.heading), width)]
        for line in section.lines:
            out += textwrap.wrap(line, width, initial_indent="  ", subsequent_indent="  ")
        for when, line in section.entries:
            at = stamp(when, now)
            out += textwrap.wrap(f"{at}  {line}", width, initial_indent="  ",
                                 subsequent_indent=" " * (4 + len(at)))
        if section.note:
            out += textwrap.wrap(section.note, width, initial_indent="  ",
                                 subsequent_indent="  ")
    return "\n".join(out) + "\n"


def control_commands(engine: Engine) -> dict[str, Callable[[dict[str, Any]],
                                                          Awaitable[Any]]]:
    """The control channel's ``areas.why``: the CLI asks the running engine (the next
    times, failure streaks and deliveries live in it), and gets the view as data and as
    text."""

    async def why(body: dict[str, Any]) -> Any:
        area = await engine.store.area(str(body["area"]))
        explained = await engine.why(area.id)
        return {"why": explained.to_dict(), "text": render_text(explained)}

    return {"areas.why": why}
