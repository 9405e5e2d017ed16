"""The remote channel's errors.

    HooklineError
     └── RemoteError           the remote engine cannot be used
          ├── PairingRefused   the engine did not accept the pairing code
          └── NotTheEngine     the engine reached did not prove it made the code
"""

from __future__ import annotations

from engine.errors import HooklineError


class RemoteError(HooklineError):
    """The remote engine cannot be reached or used."""


class PairingRefused(RemoteError):
    """The engine refused the code (wrong, used, expired, or too many tries)."""


class NotTheEngine(RemoteError):
    """The engine that answered could not prove it made the code: someone may be between
    this computer and it."""
