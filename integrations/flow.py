"""Flow: pause a run, or end it early, between reactions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from engine import (
    Field,
    Param,
    ParamType,
    PermanentError,
    ReactionContext,
    Service,
    StopRun,
    WaitUntil,
)

service = Service(
    "flow",
    "Flow",
    "Shape a run between its reactions: wait a while, or stop unless a condition holds.",
    icon="flow.svg",
)

MAX_WAIT = 7 * 86400.0


@service.reaction(
    "wait",
    "Wait",
    "Pause this run before its next reaction. The moment to go on is saved, so the wait "
    "survives closing Hookline or a restart: it then waits only for what is left. Later "
    "events of the same automation queue behind it.",
    params=[Param("duration", ParamType.DURATION, "Wait for",
                  help="How long: 30s, 10m, 2h, 1d (at most 7 days).",
                  minimum=1, maximum=MAX_WAIT, example="10m")],
    fields=[Field("waited_until", "When the wait ended", "2026-11-22T08:10:00+00:00")],
    retry=False,
)
async def wait(ctx: ReactionContext) -> Mapping[str, Any]:
    seconds = float(ctx.params["duration"])
    raise WaitUntil(datetime.now(UTC) + timedelta(seconds=seconds))


def _decide(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off", "", "none"):
        return False
    raise PermanentError(f"the condition must come out true or false, but gave {text[:80]!r}")


@service.reaction(
    "stop_unless",
    "Stop unless…",
    "Go on with the next reactions only when a condition holds; otherwise end the run "
    "here (it still counts as a success).",
    params=[Param("condition", ParamType.TEMPLATE, "Go on only when",
                  help="A template that comes out true or false, e.g. "
                       "{{ reactions[0].status == 200 }}.",
                  example="{{ trigger.title | length > 0 }}")],
    fields=[Field("passed", "Whether the run went on", True)],
    retry=False,
)
async def stop_unless(ctx: ReactionContext) -> Mapping[str, Any]:
    if not _decide(str(ctx.params["condition"])):
        raise StopRun(f"stopped: {ctx.params['condition']!s} is false")
    return {"passed": True}
