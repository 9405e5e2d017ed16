"""An example Hookline service: a reaction that shouts, a trigger that counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import (
    Field,
    Item,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    ReactionContext,
    Service,
)

#: Longest text ``shout`` accepts.
MAX_TEXT = 10_000

service = Service(
    "example",
    "Example",
    "An example third-party service: shout text, count checks.",
)


@service.reaction(
    "shout",
    "Shout",
    "Turn the text into capitals.",
    params=[
        Param(
            "text",
            ParamType.TEXT,
            "Text",
            help="What to shout; a template may fill it in.",
            example="hello {{ trigger.title }}",
        ),
    ],
    fields=[Field("text", "Shouted text", "HELLO WORLD")],
)
async def shout(ctx: ReactionContext) -> Mapping[str, Any]:
    text = ctx.params["text"]
    if len(text) > MAX_TEXT:
        raise PermanentError(f"Text is {len(text):,} characters; shout at most {MAX_TEXT:,}.")
    return {"text": text.upper()}


@service.poll_trigger(
    "counter",
    "Counter",
    "Counts the checks: fires once for each new number.",
    params=[
        Param(
            "step",
            ParamType.INTEGER,
            "Step",
            help="How much the count grows at each check.",
            required=False,
            default=1,
            minimum=1,
            example=1,
        ),
    ],
    fields=[Field("count", "Count", 3)],
    default_interval=60.0,
    min_interval=1.0,
)
async def counter(ctx: PollContext) -> PollResult:
    # ctx.state is saved by the engine together with the events this check fires.
    count = int(ctx.state.get("count", 0)) + int(ctx.params["step"])
    ctx.state["count"] = count
    # Every item still visible is returned; the engine fires the keys it has not seen.
    return PollResult([Item(str(count), {"count": count})])
