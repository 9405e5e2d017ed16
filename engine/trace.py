"""Trace ids (W3C Trace Context): one per event, carried into its run, every reaction's
outbound request and the log, so one event can be followed across Hookline and the
services it calls.

Nothing is stored for them: each id is a hash of what already is (the installation's
random id, the event's and run's ids), so a restart shows the same ids and a replay,
being a new event, its own. A webhook delivery that came with a ``traceparent`` keeps
that trace id (the header is in the event's payload, as the trigger recorded it).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from contextvars import ContextVar
from hashlib import blake2b
from pathlib import Path
from typing import Any

#: The file in the data folder that holds the installation's random id.
INSTALLATION_FILE = "installation-id"
HEADER = "traceparent"
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ID = re.compile(r"[0-9a-f]{32}")


def installation_id(data_dir: Path) -> str:
    """The installation's random id (32 hex digits), made at the first call and kept
    in the data folder."""
    path = data_dir / INSTALLATION_FILE
    try:
        known = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        known = ""
    if _ID.fullmatch(known):
        return known
    made = secrets.token_hex(16)
    data_dir.mkdir(parents=True, exist_ok=True)
    spare = path.with_name(f"{INSTALLATION_FILE}.{os.getpid()}.tmp")
    spare.write_text(made + "\n", "ascii")
    os.replace(spare, path)  # whole or not at all
    return made


def incoming(payload: Mapping[str, Any]) -> str | None:
    """The trace id of a valid ``traceparent`` among a webhook payload's ``headers``."""
    headers = payload.get("headers")
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == HEADER and isinstance(value, str):
            return parse(value)
    return None


def parse(value: str) -> str | None:
    """The trace id of a ``traceparent`` value, or None when it is not a valid one."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent, _flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent == "0" * 16:
        return None
    return trace_id


def _digest(text: str, size: int) -> str:
    value = blake2b(text.encode(), digest_size=size).hexdigest()
    return value if value.strip("0") else "1".rjust(size * 2, "0")  # all zeros is invalid


def event_trace_id(installation: str, event_id: int, source: str,
                   payload: Mapping[str, Any] | None) -> str:
    """The trace id of an event: a webhook delivery's own, else derived from ids."""
    if source == "webhook" and payload:
        given = incoming(payload)
        if given is not None:
            return given
    return _digest(f"{installation}/event/{event_id}", 16)


def run_span_id(trace_id: str, run_id: int) -> str:
    return _digest(f"{trace_id}/run/{run_id}", 8)


def step_span_id(trace_id: str, run_id: int, index: int, attempt: int) -> str:
    return _digest(f"{trace_id}/run/{run_id}/step/{index}/{attempt}", 8)


class Span:
    """Where in a trace the code now running is: a run, or one attempt of one of its
    steps. Ids are computed on first use (most runs never ask).

    Attributes:
        run_id: the run.
        step: ``(index, attempt)`` of the step's attempt, or None for the run itself.
    """

    __slots__ = ("_event", "_span", "_trace", "run_id", "step")

    def __init__(self, installation: str, event: tuple[int, str, Mapping[str, Any]],
                 run_id: int, step: tuple[int, int] | None = None) -> None:
        self._event: tuple[str, int, str, Mapping[str, Any]] | None = (installation, *event)
        self._trace = ""
        self._span = ""
        self.run_id = run_id
        self.step = step

    @property
    def trace_id(self) -> str:
        if self._event is not None:
            self._trace = event_trace_id(*self._event)
            self._event = None
        return self._trace

    @property
    def span_id(self) -> str:
        if not self._span:
            self._span = (run_span_id(self.trace_id, self.run_id) if self.step is None
                          else step_span_id(self.trace_id, self.run_id, *self.step))
        return self._span

    def child(self, index: int, attempt: int) -> Span:
        """The span of attempt ``attempt`` (from 1) of step ``index`` of this run."""
        child = Span.__new__(Span)
        child._event, child._trace, child._span = self._event, self._trace, ""
        if child._event is not None:  # computed once for the run, not per attempt
            child._trace, child._event = self.trace_id, None
        child.run_id, child.step = self.run_id, (index, attempt)
        return child

    def traceparent(self) -> str:
        """The ``traceparent`` header of a request made in this span (sampled)."""
        return f"00-{self.trace_id}-{self.span_id}-01"


#: The span of the run (or step) the current task is working on; None outside runs.
current: ContextVar[Span | None] = ContextVar("hookline_trace", default=None)


def traceparent() -> str | None:
    """The ``traceparent`` for a request made now, or None outside a run."""
    span = current.get()
    return span.traceparent() if span is not None else None


def trace_id() -> str | None:
    """The trace id of the run under way in this task, or None outside a run."""
    span = current.get()
    return span.trace_id if span is not None else None


def run_trace_id(installation: str, run: Mapping[str, Any]) -> str | None:
    """The trace id of a run's row (with its event's ``event_source``), or None when
    its event is gone."""
    event_id = run.get("event_id")
    if event_id is None:
        return None
    return event_trace_id(installation, int(event_id), str(run.get("event_source") or ""),
                          run.get("trigger_payload"))
