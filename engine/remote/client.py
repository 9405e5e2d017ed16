"""What a client of a remote engine keeps, and how it pairs with one.

The client (the desktop app's "Connect to another computer…", ``hookline remote
connect``) keeps one target: where the engine is and the fingerprint of its certificate
in ``remote.json`` in its own data folder (no secret in it), and its token in the
keyring (``remote/<client id>/token``). Every connection is pinned to the fingerprint
(``aiohttp.Fingerprint``): a certificate that differs, for whatever reason, is refused
before a byte of the request is sent, so no certificate authority is involved.

The target also keeps the other engines on the same database (``also``, from
``GET /remote/engines``: engine/remote/sites.py), each with its own fingerprint,
learnt over the pinned channel. When the engine stops answering or stands by,
:func:`active_elsewhere` asks those which one is active: the client follows a takeover
with the same token (the engines share the pairings).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import ssl
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from engine.paths import data_dir as default_data_dir
from engine.remote import codes
from engine.remote.errors import NotTheEngine, PairingRefused, RemoteError
from engine.remote.sites import ENGINES, Site
from engine.remote.tls import der_fingerprint
from engine.secrets import SecretStore
from engine.standby import ACTIVE

TARGET_FILE = "remote.json"
#: The engine's remote port unless the user chose another (the ``remote_port`` setting).
DEFAULT_PORT = 8789
CONNECT_TIMEOUT = 15.0
#: The bound on asking one address of another engine whether it is active (s).
ASK_ELSEWHERE = 5.0


def token_ref(client_id: str) -> str:
    """Where a client keeps its token in the keyring."""
    return f"remote/{client_id}/token"


@dataclass(frozen=True)
class RemoteTarget:
    """A remote engine this client is paired with.

    Attributes:
        host: the engine's host name or address, as the user typed it.
        port: the engine's remote port.
        fingerprint: SHA-256 of the engine's certificate (DER), hex, lower case.
        client_id: this client's pairing id (the engine knows it by this id).
        name: what to show: ``hookline@homeserver``, or the host.
        also: the other engines on its database, as it last said (followed when it
            stops answering or stands by).
    """

    host: str
    port: int
    fingerprint: str
    client_id: str
    name: str
    also: tuple[Site, ...] = ()

    @property
    def base_url(self) -> URL:
        """``https://host:port`` (an IPv6 address in brackets)."""
        return URL.build(scheme="https", host=self.host, port=self.port)

    def session(self, token: str, *,
                timeout: aiohttp.ClientTimeout | None = None) -> aiohttp.ClientSession:
        """A session on the engine: relative paths (``/rpc/...``), TLS pinned to the
        fingerprint, ``Authorization: Bearer <token>``. The caller closes it."""
        connector = aiohttp.TCPConnector(ssl=pinned(self.fingerprint))
        return aiohttp.ClientSession(
            self.base_url, connector=connector,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout or aiohttp.ClientTimeout(total=120, sock_connect=CONNECT_TIMEOUT))

    def token(self, secrets: SecretStore) -> str | None:
        """This client's token from the keyring (None: it is gone; pair again)."""
        return secrets.get(token_ref(self.client_id))

    def save(self, secrets: SecretStore, token: str | None = None, *,
             data_dir: Path | None = None) -> None:
        """Keep the target in ``remote.json`` (mode 0600, atomically) and ``token``, when
        given, in the keyring; the token first, so a saved target always has one."""
        if token is not None:
            secrets.set(token_ref(self.client_id), token)
        folder = data_dir or default_data_dir()
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".remote-", suffix=".json")
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(asdict(self), out, indent=2)  # (``also``: its sites' fields)
                out.write("\n")
            os.replace(tmp, folder / TARGET_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, data_dir: Path | None = None, file: str = TARGET_FILE
             ) -> RemoteTarget | None:
        """The saved target (in ``file``: a standby's peer is in another), or None when
        there is none."""
        path = (data_dir or default_data_dir()) / file
        try:
            raw: Any = json.loads(path.read_text(encoding="utf-8"))
            return cls(host=str(raw["host"]), port=int(raw["port"]),
                       fingerprint=str(raw["fingerprint"]).lower(),
                       client_id=str(raw["client_id"]), name=str(raw["name"]),
                       also=tuple(Site.from_dict(s) for s in raw.get("also") or ()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RemoteError(f"Cannot read {path}: {exc}. Connect again (it is replaced) "
                              "or delete the file.") from None

    def forget(self, secrets: SecretStore, *, data_dir: Path | None = None) -> None:
        """Drop the token from the keyring and the target file (the engine keeps the
        client listed until it is revoked there: ``hookline pair --revoke``)."""
        secrets.delete(token_ref(self.client_id))
        path = (data_dir or default_data_dir()) / TARGET_FILE
        with contextlib.suppress(FileNotFoundError):
            saved = RemoteTarget.load(data_dir)
            if saved is not None and saved.client_id == self.client_id:
                path.unlink()  # (it may have followed a takeover since: the same pairing)

    def moved_to(self, site: Site, host: str) -> RemoteTarget:
        """This pairing, on the engine of ``site`` reached at ``host``: the engine left
        behind joins the others."""
        left = Site(self.fingerprint, self.name, (self.host,), self.port)
        others = [s for s in self.also if s.fingerprint != site.fingerprint]
        return replace(self, host=host, port=site.port, fingerprint=site.fingerprint,
                       name=site.name, also=(left, *others))

    def knowing(self, engines: list[Site]) -> RemoteTarget:
        """This target, with ``engines`` (its engine's answer) as the others; the engine
        itself and sites with a bad fingerprint left out."""
        return replace(self, also=tuple(s for s in engines
                                        if s.fingerprint != self.fingerprint))


def pinned(fingerprint: str) -> aiohttp.Fingerprint:
    """aiohttp's check that the peer's certificate is exactly this one."""
    try:
        return aiohttp.Fingerprint(bytes.fromhex(fingerprint))
    except ValueError:
        raise RemoteError(f"{fingerprint!r} is not a SHA-256 fingerprint: connect "
                          "again") from None


async def peer_fingerprint(host: str, port: int, *, timeout: float = CONNECT_TIMEOUT) -> str:
    """The fingerprint of the certificate whoever answers at host:port shows (a TLS
    handshake and nothing else; unverified, which is what pairing then checks)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port, ssl=context)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise RemoteError(f"Cannot reach Hookline at {host}:{port}: {exc or 'no answer'}. "
                          "Is it running with the remote channel on (`hookline serve "
                          "--remote`), and does a firewall let the port through?") from None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if not der:
        raise RemoteError(f"{host}:{port} showed no certificate: it is not Hookline's "
                          "remote channel")
    return der_fingerprint(der)


async def ask(target: RemoteTarget, token: str, method: str, path: str, *,
              who: str = "this computer", again: str = "connect again") -> str:
    """One call on the engine ``target`` names (``/remote/hello``, ``/remote/unpair``):
    "answers", or what went wrong, in words (``who`` is the one that was paired, and
    ``again`` what it does to pair anew)."""
    try:
        async with target.session(token, timeout=aiohttp.ClientTimeout(total=15)) as session, \
                session.request(method, path) as resp:
            return (f"refused {who}: it was unpaired there" if resp.status == 401
                    else "answers" if resp.status == 200 else f"answered {resp.status}")
    except aiohttp.ServerFingerprintMismatch:
        return ("shows another certificate than the one pinned at pairing: someone may be "
                f"between, or Hookline there was set up again ({again})")
    except (aiohttp.ClientError, TimeoutError, RemoteError) as exc:
        return f"does not answer ({exc or 'timed out'})"


async def engines(target: RemoteTarget, token: str) -> list[Site]:
    """The engines on ``target``'s database, as it says (RemoteError: it cannot say)."""
    try:
        async with target.session(token, timeout=aiohttp.ClientTimeout(total=15)) as session, \
                session.get(ENGINES) as resp:
            if resp.status != 200:
                raise RemoteError(f"{target.name} answered {resp.status} to {ENGINES}")
            answer: Any = await resp.json()
        found = []
        for raw in answer["engines"]:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                found.append(Site.from_dict(raw))
        return found
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
        raise RemoteError(f"{target.name} could not say which engines share its "
                          f"database: {exc or type(exc).__name__}") from None


async def role_at(target: RemoteTarget, token: str, timeout: float = ASK_ELSEWHERE
                  ) -> str | None:
    """What the engine ``target`` names says it is (``active``, ``standby``, ``fenced``),
    over its pinned channel; None when it does not answer so, or refuses the token."""
    from engine.remote.site import HELLO

    try:
        async with target.session(token, timeout=aiohttp.ClientTimeout(
                total=timeout, sock_connect=timeout)) as session, session.get(HELLO) as resp:
            if resp.status != 200:
                return None
            answer: Any = await resp.json()
            role = answer.get("role")
            return str(role) if role else None
    except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError, RemoteError):
        return None


async def active_elsewhere(target: RemoteTarget, token: str,
                           timeout: float = ASK_ELSEWHERE) -> RemoteTarget | None:
    """The target moved to whichever other engine of ``target.also`` says it is active
    (each asked at its addresses in turn, the engines at once); None when none does."""

    async def ask_site(site: Site) -> RemoteTarget | None:
        for host in site.addresses:
            there = target.moved_to(site, host)
            role = await role_at(there, token, timeout)
            if role is not None:  # it answered: the other addresses are the same engine
                return there if role == ACTIVE else None
        return None

    for found in await asyncio.gather(*(ask_site(s) for s in target.also)):
        if found is not None:
            return found
    return None


async def followed(target: RemoteTarget, token: str) -> tuple[RemoteTarget, str | None]:
    """The target to use now (a command line's, once per command): ``target`` with the
    other engines as it says when it is active; else the engine of ``target.also`` that
    says it is active, with why it was left (None: not left)."""
    role = await role_at(target, token)
    if role == ACTIVE:
        with contextlib.suppress(RemoteError):
            return target.knowing(await engines(target, token)), None
        return target, None
    moved = await active_elsewhere(target, token)
    if moved is None:
        return target, None
    why = "stands by" if role is not None else "does not answer"
    return moved, (f"{target.name} at {target.host}:{target.port} {why}"
                   f"; {moved.name} at {moved.host}:{moved.port} is the active engine of "
                   "the same database now, and this computer follows it")


async def pair(host: str, port: int, code: str, *, client_name: str,
               kind: str = "window") -> tuple[RemoteTarget, str]:
    """Pair with the engine at host:port with the code ``hookline pair`` printed there;
    the target (not saved yet) and this client's token. ``kind``: ``window``, or
    ``engine`` for a standby engine (a ``hookline pair --standby`` code).

    First contact: the certificate's fingerprint is read from a plain handshake, the
    code's proof for that fingerprint goes to the engine over a connection pinned to it,
    and the engine's proof in the answer is checked before the target is returned. The
    code itself is never sent (see ``engine/remote/codes.py`` for why this stops
    someone in between). Raises ``PairingRefused`` (wrong, used or expired code),
    ``NotTheEngine`` (the answer's proof is wrong) or ``RemoteError`` (unreachable).
    """
    if not codes.normalise(code):
        raise PairingRefused(f"{code!r} is not a pairing code: it has {codes.LENGTH} letters "
                             "and digits, like 7K3QD-M9XTA (run `hookline pair` on the "
                             "engine's computer)")
    fingerprint = await peer_fingerprint(host, port)
    key = await asyncio.to_thread(codes.code_key, code)
    target = RemoteTarget(host, port, fingerprint, "", host)
    body = {"name": client_name, "proof": codes.client_proof(key, fingerprint), "kind": kind}
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=pinned(fingerprint)),
                timeout=aiohttp.ClientTimeout(total=60, sock_connect=CONNECT_TIMEOUT)
        ) as session, session.post(target.base_url / "pair", json=body) as resp:
            if resp.status == 401:
                raise PairingRefused(
                    "The engine did not accept the code: it is used, expired (10 minutes) "
                    "or mistyped, or pairing is paused after many wrong codes. Run "
                    "`hookline pair` there for a new one.")
            if resp.status == 403:  # a right code for another kind of client
                raise PairingRefused(str((await resp.json()).get("error")))
            if resp.status != 200:
                raise RemoteError(f"{host}:{port} answered {resp.status} to pairing: is it "
                                  "Hookline's remote channel?")
            answer: Any = await resp.json()
    except aiohttp.ServerFingerprintMismatch:
        raise NotTheEngine(f"The certificate at {host}:{port} changed during pairing: "
                           "someone may be between this computer and it. Try again on a "
                           "network you trust.") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RemoteError(f"Cannot reach Hookline at {host}:{port}: {exc}") from None
    try:
        token, client_id = str(answer["token"]), str(answer["client_id"])
        name, proof = str(answer.get("name") or host), str(answer["proof"])
    except (KeyError, TypeError):
        raise RemoteError(f"{host}:{port} answered pairing with something else than "
                          "Hookline does") from None
    if not hmac.compare_digest(proof, codes.server_proof(key, fingerprint, token)):
        raise NotTheEngine(f"The computer at {host}:{port} could not prove it made this "
                           "code: someone may be between this computer and it. Nothing was "
                           "saved. Check the address, and pair on a network you trust.")
    return RemoteTarget(host, port, fingerprint, client_id, name), token
