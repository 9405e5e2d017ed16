"""A self-hosted Gitea, as far as a custom OAuth 2 account uses it: its OAuth 2 provider
(``/login/oauth/authorize`` and ``/login/oauth/access_token``, PKCE, rotating refresh
tokens, no revocation endpoint) and a few ``/api/v1`` routes answering recorded shapes
(tests/integrations/fixtures/gitea/). It records what it was asked."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

FIXTURES = Path(__file__).parent / "fixtures" / "gitea"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class FakeGitea:
    """Settings a test may change, and what the server saw.

    Attributes:
        expires_in: lifetime of the next access tokens, seconds.
        refuse_api: the API answers 401 to every token (as for one without the scope).
        api_requests: ``(method, path, Authorization header)`` of each API call.
    """

    client_id: str = "0f4b3b7e-8c59-4f6c-9a51-5d7c2f0e1a11"
    client_secret: str = "gto_3kq7v2x9m4p8s1d6f0h5j2l7n3r9t4w8"
    expires_in: int = 3600
    refuse_api: bool = False
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    api_requests: list[tuple[str, str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    base: str = ""
    _codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    _access: dict[str, float] = field(default_factory=dict)
    _refresh: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/login/oauth/authorize", self._authorize)
        app.router.add_post("/login/oauth/access_token", self._token)
        app.router.add_get("/api/v1/user", self._user)
        app.router.add_get("/api/v1/repos/{owner}/{repo}/issues", self._issues)
        app.router.add_post("/api/v1/repos/{owner}/{repo}/issues/{index}/comments",
                            self._comment)
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

    def refreshes(self) -> int:
        return sum(1 for r in self.token_requests if r.get("grant_type") == "refresh_token")

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (the API answers 401)."""
        self._access.clear()

    def revoke_refresh_tokens(self) -> None:
        self._refresh.clear()

    @staticmethod
    async def browser(url: str) -> None:
        """The user's browser: Gitea approves at once (the app was approved before), so
        following its redirect lands on Hookline's loopback callback."""
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200, await resp.text()

    # ------------------------------------------------------------------ OAuth 2

    async def _authorize(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.authorize_requests.append(q)
        if (q.get("response_type") != "code" or q.get("client_id") != self.client_id
                or q.get("code_challenge_method") != "S256"):
            return web.Response(status=400, text="invalid authorization request")
        code = secrets.token_hex(16)
        self._codes[code] = (q["redirect_uri"], q["code_challenge"])
        back = urlencode({"code": code, "state": q["state"]})
        raise web.HTTPFound(f"{q['redirect_uri']}?{back}")

    def _issue(self) -> web.Response:
        access, refresh = f"gta_{secrets.token_hex(20)}", f"gtr_{secrets.token_hex(20)}"
        self.issued += [access, refresh]
        self._access[access] = time.time() + self.expires_in
        self._refresh.add(refresh)
        return web.json_response({"access_token": access, "token_type": "bearer",
                                  "expires_in": self.expires_in, "refresh_token": refresh})

    @staticmethod
    def _refused(description: str) -> web.Response:
        return web.json_response({"error": "invalid_grant",
                                  "error_description": description}, status=400)

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                  self.client_secret):
            return web.json_response({"error": "invalid_client",
                                      "error_description": "invalid client secret"},
                                     status=400)
        if form.get("grant_type") == "authorization_code":
            grant = self._codes.pop(form.get("code", ""), None)
            if grant is None or grant[0] != form.get("redirect_uri"):
                return self._refused("client is not authorized")
            if create_s256_code_challenge(form.get("code_verifier", "")) != grant[1]:
                return self._refused("failed PKCE code challenge")
            return self._issue()
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self._refresh:
                return self._refused("token was already used")
            self._refresh.discard(form["refresh_token"])  # Gitea rotates them
            return self._issue()
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    # ------------------------------------------------------------------ API

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        self.api_requests.append((request.method, request.path, header))
        token = header.removeprefix("Bearer ").removeprefix("bearer ")
        return not self.refuse_api and self._access.get(token, 0) > time.time()

    def _unauthorized(self) -> web.Response:
        return web.json_response({"message": "token is required",
                                  "url": f"{self.base}/api/swagger"}, status=401)

    async def _user(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        return web.json_response(fixture("user.json"))

    async def _issues(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        return web.json_response(fixture("issues.json"))

    async def _comment(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        body = await request.json()
        return web.json_response({"id": 501, "html_url": f"https://git.example/marta/notes/"
                                                         f"issues/{request.match_info['index']}"
                                                         "#issuecomment-501",
                                  "user": {"login": "marta"}, "body": body["body"],
                                  "created_at": "2026-12-06T08:00:00Z"}, status=201)
