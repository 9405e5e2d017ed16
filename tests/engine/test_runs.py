"""Runs: conditions, templates between reactions, retries, auto-pause, dry runs, replay."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from engine import journal
from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import AREA_PAUSED, RUN_FINISHED
from engine.catalog.service import Item
from engine.errors import HooklineError, PermanentError, TemplateError, ValidationError
from integrations import files
from tests.engine import probe
from tests.engine.conftest import EngineFactory, next_message, stored_bytes


def area(**overrides: object) -> AreaSpec:
    data = {
        "name": "Probe",
        "trigger": {"service": "probe", "trigger": "hook"},
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "{{ trigger.title }}"}}],
    }
    data.update(overrides)
    return AreaSpec.from_dict(data)


async def test_false_condition_skips_and_records_why(engine: Engine) -> None:
    saved = await engine.create_area(area(condition="{{ 'release' in trigger.title | lower }}"))
    await engine.run_now(saved.id, {"title": "Just a note", "n": 1})
    await engine.run_now(saved.id, {"title": "New Release 2.0", "n": 2})
    await engine.wait_idle()
    runs = await engine.store.runs(saved.id)
    assert [r["status"] for r in reversed(runs)] == ["skipped", "succeeded"]
    assert runs[1]["condition"]["result"] is False
    assert [r["text"] for r in probe.controls.received] == ["New Release 2.0"]


async def test_each_areas_last_run_is_its_newest(engine: Engine) -> None:
    """What the lists show as "last run": the newest of each area's runs, found by one
    index lookup per area (a never-run area has none)."""
    gate = await engine.create_area(area(name="Gate", condition="{{ trigger.n > 1 }}"))
    other = await engine.create_area(area(name="Other"))
    never = await engine.create_area(area(name="Never"))
    for n in (2, 1, 3, 1):  # succeeded, skipped, succeeded, skipped
        await engine.run_now(gate.id, {"title": "t", "n": n})
    await engine.run_now(other.id, {"title": "t", "n": 5})
    await engine.wait_idle()
    last = await engine.store.last_runs()
    newest = (await engine.store.runs(gate.id))[0]
    assert set(last) == {gate.id, other.id} and never.id not in last
    assert last[gate.id]["id"] == newest["id"] and last[gate.id]["status"] == "skipped"
    assert last[other.id]["status"] == "succeeded"


async def test_second_reaction_uses_first_ones_output(engine: Engine) -> None:
    saved = await engine.create_area(area(reactions=[
        {"service": "probe", "reaction": "record", "params": {"text": "a {{ trigger.n }}"}},
        {"service": "probe", "reaction": "record",
         "params": {"text": "b {{ reactions[0].echo }}"}},
    ]))
    await engine.run_now(saved.id, {"title": "t", "n": 7})
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["a 7", "b a 7"]


async def test_transient_failure_is_retried_and_every_attempt_recorded(engine: Engine) -> None:
    probe.controls.fail_times = 2
    saved = await engine.create_area(area())
    await engine.run_now(saved.id, {"title": "x", "n": 1})
    await engine.wait_idle()
    run = (await engine.store.runs(saved.id))[0]
    assert run["status"] == "succeeded"
    attempts = run["steps"][0]["attempts"]
    assert [a.get("error") for a in attempts] == ["probe failure", "probe failure", None]


async def test_repeated_failures_pause_the_area_and_tell_the_user(engine: Engine) -> None:
    saved = await engine.create_area(area(reactions=[{"service": "probe", "reaction": "fail"}]))
    paused = next_message(engine, AREA_PAUSED)
    notified = next_message(engine, "notification")
    for i in range(3):
        await engine.run_now(saved.id, {"title": str(i), "n": i})
    message = await paused
    assert "3 runs in a row failed" in message.data["reason"]
    assert "the far side said no" in (await notified).data["body"]
    stored = await engine.store.area(saved.id)
    assert stored.paused_reason is not None and not stored.active
    runs = await engine.store.runs(saved.id)
    assert [r["status"] for r in runs] == ["failed"] * 3
    assert len(runs[0]["steps"][0]["attempts"]) == 1  # retry=False: tried once


async def test_a_run_error_names_the_reaction_as_the_editor_does(engine: Engine) -> None:
    """What Activity and the Health tooltip show: the reaction's number and name, and a
    field by its label, never the engine's path ("reactions[0]")."""
    failing = await engine.create_area(area(reactions=[
        {"service": "probe", "reaction": "record", "params": {"text": "ok"}},
        {"service": "probe", "reaction": "fail"}]))
    missing = await engine.create_area(area(name="Missing"))
    await engine.run_now(failing.id, {"title": "a", "n": 0})
    await engine.run_now(missing.id, {"n": 0})
    await engine.wait_idle()
    [failed] = await engine.store.runs(failing.id)
    assert failed["error"].startswith("Reaction 2 (Fail): the far side said no")
    [unfilled] = await engine.store.runs(missing.id)
    assert unfilled["error"].startswith("Reaction 1 (Record), field Text: ")
    assert unfilled["steps"][0]["error"].startswith("Reaction 1 (Record), field Text: ")
    assert "reactions[" not in failed["error"] + unfilled["error"]


async def test_one_failing_area_does_not_stall_another(engine: Engine) -> None:
    probe.controls.fail_with = PermanentError
    bad = await engine.create_area(area(reactions=[{"service": "probe", "reaction": "fail"}]))
    good = await engine.create_area(area(name="Good"))
    finished = next_message(engine, RUN_FINISHED, lambda m: m.data["area_id"] == good.id)
    await engine.run_now(bad.id, {"title": "b", "n": 0})
    await engine.run_now(good.id, {"title": "g", "n": 0})
    assert (await finished).data["status"] == "succeeded"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{{ trigger.titel }}", "Did you mean trigger.title?"),
        ("{{ ''.__class__.__mro__ }}", "Python internals"),
        ("{{ trigger['__class__'] }}", "start with '_'"),
        ("{{ secrets }}", "there is no value 'secrets' here"),
        ("{{ reactions[0].echo }}", "does not exist yet"),
        ("{{ trigger.title ", "a '{{' on line 1 is never closed"),
    ],
)
async def test_bad_templates_are_refused_before_save(engine: Engine, text: str,
                                                     problem: str) -> None:
    with pytest.raises(TemplateError) as caught:
        await engine.create_area(area(reactions=[
            {"service": "probe", "reaction": "record", "params": {"text": text}}]))
    assert caught.value.where == "reactions[0].params.text"
    assert problem in caught.value.problem
    assert engine.areas() == []


async def test_a_stray_utf16_half_from_a_payload_reaches_reactions_as_a_replacement(
        engine: Engine) -> None:
    # JSON may spell half of a UTF-16 pair on its own ("\\ud83c"): no encoder can write
    # it, so a reaction writing the text to a file or a message would fail. The bytes of
    # a file name that is not UTF-8 (U+DC80..U+DCFF) are kept for the files reactions.
    saved = await engine.create_area(area())
    await engine.run_now(saved.id, {"title": "Party \ud83c! caf\udce9.txt", "n": 1})
    await engine.wait_idle()
    assert probe.controls.received[0]["text"] == "Party \ufffd! caf\udce9.txt"


async def test_huge_template_output_fails_the_run_not_the_engine(engine: Engine) -> None:
    saved = await engine.create_area(area(reactions=[
        {"service": "probe", "reaction": "record",
         "params": {"text": "{% for i in range(100000) %}{{ trigger.title }}{% endfor %}"}}]))
    await engine.run_now(saved.id, {"title": "abcdefgh", "n": 1})
    await engine.wait_idle()
    run = (await engine.store.runs(saved.id))[0]
    assert run["status"] == "failed"
    assert "larger than 64 KiB" in run["error"]
    assert probe.controls.received == []


async def test_unknown_service_and_param_name_the_place(engine: Engine) -> None:
    with pytest.raises(ValidationError, match=r"reactions\[0\].*Did you mean 'probe'"):
        await engine.create_area(area(reactions=[{"service": "prob", "reaction": "record"}]))
    with pytest.raises(ValidationError) as caught:
        await engine.create_area(area(reactions=[
            {"service": "probe", "reaction": "record", "params": {"txt": "x"}}]))
    assert caught.value.where == "reactions[0].params.txt"
    assert "Did you mean 'text'" in caught.value.problem


def test_a_poll_interval_is_read_as_a_duration_or_refused_by_name() -> None:
    assert AreaSpec.from_dict({**area().to_dict(), "interval": "10m"}).interval == 600.0
    assert AreaSpec.from_dict({**area().to_dict(), "interval": 90}).interval == 90.0
    for bad, problem in (("soon", "'soon' is not a duration"), ({"every": 5}, "not a duration"),
                         (10**40, "under 100 years")):
        with pytest.raises(ValidationError) as caught:
            AreaSpec.from_dict({**area().to_dict(), "interval": bad})
        assert caught.value.where == "interval"
        assert caught.value.problem.startswith("how often to poll: ")
        assert problem in caught.value.problem


async def test_dry_run_shows_what_would_be_sent_and_runs_nothing(engine: Engine) -> None:
    spec = area(reactions=[{"service": "probe", "reaction": "record",
                            "params": {"text": "Hi {{ trigger.title }}", "token": "s3cret"}}])
    result = await engine.test_area(spec, {"title": "there", "n": 1})
    assert result["reactions"][0]["would_send"]["text"] == "Hi there"
    assert result["reactions"][0]["would_send"]["token"] == "••••••"
    assert probe.controls.received == []
    assert engine.areas() == []


async def test_a_poll_that_finds_nothing_is_not_passed_off_as_data(engine: Engine) -> None:
    """A dry run of a feed with no items says the values are examples; Run now refuses
    rather than send example values to real reactions."""
    spec = area(trigger={"service": "probe", "trigger": "items"})
    result = await engine.test_area(spec)
    assert result["note"] == ("Probe: “Items” found nothing right now: the trigger's "
                              "example values stand in for an item")
    assert result["trigger"] == {"title": "hello", "n": 1}
    saved = await engine.create_area(spec)
    with pytest.raises(HooklineError, match="nothing to run: Probe: “Items” found nothing"):
        await engine.run_now(saved.id)
    assert await engine.store.runs(saved.id) == []
    probe.controls.items = [Item("k1", {"title": "real", "n": 2})]
    result = await engine.test_area(spec)
    assert "note" not in result and result["trigger"] == {"title": "real", "n": 2}


@pytest.mark.parametrize(("fmt", "body"), [
    ("html", "<p>Tom &amp; Jerry &lt;3</p>"), ("text", "<p>Tom & Jerry <3</p>")])
async def test_values_inserted_into_html_are_escaped_and_into_text_are_not(
        engine: Engine, fmt: str, body: str) -> None:
    spec = area(trigger={"service": "webhook", "trigger": "incoming"}, reactions=[{
        "service": "email", "reaction": "send", "params": {
            "host": "mail.example.org", "from_address": "a@example.org",
            "to": "b@example.org", "subject": "{{ trigger.body.t }}",
            "body": "<p>{{ trigger.body.t }}</p>", "format": fmt}}])
    result = await engine.test_area(spec, {"body": {"t": "Tom & Jerry <3"}})
    sent = result["reactions"][0]["would_send"]
    assert sent["body"] == body
    assert sent["subject"] == "Tom & Jerry <3"


async def test_replay_sends_a_past_event_into_the_current_area(engine: Engine) -> None:
    saved = await engine.create_area(area())
    [event] = await engine.run_now(saved.id, {"title": "first", "n": 1})
    await engine.wait_idle()
    changed = area(reactions=[{"service": "probe", "reaction": "record",
                               "params": {"text": "again: {{ trigger.title }}"}}])
    await engine.update_area(saved.id, changed)
    await engine.replay(event.id)
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["first", "again: first"]


async def test_secret_params_are_resolved_at_run_time_and_never_recorded(
        engine: Engine, data_dir: Path, database: str) -> None:
    spec = area(reactions=[{"service": "probe", "reaction": "record",
                            "params": {"text": "x", "token": "tok-9f8e7d6c"}}])
    saved = await engine.create_area(spec)
    stored = await engine.store.area(saved.id)
    assert stored.spec.reactions[0].params["token"] is None
    await engine.run_now(saved.id, {"title": "t", "n": 1})
    await engine.wait_idle()
    assert probe.controls.received[0]["token"] == "tok-9f8e7d6c"
    run = (await engine.store.runs(saved.id))[0]
    assert run["steps"][0]["params"]["token"] == "••••••"
    raw = stored_bytes(data_dir, database)
    assert b"tok-9f8e7d6c" not in raw and b"probe" in raw


async def test_live_test_sends_for_real_but_records_nothing(engine: Engine) -> None:
    spec = area(reactions=[{"service": "probe", "reaction": "record",
                            "params": {"text": "live {{ trigger.title }}"}}])
    result = await engine.test_area(spec, {"title": "now", "n": 1}, live=True)
    assert result["reactions"][0]["status"] == "succeeded"
    assert result["reactions"][0]["output"] == {"echo": "live now"}
    assert [r["text"] for r in probe.controls.received] == ["live now"]
    assert engine.areas() == []
    assert await engine.store.runs() == []


# --- runs of one area overlapping while their line is written ----------------------------


def appending(path: Path, name: str = "Log") -> AreaSpec:
    return AreaSpec.from_dict({
        "name": name,
        "trigger": {"service": "probe", "trigger": "hook"},
        "reactions": [{"service": "files", "reaction": "append_text",
                       "params": {"path": str(path), "text": "{{ trigger.n }}"}}],
    })


async def test_an_appending_area_writes_every_event_in_order(
    engine: Engine, tmp_path: Path
) -> None:
    log = tmp_path / "log.txt"
    saved = await engine.create_area(appending(log))
    for n in range(200):
        await engine.run_now(saved.id, {"title": "t", "n": n})
    await engine.wait_idle()
    assert log.read_text().splitlines() == [str(n) for n in range(200)]
    runs = await engine.store.runs(saved.id, limit=500)
    assert len(runs) == 200
    assert {r["status"] for r in runs} == {"succeeded"}
    sizes = sorted(r["steps"][0]["output"]["size"] for r in runs)
    assert sizes[-1] == log.stat().st_size
    assert len(set(sizes)) == 200  # each run got its own line's outcome


async def test_a_hung_file_stalls_neither_other_areas_nor_the_service(
    make_engine: EngineFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await make_engine(service_concurrency=1)
    share, local = tmp_path / "share.txt", tmp_path / "local.txt"
    gate, inside = threading.Lock(), threading.Event()
    gate.acquire()
    real = files._append_lines

    def append_lines(path: Path, batch: list[Any], confirm: Any) -> list[Any]:
        if path == share:
            inside.set()
            with gate:  # a network share that stopped answering
                pass
        return real(path, batch, confirm)

    monkeypatch.setattr(files, "_append_lines", append_lines)
    stuck = await engine.create_area(appending(share, "Share"))
    fine = await engine.create_area(appending(local, "Local"))
    for n in range(3):
        await engine.run_now(stuck.id, {"title": "t", "n": n})
    assert await asyncio.to_thread(inside.wait, 5)
    for n in range(3):  # one call of the service at a time, yet these are not held up
        finished = next_message(engine, RUN_FINISHED, lambda m: m.data["area_id"] == fine.id)
        await engine.run_now(fine.id, {"title": "t", "n": n})
        assert (await finished).data["status"] == "succeeded"
    assert local.read_text() == "0\n1\n2\n"
    gate.release()
    await engine.wait_idle()
    assert share.read_text() == "0\n1\n2\n"
    runs = await engine.store.runs(stuck.id)
    assert [r["status"] for r in runs] == ["succeeded"] * 3


async def test_a_quick_run_is_written_once_a_long_one_shows_as_running(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[Any] = []
    submit = engine.writer.submit

    def spy(statements: Any = (), *args: Any, **kwargs: Any) -> Any:
        submitted.extend(statements)
        return submit(statements, *args, **kwargs)

    monkeypatch.setattr(engine.writer, "submit", spy)
    quick = await engine.create_area(area())
    await engine.run_now(quick.id, {"title": "t", "n": 1})
    await engine.wait_idle()
    assert [r["status"] for r in await engine.store.runs(quick.id)] == ["succeeded"]
    run_writes = (engine.journal._insert_run, engine.journal._update_steps,
                  engine.journal._finish_run)
    written = [(s.stmt, s.params.get("status")) for s in submitted if s.stmt in run_writes]
    assert written == [(engine.journal._insert_run, "succeeded")]  # one row, written once

    monkeypatch.setattr(journal, "HOLD_RUNNING", 0.01)
    share = tmp_path / "share.txt"
    gate = threading.Lock()
    gate.acquire()
    real = files._append_lines

    def append_lines(path: Path, batch: list[Any], confirm: Any) -> list[Any]:
        with gate:
            pass
        return real(path, batch, confirm)

    monkeypatch.setattr(files, "_append_lines", append_lines)
    slow = await engine.create_area(appending(share, "Slow"))
    await engine.run_now(slow.id, {"title": "t", "n": 1})
    for _ in range(500):  # the row appears once the run has been under way a while
        if [r["status"] for r in await engine.store.runs(slow.id)] == ["running"]:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the run under way never showed as running")
    gate.release()
    await engine.wait_idle()
    assert [r["status"] for r in await engine.store.runs(slow.id)] == ["succeeded"]
