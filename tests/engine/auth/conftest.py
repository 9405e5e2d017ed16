"""Fixtures for signing in against the local OAuth provider: an engine whose Acme service
points at it, and a browser that records what the callback page said and when."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.app import Engine
from engine.auth import Account
from engine.auth.oauth import Browser
from engine.settings import Settings
from tests.engine import account_probe
from tests.engine.conftest import FAST
from tests.engine.oauth_provider import Provider, follow
from tests.engine.test_accounts import catalog_for_tests


class LookupProvider(Provider):
    """The test provider, whose user-info endpoint can be made to fail as a provider's
    does when it is down (``lookup_status``)."""

    lookup_status: int = 200

    async def _userinfo(self, request: web.Request) -> web.Response:
        if self.lookup_status != 200:
            self.api_requests.append(request.headers.get("Authorization", ""))
            return web.json_response({"error": "temporarily_unavailable"},
                                     status=self.lookup_status)
        return await super()._userinfo(request)

    def live_refresh_tokens(self) -> set[str]:
        return set(self._refresh)


@dataclass(frozen=True)
class Visit:
    """What the browser saw at the callback, and what the provider had been asked by then."""

    url: str
    status: int
    page: str
    exchanges: int
    lookups: int


class _Seen(list[tuple[str, int, str]]):
    """``follow``'s record of callback pages, noting the provider's counts the moment
    each page arrives."""

    def __init__(self, provider: LookupProvider) -> None:
        super().__init__()
        self.provider = provider
        self.asked: list[tuple[int, int]] = []

    def append(self, seen: tuple[str, int, str]) -> None:
        super().append(seen)
        self.asked.append((self.provider.exchanges(), len(self.provider.api_requests)))


class RecordingBrowser:
    """Browsers that approve at the provider and follow the redirect to Hookline's
    callback (``tamper`` may change its URL first), keeping the pages they got."""

    def __init__(self, provider: LookupProvider) -> None:
        self._seen = _Seen(provider)

    def __call__(self, tamper: Callable[[str], str] | None = None) -> Browser:
        return follow(self._seen, tamper)

    @property
    def visits(self) -> list[Visit]:
        return [Visit(*seen, *asked)
                for seen, asked in zip(self._seen, self._seen.asked, strict=True)]


@pytest.fixture
async def provider(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LookupProvider]:
    server = LookupProvider()
    await server.start()
    monkeypatch.setattr(account_probe.service, "oauth", server.spec())
    yield server
    await server.aclose()


@pytest.fixture
async def app(data_dir: Path, provider: LookupProvider) -> AsyncIterator[Engine]:
    engine = Engine(data_dir, settings=Settings.from_mapping(FAST), registry=catalog_for_tests())
    await engine.start()
    await engine.accounts.set_client("acme", provider.client_id, provider.client_secret)
    yield engine
    if engine.started:
        await engine.aclose()


@pytest.fixture
def browser(provider: LookupProvider) -> RecordingBrowser:
    return RecordingBrowser(provider)


def use_spec(monkeypatch: pytest.MonkeyPatch, provider: Provider, **changes: Any) -> None:
    monkeypatch.setattr(account_probe.service, "oauth", provider.spec(**changes))


def heard(app: Engine, topic: str) -> list[dict[str, Any]]:
    """What the engine publishes on ``topic`` from now on (the payloads, in order)."""
    payloads: list[dict[str, Any]] = []
    app.bus.subscribe(topic, lambda message: payloads.append(message.data))
    return payloads


async def connect(app: Engine, browser: RecordingBrowser, tamper: Any = None) -> Account:
    return await app.accounts.connect("acme", browser=browser(tamper), timeout=10)
