"""A fake provider API for the service tests: set replies, recorded requests, a local server.

A test module's fixture makes a `FakeProvider`, starts it with
`async with serve(fake.handle) as base:`, points its service's base URL at `base`
with monkeypatch and yields the fake.

Tests that need the address (links the service follows) keep it in `fake.base`.
A fake that answers differently (Discord, Telegram, Open-Meteo) can still use `serve()`,
`Seen` and `load_fixture()`.

Every request `serve()` receives during a service test is also checked against the
provider's published API description (tests/contracts/, docs/contracts.md).
"""

from __future__ import annotations

import email
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.contracts import plugin as contracts

FIXTURES = Path(__file__).parent / "fixtures"


def random_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that are the same at every run (a large upload's source)."""
    path.write_bytes(random.Random(size).randbytes(size))  # noqa: S311 - test data
    return path


def load_fixture(service: str, name: str) -> Any:
    """The JSON in tests/integrations/fixtures/<service>/<name>."""
    return json.loads((FIXTURES / service / name).read_text(encoding="utf-8"))


@dataclass
class Reply:
    """What the fake answers: no body when `body` is None, text when a str, else JSON.

    With an `etag` the reply carries it, and a request that sends it back in
    If-None-Match gets 304 Not Modified.
    """

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None


@dataclass
class Seen:
    """One request the fake received. `body` is the raw bytes, or the decoded JSON
    (None when empty) for a `FakeProvider(json_body=True)`."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def form(self) -> dict[str, str]:
        """The fields of an application/x-www-form-urlencoded body."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def parts(self) -> list[Message]:
        """The parts of a multipart/related body."""
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = email.message_from_bytes(head + self.body)
        assert message.is_multipart()
        return list(message.get_payload())


class FakeProvider:
    """Answers each (method, path) with its set replies and records every request.

    - `on(method, path, *replies)`: the replies are given out in turn, the last repeats.
    - `not_found`: the answer for a request nothing was set for.
    - `match_query`: query parameters that pick a reply set for `"{path}?{name}={value}"`
      before the one set for the bare path (pages, cursors).
    - `json_body`: record request bodies as decoded JSON rather than bytes.
    """

    def __init__(
        self,
        *,
        not_found: Reply | None = None,
        match_query: tuple[str, ...] = (),
        json_body: bool = False,
    ) -> None:
        self.replies: dict[tuple[str, str], list[Reply]] = {}
        self.seen: list[Seen] = []
        self.base = ""
        self.not_found = not_found or Reply("Not Found", status=404)
        self.match_query = match_query
        self.json_body = json_body

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.replies[(method, path)] = list(replies)

    def _reply(self, request: web.Request) -> Reply | None:
        query = request.query
        paths = [f"{request.path}?{k}={query[k]}" for k in self.match_query if k in query]
        for path in [*paths, request.path]:
            queue = self.replies.get((request.method, path))
            if queue:
                return queue.pop(0) if len(queue) > 1 else queue[0]
        return None

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body: Any = (json.loads(raw) if raw else None) if self.json_body else raw
        self.seen.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        reply = self._reply(request) or self.not_found
        headers = dict(reply.headers)
        if reply.etag:
            headers["ETag"] = reply.etag
            if request.headers.get("If-None-Match") == reply.etag:
                return web.Response(status=304, headers=headers)
        if reply.body is None or reply.status == 204:
            return web.Response(status=reply.status, headers=headers)
        if isinstance(reply.body, str):
            return web.Response(text=reply.body, status=reply.status, headers=headers)
        return web.json_response(reply.body, status=reply.status, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(
    handler: Handler, *, client_max_size: int = 1024**2, handler_cancellation: bool = False
) -> AsyncIterator[str]:
    """Serve every path with `handler` on a free local port; give its base URL.

    Each request is checked against the provider's description before `handler` answers.
    With `handler_cancellation` a request whose client went away is cancelled (a fake
    that must know when a long poll ends).
    """

    async def checked(request: web.Request) -> web.StreamResponse:
        await contracts.watch(request)
        return await handler(request)

    app = web.Application(client_max_size=client_max_size)
    app.router.add_route("*", "/{tail:.*}", checked)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=handler_cancellation)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
