"""``hookline accounts custom``: declare, list and forget custom OAuth 2 providers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.auth.accounts import Accounts
from engine.auth.custom import CustomProvider, add_provider, remove_provider
from engine.errors import ConfigError, ValidationError

#: A definition's fields, as the command's options spell them.
OPTIONS = {"name": "NAME", "authorize_url": "--authorize-url", "token_url": "--token-url",
           "scopes": "--scopes", "userinfo_url": "--userinfo-url",
           "name_fields": "--name-field", "revoke_url": "--revoke-url",
           "client_id": "--client-id"}


def add_parser(asub: Any) -> None:
    """Add ``custom`` to the ``hookline accounts`` subparsers."""
    custom = asub.add_parser("custom", help="your own OAuth 2 providers (a self-hosted "
                                            "Gitea, GitLab, Nextcloud…): add, list, remove")
    csub = custom.add_subparsers(dest="custom_action", required=True, metavar="ACTION")
    p = csub.add_parser("add", help="declare a provider (or change one), then connect its "
                                    "accounts with `hookline accounts connect NAME`")
    p.add_argument("name", help="what you call it, e.g. my-gitea (lowercase, digits, dashes)")
    p.add_argument("--authorize-url", required=True,
                   help="its authorization endpoint, e.g. https://git.example/login/oauth/"
                        "authorize")
    p.add_argument("--token-url", required=True, help="its token endpoint")
    p.add_argument("--scopes", default="", help='the scopes to ask for, e.g. "read:user '
                                                'read:repository"')
    p.add_argument("--userinfo-url", help="answers who signed in (JSON), e.g. https://git."
                                          "example/api/v1/user; without it the account is "
                                          "named after the provider")
    p.add_argument("--name-field", action="append", dest="name_fields",
                   help="the user-info field that names the account (may be repeated; "
                        "default: login, name, email, sub)")
    p.add_argument("--revoke-url", help="its RFC 7009 revocation endpoint, called when an "
                                        "account is removed")
    p.add_argument("--client-id", required=True,
                   help="the client ID of the OAuth app you registered there")
    p.add_argument("--client-secret-stdin", action="store_true",
                   help="read the app's client secret from standard input (kept in the OS "
                        "keyring); without it, none is sent (a public client, with PKCE)")
    csub.add_parser("list", help="the providers you declared").add_argument(
        "--json", action="store_true")
    p = csub.add_parser("remove", help="forget a provider no account uses any more")
    p.add_argument("name")


def _said(exc: ValidationError) -> str:
    """Each problem, named by the option that gave the value."""
    return "; ".join(f"{OPTIONS.get(p.where, p.where)}: {p.problem}" for p in exc.problems)


async def cmd_custom(args: argparse.Namespace, accounts: Accounts) -> int:
    action = args.custom_action
    if action == "list":
        providers = await accounts.custom.all()
        if args.json:
            print(json.dumps([p.describe() for p in providers], indent=2))
        elif not providers:
            print("No custom providers yet. Add one: hookline accounts custom add NAME "
                  "--authorize-url URL --token-url URL --client-id ID")
        for provider in providers if not args.json else ():
            connected = len(await accounts.accounts(provider.name))
            print(f"{provider.name:16} {provider.authorize_url}  "
                  f"{connected} account(s)")
            print(f"{'':16} token {provider.token_url}; scopes: "
                  f"{' '.join(provider.scopes) or '(none)'}")
        return 0
    if action == "remove":
        provider = await remove_provider(accounts, args.name)
        print(f"removed the custom provider “{provider.name}”, its client ID and secret")
        return 0
    try:
        provider = CustomProvider.checked(
            args.name, args.authorize_url, args.token_url, args.scopes, args.userinfo_url,
            args.name_fields, args.revoke_url, taken=accounts.registry.services)
        secret = sys.stdin.readline().strip() if args.client_secret_stdin else None
        if args.client_secret_stdin and not secret:
            raise ValidationError("client_id", "standard input held no client secret")
        await add_provider(accounts, provider, args.client_id, secret)
    except ValidationError as exc:
        raise ConfigError(_said(exc)) from None
    kept = ", secret in the OS keyring" if secret else ""
    print(f"saved the custom provider “{provider.name}” (client ID in the database{kept})")
    print(f"Its OAuth app's redirect URI must be {provider.spec().redirect_uri()} (any port)")
    print(f"next: hookline accounts connect {provider.name}")
    return 0
