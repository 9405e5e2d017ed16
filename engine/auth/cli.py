"""``hookline accounts``: list, connect (sign in through the browser), add a token, set
up an OAuth app, remove."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from engine import bus as topics
from engine.auth import custom_cli
from engine.auth.accounts import Accounts
from engine.auth.names import clean_name
from engine.auth.oauth import DEFAULT_TIMEOUT, system_browser
from engine.bus import Bus
from engine.control import ControlClient
from engine.errors import ConfigError, HooklineError
from engine.http import HttpClient, OutboundGuard
from engine.lock import DataDirLock
from engine.registry import Registry
from engine.secrets import open_secret_store
from engine.settings import load_settings
from engine.storage.db import database_url, migrate, open_async
from engine.store import Store


def add_parser(sub: Any) -> None:
    """Add ``accounts`` to the ``hookline`` command's subparsers."""
    accounts = sub.add_parser("accounts", help="connected accounts: list, connect, token, "
                                               "client, custom, remove")
    asub = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    asub.add_parser("list", help="connected accounts and their state").add_argument(
        "--json", action="store_true")
    p = asub.add_parser("connect", help="sign in to a service in the browser (OAuth)")
    add_sign_in_arguments(p)
    p = asub.add_parser("token", help="add an account by its personal access token")
    p.add_argument("service")
    p.add_argument("--name", help="the account's name (when the service cannot tell)")
    p.add_argument("--stdin", action="store_true", help="read the token from standard input")
    p = asub.add_parser("client", help="use your own OAuth app (client ID, and secret)")
    p.add_argument("service")
    p.add_argument("client_id")
    p.add_argument("--stdin", action="store_true",
                   help="read the client secret from standard input")
    p = asub.add_parser("remove", help="forget an account and delete its tokens")
    p.add_argument("account", help="id, id prefix, SERVICE:NAME or name")
    custom_cli.add_parser(asub)


@contextlib.asynccontextmanager
async def _accounts(data_dir: Path) -> AsyncIterator[tuple[Accounts, Store]]:
    settings = load_settings(data_dir)
    url = database_url(data_dir, settings.database_url)
    await migrate(url)
    db = open_async(url)
    http = HttpClient(OutboundGuard(settings.allow_internal_targets))
    try:
        secrets = open_secret_store(data_dir, file_fallback=settings.secrets_file_fallback)
        yield Accounts(db, secrets, http, Bus(), Registry.load()), Store(db)
    finally:
        await http.aclose()
        await db.dispose()



def add_sign_in_arguments(parser: argparse.ArgumentParser) -> None:
    """The service, and how the browser is used, for a command that signs in."""
    parser.add_argument("service")
    parser.add_argument("--no-browser", action="store_true",
                        help="do not open a browser; only print the address to open")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for the sign-in (default 300)")


def browser_options(name: str, no_browser: bool, timeout: float) -> dict[str, Any]:
    """``browser``, ``show`` and ``timeout`` for a sign-in on the command line: the
    address is printed (and opened, unless ``no_browser``), and how long it waits."""

    def show(url: str, redirect_uri: str) -> None:
        print(f"Sign in to {name} in your browser"
              + (". Open this address:" if no_browser
                 else "; if it does not open, visit:"), flush=True)
        print(f"\n  {url}\n")
        wait = f"{timeout / 60:.0f} min" if timeout >= 60 else f"{timeout:g} s"
        print(f"Waiting for the answer at {redirect_uri} (up to {wait})…", flush=True)

    async def not_opened(_url: str) -> bool:
        return False

    return {"browser": not_opened if no_browser else system_browser, "show": show,
            "timeout": timeout}


async def _tell_engine(data_dir: Path) -> None:
    """A running engine re-reads its accounts (its sessions cache them)."""
    if DataDirLock(data_dir).held_elsewhere() and ControlClient.available(data_dir):
        try:
            await ControlClient(data_dir).call("POST", "/command/accounts.changed", {})
        except (HooklineError, OSError) as exc:
            print(f"(the running Hookline did not take the change: {exc}; restart it)")


@contextlib.contextmanager
def _notes(accounts: Accounts) -> Iterator[list[str]]:
    """The notes the engine has for the user meanwhile (e.g. a grant left to end by hand)."""
    notes: list[str] = []
    stop = accounts.bus.subscribe(topics.NOTIFICATION,
                                  lambda message: notes.append(str(message.data["body"])))
    try:
        yield notes
    finally:
        stop()


def _read_secret(prompt: str, from_stdin: bool) -> str:
    return sys.stdin.readline().strip() if from_stdin else getpass.getpass(prompt).strip()


async def cmd_accounts(args: argparse.Namespace, data_dir: Path) -> int:
    async with _accounts(data_dir) as (accounts, store):
        registry = accounts.registry
        action = args.action
        if action == "list":
            rows = [a.describe() for a in await accounts.accounts()]
            users: dict[str, list[str]] = {}
            for area in await store.areas():
                for step, _is_trigger in area.spec.steps():
                    if step.account and area.name not in users.setdefault(step.account, []):
                        users[step.account].append(area.name)
            for row in rows:
                row["areas"] = users.get(row["id"], [])
            if args.json:
                print(json.dumps(rows, indent=2, default=str, ensure_ascii=False))
                return 0
            if not rows:
                able = [s.id for s in registry if s.needs_account]
                print("No accounts yet. Connect one: hookline accounts connect SERVICE "
                      "(or `token SERVICE`)" + (f"; services that use one: {', '.join(able)}"
                                                if able else ""))
            for row in rows:  # names come cleaned; errors may quote a provider's words
                state = "ok" if row["status"] == "ok" else "RECONNECT"
                print(f"{row['id'][:8]}  {row['service']:10} {row['name'][:30]:30} {state:9} "
                      f"{len(row['areas'])} area(s)")
                if row["last_error"] and row["status"] != "ok":
                    print(f"          {clean_name(row['last_error'])}")
            return 0
        if action == "custom":
            code = await custom_cli.cmd_custom(args, accounts)
            await _tell_engine(data_dir)
            return code
        if action == "client":
            service = await accounts.service(args.service)
            if service.oauth is None:
                raise ConfigError(f"{service.name} does not connect through OAuth")
            secret = None
            if service.oauth.client_secret_required:
                secret = _read_secret(f"Client secret of your {service.name} OAuth app: ",
                                      args.stdin)
            await accounts.set_client(service.id, args.client_id, secret)
            kept = ", secret in the OS keyring" if secret else ""
            print(f"saved (client ID in the database{kept}). The app's redirect URI must be "
                  f"{service.oauth.redirect_uri()}")
            print(f"next: hookline accounts connect {service.id}")
            return 0
        if action == "connect":
            service = await accounts.service(args.service)
            with _notes(accounts) as notes:
                account = await accounts.connect(service.id, **browser_options(
                    service.name, args.no_browser, float(args.timeout)))
            print(f"connected {service.name} account “{account.name}” ({account.id[:8]})")
            for note in notes:
                print(note)
            await _tell_engine(data_dir)
            return 0
        if action == "token":
            service = await accounts.service(args.service)
            if service.api_key is None:
                raise ConfigError(f"{service.name} does not take a pasted token"
                                  + (f": use `hookline accounts connect {service.id}`"
                                     if service.oauth else ""))
            if service.api_key.help and not args.stdin:
                print(service.api_key.help)
            token = _read_secret(f"{service.api_key.label} for {service.name}: ", args.stdin)
            with _notes(accounts) as notes:
                account = await accounts.add_token(service.id, token, args.name)
            print(f"added {service.name} account “{account.name}” ({account.id[:8]}); its "
                  "token is in the OS keyring")
            for note in notes:
                print(note)
            await _tell_engine(data_dir)
            return 0
        if action == "remove":
            account = await accounts.find(args.account)
            using = sorted({a.name for a in await store.areas()
                            for step, _t in a.spec.steps() if step.account == account.id})
            removal = await accounts.remove(account.id)
            print(f"removed {account.service_id} account “{account.name}” and its tokens")
            if removal.note:
                print(removal.note)
            if using:
                print(f"{len(using)} area(s) used it and will fail until you choose another "
                      f"account: {', '.join(using)}")
            await _tell_engine(data_dir)
            return 0
    raise AssertionError(action)  # pragma: no cover
