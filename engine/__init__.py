"""Hookline's engine: the public surface that services and the desktop app use.

Integrations import from here only; everything else in ``engine`` is private.
"""

from __future__ import annotations

from engine.auth.oauth import OAuthClient
from engine.auth.session import AccountSession
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
from engine.http import HttpClient, HttpResponse, OutboundGuard, raise_for_provider
from engine.settings import Settings
from engine.text import html_to_text, redact_url
from engine.uploads import local_file, read_chunk

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
    "local_file",
    "parse_duration",
    "raise_for_provider",
    "read_chunk",
    "redact_url",
]
