"""Trace ids: each event's trace reaches its run, every request its reactions make
(``traceparent``), the log and the run's record, and stays the same after a restart."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engine import logs
from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import RUN_FINISHED
from tests.engine.conftest import EngineFactory, next_message

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")
INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Site:
    """A web server on 127.0.0.1 that notes each request's ``traceparent`` (None when it
    had none) and answers with the next of ``statuses`` (the last one repeats)."""

    server: TestServer
    statuses: list[int] = field(default_factory=lambda: [200])
    seen: list[str | None] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return str(self.server.make_url(path))

    def traces(self) -> list[tuple[str, str]]:
        """``(trace id, span id)`` of each request seen, in order."""
        out = []
        for value in self.seen:
            match = TRACEPARENT.fullmatch(value or "")
            assert match is not None, f"not a traceparent: {value!r}"
            out.append((match[1], match[2]))
        return out


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        here.seen.append(request.headers.get("traceparent"))
        status = here.statuses.pop(0) if len(here.statuses) > 1 else here.statuses[0]
        return web.Response(status=status, text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    here = Site(TestServer(app, host="127.0.0.1"))
    await here.server.start_server()
    yield here
    await here.server.close()


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """Hookline's own log file (``logs.configure``), the root logger put back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    path = logs.configure(tmp_path / "logging", "INFO", console=False)
    assert path is not None
    yield path
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


async def _area(engine: Engine, site: Site, headers: str = "") -> tuple[str, str]:
    """A webhook area whose reaction posts to ``site``; its id and webhook address."""
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "Hook to web",
        "trigger": {"service": "webhook", "trigger": "incoming"},
        "reactions": [{"service": "http", "reaction": "request",
                       "params": {"url": site.url(), "method": "POST",
                                  "body": "{{ trigger.body.n }}", "headers": headers}}],
    }))
    url = await engine.webhook_url(area.id)
    assert url is not None
    return area.id, url


async def _deliver(engine: Engine, url: str, n: int, headers: dict[str, str] | None = None
                   ) -> dict[str, Any]:
    """Deliver one event and wait for its run to finish; the ``run.finished`` data."""
    finished = next_message(engine, RUN_FINISHED)
    async with aiohttp.ClientSession() as session, session.post(
            url, json={"n": n}, headers=headers or {}) as resp:
        assert resp.status == 202
    return (await finished).data


async def test_the_request_of_an_events_reaction_carries_the_events_trace(
        engine: Engine, site: Site) -> None:
    area_id, url = await _area(engine, site)
    done = await _deliver(engine, url, 1)
    assert done["status"] == "succeeded"
    [(trace_id, span_id)] = site.traces()
    [run] = await engine.store.runs(area_id)
    assert run["trace_id"] == trace_id  # what Activity and `hookline runs` show
    assert (await engine.store.run(run["id"]))["trace_id"] == trace_id
    assert span_id != trace_id[:16]


async def test_two_events_have_two_traces(engine: Engine, site: Site) -> None:
    area_id, url = await _area(engine, site)
    await _deliver(engine, url, 1)
    await _deliver(engine, url, 2)
    first, second = (trace_id for trace_id, _span in site.traces())
    assert first != second
    runs = await engine.store.runs(area_id)
    assert [r["trace_id"] for r in runs] == [second, first]  # newest first


async def test_a_retry_is_a_new_span_of_the_same_trace(engine: Engine, site: Site) -> None:
    site.statuses = [503, 200]
    area_id, url = await _area(engine, site)
    done = await _deliver(engine, url, 1)
    assert done["status"] == "succeeded"
    (trace_1, span_1), (trace_2, span_2) = site.traces()
    assert trace_1 == trace_2
    assert span_1 != span_2
    [run] = await engine.store.runs(area_id)
    assert len(run["steps"][0]["attempts"]) == 2
    assert run["trace_id"] == trace_1


async def test_the_runs_log_line_carries_its_trace(engine: Engine, site: Site,
                                                   log_file: Path) -> None:
    area_id, url = await _area(engine, site)
    run_log = logs.RunLog(logging.getLogger("engine.cli"))
    engine.bus.subscribe(RUN_FINISHED, lambda message: run_log.finished(message.data))
    done = await _deliver(engine, url, 1)
    [(trace_id, _span)] = site.traces()
    lines = [line for line in log_file.read_text().splitlines()
             if f"run #{done['run_id']} of area {area_id[:8]}" in line]
    assert len(lines) == 1
    assert f"[trace {trace_id}] run #{done['run_id']}" in lines[0]


def test_a_line_logged_while_a_run_is_under_way_carries_its_trace(log_file: Path) -> None:
    from engine import trace

    span = trace.Span("ab" * 16, (7, "manual", {}), 3)
    token = trace.current.set(span)
    try:
        logging.getLogger("integrations.example").warning("the far side is slow")
    finally:
        trace.current.reset(token)
    logging.getLogger("integrations.example").warning("outside any run")
    inside, outside = log_file.read_text().splitlines()[-2:]
    assert inside.endswith(f"integrations.example: [trace {span.trace_id}] the far side is slow")
    assert outside.endswith("integrations.example: outside any run")


async def test_a_delivery_with_a_traceparent_continues_its_trace(
        engine: Engine, site: Site) -> None:
    area_id, url = await _area(engine, site)
    await _deliver(engine, url, 1, headers={"traceparent": INCOMING})
    [(trace_id, span_id)] = site.traces()
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span_id != "00f067aa0ba902b7"  # Hookline's own span in the sender's trace
    [run] = await engine.store.runs(area_id)
    assert run["trace_id"] == trace_id
    # a replay is an event of its own, with a trace of its own
    finished = next_message(engine, RUN_FINISHED)
    await engine.replay(run["event_id"])
    await finished
    replayed, _span = site.traces()[1]
    assert replayed != trace_id
    assert (await engine.store.runs(area_id))[0]["trace_id"] == replayed


async def test_a_traceparent_the_user_set_is_sent_as_set(engine: Engine, site: Site) -> None:
    _area_id, url = await _area(engine, site, headers=f"traceparent: {INCOMING}")
    await _deliver(engine, url, 1)
    assert site.seen == [INCOMING]


async def test_requests_outside_a_run_carry_no_traceparent(engine: Engine, site: Site) -> None:
    await engine.http.request("GET", site.url("/status"))
    assert site.seen == [None]


async def test_a_run_shows_the_same_trace_after_a_restart(
        make_engine: EngineFactory, site: Site) -> None:
    engine = await make_engine()
    area_id, url = await _area(engine, site)
    await _deliver(engine, url, 1)
    [(sent, _span)] = site.traces()
    await engine.aclose()
    again = await make_engine()
    [run] = await again.store.runs(area_id)
    assert run["trace_id"] == sent
