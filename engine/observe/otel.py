"""Runs as OpenTelemetry spans, sent over OTLP/HTTP (the optional ``otel`` extra).

A run is a span ``run <area name>``; each attempt of each reaction is a child span
``<service>.<reaction>``. Their trace and span ids are Hookline's own
(:mod:`engine.trace`): the trace id in a run's record, in the log and in the
``traceparent`` its requests sent is the trace id of its span here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from engine import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

#: Seconds an export may take (the exporter's thread, never the engine's loop).
EXPORT_TIMEOUT = 5.0
INSTALL_HINT = "pip install 'hookline[otel]'"


def available() -> bool:
    """Whether the OpenTelemetry SDK and its OTLP/HTTP exporter are installed."""
    from importlib.util import find_spec

    try:
        return all(find_spec(name) is not None for name in (
            "opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter"))
    except ModuleNotFoundError:  # not even the package
        return False


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL: a collector's base URL gets ``/v1/traces``."""
    parts = urlsplit(endpoint)
    if parts.path.strip("/"):
        return endpoint
    return urlunsplit(parts._replace(path="/v1/traces"))


def make_exporter(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=traces_url(endpoint), timeout=EXPORT_TIMEOUT)


def _nanos(when: datetime | str | float) -> int:
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if isinstance(when, datetime):
        when = when.timestamp()
    return int(when * 1e9)


class RunSpans:
    """Turns each finished run into spans and hands them to an exporter (batched, on
    the SDK's thread).

    Args:
        installation: the installation's id, from which trace ids are derived.
        exporter: where spans go (OTLP/HTTP to the ``otel_endpoint`` setting).
    """

    def __init__(self, installation: str, exporter: SpanExporter) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import IdGenerator

        class Given(IdGenerator):
            """The ids the next span is to have (Hookline's, not random ones)."""

            trace_id = 0
            span_id = 0

            def generate_trace_id(self) -> int:
                return self.trace_id

            def generate_span_id(self) -> int:
                return self.span_id

        self._installation = installation
        self._ids = Given()
        self._provider: TracerProvider = TracerProvider(
            resource=Resource.create({"service.name": "hookline"}), id_generator=self._ids)
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("hookline.engine")

    def ran(self, area_id: str, area_name: str, event: tuple[int, str, Mapping[str, Any]],
            run_id: int | None, status: str, error: str | None,
            steps: Sequence[Mapping[str, Any]], began: float, ended: float) -> None:
        """Export a finished run and its reactions' attempts as spans."""
        from opentelemetry import trace as otel
        from opentelemetry.trace import Status, StatusCode

        if run_id is None:
            return
        span_of_run = trace.Span(self._installation, event, run_id)
        self._ids.trace_id = int(span_of_run.trace_id, 16)
        self._ids.span_id = int(span_of_run.span_id, 16)
        run = self._tracer.start_span(
            f"run {area_name}", context=otel.set_span_in_context(otel.INVALID_SPAN),
            start_time=_nanos(began), attributes={
                "hookline.area.id": area_id, "hookline.area.name": area_name,
                "hookline.run.id": run_id, "hookline.run.status": status,
                "hookline.event.id": event[0], "hookline.event.source": event[1]})
        parent = otel.set_span_in_context(run)
        for index, step in enumerate(steps):
            for attempt, entry in enumerate(step.get("attempts") or (), 1):
                if "seconds" not in entry or "started_at" not in entry:
                    continue
                self._ids.span_id = int(span_of_run.child(index, attempt).span_id, 16)
                start = _nanos(entry["started_at"])
                child = self._tracer.start_span(
                    f"{step['service']}.{step['reaction']}", context=parent,
                    start_time=start, attributes={
                        "hookline.step.index": index, "hookline.step.attempt": attempt})
                if entry.get("error"):
                    child.set_status(Status(StatusCode.ERROR, str(entry["error"])))
                child.end(start + int(entry["seconds"] * 1e9))
        if status == "failed":
            run.set_status(Status(StatusCode.ERROR, error or "failed"))
        run.end(_nanos(ended))

    def close(self) -> None:
        """Send what is batched (bounded by the exporter's timeout) and stop."""
        self._provider.shutdown()
