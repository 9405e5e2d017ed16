"""HTTP: call any web address, and watch a JSON value or a web page for changes."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from engine import (
    Field,
    Item,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    ReactionContext,
    Service,
    html_to_text,
    redact_url,
)

if TYPE_CHECKING:
    from engine import AccountSession, HttpResponse, TriggerContext

service = Service(
    "http",
    "HTTP",
    "Call a web address, or watch one for a change. With an account of a custom OAuth 2 "
    "provider (account: NAME), requests to that provider's site carry its access token, "
    "renewed when it expires.",
    icon="http.svg",
    account_label="custom OAuth 2 account",
    custom_accounts=True,
)

#: The response body handed to later reactions is cut at this many bytes.
BODY_CAP = 64 * 1024
#: Responses larger than this are not parsed into ``json``.
JSON_CAP = 1024 * 1024
#: A watched value larger than this (as JSON) is not kept as ``previous``.
STATE_VALUE_CAP = 64 * 1024
EXCERPT_LENGTH = 500
MAX_TIMEOUT = 300.0

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SENSITIVE_HEADER_PARTS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "password",
    "api-key",
    "apikey",
)
_CONTENT_TYPES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "text": "text/plain; charset=utf-8",
}

_HEADERS_HELP = "One header per line, written Name: value (e.g. Authorization: Bearer …)."
#: Plain http may carry an account's token only to this computer.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


# --- reaction ---------------------------------------------------------------------------


def _preview(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The request a dry run shows: checked like a real one, credentials masked."""
    headers = parse_headers(params.get("headers"))
    body_type = str(params.get("body_type") or "json")
    _encode_body(params.get("body"), body_type)
    return {
        "method": params.get("method"),
        "url": params.get("url"),
        "headers": {
            name: "•••" if _is_sensitive(name) else value for name, value in headers.items()
        },
        "body": params.get("body") or "",
        "body_type": body_type,
    }


@service.reaction(
    "request",
    "Send a request",
    "Calls a web address with the method, headers and body you choose. A failed attempt is "
    "retried only when the address could not be reached or answered 5xx or 429.",
    params=[
        Param(
            "method",
            ParamType.CHOICE,
            "Method",
            help="The HTTP method. POST, PATCH and DELETE are retried after a network "
            "failure, 5xx or 429 like the others, so make the far side tolerate repeats.",
            required=False,
            default="POST",
            choices=tuple((m, m) for m in ("GET", "POST", "PUT", "PATCH", "DELETE")),
            example="POST",
        ),
        Param(
            "url",
            ParamType.URL,
            "Address",
            help="The web address to call.",
            example="https://example.org/api/notes",
        ),
        Param(
            "headers",
            ParamType.MULTILINE,
            "Headers",
            help=_HEADERS_HELP,
            required=False,
            example="Accept: application/json\nX-Source: hookline",
        ),
        Param(
            "body",
            ParamType.MULTILINE,
            "Body",
            help="What to send. For JSON use {{ value | tojson }} to insert values safely; "
            "for a form write one name=value per line.",
            required=False,
            example='{"text": {{ trigger.title | tojson }}}',
        ),
        Param(
            "body_type",
            ParamType.CHOICE,
            "Body type",
            help="How the body is sent: JSON (checked before sending), a URL-encoded form, "
            "or plain text. Sets Content-Type unless your headers set it.",
            required=False,
            default="json",
            choices=(("json", "JSON"), ("form", "Form fields"), ("text", "Plain text")),
            example="json",
        ),
        Param(
            "fail_on_error",
            ParamType.BOOL,
            "Fail on error status",
            help="Count an answer of 400 or more as a failure (on by default); off, the "
            "status is passed on for later reactions to look at.",
            required=False,
            default=True,
            example=True,
        ),
        Param(
            "timeout",
            ParamType.DURATION,
            "Timeout",
            help="How long to wait for the whole answer, e.g. 30s or 2m (at most 5m).",
            required=False,
            default=30,
            minimum=1,
            maximum=MAX_TIMEOUT,
            example="30s",
        ),
    ],
    fields=[
        Field("status", "Status code", 200),
        Field("body", "Response body as text (first 64 KiB)", '{"id": 42}'),
        Field(
            "json", "Response parsed as JSON (empty if it is not JSON or over 1 MiB)", {"id": 42}
        ),
        Field("headers", "Response headers", {"Content-Type": "application/json"}),
        Field("truncated", "Whether the body was cut at 64 KiB", False),
    ],
    preview=_preview,
    # The timeout parameter bounds each attempt; the engine's limit only has to exceed it.
    timeout=MAX_TIMEOUT + 10,
    retry=True,
)
async def request(ctx: ReactionContext) -> Mapping[str, Any]:
    """Send the request; retries happen only for TransientError (network, 5xx, 429)."""
    params = ctx.params
    headers = parse_headers(params.get("headers"))
    body_type = str(params.get("body_type") or "json")
    data = _encode_body(params.get("body"), body_type)
    if data is not None and not any(n.lower() == "content-type" for n in headers):
        headers["Content-Type"] = _CONTENT_TYPES[body_type]
    method = str(params.get("method") or "POST")
    if (ctx.idempotency_key and method.upper() not in ("GET", "HEAD", "OPTIONS")
            and not any(n.lower() == "idempotency-key" for n in headers)):
        # the same for a retry and for the run again after a kill: a server that
        # honours it acts once
        headers["Idempotency-Key"] = ctx.idempotency_key
    resp = await _send(
        ctx,
        method,
        str(params["url"]),
        headers=headers,
        data=data,
        timeout=float(params.get("timeout") or 30),
    )
    if params.get("fail_on_error", True) and resp.status >= 400:
        resp.raise_for_status()
    text = _text(resp.body[:BODY_CAP], resp)
    if len(resp.body) > BODY_CAP:
        # Drop a character cut in half at the boundary.
        text = text.rstrip("\ufffd")
    return {
        "status": resp.status,
        "body": text,
        "json": _maybe_json(resp.body),
        "headers": dict(resp.headers),
        "truncated": len(resp.body) > BODY_CAP,
    }


def parse_headers(text: Any) -> dict[str, str]:
    """``Name: value`` lines as a dict; a malformed line is a PermanentError naming it."""
    headers: dict[str, str] = {}
    for number, line in enumerate(str(text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not _TOKEN_RE.match(name):
            shown = line.strip()
            shown = shown if len(shown) <= 24 else shown[:24] + "…"
            raise PermanentError(
                f"Headers line {number} ({shown!r}) is not 'Name: value'; "
                "write one header per line, e.g. Accept: application/json"
            )
        value = value.strip()
        if _CONTROL_RE.search(value):
            raise PermanentError(
                f"Headers line {number} ({name}) holds a control character; remove it"
            )
        headers[name] = value
    return headers


def _encode_body(body: Any, body_type: str) -> bytes | None:
    if body is None or not str(body).strip():
        return None
    text = str(body)
    if body_type == "json":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise PermanentError(
                f"Body is not valid JSON after filling in the templates: {exc.msg} at line "
                f"{exc.lineno} column {exc.colno}. Insert text with {{{{ value | tojson }}}} "
                "so quotes are escaped, or choose body type text"
            ) from None
        return text.encode("utf-8")
    if body_type == "form":
        pairs = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise PermanentError(
                    f"Body line {number} is not 'name=value'; a form body has one field per line"
                )
            pairs.append((name.strip(), value))
        return urlencode(pairs).encode("ascii")
    return text.encode("utf-8")


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SENSITIVE_HEADER_PARTS)


def _text(body: bytes, resp: HttpResponse) -> str:
    """Body as text by the response's charset (UTF-8 if none or unknown)."""
    ctype = resp.header("Content-Type") or ""
    charset = "utf-8"
    if "charset=" in ctype:
        charset = ctype.split("charset=", 1)[1].split(";")[0].strip().strip('"') or charset
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _maybe_json(body: bytes) -> Any:
    if not body.strip() or len(body) > JSON_CAP:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None


# --- poll triggers ----------------------------------------------------------------------


@service.poll_trigger(
    "json_value_changed",
    "JSON value changed",
    "Fires when one value in a JSON document on the web changes.",
    params=[
        Param(
            "url",
            ParamType.URL,
            "Address",
            help="A web address that answers with JSON.",
            example="https://api.github.com/repos/python/cpython",
        ),
        Param(
            "path",
            ParamType.TEXT,
            "Value path",
            help="Where the value sits: names joined by dots, list positions in brackets "
            "(data.items[0].price); $ is the whole document.",
            example="stargazers_count",
        ),
        Param(
            "headers",
            ParamType.MULTILINE,
            "Headers",
            help=_HEADERS_HELP,
            required=False,
            example="Accept: application/json",
        ),
    ],
    fields=[
        Field("value", "The new value", 71234),
        Field("previous", "The value before the change (empty at first)", 71233),
        Field("url", "Address", "https://api.github.com/repos/python/cpython"),
        Field("path", "Value path", "stargazers_count"),
        Field("checked_at", "Checked at (UTC, ISO 8601)", "2025-03-14T09:26:53+00:00"),
    ],
)
async def json_value_changed(ctx: PollContext) -> PollResult:
    """The current value as one item, keyed by a change counter and the value's hash."""
    url = str(ctx.params["url"])
    path = str(ctx.params["path"])
    steps = parse_path(path)
    resp = await _get_conditional(ctx, url, ctx.state, parse_headers(ctx.params.get("headers")))
    if resp.status == 304:
        return PollResult(not_modified=True)
    try:
        document = json.loads(resp.body)
    except ValueError as exc:
        raise PermanentError(
            f"{redact_url(url)} did not answer with JSON ({exc}); check the address"
        ) from None
    except RecursionError:
        raise PermanentError(
            f"{redact_url(url)} answered with JSON nested too deeply to read"
        ) from None
    value = resolve_path(document, steps, path)
    serialized = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    key, changed = _track(ctx.state, serialized)
    if changed:
        ctx.state["previous"] = ctx.state.get("value")
    # A huge value is not kept in the state (saved after every poll); previous is then empty.
    ctx.state["value"] = value if len(serialized) <= STATE_VALUE_CAP else None
    data = {
        "value": value,
        "previous": ctx.state.get("previous"),
        "url": url,
        "path": path,
        "checked_at": _now(),
    }
    return PollResult(items=[Item(key=key, data=data)])


@service.poll_trigger(
    "page_changed",
    "Web page changed",
    "Fires when the visible text of a web page changes.",
    params=[
        Param(
            "url",
            ParamType.URL,
            "Address",
            help="The web page to watch.",
            example="https://example.org/status",
        ),
        Param(
            "contains",
            ParamType.TEXT,
            "Only while it contains",
            help="Fire only when the changed page contains this text (any letter case). "
            "Empty: any change.",
            required=False,
            example="In stock",
        ),
        Param(
            "ignore_whitespace",
            ParamType.BOOL,
            "Ignore spacing",
            help="Changes in spaces and line breaks alone do not count.",
            required=False,
            default=True,
            example=True,
        ),
    ],
    fields=[
        Field("url", "Address", "https://example.org/status"),
        Field("length", "Length of the text, in characters", 1834),
        Field("excerpt", "The first 500 characters of the text", "Status: all systems normal"),
        Field("checked_at", "Checked at (UTC, ISO 8601)", "2025-03-14T09:26:53+00:00"),
    ],
)
async def page_changed(ctx: PollContext) -> PollResult:
    """The page's visible text, hashed; an item only while ``contains`` matches."""
    url = str(ctx.params["url"])
    resp = await _get_conditional(ctx, url, ctx.state, {})
    if resp.status == 304:
        return PollResult(not_modified=True)
    text = _text(resp.body, resp)
    if "html" in (resp.header("Content-Type") or "").lower():
        text = visible_text(text)
    squeezed = " ".join(text.split())
    if ctx.params.get("ignore_whitespace", True):
        text = squeezed
    key, _changed = _track(ctx.state, text)
    contains = str(ctx.params.get("contains") or "")
    if contains and " ".join(contains.split()).casefold() not in squeezed.casefold():
        return PollResult()
    data = {
        "url": url,
        "length": len(text),
        "excerpt": squeezed[:EXCERPT_LENGTH],
        "checked_at": _now(),
    }
    return PollResult(items=[Item(key=key, data=data)])


def _track(state: dict[str, Any], serialized: str) -> tuple[str, bool]:
    """The item key ``counter:hash`` and whether the content changed since the last poll.

    The counter grows on every change, so a value that goes A→B→A fires twice.
    """
    # surrogatepass: JSON may spell half of a UTF-16 pair ("\\ud83c") on its own.
    digest = hashlib.sha256(serialized.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    counter = int(state.get("counter") or 0)
    changed = state.get("hash") is not None and state["hash"] != digest
    if changed:
        counter += 1
    state["hash"] = digest
    state["counter"] = counter
    return f"{counter}:{digest}", changed


# --- acting as an account ---------------------------------------------------------------


def _token_may_go_to(url: str, account: AccountSession) -> None:
    """An account's token travels over https only (plain http only to this computer),
    and only to its provider: the host of its sign-in addresses, or one in the same
    domain (auth.example.org's token goes to api.example.org). A step whose address
    comes from an event cannot send it anywhere else."""
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in _LOOPBACK_HOSTS:
        raise PermanentError(
            f"{redact_url(url)} is a plain http address: Hookline sends an account's token "
            "only over https (or to 127.0.0.1 and localhost). Use the https:// address"
        )
    homes = _provider_hosts(account)
    host = (parts.hostname or "").lower()
    if homes and not any(_same_site(host, home) for home in homes):
        raise PermanentError(
            f"{redact_url(url)} is not at {account.service.name}'s address "
            f"({', '.join(sorted(homes))}): Hookline sends this account's token only "
            "there, so that an address from an event cannot carry it elsewhere. Call an "
            "address there, or choose no account for this step"
        )


def _provider_hosts(account: AccountSession) -> set[str]:
    spec = account.service.oauth
    if spec is None:
        return set()
    urls = (spec.authorize_url, spec.token_url)
    return {h.lower() for h in (urlsplit(u).hostname for u in urls) if h}


def _same_site(host: str, home: str) -> bool:
    """Whether ``host`` is ``home``, or shares its domain (the name less its first label,
    when that still has a dot); this computer's names are one; addresses by number match
    only themselves."""
    if host == home or {host, home} <= _LOOPBACK_HOSTS:
        return True
    if _is_address(host) or _is_address(home):
        return False
    parent = home.split(".", 1)[1] if home.count(".") >= 2 else home
    return host == parent or host.endswith("." + parent)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _signed(
    ctx: ReactionContext | TriggerContext, resp: HttpResponse
) -> HttpResponse:
    """A 401 the account's renewed token still got: it needs reconnecting, and says so."""
    if ctx.account is not None and resp.status == 401:
        host = urlsplit(resp.url).hostname or "the address"
        raise await ctx.account.signed_out(
            f"{host} refused its access token even after it was renewed (HTTP 401)"
        )
    return resp


async def _send(
    ctx: ReactionContext, method: str, url: str, **kwargs: Any
) -> HttpResponse:
    """The request as the step's account (bearer token, one renewal on a 401), else as
    no one; never raises for the answer's status."""
    if ctx.account is None:
        return await ctx.http.request(method, url, check=False, **kwargs)
    _token_may_go_to(url, ctx.account)
    return await _signed(ctx, await ctx.account.request(method, url, check=False, **kwargs))


async def _get_conditional(
    ctx: PollContext, url: str, state: dict[str, Any], headers: dict[str, str]
) -> HttpResponse:
    """A conditional GET as the step's account, else as no one; errors raised as
    ``HttpClient.get_conditional`` raises them."""
    if ctx.account is None:
        return await ctx.http.get_conditional(url, state, headers=headers)
    _token_may_go_to(url, ctx.account)
    resp = await ctx.account.get_conditional(url, state, headers=headers, check=False)
    return (await _signed(ctx, resp)).raise_for_status()


# --- a tiny path language: a.b[0]["odd key"] --------------------------------------------

_NAME = r"([^.\[\]]+)"
_BRACKET = r"""|\[\s*(-?\d+)\s*\]|\[\s*(["'])(.*?)\3\s*\]"""
_FIRST_STEP_RE = re.compile(r"\.?" + _NAME + _BRACKET)
_NEXT_STEP_RE = re.compile(r"\." + _NAME + _BRACKET)


def parse_path(path: str) -> list[str | int]:
    """Steps of ``data.items[0].price``: names are str, list positions int."""
    text = path.strip().removeprefix("$")
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = (_FIRST_STEP_RE if pos == 0 else _NEXT_STEP_RE).match(text, pos)
        if not match:
            raise PermanentError(
                f"Value path {path!r} cannot be read at {text[pos:]!r}: write names joined "
                "by dots and list positions in brackets, e.g. data.items[0].price"
            )
        if match[1] is not None:
            steps.append(match[1].strip())
        elif match[2] is not None:
            steps.append(int(match[2]))
        else:
            steps.append(match[4])
        pos = match.end()
    return steps


def resolve_path(document: Any, steps: list[str | int], path: str) -> Any:
    """The value at ``steps``; a missing key or index is a PermanentError saying which."""
    current = document
    walked = "$"
    for step in steps:
        if isinstance(current, list):
            index = step if isinstance(step, int) else _as_index(step, walked, current, path)
            if not -len(current) <= index < len(current):
                raise PermanentError(
                    f"Value path {path!r}: {walked} has {len(current)} item(s), so there is "
                    f"no [{index}]"
                )
            current = current[index]
            walked += f"[{index}]"
        elif isinstance(current, dict):
            name = str(step)
            if name not in current:
                keys = ", ".join(sorted(current)[:20]) or "none"
                raise PermanentError(
                    f"Value path {path!r}: {walked} has no key {name!r} (its keys: {keys})"
                )
            current = current[name]
            walked += f".{name}"
        else:
            raise PermanentError(
                f"Value path {path!r}: {walked} is {json.dumps(current)[:40]}, not an object "
                "or a list, so it has nothing inside"
            )
    return current


def _as_index(step: str, walked: str, current: list[Any], path: str) -> int:
    try:
        return int(step)
    except ValueError:
        raise PermanentError(
            f"Value path {path!r}: {walked} is a list of {len(current)} item(s); pick one "
            f"with a position like [0], not .{step}"
        ) from None


# --- helpers ----------------------------------------------------------------------------


def visible_text(html: str) -> str:
    """The text of an HTML page with tags, scripts and styles removed."""
    return html_to_text(html)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
