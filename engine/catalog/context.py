"""What a trigger or reaction gets to work with when the engine calls it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import AuthError, Rejected

if TYPE_CHECKING:
    from engine.auth.session import AccountSession
    from engine.bus import Bus
    from engine.catalog.service import Service
    from engine.http import HttpClient
    from engine.settings import Settings


class _ActsAsAccount:
    """What a context that may carry the step's account offers around it."""

    account: AccountSession | None

    def require_account(self, service: Service) -> AccountSession:
        """The account the step chose; if it chose none, an ``AuthError`` that names
        what to choose and how to add one, worded from ``service``'s declaration."""
        if self.account is None:
            how = service.how_to_add_account()
            raise AuthError(f"choose the {service.account_noun} this step uses"
                            + (f" ({how})" if how else ""))
        return self.account


@dataclass
class TriggerContext(_ActsAsAccount):
    """Handed to push triggers (and, as PollContext, to poll triggers).

    Attributes:
        area_id: the area this trigger belongs to.
        params: the trigger's validated parameters (secrets resolved from the keyring).
        http: the engine's shared HTTP client.
        settings: the engine's settings (read only).
        log: a logger that names the area.
        account: the connected account the area chose, for services that act as one
            (``await ctx.account.request(...)`` adds its token); else ``None``.
            ``ctx.require_account(service)`` returns it, or says what to choose.
    """

    area_id: str
    params: Mapping[str, Any]
    http: HttpClient
    settings: Settings
    log: logging.LoggerAdapter[logging.Logger]
    account: AccountSession | None = field(default=None, kw_only=True)


@dataclass
class PollContext(TriggerContext):
    """Handed to poll triggers.

    Attributes:
        state: a small JSON-able dict kept between polls (ETag, cursors); the engine
            saves it in the same transaction as the events the poll produced.
        dry_run: a Test in the area editor wants one sample item: start nothing that
            lasts (a subscription, a cursor on the far side).
        check_soon: asks the engine to check this area again as soon as it can (now,
            or right after the check under way), not at its interval. For a trigger
            that listens in the background and holds what it received unconfirmed
            until a check has saved it (an MQTT subscription). ``None`` in a Test.
    """

    state: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = field(default=False, kw_only=True)
    check_soon: Callable[[], None] | None = field(default=None, kw_only=True, repr=False)


@dataclass
class ReactionContext(_ActsAsAccount):
    """Handed to reactions.

    Attributes:
        params: rendered and validated parameters (secrets resolved).
        run_id: the run this call belongs to (``None`` in a dry run).
        bus: the engine's event bus, e.g. to ask the desktop for a notification.
        account: the connected account the step chose (see TriggerContext).
        idempotency_key: the same for every attempt of this step for this event: its
            retries, and its run again after a kill (``None`` in a test). A service
            that can pass it on (an ``Idempotency-Key`` header) lets the far side act
            once.
        receipt: what this step saved with :meth:`note` before Hookline was stopped
            (killed) while it acted; ``None`` when it is not such a resumed step. A
            reaction that can look whether its effect happened (a line at the offset
            it noted) does not act twice.
    """

    area_id: str
    run_id: int | None
    params: Mapping[str, Any]
    http: HttpClient
    settings: Settings
    bus: Bus
    log: logging.LoggerAdapter[logging.Logger]
    account: AccountSession | None = field(default=None, kw_only=True)
    idempotency_key: str | None = field(default=None, kw_only=True)
    receipt: Mapping[str, Any] | None = field(default=None, kw_only=True)
    noter: Callable[[Mapping[str, Any], bool], None] | None = field(
        default=None, kw_only=True, repr=False)

    def note(self, receipt: Mapping[str, Any], *, flush: bool = True) -> None:
        """Save ``receipt`` (small, JSON-able: where the effect will be) with this step,
        safe against a kill once this returns: call it right before acting. Raises
        StorageError when Hookline's own disk refuses it (then do not act). Does
        nothing outside a run (a test in the editor).

        ``flush=False`` only queues it, for a batch noted with one write: the batch's
        last note flushes (and only then is every note of the batch safe)."""
        if self.noter is not None:
            self.noter(receipt, flush)


@dataclass(frozen=True)
class PushRequest:
    """A webhook delivery, as the listener received it (already size-checked)."""

    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    content_type: str
    remote: str | None = None

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def json(self, text: str | None = None, what: str = "body") -> Any:
        """The body (or ``text`` taken from it, such as a form field, called ``what`` in
        errors) parsed as JSON; a 400 with the reason if it is not, or if it nests too
        deeply to keep."""
        if text is None:
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError:
                raise Rejected(400, f"{what} is not UTF-8 text") from None
        if _nesting(text) > MAX_JSON_DEPTH:
            raise Rejected(400, f"{what} is not usable JSON: nested more than "
                                f"{MAX_JSON_DEPTH} levels deep")
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise Rejected(400, f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} "
                                f"column {exc.colno}") from None
        except ValueError as exc:  # a number past Python's 4,300-digit limit
            raise Rejected(400, f"{what} is not usable JSON: "
                                + ("a number in it has too many digits" if "digits" in str(exc)
                                   else str(exc))) from None


#: Deeper JSON is refused: it would overflow the recursion of the parser, the journal's
#: serialiser or a template long before any real payload gets there (GitHub's: ~10).
MAX_JSON_DEPTH = 200
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _nesting(text: str) -> int:
    """How deep ``text``'s arrays and objects nest (at least; 0 when it cannot pass the
    limit: too few brackets). Brackets inside strings do not count."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for c in brackets:
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        else:
            depth -= 1
    return deepest
