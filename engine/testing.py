"""Helpers for testing a service's triggers and reactions directly (public, for plugins too)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from engine.bus import Bus
from engine.catalog.context import PollContext, ReactionContext, TriggerContext
from engine.catalog.params import validate_params
from engine.catalog.service import ReactionSpec, TriggerSpec
from engine.http import HttpClient
from engine.settings import Settings

_log = logging.getLogger("hookline.test")


def _adapter(area_id: str) -> logging.LoggerAdapter[logging.Logger]:
    return logging.LoggerAdapter(_log, {"area_id": area_id})


def poll_context(
    spec: TriggerSpec,
    params: Mapping[str, Any],
    http: HttpClient,
    *,
    state: dict[str, Any] | None = None,
    settings: Settings | None = None,
    area_id: str = "test-area",
    dry_run: bool = False,
) -> PollContext:
    """A context for calling ``spec.poll`` with validated ``params``."""
    return PollContext(area_id, validate_params(spec.params, params), http,
                       settings or Settings(), _adapter(area_id),
                       state if state is not None else {}, dry_run=dry_run)


def trigger_context(
    spec: TriggerSpec,
    params: Mapping[str, Any],
    http: HttpClient,
    *,
    settings: Settings | None = None,
    area_id: str = "test-area",
) -> TriggerContext:
    """A context for calling ``spec.push`` with validated ``params``."""
    return TriggerContext(area_id, validate_params(spec.params, params), http,
                          settings or Settings(), _adapter(area_id))


def reaction_context(
    spec: ReactionSpec,
    params: Mapping[str, Any],
    http: HttpClient,
    *,
    settings: Settings | None = None,
    bus: Bus | None = None,
    area_id: str = "test-area",
) -> ReactionContext:
    """A context for calling ``spec.run`` with validated (already rendered) ``params``."""
    return ReactionContext(area_id, None, validate_params(spec.params, params), http,
                           settings or Settings(), bus or Bus(), _adapter(area_id))
