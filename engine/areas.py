"""Areas: what the user composes (trigger, condition, reactions), checked before save,
and the documented import/export format."""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from apscheduler.triggers.date import DateTrigger

from engine import lifecycle, templates, windows
from engine.catalog.params import Param, parse_duration
from engine.catalog.service import ReactionSpec, Service, TriggerKind, TriggerSpec
from engine.errors import CatalogError, ValidationError
from engine.registry import Registry
from engine.settings import Settings

CATCH_UP = ("skip", "once")
TRIGGER_SLOT = "trigger"


@dataclass
class Step:
    """A trigger or a reaction inside an area: which one, with what parameters.

    Attributes:
        uid: stable identity of a reaction step (keys its secrets in the keyring).
        account: the connected account it acts as, for services that need one: its id
            once checked (an import may name it by its name at the service).
    """

    service: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    uid: str = ""
    account: str | None = None

    def slot(self, is_trigger: bool) -> str:
        return TRIGGER_SLOT if is_trigger else self.uid


@dataclass
class AreaSpec:
    """One automation as the user wrote it."""

    name: str
    trigger: Step
    reactions: list[Step]
    condition: str | None = None
    enabled: bool = True
    catch_up: str = "skip"
    interval: float | None = None
    #: when it may fire: active from/until and a weekly "only during" (engine/windows.py)
    window: windows.Window = field(default_factory=windows.Window)
    #: a snooze of its polling trigger fires what came meanwhile once it ends
    catch_up_after_snooze: bool = False

    def steps(self) -> list[tuple[Step, bool]]:
        return [(self.trigger, True), *((r, False) for r in self.reactions)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AreaSpec:
        """Read the import format; structural problems are ValidationErrors."""
        if not isinstance(data, Mapping):
            raise ValidationError("", "an area must be a mapping with name, trigger, reactions")
        known = {"name", "enabled", "trigger", "condition", "reactions", "catch_up", "interval",
                 "active_from", "active_until", "only_during", "catch_up_after_snooze"}
        for key in data:
            if key not in known:
                hint = CatalogError.unknown("key", str(key), known).args[0]
                raise ValidationError(str(key), hint)
        trig = data.get("trigger")
        if not isinstance(trig, Mapping):
            raise ValidationError("trigger", "missing: give {service: ..., trigger: ..., "
                                             "params: {...}}")
        reactions = data.get("reactions")
        if not isinstance(reactions, list) or not reactions:
            raise ValidationError("reactions", "give a list with at least one reaction")
        steps = [_step(r, "reaction", f"reactions[{i}]") for i, r in enumerate(reactions)]
        interval = data.get("interval")
        if interval not in (None, ""):
            try:
                interval = parse_duration(interval)
            except ValueError as exc:
                raise ValidationError("interval", f"how often to poll: {exc}") from None
        catch_up_after_snooze = data.get("catch_up_after_snooze", False)
        if not isinstance(catch_up_after_snooze, bool):
            raise ValidationError("catch_up_after_snooze", "write true or false")
        return cls(
            name=str(data.get("name") or "").strip(),
            trigger=_step(trig, "trigger", "trigger"),
            reactions=steps,
            condition=(str(data["condition"]) if data.get("condition") not in (None, "")
                       else None),
            enabled=bool(data.get("enabled", True)),
            catch_up=str(data.get("catch_up", "skip")),
            interval=interval if interval not in (None, "") else None,
            window=windows.parse(data),
            catch_up_after_snooze=catch_up_after_snooze,
        )

    def to_dict(self, registry: Registry | None = None,
                account_names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The export format; secret parameters are left out. With ``account_names``
        (account id -> name) a step names its account by its name at the service, so an
        import elsewhere links the account of that name; without, by its id."""

        def params(step: Step, is_trigger: bool) -> dict[str, Any]:
            secret = _secret_names(registry, step, is_trigger)
            return {k: v for k, v in step.params.items() if k not in secret and v is not None}

        def account(step: Step) -> dict[str, Any]:
            if not step.account:
                return {}
            if account_names is None:
                return {"account": step.account}
            name = account_names.get(step.account)
            return {"account": name} if name else {}

        out: dict[str, Any] = {
            "name": self.name,
            "enabled": self.enabled,
            "trigger": {"service": self.trigger.service, "trigger": self.trigger.action,
                        **account(self.trigger), "params": params(self.trigger, True)},
        }
        if self.condition:
            out["condition"] = self.condition
        out["reactions"] = [
            {"service": r.service, "reaction": r.action, **account(r),
             "params": params(r, False)}
            for r in self.reactions
        ]
        if self.catch_up != "skip":
            out["catch_up"] = self.catch_up
        if self.interval is not None:
            out["interval"] = self.interval
        out.update(self.window.to_dict())
        if self.catch_up_after_snooze:
            out["catch_up_after_snooze"] = True
        return out


def _step(data: Any, kind: str, where: str) -> Step:
    if not isinstance(data, Mapping):
        raise ValidationError(where, f"must be a mapping with service, {kind} and params")
    service, action = data.get("service"), data.get(kind)
    if not service:
        raise ValidationError(f"{where}.service", "missing: which service?")
    if not action:
        raise ValidationError(f"{where}.{kind}", f"missing: which {kind} of {service}?")
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise ValidationError(f"{where}.params", "must be a mapping of name: value")
    account = data.get("account")
    if account is not None and not isinstance(account, str | int):
        raise ValidationError(f"{where}.account", "must be the account's name or id")
    return Step(str(service), str(action), dict(params), uid=str(data.get("uid") or ""),
                account=(str(account).strip() or None) if account is not None else None)


def _secret_names(registry: Registry | None, step: Step, is_trigger: bool) -> set[str]:
    if registry is None:
        return set()
    try:
        spec = registry.action(step.service, step.action, is_trigger)
    except CatalogError:
        return set()
    return {p.name for p in spec.params if p.is_secret}


def new_uid() -> str:
    return _secrets.token_hex(4)


@dataclass
class Area:
    """A saved area with what the engine keeps about it."""

    id: str
    spec: AreaSpec
    paused_reason: str | None = None
    failure_streak: int = 0
    webhook_hash: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: its lifecycle state (engine/lifecycle.py); empty: derived from on/off and pause
    state: str = ""
    snoozed_until: datetime | None = None
    catch_up_after_snooze: bool = False

    def __post_init__(self) -> None:
        if not self.state:
            self.state = lifecycle.state_of(self.spec.enabled, self.paused_reason)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def active(self) -> bool:
        """Whether its trigger should be attached now (polling, routed, timed); only an
        area whose ``state`` is active fires."""
        return self.state in lifecycle.ATTACHED


class KnownAccount(Protocol):
    """What checking an area needs to know of a connected account."""

    @property
    def id(self) -> str: ...

    @property
    def service_id(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Checked:
    """An area that passed validation, with the specs it uses and the secrets it carries."""

    spec: AreaSpec
    trigger: TriggerSpec
    reactions: list[ReactionSpec]
    #: (slot, param name) -> secret value given with this save (moved to the keyring)
    secrets: dict[tuple[str, str], str]


def check_area(
    spec: AreaSpec,
    registry: Registry,
    settings: Settings,
    *,
    has_secret: Callable[[str, str], bool] = lambda slot, name: False,
    accounts: Sequence[KnownAccount] = (),
) -> Checked:
    """Validate everything before save. Every problem found is said at once (one
    ValidationError naming its place, or SeveralProblems holding each): a problem that
    makes later checks meaningless (an unknown trigger) skips only those checks.

    ``accounts`` are the connected accounts: a step of a service that acts as an
    account must name one of that service (by id or by name); it is stored by id."""
    problems: list[ValidationError] = []
    if not spec.name:
        problems.append(ValidationError("name", "give the area a name"))
    elif len(spec.name) > 200:
        problems.append(ValidationError("name", "keep the name under 200 characters"))
    if spec.catch_up not in CATCH_UP:
        problems.append(ValidationError("catch_up", f"must be one of: {', '.join(CATCH_UP)}"))
    for i, step in enumerate(spec.reactions):
        if not step.uid:
            spec.reactions[i] = replace(step, uid=new_uid())
    found: dict[tuple[str, str], str] = {}
    trigger_fields: list[str] = []
    try:
        trigger: TriggerSpec | None = registry.trigger(spec.trigger.service,
                                                       spec.trigger.action)
    except CatalogError as exc:
        problems.append(ValidationError("trigger", str(exc)))
        trigger = None
    if trigger is not None:
        before = len(problems)
        clean = _check_params(trigger.params, spec.trigger, TRIGGER_SLOT, "trigger.params",
                              in_reaction=False, trigger_fields=None, earlier=[],
                              has_secret=has_secret, found=found, problems=problems)
        params_fine = len(problems) == before
        account = _gather(problems, lambda: link_account(
            spec.trigger, registry.service(spec.trigger.service), "trigger", accounts,
            builtin=registry.services))
        spec.trigger = replace(spec.trigger, params=clean, account=account)
        if params_fine and trigger.kind is TriggerKind.SCHEDULE and trigger.schedule:
            try:  # the schedule itself may refuse a combination (time zone, day names)
                timed = trigger.schedule(clean)
                if isinstance(timed, DateTrigger) and timed.run_date <= datetime.now(UTC):
                    problems.append(ValidationError(
                        "trigger.params", f"{timed.run_date:%Y-%m-%d %H:%M} is already past: "
                                          "choose a moment to come"))
            except ValidationError as exc:
                problems.append(exc.at("trigger.params"))
            except ValueError as exc:
                problems.append(ValidationError("trigger.params", str(exc)))
        if spec.interval is not None:
            if trigger.kind is not TriggerKind.POLL:
                problems.append(ValidationError("interval",
                                                "only polling triggers have an interval"))
            elif spec.interval < trigger.min_interval:
                problems.append(ValidationError(
                    "interval", f"poll at most every {trigger.min_interval:g} seconds for "
                                f"{trigger.name}"))
        trigger_fields = [f.name for f in trigger.fields]
    if spec.condition:
        condition = spec.condition
        _gather(problems, lambda: templates.check(
            condition, trigger_fields=trigger_fields or None, where="condition"))
    if not spec.reactions:
        problems.append(ValidationError("reactions", "add at least one reaction"))
    reactions: list[ReactionSpec] = []
    earlier: list[list[str]] = []
    for i, step in enumerate(spec.reactions):
        where = f"reactions[{i}]"
        try:
            reaction = registry.reaction(step.service, step.action)
        except CatalogError as exc:
            problems.append(ValidationError(where, str(exc)))
            earlier.append([])  # its fields are unknown: later references go unchecked
            continue
        if reaction.requires_setting and not getattr(settings, reaction.requires_setting):
            label = next(p.label for p in Settings.params()
                         if p.name == reaction.requires_setting)
            problems.append(ValidationError(where, f"{reaction.name} is off: turn on "
                                                   f"'{label}' in settings first"))
        clean = _check_params(reaction.params, step, step.uid, f"{where}.params",
                              in_reaction=True, trigger_fields=trigger_fields,
                              earlier=earlier, has_secret=has_secret, found=found,
                              problems=problems)
        try:
            account = link_account(step, registry.service(step.service), where, accounts,
                                   optional=reaction.account_optional,
                                   builtin=registry.services)
        except ValidationError as exc:
            problems.append(exc)
            account = step.account
        spec.reactions[i] = replace(step, params=clean, account=account)
        reactions.append(reaction)
        earlier.append([f.name for f in reaction.fields])
    if problems:
        raise ValidationError.of(problems)
    assert trigger is not None  # an unknown trigger is a problem
    return Checked(spec, trigger, reactions, found)


T = TypeVar("T")


def _gather(problems: list[ValidationError], check: Callable[[], T]) -> T | None:
    """``check()``'s result; a ValidationError it raises is added to ``problems``."""
    try:
        return check()
    except ValidationError as exc:
        problems.extend(exc.problems)
        return None


def _check_params(
    params: tuple[Param, ...] | Any,
    step: Step,
    slot: str,
    where: str,
    *,
    in_reaction: bool,
    trigger_fields: list[str] | None,
    earlier: list[list[str]],
    has_secret: Callable[[str, str], bool],
    found: dict[tuple[str, str], str],
    problems: list[ValidationError],
) -> dict[str, Any]:
    """The step's parameters checked; each one's problem is added to ``problems``."""
    declared = {p.name: p for p in params}
    for name in step.params:
        if name not in declared:
            problems.append(ValidationError(
                f"{where}.{name}", CatalogError.unknown("parameter", name, declared).args[0]))
    out: dict[str, Any] = {}
    for param in params:
        value = step.params.get(param.name)
        at = f"{where}.{param.name}"
        if param.is_secret:
            if value not in (None, ""):
                found[(slot, param.name)] = str(value)
            elif param.required and not has_secret(slot, param.name):
                problems.append(ValidationError(at, f"{param.label} is required"))
            out[param.name] = None
            continue
        if (param.may_template(in_reaction) and isinstance(value, str)
                and templates.is_template(value)):
            try:
                templates.check(value, trigger_fields=trigger_fields or None,
                                reaction_fields=earlier, where=at)
            except ValidationError as exc:
                problems.append(exc)
            out[param.name] = value
            continue
        try:
            out[param.name] = param.validate(value)
        except ValidationError as exc:
            problems.append(ValidationError(at, exc.problem))
            out[param.name] = value
    return out


def link_account(step: Step, service: Service, where: str,
                 accounts: Sequence[KnownAccount], optional: bool = False, *,
                 builtin: Container[str] = ()) -> str | None:
    """The id of the account ``step`` names (by id or name), checked against ``service``;
    ``optional``: a step that may name none. ``builtin``: the ids of the registered
    services (an account of none of them is a custom OAuth 2 provider's)."""
    at = f"{where}.account"
    if optional and not step.account:
        return None
    if service.custom_accounts and not service.needs_account:
        return _link_custom(step, service, at,
                            [a for a in accounts if a.service_id not in builtin])
    if not service.needs_account:
        if step.account:
            raise ValidationError(at, f"{service.name} does not use accounts: remove "
                                      "'account'")
        return None
    mine = [a for a in accounts if a.service_id == service.id]
    how = (f"`hookline accounts connect {service.id}`" if service.oauth
           else f"`hookline accounts token {service.id}`")
    connected = (f" (connected: {', '.join(a.name for a in mine)})" if mine
                 else f"; connect one first with {how}")
    if not step.account:
        raise ValidationError(at, f"{service.name} acts as one of your accounts: choose "
                                  f"one with account: NAME{connected}")
    ref = step.account
    for account in accounts:
        if account.id == ref:
            if account.service_id != service.id:
                raise ValidationError(at, f"“{account.name}” is a {account.service_id} "
                                          f"account; this step needs a {service.name} "
                                          f"account{connected}")
            return account.id
    for found in ([a for a in mine if a.name == ref],
                  [a for a in mine if a.name.casefold() == ref.casefold()]):
        if len(found) == 1:
            return found[0].id
    raise ValidationError(at, f"no {service.name} account named {ref!r} is connected: "
                              f"connect it with {how}, then try again"
                              + (f" (connected: {', '.join(a.name for a in mine)})"
                                 if mine else ""))


def _link_custom(step: Step, service: Service, at: str,
                 custom: Sequence[KnownAccount]) -> str | None:
    """The custom OAuth 2 account a step of ``service`` may act as (none: it acts as no
    one), by id, ``PROVIDER:NAME`` or name."""
    ref = step.account
    if not ref:
        return None
    for test in (lambda a: a.id == ref, lambda a: f"{a.service_id}:{a.name}" == ref,
                 lambda a: a.name == ref, lambda a: a.name.casefold() == ref.casefold()):
        found = [a for a in custom if test(a)]
        if len(found) == 1:
            return found[0].id
        if len(found) > 1:
            raise ValidationError(at, f"{len(found)} custom accounts are named {ref!r}: "
                                      "write PROVIDER:NAME instead")
    connected = ", ".join(f"{a.service_id}:{a.name}" for a in custom)
    raise ValidationError(at, f"{service.name} acts only as an account of a custom OAuth 2 "
                              f"provider, and none named {ref!r} is connected: "
                              + (f"choose one of {connected}" if connected else
                                 "add the provider with `hookline accounts custom add`, "
                                 "then `hookline accounts connect PROVIDER`"))
