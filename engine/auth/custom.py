"""Custom OAuth 2 providers: a self-hosted Gitea, GitLab, Nextcloud or any OAuth 2 API,
declared as data (endpoints, scopes, how to name the account) instead of a plugin.

A provider becomes a :class:`Service` with no triggers or reactions of its own, whose id
is the name the user chose: its accounts connect, refresh, need reconnecting and are
removed as any other service's. The HTTP service's steps act as them (``account:``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.catalog.auth import OAuth2Spec, UserInfo
from engine.catalog.service import AuthKind, Service
from engine.errors import AuthError, ConfigError, ValidationError
from engine.storage.schema import custom_oauth_providers as providers_table
from engine.storage.schema import oauth_clients, utcnow

if TYPE_CHECKING:
    from engine.auth.accounts import Accounts
    from engine.http import HttpClient

#: The user-info fields tried in turn for the account's name, unless the user says.
NAME_FIELDS = ("login", "name", "email", "sub")
#: Plain http is refused except to these hosts (a provider running on this computer).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_FIELD = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: The fields of a definition, in the order a form shows them.
FIELDS = ("name", "authorize_url", "token_url", "scopes", "userinfo_url", "name_fields",
          "revoke_url", "client_id")


def check_url(value: str | None, where: str, label: str, *, required: bool) -> str | None:
    """``value`` stripped, if it is an http(s) address Hookline may send tokens to."""
    text = (value or "").strip()
    if not text:
        if required:
            raise ValidationError(where, f"give the {label}")
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(where, f"the {label} must be a web address starting with "
                                     "https://")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValidationError(where, f"the {label} must start with https://: over plain "
                                     "http anyone on the network could read the codes and "
                                     "tokens (http is allowed only for 127.0.0.1 and "
                                     "localhost)")
    if parts.username or parts.password:
        raise ValidationError(where, f"the {label} must not hold a user name or password")
    if parts.fragment:
        raise ValidationError(where, f"the {label} must not end with a #fragment")
    return text


def split_words(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Scopes or field names written with spaces or commas between them."""
    if value is None:
        return ()
    text = value if isinstance(value, str) else " ".join(value)
    return tuple(dict.fromkeys(text.replace(",", " ").split()))


@dataclass(frozen=True)
class CustomProvider:
    """An OAuth 2 provider the user declared.

    Attributes:
        name: what the user calls it (``my-gitea``); its accounts' service id.
        authorize_url / token_url: its authorization and token endpoints.
        scopes: asked for at sign-in.
        userinfo_url: answers who the access token belongs to (JSON); ``None``: every
            account is named after the provider.
        name_fields: the user-info fields that name the account, first non-empty wins.
        revoke_url: its RFC 7009 revocation endpoint, called when an account is removed.
    """

    name: str
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...] = ()
    userinfo_url: str | None = None
    name_fields: tuple[str, ...] = NAME_FIELDS
    revoke_url: str | None = None

    @classmethod
    def checked(cls, name: str, authorize_url: str, token_url: str,
                scopes: str | Iterable[str] | None = None, userinfo_url: str | None = None,
                name_fields: str | Iterable[str] | None = None,
                revoke_url: str | None = None, *, taken: Container[str] = ()
                ) -> CustomProvider:
        """A definition from what the user entered; every problem is said at once (a
        ValidationError whose ``where`` is the field's name). ``taken``: the ids of the
        built-in services, which a provider may not take."""
        problems: list[ValidationError] = []

        def check(where: str, value: Any, label: str, required: bool) -> str | None:
            try:
                return check_url(value, where, label, required=required)
            except ValidationError as exc:
                problems.append(exc)
                return None

        name = (name or "").strip().lower()
        if not name:
            problems.append(ValidationError("name", "give the provider a name, e.g. my-gitea"))
        elif not _NAME.match(name):
            problems.append(ValidationError("name", "use lowercase letters, digits and dashes "
                                                    "(up to 40), e.g. my-gitea"))
        elif name in taken:
            problems.append(ValidationError("name", f"“{name}” is the name of a built-in "
                                                    "service: choose another, e.g. "
                                                    f"my-{name}"))
        authorize = check("authorize_url", authorize_url, "authorize URL", True)
        token = check("token_url", token_url, "token URL", True)
        userinfo = check("userinfo_url", userinfo_url, "user-info URL", False)
        revoke = check("revoke_url", revoke_url, "revoke URL", False)
        fields = split_words(name_fields) or NAME_FIELDS
        odd = [f for f in fields if not _FIELD.match(f)]
        if odd:
            problems.append(ValidationError("name_fields", f"{odd[0]!r} is not a field name: "
                                                           "write names such as login or "
                                                           "email, separated by spaces"))
        if problems:
            raise ValidationError.of(problems)
        assert authorize is not None and token is not None
        return cls(name, authorize, token, split_words(scopes), userinfo, fields, revoke)

    @property
    def host(self) -> str:
        return urlsplit(self.authorize_url).hostname or self.name

    def spec(self) -> OAuth2Spec:
        return OAuth2Spec(
            self.authorize_url, self.token_url, self.scopes, revoke_url=self.revoke_url,
            userinfo=userinfo(self.userinfo_url, self.name_fields) if self.userinfo_url
            else None,
            client_help=f"(the custom provider “{self.name}” at {self.host})")

    def service(self) -> Service:
        """The provider as a service without triggers or reactions: what accounts need."""
        return Service(self.name, self.name, f"Custom OAuth 2 provider at {self.host}.",
                       auth=AuthKind.OAUTH2, oauth=self.spec())

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "authorize_url": self.authorize_url,
                "token_url": self.token_url, "scopes": list(self.scopes),
                "userinfo_url": self.userinfo_url, "name_fields": list(self.name_fields),
                "revoke_url": self.revoke_url, "redirect_uri": self.spec().redirect_uri()}


def userinfo(url: str, fields: Sequence[str]) -> UserInfo:
    """Names an account from ``url``'s JSON answer: the first of ``fields`` it has."""
    host = urlsplit(url).hostname or url

    async def who(http: HttpClient, token: str) -> str:
        resp = await http.get(url, headers={"Authorization": f"Bearer {token}",
                                            "Accept": "application/json"}, check=False)
        if resp.status in (401, 403):
            raise AuthError(f"{host} refused the new access token at the user-info URL "
                            f"(HTTP {resp.status}): check that the scopes allow reading "
                            "who you are")
        resp.raise_for_status()
        data = resp.json()
        if isinstance(data, Mapping):
            for name in fields:
                value = data.get(name)
                if isinstance(value, (str, int)) and not isinstance(value, bool) \
                        and str(value).strip():
                    return str(value)
        raise AuthError(f"the answer of {host}'s user-info URL has none of the fields "
                        f"{', '.join(fields)}: give the field that names the account")

    return who


def _provider(row: Row[Any]) -> CustomProvider:
    return CustomProvider(row.name, row.authorize_url, row.token_url,
                          tuple(row.scopes or ()), row.userinfo_url,
                          tuple(row.name_fields or ()) or NAME_FIELDS, row.revoke_url)


class CustomProviders:
    """The ``custom_oauth_providers`` table."""

    def __init__(self, db: AsyncEngine) -> None:
        self.db = db

    async def all(self) -> list[CustomProvider]:
        async with self.db.connect() as conn:
            rows = await conn.execute(select(providers_table))
            found = [_provider(r) for r in rows]
        # sorted here: a PostgreSQL database's collation may order names unlike SQLite
        return sorted(found, key=lambda p: p.name)

    async def get(self, name: str) -> CustomProvider | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(providers_table).where(
                providers_table.c.name == name))).first()
        return _provider(row) if row else None

    async def save(self, provider: CustomProvider) -> None:
        """Insert, or replace the definition of the same name."""
        values = {"authorize_url": provider.authorize_url, "token_url": provider.token_url,
                  "scopes": list(provider.scopes), "userinfo_url": provider.userinfo_url,
                  "name_fields": list(provider.name_fields),
                  "revoke_url": provider.revoke_url, "updated_at": utcnow()}
        async with self.db.begin() as conn:
            done = await conn.execute(update(providers_table).where(
                providers_table.c.name == provider.name).values(**values))
            if not done.rowcount:
                await conn.execute(providers_table.insert().values(
                    name=provider.name, created_at=utcnow(), **values))

    async def delete(self, name: str) -> None:
        """Forget the definition and its client id."""
        async with self.db.begin() as conn:
            await conn.execute(delete(providers_table).where(providers_table.c.name == name))
            await conn.execute(delete(oauth_clients).where(
                oauth_clients.c.service_id == name))


async def add_provider(accounts: Accounts, provider: CustomProvider, client_id: str,
                       client_secret: str | None = None) -> CustomProvider:
    """Keep ``provider`` and the user's OAuth app there (a definition of the same name is
    replaced; its accounts go on, with the new endpoints)."""
    if provider.name in accounts.registry.services:
        raise ValidationError("name", f"“{provider.name}” is the name of a built-in service: "
                                      f"choose another, e.g. my-{provider.name}")
    if not client_id.strip():
        raise ValidationError("client_id", "give the client ID of the OAuth app you "
                                           f"registered at {provider.host}")
    await accounts.custom.save(provider)
    await accounts.set_client(provider.name, client_id, client_secret)
    await accounts.reload()
    return provider


async def remove_provider(accounts: Accounts, name: str) -> CustomProvider:
    """Forget a provider that no account uses any more (with its client id and secret)."""
    from engine.auth.accounts import client_secret_ref

    provider = await accounts.custom.get(name)
    if provider is None:
        known = [p.name for p in await accounts.custom.all()]
        raise ConfigError(f"there is no custom provider {name!r}"
                          + (f" (there are: {', '.join(known)})" if known else
                             "; add one with `hookline accounts custom add NAME ...`"))
    using = await accounts.accounts(name)
    if using:
        names = ", ".join(f"{name}:{a.name}" for a in using)
        raise ConfigError(f"“{name}” still has {len(using)} account(s): remove them first "
                          f"(`hookline accounts remove {name}:{using[0].name}`; all: {names})")
    await accounts.custom.delete(name)
    await asyncio.to_thread(accounts.secrets.delete, client_secret_ref(name))
    return provider
