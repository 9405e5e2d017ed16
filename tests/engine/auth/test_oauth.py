"""The browser's side of a sign-in: the page it is shown, and a callback too long to read."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from engine.app import Engine
from engine.errors import AuthError
from tests.engine.auth.conftest import LookupProvider, RecordingBrowser, connect


async def test_the_page_says_connected_only_once_the_account_is_known(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser) -> None:
    account = await connect(app, browser)

    [visit] = browser.visits
    assert visit.exchanges == 1 and visit.lookups == 1  # both done before the page came
    assert visit.status == 200 and "<h1>Connected</h1>" in visit.page
    assert "Acme account “marta”" in visit.page and "You can close this tab" in visit.page
    assert [a.id for a in await app.accounts.accounts()] == [account.id]


async def test_a_failed_exchange_shows_what_went_wrong(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser) -> None:
    provider.client_secret = "a-secret-hookline-was-not-given"
    with pytest.raises(AuthError, match="refused to exchange the sign-in code"):
        await connect(app, browser)

    [visit] = browser.visits
    assert visit.status == 502 and "Connected" not in visit.page
    assert "<h1>Not connected</h1>" in visit.page
    assert "refused to exchange the sign-in code: invalid_client" in visit.page


async def test_a_failed_lookup_shows_what_went_wrong_and_what_to_do(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser) -> None:
    provider.lookup_status = 503
    with pytest.raises(AuthError):
        await connect(app, browser)

    [visit] = browser.visits
    assert visit.status == 502 and "Connected" not in visit.page
    assert "Acme did not say which account signed in, so nothing was connected" in visit.page
    assert "Hookline revoked the access you just gave." in visit.page
    assert await app.accounts.accounts() == []


class _Everything(logging.Handler):
    """Every record of every logger, at every level, as the text a log file would get."""

    def __init__(self) -> None:
        super().__init__(level=1)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def every_log_record() -> Iterator[_Everything]:
    handler = _Everything()
    names = ["", "aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal",
             "asyncio", "engine"]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.level, lg.propagate, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(1)
        lg.disabled = False
        lg.addHandler(handler)
        lg.propagate = False  # each record once, whichever logger it starts at
    yield handler
    for lg, (level, propagate, disabled) in zip(loggers, saved, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.propagate = propagate
        lg.disabled = disabled


async def test_a_callback_too_long_to_read_is_refused_and_never_logged(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser,
        every_log_record: _Everything) -> None:
    def padded(url: str) -> str:
        return url + "&pad=" + "x" * 9000

    with pytest.raises(AuthError, match=r"too long to read \(over 8,190 bytes\)"):
        await connect(app, browser, tamper=padded)

    [visit] = browser.visits
    query = parse_qs(urlsplit(visit.url).query)
    code, state = query["code"][0], query["state"][0]
    assert visit.status == 414 and "<h1>Answer too long</h1>" in visit.page
    assert "start again from Hookline" in visit.page
    assert code not in visit.page and state not in visit.page
    assert provider.exchanges() == 0 and await app.accounts.accounts() == []
    assert any("sign-in listener refused a request (HTTP 400" in t
               for t in every_log_record.texts)  # the capture works: it saw that line
    for text in every_log_record.texts:
        assert code not in text and state not in text, text
        assert not re.search(r"callback\?", text), text
