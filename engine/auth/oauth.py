"""OAuth 2 for a desktop app: the authorization code flow with PKCE through a one-shot
loopback redirect (RFC 8252), and the token endpoint calls (exchange, refresh, revoke).

Authlib has no aiohttp client (its async client needs httpx), so its primitives build
the authorization URL, the PKCE challenge and the random values, and the token
requests go through the engine's shared ``HttpClient``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import logging
import secrets
import webbrowser
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from engine.catalog.auth import REDIRECT_PATH, OAuth2Spec, TokenSet
from engine.errors import AuthError, HooklineError, RateLimited, TransientError
from engine.http import HttpClient

log = logging.getLogger(__name__)

#: How long the loopback listener waits for the browser by default.
DEFAULT_TIMEOUT = 300.0
#: RFC 7636 code verifier alphabet ("unreserved" characters).
_VERIFIER_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

#: Opens the authorization URL for the user (tests pass a function that follows it).
Browser = Callable[[str], Awaitable[object]]
#: Shown before the browser opens: ``(authorization URL, redirect URI)``.
Show = Callable[[str, str], None]


@dataclass(frozen=True)
class OAuthClient:
    """The user's own OAuth app at the provider (the repr hides the secret)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)

    def basic_auth(self) -> dict[str, str]:
        """The client's id and secret as an HTTP Basic ``Authorization`` header
        (RFC 6749 §2.3.1: each form-encoded first)."""
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret or '', safe='')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


class TokenRefused(AuthError):
    """The token endpoint said no (e.g. ``invalid_grant``: the refresh token is dead).

    Attributes:
        code: the OAuth error code.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


async def system_browser(url: str) -> bool:
    """Open ``url`` in the user's browser; False when no browser could be started."""
    return await asyncio.to_thread(webbrowser.open, url)


_PAGE = ("<!doctype html><meta charset=utf-8><title>Hookline</title>"
         "<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{text}</p>")
#: aiohttp reads request lines up to this many bytes.
MAX_LINE = 8190


@dataclass(frozen=True)
class Page:
    """What the browser tab shows at the end of a sign-in (plain text, escaped here)."""

    status: int
    title: str
    text: str

    def response(self) -> web.Response:
        return web.Response(status=self.status, content_type="text/html",
                            text=_PAGE.format(title=html.escape(self.title),
                                              text=html.escape(self.text)))


def failure_page(exc: BaseException) -> Page:
    """The tab's page when the sign-in failed after the browser's answer arrived."""
    if isinstance(exc, HooklineError):
        status = 502 if isinstance(exc, (AuthError, TransientError)) else 500
        return Page(status, "Not connected", f"{str(exc).rstrip('.')}. You can close this "
                                             "tab.")
    if isinstance(exc, asyncio.CancelledError):
        return Page(500, "Not connected", "Hookline stopped this sign-in before it was "
                    "finished, so nothing was connected. Start again from Hookline.")
    return Page(500, "Not connected", "Something went wrong in Hookline while finishing "
                "the sign-in, so nothing was connected. Hookline shows what happened; start "
                "again from there.")


class _Listener(RequestHandler):
    """aiohttp's connection handler, minus its logging of requests it cannot read: the
    request line of a callback holds the authorization code and state."""

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None
                     ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the answer page was already being sent")
        log.debug("the sign-in listener refused a request (HTTP %s, %s)", status,
                  type(exc).__name__ if exc else "no detail")
        manager = self._manager
        assert isinstance(manager, _Server)
        response = manager.unreadable(status, exc).response()
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        log.debug("the sign-in listener dropped a connection (%s)",
                  type(exc).__name__ if isinstance(exc, BaseException) else "no detail")


class _Server(web.Server):
    """A low-level aiohttp server whose connections are :class:`_Listener` s."""

    def __init__(self, handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]],
                 unreadable: Callable[[int, BaseException | None], Page]) -> None:
        super().__init__(handler, access_log=None)
        self.unreadable = unreadable

    def __call__(self) -> RequestHandler:
        return _Listener(self, loop=self._loop, **self._kwargs)


class LoopbackRedirect:
    """Listens on the loopback address for the provider's one redirect, then stops.

    The first request to the callback path decides the outcome: it must carry the
    expected ``state``. Any later callback is refused (410), so a code is never
    taken twice. Nothing of a request line reaches the logs, even one too long to read.

    Args:
        host: the loopback address to bind.
        port: 0 for an ephemeral port, or the provider's fixed one.
        state: the single-use value the callback must echo (None: given later with
            :meth:`expect`, once the sign-in is begun elsewhere; until then a callback
            is refused and does not end the wait).
        hold: keep the browser's request for the callback waiting for the page given
            to :meth:`finish` (the flow's outcome; a failure page if the listener
            closes first); else it is told at once that the answer was received.
    """

    def __init__(self, host: str, port: int, state: str | None, *, hold: bool = False
                 ) -> None:
        self.host = host
        self.port = port
        self._state = state
        self._hold = hold
        loop = asyncio.get_running_loop()
        self._answer: asyncio.Future[dict[str, str]] = loop.create_future()
        self._verdict: asyncio.Future[Page] = loop.create_future()
        self._holding = False
        self._sent = asyncio.Event()
        self._runner: web.BaseRunner | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://{self.host}:{self.port}{REDIRECT_PATH}"

    def expect(self, state: str) -> None:
        """The value the callback must echo, when it was not known at the start."""
        self._state = state

    async def start(self) -> str:
        """Listen; returns the exact redirect URI to send to the provider."""
        self._runner = web.ServerRunner(_Server(self._handle, self._unreadable),
                                        handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self.aclose()
            raise AuthError(f"Cannot listen on {self.host}:{self.port} for the sign-in "
                            f"answer: {exc.strerror}. Close the program using that port "
                            "and try again") from None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.redirect_uri

    async def wait(self, timeout: float) -> dict[str, str]:
        """The query of the first callback; AuthError on a wrong state or no answer."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._answer), timeout)
        except TimeoutError:
            within = f"{timeout / 60:.0f} minutes" if timeout >= 60 else f"{timeout:g} s"
            raise AuthError(f"No answer from the browser within {within}, so nothing was "
                            "connected. Start again and finish signing in within that time"
                            ) from None

    def finish(self, page: Page) -> None:
        """What the browser that brought the answer is shown (it waits until now)."""
        if not self._verdict.done():
            self._verdict.set_result(page)

    async def aclose(self) -> None:
        if not self._answer.done():
            self._answer.cancel()
        self.finish(failure_page(asyncio.CancelledError()))
        if self._holding:  # let the waiting browser have its page before the socket goes
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sent.wait(), 5.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _unreadable(self, status: int, exc: BaseException | None) -> Page:
        if isinstance(exc, LineTooLong):
            if not self._answer.done():
                self._answer.set_exception(AuthError(
                    f"The answer that reached Hookline was too long to read (over "
                    f"{MAX_LINE:,} bytes), so nothing was connected. Start again; if it "
                    "happens again, the provider's answer is not one Hookline can take"))
            return Page(414, "Answer too long",
                        f"This answer is longer than Hookline reads (over {MAX_LINE:,} "
                        "bytes), so nothing was connected. Close this tab and start again "
                        "from Hookline.")
        if status >= 500:
            return Page(500, "Not connected", "Something went wrong in Hookline with this "
                        "answer. Close this tab and start again from Hookline.")
        return Page(400, "Not understood", "Hookline could not read this request. If you "
                    "were signing in, close this tab and start again from Hookline.")

    async def _handle(self, request: BaseRequest) -> web.StreamResponse:
        if request.path != REDIRECT_PATH:
            return Page(404, "Not found", "Hookline only takes sign-in answers here."
                        ).response()
        if request.method != "GET":
            return Page(405, "Not allowed", "Hookline only takes sign-in answers here."
                        ).response()
        if self._answer.done():
            return Page(410, "Already used",
                        "This sign-in answer was already received. Close this tab."
                        ).response()
        if self._state is None:
            return Page(409, "Not started", "Hookline has not started this sign-in yet. "
                        "Close this tab and start again from Hookline.").response()
        query = dict(request.query)
        if not secrets.compare_digest(query.get("state", "").encode(),
                                      self._state.encode()):
            self._answer.set_exception(AuthError(
                "The answer that reached Hookline does not belong to this sign-in (its "
                "state does not match), so nothing was connected. Start again"))
            return Page(400, "Not this sign-in",
                        "This answer does not match the sign-in Hookline started. "
                        "Nothing was connected; start again from Hookline.").response()
        self._answer.set_result(query)
        if "error" in query:
            return Page(200, "Not connected",
                        "Access was not granted. You can close this tab.").response()
        if not self._hold:
            return Page(200, "Answer received", "Hookline received the answer. You can "
                        "close this tab.").response()
        self._holding = True
        try:
            response = (await self._verdict).response()
            await response.prepare(request)
            await response.write_eof()
            return response
        finally:
            self._sent.set()


def authorization_url(spec: OAuth2Spec, client: OAuthClient, redirect_uri: str, state: str,
                      verifier: str | None) -> str:
    # authlib is imported where it is used: most starts never sign anyone in.
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]
    from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

    extra: dict[str, str] = dict(spec.extra_authorize_params)
    if verifier is not None:
        extra["code_challenge"] = create_s256_code_challenge(verifier)
        extra["code_challenge_method"] = "S256"
    return str(prepare_grant_uri(spec.authorize_url, client.client_id, "code", redirect_uri,
                                 scope=" ".join(spec.scopes) or None, state=state, **extra))


@dataclass(frozen=True)
class Begun:
    """A sign-in's authorization request: where the browser is sent, and what the code's
    exchange needs. It stays where the OAuth app's credentials are (the engine); a
    window elsewhere is given only :attr:`url` and :attr:`state`."""

    url: str
    redirect_uri: str
    state: str = field(repr=False)
    verifier: str | None = field(default=None, repr=False)


def begin(spec: OAuth2Spec, client: OAuthClient, redirect_uri: str) -> Begun:
    """A new authorization request answered at ``redirect_uri`` (fresh state and PKCE
    verifier)."""
    from authlib.common.security import generate_token  # type: ignore[import-untyped]

    state = generate_token(32)
    verifier = generate_token(64, _VERIFIER_CHARS) if spec.pkce else None
    return Begun(authorization_url(spec, client, redirect_uri, state, verifier),
                 redirect_uri, state, verifier)


async def exchange(spec: OAuth2Spec, client: OAuthClient, http: HttpClient, begun: Begun,
                   answer: Mapping[str, str]) -> TokenSet:
    """The tokens for the browser's answer (the redirect's query) to ``begun``. Raises
    AuthError saying what happened and what to do."""
    host = urlsplit(spec.authorize_url).hostname or "the provider"
    if not secrets.compare_digest(str(answer.get("state", "")).encode(),
                                  begun.state.encode()):
        raise AuthError("The answer that reached Hookline does not belong to this sign-in "
                        "(its state does not match), so nothing was connected. Start again")
    if "error" in answer:
        error = answer["error"]
        if error == "access_denied":
            raise AuthError("Access was declined in the browser, so no account was "
                            "connected")
        detail = answer.get("error_description")
        raise AuthError(f"{host} did not authorize Hookline: {error}"
                        + (f" ({detail})" if detail else "")
                        + ". Check the OAuth app's settings and start again")
    code = answer.get("code")
    if not code:
        raise AuthError(f"{host} answered without an authorization code, so nothing was "
                        "connected. Start again")
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": begun.redirect_uri, "client_id": client.client_id}
    if begun.verifier is not None:
        form["code_verifier"] = begun.verifier
    data = await token_request(spec, http, *_authenticated(spec, client, form),
                               "exchange the sign-in code")
    return TokenSet.from_response(data)


class Callback:
    """The browser's side of one sign-in, as an ``async with`` block: a loopback
    listener for the provider's one redirect (:attr:`redirect_uri`), the browser sent
    to the authorization URL (:meth:`open`), and the page its tab ends on.

    The tab waits on the callback until the block ends: it says "Connected" only when
    the block ends without an error (:meth:`connected` adds what to say), else what went
    wrong and what to do. The request itself may be begun elsewhere (an engine on
    another computer): only its URL and state are needed here.

    Args:
        host / port: where to listen (0: an ephemeral port).
        browser: opens the authorization URL for the user.
        show: given the authorization URL and redirect URI before the browser opens.
        timeout: seconds to wait for the browser's answer.
    """

    def __init__(self, host: str, port: int, *, browser: Browser = system_browser,
                 show: Show | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._browser = browser
        self._show = show
        self._timeout = timeout
        self._redirect = LoopbackRedirect(host, port, None, hold=True)
        self._opening: asyncio.Task[object] | None = None
        self._success = ""
        self.redirect_uri = ""

    async def __aenter__(self) -> Callback:
        self.redirect_uri = await self._redirect.start()
        return self

    def open(self, url: str, state: str) -> None:
        """Send the user to ``url``; the callback must then echo ``state``."""
        self._redirect.expect(state)
        if self._show is not None:
            self._show(url, self.redirect_uri)
        self._opening = asyncio.ensure_future(self._browser(url))

    async def answer(self) -> dict[str, str]:
        """The query of the one callback; AuthError on a wrong state or no answer."""
        return await self._redirect.wait(self._timeout)

    def connected(self, text: str) -> None:
        """What the browser's "Connected" page says, if the block ends without an error."""
        self._success = text

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: object) -> None:
        if exc is None:
            page = Page(200, "Connected", (self._success or "Hookline received the answer.")
                        + " You can close this tab.")
        else:
            page = failure_page(exc)
        self._redirect.finish(page)
        await self._redirect.aclose()
        if self._opening is not None:
            await _settle(self._opening)


class SignIn:
    """One sign-in through the browser on this computer, as an ``async with`` block:
    listen, send the user to the provider; :meth:`tokens` takes the one callback and
    exchanges its code. The tab's last page is :class:`Callback`'s.

    Args:
        spec / client: the provider, and the user's OAuth app there.
        http: the engine's shared client.
        browser: opens the authorization URL for the user.
        show: given the authorization URL and redirect URI before the browser opens.
        timeout: seconds to wait for the browser's answer.
    """

    def __init__(self, spec: OAuth2Spec, client: OAuthClient, http: HttpClient, *,
                 browser: Browser = system_browser, show: Show | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.spec = spec
        self.client = client
        self.http = http
        self._callback = Callback(spec.loopback_host, spec.fixed_port or 0, browser=browser,
                                  show=show, timeout=timeout)
        self._begun: Begun | None = None

    async def __aenter__(self) -> SignIn:
        await self._callback.__aenter__()
        try:
            self._begun = begin(self.spec, self.client, self._callback.redirect_uri)
            self._callback.open(self._begun.url, self._begun.state)
        except BaseException as exc:
            await self._callback.__aexit__(type(exc), exc, None)
            raise
        return self

    def connected(self, text: str) -> None:
        """What the browser's "Connected" page says, if the block ends without an error."""
        self._callback.connected(text)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: object) -> None:
        await self._callback.__aexit__(exc_type, exc, tb)

    async def tokens(self) -> TokenSet:
        """Wait for the browser's answer and exchange its code. Raises AuthError saying
        what happened and what to do."""
        assert self._begun is not None
        answer = await self._callback.answer()
        return await exchange(self.spec, self.client, self.http, self._begun, answer)


async def authorize(spec: OAuth2Spec, client: OAuthClient, http: HttpClient, *,
                    browser: Browser = system_browser, show: Show | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> TokenSet:
    """Run the whole flow: listen, send the user to the provider, take the one
    callback, exchange its code. Raises AuthError saying what happened and what to do."""
    async with SignIn(spec, client, http, browser=browser, show=show,
                      timeout=timeout) as sign_in:
        return await sign_in.tokens()


async def _settle(task: asyncio.Task[object]) -> None:
    """Let the browser opener finish (it may be reading the callback page), then drop it."""
    done, _ = await asyncio.wait({task}, timeout=5.0)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    elif not task.cancelled() and task.exception() is not None:
        log.debug("opening the browser failed: %s", task.exception())


async def refresh(spec: OAuth2Spec, client: OAuthClient, http: HttpClient,
                  tokens: TokenSet) -> TokenSet:
    """New tokens from the refresh token (which the provider may rotate)."""
    if not tokens.refresh_token:
        raise TokenRefused("there is no refresh token", "invalid_grant")
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token,
            "client_id": client.client_id}
    data = await token_request(spec, http, *_authenticated(spec, client, form),
                               "refresh the access")
    return TokenSet.from_response(data, previous=tokens)


async def revoke(spec: OAuth2Spec, client: OAuthClient, http: HttpClient,
                 tokens: TokenSet) -> bool:
    """Ask the provider to forget the grant (RFC 7009); best effort, True if it agreed."""
    if not spec.revoke_url:
        return False
    if spec.revoke_token == "refresh_token" and tokens.refresh_token:  # noqa: S105
        token, hint = tokens.refresh_token, "refresh_token"
    else:
        token, hint = tokens.access_token, "access_token"
    form, headers = _authenticated(spec, client, {"token": token, "token_type_hint": hint,
                                                  "client_id": client.client_id})
    try:
        resp = await http.post(spec.revoke_url, data=form, headers=headers, check=False)
    except TransientError as exc:
        log.info("could not reach the provider to revoke a token: %s", exc)
        return False
    if not resp.ok:
        log.info("the provider refused to revoke a token (HTTP %s)", resp.status)
    return resp.ok


def _authenticated(spec: OAuth2Spec, client: OAuthClient, form: dict[str, str]
                   ) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers with the client's credentials where the provider wants them."""
    if spec.client_auth == "basic":
        form = {k: v for k, v in form.items() if k != "client_id"}
        return form, client.basic_auth()
    form = dict(form)
    if client.client_secret:
        form["client_secret"] = client.client_secret
    return form, {}


async def token_request(spec: OAuth2Spec, http: HttpClient, form: dict[str, str],
                        headers: dict[str, str], what: str) -> dict[str, Any]:
    """POST to the token endpoint; the answer's JSON, or the error that says why not."""
    host = urlsplit(spec.token_url).hostname or "the provider"
    resp = await http.post(spec.token_url, data=form, check=False,
                           headers={"Accept": "application/json", **headers})
    if resp.status == 429:
        raise RateLimited(f"{host} asked to wait before trying to {what} again",
                          resp.retry_after())
    if resp.status >= 500 or resp.status == 408:
        raise TransientError(f"{host} could not {what} right now (HTTP {resp.status})")
    data = _token_answer(resp.body)
    error = data.get("error")
    if resp.status >= 400 or error:
        code = str(error or f"http_{resp.status}")
        detail = data.get("error_description")
        raise TokenRefused(f"{host} refused to {what}: {code}"
                           + (f" ({detail})" if detail else ""), code)
    if not data.get("access_token"):
        raise AuthError(f"{host} answered without an access token when asked to {what}")
    return data


def _token_answer(body: bytes) -> dict[str, Any]:
    """JSON, or the form encoding some providers still use; never echoes the body."""
    try:
        data = json.loads(body)
    except ValueError:
        data = dict(parse_qsl(body.decode("utf-8", errors="replace")))
    return data if isinstance(data, dict) else {}
