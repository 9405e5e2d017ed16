"""Acting as a connected account: a fresh access token, and requests that carry it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from engine.auth.oauth import OAuthClient, TokenRefused
from engine.auth.oauth import refresh as refresh_tokens
from engine.catalog.auth import TokenSet
from engine.errors import AuthError
from engine.http import HttpClient, HttpResponse

if TYPE_CHECKING:
    from engine.catalog.service import Service

#: Refresh this many seconds before the access token expires.
REFRESH_MARGIN = 60.0

OK = "ok"
NEEDS_RECONNECT = "needs_reconnect"

#: ``Account.kind``: connected through OAuth 2, or a token pasted in (``add_token``).
OAUTH2 = "oauth2"
API_KEY = "api_key"


@dataclass
class Account:
    """A connected account as the database keeps it (its tokens are in the keyring).

    Attributes:
        kind: ``oauth2`` or ``api_key`` (a pasted token: sent as the service's
            ``api_key.authorize`` says, when it says).
        name: who it is at the provider (e.g. a GitHub login).
        status: ``ok`` or ``needs_reconnect``.
    """

    id: str
    service_id: str
    kind: str
    name: str
    scopes: list[str]
    status: str = OK
    created_at: datetime | None = None
    last_refresh_at: datetime | None = None
    last_error: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service_id, "kind": self.kind,
                "name": self.name, "scopes": list(self.scopes), "status": self.status,
                "created_at": self.created_at, "last_refresh_at": self.last_refresh_at,
                "last_error": self.last_error}


class TokenKeeper(Protocol):
    """Where a session keeps its tokens and reports trouble (``Accounts`` in the engine)."""

    async def account(self, account_id: str) -> Account | None: ...

    async def load_tokens(self, account_id: str) -> TokenSet | None: ...

    async def save_tokens(self, account: Account, tokens: TokenSet) -> None: ...

    async def oauth_client(self, service_id: str) -> OAuthClient: ...

    async def mark_needs_reconnect(self, account: Account, reason: str) -> None: ...


def reconnect_error(service: Service, account: Account, reason: str | None) -> AuthError:
    how = (f"`hookline accounts connect {service.id}`"
           if service.oauth and account.kind != API_KEY  # a pasted token is pasted again
           else f"`hookline accounts token {service.id}`")
    return AuthError(f"{service.name} account “{account.name}” needs reconnecting"
                     + (f" ({reason})" if reason else "")
                     + f": reconnect the account in Hookline (Accounts, or {how})")


class AccountSession:
    """One connected account, as triggers and reactions use it.

    One session per account is shared by every area that uses the account, so
    however many calls find the token expired, one refresh happens (single flight);
    a rotated refresh token is saved before the new access token is used.

    Args:
        account: the account's row.
        service: the service it belongs to (its OAuth spec refreshes tokens).
        http: the engine's shared client.
        keeper: loads and saves tokens, reports an account that needs reconnecting.
    """

    def __init__(self, account: Account, service: Service, http: HttpClient,
                 keeper: TokenKeeper) -> None:
        self.account = account
        self.service = service
        self.http = http
        self._keeper = keeper
        self._lock = asyncio.Lock()
        self._tokens: TokenSet | None = None
        self._gone: str | None = None

    @property
    def id(self) -> str:
        return self.account.id

    @property
    def name(self) -> str:
        return self.account.name

    def __repr__(self) -> str:
        return f"<AccountSession {self.service.id}:{self.account.name}>"

    @classmethod
    def for_token(cls, service: Service, token: str, http: HttpClient, *,
                  name: str = "test", kind: str = API_KEY) -> AccountSession:
        """A session on a fixed token kept in memory (tests of services, dry runs);
        ``kind`` says how the account was connected (a pasted token unless ``oauth2``)."""
        account = Account("test-account", service.id, kind, name, [])
        return cls(account, service, http, MemoryKeeper(TokenSet(token)))

    # ------------------------------------------------------------------ tokens

    async def token(self) -> str:
        """A usable access token, refreshed first if it expires within a minute."""
        async with self._lock:
            tokens = await self._current()
            if tokens.expires_within(REFRESH_MARGIN):
                tokens = await self._refresh(tokens, "the access token expired")
            return tokens.access_token

    async def reload(self, account: Account | None = None) -> None:
        """Forget what is cached (the account was reconnected elsewhere, or removed)."""
        async with self._lock:
            self._tokens = None
            if account is None:
                self._gone = (f"the {self.service.name} account “{self.account.name}” was "
                              "removed: choose another account in the area")
            else:
                self.account = account

    async def _current(self) -> TokenSet:
        if self._gone:
            raise AuthError(self._gone)
        if self.account.status == NEEDS_RECONNECT:
            fresh = await self._keeper.account(self.account.id)  # reconnected meanwhile?
            if fresh is None or fresh.status == NEEDS_RECONNECT:
                raise reconnect_error(self.service, self.account, self.account.last_error)
            self.account, self._tokens = fresh, None
        if self._tokens is None:
            self._tokens = await self._keeper.load_tokens(self.account.id)
            if self._tokens is None:
                raise await self._signed_out("its token is missing from the OS keyring")
        return self._tokens

    async def _refresh(self, tokens: TokenSet, why: str) -> TokenSet:
        spec = self.service.oauth
        if spec is None or not tokens.refresh_token:
            raise await self._signed_out(f"{why} and cannot be renewed")
        client = await self._keeper.oauth_client(self.service.id)
        try:
            fresh = await refresh_tokens(spec, client, self.http, tokens)
        except TokenRefused as exc:
            raise await self._signed_out(str(exc)) from None
        # Saved before use: a rotated refresh token that was used but not kept would
        # leave the account with a dead one.
        await self._keeper.save_tokens(self.account, fresh)
        self._tokens = fresh
        return fresh

    async def signed_out(self, reason: str) -> AuthError:
        """Mark the account as needing a reconnect (``reason``: why, in the user's words)
        and return the error to raise: for a service that refuses even a renewed token."""
        async with self._lock:
            return await self._signed_out(reason)

    async def _signed_out(self, reason: str) -> AuthError:
        if self.account.status != NEEDS_RECONNECT:
            self.account = replace(self.account, status=NEEDS_RECONNECT, last_error=reason)
            await self._keeper.mark_needs_reconnect(self.account, reason)
        return reconnect_error(self.service, self.account, reason)

    async def _after_refusal(self, refused: str) -> str:
        """The provider refused ``refused`` (401): a newer token, else a refresh."""
        async with self._lock:
            tokens = await self._current()
            if tokens.access_token != refused:
                return tokens.access_token  # another call refreshed meanwhile
            stored = await self._keeper.load_tokens(self.account.id)
            if stored is not None and stored.access_token != refused:
                self._tokens = stored  # reconnected in another process
                return stored.access_token
            return (await self._refresh(tokens, "the service refused the access token")
                    ).access_token

    # ------------------------------------------------------------------ requests

    def _headers(self, headers: Mapping[str, str] | None, token: str) -> dict[str, str]:
        spec = self.service.api_key
        if self.account.kind == API_KEY and spec is not None and spec.authorize is not None:
            return {**(headers or {}), **spec.authorize(token)}
        kind = self._tokens.token_type if self._tokens else "Bearer"
        return {**(headers or {}), "Authorization": f"{kind} {token}"}

    async def request(self, method: str, url: str, *,
                      headers: Mapping[str, str] | None = None, check: bool = True,
                      **kwargs: Any) -> HttpResponse:
        """``HttpClient.request`` as this account: the bearer header is added, and a
        401 answer gets one retry with a refreshed token."""
        token = await self.token()
        resp = await self.http.request(method, url, headers=self._headers(headers, token),
                                       check=False, **kwargs)
        if resp.status == 401:
            token = await self._after_refusal(token)
            resp = await self.http.request(method, url, headers=self._headers(headers, token),
                                           check=False, **kwargs)
        return resp.raise_for_status() if check else resp

    async def get(self, url: str, **kwargs: Any) -> HttpResponse:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> HttpResponse:
        return await self.request("POST", url, **kwargs)

    async def get_conditional(self, url: str, state: dict[str, Any], *,
                              headers: Mapping[str, str] | None = None,
                              **kwargs: Any) -> HttpResponse:
        """GET with If-None-Match / If-Modified-Since from ``state`` (as
        ``HttpClient.get_conditional``); a 304 comes back as a response, no error."""
        extra = dict(headers or {})
        cache = state.get("http_cache") or {}
        if cache.get("url") == url:
            if cache.get("etag"):
                extra["If-None-Match"] = cache["etag"]
            if cache.get("last_modified"):
                extra["If-Modified-Since"] = cache["last_modified"]
        resp = await self.request("GET", url, headers=extra, **kwargs)
        if resp.ok:
            state["http_cache"] = {"url": url, "etag": resp.header("ETag"),
                                   "last_modified": resp.header("Last-Modified")}
        return resp


class MemoryKeeper:
    """Tokens kept in memory only: for ``AccountSession.for_token``, and for a grant no
    account keeps any more while it is revoked.

    Args:
        tokens: the tokens to start with (a refresh replaces them, here only).
        clients: where the OAuth client for a refresh comes from (none: refreshing fails).
    """

    def __init__(self, tokens: TokenSet,
                 clients: Callable[[str], Awaitable[OAuthClient]] | None = None) -> None:
        self.tokens: TokenSet | None = tokens
        self.reasons: list[str] = []
        self._clients = clients

    async def account(self, account_id: str) -> Account | None:
        return None

    async def load_tokens(self, account_id: str) -> TokenSet | None:
        return self.tokens

    async def save_tokens(self, account: Account, tokens: TokenSet) -> None:
        self.tokens = tokens

    async def oauth_client(self, service_id: str) -> OAuthClient:
        if self._clients is None:
            raise AuthError(f"no OAuth client is set up for {service_id}")
        return await self._clients(service_id)

    async def mark_needs_reconnect(self, account: Account, reason: str) -> None:
        self.reasons.append(reason)
