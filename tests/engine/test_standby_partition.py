"""Two engines on one PostgreSQL database, the active one cut off from it by a network
partition under a webhook stream: it fences, the standby takes over, and every delivery
acknowledged is run once (engine/standby.py says what a partition still allows).

Engine A reaches the server through :class:`tests.engine.pg_proxy.PgProxy` (its pool,
its writer and its lease connection alike); engine B directly, as a machine on the
other side of the cut would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextvars import ContextVar
from typing import TypeVar

import aiohttp
import psycopg
import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import Message
from engine.standby import ACTIVE, ENGINE_ROLE, FENCED, STANDBY, connect_args
from tests.engine import probe, test_standby
from tests.engine.pg_proxy import PgProxy
from tests.engine.test_standby import TAKEOVER, Make, at, post, role, standing_by
from tests.engine.test_standby_kill import Sender
from tests.pg import PostgresServer

make = test_standby.make  # the fixture: engines on the test's database

AREA = {"name": "Deliveries to record",
        "trigger": {"service": "webhook", "trigger": "incoming"},
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "{{ trigger.body.n }}"}}]}
#: seconds from the partition to the server ending the cut-off sessions: its TCP
#: keepalives take engine/standby.py's KEEPALIVE_NOTICE (about 9 s) on a real network;
#: 1 s here keeps the test short (what follows is the same)
NOTICE = 1.0
#: deliveries sent every 100 ms, each until it is acknowledged
PER_TICK = 3
#: deliveries acknowledged between two steps of the test
STRETCH = 20
#: a sender's wait for an answer before it tries the other listener (nginx's
#: proxy_read_timeout, shortened)
ANSWER_WITHIN = 3.0
#: how long the fenced engine may take to stop (`hookline serve` then stands by again)
STOPS_WITHIN = 30.0

#: which engine a reaction acts in: set around each engine's start, and inherited by
#: the tasks its listener and dispatcher make
ENGINE_NAME: ContextVar[str] = ContextVar("engine_name", default="?")

T = TypeVar("T")


async def as_engine(name: str, work: Awaitable[T]) -> T:
    """Await ``work`` in a task whose reactions count as engine ``name``'s."""

    async def named() -> T:
        ENGINE_NAME.set(name)
        return await work

    return await asyncio.create_task(named())


def role_times(engine: Engine) -> dict[str, float]:
    """When ``engine`` first said each role from now on (monotonic seconds)."""
    said: dict[str, float] = {}

    def note(message: Message) -> None:
        said.setdefault(message.data["role"], time.monotonic())

    engine.bus.subscribe(ENGINE_ROLE, note)
    return said


async def stream(sender: Sender, session: aiohttp.ClientSession, stop: asyncio.Event
                 ) -> None:
    """:data:`PER_TICK` new deliveries every 100 ms until ``stop``; returns once each
    one is acknowledged (a sender tries again after a 503 or no answer)."""
    sending: list[asyncio.Future[None]] = []
    while not stop.is_set():
        sending += [asyncio.ensure_future(sender.deliver(session, next(sender.numbers)))
                    for _ in range(PER_TICK)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    await asyncio.gather(*sending)


async def acknowledged(sender: Sender, more: int, within: float = 30.0) -> None:
    """Wait until ``more`` deliveries more than now are acknowledged."""
    goal = len(sender.acknowledged) + more
    deadline = time.monotonic() + within
    while len(sender.acknowledged) < goal:
        assert time.monotonic() < deadline, f"{goal - len(sender.acknowledged)} not " \
                                             f"acknowledged within {within} s"
        await asyncio.sleep(0.02)


@pytest.fixture
async def proxy(postgres_server: PostgresServer) -> AsyncIterator[PgProxy]:
    """A proxy to the test server, for the engine to cut off (ends every connection
    after the test: a thread of that engine still waiting on one is released)."""
    made = PgProxy(postgres_server.port, NOTICE)
    await made.start()
    yield made
    await made.aclose()


async def test_a_partitioned_engine_fences_and_the_standby_runs_each_delivery_once(
        make: Make, proxy: PgProxy, postgres_url: str) -> None:
    acted: list[tuple[str, str, float]] = []  # (engine, text, when)
    cutting = asyncio.Event()  # A's next reaction pulls the cable as it acts
    cut = asyncio.Event()
    cut_at = 0.0

    def record(stage: str) -> None:
        nonlocal cut_at
        if stage == "acting" and cutting.is_set() and not cut.is_set() \
                and ENGINE_NAME.get() == "a":
            proxy.partition()  # the worst moment: one of A's reactions under way
            cut_at = time.monotonic()
            cut.set()
        elif stage == "acted":
            acted.append((ENGINE_NAME.get(), probe.controls.received[-1]["text"],
                          time.monotonic()))

    probe.controls.on_record = record
    first = make("a")
    first.url = proxy.url(first.url)  # every connection of A's goes through the proxy
    await as_engine("a", first.start())
    area = await first.create_area(AreaSpec.from_dict(AREA))
    url = await first.webhook_url(area.id)
    assert url is not None and first.role == ACTIVE
    second = make("b")
    starting = await as_engine("b", standing_by(second))
    a_said, b_said = role_times(first), role_times(second)
    fenced, active = role(first, FENCED), role(second, ACTIVE)
    assert first.listener is not None and second.listener is not None
    sender = Sender([first.listener.port, second.listener.port], url.rsplit("/", 1)[1])
    stop = asyncio.Event()
    async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=ANSWER_WITHIN)) as session:
        streaming = asyncio.ensure_future(stream(sender, session, stop))
        await acknowledged(sender, STRETCH)

        cutting.set()
        await asyncio.wait_for(cut.wait(), TAKEOVER)
        await fenced
        await active
        await asyncio.wait_for(starting, TAKEOVER)
        fence_after, takeover_after = a_said[FENCED] - cut_at, b_said[ACTIVE] - cut_at
        status, _headers, body = await post(at(url, first), -1)
        assert status == 503 and "lost contact with its database" in body["error"]
        await acknowledged(sender, STRETCH)  # B takes the stream

        proxy.heal()
        await acknowledged(sender, STRETCH)
        assert first.role == FENCED and ACTIVE not in a_said  # it does not come back
        began = time.monotonic()
        await asyncio.wait_for(first.aclose(), STOPS_WITHIN)
        stopped_in = time.monotonic() - began
        again = make("a")  # as `hookline serve` starts it again, through the proxy
        again.url = proxy.url(again.url)
        await as_engine("a", standing_by(again))
        await acknowledged(sender, STRETCH)
        assert again.role == STANDBY and second.role == ACTIVE

        stop.set()
        await asyncio.wait_for(streaming, 60)
    await second.wait_idle()

    runs = Counter(text for _who, text, _when in acted)
    twice = {int(text) for text, count in runs.items() if count > 1}
    print(f"\npartition: A fenced after {fence_after:.2f} s, B active after "
          f"{takeover_after:.2f} s (the server ended A's sessions after {NOTICE:.0f} s); "
          f"A stopped in {stopped_in:.2f} s; {len(sender.acknowledged)} deliveries "
          f"acknowledged, refusals met by the sender: {dict(sender.refused)}; run twice: "
          f"{sorted(twice)}")
    fence_at = a_said[FENCED]
    by_a = [(text, when) for who, text, when in acted if who == "a"]
    assert {who for who, _text, _when in acted} <= {"a", "b"}, "a reaction of no engine"
    assert all(when < fence_at for _text, when in by_a), "A fired after it fenced"
    assert sum(when > cut_at for _text, when in by_a) <= 1, \
        "A fired more than the reaction under way at the partition"
    numbers = set(range(max(sender.acknowledged) + 1))
    assert sender.acknowledged == numbers  # every delivery sent until acknowledged
    assert {int(text) for text in runs} == numbers, "an acknowledged delivery never ran"
    assert all(count <= 2 for count in runs.values())
    assert len(twice) <= 1, f"run twice: {sorted(twice)}"  # the one under way, once
    succeeded, resumed = run_records(postgres_url)
    assert all(succeeded[n] == 1 for n in numbers), "a delivery without one finished run"
    assert twice <= resumed, "run twice without its run being resumed"


def run_records(url: str) -> tuple[Counter[int], set[int]]:
    """Per delivery, its succeeded runs; and the deliveries whose run was resumed."""
    with psycopg.connect(**connect_args(url)) as conn:
        rows = conn.execute("SELECT e.dedup_key, r.status, r.resumed FROM events e "
                            "JOIN runs r ON r.event_id = e.id").fetchall()
    succeeded = Counter(int(key[2:]) for key, status, _resumed in rows
                        if status == "succeeded")
    return succeeded, {int(key[2:]) for key, _status, resumed in rows if resumed}

