"""``hookline pair`` (on the engine's computer) and ``hookline remote`` (on a client).

Declared here, beside the machinery, and imported only when the full parser is built
(``engine/cli.py``): ``hookline --version`` loads none of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.auth.cli import add_sign_in_arguments
from engine.errors import HooklineError

#: What ``hookline remote status`` says of another engine's role (engine/standby.py).
ROLE_SAID = {"active": "it is active", "standby": "it stands by",
             "fenced": "it lost the database's lease and stands by until it starts again"}


def add_parser(sub: Any) -> None:
    """``pair`` and ``remote`` on the ``hookline`` command line."""
    pair = sub.add_parser("pair", help="let another computer control this Hookline: print a "
                                       "one-time code to type there (or list, revoke)")
    group = pair.add_mutually_exclusive_group()
    group.add_argument("--list", action="store_true", help="the paired computers")
    group.add_argument("--revoke", metavar="CLIENT",
                       help="unpair a computer (id, id prefix or name): its next request "
                            "is refused")
    group.add_argument("--standby", action="store_true",
                       help="a code for a standby engine on another computer (`hookline "
                            "standby join` there): it copies this engine's secrets while it "
                            "stands by, and can do nothing else")
    pair.add_argument("--json", action="store_true")

    remote = sub.add_parser("remote", help="control Hookline on another computer from this "
                                           "one (connect with the code `hookline pair` "
                                           "printed there)")
    rsub = remote.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = rsub.add_parser("connect", help="pair with Hookline on another computer")
    p.add_argument("host", help="its name or address, with :PORT unless it is 8789")
    p.add_argument("code", help="the code `hookline pair` printed there")
    p.add_argument("--name", help="what that computer lists this one as "
                                  "(default: user@this computer)")
    rsub.add_parser("status", help="which computer this one controls, and whether it answers")
    rsub.add_parser("forget", help="stop controlling it (unpairs this computer there too "
                                   "when it answers)")
    p = rsub.add_parser("areas", help="its automations: list them, or turn one on or off, "
                                      "or run it once now")
    p.add_argument("act", nargs="?", default="list", choices=AREA_ACTIONS, metavar="ACTION",
                   help=", ".join(AREA_ACTIONS) + " (default: list)")
    p.add_argument("area", nargs="?", help="id, id prefix or name (not for list)")
    p = rsub.add_parser("accounts", help="its connected accounts: list them, or connect one "
                                         "by signing in in this computer's browser")
    asub = p.add_subparsers(dest="accounts_action", metavar="ACTION")
    asub.add_parser("list", help="its connected accounts and their state")
    add_sign_in_arguments(asub.add_parser(
        "connect", help="sign in to a service in this computer's browser; the account is "
                        "kept there (its OAuth app's secret never comes here)"))


AREA_ACTIONS = ("list", "enable", "disable", "run")
#: Makes one call there: ``await call("snapshot")``.
Call = Callable[..., Awaitable[Any]]


async def main(args: argparse.Namespace, data_dir: Path) -> int:
    if args.command == "pair":
        return await cmd_pair(args, data_dir)
    return await cmd_remote(args, data_dir)


async def cmd_pair(args: argparse.Namespace, data_dir: Path) -> int:
    """Through the running engine (its control channel) or, when none runs, on the
    data folder's database: the same codes and clients either way."""
    from engine.cli import Session
    from engine.remote.pairing import Pairing
    from engine.remote.site import offer

    async with Session(data_dir).open() as s:
        async def command(name: str, body: dict[str, Any] | None = None) -> Any:
            if s.remote is not None:
                return (await s.remote.call("POST", f"/command/remote.{name}", body or {})
                        )["result"]
            assert s.local is not None
            pairing = Pairing(s.local.db)
            if name == "pair":
                return await offer(pairing, s.local, (body or {}).get("kind") or "window")
            if name == "clients":
                return [c.to_dict() for c in await pairing.clients()]
            return (await pairing.revoke(str((body or {})["client"]))).to_dict()

        if args.list:
            clients = await command("clients")
            if args.json:
                print(json.dumps(clients, indent=2))
            elif not clients:
                print("No computer is paired. `hookline pair` gives a code to pair one.")
            for c in [] if args.json else clients:
                seen = _local(c["last_seen_at"]) if c["last_seen_at"] else "never"
                expired = " (expired: unused too long; pair it again)" if c["expired"] else ""
                print(f"{c['id'][:8]}  {c.get('kind', 'window'):6}  {c['name'][:40]:40} "
                      f"paired {_local(c['created_at'])}"
                      f", last seen {seen}{expired}")
            return 0
        if args.revoke:
            gone = await command("revoke", {"client": args.revoke})
            print(f"unpaired {gone['id'][:8]} ({gone['name']}): its next request is refused")
            return 0
        offered = await command("pair", {"kind": "engine" if args.standby else "window"})
    if args.json:
        print(json.dumps(offered, indent=2))
        return 0
    from engine.remote.tls import spaced

    port = offered["port"]
    first = offered["addresses"][0]
    where = first if port == 8789 else f"{first}:{port}"
    print(f"Pairing code: {offered['code']}  (works once, until "
          f"{_local(offered['expires_at'])})")
    if args.standby:
        print("On the standby engine's computer (it then copies this engine's secrets "
              "while it stands by):")
        print(f"  hookline standby join {where} {offered['code']}")
    else:
        print("On the other computer: Hookline → Connect to another computer…, or")
        print(f"  hookline remote connect {where} {offered['code']}")
    print(f"This computer's addresses: {', '.join(offered['addresses'])} (port {port})")
    print(f"Certificate fingerprint: {spaced(offered['fingerprint'])}")
    if not offered["open"]:
        print("The remote channel is off: start Hookline with `hookline serve --remote`, "
              "or `hookline settings set remote_enabled true` and restart it.")
    return 0


def _local(at: str) -> str:
    return f"{datetime.fromisoformat(at).astimezone():%Y-%m-%d %H:%M}"


def host_and_port(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    from engine.remote.client import DEFAULT_PORT

    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or (port and not port.isdigit()) or not 0 < int(port or DEFAULT_PORT) < 65536:
        raise HooklineError(f"{text!r} is not an address: give HOST or HOST:PORT")
    return host, int(port or DEFAULT_PORT)


async def cmd_remote(args: argparse.Namespace, data_dir: Path) -> int:
    from engine.remote.client import RemoteTarget, ask, followed, pair, role_at
    from engine.remote.site import HELLO, UNPAIR
    from engine.remote.tls import spaced
    from engine.secrets import secret_store_of

    secrets = secret_store_of(data_dir)
    if args.action == "connect":
        host, port = host_and_port(args.host)
        name = args.name or f"{getpass.getuser()}@{socket.gethostname()}"
        target, token = await pair(host, port, args.code, client_name=name)
        target.save(secrets, token, data_dir=data_dir)
        print(f"Connected to {target.name} at {host}:{port}; this computer is "
              f"{target.client_id[:8]} there.")
        print(f"Certificate fingerprint (pinned): {spaced(target.fingerprint)}")
        return 0
    saved = RemoteTarget.load(data_dir)
    if saved is None:
        print("Not connected to another computer. `hookline remote connect HOST CODE` "
              "pairs with one.")
        return 1 if args.action == "status" else 0
    token = saved.token(secrets) or ""
    target = saved
    if args.action != "forget":  # (forget unpairs the one it was paired with)
        target, moved = await followed(saved, token)
        if target != saved:
            target.save(secrets, data_dir=data_dir)
        if moved:
            print(f"Moved: {moved}.")
    if args.action == "areas":
        return await remote_areas(target, token, args)
    if args.action == "accounts":
        return await remote_accounts(target, token, args)
    method, path = ("GET", HELLO) if args.action == "status" else ("POST", UNPAIR)
    answered = await ask(target, token, method, path)
    if args.action == "forget":
        target.forget(secrets, data_dir=data_dir)
        note = ("" if answered == "answers" else
                f"; it {answered}, so unpair this computer there too: "
                f"`hookline pair --revoke {target.client_id[:8]}`")
        print(f"Forgot {target.name} at {target.host}:{target.port}{note}")
        return 0
    print(f"Connected to {target.name} at {target.host}:{target.port} (this computer is "
          f"{target.client_id[:8]} there): it {answered}.")
    print(f"Certificate fingerprint (pinned): {spaced(target.fingerprint)}")
    others = [s for s in target.also if s.addresses]
    roles = await asyncio.gather(*(role_at(target.moved_to(s, s.addresses[0]), token)
                                   for s in others))
    for site, role in zip(others, roles, strict=True):
        said = ROLE_SAID.get(role, f"it says {role}") if role else "no answer"
        print(f"Also on its database (followed if it takes over): {site.name} at "
              f"{site.addresses[0]}:{site.port}: {said}.")
    return 0 if answered == "answers" else 1


@contextlib.asynccontextmanager
async def calling(target: Any, token: str) -> AsyncIterator[Call]:
    """The engine there, as a function making the desktop app's calls (``/rpc/...``);
    what cannot reach it, or a certificate other than the pinned one, said plainly."""
    import aiohttp

    from engine import rpc
    from engine.remote.errors import RemoteError

    try:
        async with target.session(token) as session:

            async def call(name: str, **arguments: Any) -> Any:
                async with session.post(f"/rpc/{name}", json=rpc.encode(arguments)) as resp:
                    body = await resp.json()
                    if resp.status == 401:
                        raise RemoteError(f"{target.name} refused this computer: it was "
                                          "unpaired there. Connect again with a new code.")
                    if resp.status != 200:
                        raise rpc.error_from(resp.status, body)
                    return rpc.decode(body["result"])

            yield call
    except aiohttp.ServerFingerprintMismatch:
        raise RemoteError(f"{target.host}:{target.port} shows another certificate than the "
                          "one pinned at pairing: someone may be between, or Hookline there "
                          "was set up again (connect again)") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RemoteError(f"Cannot reach {target.name} at {target.host}:{target.port}: "
                          f"{exc or 'timed out'}") from None


async def remote_areas(target: Any, token: str, args: argparse.Namespace) -> int:
    """``hookline remote areas``: the same calls the desktop app makes (``/rpc/...``)."""
    async with calling(target, token) as call:
        areas = [held["area"] for held in (await call("snapshot"))["areas"]]
        if args.act == "list":
            for area in areas:
                state = "on" if area.state == "active" else area.state
                print(f"{area.id[:8]}  {state:7} {area.name[:40]:40} "
                      f"{area.spec.trigger.service}.{area.spec.trigger.action} -> "
                      + ", ".join(f"{r.service}.{r.action}" for r in area.spec.reactions))
            if not areas:
                print(f"{target.name} has no automations yet.")
            return 0
        chosen = [a for a in areas if a.id == args.area] or [
            a for a in areas if args.area and (a.id.startswith(args.area)
                                               or a.name == args.area)]
        if len(chosen) != 1:
            raise HooklineError(f"{'Several' if chosen else 'No'} automations on "
                                f"{target.name} match {args.area!r}: give more of its id "
                                "(`hookline remote areas` lists them).")
        area = chosen[0]
        if args.act == "run":
            events = await call("run_now", area_id=area.id)
            print(f"fired event {', '.join(str(e.id) for e in events)} on {target.name}")
        else:
            await call("set_enabled", area_id=area.id, enabled=args.act == "enable")
            print(f"{args.act}d {area.id[:8]} on {target.name}")
        return 0


async def remote_accounts(target: Any, token: str, args: argparse.Namespace) -> int:
    """``hookline remote accounts``: list them there, or sign in here and keep the
    account there (engine/auth/relay.py)."""
    from engine.auth import relay
    from engine.auth.cli import browser_options

    async with calling(target, token) as call:
        if args.accounts_action == "connect":
            service = args.service
            signed = await relay.sign_in_from_here(
                call, service, **browser_options(service, args.no_browser,
                                                 float(args.timeout)))
            account = signed.account
            print(f"connected {service} account “{account.name}” ({account.id[:8]}) on "
                  f"{target.name}; its tokens are in the keyring there")
            return 0
        accounts = await call("accounts.accounts")
        for account in accounts:
            print(f"{account.id[:8]}  {account.service_id:16} {account.name[:40]:40} "
                  f"{account.status}")
        if not accounts:
            print(f"{target.name} has no connected accounts yet. `hookline remote accounts "
                  "connect SERVICE` signs in to one from here.")
        return 0
