"""Shared fixtures: an isolated data folder, a shared HTTP client, background-task failures."""

from __future__ import annotations

import asyncio
import os
import urllib.request
import webbrowser
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.http import HttpClient
from tests.pg import PostgresServer, start_server

# No display on CI machines: Qt renders offscreen unless a test sets up Xvfb.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data folder; nothing touches the user's."""
    data = tmp_path / "data"
    monkeypatch.setenv("HOOKLINE_DATA_DIR", str(data))
    return data


@pytest.fixture
def data_dir(_isolated_data_dir: Path) -> Path:
    return _isolated_data_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder of the test's own (and no XDG_CONFIG_HOME): files written per user
    (start at login, the OS service) land there."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


@pytest.fixture(autouse=True)
async def _fail_on_background_errors() -> AsyncIterator[list[dict[str, object]]]:
    """A background task that dies with an exception fails the test instead of vanishing."""
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    yield errors
    loop.set_exception_handler(previous)
    assert not errors, f"background task failed: {errors}"


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the whole session (tests/pg.py)."""
    yield from start_server()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """Hookline's URL for a fresh, empty PostgreSQL database, dropped afterwards."""
    name = postgres_server.new_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture
def browser_that_approves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The user's browser, where the user approves every sign-in: each page it ends on
    (the redirect followed back to Hookline), in order."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    pages: list[str] = []

    def browse(url: str) -> bool:
        with opener.open(url, timeout=10) as page:
            pages.append(page.read().decode())
        return True

    monkeypatch.setattr(webbrowser, "open", browse)
    return pages
