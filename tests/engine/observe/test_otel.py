"""Runs as OpenTelemetry spans: a run of a real engine becomes a ``run <area>`` span with
a child per reaction attempt, in the same trace as the run's own trace id."""

from __future__ import annotations

from typing import Any

import pytest

from engine import TransientError
from engine.areas import AreaSpec
from engine.observe import otel
from tests.engine import probe
from tests.engine.conftest import EngineFactory
from tests.engine.observe.conftest import HOOK, deliver

pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed "
                    "(pip install 'hookline[otel]')")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Spans go to memory instead of an OTLP collector (the SDK's own test exporter)."""
    exporter = InMemorySpanExporter()
    asked: list[str] = []

    def make_exporter(endpoint: str) -> Any:
        asked.append(endpoint)
        return exporter

    monkeypatch.setattr(otel, "make_exporter", make_exporter)
    return exporter


async def test_a_run_is_a_span_with_a_child_per_attempt_in_its_own_trace(
        make_engine: EngineFactory, exported: InMemorySpanExporter) -> None:
    engine = await make_engine(otel_endpoint="http://127.0.0.1:4318")
    area = await engine.create_area(AreaSpec.from_dict(HOOK))
    probe.controls.fail_times, probe.controls.fail_with = 1, TransientError  # then works
    await deliver(engine, area.id, "ding")
    await engine.wait_idle()
    (run_row,) = await engine.store.runs(area.id)
    await engine.aclose()  # sends what is batched

    finished = exported.get_finished_spans()
    (run,) = [span for span in finished if span.name == "run Door bell!"]
    assert run.attributes is not None
    assert (run.attributes["hookline.area.id"], run.attributes["hookline.run.status"],
            run.attributes["hookline.event.id"]) == (area.id, "succeeded",
                                                     run_row["event_id"])
    assert format(run.context.trace_id, "032x") == run_row["trace_id"]
    attempts = sorted((span for span in finished if span is not run),
                      key=lambda span: str(dict(span.attributes or {})["hookline.step.attempt"]))
    assert [s.name for s in attempts] == ["probe.record", "probe.record"]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.UNSET]
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id
               and s.context.trace_id == run.context.trace_id for s in attempts)
    assert run.start_time is not None and run.end_time is not None
    assert all(run.start_time <= (s.start_time or 0) <= (s.end_time or 0) <= run.end_time
               for s in attempts)


def test_a_collectors_base_address_gets_the_traces_path() -> None:
    assert otel.traces_url("http://localhost:4318") == "http://localhost:4318/v1/traces"
    assert otel.traces_url("https://otel.example/custom/traces") == (
        "https://otel.example/custom/traces")
