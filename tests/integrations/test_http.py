"""HTTP service: the requests it sends, the answers it passes on, and change detection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engine import (
    HttpClient,
    PermanentError,
    PollResult,
    RateLimited,
    TransientError,
)
from engine.testing import poll_context, reaction_context
from integrations.http import service

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Site:
    """A local web server that records every request and answers with ``handler``."""

    server: TestServer | None = None
    seen: list[Seen] = field(default_factory=list)
    handler: Handler | None = None
    not_modified: int = 0

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        assert self.handler is not None
        return await self.handler(request)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", site.dispatch)
    site.server = TestServer(app, host="127.0.0.1")
    await site.server.start_server()
    yield site
    await site.server.close()


def answer(*responses: Callable[[], web.Response]) -> Handler:
    """Answers each request with the next response; the last one repeats."""
    queue = list(responses)

    async def handler(_request: web.Request) -> web.StreamResponse:
        return queue.pop(0)() if len(queue) > 1 else queue[0]()

    return handler


async def send(http: HttpClient, **params: Any) -> Mapping[str, Any]:
    spec = service.reactions["request"]
    result = await spec.run(reaction_context(spec, params, http))
    assert result is not None
    return result


async def poll(trigger: str, http: HttpClient, state: dict[str, Any], **params: Any) -> PollResult:
    spec = service.triggers[trigger]
    assert spec.poll is not None
    return await spec.poll(poll_context(spec, params, http, state=state))


# --- the request reaction -------------------------------------------------------------


async def test_post_json_as_the_server_receives_it(site: Site, http: HttpClient) -> None:
    site.handler = answer(
        lambda: web.json_response({"id": 42}, status=201, headers={"X-Trace": "t-1"})
    )
    body = '{"text": "Garlic in", "tags": ["sowing"]}'

    out = await send(
        http,
        url=site.url("/api/notes?draft=0"),
        headers="Accept: application/json\n\nX-Source:  hookline \n",
        body=body,
    )

    [seen] = site.seen
    assert (seen.method, seen.path, seen.query) == ("POST", "/api/notes", {"draft": "0"})
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["X-Source"] == "hookline"
    assert seen.body == body.encode()
    assert out["status"] == 201
    assert out["json"] == {"id": 42}
    assert json.loads(out["body"]) == {"id": 42}
    assert out["headers"]["X-Trace"] == "t-1"
    assert out["truncated"] is False


async def test_a_request_carries_one_idempotency_key_per_event_and_step(
        site: Site, tmp_path: Path) -> None:
    """A retry (and the run again after a kill) sends the same Idempotency-Key, so a
    server that honours it acts once; another event gets another key."""
    from engine.app import Engine
    from engine.areas import AreaSpec
    from engine.secrets import MemorySecretStore
    from engine.settings import Settings

    site.handler = answer(lambda: web.Response(status=503), lambda: web.Response(text="ok"))
    engine = Engine(tmp_path / "data", secrets=MemorySecretStore(), settings=Settings.from_mapping(
        {"listener_enabled": False, "retry_delay": 0.01}))
    await engine.start()
    try:
        area = await engine.create_area(AreaSpec.from_dict({
            "name": "Ping", "trigger": {"service": "webhook", "trigger": "incoming"},
            "reactions": [{"service": "http", "reaction": "request",
                           "params": {"url": site.url("/hook"), "body": "{}"}}]}))
        await engine.run_now(area.id, {"body": {}})
        await engine.run_now(area.id, {"body": {}})
        await engine.wait_idle()
    finally:
        await engine.aclose()
    keys = [seen.headers.get("Idempotency-Key") for seen in site.seen]
    assert len(keys) == 3  # the first event: 503, then its retry; the second event
    assert keys[0] is not None and keys[0] == keys[1] != keys[2]
    assert keys[0].startswith(f"hookline-{area.id}-")


async def test_form_body_is_url_encoded_one_field_per_line(site: Site, http: HttpClient) -> None:
    site.handler = answer(lambda: web.Response(text="thanks"))

    out = await send(
        http,
        method="PUT",
        url=site.url("/form"),
        body="name=Zoë & co\ncomment=a=b\n\nempty=",
        body_type="form",
    )

    [seen] = site.seen
    assert seen.method == "PUT"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = parse_qsl(seen.body.decode(), keep_blank_values=True)
    assert fields == [("name", "Zoë & co"), ("comment", "a=b"), ("empty", "")]
    assert out["body"] == "thanks"
    assert out["json"] is None


async def test_text_body_keeps_the_users_content_type(site: Site, http: HttpClient) -> None:
    site.handler = answer(lambda: web.Response(status=204))

    out = await send(
        http,
        method="PATCH",
        url=site.url("/doc"),
        headers="content-type: text/markdown",
        body="# Notes\n\n* garlic",
        body_type="text",
    )

    [seen] = site.seen
    assert seen.method == "PATCH"
    assert seen.headers["Content-Type"] == "text/markdown"
    assert seen.body == b"# Notes\n\n* garlic"
    assert out["status"] == 204
    assert out["body"] == ""


async def test_get_without_body_sends_no_content_type(site: Site, http: HttpClient) -> None:
    site.handler = answer(lambda: web.json_response([1, 2, 3]))

    out = await send(http, method="GET", url=site.url("/list"))

    [seen] = site.seen
    assert seen.method == "GET"
    assert "Content-Type" not in seen.headers
    assert seen.body == b""
    assert out["json"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ("Accept: text/plain\nAuthorization Bearer abcdefghijklmnopqrstuvwxyz", "line 2"),
        ("Bad Name: x", "line 1"),
        (": nothing", "line 1"),
    ],
)
async def test_malformed_header_lines_are_named_and_nothing_is_sent(
    site: Site, http: HttpClient, headers: str, message: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        await send(http, url=site.url("/x"), headers=headers)
    assert f"Headers {message}" in str(caught.value)
    assert "is not 'Name: value'" in str(caught.value)
    assert "qrstuvwxyz" not in str(caught.value)  # long lines (maybe a token) are cut
    assert site.seen == []


async def test_json_body_that_does_not_parse_is_refused_before_sending(
    site: Site, http: HttpClient
) -> None:
    with pytest.raises(PermanentError) as caught:
        await send(http, url=site.url("/x"), body='{"text": "say "hi""}')
    assert "Body is not valid JSON after filling in the templates" in str(caught.value)
    assert "line 1 column 16" in str(caught.value)
    assert "tojson" in str(caught.value)
    assert site.seen == []


async def test_form_body_line_without_equals_is_refused(site: Site, http: HttpClient) -> None:
    with pytest.raises(PermanentError, match="Body line 2 is not 'name=value'"):
        await send(http, url=site.url("/x"), body="a=1\nb", body_type="form")
    assert site.seen == []


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (404, {}, PermanentError),
        (503, {}, TransientError),
        (429, {"Retry-After": "120"}, RateLimited),
    ],
)
async def test_error_statuses_map_to_engine_errors(
    site: Site, http: HttpClient, status: int, headers: dict[str, str], error: type[Exception]
) -> None:
    site.handler = answer(lambda: web.Response(status=status, text="nope", headers=headers))

    with pytest.raises(error) as caught:
        await send(http, url=site.url("/x"))

    assert type(caught.value) is error
    assert f"answered {status}: nope" in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 120


async def test_error_status_is_passed_on_when_failures_are_allowed(
    site: Site, http: HttpClient
) -> None:
    site.handler = answer(lambda: web.json_response({"error": "gone"}, status=410))

    out = await send(http, url=site.url("/x"), fail_on_error=False)

    assert out["status"] == 410
    assert out["json"] == {"error": "gone"}


async def test_big_answers_are_cut_at_64_kib(site: Site, http: HttpClient) -> None:
    big = "é" * 40_000  # 80,000 bytes of UTF-8
    site.handler = answer(lambda: web.Response(text=big))

    out = await send(http, method="GET", url=site.url("/big"))

    assert out["truncated"] is True
    assert len(out["body"].encode()) <= 64 * 1024
    assert out["body"] == "é" * (64 * 1024 // 2)
    assert out["json"] is None


def test_preview_shows_the_request_with_credentials_masked(http: HttpClient) -> None:
    spec = service.reactions["request"]
    assert spec.preview is not None
    params = reaction_context(
        spec,
        {
            "url": "https://example.org/api",
            "headers": "Authorization: Bearer s3cr3t\nX-Api-Key: k3y\nAccept: text/plain",
            "body": '{"a": 1}',
        },
        http,
    ).params
    shown = spec.preview(params)
    assert shown["headers"] == {"Authorization": "•••", "X-Api-Key": "•••", "Accept": "text/plain"}
    assert shown["method"] == "POST"
    assert "s3cr3t" not in json.dumps(shown)


def test_preview_reports_a_body_that_is_not_json(http: HttpClient) -> None:
    spec = service.reactions["request"]
    assert spec.preview is not None
    params = reaction_context(spec, {"url": "https://example.org", "body": "{oops"}, http).params
    with pytest.raises(PermanentError, match="not valid JSON"):
        spec.preview(params)


def test_the_engine_lets_the_timeout_parameter_decide() -> None:
    spec = service.reactions["request"]
    timeout = spec.param("timeout")
    assert timeout is not None
    assert timeout.maximum is not None
    assert spec.timeout > timeout.maximum
    assert spec.retry


# --- json_value_changed ---------------------------------------------------------------


async def test_json_value_changes_fire_each_time_even_back_to_an_old_value(
    site: Site, http: HttpClient
) -> None:
    prices = iter([3.5, 3.5, 4.0, 3.5])

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"data": {"items": [{"price": next(prices)}]}})

    site.handler = handler
    state: dict[str, Any] = {}
    keys, previous = [], []
    for _ in range(4):
        result = await poll(
            "json_value_changed", http, state, url=site.url("/p"), path="data.items[0].price"
        )
        [item] = result.items
        keys.append(item.key)
        previous.append(item.data["previous"])
        assert item.data["path"] == "data.items[0].price"

    assert keys[0] == keys[1]  # unchanged: same key, nothing fires
    assert len(set(keys)) == 3  # 3.5 → 4.0 → 3.5 gives two new keys
    assert [k.split(":")[0] for k in keys] == ["0", "0", "1", "2"]
    assert previous == [None, None, 3.5, 4.0]
    assert item.data["value"] == 3.5


async def test_json_poll_sends_headers_and_uses_etag(site: Site, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-None-Match") == '"v1"':
            site.not_modified += 1
            return web.Response(status=304)
        return web.json_response({"stars": 7}, headers={"ETag": '"v1"'})

    site.handler = handler
    state: dict[str, Any] = {}
    params = {"url": site.url("/repo"), "path": "stars", "headers": "Accept: application/json"}

    first = await poll("json_value_changed", http, state, **params)
    second = await poll("json_value_changed", http, state, **params)

    assert first.items[0].data["value"] == 7
    assert second.not_modified
    assert not second.items
    assert site.not_modified == 1
    assert site.seen[1].headers["If-None-Match"] == '"v1"'
    assert all(s.headers["Accept"] == "application/json" for s in site.seen)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("data.item", "$.data has no key 'item' (its keys: items, total)"),
        ("data.items[5]", "$.data.items has 2 item(s), so there is no [5]"),
        ("data.items.price", "$.data.items is a list of 2 item(s); pick one"),
        ("data.total.x", "$.data.total is 2, not an object or a list"),
        ("data..items", "cannot be read at '..items'"),
    ],
)
async def test_json_paths_that_do_not_fit_say_why(
    site: Site, http: HttpClient, path: str, message: str
) -> None:
    site.handler = answer(lambda: web.json_response({"data": {"items": [1, 2], "total": 2}}))
    with pytest.raises(PermanentError) as caught:
        await poll("json_value_changed", http, {}, url=site.url("/d"), path=path)
    assert message in str(caught.value)


async def test_json_paths_reach_odd_keys_and_negative_positions(
    site: Site, http: HttpClient
) -> None:
    site.handler = answer(lambda: web.json_response({"a.b": {"list": [1, 2, 3]}}))
    result = await poll(
        "json_value_changed", http, {}, url=site.url("/d"), path='$["a.b"].list[-1]'
    )
    assert result.items[0].data["value"] == 3


async def test_json_poll_of_a_page_that_is_not_json(site: Site, http: HttpClient) -> None:
    site.handler = answer(lambda: web.Response(text="<html>login</html>", content_type="text/html"))
    with pytest.raises(PermanentError, match=r"/d\?… did not answer with JSON"):
        await poll("json_value_changed", http, {}, url=site.url("/d?token=s3cr3t"), path="a")


async def test_json_values_no_parser_or_hash_can_take_are_clear(
    site: Site, http: HttpClient
) -> None:
    # Half of a UTF-16 pair on its own is valid JSON; hashing it made every poll crash.
    site.handler = answer(lambda: web.Response(text='{"name": "Party \\ud83c"}',
                                               content_type="application/json"))
    [item] = (await poll("json_value_changed", http, {}, url=site.url("/d"), path="name")).items
    assert item.data["value"] == "Party \ud83c"
    site.handler = answer(lambda: web.Response(text="[" * 100_000,
                                               content_type="application/json"))
    with pytest.raises(PermanentError, match=r"/d answered with JSON nested too deeply"):
        await poll("json_value_changed", http, {}, url=site.url("/d"), path="a")
    # Calling such an address still works: its answer is kept as text, not as JSON.
    site.handler = answer(lambda: web.Response(text="[" * 60_000 + "]" * 60_000,
                                               content_type="application/json"))
    out = await send(http, method="GET", url=site.url("/d"))
    assert out["json"] is None and out["body"].startswith("[[[")


async def test_json_poll_maps_rate_limits(site: Site, http: HttpClient) -> None:
    site.handler = answer(lambda: web.Response(status=429, headers={"Retry-After": "30"}))
    with pytest.raises(RateLimited) as caught:
        await poll("json_value_changed", http, {}, url=site.url("/d"), path="a")
    assert caught.value.retry_after == 30


# --- page_changed ---------------------------------------------------------------------

PAGE = """<!doctype html><html><head><title>Seed shop</title>
<style>body {{ color: red }}</style><script>var nonce = "{nonce}";</script></head>
<body><h1>Garlic &amp; shallots</h1><p>Germidour:   {stock}</p></body></html>"""


async def test_page_changes_are_judged_on_visible_text(site: Site, http: HttpClient) -> None:
    pages = iter(
        [
            PAGE.format(nonce="1", stock="sold out"),
            PAGE.format(nonce="2", stock="sold out"),  # only a script changed
            PAGE.format(nonce="3", stock="sold \n  out"),  # only spacing changed
            PAGE.format(nonce="4", stock="in stock"),
        ]
    )

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(text=next(pages), content_type="text/html")

    site.handler = handler
    state: dict[str, Any] = {}
    results = [await poll("page_changed", http, state, url=site.url("/shop")) for _ in range(4)]

    keys = [r.items[0].key for r in results]
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] != keys[2]
    data = results[3].items[0].data
    assert data["excerpt"] == "Seed shop Garlic & shallots Germidour: in stock"
    assert data["length"] == len(data["excerpt"])
    assert data["url"] == site.url("/shop")


async def test_spacing_counts_when_asked(site: Site, http: HttpClient) -> None:
    texts = iter(["a  b", "a b"])

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(text=next(texts))

    site.handler = handler
    state: dict[str, Any] = {}
    params = {"url": site.url("/t"), "ignore_whitespace": False}
    first = await poll("page_changed", http, state, **params)
    second = await poll("page_changed", http, state, **params)
    assert first.items[0].key != second.items[0].key


async def test_page_fires_only_while_it_contains_the_text(site: Site, http: HttpClient) -> None:
    stock = iter(["sold out", "In Stock", "sold out", "In   stock"])

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(text=PAGE.format(nonce="", stock=next(stock)), content_type="text/html")

    site.handler = handler
    state: dict[str, Any] = {}
    params = {"url": site.url("/shop"), "contains": "in stock"}
    results = [await poll("page_changed", http, state, **params) for _ in range(4)]

    assert [len(r.items) for r in results] == [0, 1, 0, 1]
    assert results[1].items[0].key != results[3].items[0].key


async def test_page_poll_uses_if_modified_since(site: Site, http: HttpClient) -> None:
    stamp = "Mon, 02 Dec 2024 07:30:00 GMT"

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-Modified-Since") == stamp:
            site.not_modified += 1
            return web.Response(status=304)
        return web.Response(text="hello", headers={"Last-Modified": stamp})

    site.handler = handler
    state: dict[str, Any] = {}
    await poll("page_changed", http, state, url=site.url("/p"))
    again = await poll("page_changed", http, state, url=site.url("/p"))

    assert again.not_modified
    assert site.not_modified == 1


async def test_page_poll_of_a_missing_page(site: Site, http: HttpClient) -> None:
    site.handler = answer(lambda: web.Response(status=404, text="Not Found"))
    with pytest.raises(PermanentError, match="answered 404"):
        await poll("page_changed", http, {}, url=site.url("/gone"))
