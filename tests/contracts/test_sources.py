"""Every cloud service's requests are checked against a published description, or its
.source.md says which documentation pages (and of when) its fake provider follows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.contracts import plugin

ROOT = Path(__file__).resolve().parents[2]
#: Services that talk to a provider's API: those that declare its base address (read
#: from the source, so a service being rewritten cannot break this module's import).
CLOUD = sorted(
    path.stem
    for path in (ROOT / "integrations").glob("*.py")
    if re.search(r'api_base_url="https://', path.read_text(encoding="utf-8"))
)


def source_note(service: str) -> Path:
    return plugin.CONTRACTS / f"{service}.source.md"


def test_the_cloud_services_are_found() -> None:
    assert {"github", "dropbox", "trello", "gdrive", "weather"} <= set(CLOUD)


@pytest.mark.parametrize("service", CLOUD)
def test_a_description_or_the_pages_its_fake_follows(service: str) -> None:
    path = plugin.description_file(service)
    note = source_note(service)
    if path is None:
        if not note.exists():
            pytest.skip(f"{service}: no tests/contracts/{service}.json and no {note.name}: "
                        "its requests are not checked yet")
        text = note.read_text(encoding="utf-8")
        follows = [line.strip("- ") for line in text.splitlines() if "Follows:" in line]
        assert follows, f"{note} names no page its fake follows (a '- Follows: URL (read DATE)')"
        pytest.skip(f"{service}: no description here, see {note.relative_to(ROOT)}: "
                    + "; ".join(follows))
    assert note.exists(), f"{path.name} has no {note.name} saying where it came from and when"
    text = note.read_text(encoding="utf-8")
    assert re.search(r"^- Source: \S+", text, re.M), f"{note} names no source"
    assert re.search(r"^- Fetched: \d{4}-\d{2}-\d{2}", text, re.M), f"{note} gives no date"
    description = plugin.description(service)
    assert description is not None and description.operations, f"{path} has no operations"


def test_each_description_is_loaded_once() -> None:
    assert plugin.description("github") is plugin.description("github")
