"""Accounts: connecting services through OAuth 2 or a pasted token, and acting as them."""

from __future__ import annotations

from engine.auth.accounts import (
    ACCOUNT_CHANGED,
    ACCOUNT_NEEDS_RECONNECT,
    AccountNotFound,
    Accounts,
    AccountStore,
)
from engine.auth.oauth import OAuthClient, TokenRefused, authorize, system_browser
from engine.auth.session import NEEDS_RECONNECT, Account, AccountSession

__all__ = [
    "ACCOUNT_CHANGED",
    "ACCOUNT_NEEDS_RECONNECT",
    "NEEDS_RECONNECT",
    "Account",
    "AccountNotFound",
    "AccountSession",
    "AccountStore",
    "Accounts",
    "OAuthClient",
    "TokenRefused",
    "authorize",
    "system_browser",
]
