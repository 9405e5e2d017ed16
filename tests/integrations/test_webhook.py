"""Webhook service: what a delivery becomes, and which deliveries are refused and why."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from engine import HttpClient, Item, PushRequest, Rejected
from engine.testing import trigger_context
from integrations.webhook import service

FIXTURES = Path(__file__).parent / "fixtures" / "github"
SECRET = "It's a Secret to Everybody"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push(
    body: bytes,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    query: Mapping[str, str] | None = None,
) -> PushRequest:
    all_headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    all_headers.update(headers or {})
    return PushRequest(
        method=method,
        path="/hooks/test-area",
        headers=all_headers,
        query=dict(query or {}),
        body=body,
        content_type=content_type,
        remote="127.0.0.1",
    )


async def incoming(req: PushRequest, http: HttpClient, **params: Any) -> list[Item]:
    spec = service.triggers["incoming"]
    assert spec.push is not None
    return await spec.push(req, trigger_context(spec, params, http))


async def github(req: PushRequest, http: HttpClient, **params: Any) -> list[Item]:
    spec = service.triggers["github"]
    assert spec.push is not None
    return await spec.push(req, trigger_context(spec, {"secret": SECRET, **params}, http))


def github_delivery(
    body: bytes,
    event: str = "issues",
    content_type: str = "application/json",
    signature: str | None = None,
) -> PushRequest:
    headers = {
        "User-Agent": "GitHub-Hookshot/a1b2c3d",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "9b2f3c5e-b0a1-11ef-8f7d-5e6c2a8b9d01",
        "X-GitHub-Hook-ID": "514230987",
        "X-Hub-Signature": "sha1=ignored",
        "X-Hub-Signature-256": signature if signature is not None else sign(body),
    }
    return push(body, content_type, headers)


# --- incoming -------------------------------------------------------------------------


async def test_json_delivery_becomes_an_item_without_credentials(http: HttpClient) -> None:
    body = json.dumps({"sensor": "greenhouse", "temperature": 21.5}).encode()
    req = push(
        body,
        "application/json; charset=utf-8",
        {
            "Authorization": "Bearer abc",
            "Cookie": "session=1",
            "X-Hookline-Signature-256": sign(body),
            "X-Request-Id": "req-42",
            "User-Agent": "curl/8.5.0",
        },
        query={"source": "pi"},
    )
    before = datetime.now(UTC)

    [item] = await incoming(req, http)

    assert item.key == "req-42"
    assert item.data["body"] == {"sensor": "greenhouse", "temperature": 21.5}
    assert item.data["query"] == {"source": "pi"}
    assert item.data["content_type"] == "application/json"
    assert item.data["headers"]["User-Agent"] == "curl/8.5.0"
    hidden = {"authorization", "cookie", "x-hookline-signature-256"}
    assert not hidden & {name.lower() for name in item.data["headers"]}
    received = datetime.fromisoformat(item.data["received_at"])
    assert received.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= received <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"X-Request-Id": "a", "Idempotency-Key": "b", "X-Delivery-Id": "c"}, "a"),
        ({"Idempotency-Key": "b", "X-Delivery-Id": "c"}, "b"),
        ({"x-delivery-id": "c"}, "c"),
        ({"X-Request-Id": "  "}, None),
        ({}, None),
    ],
)
async def test_item_key_is_the_first_delivery_id_header(
    http: HttpClient, headers: dict[str, str], key: str | None
) -> None:
    [item] = await incoming(push(b"{}", headers=headers), http)
    assert item.key == key


async def test_malformed_json_is_refused_with_the_parsers_reason(http: HttpClient) -> None:
    with pytest.raises(Rejected) as caught:
        await incoming(push(b'{"temperature": 21.5,}'), http)
    assert caught.value.status == 400
    assert "not valid JSON" in caught.value.reason
    assert "Expecting property name enclosed in double quotes at line 1 column 22" in (
        caught.value.reason
    )


async def test_form_body_keeps_repeated_fields_as_lists(http: HttpClient) -> None:
    body = urlencode([("name", "Zoë & co"), ("tag", "a"), ("tag", "b"), ("empty", "")])
    [item] = await incoming(push(body.encode(), "application/x-www-form-urlencoded"), http)
    assert item.data["body"] == {"name": "Zoë & co", "tag": ["a", "b"], "empty": ""}


async def test_text_body_is_passed_as_text(http: HttpClient) -> None:
    [item] = await incoming(push("Door opened ✓".encode(), "text/plain"), http)
    assert item.data["body"] == "Door opened ✓"
    assert item.data["content_type"] == "text/plain"


async def test_empty_body_in_auto_mode_is_none(http: HttpClient) -> None:
    [item] = await incoming(push(b"", "application/json"), http)
    assert item.data["body"] is None


async def test_chosen_format_overrides_the_content_type(http: HttpClient) -> None:
    [as_json] = await incoming(push(b'{"a": 1}', "text/plain"), http, body="json")
    [as_raw] = await incoming(push(b'{"a": 1}', "application/json"), http, body="raw")
    [as_form] = await incoming(push(b"a=1&b=2", "text/plain"), http, body="form")
    assert as_json.data["body"] == {"a": 1}
    assert as_raw.data["body"] == '{"a": 1}'
    assert as_form.data["body"] == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    ("body", "content_type", "mode", "status", "message"),
    [
        (b"\xff\xfe\x00binary", "application/octet-stream", "auto", 415, "not UTF-8"),
        (b"\xff\xfe\x00binary", "text/plain", "raw", 415, "not UTF-8"),
        (b"a=\xff", "application/x-www-form-urlencoded", "auto", 400, "not UTF-8"),
        (b"--x\r\n", "multipart/form-data; boundary=x", "auto", 415, "multipart/form-data"),
        (b"  ", "application/json", "json", 400, "body is empty"),
    ],
)
async def test_unreadable_bodies_are_refused(
    http: HttpClient, body: bytes, content_type: str, mode: str, status: int, message: str
) -> None:
    with pytest.raises(Rejected) as caught:
        await incoming(push(body, content_type), http, body=mode)
    assert caught.value.status == status
    assert message in caught.value.reason


async def test_put_is_accepted_and_get_is_refused(http: HttpClient) -> None:
    assert await incoming(push(b"{}", method="PUT"), http)
    with pytest.raises(Rejected) as caught:
        await incoming(push(b"", method="GET"), http)
    assert caught.value.status == 405
    assert "POST or PUT" in caught.value.reason


async def test_signed_delivery_is_accepted(http: HttpClient) -> None:
    body = b'{"ok": true}'
    # Hex digits in either case are the same signature.
    headers = {"X-Hookline-Signature-256": sign(body).upper().replace("SHA256=", "sha256=")}
    [item] = await incoming(push(body, headers=headers), http, secret=SECRET)
    assert item.data["body"] == {"ok": True}


async def test_unsigned_delivery_is_refused_when_a_secret_is_set(http: HttpClient) -> None:
    with pytest.raises(Rejected) as caught:
        await incoming(push(b'{"ok": true}'), http, secret=SECRET)
    assert caught.value.status == 401
    assert caught.value.reason == (
        "signature missing: sign the body with the automation's secret "
        "(X-Hookline-Signature-256: sha256=…)"
    )


@pytest.mark.parametrize(
    "signature",
    [
        sign(b'{"ok": true}', "another secret"),
        sign(b'{"ok": false}'),  # signed a different body
        sign(b'{"ok": true}').removeprefix("sha256="),  # no scheme
        "sha1=" + sign(b'{"ok": true}').removeprefix("sha256="),
        "sha256=zz",
        "sha256=ä",
    ],
)
async def test_wrongly_signed_delivery_is_refused(http: HttpClient, signature: str) -> None:
    req = push(b'{"ok": true}', headers={"X-Hookline-Signature-256": signature})
    with pytest.raises(Rejected) as caught:
        await incoming(req, http, secret=SECRET)
    assert caught.value.status == 401
    assert "does not match" in caught.value.reason
    assert SECRET not in caught.value.reason


async def test_signature_is_checked_before_the_body_is_parsed(http: HttpClient) -> None:
    with pytest.raises(Rejected) as caught:
        await incoming(push(b"{not json"), http, secret=SECRET)
    assert caught.value.status == 401


# --- github ---------------------------------------------------------------------------


async def test_github_issue_opened_delivery(http: HttpClient) -> None:
    body = (FIXTURES / "issues_opened.json").read_bytes()

    [item] = await github(github_delivery(body), http)

    assert item.key == "9b2f3c5e-b0a1-11ef-8f7d-5e6c2a8b9d01"
    data = item.data
    assert data["event"] == "issues"
    assert data["action"] == "opened"
    assert data["delivery"] == "9b2f3c5e-b0a1-11ef-8f7d-5e6c2a8b9d01"
    assert data["repository"] == "marta-kowal/garden-sensors"
    assert data["sender"] == "jonas-eberle"
    assert data["payload"] == json.loads(body)
    assert data["payload"]["issue"]["title"] == "Soil moisture reads 0% after firmware 1.4"


async def test_github_form_encoded_delivery(http: HttpClient) -> None:
    raw = (FIXTURES / "issues_opened.json").read_bytes()
    body = ("payload=" + quote(raw.decode(), safe="")).encode()

    [item] = await github(
        github_delivery(body, content_type="application/x-www-form-urlencoded"), http
    )

    assert item.data["payload"] == json.loads(raw)
    assert item.data["repository"] == "marta-kowal/garden-sensors"


async def test_github_delivery_without_signature_says_where_to_set_the_secret(
    http: HttpClient,
) -> None:
    with pytest.raises(Rejected) as caught:
        await github(github_delivery(b"{}", signature=""), http)
    assert caught.value.status == 401
    assert "X-Hub-Signature-256 header missing" in caught.value.reason
    assert "Settings → Webhooks" in caught.value.reason


async def test_github_delivery_with_wrong_signature_is_refused(http: HttpClient) -> None:
    req = github_delivery(b'{"action": "opened"}', signature=sign(b"{}", "old secret"))
    with pytest.raises(Rejected) as caught:
        await github(req, http)
    assert caught.value.status == 401
    assert "X-Hub-Signature-256 does not match" in caught.value.reason


async def test_github_ping_is_accepted_without_firing(http: HttpClient) -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 514230987}).encode()
    assert await github(github_delivery(body, event="ping"), http) == []


async def test_github_events_filter(http: HttpClient) -> None:
    body = (FIXTURES / "issues_opened.json").read_bytes()
    assert await github(github_delivery(body), http, events="push, pull_request") == []
    assert len(await github(github_delivery(body), http, events="push, Issues")) == 1


async def test_github_delivery_needs_its_delivery_id(http: HttpClient) -> None:
    req = github_delivery(b"{}")
    headers = {k: v for k, v in req.headers.items() if k != "X-GitHub-Delivery"}
    with pytest.raises(Rejected) as caught:
        await github(push(req.body, headers=headers), http)
    assert caught.value.status == 400
    assert "X-GitHub-Delivery" in caught.value.reason


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b'{"action": "opened"', "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "must be a JSON object"),
        (b"payload=%7Bnope", "application/x-www-form-urlencoded", 400, "'payload' field"),
        (b"other=1", "application/x-www-form-urlencoded", 400, "no single 'payload'"),
        (b"<xml/>", "application/xml", 415, "set Content type to application/json"),
    ],
)
async def test_github_malformed_deliveries(
    http: HttpClient, body: bytes, content_type: str, status: int, message: str
) -> None:
    with pytest.raises(Rejected) as caught:
        await github(github_delivery(body, content_type=content_type), http)
    assert caught.value.status == status
    assert message in caught.value.reason


def test_github_secret_is_required() -> None:
    param = service.triggers["github"].param("secret")
    assert param is not None
    assert param.required
    assert param.is_secret
