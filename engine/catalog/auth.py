"""How a service declares what it needs to act for a user: OAuth 2, or a token pasted in."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.auth.oauth import OAuthClient
    from engine.auth.session import AccountSession
    from engine.http import HttpClient

#: ``(http, access_token) -> account name`` (who it is at the provider, e.g. a login).
UserInfo = Callable[["HttpClient", str], Awaitable[str]]
#: ``(account session, the user's OAuth client) -> whether the provider forgot the grant``,
#: for a provider whose revocation is not RFC 7009's (``session.token()`` gives a fresh
#: access token).
Revoke = Callable[["AccountSession", "OAuthClient"], Awaitable[bool]]
#: ``pasted token -> headers`` that carry it (e.g. ``{"Authorization": "Bot <token>"}``).
Authorize = Callable[[str], Mapping[str, str]]

REDIRECT_PATH = "/callback"


@dataclass(frozen=True)
class OAuth2Spec:
    """A provider's OAuth 2 authorization-code flow, declared once per service.

    Attributes:
        authorize_url / token_url: the provider's endpoints.
        scopes: what the areas of this service need (asked for at connect time).
        revoke_url: RFC 7009 revocation endpoint, called when an account is removed.
        revoke_token: which token that endpoint takes: ``"refresh_token"`` (the
            grant's, when there is one) or ``"access_token"`` (Twitch).
        revoke: the provider's own revocation call, instead of ``revoke_url``
            (Dropbox, GitHub).
        revoke_ends_every_sign_in: whether revoking one token ends every token the user
            ever gave the app (Google; GitHub's grant deletion), not only those of the
            sign-in it came from. Then a reconnect leaves the grant it replaces alone, as
            revoking it would end the new one too. ``None``: no for an RFC 7009
            ``revoke_url``, yes for a ``revoke`` call (assume the widest).
        apps_url: the provider's page of apps that can act as the user, where they end
            Hookline's access by hand when it could not be revoked.
        extra_authorize_params: added to the authorization URL, e.g. Dropbox's
            ``{"token_access_type": "offline"}`` for a refresh token.
        loopback_host: where the one-shot redirect listener binds.
        fixed_port: for providers that match the redirect URI's port exactly
            (``None``: an ephemeral port, allowed for loopback URIs by RFC 8252).
        pkce: send an S256 code challenge.
        client_secret_required: whether the user's OAuth app needs its secret too.
        userinfo: names the account from its access token.
        client_help: where and how the user registers their own OAuth app.
        register_url: the provider's page where that app is registered (the desktop's
            guide opens it; empty: the guide falls back to ``apps_url``).
        client_id_pattern: a regular expression a client id of this provider matches
            whole, where its shape is documented (empty: only generic checks).
        client_id_shape: says that shape in words, for when a pasted id does not match.
        client_auth: how the client authenticates at the token and revoke endpoints:
            ``"body"`` (client_id/client_secret in the form) or ``"basic"`` (HTTP Basic,
            RFC 6749 §2.3.1; Reddit and Notion insist on it).
    """

    authorize_url: str
    token_url: str
    scopes: tuple[str, ...] = ()
    revoke_url: str | None = None
    revoke_token: str = "refresh_token"  # noqa: S105 - a token type's name
    revoke: Revoke | None = None
    revoke_ends_every_sign_in: bool | None = None
    apps_url: str = ""
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    loopback_host: str = "127.0.0.1"
    fixed_port: int | None = None
    pkce: bool = True
    client_secret_required: bool = False
    userinfo: UserInfo | None = None
    client_help: str = ""
    client_auth: str = "body"
    register_url: str = ""
    client_id_pattern: str = ""
    client_id_shape: str = ""

    def redirect_uri(self, port: int | None = None) -> str:
        """The redirect URI for ``port``; without one, the URI to register with the
        provider (any port is accepted for loopback addresses unless ``fixed_port``)."""
        port = port or self.fixed_port
        where = f"{self.loopback_host}:{port}" if port else self.loopback_host
        return f"http://{where}{REDIRECT_PATH}"

    @property
    def revokes_one_sign_in(self) -> bool:
        """Whether a sign-in's grant can be revoked without ending the others'."""
        if not (self.revoke or self.revoke_url):
            return False
        if self.revoke_ends_every_sign_in is not None:
            return not self.revoke_ends_every_sign_in
        return self.revoke is None

    def describe(self) -> dict[str, Any]:
        return {"scopes": list(self.scopes), "redirect_uri": self.redirect_uri(),
                "client_secret_required": self.client_secret_required,
                "client_help": self.client_help}


@dataclass(frozen=True)
class ApiKeySpec:
    """A token the user creates at the provider and pastes in (a personal access token).

    Attributes:
        label: what the provider calls it.
        help: where to create one and which permissions to give it.
        userinfo: names the account from the token (and proves it works).
        authorize: the headers that carry a pasted token, for a provider that does not
            take ``Authorization: Bearer <token>`` (``None``: Bearer). The account's
            session sends them on every request; an OAuth account of the same service
            still sends Bearer.
    """

    label: str = "Personal access token"
    help: str = ""
    userinfo: UserInfo | None = None
    authorize: Authorize | None = None

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "help": self.help}


@dataclass(frozen=True)
class TokenSet:
    """What the keyring holds for one account (the repr never shows a token).

    Attributes:
        expires_at: when the access token expires (epoch seconds; ``None``: not said).
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    token_type: str = "Bearer"  # noqa: S105 - the scheme's name, not a secret

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now if now is not None else time.time()) >= self.expires_at - seconds

    def to_json(self) -> str:
        return json.dumps({"access_token": self.access_token,
                           "refresh_token": self.refresh_token,
                           "expires_at": self.expires_at, "token_type": self.token_type})

    @classmethod
    def from_json(cls, text: str) -> TokenSet:
        data = json.loads(text)
        return cls(str(data["access_token"]), data.get("refresh_token"),
                   data.get("expires_at"), str(data.get("token_type") or "Bearer"))

    @classmethod
    def from_response(cls, data: Mapping[str, Any], previous: TokenSet | None = None,
                      now: float | None = None) -> TokenSet:
        """From a token endpoint's JSON answer; a refresh answer that names no new
        refresh token keeps the previous one."""
        expires_in = data.get("expires_in")
        expires_at = None
        if expires_in not in (None, ""):
            expires_at = (now if now is not None else time.time()) + float(expires_in)
        refresh = data.get("refresh_token") or (previous.refresh_token if previous else None)
        kind = str(data.get("token_type") or "Bearer")
        return cls(str(data["access_token"]), refresh, expires_at,
                   "Bearer" if kind.lower() == "bearer" else kind)
