"""Running one event through one area: condition, each reaction with timeout and
retries, every attempt recorded in the run."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine import bus as topics
from engine import dispatcher, templates, trace
from engine.areas import Area, Step
from engine.bus import Bus
from engine.catalog.context import ReactionContext
from engine.catalog.params import Param
from engine.catalog.service import ReactionSpec
from engine.errors import (
    CatalogError,
    HooklineError,
    RateLimited,
    StopRun,
    StorageError,
    TemplateError,
    TransientError,
    ValidationError,
    WaitUntil,
)
from engine.http import HttpClient
from engine.journal import Journal, Journaled, RunRecord
from engine.places import in_words
from engine.registry import Registry
from engine.settings import Settings
from engine.storage.schema import utcnow

if TYPE_CHECKING:
    from engine.auth.session import AccountSession

log = logging.getLogger(__name__)

REDACTED = "••••••"
MAX_FIELD = 16 * 1024
MAX_RETRY_WAIT = 3600.0

SecretResolver = Callable[[str, str, str], Awaitable[str | None]]
#: ``account_id -> session`` (AuthError when the account is gone).
SessionOpener = Callable[[str], Awaitable["AccountSession"]]


@dataclass
class Outcome:
    """How a run ended."""

    run_id: int | None
    status: str  # succeeded | failed | skipped
    error: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    #: the run's record, for the caller to add to and save (``Journal.save``)
    record: RunRecord | None = None
    #: the engine could not record the run before acting (its disk refused): nothing
    #: acted, the event stays pending, and the caller runs it again once it can
    deferred: bool = False


def json_safe(value: Any) -> Any:
    """A JSON-ready copy with long strings cut (run records stay small): what a JSON
    round trip with ``default=str`` gives, without serialising twice."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float:
        return value
    if kind is str:
        return value if len(value) <= MAX_FIELD else value[:MAX_FIELD] + "… (cut)"
    if isinstance(value, Mapping):
        return {_json_key(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | int | float | str):  # subclasses (enums): their value
        return json_safe(json.loads(json.dumps(value)))
    return json_safe(str(value))


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)  # as JSON writes it: null, true, 1, 1.5
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def template_context(area: Area, event: Journaled | None, payload: Mapping[str, Any],
                     outputs: list[Any]) -> dict[str, Any]:
    return {
        "trigger": payload,
        "reactions": outputs,
        "area": {"id": area.id, "name": area.name},
        "event": {"id": event.id if event else None,
                  "source": event.source if event else "test"},
        "now": utcnow().isoformat(),
    }


class Runner:
    """Executes runs; one area's failure never touches another's.

    Args:
        resolve_secret: ``(area_id, slot, param) -> value`` from the keyring.
        sessions: opens the account session of a step that acts as an account.
        limits: a semaphore per service bounding concurrent calls.
        installation: the installation's random id, from which trace ids are derived
            (:mod:`engine.trace`).
    """

    def __init__(self, registry: Registry, settings: Settings, http: HttpClient, bus: Bus,
                 journal: Journal | None, resolve_secret: SecretResolver, *,
                 sessions: SessionOpener | None = None, installation: str = "") -> None:
        self.registry = registry
        self.settings = settings
        self.http = http
        self.bus = bus
        self.journal = journal
        self.resolve_secret = resolve_secret
        self.sessions = sessions
        self.installation = installation
        #: Set when the engine closes: waits end at once (and resume after a restart).
        self.closing = asyncio.Event()
        self._limits: dict[str, asyncio.Semaphore] = {}

    def _limit(self, service_id: str) -> asyncio.Semaphore:
        if service_id not in self._limits:
            self._limits[service_id] = asyncio.Semaphore(self.settings.service_concurrency)
        return self._limits[service_id]

    async def run(self, area: Area, event: Journaled, *,
                  carried: list[dict[str, Any]] | None = None) -> Outcome:
        """Process ``event`` for ``area``; ``carried`` are the steps of an interrupted
        run (finished ones are not repeated; the run is marked resumed).

        The start and each step are recorded as they happen; the finished run's record
        is the outcome's ``record``, which the caller saves (``Journal.save``) before
        the area's next run starts. While it runs, the run's span is
        :data:`engine.trace.current` (each reaction attempt's while it is called).
        """
        assert self.journal is not None
        run_id = self.journal.writer.run_id()
        span = trace.Span(self.installation, (event.id, event.source, event.payload), run_id)
        token = trace.current.set(span)
        try:
            return await self._run(area, event, carried, run_id, span)
        finally:
            trace.current.reset(token)

    async def _run(self, area: Area, event: Journaled, carried: list[dict[str, Any]] | None,
                   run_id: int, span: trace.Span) -> Outcome:
        assert self.journal is not None
        spec = area.spec
        steps = carried or [_new_step(r) for r in spec.reactions]
        self.journal.start_run(run_id, event, resumed=carried is not None, steps=steps,
                               after=[lambda: self.bus.publish(
                                   topics.RUN_STARTED, run_id=run_id, area_id=area.id,
                                   event_id=event.id)])
        condition: dict[str, Any] | None = None
        status, error = "succeeded", None
        deferred = False
        outputs: list[Any] = []
        try:
            if spec.condition:
                context = template_context(area, event, event.payload, outputs)
                rendered = templates.render(spec.condition, context, where="condition")
                passed = templates.truthy(rendered)
                condition = {"expression": spec.condition, "result": passed}
                if not passed:
                    status = "skipped"
            if status != "skipped":
                for index, step in enumerate(spec.reactions):
                    record = steps[index]
                    if record.get("status") == "succeeded":
                        outputs.append(record.get("output") or {})
                        continue
                    if record.get("status") == "stopped":
                        break
                    if record.get("status") != "waiting":  # a wait resumed after a restart
                        try:
                            output = await self._react(area, event, index, step, record,
                                                       outputs, run_id,
                                                       self._noter(run_id, steps, record))
                        except _Stopped:
                            for later in steps[index + 1:]:
                                later["status"] = "skipped"
                            break
                        except _Waiting as waiting:
                            record.update(status="waiting", until=waiting.until.isoformat())
                        else:
                            outputs.append(output)
                            if index < len(spec.reactions) - 1:
                                self.journal.save_steps(run_id, steps)
                            continue
                    # Waiting: the moment is saved first, so a restart waits only the rest.
                    self.journal.save_steps(run_id, steps)
                    until = datetime.fromisoformat(record["until"])
                    await self._wait(until)
                    record.update(status="succeeded", output={"waited_until": record["until"]})
                    outputs.append(record["output"])
                    if index < len(spec.reactions) - 1:
                        self.journal.save_steps(run_id, steps)
        except _DiskTrouble as trouble:
            deferred = True
            status, error = "failed", (f"{trouble}; it runs again once the disk takes "
                                       "writes")
        except _StepFailed as failed:  # said with the step's place as the editor names it
            status, error = "failed", in_words(failed.message, spec, self.registry)
        except HooklineError as exc:  # condition problems
            status, error = "failed", in_words(str(exc), spec, self.registry)
            if condition is None and spec.condition:
                condition = {"expression": spec.condition, "error": str(exc)}
        # deferred: the event stays pending (run again now, or after a restart)
        finished = self.journal.finished(run_id, None if deferred else event.id,
                                         status=status, steps=steps, error=error,
                                         condition=condition)
        finished.after.append(lambda: self.bus.publish(  # trace: its id computed when read
            topics.RUN_FINISHED, run_id=run_id, area_id=area.id, status=status, error=error,
            event_id=event.id, trace=span))
        return Outcome(run_id, status, error, steps, finished, deferred)

    def _noter(self, run_id: int, steps: list[dict[str, Any]], record: dict[str, Any]
               ) -> Callable[[Mapping[str, Any], bool], None]:
        """What a step's ``ctx.note`` does: its receipt joins the step's record, written
        to the run ledger before the reaction acts (a resumed step gets it back)."""
        assert self.journal is not None
        journal = self.journal

        def note(receipt: Mapping[str, Any], flush: bool = True) -> None:
            record["receipt"] = dict(receipt)
            journal.save_steps(run_id, steps)
            if flush:
                journal.checkpoint()
        return note

    async def _wait(self, until: datetime) -> None:
        """Sleep until ``until``; when the engine closes meanwhile, end the task (the
        saved deadline resumes the run after the next start)."""
        remaining = (until - utcnow()).total_seconds()
        if remaining <= 0:
            return
        try:
            await asyncio.wait_for(self.closing.wait(), remaining)
        except TimeoutError:
            return
        raise asyncio.CancelledError

    async def live_test(self, area: Area, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run the reactions for real on ``payload`` without recording a run (the
        editor's "send for real" test); stops at the first failure."""
        records = [_new_step(r) for r in area.spec.reactions]
        outputs: list[Any] = []
        event = Journaled(0, area.id, "test", dict(payload))
        for index, step in enumerate(area.spec.reactions):
            try:
                outputs.append(await self._react(area, event, index, step, records[index],
                                                  outputs, None))
            except _Stopped:
                break
            except _Waiting as waiting:  # a test does not wait
                records[index].update(status="succeeded", output={
                    "waited_until": waiting.until.isoformat(), "note": "not waited in a test"})
                outputs.append(records[index]["output"])
                continue
            except _StepFailed:
                break
        return records

    async def _react(self, area: Area, event: Journaled | None, index: int, step: Step,
                     record: dict[str, Any], outputs: list[Any], run_id: int | None,
                     noter: Callable[[Mapping[str, Any], bool], None] | None = None) -> Any:
        where = f"reactions[{index}]"
        try:
            spec = self.registry.reaction(step.service, step.action)
            params, shown = await self.render_params(area, event, index, step, spec, outputs)
        except (CatalogError, ValidationError) as exc:
            record.update(status="failed", error=in_words(str(exc), area.spec, self.registry))
            raise _StepFailed(f"{where}: {exc}") from None
        record["params"] = shown
        if spec.requires_setting and not getattr(self.settings, spec.requires_setting):
            message = f"{spec.name} is turned off in settings ({spec.requires_setting})"
            record.update(status="failed", error=message)
            raise _StepFailed(f"{where}: {message}")
        account = None
        if step.account and self.sessions is not None:
            try:
                account = await self.sessions(step.account)
            except HooklineError as exc:
                record.update(status="failed", error=str(exc))
                raise _StepFailed(f"{where} {spec.name}: {exc}") from None
        ctx = ReactionContext(area.id, run_id, params, self.http, self.settings, self.bus,
                              logging.LoggerAdapter(log, {"area_id": area.id}),
                              account=account,
                              idempotency_key=(f"hookline-{area.id}-{event.id}-{index}"
                                               if event is not None and event.id else None),
                              receipt=record.get("receipt") if record.get("interrupted")
                              else None, noter=noter)
        attempts = self.settings.reaction_attempts if spec.retry else 1
        timeout = max(spec.timeout, float(params.get("timeout") or 0) + 5)
        record.setdefault("attempts", [])
        if run_id is not None and self.journal is not None:
            try:
                self.journal.checkpoint()  # the run's start (and the last finish) survive a kill
            except StorageError as exc:  # the engine's own disk, not the reaction's fault
                record["attempts"].clear()
                raise _DiskTrouble(str(exc)) from None
        # The area's next run may start once this reaction's effect is queued in order
        # (next_run_may_start) only when nothing of this run can act after it: the
        # area's one reaction, never tried again. Then its call stops counting against
        # the service's limit too: it only waits.
        handoff = (dispatcher.handoff() if run_id is not None and attempts == 1
                   and len(area.spec.reactions) == 1 else None)
        run_span = trace.current.get() if run_id is not None else None
        for attempt in range(1, attempts + 1):
            started = time.time()
            entry: dict[str, Any] = {"started_at": utcnow().isoformat()}
            record["attempts"].append(entry)
            record["status"] = "running"
            # each attempt its own span (a retry is a new request in the same trace)
            step_token = (None if run_span is None
                          else trace.current.set(run_span.child(index, attempt)))
            try:
                # asyncio.timeout runs the reaction in this task (wait_for would wrap it
                # in a new task: one more turn of the loop per reaction).
                async with _Call(self._limit(spec.service_id), handoff), \
                        asyncio.timeout(timeout):
                    result = await spec.run(ctx)
            except (TransientError, TimeoutError) as exc:
                message = (str(exc) if isinstance(exc, TransientError)
                           else f"did not finish within {timeout:g} s")
                entry.update(error=message, seconds=round(time.time() - started, 3))
                if attempt < attempts:
                    wait = self.settings.retry_delay * 2 ** (attempt - 1)
                    if isinstance(exc, RateLimited) and exc.retry_after is not None:
                        wait = exc.retry_after
                    entry["retry_in"] = round(min(wait, MAX_RETRY_WAIT), 3)
                    await asyncio.sleep(min(wait, MAX_RETRY_WAIT))
                    continue
                record.update(status="failed", error=message)
                raise _StepFailed(f"{where} {spec.name}: {message} "
                                  f"(after {attempt} attempt{'s' if attempt > 1 else ''})"
                                  ) from None
            except StorageError as exc:  # its ctx.note: the engine's own disk refused
                record["attempts"].pop()
                record["status"] = "pending"
                raise _DiskTrouble(str(exc)) from None
            except StopRun as stop:
                entry["seconds"] = round(time.time() - started, 3)
                record.update(status="stopped", output={"reason": str(stop)}, error=None)
                raise _Stopped from None
            except WaitUntil as wait:
                entry["seconds"] = round(time.time() - started, 3)
                raise _Waiting(wait.until) from None
            except HooklineError as exc:
                entry.update(error=str(exc), seconds=round(time.time() - started, 3))
                record.update(status="failed", error=str(exc))
                raise _StepFailed(f"{where} {spec.name}: {exc}") from None
            except Exception as exc:
                log.exception("reaction %s crashed", spec.qualified)
                message = f"internal error in {spec.qualified}: {type(exc).__name__}: {exc}"
                entry.update(error=message, seconds=round(time.time() - started, 3))
                record.update(status="failed", error=message)
                raise _StepFailed(f"{where} {spec.name}: {message}") from None
            finally:
                if step_token is not None:
                    trace.current.reset(step_token)
            entry["seconds"] = round(time.time() - started, 3)
            output = json_safe(dict(result or {}))
            record.update(status="succeeded", output=output, error=None)
            record.pop("receipt", None)  # done: the finished record says it all
            return output
        raise AssertionError("unreachable")  # pragma: no cover

    async def render_params(self, area: Area, event: Journaled | None, index: int, step: Step,
                            spec: ReactionSpec, outputs: list[Any],
                            payload: Mapping[str, Any] | None = None
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The reaction's parameters rendered and validated, and a copy safe to record."""
        context = template_context(area, event, payload if payload is not None
                                   else (event.payload if event else {}), outputs)
        params: dict[str, Any] = {}
        shown: dict[str, Any] = {}
        for param in spec.params:
            where = f"reactions[{index}].params.{param.name}"
            value = step.params.get(param.name)
            if param.is_secret:
                value = await self.resolve_secret(area.id, step.uid, param.name)
                if value is None and param.required:
                    raise ValidationError(where, f"{param.label} is not set: enter it in the "
                                                 "area's editor (it is kept in the keyring)")
                params[param.name] = value
                shown[param.name] = REDACTED if value else None
                continue
            if param.may_template(True) and isinstance(value, str):
                value = templates.render(value, context, where=where,
                                         html=_is_html(param, step.params, spec))
            try:
                params[param.name] = param.validate(value)
            except ValidationError as exc:
                raise TemplateError(where, exc.problem) from None
            shown[param.name] = params[param.name]
        return params, json_safe(shown)


def _is_html(param: Param, given: Mapping[str, Any], spec: ReactionSpec) -> bool:
    """Whether ``param``'s output is HTML in this step (its ``html_when`` holds)."""
    if param.html_when is None:
        return False
    name, value = param.html_when
    other = next((p for p in spec.params if p.name == name), None)
    return bool(given.get(name, other.default if other is not None else None) == value)


class _Call:
    """A reaction's call: holds a place in its service's limit, and lends the run's
    handoff (or none) to the reaction; a handoff taken gives the place back."""

    __slots__ = ("_handoff", "_held", "_limit", "_token")

    def __init__(self, limit: asyncio.Semaphore,
                 handoff: Callable[[], bool] | None) -> None:
        self._limit = limit
        self._handoff = handoff
        self._held = False

    def _hand_on(self) -> bool:
        assert self._handoff is not None
        if not self._handoff():
            return False
        if self._held:
            self._held = False
            self._limit.release()
        return True

    async def __aenter__(self) -> None:
        await self._limit.acquire()
        self._held = True
        self._token = dispatcher.lend_handoff(
            self._hand_on if self._handoff is not None else None)

    async def __aexit__(self, *_exc: object) -> None:
        dispatcher.restore_handoff(self._token)
        if self._held:
            self._held = False
            self._limit.release()


class _DiskTrouble(Exception):
    """The run could not be recorded before a reaction acted: nothing acted."""


class _Stopped(Exception):
    """A reaction ended the run as planned."""


class _Waiting(Exception):
    def __init__(self, until: datetime) -> None:
        super().__init__(until.isoformat())
        self.until = until


class _StepFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _new_step(step: Step) -> dict[str, Any]:
    return {"service": step.service, "reaction": step.action, "status": "pending",
            "attempts": []}
