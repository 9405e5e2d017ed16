"""Areas as a folder of YAML files: export, see what an edited folder would change, apply."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def area(name: str, text: str) -> dict[str, object]:
    return {"name": name,
            "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
            "reactions": [{"service": "notify", "reaction": "notify",
                           "params": {"title": text}}]}


def test_export_edit_and_sync_a_folder(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "areas.yaml"
    source.write_text(yaml.safe_dump([area("Tea", "Tea time"), area("Walk", "Go outside")]))
    run(capsys, "areas", "import", str(source))
    folder = tmp_path / "areas"
    assert run(capsys, "areas", "export", "--folder", str(folder))[0] == 0
    files = sorted(p.name for p in folder.glob("*.yaml"))
    assert [f.rsplit("-", 1)[0] for f in files] == ["tea", "walk"]
    before = {p.name: p.read_text() for p in folder.glob("*.yaml")}
    run(capsys, "areas", "export", "--folder", str(folder))
    assert {p.name: p.read_text() for p in folder.glob("*.yaml")} == before  # stable

    tea = next(folder.glob("tea-*.yaml"))
    edited = yaml.safe_load(tea.read_text())
    edited["reactions"][0]["params"]["title"] = "Green tea time"
    tea.write_text(yaml.safe_dump(edited, sort_keys=False))
    (folder / "new.yaml").write_text(yaml.safe_dump(area("Stretch", "Stretch")))

    code, out, _ = run(capsys, "areas", "sync", str(folder))
    assert code == 0
    assert "update  Tea (reactions)" in out
    assert "add     Stretch" in out
    assert "same    Walk" in out
    assert "2 change(s); run again with --apply" in out
    names = [a["name"] for a in yaml.safe_load(run(capsys, "areas", "export")[1])["areas"]]
    assert sorted(names) == ["Tea", "Walk"]  # nothing changed without --apply

    code, out, _ = run(capsys, "areas", "sync", str(folder), "--apply")
    assert code == 0 and "applied 2 change(s)" in out
    exported = yaml.safe_load(run(capsys, "areas", "export")[1])["areas"]
    titles = {a["name"]: a["reactions"][0]["params"]["title"] for a in exported}
    assert titles == {"Tea": "Green tea time", "Walk": "Go outside", "Stretch": "Stretch"}
    # The added file now carries its area's id: syncing again changes nothing.
    assert "nothing to change" in run(capsys, "areas", "sync", str(folder))[1]
