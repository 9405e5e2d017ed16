"""/metrics on the local listener: off it is not there; on, a real engine's webhook runs
show up in Prometheus' text format, and only this computer is answered."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from engine import PermanentError
from engine.app import Engine
from engine.areas import AreaSpec
from tests.engine import probe
from tests.engine.conftest import EngineFactory
from tests.engine.observe.conftest import HOOK, deliver


def metrics_url(engine: Engine) -> str:
    assert engine.listener is not None
    return f"http://127.0.0.1:{engine.listener.port}/metrics"


async def scrape(engine: Engine, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(
            metrics_url(engine), headers=headers) as response:
        return response.status, await response.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_a_real_engines_webhook_runs(make_engine: EngineFactory) -> None:
    engine = await make_engine(metrics_enabled=True)
    area = await engine.create_area(AreaSpec.from_dict(HOOK))
    probe.controls.fail_times, probe.controls.fail_with = 1, PermanentError
    for n in range(3):
        await deliver(engine, area.id, f"ding {n}")
    await engine.wait_idle()

    status, text = await scrape(engine)
    assert status == 200
    got = samples(text)
    none: frozenset[tuple[str, str]] = frozenset()
    assert got[("hookline_events_accepted_total", frozenset({("kind", "webhook")}))] == 3
    assert got[("hookline_runs_total", frozenset({("status", "succeeded")}))] == 2
    assert got[("hookline_runs_total", frozenset({("status", "failed")}))] == 1
    assert got[("hookline_run_duration_seconds_count", none)] == 3
    reaction = frozenset({("service", "probe"), ("reaction", "record")})
    assert got[("hookline_reaction_duration_seconds_count", reaction)] == 3
    assert got[("hookline_backlog", none)] == 0
    assert got[("hookline_polls_failing", none)] == 0
    assert got[("hookline_poll_failing_total", none)] == 0


async def test_metrics_are_not_answered_through_a_proxy(make_engine: EngineFactory) -> None:
    engine = await make_engine(metrics_enabled=True)
    status, text = await scrape(engine, **{"X-Forwarded-For": "203.0.113.9"})
    assert status == 403 and "only to this computer" in text


async def test_without_the_setting_there_are_no_metrics(engine: Engine) -> None:
    status, _text = await scrape(engine)
    assert status == 404
