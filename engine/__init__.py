"""Hookline's engine: the public surface that services and the desktop app use.

Integrations import from here only; everything else in ``engine`` is private.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from engine.bus import Bus, Message
from engine.catalog.auth import ApiKeySpec, OAuth2Spec
from engine.catalog.context import PollContext, PushRequest, ReactionContext, TriggerContext
from engine.catalog.params import Param, ParamType, format_duration, parse_duration
from engine.catalog.service import (
    AuthKind,
    Field,
    Item,
    PollResult,
    ReactionSpec,
    Service,
    TriggerKind,
    TriggerSpec,
)
from engine.dispatcher import next_run_may_start
from engine.errors import (
    AuthError,
    CatalogError,
    ConfigError,
    HooklineError,
    PermanentError,
    RateLimited,
    Rejected,
    SecretError,
    ServiceError,
    StopRun,
    TemplateError,
    TransientError,
    ValidationError,
    WaitUntil,
)
from engine.settings import Settings
from engine.text import html_to_text, iso_time, redact_url

if TYPE_CHECKING:
    from engine.auth.oauth import OAuthClient
    from engine.auth.session import AccountSession
    from engine.http import HttpClient, HttpResponse, OutboundGuard, raise_for_provider
    from engine.uploads import local_file, read_chunk

#: The names above that load aiohttp or asyncio, by module: imported on first use, so
#: that a command which only reads the catalog (``hookline services``) starts quickly.
#: Keep it in step with the ``TYPE_CHECKING`` imports (tests/engine/test_cli.py checks).
_DEFERRED: dict[str, str] = {
    "OAuthClient": "engine.auth.oauth",
    "AccountSession": "engine.auth.session",
    "HttpClient": "engine.http",
    "HttpResponse": "engine.http",
    "OutboundGuard": "engine.http",
    "raise_for_provider": "engine.http",
    "local_file": "engine.uploads",
    "read_chunk": "engine.uploads",
}

if not TYPE_CHECKING:  # hidden from mypy, so that `from engine import Typo` stays an error

    def __getattr__(name: str) -> object:
        module = _DEFERRED.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_DEFERRED})


__version__ = "0.1.0"

__all__ = [
    "AccountSession",
    "ApiKeySpec",
    "AuthError",
    "AuthKind",
    "Bus",
    "CatalogError",
    "ConfigError",
    "Field",
    "HooklineError",
    "HttpClient",
    "HttpResponse",
    "Item",
    "Message",
    "OAuth2Spec",
    "OAuthClient",
    "OutboundGuard",
    "Param",
    "ParamType",
    "PermanentError",
    "PollContext",
    "PollResult",
    "PushRequest",
    "RateLimited",
    "ReactionContext",
    "ReactionSpec",
    "Rejected",
    "SecretError",
    "Service",
    "ServiceError",
    "Settings",
    "StopRun",
    "TemplateError",
    "TransientError",
    "TriggerContext",
    "TriggerKind",
    "TriggerSpec",
    "ValidationError",
    "WaitUntil",
    "__version__",
    "format_duration",
    "html_to_text",
    "iso_time",
    "local_file",
    "next_run_may_start",
    "parse_duration",
    "raise_for_provider",
    "read_chunk",
    "redact_url",
]
