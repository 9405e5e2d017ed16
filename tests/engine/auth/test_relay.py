"""Signing in from a window on another computer: that window listens for the browser's
answer and forwards it; this engine begins the request and exchanges the code once,
keeping the OAuth app's secret and the PKCE verifier to itself, and says why nothing
was connected past each of its bounds."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from engine import rpc
from engine.app import Engine
from engine.auth import oauth, relay
from engine.auth.relay import KEPT, LONGEST, MARGIN, Relays, SignedIn
from engine.errors import AuthError, ValidationError
from tests.engine.auth.conftest import LookupProvider, RecordingBrowser, use_spec


async def window_sign_in(app: Engine, browser: RecordingBrowser
                         ) -> tuple[SignedIn, list[Any]]:
    """Sign in as a window elsewhere does (its own listener and browser, the engine's
    request and exchange), each call made through the engine's RPC table and codec as
    over the paired channel. What crossed, both ways, as JSON text."""
    crossed: list[Any] = []

    async def call(name: str, **arguments: Any) -> Any:
        sent = json.dumps(rpc.encode(arguments))
        rpc.CALLS[name].check(rpc.decode(json.loads(sent)))
        result = await rpc.CALLS[name].run(app, **rpc.decode(json.loads(sent)))
        answered = json.dumps(rpc.encode(result))
        crossed.extend((sent, answered))
        return rpc.decode(json.loads(answered))

    signed = await relay.sign_in_from_here(call, "acme", browser=browser(), timeout=10)
    return signed, crossed


async def approve(url: str) -> dict[str, str]:
    """The provider's answer to ``url`` once approved: the redirect's query (no window
    listens for it here)."""
    async with (aiohttp.ClientSession() as session,
                session.get(url, allow_redirects=False) as resp):
        return dict(parse_qsl(urlsplit(resp.headers["Location"]).query))


async def test_a_window_elsewhere_signs_in_and_the_secrets_stay_here(
        app: Engine, provider: LookupProvider, browser: RecordingBrowser) -> None:
    provider.client_secret = "cs-never-leaves"
    await app.accounts.set_client("acme", provider.client_id, provider.client_secret)
    signed, crossed = await window_sign_in(app, browser)
    assert signed.account.name == "marta"
    [visit] = browser.visits
    assert visit.status == 200
    assert "Connected" in visit.page and "your Acme account “marta”" in visit.page
    tokens = await app.accounts.load_tokens(signed.account.id)
    assert tokens is not None

    [exchanged] = provider.token_requests
    assert exchanged["client_secret"] == "cs-never-leaves"
    assert exchanged["code_verifier"]
    between = "".join(crossed)  # all that crossed, both ways
    assert [json.loads(sent).keys() for sent in crossed[::2]][-1] == {"sign_in", "answer"}
    for kept in ("cs-never-leaves", exchanged["code_verifier"], tokens.access_token,
                 tokens.refresh_token or "no refresh token"):
        assert kept not in between
    assert "code_challenge=" in between


async def test_each_answer_is_exchanged_once(app: Engine, provider: LookupProvider) -> None:
    relayed = await app.accounts.begin_sign_in("acme", "http://127.0.0.1:4321/callback")
    answer = await approve(relayed.url)
    await app.accounts.finish_sign_in(relayed.id, answer)
    with pytest.raises(AuthError, match=r"does not know this sign-in \(it was finished already"):
        await app.accounts.finish_sign_in(relayed.id, answer)
    assert provider.exchanges() == 1
    assert len(await app.accounts.accounts("acme")) == 1


async def test_an_answer_of_another_sign_in_is_refused(
        app: Engine, provider: LookupProvider) -> None:
    first = await app.accounts.begin_sign_in("acme", "http://127.0.0.1:4321/callback")
    second = await app.accounts.begin_sign_in("acme", "http://127.0.0.1:4321/callback")
    with pytest.raises(AuthError, match="does not belong to this sign-in"):
        await app.accounts.finish_sign_in(first.id, await approve(second.url))
    assert provider.exchanges() == 0
    assert await app.accounts.accounts("acme") == []


async def test_declining_in_the_browser_connects_nothing(
        app: Engine, provider: LookupProvider) -> None:
    provider.decision = "deny"
    relayed = await app.accounts.begin_sign_in("acme", "http://127.0.0.1:4321/callback")
    with pytest.raises(AuthError, match="Access was declined in the browser"):
        await app.accounts.finish_sign_in(relayed.id, await approve(relayed.url))
    assert await app.accounts.accounts("acme") == []


async def test_past_the_bound_the_oldest_is_set_aside_and_the_rest_connect_once(
        app: Engine, provider: LookupProvider) -> None:
    begun = [await app.accounts.begin_sign_in("acme", "http://127.0.0.1:4321/callback")
             for _ in range(KEPT + 1)]
    answers = [await approve(r.url) for r in begun]
    with pytest.raises(AuthError, match=f"set aside: {KEPT} newer sign-ins were begun"):
        await app.accounts.finish_sign_in(begun[0].id, answers[0])
    for relayed, answer in zip(begun[1:], answers[1:], strict=True):
        signed = await app.accounts.finish_sign_in(relayed.id, answer)
        assert signed.account.name == "marta"
    assert provider.exchanges() == KEPT
    assert [a.name for a in await app.accounts.accounts("acme")] == ["marta"]


async def test_a_sign_in_kept_past_its_time_says_so(
        app: Engine, provider: LookupProvider) -> None:
    now = [1000.0]
    app.accounts.relays = Relays(clock=lambda: now[0])
    uri = "http://127.0.0.1:4321/callback"
    late = await app.accounts.begin_sign_in("acme", uri)  # the window waits 5 minutes
    patient = await app.accounts.begin_sign_in("acme", uri, wait=900)  # --timeout 900
    endless = await app.accounts.begin_sign_in("acme", uri, wait=10 * LONGEST)
    answers = {r.id: await approve(r.url) for r in (late, patient, endless)}
    now[0] += 300 + MARGIN + 1
    with pytest.raises(AuthError, match=r"begun over 6 minutes ago and is no longer kept.*"
                                        r"within 5 minutes"):
        await app.accounts.finish_sign_in(late.id, answers[late.id])
    await app.accounts.finish_sign_in(patient.id, answers[patient.id])  # still kept
    now[0] += LONGEST
    with pytest.raises(AuthError, match=r"begun over 61 minutes ago.*within 60 minutes"):
        await app.accounts.finish_sign_in(endless.id, answers[endless.id])
    assert provider.exchanges() == 1


async def test_a_window_that_gives_up_leaves_nothing_to_finish(
        app: Engine, provider: LookupProvider) -> None:
    relayed = await app.accounts.begin_sign_in("acme", "http://127.0.0.1:4321/callback")
    answer = await approve(relayed.url)
    app.accounts.abandon_sign_in(relayed.id)
    with pytest.raises(AuthError, match="does not know this sign-in"):
        await app.accounts.finish_sign_in(relayed.id, answer)
    assert provider.exchanges() == 0


@pytest.mark.parametrize("redirect_uri", [
    "https://127.0.0.1:4321/callback",
    "http://evil.example:4321/callback",
    "http://127.0.0.1/callback",
    "http://127.0.0.1:4321/elsewhere",
    "http://127.0.0.1:4321/callback?next=http://evil.example",
    "http://user@127.0.0.1:4321/callback",
])
async def test_only_a_loopback_callback_may_be_the_redirect(
        app: Engine, provider: LookupProvider, redirect_uri: str) -> None:
    with pytest.raises(ValidationError, match=r"must be http://127\.0\.0\.1:PORT/callback"):
        await app.accounts.begin_sign_in("acme", redirect_uri)
    assert provider.authorize_requests == []


async def test_a_provider_with_a_fixed_port_is_answered_there(
        app: Engine, provider: LookupProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    use_spec(monkeypatch, provider, fixed_port=8765)
    assert await app.accounts.sign_in_place("acme") == ("127.0.0.1", 8765)
    with pytest.raises(ValidationError, match=r"must be http://127\.0\.0\.1:8765/callback"):
        await app.accounts.begin_sign_in("acme", "http://127.0.0.1:9999/callback")
    assert (await app.accounts.begin_sign_in("acme", "http://127.0.0.1:8765/callback")).url


async def test_without_its_oauth_app_it_says_so_before_the_browser_opens(
        app: Engine, provider: LookupProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    use_spec(monkeypatch, provider, client_secret_required=True)  # the secret is missing
    with pytest.raises(AuthError, match="has no OAuth app set up yet"):
        await app.accounts.sign_in_place("acme")
    with pytest.raises(AuthError, match="has no OAuth app set up yet"):
        await app.accounts.begin_sign_in("acme", "http://127.0.0.1:4321/callback")
    assert provider.authorize_requests == []


async def test_an_answer_before_the_sign_in_is_begun_is_refused_and_the_wait_goes_on(
        app: Engine, browser: RecordingBrowser) -> None:
    async with oauth.Callback("127.0.0.1", 0, browser=browser(), timeout=10) as window:
        async with (aiohttp.ClientSession() as session,
                    session.get(f"{window.redirect_uri}?state=&code=stolen") as early):
            assert early.status == 409
            assert "has not started this sign-in yet" in await early.text()
        relayed = await app.accounts.begin_sign_in("acme", window.redirect_uri)
        window.open(relayed.url, relayed.state)
        signed = await app.accounts.finish_sign_in(relayed.id, await window.answer())
    assert signed.account.name == "marta"
