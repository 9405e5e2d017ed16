"""The control channel's remote site: every route of the local one, over TLS, for
paired clients only.

It is a second site of the same aiohttp application as the local channel
(``ControlServer.open_site``), so whatever the control channel answers (the CLI's
routes, the desktop's ``/rpc/...``) is answered here too without being listed twice;
the channel's middleware hands every request that came over TLS to ``RemoteSite.gate``
instead of checking ``control.json``'s token, which is never accepted here. The gate:

- ``POST /pair`` with a valid proof of a pending code: the new client's token;
- ``GET /remote/hello`` and ``POST /remote/unpair`` with a paired client's token: the
  engine's name and role (active or standing by), or the client unpaired (``hookline
  remote status|forget``);
- ``GET /remote/engines`` with a window's token: where every engine on this database
  can be reached (engine/remote/sites.py), so the window follows a takeover;
- ``/peer/...`` for a standby engine's token only, and nothing else for it: the
  secrets it copies (engine/remote/peer.py); a window's token gets 403 there;
- any other request with a paired client's token: let through (``request[CLIENT]`` is
  the client's id), except ``/command/remote.*``: pairing is managed on the engine's
  own computer only;
- anything else (no token, a wrong, unknown or revoked one, a wrong, used or expired
  code, pairing paused after too many wrong codes): 401 ``{"error": "not authorised"}``
  and nothing else, so nobody learns which it was.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from engine.errors import ConfigError
from engine.remote import peer, sites
from engine.remote.pairing import ENGINE, KINDS, WINDOW, Pairing, WrongKind
from engine.remote.tls import Identity, identity, spaced
from engine.standby import ACTIVE
from engine.storage.schema import utcnow
from engine.trace import installation_id

if TYPE_CHECKING:
    from engine.app import Engine
    from engine.control import ControlServer

log = logging.getLogger(__name__)

#: The request key holding the paired client's id, for handlers that care.
CLIENT = web.RequestKey("hookline.remote_client", str)
#: Answered by the remote site only: who the engine is, to a paired client (a check
#: that the token still works), and a client unpairing itself.
HELLO = "/remote/hello"
UNPAIR = "/remote/unpair"
#: A pairing request is small: a name and a proof.
PAIR_BODY_LIMIT = 4096


def refused() -> web.Response:
    """The one answer to anyone not let in."""
    return web.json_response({"error": "not authorised"}, status=401)


def engine_name() -> str:
    """What a client shows for this engine: ``hookline@<host name>``."""
    return f"hookline@{socket.gethostname() or 'localhost'}"


class RemoteSite:
    """The TLS site of the control channel, its certificate and its pairing.

    Args:
        pairing: codes and paired clients.
        identity: the certificate the site serves (its fingerprint goes into proofs).

    Attributes:
        host: the address it listens on.
        port: the port it listens on (the chosen one when the setting is 0).
    """

    def __init__(self, pairing: Pairing, identity: Identity, host: str, port: int) -> None:
        self.pairing = pairing
        self.identity = identity
        self.host = host
        self.port = port
        #: what a standby engine copies from here (engine/remote/peer.py)
        self.secrets: peer.SecretSource | None = None
        #: the engine's role now (engine/standby.py: active, standby, fenced)
        self.role: Callable[[], str] = lambda: ACTIVE
        #: the engine's installation id (its row in engine_sites)
        self.installation = ""
        self._published: datetime | None = None

    @classmethod
    async def open(cls, engine: Engine, control: ControlServer, host: str,
                   port: int) -> RemoteSite:
        """Open the site on host:port (made the certificate first if there is none)."""
        made = identity(engine.data_dir, [host])
        site = cls(Pairing(engine.db), made, host, 0)
        site.secrets = peer.SecretSource(engine)
        site.role = lambda: engine.role
        site.installation = engine.store.installation or installation_id(engine.data_dir)
        control.remote_gate = site.gate
        try:
            site.port = await control.open_site(host, port, made.server_context())
        except OSError as exc:
            raise ConfigError(
                f"Cannot open the remote control channel on {host}:{port}: "
                f"{exc.strerror or exc}. Choose another port (`hookline settings set "
                "remote_port N`, or --remote-port) or turn it off (remote_enabled).") from None
        log.info("remote control channel on https://%s:%d for paired clients "
                 "(certificate fingerprint %s); `hookline pair` gives a code",
                 host, site.port, spaced(made.fingerprint))
        try:
            await site.publish()
        except SQLAlchemyError as exc:  # windows then cannot follow a takeover here
            log.warning("could not note this engine's remote address in the database: %s",
                        exc)
        return site

    def site(self) -> sites.Site:
        """Where clients reach this site, as the other engines' windows learn it."""
        return sites.Site(self.identity.fingerprint, engine_name(),
                          tuple(dict.fromkeys(self.addresses())), self.port)

    async def publish(self) -> None:
        """Keep this site in the database (at start, then once a day while answering)."""
        await sites.publish(self.pairing.db, self.installation, self.site())
        self._published = utcnow()

    async def gate(self, request: web.Request) -> web.StreamResponse | None:
        """None to let a paired client's request through; else the answer to it."""
        if request.path == "/pair":
            return await self._pair(request) if request.method == "POST" else refused()
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return refused()
        caller = await self.pairing.caller(token.strip())
        if caller is None:
            return refused()
        client_id = caller.id
        if request.path.startswith("/command/remote."):
            return web.json_response({"error": "pairing is managed on the engine's own "
                                               "computer (hookline pair)"}, status=403)
        if request.path == HELLO and request.method == "GET":
            return web.json_response({"name": engine_name(), "client_id": client_id,
                                      "role": self.role()})
        if request.path == sites.ENGINES and request.method == "GET" and caller.kind == WINDOW:
            return await self._engines()
        if request.path == UNPAIR and request.method == "POST":
            await self.pairing.revoke(client_id)
            return web.json_response({})
        if caller.kind == ENGINE or request.path.startswith(peer.PREFIX):
            return await peer.answer(self.secrets, request, caller)
        request[CLIENT] = client_id
        return None

    async def _engines(self) -> web.Response:
        if self._published is None or utcnow() - self._published >= sites.REFRESH_EVERY:
            await self.publish()  # (a long-running engine's row does not go stale)
        return web.json_response({"engines": [s.to_dict() for s in
                                               await sites.known(self.pairing.db)]})

    async def _pair(self, request: web.Request) -> web.Response:
        try:
            raw = await request.content.read(PAIR_BODY_LIMIT + 1)
            body: Any = json.loads(raw) if len(raw) <= PAIR_BODY_LIMIT else None
            proof, name = str(body["proof"]), str(body.get("name") or "")
            kind = str(body.get("kind") or WINDOW)
        except (ValueError, KeyError, TypeError):
            return refused()
        if kind not in KINDS:
            return refused()
        try:
            paired = await self.pairing.redeem(proof, self.identity.fingerprint,
                                               name or request.remote or "unnamed", kind)
        except WrongKind as exc:  # the right code: saying which kind it is tells nothing
            return web.json_response({"error": str(exc)}, status=403)
        if paired is None:
            return refused()
        from engine.remote import codes

        return web.json_response({
            "client_id": paired.client_id, "token": paired.token, "name": engine_name(),
            "proof": codes.server_proof(paired.key, self.identity.fingerprint, paired.token)})

    def addresses(self) -> list[str]:
        """Where a client may reach the site: the host, or with 0.0.0.0 this computer's
        name and addresses (loopback last)."""
        try:
            everywhere = not self.host or ipaddress.ip_address(self.host).is_unspecified
        except ValueError:  # a host name
            everywhere = False
        if not everywhere:
            return [self.host]
        import psutil  # here: only when someone asks

        found = [socket.gethostname()]
        loopback: list[str] = []
        for addrs in psutil.net_if_addrs().values():
            for addr in addrs:
                if addr.family == socket.AF_INET:
                    (loopback if addr.address.startswith("127.") else found).append(addr.address)
        return found + loopback

    def close(self) -> None:
        """The engine stops: a standby engine waiting for a change is answered now."""
        if self.secrets is not None:
            self.secrets.close()


async def offer(pairing: Pairing, engine: Engine, kind: str = WINDOW) -> dict[str, Any]:
    """A new pairing code (for a client of ``kind``) and what to type with it on the
    other computer: the addresses, port and the certificate's fingerprint (made now if
    there is none)."""
    settings, site = engine.settings, engine.remote
    issued = await pairing.issue(kind)
    if site is None:
        site = RemoteSite(pairing, identity(engine.data_dir, [settings.remote_host]),
                          settings.remote_host, settings.remote_port)
    return {"code": issued.code, "expires_at": issued.expires_at.isoformat(),
            "addresses": site.addresses(), "port": site.port,
            "fingerprint": site.identity.fingerprint, "open": engine.remote is not None,
            "kind": kind}


def control_commands(engine: Engine) -> dict[str, Any]:
    """``remote.pair``, ``remote.clients`` and ``remote.revoke`` on the local channel
    (``hookline pair`` while the engine runs; refused over the remote site)."""

    def pairing() -> Pairing:
        return engine.remote.pairing if engine.remote is not None else Pairing(engine.db)

    async def pair(body: dict[str, Any]) -> dict[str, Any]:
        return await offer(pairing(), engine, str(body.get("kind") or WINDOW))

    async def clients(_body: dict[str, Any]) -> list[dict[str, Any]]:
        return [c.to_dict() for c in await pairing().clients()]

    async def revoke(body: dict[str, Any]) -> dict[str, Any]:
        return (await pairing().revoke(str(body.get("client", "")))).to_dict()

    return {"remote.pair": pair, "remote.clients": clients, "remote.revoke": revoke}
