"""Importing areas: all or nothing, the same limits with the engine running or not, and
one line for a file that cannot be an areas file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from engine.app import Engine
from engine.area_files import MAX_FILE_BYTES, read_areas
from engine.cli import main
from engine.errors import ValidationError
from tests.engine.conftest import EngineFactory

GOOD = {"name": "Tick", "trigger": {"service": "timer", "trigger": "every",
                                    "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify", "params": {"title": "t"}}]}
BAD = {**GOOD, "name": "Typo", "reactions": [{"service": "notify", "reaction": "notfy",
                                              "params": {}}]}
BOMB = b"""a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize(("raw", "problem"), [
    (b"name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at position 9): save it as UTF-8"),
    (BOMB, "unfolds to more than 20,000 values (YAML aliases repeat what they name): "
           "write it out plainly"),
    (b"x" * (MAX_FILE_BYTES + 1), "the file is larger than 1024 KiB; an areas file is far "
                                  "smaller: check it is the right file"),
    (b"name: [unclosed\n", "not valid YAML or JSON (line 2): expected ',' or ']', but got "
                           "'<stream end>'"),
    (b"42\n", "holds no areas: give {areas: [...]}, a list of areas or one area"),
])
def test_a_file_that_cannot_be_areas_is_one_clear_line(raw: bytes, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        read_areas(raw, "areas.yaml")
    assert str(caught.value) == f"areas.yaml: {problem}"


def test_only_true_and_false_are_booleans() -> None:
    [area] = read_areas(b"name: off\nenabled: false\nnote: yes\n", "a.yaml")
    assert area == {"name": "off", "enabled": False, "note": "yes"}


def cli(*args: str) -> tuple[int, str]:
    return main(list(args)), ""


@pytest.mark.parametrize("engine_running", [False, True])
async def test_import_is_all_or_nothing_running_or_not(
        make_engine: EngineFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        engine_running: bool) -> None:
    engine: Engine | None = await make_engine() if engine_running else None
    source = tmp_path / "two.yaml"
    source.write_text(yaml.safe_dump({"areas": [GOOD, BAD]}), encoding="utf-8")
    code = await asyncio.to_thread(main, ["areas", "import", str(source)])
    err = capsys.readouterr().err
    assert code == 2
    assert "nothing imported: 1 of 2 areas has a problem" in err
    assert "“Typo”: reactions[0]" in err and "notify" in err
    # nothing was made: importing the fixed file makes each area once
    source.write_text(yaml.safe_dump({"areas": [GOOD, {**BAD, "reactions": GOOD["reactions"]}]}),
                      encoding="utf-8")
    code = await asyncio.to_thread(main, ["areas", "import", str(source)])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith(f"imported 2 area(s) from {source}:")
    await asyncio.to_thread(main, ["areas", "list", "--json"])
    assert sorted(a["name"] for a in json.loads(capsys.readouterr().out)) == ["Tick", "Typo"]
    if engine is not None:  # the running engine made them (through its control channel)
        assert sorted(a.name for a in engine.areas()) == ["Tick", "Typo"]


@pytest.mark.parametrize("engine_running", [False, True])
async def test_the_same_limits_apply_with_the_engine_running(
        make_engine: EngineFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        engine_running: bool) -> None:
    if engine_running:
        await make_engine()
    for raw, said in ((BOMB, "unfolds to more than"), (b"name: caf\xe9", "not UTF-8"),
                      (b"#" * (40 * 1024 * 1024), "larger than 1024 KiB")):
        source = tmp_path / "x.yaml"
        source.write_bytes(raw)
        code = await asyncio.to_thread(main, ["areas", "import", str(source)])
        err = capsys.readouterr().err
        assert code == 2 and said in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
