"""``hookline accounts``: names shown safely, and what is left to do after a reconnect."""

from __future__ import annotations

import asyncio

import pytest

from engine.app import Engine
from engine.cli import main
from tests.engine import account_probe
from tests.engine.auth.conftest import LookupProvider, RecordingBrowser, connect
from tests.engine.oauth_provider import Provider
from tests.engine.test_accounts import threaded_provider, use_test_registry  # noqa: F401

HOSTILE = "\x1b[2J\x1b[31mZoë 🙂\x1b[0m\nroot\u202e\x07"


async def test_accounts_list_shows_names_without_escapes_or_line_breaks(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    provider.login = HOSTILE
    await connect(app, browser)
    await app.aclose()
    use_test_registry(monkeypatch)
    capsys.readouterr()

    assert await asyncio.to_thread(main, ["accounts", "list"]) == 0
    out = capsys.readouterr().out

    [line] = out.splitlines()
    assert "Zoë 🙂 root" in line
    assert not any(c in out for c in "\x1b\x07\u202e\r")


def test_reconnecting_prints_where_to_end_the_grant_it_could_not_revoke(
        threaded_provider: Provider, browser_that_approves: list[str],  # noqa: F811
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_probe.service, "oauth", threaded_provider.spec(
        revoke_url=None, apps_url="https://acme.test/apps"))
    assert main(["accounts", "client", "acme", threaded_provider.client_id]) == 0
    assert main(["accounts", "connect", "acme"]) == 0
    capsys.readouterr()

    assert main(["accounts", "connect", "acme"]) == 0

    out = capsys.readouterr().out
    assert "connected Acme account “marta”" in out
    assert ("Acme offers apps no way to revoke their access: end the access your earlier "
            "sign-in gave at https://acme.test/apps (if that ends this connection too, "
            "connect again).") in out
    assert "<h1>Connected</h1>" in browser_that_approves[-1]
