"""Presets: every shipped preset loads, becomes a valid area once its blanks are
filled, and "Use" hands the editor the right spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.pages.presets import PresetsPage
from desktop.presets import PRESETS_DIR, PresetError, load_presets, parse_blank, preset_from_dict
from engine.areas import AreaSpec, check_area
from engine.catalog.params import Param, ParamType
from engine.registry import Registry
from engine.settings import Settings

LOCAL_SERVICES = {"timer", "webhook", "http", "rss", "files", "notify", "email", "shell"}

#: Example values by parameter type, for parameters whose declared example is a template
#: (a template may name fields the preset's trigger does not have).
BY_TYPE: dict[ParamType, Any] = {
    ParamType.PATH: "~/Documents/report.txt",
    ParamType.URL: "https://example.org/data.json",
    ParamType.EMAIL: "me@example.org",
    ParamType.TEXT: "example",
    ParamType.MULTILINE: "example",
    ParamType.SECRET: "a-long-random-secret",
}


def example_for(param: Param) -> Any:
    example = param.example
    if example in (None, "") or (isinstance(example, str) and "{{" in example):
        return BY_TYPE[param.type]
    return example


def test_every_shipped_file_loads() -> None:
    files = sorted(PRESETS_DIR.glob("*.yaml"))
    presets = load_presets()
    assert len(presets) == len(files) >= 12
    assert len({p.id for p in presets}) == len(presets)
    assert len({p.name for p in presets}) == len(presets)


@pytest.mark.parametrize("preset", load_presets(), ids=lambda p: p.id)
def test_preset_is_a_valid_area_once_its_blanks_are_filled(preset: Any) -> None:
    registry = Registry.load()
    assert set(preset.services) <= LOCAL_SERVICES
    values = {}
    for blank in preset.blanks:
        step = (preset.spec_dict["trigger"] if blank.is_trigger
                else preset.spec_dict["reactions"][blank.reaction])
        declared = (registry.trigger(step["service"], step["trigger"]) if blank.is_trigger
                    else registry.reaction(step["service"], step["reaction"]))
        param = declared.param(blank.param)
        assert param is not None, f"{preset.id}: blank {blank.path} names no parameter"
        values[blank.path] = example_for(param)
    checked = check_area(AreaSpec.from_dict(preset.filled(values)), registry,
                         Settings(allow_shell=True))
    assert checked.spec.name == preset.name
    assert preset.description and not preset.description.endswith(" ")


def test_a_required_blank_left_empty_is_refused() -> None:
    [feed] = [p for p in load_presets() if p.id == "feed-to-notification"]
    assert [b.path for b in feed.blanks] == ["trigger.params.url"]
    from engine.errors import ValidationError

    with pytest.raises(ValidationError, match=r"trigger\.params\.url"):
        check_area(AreaSpec.from_dict(feed.spec()), Registry.load(), Settings())


def test_bad_preset_files_are_left_out_with_a_reason(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    good = (PRESETS_DIR / "03-weekday-standup.yaml").read_text(encoding="utf-8")
    (tmp_path / "01-good.yaml").write_text(good, encoding="utf-8")
    (tmp_path / "02-filled-blank.yaml").write_text(
        good.replace("blanks: []", 'blanks: ["trigger.params.time"]'), encoding="utf-8")
    (tmp_path / "03-broken.yaml").write_text("name: [unclosed", encoding="utf-8")
    presets = load_presets(tmp_path)
    assert [p.id for p in presets] == ["good"]
    assert "must be left empty" in caplog.text
    with pytest.raises(PresetError, match="reactions\\[N\\]"):
        parse_blank("reactions.0.params.to")
    with pytest.raises(PresetError, match="no reaction 3"):
        preset_from_dict("x", {"name": "x", "description": "y", "blanks":
                               ["reactions[3].params.to"],
                               "trigger": {"service": "timer", "trigger": "every"},
                               "reactions": [{"service": "notify", "reaction": "notify"}]})


async def test_gallery_searches_and_use_passes_the_preset(
        bridge: EngineBridge, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    page = PresetsPage(bridge)
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.show()
    assert len(page.visible_cards()) == len(load_presets()) >= 12
    [feed] = [c for c in page.cards if c.preset.id == "feed-to-notification"]
    assert feed.needs.text() == "You fill in: Feed address"

    qtbot.keyClicks(page.search, "email")
    names = {c.preset.name for c in page.visible_cards()}
    assert "New file in a folder → email me" in names
    assert "Email from someone → notification" in names
    assert "Daily reminder at 09:00" not in names
    page.search.clear()
    qtbot.keyClicks(page.search, "nothing like this")
    assert page.visible_cards() == []
    assert page.no_match.isVisible() and "No presets match" in page.no_match.text()
    page.search.clear()
    assert not page.no_match.isVisible()

    opened: list[dict[str, Any]] = []
    monkeypatch.setattr(page, "open_editor", lambda spec: opened.append(spec))
    qtbot.mouseClick(feed.use_button, Qt.MouseButton.LeftButton)
    assert opened == [feed.preset.spec_dict]
    opened[0]["name"] = "changed by the editor"
    assert feed.preset.spec_dict["name"] == "New feed item → notification"  # a copy


async def test_use_opens_the_real_editor_on_the_preset(bridge: EngineBridge,
                                                       qtbot: QtBot) -> None:
    editor_module = pytest.importorskip("desktop.editor")
    page = PresetsPage(bridge)
    qtbot.addWidget(page)
    [card] = [c for c in page.cards if c.preset.id == "heartbeat-ping"]
    editor = page.use(card.preset)
    assert isinstance(editor, editor_module.AreaEditor)
    assert editor.isVisible()
    held = editor.spec_dict()
    assert held["name"] == "Heartbeat ping every 5 minutes"
    assert held["trigger"]["service"] == "timer"
    assert [(r["service"], r["reaction"]) for r in held["reactions"]] == [("http", "request")]
    assert not held["reactions"][0]["params"].get("url")  # the blank is still to fill
    editor.close()  # a child of the page, deleted on close


async def test_saving_a_preset_says_where_the_automation_went(bridge: EngineBridge,
                                                              qtbot: QtBot) -> None:
    from desktop.editor import AreaEditor
    from tests.desktop.conftest import signal_once

    page = PresetsPage(bridge)
    qtbot.addWidget(page)
    page.show()
    assert not page.status.isVisible()
    [card] = [c for c in page.cards if c.preset.name == "Daily reminder at 09:00"]
    qtbot.mouseClick(card.use_button, Qt.MouseButton.LeftButton)
    [editor] = [w for w in page.findChildren(AreaEditor) if w.isVisible()]
    blank = editor.cards[0].form.field("title")
    assert blank is not None
    qtbot.keyClicks(blank.editor, "Water the plants")
    saved = signal_once(editor.saved)
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    (area_id,) = await saved
    assert page.status.isVisible()
    assert page.status.text() == (f"Saved: “{bridge.area(area_id).name}” is on the "
                                  "Automations screen.")
