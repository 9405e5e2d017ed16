"""A service's cost or access note reaches the reference page and `hookline services <id>`."""

from __future__ import annotations

import pytest

from engine.catalog.docs import markdown
from engine.catalog.service import AuthKind, Service
from engine.cli import main
from engine.registry import Registry


def section(page: str, service_id: str) -> str:
    """The part of the reference page about one service."""
    return page.split(f'<a id="{service_id}"></a>')[1].split("<a id=")[0]


NOTE = "Each call costs credits | billed per use: buy them in the developer console first."


def test_the_note_is_on_the_generated_page_under_its_service() -> None:
    paid = Service("paid", "Paid API", "Reads a paid API.", access_note=NOTE)
    free = Service("free", "Free API", "Reads a free API.", auth=AuthKind.NONE)
    page = markdown([paid, free])
    # The page is Markdown: a "|" in the note must not break a table around it.
    assert "**Cost and access:** Each call costs credits \\| billed per use" in section(
        page, "paid")
    assert "Cost and access" not in section(page, "free")  # none: nothing said
    assert paid.describe()["access_note"] == NOTE
    assert "access_note" not in free.describe()


@pytest.mark.parametrize("service_id", ["x", "reddit", "spotify", "twitch"])
def test_the_providers_that_charge_or_gate_access_say_so(service_id: str) -> None:
    service = Registry.load(plugins=False).service(service_id)
    assert service.access_note
    page = markdown(Registry.load(plugins=False))
    note = " ".join(service.access_note.split())
    assert f"**Cost and access:** {note}" in section(page, service_id)


def test_services_command_shows_the_note_for_one_service(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "reddit"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Cost and access: " in out
    assert "Responsible Builder Policy" in out
    assert main(["services"]) == 0  # the listing of every service stays short
    assert "Cost and access" not in capsys.readouterr().out
