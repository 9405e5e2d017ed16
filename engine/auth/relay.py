"""Sign-ins whose browser is on another computer: a window attached to this engine from
elsewhere (desktop/remote_engine.py) listens for the provider's redirect on its own
computer, where its browser is, and forwards the answer here.

This engine begins the authorization request and exchanges the code, so the OAuth
app's client secret and the PKCE verifier never leave it; the window is given only the
URL to open and the state its listener checks. Each begun sign-in is kept in memory
until it is finished, for as long as the window waits for the browser and a minute more
(:data:`MARGIN`; at most :data:`LONGEST`), and at most :data:`KEPT` at once: past either
bound, finishing it says why nothing was connected and to start again.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from engine.auth import oauth
from engine.auth.oauth import DEFAULT_TIMEOUT, Begun, Browser, Show, system_browser
from engine.auth.session import Account
from engine.catalog.auth import REDIRECT_PATH, OAuth2Spec
from engine.errors import AuthError, HooklineError, ValidationError

log = logging.getLogger(__name__)

#: Calls the engine elsewhere: ``await call("accounts.begin_sign_in", **arguments)``.
Call = Callable[..., Awaitable[Any]]

#: Seconds a begun sign-in is kept beyond the window's wait for the browser.
MARGIN = 60.0
#: The longest wait for the browser a window may ask the engine to keep a sign-in for.
LONGEST = 3600.0
#: Sign-ins kept at once; beginning another sets the oldest aside.
KEPT = 8
#: Sign-ins let go unfinished (set aside, expired) remembered, so finishing one says
#: what happened to it.
REMEMBERED = 64


@dataclass(frozen=True)
class Relayed:
    """What the window elsewhere is given of a begun sign-in.

    Attributes:
        id: names the sign-in when its answer is forwarded.
        url: the authorization URL to open in the browser there.
        state: what the redirect must echo (the window's listener checks it too).
    """

    id: str
    url: str
    state: str = field(repr=False)


@dataclass(frozen=True)
class SignedIn:
    """A finished sign-in: the account, and what the browser's last page says."""

    account: Account
    said: str


@dataclass(frozen=True)
class _Kept:
    service_id: str
    begun: Begun
    until: float
    wait: float


def loopback_redirect(spec: OAuth2Spec, redirect_uri: str) -> str:
    """``redirect_uri`` if it is one the provider accepts from this app: the loopback
    callback of ``spec`` on some port (its fixed port, if it has one); else a
    ValidationError that says which."""
    parts = urlsplit(redirect_uri)
    try:
        port = parts.port
    except ValueError:
        port = None
    if (parts.scheme != "http" or parts.hostname != spec.loopback_host.strip("[]")
            or port is None or (spec.fixed_port is not None and port != spec.fixed_port)
            or parts.path != REDIRECT_PATH or parts.query or parts.fragment
            or parts.username is not None):
        where = (spec.redirect_uri() if spec.fixed_port
                 else f"http://{spec.loopback_host}:PORT{REDIRECT_PATH}")
        raise ValidationError("redirect_uri", f"must be {where}, where the window listens "
                                              "for the browser's answer")
    return redirect_uri


def _expired(wait: float) -> str:
    within = f"{wait / 60:.0f} minutes" if wait >= 60 else f"{wait:g} s"
    return (f"This sign-in was begun over {(wait + MARGIN) / 60:.0f} minutes ago and is no "
            "longer kept, so nothing was connected. Start again and finish signing in "
            f"within {within}")


_SET_ASIDE = (f"This sign-in was set aside: {KEPT} newer sign-ins were begun on this engine "
              "before its answer came, so nothing was connected. Start again")
_UNKNOWN = ("The engine does not know this sign-in (it was finished already, or the engine "
            "restarted since), so nothing was connected. Start again")


class Relays:
    """The sign-ins begun for windows elsewhere, until their answers come.

    Args:
        clock: monotonic seconds (tests move it).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        #: Why each of the latest sign-ins let go unfinished was (for its answer).
        self._gone: OrderedDict[str, str] = OrderedDict()

    def keep(self, service_id: str, begun: Begun, wait: float = DEFAULT_TIMEOUT
             ) -> Relayed:
        """Keep ``begun`` until its answer is forwarded, the window waiting ``wait``
        seconds for it (at most :data:`LONGEST`); what the window is given."""
        wait = min(max(wait, 0.0), LONGEST)
        self._expire()
        while len(self._kept) >= KEPT:
            oldest, kept = self._kept.popitem(last=False)
            self._let_go(oldest, _SET_ASIDE)
            log.info("a %s sign-in begun from another computer was set aside: %d newer "
                     "ones were begun before its answer came", kept.service_id, KEPT)
        relay_id = secrets.token_urlsafe(16)
        self._kept[relay_id] = _Kept(service_id, begun, self._clock() + wait + MARGIN, wait)
        return Relayed(relay_id, begun.url, begun.state)

    def take(self, relay_id: str) -> tuple[str, Begun]:
        """The service and request of a begun sign-in, which is then forgotten (each is
        finished once). Raises AuthError saying why nothing can be connected with it."""
        self._expire()
        kept = self._kept.pop(relay_id, None)
        if kept is None:
            raise AuthError(self._gone.pop(relay_id, _UNKNOWN))
        return kept.service_id, kept.begun

    def drop(self, relay_id: str) -> None:
        """Forget a sign-in the window gave up on."""
        self._kept.pop(relay_id, None)

    def _expire(self) -> None:
        now = self._clock()
        for relay_id, kept in [(i, k) for i, k in self._kept.items() if k.until <= now]:
            del self._kept[relay_id]
            self._let_go(relay_id, _expired(kept.wait))

    def _let_go(self, relay_id: str, why: str) -> None:
        self._gone[relay_id] = why
        while len(self._gone) > REMEMBERED:
            self._gone.popitem(last=False)


async def sign_in_from_here(call: Call, service_id: str, *, browser: Browser = system_browser,
                            show: Show | None = None, timeout: float = DEFAULT_TIMEOUT
                            ) -> SignedIn:
    """The window's side of a relayed sign-in, on the computer the browser runs on: the
    provider's redirect comes back to a listener here, whose answer goes to the engine
    that ``call`` reaches, which begins the request and exchanges the code. Only the URL
    and state come here, and only the code (good once, and only with the verifier the
    engine kept) goes there."""
    host, port = await call("accounts.sign_in_place", service_id=service_id)
    async with oauth.Callback(host, port or 0, browser=browser, show=show,
                              timeout=timeout) as callback:
        relayed: Relayed = await call("accounts.begin_sign_in", service_id=service_id,
                                      redirect_uri=callback.redirect_uri, wait=timeout)
        callback.open(relayed.url, relayed.state)
        try:
            answer = await callback.answer()
        except HooklineError:  # no answer, or not this sign-in's: the engine forgets it
            with contextlib.suppress(HooklineError):
                await call("accounts.abandon_sign_in", sign_in=relayed.id)
            raise
        signed: SignedIn = await call("accounts.finish_sign_in", sign_in=relayed.id,
                                      answer=answer)
        callback.connected(signed.said)
    return signed
