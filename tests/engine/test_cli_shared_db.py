"""``hookline areas`` offline on a PostgreSQL database another machine's engine is active on.

The active engine counts event and run ids in memory and attaches areas at its start:
a change written beside it, by an engine opened offline, is refused (a read is not).
The other machine is an engine on a data folder of its own, in this process; the
command line runs in a thread of its own (it starts its own event loop).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.app import Engine
from engine.areas import AreaSpec
from engine.cli import main
from engine.settings import Settings, save_settings
from tests.engine.conftest import FAST, registry, scalar


def ticking(name: str, folder: Path) -> dict[str, Any]:
    """An area whose timer waits an hour; fired now, it writes a line in ``folder``."""
    return {"name": name, "trigger": {"service": "timer", "trigger": "every",
                                      "params": {"interval": "1h"}},
            "reactions": [{"service": "files", "reaction": "append_text",
                           "params": {"path": str(folder / "ticks.txt"), "text": "tick\n"}}]}


REFUSED = "another Hookline engine is active on this database (server pid"


@pytest.fixture
async def active(postgres_engine_url: str, tmp_path: Path) -> AsyncIterator[Engine]:
    """The active engine of the database, on "another machine" (its own data folder),
    with one area."""
    settings = Settings.from_mapping({**FAST, "database_url": postgres_engine_url})
    engine = Engine(tmp_path / "there", settings=settings, registry=registry())
    await engine.start()
    await engine.create_area(AreaSpec.from_dict(ticking("Tick", tmp_path)))
    yield engine
    await engine.aclose()


@pytest.fixture
def here(postgres_engine_url: str, tmp_path: Path) -> Path:
    """This machine's data folder, on the same database, with no engine running."""
    folder = tmp_path / "here"
    save_settings(folder, Settings(database_url=postgres_engine_url))
    return folder


async def hookline(capsys: pytest.CaptureFixture[str], here: Path, *args: str
                   ) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["--data-dir", str(here), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def count(here: Path, url: str, table: str) -> int:
    return int(scalar(here, url, f"SELECT count(*) FROM {table}"))  # noqa: S608 - ours


def area_file(tmp_path: Path) -> Path:
    source = tmp_path / "new.yaml"
    source.write_text(yaml.safe_dump(ticking("New", tmp_path)))
    return source


async def test_a_change_offline_is_refused_while_another_engine_is_active(
        active: Engine, here: Path, postgres_engine_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await hookline(capsys, here, "areas", "import", str(area_file(tmp_path)))
    assert (code, out) == (2, "")
    assert REFUSED in err and "Nothing was changed" in err
    assert "Run the command on that engine's computer." in err  # import: no remote twin
    assert count(here, postgres_engine_url, "areas") == 1

    code, _, err = await hookline(capsys, here, "areas", "run", "Tick")
    assert code == 2 and REFUSED in err
    assert "`hookline remote areas run Tick`" in err  # what `hookline remote` offers
    assert count(here, postgres_engine_url, "events") == 0  # no id the active one counts on

    code, _, err = await hookline(capsys, here, "areas", "disable", "Tick")
    assert code == 2 and "`hookline remote areas disable Tick`" in err
    code, _, err = await hookline(capsys, here, "areas", "remove", "Tick")
    assert code == 2 and REFUSED in err
    [area] = active.areas()
    assert (await active.store.area(area.id)).state == "active"

    code, out, _ = await hookline(capsys, here, "areas", "list", "--json")  # reads work
    assert code == 0 and [a["name"] for a in json.loads(out)] == ["Tick"]
    code, out, _ = await hookline(capsys, here, "areas", "show", "Tick")
    assert code == 0 and "name: Tick" in out


async def test_the_change_works_offline_once_no_engine_is_active(
        active: Engine, here: Path, postgres_engine_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = area_file(tmp_path)
    code, _, err = await hookline(capsys, here, "areas", "import", str(source))
    assert code == 2 and REFUSED in err
    await active.aclose()  # its lease ends with it

    code, out, err = await hookline(capsys, here, "areas", "import", str(source))
    assert (code, err) == (0, "") and "imported 1 area(s)" in out
    assert count(here, postgres_engine_url, "areas") == 2
    code, out, _ = await hookline(capsys, here, "areas", "run", "New")
    assert code == 0 and "fired event 1" in out
    assert (tmp_path / "ticks.txt").read_text() == "tick\n"
