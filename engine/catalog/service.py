"""How a service declares itself: identity, triggers, reactions, once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from engine.catalog.auth import ApiKeySpec, OAuth2Spec
from engine.catalog.params import Param

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

    from engine.catalog.context import PollContext, PushRequest, ReactionContext, TriggerContext


class TriggerKind(StrEnum):
    """How a trigger learns that something happened."""

    SCHEDULE = "schedule"  # the engine's scheduler fires it at times it computes
    POLL = "poll"  # the engine asks the service every so often for new items
    PUSH = "push"  # the far side delivers to the area's webhook URL


class AuthKind(StrEnum):
    """What a service needs from the user to talk to it."""

    NONE = "none"
    API_KEY = "api_key"
    OAUTH2 = "oauth2"


@dataclass(frozen=True)
class Field:
    """One field a trigger or reaction outputs, offered in the template picker."""

    name: str
    label: str
    example: Any = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "example": self.example}


@dataclass(frozen=True)
class Item:
    """One thing a trigger saw: a feed entry, a file, a delivery.

    Attributes:
        key: stable identity used to fire once per item (``None``: never deduplicated).
        data: the payload, available to templates as ``trigger.<field>``.
        at: the item's own time (published, created, modified), where it has one: new
            items fire oldest first by it, whatever order the source lists them in.
            Without it, the source is taken to list newest first (as feeds and APIs do).
        aliases: keys the same item had before (as an earlier version of the service
            made them): an item seen under one of them is not new. Only ``key`` is
            remembered from then on, so a service that changes its keys fires nothing twice.
    """

    key: str | None
    data: Mapping[str, Any]
    at: datetime | None = None
    aliases: tuple[str, ...] = ()


@dataclass
class PollResult:
    """What one poll saw.

    Attributes:
        items: every item currently visible (new and old: the engine keeps the memory),
            newest first as most APIs list them; the engine fires new ones oldest first.
        not_modified: the far side answered "nothing changed" (304).
    """

    items: list[Item] = field(default_factory=list)
    not_modified: bool = False


PollFn = Callable[["PollContext"], Awaitable[PollResult]]
ScheduleFn = Callable[[Mapping[str, Any]], "BaseTrigger"]
PushFn = Callable[["PushRequest", "TriggerContext"], Awaitable[list[Item]]]
ReactFn = Callable[["ReactionContext"], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True)
class TriggerSpec:
    """A declared trigger; exactly one of poll/schedule/push is set, by ``kind``."""

    service_id: str
    id: str
    name: str
    description: str
    kind: TriggerKind
    params: Sequence[Param]
    fields: Sequence[Field]
    poll: PollFn | None = None
    schedule: ScheduleFn | None = None
    push: PushFn | None = None
    #: Seconds between polls unless the area sets ``interval``.
    default_interval: float = 300.0
    #: Smallest interval a user may set (be kind to the far side).
    min_interval: float = 10.0

    @property
    def qualified(self) -> str:
        return f"{self.service_id}.{self.id}"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "kind": self.kind.value,
            "params": [p.describe() for p in self.params],
            "fields": [f.describe() for f in self.fields],
        }


@dataclass(frozen=True)
class ReactionSpec:
    """A declared reaction.

    Attributes:
        run: does the work; returns the output fields for later reactions.
        preview: what a dry run shows (defaults to the rendered parameters).
        requires_setting: a settings flag that must be on (e.g. ``allow_shell``).
        timeout: seconds before an attempt is abandoned.
    """

    service_id: str
    id: str
    name: str
    description: str
    params: Sequence[Param]
    fields: Sequence[Field]
    run: ReactFn
    preview: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    requires_setting: str | None = None
    timeout: float = 30.0
    #: Whether a failed attempt may be repeated (a "send" that may have gone out: no).
    retry: bool = True
    #: A step of an account service that may run without one (e.g. through a webhook URL).
    account_optional: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.service_id}.{self.id}"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def describe(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "params": [p.describe() for p in self.params],
            "fields": [f.describe() for f in self.fields],
        }
        if self.requires_setting:
            out["requires_setting"] = self.requires_setting
        return out


@dataclass
class Service:
    """One integration, as its author declares it.

    Triggers and reactions are added with the decorators, e.g.::

        service = Service("rss", "RSS / Atom", "New items in web feeds.")

        @service.poll_trigger("new_item", "New feed item", "...", params=[...], fields=[...])
        async def new_item(ctx: PollContext) -> PollResult: ...
    """

    id: str
    name: str
    description: str
    icon: str = ""
    auth: AuthKind = AuthKind.NONE
    #: Base URL of the service's API; tests point it at a local server.
    api_base_url: str = ""
    #: How accounts connect through OAuth 2 (``auth=OAUTH2``).
    oauth: OAuth2Spec | None = None
    #: A token the user pastes in (``auth=API_KEY``, or an OAuth service's alternative).
    api_key: ApiKeySpec | None = None
    #: What a step chooses to act as, where "<name> account" would not say it (Google
    #: Drive: "Google account"; Discord: "Discord bot").
    account_label: str = ""
    #: Its steps may act as an account of a custom OAuth 2 provider (``hookline accounts
    #: custom``), chosen with ``account:``; without one they act as no one.
    custom_accounts: bool = False
    #: What using the provider's API costs the user, or what access they must be granted
    #: first (X's pay-per-use credits, Reddit's approval): shown in the reference page and
    #: `hookline services <id>`. Empty: nothing beyond an account.
    access_note: str = ""
    #: Awaited when the engine stops (close long-lived connections).
    on_close: Callable[[], Awaitable[None]] | None = None
    #: Awaited when one of its triggers stops listening for an area (``forget``: the
    #: area was removed, so drop any state kept at the far side too).
    on_area_stop: Callable[..., Awaitable[None]] | None = None
    triggers: dict[str, TriggerSpec] = field(default_factory=dict)
    reactions: dict[str, ReactionSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.auth is AuthKind.OAUTH2 and self.oauth is None:
            raise TypeError(f"{self.id}: auth=OAUTH2 needs oauth=OAuth2Spec(...)")
        if self.auth is AuthKind.API_KEY and self.api_key is None:
            raise TypeError(f"{self.id}: auth=API_KEY needs api_key=ApiKeySpec(...)")

    @property
    def needs_account(self) -> bool:
        """Whether its triggers and reactions act as a connected account."""
        return self.auth is not AuthKind.NONE

    @property
    def account_noun(self) -> str:
        """What a step chooses to act as, e.g. "GitHub account"."""
        return self.account_label or f"{self.name} account"

    def how_to_add_account(self) -> str:
        """The commands that add an account, one for each way the service declares, e.g.
        "connect one with `hookline accounts connect github`, or add a token with
        `hookline accounts token github`" (empty for a service without accounts)."""
        ways = []
        if self.oauth is not None:
            ways.append(f"connect one with `hookline accounts connect {self.id}`")
        if self.api_key is not None:
            ways.append(f"add a token with `hookline accounts token {self.id}`")
        return ", or ".join(ways)

    def _add_trigger(self, spec: TriggerSpec) -> None:
        if spec.id in self.triggers:
            raise ValueError(f"{self.id}: trigger {spec.id!r} declared twice")
        self.triggers[spec.id] = spec

    def poll_trigger(
        self,
        id: str,
        name: str,
        description: str,
        *,
        params: Sequence[Param] = (),
        fields: Sequence[Field] = (),
        default_interval: float = 300.0,
        min_interval: float = 10.0,
    ) -> Callable[[PollFn], PollFn]:
        def register(fn: PollFn) -> PollFn:
            self._add_trigger(
                TriggerSpec(self.id, id, name, description, TriggerKind.POLL, tuple(params),
                            tuple(fields), poll=fn, default_interval=default_interval,
                            min_interval=min_interval)
            )
            return fn

        return register

    def schedule_trigger(
        self,
        id: str,
        name: str,
        description: str,
        *,
        params: Sequence[Param] = (),
        fields: Sequence[Field] = (),
    ) -> Callable[[ScheduleFn], ScheduleFn]:
        def register(fn: ScheduleFn) -> ScheduleFn:
            self._add_trigger(
                TriggerSpec(self.id, id, name, description, TriggerKind.SCHEDULE,
                            tuple(params), tuple(fields), schedule=fn)
            )
            return fn

        return register

    def push_trigger(
        self,
        id: str,
        name: str,
        description: str,
        *,
        params: Sequence[Param] = (),
        fields: Sequence[Field] = (),
    ) -> Callable[[PushFn], PushFn]:
        def register(fn: PushFn) -> PushFn:
            self._add_trigger(
                TriggerSpec(self.id, id, name, description, TriggerKind.PUSH,
                            tuple(params), tuple(fields), push=fn)
            )
            return fn

        return register

    def reaction(
        self,
        id: str,
        name: str,
        description: str,
        *,
        params: Sequence[Param] = (),
        fields: Sequence[Field] = (),
        preview: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        requires_setting: str | None = None,
        timeout: float = 30.0,
        retry: bool = True,
        account_optional: bool = False,
    ) -> Callable[[ReactFn], ReactFn]:
        def register(fn: ReactFn) -> ReactFn:
            if id in self.reactions:
                raise ValueError(f"{self.id}: reaction {id!r} declared twice")
            self.reactions[id] = ReactionSpec(
                self.id, id, name, description, tuple(params), tuple(fields), fn,
                preview=preview, requires_setting=requires_setting, timeout=timeout,
                retry=retry, account_optional=account_optional,
            )
            return fn

        return register

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "auth": self.auth.value,
            **({"access_note": self.access_note} if self.access_note else {}),
            **({"oauth": self.oauth.describe()} if self.oauth else {}),
            **({"api_key": self.api_key.describe()} if self.api_key else {}),
            "triggers": [t.describe() for t in self.triggers.values()],
            "reactions": [r.describe() for r in self.reactions.values()],
        }
