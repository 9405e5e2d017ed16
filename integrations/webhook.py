"""Webhook: start an area when something POSTs to its address (any sender, or GitHub)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from engine import Field, Item, Param, ParamType, PushRequest, Rejected, Service, TriggerContext

service = Service(
    "webhook",
    "Webhook",
    "Start an automation when another program or website sends a request to its address.",
    icon="webhook.svg",
)

SIGNATURE_HEADER = "X-Hookline-Signature-256"
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
#: Headers that may name a delivery; the first one present becomes the item key.
DELIVERY_ID_HEADERS = ("X-Request-Id", "Idempotency-Key", "X-Delivery-Id")
#: Headers never passed on to templates: credentials and signatures.
_HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_MAX_KEY_LENGTH = 200
_GITHUB_SETTINGS_PLACE = (
    "in GitHub under the repository's Settings → Webhooks → Edit → Secret, "
    "and the same text as this automation's secret"
)

_BODY_CHOICES = (
    ("auto", "Decide from Content-Type"),
    ("json", "JSON"),
    ("form", "Form (application/x-www-form-urlencoded)"),
    ("raw", "Plain text"),
)


@service.push_trigger(
    "incoming",
    "Request received",
    "Fires when a POST or PUT arrives at the automation's webhook address.",
    params=[
        Param(
            "body",
            ParamType.CHOICE,
            "Body format",
            help="How to read the request body. Auto reads JSON and form bodies by their "
            "Content-Type and anything else as text.",
            required=False,
            default="auto",
            choices=_BODY_CHOICES,
            example="auto",
        ),
        Param(
            "secret",
            ParamType.SECRET,
            "Signing secret",
            help=f"If set, every request must carry {SIGNATURE_HEADER}: sha256=<hex "
            "HMAC-SHA256 of the body made with this secret>; others are refused.",
            required=False,
            example="a-long-random-text",
        ),
    ],
    fields=[
        Field("body", "Body (parsed JSON, form fields, or text)", {"temperature": 21.5}),
        Field(
            "headers",
            "Request headers (credentials removed)",
            {"Content-Type": "application/json", "User-Agent": "curl/8.5.0"},
        ),
        Field("query", "Query string parameters", {"source": "sensor"}),
        Field("content_type", "Content-Type", "application/json"),
        Field("received_at", "Received at (UTC, ISO 8601)", "2025-03-14T09:26:53+00:00"),
    ],
)
async def incoming(req: PushRequest, ctx: TriggerContext) -> list[Item]:
    """Any POST/PUT: verify the optional signature, parse the body, keep the headers."""
    if req.method.upper() not in ("POST", "PUT"):
        raise Rejected(405, f"{req.method} is not accepted: send the webhook with POST or PUT")
    secret = ctx.params.get("secret")
    if secret:
        _verify(
            req,
            str(secret),
            SIGNATURE_HEADER,
            missing=f"signature missing: sign the body with the automation's secret "
            f"({SIGNATURE_HEADER}: sha256=…)",
            wrong=f"signature does not match: {SIGNATURE_HEADER} must be sha256=<hex "
            "HMAC-SHA256 of the exact body bytes> made with the automation's secret",
        )
    body = _parse_body(req, str(ctx.params.get("body") or "auto"))
    data = {
        "body": body,
        "headers": _visible_headers(req),
        "query": dict(req.query),
        "content_type": _media_type(req),
        "received_at": _now(),
    }
    return [Item(key=_delivery_key(req), data=data)]


@service.push_trigger(
    "github",
    "GitHub event",
    "Fires when a GitHub repository or organization webhook delivers an event.",
    params=[
        Param(
            "secret",
            ParamType.SECRET,
            "Webhook secret",
            help="The secret you typed in GitHub's webhook settings; deliveries without a "
            f"matching {GITHUB_SIGNATURE_HEADER} signature are refused.",
            required=True,
            example="a-long-random-text",
        ),
        Param(
            "events",
            ParamType.LIST,
            "Events",
            help="Only these GitHub event names fire, separated by commas "
            "(e.g. issues, push, pull_request). Empty: every event.",
            required=False,
            example="issues, push",
        ),
    ],
    fields=[
        Field("event", "Event name (X-GitHub-Event)", "issues"),
        Field("action", "Action (empty for events without one)", "opened"),
        Field("delivery", "Delivery id", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        Field("repository", "Repository (owner/name)", "octocat/Hello-World"),
        Field("sender", "Sender login", "octocat"),
        Field("payload", "The whole event payload", {"action": "opened"}),
    ],
)
async def github(req: PushRequest, ctx: TriggerContext) -> list[Item]:
    """A GitHub delivery: signature checked first, ``ping`` accepted silently."""
    _verify(
        req,
        str(ctx.params["secret"]),
        GITHUB_SIGNATURE_HEADER,
        missing=f"{GITHUB_SIGNATURE_HEADER} header missing: set the webhook secret "
        f"{_GITHUB_SETTINGS_PLACE}",
        wrong=f"{GITHUB_SIGNATURE_HEADER} does not match: the webhook secret must be "
        f"the same {_GITHUB_SETTINGS_PLACE}",
    )
    event = (req.header("X-GitHub-Event") or "").strip()
    if not event:
        raise Rejected(
            400,
            "X-GitHub-Event header missing: this address expects deliveries from a GitHub webhook",
        )
    delivery = (req.header("X-GitHub-Delivery") or "").strip()
    if not delivery:
        raise Rejected(
            400,
            "X-GitHub-Delivery header missing: this address expects "
            "deliveries from a GitHub webhook",
        )
    payload = _github_payload(req)
    wanted = {e.lower() for e in ctx.params.get("events") or ()}
    if event == "ping" or (wanted and event.lower() not in wanted):
        return []
    repository = payload.get("repository") or {}
    sender = payload.get("sender") or {}
    data = {
        "event": event,
        "action": str(payload.get("action") or ""),
        "delivery": delivery,
        "repository": str(repository.get("full_name") or "")
        if isinstance(repository, dict)
        else "",
        "sender": str(sender.get("login") or "") if isinstance(sender, dict) else "",
        "payload": payload,
    }
    return [Item(key=delivery, data=data)]


def _verify(req: PushRequest, secret: str, header: str, *, missing: str, wrong: str) -> None:
    """Refuse with 401 unless ``header`` is ``sha256=<hex HMAC of the raw body>``."""
    given = (req.header(header) or "").strip()
    if not given:
        raise Rejected(401, missing)
    scheme, _, digest = given.partition("=")
    expected = hmac.new(secret.encode("utf-8"), req.body, hashlib.sha256).hexdigest()
    # Compare whole byte strings so a malformed header costs the same as a wrong one.
    candidate = f"{scheme.lower()}={digest.lower()}".encode("utf-8", "replace")
    if not hmac.compare_digest(candidate, f"sha256={expected}".encode("ascii")):
        raise Rejected(401, wrong)


def _media_type(req: PushRequest) -> str:
    raw = req.content_type or req.header("Content-Type") or ""
    return raw.split(";", 1)[0].strip().lower()


def _parse_body(req: PushRequest, mode: str) -> Any:
    media = _media_type(req)
    if mode == "auto":
        if not req.body:
            return None
        if media == "application/json" or media.endswith("+json"):
            mode = "json"
        elif media == "application/x-www-form-urlencoded":
            mode = "form"
        elif media.startswith("multipart/"):
            raise Rejected(
                415, f"{media} bodies are not supported: send JSON, a URL-encoded form, or text"
            )
        else:
            mode = "raw"
    if mode == "json":
        if not req.body.strip():
            raise Rejected(
                400, "body is empty: send a JSON document, or set the automation's body "
                "format to auto"
            )
        return req.json()
    if mode == "form":
        return _form(_utf8(req.body, 400))
    return _utf8(req.body, 415)


def _utf8(body: bytes, status: int) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(
            status, "body is not UTF-8 text: send JSON, a URL-encoded form, or UTF-8 text"
        ) from None


def _form(text: str) -> dict[str, str | list[str]]:
    """URL-encoded fields; a name given more than once becomes a list."""
    try:
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=1000)
    except ValueError as exc:
        raise Rejected(400, f"form body is not URL-encoded: {exc}") from None
    return {name: values[0] if len(values) == 1 else values for name, values in fields.items()}


def _github_payload(req: PushRequest) -> dict[str, Any]:
    media = _media_type(req)
    if media == "application/json":
        payload = req.json()
    elif media == "application/x-www-form-urlencoded":
        field = _form(_utf8(req.body, 400)).get("payload")
        if not isinstance(field, str):
            raise Rejected(
                400,
                "form delivery has no single 'payload' field: set Content "
                "type to application/json in GitHub's webhook settings",
            )
        payload = req.json(field, what="'payload' field")
    else:
        raise Rejected(
            415,
            f"{media or 'a body without Content-Type'} is not a GitHub "
            "delivery: set Content type to application/json in GitHub's "
            "webhook settings",
        )
    if not isinstance(payload, dict):
        raise Rejected(400, "GitHub payload must be a JSON object")
    return payload


def _visible_headers(req: PushRequest) -> dict[str, str]:
    return {
        name: value
        for name, value in req.headers.items()
        if name.lower() not in _HIDDEN_HEADERS and "signature" not in name.lower()
    }


def _delivery_key(req: PushRequest) -> str | None:
    for name in DELIVERY_ID_HEADERS:
        value = (req.header(name) or "").strip()
        if value:
            if len(value) > _MAX_KEY_LENGTH:
                return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
            return value
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
