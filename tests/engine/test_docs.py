"""The services page is generated from the catalog and kept current."""

from __future__ import annotations

from pathlib import Path

from engine.catalog.docs import markdown
from engine.registry import Registry

PAGE = Path(__file__).resolve().parents[2] / "docs" / "services.md"


def test_services_page_matches_the_catalog() -> None:
    expected = markdown(Registry.load(plugins=False))
    assert PAGE.read_text(encoding="utf-8") == expected, (
        "docs/services.md is out of date: run `hookline services --markdown > "
        "docs/services.md`")


def test_every_service_trigger_and_reaction_is_on_the_page() -> None:
    page = markdown(Registry.load(plugins=False))
    for service in Registry.load(plugins=False):
        for spec in [*service.triggers.values(), *service.reactions.values()]:
            assert f"`{service.id}.{spec.id}`" in page
