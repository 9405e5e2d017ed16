"""A small OAuth 2 provider for tests: authorization code with PKCE (S256), access tokens
with a set lifetime, rotating refresh tokens, revocation, a user-info and an API endpoint.

It records what it was asked and every token it issued, so tests can check the flow
and look for leaks."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

from engine.auth.oauth import Browser
from engine.catalog.auth import OAuth2Spec
from engine.http import HttpClient


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str


@dataclass
class Provider:
    """Settings a test may change between steps, and what the provider saw.

    Attributes:
        decision: ``approve`` or ``deny`` at the authorization page.
        expires_in: lifetime of the next access tokens, seconds.
        token_delay: seconds the token endpoint takes (widens races on purpose).
    """

    client_id: str = "hookline-test-client"
    client_secret: str | None = None
    login: str = "marta"
    decision: str = "approve"
    expires_in: int = 3600
    token_delay: float = 0.0
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    api_requests: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    base: str = ""
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _access: dict[str, float] = field(default_factory=dict)
    _refresh: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ control

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_post("/revoke", self._revoke)
        app.router.add_get("/userinfo", self._userinfo)
        app.router.add_get("/api/thing", self._thing)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def spec(self, **changes: Any) -> OAuth2Spec:
        spec = OAuth2Spec(f"{self.base}/authorize", f"{self.base}/token",
                          scopes=("read", "write"), revoke_url=f"{self.base}/revoke",
                          client_secret_required=self.client_secret is not None,
                          userinfo=self.userinfo)
        return replace(spec, **changes)

    async def userinfo(self, http: HttpClient, token: str) -> str:
        resp = await http.get(f"{self.base}/userinfo",
                              headers={"Authorization": f"Bearer {token}"})
        return str(resp.json()["login"])

    def refreshes(self) -> int:
        return sum(1 for r in self.token_requests if r.get("grant_type") == "refresh_token")

    def exchanges(self) -> int:
        return sum(1 for r in self.token_requests
                   if r.get("grant_type") == "authorization_code")

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (the API answers 401)."""
        self._access.clear()

    def revoke_refresh_tokens(self) -> None:
        self._refresh.clear()

    def make_token(self, kind: str) -> str:
        token = f"{kind}-{secrets.token_urlsafe(24)}"
        self.issued.append(token)
        return token

    # ------------------------------------------------------------------ endpoints

    async def _authorize(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.authorize_requests.append(q)
        if (q.get("response_type") != "code" or q.get("client_id") != self.client_id
                or not q.get("redirect_uri", "").startswith("http://127.0.0.1:")
                or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")):
            return web.Response(status=400, text="bad authorization request")
        back: dict[str, str] = {"state": q.get("state", "")}
        if self.decision == "deny":
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            self._codes[code] = _Grant(q["client_id"], q["redirect_uri"], q["code_challenge"],
                                       q.get("scope", ""))
            back["code"] = code
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode(back)}")

    def _issue(self) -> dict[str, Any]:
        access, refresh = self.make_token("at"), self.make_token("rt")
        self._access[access] = time.time() + self.expires_in
        self._refresh.add(refresh)
        return {"access_token": access, "token_type": "bearer", "expires_in": self.expires_in,
                "refresh_token": refresh, "scope": "read write"}

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if form.get("client_id") != self.client_id or (
                self.client_secret is not None
                and form.get("client_secret") != self.client_secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        kind = form.get("grant_type")
        if kind == "authorization_code":
            grant = self._codes.pop(str(form.get("code")), None)  # single use
            if grant is None or grant.redirect_uri != form.get("redirect_uri"):
                return web.json_response({"error": "invalid_grant"}, status=400)
            verifier = str(form.get("code_verifier") or "")
            if create_s256_code_challenge(verifier) != grant.challenge:
                return web.json_response({"error": "invalid_grant",
                                          "error_description": "PKCE check failed"},
                                         status=400)
            return web.json_response(self._issue())
        if kind == "refresh_token":
            refresh = str(form.get("refresh_token"))
            if refresh not in self._refresh:
                return web.json_response({"error": "invalid_grant",
                                          "error_description": "refresh token revoked"},
                                         status=400)
            self._refresh.discard(refresh)  # rotation: each refresh token works once
            return web.json_response(self._issue())
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def _revoke(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        token = str(form.get("token"))
        self.revoked.append(token)
        self._refresh.discard(token)
        self._access.pop(token, None)
        return web.Response(status=200)

    def _bearer(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        self.api_requests.append(header)
        token = header.removeprefix("Bearer ")
        expires = self._access.get(token)
        return token if expires is not None and expires > time.time() else None

    async def _userinfo(self, request: web.Request) -> web.Response:
        if self._bearer(request) is None:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"login": self.login, "id": 4242})

    async def _thing(self, request: web.Request) -> web.Response:
        if self._bearer(request) is None:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"thing": "ok", "login": self.login})


def follow(seen: list[tuple[str, int, str]] | None = None,
           tamper: Callable[[str], str] | None = None) -> Browser:
    """A browser that approves: it follows the authorization URL to the callback."""

    async def browse(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, allow_redirects=False) as resp:
                location = resp.headers["Location"]
            if tamper is not None:
                location = tamper(location)
            async with session.get(location) as resp:
                if seen is not None:
                    seen.append((location, resp.status, await resp.text()))

    return browse
