"""Connected accounts: a row each in the database, tokens only in the keyring (by
account id), the user's own OAuth clients, and one shared session per account."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from engine import bus as topics
from engine.auth import oauth
from engine.auth.custom import CustomProviders
from engine.auth.names import clean_name
from engine.auth.oauth import DEFAULT_TIMEOUT, Browser, OAuthClient, Show, system_browser
from engine.auth.relay import Relayed, Relays, SignedIn, loopback_redirect
from engine.auth.session import (
    API_KEY,
    NEEDS_RECONNECT,
    OAUTH2,
    OK,
    Account,
    AccountSession,
    MemoryKeeper,
    TokenKeeper,
)
from engine.bus import ACCOUNT_CHANGED as ACCOUNT_CHANGED
from engine.bus import ACCOUNT_NEEDS_RECONNECT as ACCOUNT_NEEDS_RECONNECT
from engine.bus import Bus
from engine.catalog.auth import TokenSet
from engine.catalog.service import Service
from engine.errors import AuthError, CatalogError, ConfigError, HooklineError, SecretError
from engine.http import HttpClient
from engine.registry import Registry
from engine.secrets import SecretStore
from engine.storage.schema import accounts as accounts_table
from engine.storage.schema import oauth_clients, utcnow

log = logging.getLogger(__name__)

class AccountNotFound(HooklineError):
    """No account matches what was asked for."""


@dataclass(frozen=True)
class Removal:
    """What removing an account did.

    Attributes:
        account: the account as it was.
        revoked: the provider confirmed that the access the user gave is revoked.
        note: one sentence for the user: what the provider did, or what is left to do.
    """

    account: Account
    revoked: bool
    note: str


def _where(service: Service) -> str:
    """Where the user ends an app's access by hand."""
    spec = service.oauth
    return (f"at {spec.apps_url}" if spec and spec.apps_url
            else f"in your {service.name} account's settings, under connected apps")


def _can_revoke(service: Service) -> bool:
    return bool(service.oauth and (service.oauth.revoke or service.oauth.revoke_url))


def _removal_note(service: Service | None, account: Account, revoked: bool) -> str:
    if service is None:
        return ""
    if account.kind != OAUTH2:
        return f"{service.name} still accepts the token you pasted until you revoke it there."
    if revoked:
        return f"{service.name} confirmed that the access you gave is revoked."
    return _unrevoked_note(service, "the access you gave", end="it")


def _unrevoked_note(service: Service, what: str, *, end: str = "", after: str = "") -> str:
    """Where to end by hand the access ``what`` names, which Hookline could not revoke."""
    if _can_revoke(service):
        return (f"{service.name} did not confirm that {what} is revoked: end it "
                f"{_where(service)}{after}.")
    return (f"{service.name} offers apps no way to revoke their access: end {end or what} "
            f"{_where(service)}{after}.")


def token_ref(account_id: str) -> str:
    return f"account/{account_id}/token"


def client_secret_ref(service_id: str) -> str:
    return f"oauth_client/{service_id}/secret"


def _account(row: Row[Any]) -> Account:
    # Cleaned on the way out too: a row kept before names were cleaned on the way in.
    return Account(row.id, row.service_id, row.kind, clean_name(row.name),
                   list(row.scopes or []),
                   row.status, row.created_at, row.last_refresh_at, row.last_error)


class AccountStore:
    """The ``accounts`` and ``oauth_clients`` tables."""

    def __init__(self, db: AsyncEngine) -> None:
        self.db = db

    async def accounts(self, service_id: str | None = None) -> list[Account]:
        query = select(accounts_table)
        if service_id:
            query = query.where(accounts_table.c.service_id == service_id)
        async with self.db.connect() as conn:
            found = [_account(r) for r in await conn.execute(query)]
        # sorted here: a PostgreSQL database's collation may order names unlike SQLite
        return sorted(found, key=lambda a: (a.service_id, a.name))

    async def get(self, account_id: str) -> Account | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(accounts_table).where(
                accounts_table.c.id == account_id))).first()
        return _account(row) if row else None

    async def find(self, ref: str, service_id: str | None = None) -> Account:
        """An account by id, id prefix (4+ characters), ``service:name`` or name."""
        every = await self.accounts()
        candidates = [a for a in every if service_id is None or a.service_id == service_id]
        for test in (lambda a: a.id == ref,
                     lambda a: len(ref) >= 4 and a.id.startswith(ref),
                     lambda a: f"{a.service_id}:{a.name}" == ref,
                     lambda a: a.name == ref,
                     lambda a: a.name.casefold() == ref.casefold()):
            found = [a for a in candidates if test(a)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise AccountNotFound(f"{len(found)} accounts match {ref!r}: write "
                                      "SERVICE:NAME or the id instead")
        names = [f"{a.service_id}:{a.name}" for a in candidates]
        raise AccountNotFound(CatalogError.unknown("account", ref, names).args[0])

    async def by_name(self, service_id: str, name: str) -> Account | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(accounts_table).where(
                accounts_table.c.service_id == service_id,
                accounts_table.c.name == name))).first()
        return _account(row) if row else None

    async def save(self, account: Account) -> Account:
        """Insert, or update the row with the same id."""
        values = {"service_id": account.service_id, "kind": account.kind,
                  "name": account.name, "scopes": list(account.scopes),
                  "status": account.status, "last_refresh_at": account.last_refresh_at,
                  "last_error": account.last_error}
        async with self.db.begin() as conn:
            done = await conn.execute(update(accounts_table).where(
                accounts_table.c.id == account.id).values(**values))
            if not done.rowcount:
                await conn.execute(accounts_table.insert().values(
                    id=account.id, created_at=account.created_at or utcnow(), **values))
        saved = await self.get(account.id)
        assert saved is not None
        return saved

    async def set_status(self, account_id: str, status: str, error: str | None) -> None:
        async with self.db.begin() as conn:
            await conn.execute(update(accounts_table).where(
                accounts_table.c.id == account_id).values(status=status, last_error=error))

    async def refreshed(self, account_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(update(accounts_table).where(
                accounts_table.c.id == account_id).values(
                last_refresh_at=utcnow(), status=OK, last_error=None))

    async def delete(self, account_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(accounts_table).where(
                accounts_table.c.id == account_id))

    async def client_id(self, service_id: str) -> str | None:
        async with self.db.connect() as conn:
            return await conn.scalar(select(oauth_clients.c.client_id).where(
                oauth_clients.c.service_id == service_id))

    async def set_client_id(self, service_id: str, client_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(oauth_clients).where(
                oauth_clients.c.service_id == service_id))
            await conn.execute(oauth_clients.insert().values(
                service_id=service_id, client_id=client_id, updated_at=utcnow()))


class Accounts:
    """Connecting, using and removing accounts.

    Args:
        db: the engine's database.
        secrets: the keyring, where tokens and client secrets live.
        http: the shared client (token endpoint, user info, API calls).
        bus: ``account.needs_reconnect``, ``account.changed`` and notifications go here.
        registry: the services (their OAuth and token declarations).
    """

    def __init__(self, db: AsyncEngine, secrets: SecretStore, http: HttpClient, bus: Bus,
                 registry: Registry) -> None:
        self.store = AccountStore(db)
        self.custom = CustomProviders(db)
        self.secrets = secrets
        self.http = http
        self.bus = bus
        self.registry = registry
        self._sessions: dict[str, AccountSession] = {}
        self._opening = asyncio.Lock()
        #: Sign-ins begun for windows on other computers (relay.py).
        self.relays = Relays()

    # ------------------------------------------------------------------ reading

    async def accounts(self, service_id: str | None = None) -> list[Account]:
        return await self.store.accounts(service_id)

    async def find(self, ref: str, service_id: str | None = None) -> Account:
        return await self.store.find(ref, service_id)

    async def session(self, account_id: str) -> AccountSession:
        """The account's one shared session (AuthError if it no longer exists)."""
        async with self._opening:
            session = self._sessions.get(account_id)
            if session is None:
                account = await self.store.get(account_id)
                if account is None:
                    raise AuthError("the account this area used was removed: choose another "
                                    "account in the area")
                service = await self.service(account.service_id)
                session = AccountSession(account, service, self.http, self)
                self._sessions[account_id] = session
            return session

    async def reload(self) -> None:
        """Re-read every open session's account (changed by another process)."""
        for account_id, session in list(self._sessions.items()):
            account = await self.store.get(account_id)
            if account is not None and account.service_id not in self.registry.services:
                provider = await self.custom.get(account.service_id)  # its endpoints may
                if provider is not None:  # have changed
                    session.service = provider.service()
            await session.reload(account)
            if account is None:
                del self._sessions[account_id]

    async def service(self, service_id: str) -> Service:
        """A registered service, or a custom OAuth 2 provider's (CatalogError: neither)."""
        service = self.registry.services.get(service_id)
        if service is not None:
            return service
        provider = await self.custom.get(service_id)
        if provider is None:
            known = [*self.registry.services, *(p.name for p in await self.custom.all())]
            raise CatalogError.unknown("service", service_id, known)
        return provider.service()

    async def _known_service(self, service_id: str) -> Service | None:
        try:
            return await self.service(service_id)
        except CatalogError:
            return None

    # ------------------------------------------------------------------ clients

    async def set_client(self, service_id: str, client_id: str,
                         client_secret: str | None = None) -> None:
        """The user's own OAuth app for ``service_id`` (its secret goes to the keyring)."""
        service = await self._oauth_service(service_id)
        assert service.oauth is not None
        client_id = client_id.strip()
        if not client_id:
            raise ConfigError("give the OAuth app's client ID")
        if service.oauth.client_secret_required and not client_secret:
            raise ConfigError(f"{service.name} also needs the OAuth app's client secret")
        if client_secret:
            await asyncio.to_thread(self.secrets.set, client_secret_ref(service_id),
                                    client_secret)
        else:
            await asyncio.to_thread(self.secrets.delete, client_secret_ref(service_id))
        await self.store.set_client_id(service_id, client_id)

    async def oauth_client(self, service_id: str) -> OAuthClient:
        service = await self._oauth_service(service_id)
        assert service.oauth is not None
        client_id = await self.store.client_id(service_id)
        secret = await asyncio.to_thread(self.secrets.get, client_secret_ref(service_id))
        if not client_id or (service.oauth.client_secret_required and not secret):
            raise AuthError(self.client_missing(service))
        return OAuthClient(client_id, secret)

    @staticmethod
    def client_missing(service: Service) -> str:
        assert service.oauth is not None
        secret = " and its client secret" if service.oauth.client_secret_required else ""
        help_ = f" {service.oauth.client_help}" if service.oauth.client_help else ""
        return (f"{service.name} has no OAuth app set up yet. Register your own app at the "
                f"provider with the redirect URI {service.oauth.redirect_uri()}{help_}, then "
                f"give Hookline its client ID{secret}: `hookline accounts client "
                f"{service.id} CLIENT_ID`")

    async def _oauth_service(self, service_id: str) -> Service:
        service = await self.service(service_id)
        if service.oauth is None:
            how = (f": add a {service.api_key.label} with `hookline accounts token "
                   f"{service.id}`" if service.api_key else "")
            raise ConfigError(f"{service.name} does not connect through OAuth{how}")
        return service

    # ------------------------------------------------------------------ connecting

    async def connect(self, service_id: str, *, browser: Browser = system_browser,
                      show: Show | None = None, timeout: float = DEFAULT_TIMEOUT) -> Account:
        """Sign in through the browser; the account is named by the provider. Connecting
        an account that is already there reconnects it (new tokens, status ok) and revokes
        the grant it replaces. The browser's page says "Connected" only once the account
        is kept; a sign-in that fails after its code was exchanged revokes its grant, and
        the error says so (or where to end it by hand)."""
        service = await self._oauth_service(service_id)
        spec = service.oauth
        assert spec is not None
        client = await self.oauth_client(service_id)
        async with oauth.SignIn(spec, client, self.http, browser=browser, show=show,
                                timeout=timeout) as sign_in:
            tokens = await sign_in.tokens()
            signed = await self._finish_sign_in(service, tokens)
            sign_in.connected(signed.said)
        return signed.account

    async def sign_in_place(self, service_id: str) -> tuple[str, int | None]:
        """Where a window on another computer listens for the browser's answer: the
        loopback host, and the port when the provider fixes it. Raises what
        :meth:`connect` would before the browser opens (no OAuth, no OAuth app)."""
        service = await self._oauth_service(service_id)
        assert service.oauth is not None
        await self.oauth_client(service_id)
        return service.oauth.loopback_host, service.oauth.fixed_port

    async def begin_sign_in(self, service_id: str, redirect_uri: str,
                            wait: float = DEFAULT_TIMEOUT) -> Relayed:
        """Begin a sign-in whose browser and redirect listener are on another computer,
        answered at ``redirect_uri`` there within ``wait`` seconds (relay.py): its URL
        and state go there, its verifier and the OAuth app stay here until
        :meth:`finish_sign_in`."""
        service = await self._oauth_service(service_id)
        assert service.oauth is not None
        client = await self.oauth_client(service_id)
        begun = oauth.begin(service.oauth,
                            client, loopback_redirect(service.oauth, redirect_uri))
        return self.relays.keep(service_id, begun, wait)

    async def finish_sign_in(self, sign_in: str, answer: dict[str, str]) -> SignedIn:
        """Exchange the answer a window forwarded for a sign-in :meth:`begin_sign_in`
        began (once), and keep the account as :meth:`connect` does."""
        service_id, begun = self.relays.take(sign_in)
        service = await self._oauth_service(service_id)
        assert service.oauth is not None
        client = await self.oauth_client(service_id)
        tokens = await oauth.exchange(service.oauth, client, self.http, begun, answer)
        return await self._finish_sign_in(service, tokens)

    def abandon_sign_in(self, sign_in: str) -> None:
        """Forget a sign-in begun for a window that gave up on it."""
        self.relays.drop(sign_in)

    async def _finish_sign_in(self, service: Service, tokens: TokenSet) -> SignedIn:
        """Name and keep the account of fresh tokens; on any failure their grant is
        revoked (it would otherwise stay alive at the provider, kept by nobody)."""
        spec = service.oauth
        assert spec is not None
        failed = f"{service.name} did not say which account signed in"
        try:
            name = (clean_name(await spec.userinfo(self.http, tokens.access_token))
                    if spec.userinfo else "") or service.name
            failed = f"Hookline could not keep the {service.name} account"
            account, note = await self._keep(service, OAUTH2, name, list(spec.scopes),
                                             tokens)
            return SignedIn(account, f"Hookline can now act as your {service.name} "
                                     f"account “{account.name}”." + (f" {note}" if note
                                                                     else ""))
        except Exception as exc:
            note = await self._abandon(service, tokens)
            if not isinstance(exc, HooklineError):  # a bug: its traceback is worth more
                log.warning("connecting a %s account failed after the sign-in. %s",
                            service.name, note)
                raise
            raise AuthError(f"{failed}, so nothing was connected: {str(exc).rstrip('.')}. "
                            f"{note}") from None

    async def _abandon(self, service: Service, tokens: TokenSet) -> str:
        """Revoke the grant of a sign-in that connected nothing; the note says how it went."""
        spec = service.oauth
        if spec is not None and _can_revoke(service) and not spec.revokes_one_sign_in:
            try:
                connected = any(a.kind == OAUTH2 for a in await self.store.accounts(service.id))
            except HooklineError:
                connected = True  # cannot tell: do not risk ending their access
            if connected:  # revoking would end their access too
                return (f"Hookline did not revoke the access you just gave, as "
                        f"{service.name} would end your connected account's access with "
                        f"it; it is listed {_where(service)}.")
        pending = Account("abandoned-sign-in", service.id, OAUTH2, service.name, [])
        if await self._revoke(service, pending, tokens):
            return "Hookline revoked the access you just gave."
        return _unrevoked_note(service, "the access you just gave")

    async def add_token(self, service_id: str, token: str, name: str | None = None
                        ) -> Account:
        """Keep a personal access token (checked against the provider when it can say
        whose it is)."""
        service = await self.service(service_id)
        if service.api_key is None:
            raise ConfigError(f"{service.name} does not take a pasted token"
                              + (f": connect it with `hookline accounts connect {service_id}`"
                                 if service.oauth else ""))
        token = token.strip()
        if not token:
            raise ConfigError(f"the {service.api_key.label} is empty")
        if service.api_key.userinfo is not None:
            try:
                name = await service.api_key.userinfo(self.http, token)
            except AuthError:
                raise AuthError(f"{service.name} refused this {service.api_key.label}: check "
                                "that it is complete, not expired, and has the needed "
                                "permissions") from None
        name = clean_name(name or "")
        if not name:
            raise ConfigError("give the account a name (--name)")
        return (await self._keep(service, API_KEY, name, [], TokenSet(token)))[0]

    async def _keep(self, service: Service, kind: str, name: str, scopes: list[str],
                    tokens: TokenSet) -> tuple[Account, str]:
        """Save the account and its tokens; an account of the same name is replaced and
        the grant it had revoked. Returns the account and a note for the user ("" when
        there is nothing left for them to do)."""
        existing = await self.store.by_name(service.id, name)
        previous = await self._tokens_of(existing)
        account = Account(existing.id if existing else str(uuid.uuid4()), service.id, kind,
                          name, scopes, OK, existing.created_at if existing else None,
                          utcnow(), None)
        await asyncio.to_thread(self.secrets.set, token_ref(account.id), tokens.to_json())
        try:
            account = await self.store.save(account)
        except Exception:
            if previous is not None:  # the account goes on as it was
                await asyncio.to_thread(self.secrets.set, token_ref(account.id),
                                        previous.to_json())
            else:
                await asyncio.to_thread(self.secrets.delete, token_ref(account.id))
            raise
        session = self._sessions.get(account.id)
        if session is not None:
            await session.reload(account)
        note = (await self._replace(service, existing, previous, tokens)
                if existing is not None else "")
        change = "reconnected" if existing else "connected"
        self.bus.publish(ACCOUNT_CHANGED, account_id=account.id, service_id=service.id,
                         name=name, change=change, note=note)
        if note:
            self.bus.publish(topics.NOTIFICATION,
                             title=f"{service.name} account “{name}” {change}", body=note,
                             level="warning")
        log.info("%s account %r %s", service.name, name, change)
        return account, note

    async def _tokens_of(self, account: Account | None) -> TokenSet | None:
        if account is None:
            return None
        try:
            return await self.load_tokens(account.id)
        except SecretError:  # damaged: nothing to restore or revoke
            return None

    async def _replace(self, service: Service, replaced: Account,
                       previous: TokenSet | None, tokens: TokenSet) -> str:
        """Revoke the grant a reconnect replaced; the note says what is left to do."""
        if previous is None or previous.access_token == tokens.access_token or (
                previous.refresh_token and previous.refresh_token == tokens.refresh_token):
            return ""  # nothing, or the very grant just kept
        if replaced.kind != OAUTH2:
            return (f"{service.name} still accepts the token you pasted before until you "
                    "revoke it there.")
        spec = service.oauth
        if spec is None or (_can_revoke(service) and not spec.revokes_one_sign_in):
            return ""  # one grant for every sign-in: revoking it would end the new one
        if await self._revoke(service, replaced, previous):
            return ""
        return _unrevoked_note(service, "the access your earlier sign-in gave",
                               after=" (if that ends this connection too, connect again)")

    async def remove(self, account_id: str) -> Removal:
        """Forget the account: revoke its grant where the provider allows, delete its
        tokens from the keyring and its row; the result says what the provider did."""
        account = await self.store.get(account_id)
        if account is None:
            raise AccountNotFound(f"no account {account_id!r}")
        service = await self._known_service(account.service_id)
        revoked = False
        if service is not None and account.kind == OAUTH2:
            revoked = await self._revoke(service, account)
        await asyncio.to_thread(self.secrets.delete, token_ref(account_id))
        await self.store.delete(account_id)
        session = self._sessions.pop(account_id, None)
        if session is not None:
            await session.reload(None)
        self.bus.publish(ACCOUNT_CHANGED, account_id=account_id, service_id=account.service_id,
                         name=account.name, change="removed")
        return Removal(account, revoked, _removal_note(service, account, revoked))

    async def _revoke(self, service: Service, account: Account,
                      held: TokenSet | None = None) -> bool:
        """Best effort: a provider that cannot be reached or refuses never stops what
        called this (the note then says where to end the access by hand). ``held``: the
        tokens of a grant no account keeps now, else the account's own."""
        spec = service.oauth
        if spec is None or not _can_revoke(service):
            return False
        try:
            client = await self.oauth_client(service.id)
            keeper: TokenKeeper = (self if held is None
                                   else MemoryKeeper(held, self.oauth_client))
            session = (await self.session(account.id) if held is None
                       else AccountSession(replace(account, status=OK), service, self.http,
                                           keeper))
            if spec.revoke is not None:
                return await spec.revoke(session, client)
            if spec.revoke_token == "access_token":  # noqa: S105 - a token type's name
                await session.token()  # a live one: an expired token cannot be revoked
            tokens = await keeper.load_tokens(account.id)
            return tokens is not None and await oauth.revoke(spec, client, self.http, tokens)
        except HooklineError as exc:
            log.info("could not revoke the %s account's grant: %s", service.name, exc)
        except Exception:  # a service's own revoke call failing must not stop the caller
            log.warning("revoking the %s account's grant failed", service.name, exc_info=True)
        return False

    # ------------------------------------------------------------------ TokenKeeper

    async def account(self, account_id: str) -> Account | None:
        return await self.store.get(account_id)

    async def load_tokens(self, account_id: str) -> TokenSet | None:
        text = await asyncio.to_thread(self.secrets.get, token_ref(account_id))
        if text is None:
            return None
        try:
            return TokenSet.from_json(text)
        except (ValueError, KeyError, TypeError):
            raise SecretError(f"the saved token of account {account_id} is damaged: "
                              "reconnect the account") from None

    async def save_tokens(self, account: Account, tokens: TokenSet) -> None:
        await asyncio.to_thread(self.secrets.set, token_ref(account.id), tokens.to_json())
        await self.store.refreshed(account.id)

    async def mark_needs_reconnect(self, account: Account, reason: str) -> None:
        await self.store.set_status(account.id, NEEDS_RECONNECT, reason)
        service = await self._known_service(account.service_id)
        label = service.name if service else account.service_id
        log.warning("%s account %r needs reconnecting: %s", label, account.name, reason)
        self.bus.publish(ACCOUNT_NEEDS_RECONNECT, account_id=account.id,
                         service_id=account.service_id, name=account.name, error=reason)
        self.bus.publish(topics.NOTIFICATION,
                         title=f"Reconnect your {label} account “{account.name}”",
                         body=f"Hookline can no longer act as it: {reason}. Its areas fail "
                              "until you reconnect it.", level="error")
