"""The run ledger: run records safe against a kill before their database commit."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.errors import StorageError
from engine.storage.ledger import LEDGER_DIR, Ledger, fold, read_entries
from tests.engine import probe
from tests.engine.conftest import EngineFactory, fail_run_records


def file_ledger_only(engine: Engine) -> None:
    """For a test that reaches into the ledger's files: on a PostgreSQL database the
    ledger is the ``run_ledger`` table (engines there share it; test_standby.py)."""
    if not isinstance(engine.journal.ledger, Ledger):
        pytest.skip("the run ledger's files: on PostgreSQL it is the run_ledger table, "
                    "tested in test_standby.py")


def area() -> AreaSpec:
    return AreaSpec.from_dict({
        "name": "Probe",
        "trigger": {"service": "probe", "trigger": "hook"},
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "{{ trigger.title }}"}}],
    })


async def test_runs_whose_records_missed_the_database_are_recovered_not_rerun(
        make_engine: EngineFactory, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = await make_engine()
    file_ledger_only(engine)
    saved = await engine.create_area(area())
    fail_run_records(engine)
    for n in range(3):
        await engine.run_now(saved.id, {"title": f"t{n}"})
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["t0", "t1", "t2"]
    assert await engine.store.runs(saved.id) == []  # nothing reached the database
    assert "kept in" in caplog.text and "saved at the next start" in caplog.text
    await engine.aclose()
    assert Ledger(data_dir / LEDGER_DIR).segments(), "the ledger is kept for the next start"

    again = await make_engine()
    await again.wait_idle()
    runs = await again.store.runs(saved.id)
    assert sorted(r["status"] for r in runs) == ["succeeded"] * 3
    assert not any(r["resumed"] for r in runs)
    assert sorted(r["steps"][0]["output"]["echo"] for r in runs) == ["t0", "t1", "t2"]
    assert await again.store.pending_events() == []
    assert len(probe.controls.received) == 3, "no reaction ran twice"
    assert again.journal.ledger.segments() == [again.journal.ledger.current], "replayed"


async def test_a_run_started_only_in_the_ledger_is_resumed_and_marked(
        make_engine: EngineFactory, data_dir: Path) -> None:
    engine = await make_engine()
    saved = await engine.create_area(area())
    fail_run_records(engine)
    # A kill between the start and the finish: keep only the start's ledger line.
    real_save = engine.journal.save
    engine.journal.save = lambda record: None  # type: ignore[method-assign]
    await engine.run_now(saved.id, {"title": "cut"})
    await engine.wait_idle()
    engine.journal.save = real_save  # type: ignore[method-assign]
    await engine.aclose()

    again = await make_engine()
    await again.wait_idle()
    runs = await again.store.runs(saved.id)
    assert sorted((r["status"], r["resumed"]) for r in runs) == [
        ("interrupted", False), ("succeeded", True)]
    assert [r["text"] for r in probe.controls.received] == ["cut", "cut"]


async def test_committed_segments_are_removed_as_the_ledger_grows(
        engine: Engine, data_dir: Path) -> None:
    file_ledger_only(engine)
    engine.journal.ledger.segment_bytes = 300
    saved = await engine.create_area(area())
    for n in range(40):
        await engine.run_now(saved.id, {"title": f"t{n}"})
    await engine.wait_idle()
    assert engine.journal.ledger.current.name != "runs-00000001.ledger", "it rotated"
    assert engine.journal.ledger.segments() == [engine.journal.ledger.current]
    await engine.aclose()
    assert Ledger(data_dir / LEDGER_DIR).segments() == [], "a clean stop leaves no ledger"


def test_a_line_cut_short_by_a_kill_is_skipped(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.open()
    ledger.append({"run": 1, "event": 5, "area": "a"}, {"steps": "[]"})
    ledger.append({"run": 1, "status": "succeeded", "finished": "2026-01-01T00:00:00+00:00"},
                  {"steps": '[{"status":"succeeded"}]'})
    ledger.close(remove=False)
    with ledger.segments()[0].open("a") as segment:
        segment.write('{"run":2,"event":6,"ar')
    state = fold(read_entries(ledger.segments()))
    assert list(state) == [1]
    assert state[1]["status"] == "succeeded" and state[1]["steps"] == [{"status": "succeeded"}]


def test_a_full_disk_refuses_the_run_with_a_clear_message(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    ledger = Ledger(tmp_path)
    ledger.open()
    (tmp_path / "runs-00000002.ledger").symlink_to("/dev/full")
    ledger.rotate()
    ledger.append({"run": 1}, {"steps": "[]"})
    with pytest.raises(StorageError, match="free some disk space"):
        ledger.flush()


async def test_a_full_disk_holds_the_run_before_its_reaction_until_there_is_space(
        engine: Engine, data_dir: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    file_ledger_only(engine)
    saved = await engine.create_area(area())
    ledger = engine.journal.ledger
    nxt = ledger.folder / f"runs-{int(ledger.current.name[5:13]) + 1:08d}.ledger"
    nxt.symlink_to("/dev/full")
    ledger.rotate()
    await engine.run_now(saved.id, {"title": "sent once there is space"})
    while engine.disk_trouble is None:
        await asyncio.sleep(0.01)
    assert "free some disk space" in engine.disk_trouble
    assert probe.controls.received == [], "the reaction did not act unrecorded"
    # space again: the segment's descriptor now reaches an ordinary file
    spare = os.open(ledger.folder / "space.ledger", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    assert ledger._fd is not None
    os.dup2(spare, ledger._fd)
    os.close(spare)
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["sent once there is space"]
    runs = await engine.store.runs(saved.id)
    assert sorted(r["status"] for r in runs) == ["failed", "succeeded"]
    [waited] = [r for r in runs if r["status"] == "failed"]
    assert "it runs again once the disk takes writes" in waited["error"]


def test_a_run_spread_over_segments_is_read_in_order(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, segment_bytes=1)
    ledger.open()
    ledger.append({"run": 7, "event": 3, "area": "a", "started": "2026-01-01T00:00:00+00:00"})
    ledger.flush()
    ledger.rotate()
    ledger.append({"run": 7}, {"steps": '[{"status":"running"}]'})
    ledger.rotate()
    ledger.append({"run": 7, "status": "failed", "error": "boom"},
                  {"steps": '[{"status":"failed"}]'})
    ledger.close(remove=False)
    segments = ledger.segments()
    assert [p.name for p in segments] == [
        "runs-00000001.ledger", "runs-00000002.ledger", "runs-00000003.ledger"]
    [(run_id, run)] = fold(read_entries(segments)).items()
    assert run_id == 7 and run["area"] == "a" and run["error"] == "boom"
    assert run["steps"] == [{"status": "failed"}]


async def test_a_ledger_that_cannot_be_replayed_is_set_aside_and_the_engine_starts(
        make_engine: EngineFactory, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = await make_engine()
    file_ledger_only(engine)
    saved = await engine.create_area(area())
    [journaled] = await engine.run_now(saved.id, {"title": "x"})
    await engine.wait_idle()
    await engine.aclose()
    broken = Ledger(data_dir / LEDGER_DIR)
    broken.open()
    broken.append({"run": 999, "event": journaled.id, "area": saved.id})
    broken.append({"run": 999, "status": None, "finished": "2026-01-01T00:00:00+00:00"})
    broken.close(remove=False)

    again = await make_engine()
    assert again.started
    assert "could not bring the run ledger into the database" in caplog.text
    assert list((data_dir / LEDGER_DIR).glob("*.unreplayed"))
    assert len(await again.store.runs(saved.id)) == 1
