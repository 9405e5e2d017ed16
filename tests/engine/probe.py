"""A service made for engine tests: its poll items, push parsing and reaction outcomes
are set by the test, so the engine's own behaviour can be observed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from engine import (
    Field,
    Item,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    PushRequest,
    ReactionContext,
    Service,
    TransientError,
    TriggerContext,
)

service = Service("probe", "Probe", "Test service.")


class Controls:
    """What the probe does, set by each test."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.poll_error: Exception | None = None
        self.polls = 0
        self.received: list[dict[str, Any]] = []
        self.fail_times = 0
        self.fail_with: type[Exception] = TransientError
        #: called with "acting" just before a record is made and "acted" just after it
        #: (a test may kill the engine at that instant)
        self.on_record: Callable[[str], None] | None = None
        #: the engine was killed (conftest.freeze): whatever it still does reaches nobody
        self.dead = False
        #: called with each poll's context, as the poll begins
        self.on_poll: Callable[[PollContext], None] | None = None


controls = Controls()


@service.poll_trigger("items", "Items", "Items set by the test.",
                      params=[Param("feed", ParamType.TEXT, "Feed", required=False)],
                      fields=[Field("title", "Title", "hello"), Field("n", "Number", 1)],
                      default_interval=3600, min_interval=0.01)
async def items(ctx: PollContext) -> PollResult:
    if controls.dead:  # a killed engine never gets this far
        raise asyncio.CancelledError
    controls.polls += 1
    if controls.on_poll is not None:
        controls.on_poll(ctx)
    if controls.poll_error is not None:
        raise controls.poll_error
    return PollResult(list(controls.items))


@service.push_trigger("hook", "Hook", "JSON deliveries.",
                      params=[Param("secret", ParamType.SECRET, "Secret", required=False)],
                      fields=[Field("title", "Title", "hello"), Field("n", "Number", 1)])
async def hook(req: PushRequest, ctx: TriggerContext) -> list[Item]:
    body = req.json()
    return [Item(req.header("X-Delivery"), body if isinstance(body, dict) else {"body": body})]


@service.reaction("record", "Record", "Remembers what it was sent.",
                  params=[Param("text", ParamType.TEMPLATE, "Text"),
                          Param("token", ParamType.SECRET, "Token", required=False)],
                  fields=[Field("echo", "Echo", "hello")], timeout=5)
async def record(ctx: ReactionContext) -> Mapping[str, Any]:
    if controls.fail_times > 0:
        controls.fail_times -= 1
        raise controls.fail_with("probe failure")
    if controls.on_record is not None and not controls.dead:
        controls.on_record("acting")
    if controls.dead:  # a killed engine never gets this far
        raise asyncio.CancelledError
    controls.received.append(dict(ctx.params))
    if controls.on_record is not None:
        controls.on_record("acted")
    return {"echo": ctx.params["text"]}


@service.reaction("fail", "Fail", "Always fails for good.", retry=False)
async def fail(ctx: ReactionContext) -> Mapping[str, Any]:
    raise PermanentError("the far side said no")
