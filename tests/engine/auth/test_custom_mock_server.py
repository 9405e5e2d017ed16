"""A custom provider against oauth2-mock-server, an OAuth 2 server written by others (npm):
connect through the loopback flow with PKCE, refresh (rotation), revoke.

The package is installed once per machine with npm into ~/.cache/hookline-tests/npm;
without Node.js and npm, or when the install fails, the test is skipped saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from engine.app import Engine
from engine.auth.custom import CustomProvider, add_provider

PACKAGE, MAJOR = "oauth2-mock-server", "9"
CACHE = (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
         / "hookline-tests" / "npm")
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def _installed() -> Path | None:
    """The server's script, if the wanted major version is in the cache."""
    home = CACHE / "node_modules" / PACKAGE
    try:
        meta = json.loads((home / "package.json").read_text())
    except (OSError, ValueError):
        return None
    script = home / str(meta.get("bin", {}).get(PACKAGE, ""))
    ok = str(meta.get("version", "")).startswith(MAJOR + ".") and script.is_file()
    return script if ok else None


@pytest.fixture(scope="session")
def mock_server_script() -> Path:
    """oauth2-mock-server's CLI script, installed with npm on first use."""
    script = _installed()
    if script is not None:
        return script
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        pytest.skip(f"{PACKAGE} runs on Node.js: install Node.js and npm to run this test")
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run([npm, "install", "--prefix", str(CACHE), f"{PACKAGE}@{MAJOR}",
                              "--no-audit", "--no-fund", "--loglevel=error"],
                             capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm could not install {PACKAGE} within 5 minutes")
    script = _installed()
    if out.returncode != 0 or script is None:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"npm could not install {PACKAGE} into {CACHE}: {tail}")
    return script


@pytest.fixture
async def mock_server(mock_server_script: Path) -> AsyncIterator[str]:
    """The server on a free port of 127.0.0.1; its base URL once it says it listens."""
    node = shutil.which("node") or "node"
    proc = await asyncio.create_subprocess_exec(
        node, str(mock_server_script), "-a", "127.0.0.1", "-p", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    said: list[str] = []
    try:
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            if not line:
                pytest.skip(f"{PACKAGE} did not start: {' '.join(said)[-300:]}")
            said.append(line.strip())
            found = LISTENING.search(line)
            if found:
                break
        yield found[1]
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()


async def follow(url: str) -> None:
    """The user's browser: the mock server approves at once and redirects to Hookline."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200 and "Connected" in await resp.text()


async def test_connect_refresh_and_revoke_against_oauth2_mock_server(
        engine: Engine, mock_server: str) -> None:
    provider = CustomProvider.checked(
        "mock", f"{mock_server}/authorize", f"{mock_server}/token", "openid profile",
        f"{mock_server}/userinfo", revoke_url=f"{mock_server}/revoke")
    await add_provider(engine.accounts, provider, "hookline-test")

    # The server checks the PKCE verifier against the challenge it was given.
    account = await engine.accounts.connect("mock", browser=follow, timeout=10)
    assert (account.service_id, account.name) == ("mock", "johndoe")  # its user info's sub
    first = await engine.accounts.load_tokens(account.id)
    assert first is not None and first.refresh_token and first.expires_at

    # An hour on, the access token is about to expire: the next use renews it.
    await engine.accounts.save_tokens(account, replace(first, expires_at=time.time()))
    session = await engine.accounts.session(account.id)
    renewed_access = await session.token()
    renewed = await engine.accounts.load_tokens(account.id)
    assert renewed is not None and renewed.access_token == renewed_access
    assert not renewed.expires_within(60)  # (the JWT itself may equal one of the same second)
    assert renewed.refresh_token not in (None, first.refresh_token)  # rotated, and kept

    removal = await engine.accounts.remove(account.id)
    assert removal.revoked
    assert removal.note == "mock confirmed that the access you gave is revoked."
    assert await engine.accounts.accounts() == []
