"""Which services exist: the built-in list (explicit, so a frozen build finds them)
plus third-party packages that declare a ``hookline.services`` entry point."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from engine.catalog.service import ReactionSpec, Service, TriggerSpec
from engine.errors import CatalogError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hookline.services"

#: Modules of the built-in services; each defines ``service``. The PyInstaller spec
#: reads this list too, so adding a service here is all it takes to ship it.
BUILTIN_MODULES: tuple[str, ...] = (
    "integrations.timer",
    "integrations.webhook",
    "integrations.http",
    "integrations.rss",
    "integrations.files",
    "integrations.notify",
    "integrations.email",
    "integrations.shell",
    "integrations.mqtt",
    "integrations.github",
    "integrations.flow",
    "integrations.machine",
    "integrations.weather",
    "integrations.telegram",
    "integrations.discord",
    "integrations.dropbox",
    "integrations.gdrive",
    "integrations.spotify",
    "integrations.reddit",
    "integrations.notion",
    "integrations.unsplash",
    "integrations.twitch",
    "integrations.dailymotion",
    "integrations.todoist",
    "integrations.trello",
    "integrations.x",
)


@dataclass
class Registry:
    """The catalog of services, by id.

    Attributes:
        broken: plugins that failed to load, with the reason (shown, never fatal).
    """

    services: dict[str, Service] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)

    def add(self, service: Service) -> None:
        if not isinstance(service, Service):
            raise TypeError(f"{service!r} is not a hookline Service")
        if service.id in self.services:
            raise CatalogError(f"Two services declare the id {service.id!r}")
        self.services[service.id] = service

    def __iter__(self) -> Iterator[Service]:
        return iter(sorted(self.services.values(), key=lambda s: s.name.lower()))

    def service(self, service_id: str) -> Service:
        try:
            return self.services[service_id]
        except KeyError:
            raise CatalogError.unknown("service", service_id, self.services) from None

    def trigger(self, service_id: str, trigger_id: str) -> TriggerSpec:
        service = self.service(service_id)
        try:
            return service.triggers[trigger_id]
        except KeyError:
            raise CatalogError.unknown(f"trigger of {service.name}", trigger_id,
                                       service.triggers) from None

    def reaction(self, service_id: str, reaction_id: str) -> ReactionSpec:
        service = self.service(service_id)
        try:
            return service.reactions[reaction_id]
        except KeyError:
            raise CatalogError.unknown(f"reaction of {service.name}", reaction_id,
                                       service.reactions) from None

    def action(self, service_id: str, action_id: str, is_trigger: bool
               ) -> TriggerSpec | ReactionSpec:
        """A step's declaration: its service's trigger, or its reaction."""
        return (self.trigger(service_id, action_id) if is_trigger
                else self.reaction(service_id, action_id))

    @classmethod
    def load(cls, modules: Iterable[str] = BUILTIN_MODULES, plugins: bool = True) -> Registry:
        """The built-in services and, with ``plugins``, the installed third-party ones."""
        registry = cls()
        for name in modules:
            registry.add(importlib.import_module(name).service)
        if plugins:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    loaded = ep.load()
                    registry.add(getattr(loaded, "service", loaded))
                except Exception as exc:  # a broken plugin must not stop the app
                    registry.broken[ep.name] = f"{type(exc).__name__}: {exc}"
                    log.warning("service plugin %s failed to load: %s", ep.name, exc)
        return registry
