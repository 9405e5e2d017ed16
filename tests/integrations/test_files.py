"""Tests for the Files service, on real files in a temporary folder."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine import HttpClient, PermanentError, PollResult, ReactionContext
from engine.errors import StorageError
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import files
from integrations.files import service


async def poll(http: HttpClient, trigger: str, params: Mapping[str, Any]) -> PollResult:
    spec = service.triggers[trigger]
    assert spec.poll is not None
    return await spec.poll(poll_context(spec, params, http))


async def react(http: HttpClient, reaction: str, params: Mapping[str, Any]) -> Any:
    spec = service.reactions[reaction]
    return await spec.run(reaction_context(spec, params, http))


def names(result: PollResult) -> list[str]:
    """The names a check lists, sorted (it lists them newest first; the order they fire
    in is oldest_first's, tested on its own)."""
    return sorted(item.data["name"] for item in result.items)


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "report.txt").write_text("hello")
    (folder / "scan.PDF").write_bytes(b"%PDF")
    (folder / ".hidden").write_text("x")
    (folder / ".report.txt.swp").write_text("x")
    (folder / "~$letter.docx").write_text("x")
    (folder / "notes.txt~").write_text("x")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.txt").write_text("deep")
    (folder / ".git").mkdir()
    (folder / ".git" / "config.txt").write_text("x")
    return folder


# --- file_created / file_modified ----------------------------------------------------------


async def test_new_files_fire_oldest_first_by_name_among_equal_times(
        http: HttpClient, tmp_path: Path) -> None:
    """Files fired in reverse name order (the poller reversed the listing); they carry
    their modification time now, and a folder is listed by name."""
    folder = tmp_path / "drop"
    folder.mkdir()
    for name, at in (("c.txt", 100), ("a.txt", 300), ("b.txt", 200), ("d1.txt", 400),
                     ("d0.txt", 400)):
        (folder / name).write_text(name)
        os.utime(folder / name, (1_700_000_000 + at, 1_700_000_000 + at))
    result = await poll(http, "file_created", {"folder": str(folder)})
    assert [i.data["name"] for i in oldest_first(result.items)] == [
        "c.txt", "b.txt", "a.txt", "d0.txt", "d1.txt"]


async def test_new_file_lists_visible_files_with_their_details(
    http: HttpClient, watched: Path
) -> None:
    result = await poll(http, "file_created", {"folder": str(watched)})
    assert names(result) == ["report.txt", "scan.PDF"]
    by_name = {i.data["name"]: i.data for i in result.items}
    report = by_name["report.txt"]
    mtime = (watched / "report.txt").stat().st_mtime
    assert report == {
        "path": str(watched / "report.txt"),
        "name": "report.txt",
        "folder": str(watched),
        "size": 5,
        "modified": report["modified"],
        "extension": "txt",
    }
    assert datetime.fromisoformat(report["modified"]).timestamp() == int(mtime)
    assert by_name["scan.PDF"]["extension"] == "pdf"


async def test_pattern_filters_names_and_may_list_several(http: HttpClient, watched: Path) -> None:
    (watched / "photo.jpg").write_bytes(b"")
    only_text = await poll(http, "file_created", {"folder": str(watched), "pattern": "*.txt"})
    assert names(only_text) == ["report.txt"]
    two = await poll(http, "file_created", {"folder": str(watched), "pattern": "*.jpg; report.*"})
    assert names(two) == ["photo.jpg", "report.txt"]
    any_case = await poll(http, "file_created", {"folder": str(watched), "pattern": "*.pdf"})
    assert names(any_case) == ["scan.PDF"]


async def test_a_pattern_starting_with_a_dot_finds_dotted_files(
    http: HttpClient, watched: Path
) -> None:
    result = await poll(http, "file_created", {"folder": str(watched), "pattern": ".h*"})
    assert names(result) == [".hidden"]


async def test_subfolders_are_watched_only_when_asked(http: HttpClient, watched: Path) -> None:
    result = await poll(http, "file_created", {"folder": str(watched), "recursive": True})
    assert names(result) == ["deep.txt", "report.txt", "scan.PDF"]
    [deep] = [i for i in result.items if i.data["name"] == "deep.txt"]
    assert deep.data["folder"] == str(watched / "sub")
    assert deep.key is not None
    assert deep.key.startswith("sub/deep.txt|")


async def test_created_key_stays_while_the_file_changes_modified_key_does_not(
    http: HttpClient, watched: Path
) -> None:
    params = {"folder": str(watched), "pattern": "report.txt"}
    created_before = (await poll(http, "file_created", params)).items[0].key
    modified_before = (await poll(http, "file_modified", params)).items[0].key
    assert (await poll(http, "file_modified", params)).items[0].key == modified_before

    report = watched / "report.txt"
    with report.open("a") as out:
        out.write(" world")
    assert (await poll(http, "file_created", params)).items[0].key == created_before
    modified_after = await poll(http, "file_modified", params)
    assert modified_after.items[0].key != modified_before
    assert modified_after.items[0].data["size"] == 11


async def test_modified_key_changes_with_the_time_even_at_the_same_size(
    http: HttpClient, watched: Path
) -> None:
    params = {"folder": str(watched), "pattern": "report.txt"}
    before = (await poll(http, "file_modified", params)).items[0].key
    report = watched / "report.txt"
    report.write_text("HELLO")
    os.utime(report, ns=(report.stat().st_atime_ns, report.stat().st_mtime_ns + 1_000_000))
    assert (await poll(http, "file_modified", params)).items[0].key != before


async def test_a_file_deleted_and_created_again_is_new(http: HttpClient, watched: Path) -> None:
    params = {"folder": str(watched), "pattern": "report.txt"}
    before = (await poll(http, "file_created", params)).items[0].key
    report = watched / "report.txt"
    with report.open("rb"):  # keeps the old inode alive, so the new file cannot reuse it
        report.unlink()
        report.write_text("hello")
        after = (await poll(http, "file_created", params)).items[0].key
    assert after != before


async def test_a_missing_folder_says_which_and_what_to_do(http: HttpClient, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(PermanentError) as caught:
        await poll(http, "file_created", {"folder": str(missing)})
    assert str(caught.value) == (
        f"The folder {missing} does not exist: create it or choose another folder"
    )


async def test_a_file_given_as_folder_is_refused(http: HttpClient, watched: Path) -> None:
    with pytest.raises(PermanentError, match="is a file, not a folder"):
        await poll(http, "file_modified", {"folder": str(watched / "report.txt")})


async def test_a_relative_folder_is_refused(http: HttpClient) -> None:
    with pytest.raises(PermanentError) as caught:
        await poll(http, "file_created", {"folder": "Downloads"})
    assert str(caught.value) == (
        "Folder: 'Downloads' is not a full path: use a full path like ~/notes.txt"
    )


async def test_home_and_environment_variables_are_expanded(
    http: HttpClient, watched: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(watched.parent))
    monkeypatch.setenv("HOOKLINE_TEST_INBOX", "inbox")
    from_home = await poll(http, "file_created", {"folder": "~/inbox"})
    assert names(from_home) == ["report.txt", "scan.PDF"]
    from_variable = await poll(http, "file_created", {"folder": "~/$HOOKLINE_TEST_INBOX"})
    assert names(from_variable) == ["report.txt", "scan.PDF"]


async def test_too_many_files_is_a_clear_error(
    http: HttpClient, watched: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_FILES", 2)
    (watched / "third.txt").write_text("")
    with pytest.raises(PermanentError) as caught:
        await poll(http, "file_created", {"folder": str(watched), "recursive": True})
    assert "holds more than 2 matching files" in str(caught.value)
    assert "turn off 'Include subfolders'" in str(caught.value)


async def test_trigger_timing_suits_a_local_folder() -> None:
    for spec in service.triggers.values():
        assert (spec.default_interval, spec.min_interval) == (10, 2)


# --- write_text / append_text -------------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


async def test_write_text_writes_the_file_and_its_folders(http: HttpClient, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "note.txt"
    out = await react(http, "write_text", {"path": str(target), "text": "Grüße\nline 2"})
    assert target.read_text(encoding="utf-8") == "Grüße\nline 2"
    assert out == {"path": str(target), "size": len("Grüße\nline 2".encode())}
    assert leftovers(target.parent) == []


async def test_write_text_replaces_content_and_keeps_permissions(
    http: HttpClient, tmp_path: Path
) -> None:
    target = tmp_path / "note.txt"
    target.write_text("old and longer")
    target.chmod(0o640)
    await react(http, "write_text", {"path": str(target), "text": "new"})
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


async def test_write_text_writes_through_a_link(http: HttpClient, tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    await react(http, "write_text", {"path": str(link), "text": "new"})
    assert link.is_symlink()
    assert real.read_text() == "new"


async def test_write_text_without_creating_folders_says_what_to_do(
    http: HttpClient, tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "note.txt"
    with pytest.raises(PermanentError) as caught:
        await react(http, "write_text", {"path": str(target), "text": "x", "create_folders": False})
    assert str(caught.value) == (
        f"The folder {target.parent} does not exist: create it, or turn on 'Create missing folders'"
    )
    assert not target.parent.exists()


async def test_write_text_to_a_folder_is_refused(http: HttpClient, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="is a folder: give the path of a file"):
        await react(http, "write_text", {"path": str(tmp_path), "text": "x"})


@pytest.mark.parametrize("path", ["notes.txt", "./notes.txt", "notes/today.txt"])
async def test_relative_paths_are_refused(http: HttpClient, path: str) -> None:
    with pytest.raises(PermanentError) as caught:
        await react(http, "write_text", {"path": path, "text": "x"})
    assert str(caught.value) == (
        f"File: {path!r} is not a full path: use a full path like ~/notes.txt"
    )


async def test_a_path_going_up_a_folder_is_refused(http: HttpClient, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"contains '\.\.'"):
        await react(http, "write_text", {"path": f"{tmp_path}/notes/../../x.txt", "text": "x"})


async def test_a_file_in_the_way_of_the_folders_is_named(http: HttpClient, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "sub" / "note.txt"
    with pytest.raises(PermanentError) as caught:
        await react(http, "write_text", {"path": str(target), "text": "x"})
    assert str(caught.value) == (
        f"Could not create the folder {blocker}/sub: {blocker} is a file, not a folder"
    )
    with pytest.raises(PermanentError) as caught:
        await react(http, "write_text", {"path": str(target), "text": "x", "create_folders": False})
    assert "does not exist" in str(caught.value)


async def test_write_text_reports_the_os_reason_and_path(http: HttpClient, tmp_path: Path) -> None:
    longest = tmp_path / ("n" * 250 + ".txt")  # 254 characters: the longest name allowed
    await react(http, "write_text", {"path": str(longest), "text": "x"})
    assert longest.read_text() == "x"
    too_long = tmp_path / ("n" * 300 + ".txt")
    with pytest.raises(PermanentError) as caught:
        await react(http, "write_text", {"path": str(too_long), "text": "x"})
    assert str(caught.value) == f"Could not write {too_long}: File name too long"
    assert leftovers(tmp_path) == []


async def test_append_text_adds_lines(http: HttpClient, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "log.txt"
    first = await react(http, "append_text", {"path": str(log), "text": "one"})
    second = await react(http, "append_text", {"path": str(log), "text": "two\n"})
    await react(http, "append_text", {"path": str(log), "text": "three", "add_newline": False})
    assert log.read_text() == "one\ntwo\nthree"
    assert first == {"path": str(log), "size": 4}
    assert second == {"path": str(log), "size": 8}
    assert service.reactions["append_text"].retry is False


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="names there are Unicode")
async def test_a_file_name_that_is_not_utf8_is_seen_and_written_back_as_its_bytes(
    http: HttpClient, watched: Path, tmp_path: Path
) -> None:
    raw = os.fsencode(watched) + b"/caf\xe9.txt"  # Latin-1, as an old archive may hold
    os.close(os.open(raw, os.O_CREAT | os.O_WRONLY))
    result = await poll(http, "file_created", {"folder": str(watched), "pattern": "caf*"})
    [item] = result.items
    assert os.fsencode(item.data["path"]) == raw
    log = tmp_path / "names.txt"
    await react(http, "append_text", {"path": str(log), "text": item.data["name"]})
    await react(http, "write_text", {"path": str(tmp_path / "one.txt"),
                                     "text": item.data["name"]})
    assert log.read_bytes() == b"caf\xe9.txt\n"
    assert (tmp_path / "one.txt").read_bytes() == b"caf\xe9.txt"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
async def test_a_full_disk_is_a_permanent_error_with_the_reason(http: HttpClient) -> None:
    with pytest.raises(PermanentError) as caught:
        await react(http, "append_text", {"path": "/dev/full", "text": "x"})
    assert str(caught.value) == "Could not add to /dev/full: No space left on device"


async def test_append_text_without_creating_folders_says_what_to_do(
    http: HttpClient, tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "log.txt"
    params = {"path": str(target), "text": "x", "create_folders": False}
    with pytest.raises(PermanentError) as caught:
        await react(http, "append_text", params)
    assert str(caught.value) == (
        f"The folder {target.parent} does not exist: create it, or turn on 'Create missing folders'"
    )
    with pytest.raises(PermanentError, match="is a folder: give the path of a file"):
        await react(http, "append_text", {"path": str(tmp_path), "text": "x"})


# --- appends: one writer per file -----------------------------------------------------------


async def append_as(http: HttpClient, area: str, path: Path, text: str) -> Any:
    spec = service.reactions["append_text"]
    return await spec.run(reaction_context(spec, {"path": str(path), "text": text}, http,
                                           area_id=area))


class HungFiles:
    """Makes writes to chosen files block (as on a network share that stopped
    answering) until the test lets them go; counts the batches written."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hung: dict[Path, threading.Lock] = {}
        self.batches: list[tuple[Path, int]] = []
        self.entered: dict[Path, threading.Event] = {}
        real = files._append_lines

        def append_lines(path: Path, batch: list[Any], confirm: Any) -> list[Any]:
            self.batches.append((path, len(batch)))
            lock = self.hung.get(path)
            if lock is not None:
                self.entered[path].set()
                with lock:  # blocks until released
                    pass
            return real(path, batch, confirm)

        monkeypatch.setattr(files, "_append_lines", append_lines)

    def hang(self, path: Path) -> None:
        lock = threading.Lock()
        lock.acquire()
        self.hung[path] = lock
        self.entered[path] = threading.Event()

    async def writing(self, path: Path) -> None:
        """Until the file's thread is inside its (hung) write."""
        assert await asyncio.to_thread(self.entered[path].wait, 5)

    def release(self, path: Path) -> None:
        self.hung.pop(path).release()


@pytest.fixture
def hung(monkeypatch: pytest.MonkeyPatch) -> HungFiles:
    return HungFiles(monkeypatch)


async def test_appends_waiting_together_go_in_one_batch_each_with_its_own_size(
    http: HttpClient, tmp_path: Path, hung: HungFiles
) -> None:
    log = tmp_path / "log.txt"
    texts = [f"line {n:02d}" for n in range(30)]
    results = await asyncio.gather(*(append_as(http, "area", log, t) for t in texts))
    assert log.read_text().splitlines() == texts  # the order they were asked in
    assert [r["size"] for r in results] == [8 * n for n in range(1, 31)]
    assert hung.batches == [(log, 30)]  # one thread hop for all of them


async def test_a_hung_file_does_not_hold_up_appends_to_another(
    http: HttpClient, tmp_path: Path, hung: HungFiles
) -> None:
    stuck, fine = tmp_path / "share.txt", tmp_path / "local.txt"
    hung.hang(stuck)
    waiting = asyncio.ensure_future(append_as(http, "area 1", stuck, "first"))
    await hung.writing(stuck)
    later = asyncio.ensure_future(append_as(http, "area 1", stuck, "second"))
    for n in range(3):  # another area, another file: written while the share hangs
        assert (await append_as(http, "area 2", fine, f"ok {n}"))["size"] == 5 * (n + 1)
    assert not waiting.done() and not later.done()
    hung.release(stuck)
    assert (await waiting)["size"] == 6
    assert (await later)["size"] == 13
    assert stuck.read_text() == "first\nsecond\n"


async def test_an_area_s_lines_keep_their_order_across_files(
    http: HttpClient, tmp_path: Path, hung: HungFiles
) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    hung.hang(first)
    done: list[str] = []

    async def append(area: str, path: Path, text: str) -> None:
        await append_as(http, area, path, text)
        done.append(text)

    one = asyncio.ensure_future(append("area", first, "one"))
    await hung.writing(first)
    two = asyncio.ensure_future(append("area", second, "two"))
    await append("other area", second, "other")  # the file's writer is free
    assert done == ["other"]  # "two" waits for the area's line before it
    hung.release(first)
    await asyncio.gather(one, two)
    assert done == ["other", "one", "two"]
    assert second.read_text() == "other\ntwo\n"


async def test_a_run_that_stops_waiting_takes_back_its_line_not_yet_written(
    http: HttpClient, tmp_path: Path, hung: HungFiles
) -> None:
    log = tmp_path / "log.txt"
    hung.hang(log)
    first = asyncio.ensure_future(append_as(http, "area", log, "first"))
    await hung.writing(log)
    second = asyncio.ensure_future(append_as(http, "area", log, "second"))
    await asyncio.sleep(0)
    second.cancel()  # its run timed out before the file's thread took the line
    with pytest.raises(asyncio.CancelledError):
        await second
    hung.release(log)
    await first
    assert log.read_text() == "first\n"


async def test_each_append_of_a_batch_gets_its_own_error(
    http: HttpClient, tmp_path: Path
) -> None:
    log = tmp_path / "logs" / "log.txt"
    spec = service.reactions["append_text"]

    def call(text: str, create: bool) -> Any:
        params = {"path": str(log), "text": text, "create_folders": create}
        return spec.run(reaction_context(spec, params, http, area_id=text))

    refused, made, after = await asyncio.gather(
        call("refused", False), call("made", True), call("after", False),
        return_exceptions=True)
    assert isinstance(refused, PermanentError)
    assert "does not exist" in str(refused)
    assert made == {"path": str(log), "size": 5}
    assert after == {"path": str(log), "size": 11}
    assert log.read_text() == "made\nafter\n"


# --- appends after a kill: a resumed run does not add its line twice ----------------------


def noting(ctx: ReactionContext, notes: list[tuple[dict[str, Any], int]], path: Path,
           full: bool = False) -> ReactionContext:
    """``ctx`` inside a run: its notes are kept with the file's size at that moment
    (``full``: writing them fails, as on a full disk)."""

    def noter(receipt: Mapping[str, Any], flush: bool) -> None:
        notes.append((dict(receipt), path.stat().st_size if path.exists() else 0))
        if flush and full:
            raise StorageError("could not record the run: No space left on device")
    return replace(ctx, run_id=1, noter=noter)


def append_ctx(http: HttpClient, path: Path, text: str, **extra: Any) -> ReactionContext:
    spec = service.reactions["append_text"]
    return replace(reaction_context(spec, {"path": str(path), "text": text}, http,
                                    area_id="area"), **extra)


async def test_where_each_line_goes_is_noted_before_anything_is_written(
    http: HttpClient, tmp_path: Path
) -> None:
    log = tmp_path / "log.txt"
    log.write_bytes(b"old\n")
    notes: list[tuple[dict[str, Any], int]] = []
    spec = service.reactions["append_text"]
    await asyncio.gather(*(spec.run(noting(append_ctx(http, log, t), notes, log))
                           for t in ("one", "two", "three")))
    assert log.read_text() == "old\none\ntwo\nthree\n"
    assert [size for _, size in notes] == [4, 4, 4]  # noted while nothing was written
    data = log.read_bytes()
    for (receipt, _), text in zip(notes, ("one", "two", "three"), strict=True):
        start = receipt["offset"]
        assert data[start:start + receipt["length"]] == f"{text}\n".encode()
        assert receipt["path"] == str(log)


async def test_a_resumed_append_whose_line_is_in_place_does_not_add_it_again(
    http: HttpClient, tmp_path: Path
) -> None:
    log = tmp_path / "log.txt"
    spec = service.reactions["append_text"]
    notes: list[tuple[dict[str, Any], int]] = []
    await spec.run(noting(append_ctx(http, log, "first"), notes, log))
    await spec.run(noting(append_ctx(http, log, "second"), notes, log))
    receipt = notes[0][0]  # "first" was written, then Hookline was killed
    again = await spec.run(append_ctx(http, log, "first", receipt=receipt))
    assert again == {"path": str(log), "size": 6}
    assert log.read_text() == "first\nsecond\n"


async def test_a_resumed_append_whose_line_is_missing_adds_it(
    http: HttpClient, tmp_path: Path
) -> None:
    log = tmp_path / "log.txt"
    log.write_text("first\n")
    spec = service.reactions["append_text"]
    # noted at the end of the file, then killed before writing
    missing = {"path": str(log), "offset": 6, "length": 7,
               "sha256": hashlib.sha256(b"second\n").hexdigest()}
    await spec.run(append_ctx(http, log, "second", receipt=missing))
    # noted, but another program's line landed there first
    elsewhere = {"path": str(log), "offset": 0, "length": 6,
                 "sha256": hashlib.sha256(b"third\n").hexdigest()}
    await spec.run(append_ctx(http, log, "third", receipt=elsewhere))
    assert log.read_text() == "first\nsecond\nthird\n"


async def test_notes_that_cannot_be_written_hold_back_their_lines(
    http: HttpClient, tmp_path: Path
) -> None:
    log = tmp_path / "log.txt"
    log.write_text("old\n")
    notes: list[tuple[dict[str, Any], int]] = []
    spec = service.reactions["append_text"]
    outcomes = await asyncio.gather(
        *(spec.run(noting(append_ctx(http, log, t), notes, log, full=True))
          for t in ("one", "two", "three")), return_exceptions=True)
    assert len(notes) == 3  # noted as one batch, whose write failed
    assert all(isinstance(o, StorageError) for o in outcomes)
    assert log.read_text() == "old\n"  # nothing written that a kill could repeat


# --- copy_file / move_file ----------------------------------------------------------------


@pytest.fixture
def report(tmp_path: Path) -> Path:
    source = tmp_path / "in" / "report.pdf"
    source.parent.mkdir()
    source.write_bytes(b"%PDF-1.7 report")
    os.utime(source, (1_700_000_000, 1_700_000_000))
    return source


async def test_copy_into_a_new_folder_keeps_name_content_and_date(
    http: HttpClient, tmp_path: Path, report: Path
) -> None:
    out = await react(
        http, "copy_file", {"source": str(report), "destination": f"{tmp_path}/archive/2024/"}
    )
    copy = tmp_path / "archive" / "2024" / "report.pdf"
    assert out == {"path": str(copy), "skipped": False}
    assert copy.read_bytes() == report.read_bytes()
    assert copy.stat().st_mtime == 1_700_000_000
    assert report.exists()
    assert leftovers(copy.parent) == []


async def test_copy_to_a_file_path_and_into_an_existing_folder(
    http: HttpClient, tmp_path: Path, report: Path
) -> None:
    renamed = tmp_path / "out" / "renamed.pdf"
    await react(http, "copy_file", {"source": str(report), "destination": str(renamed)})
    assert renamed.read_bytes() == b"%PDF-1.7 report"
    out = await react(
        http, "copy_file", {"source": str(report), "destination": str(tmp_path / "out")}
    )
    assert out["path"] == str(tmp_path / "out" / "report.pdf")


async def test_rename_keeps_both_with_a_number(
    http: HttpClient, tmp_path: Path, report: Path
) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(b"older")
    paths = [
        (await react(http, "copy_file", {"source": str(report), "destination": str(folder)}))[
            "path"
        ]
        for _ in range(2)
    ]
    assert paths == [str(folder / "report (1).pdf"), str(folder / "report (2).pdf")]
    assert (folder / "report.pdf").read_bytes() == b"older"


async def test_overwrite_skip_and_fail(http: HttpClient, tmp_path: Path, report: Path) -> None:
    target = tmp_path / "report.pdf"
    target.write_bytes(b"older")
    params = {"source": str(report), "destination": str(target)}

    assert await react(http, "copy_file", {**params, "if_exists": "skip"}) == {
        "path": str(target),
        "skipped": True,
    }
    assert target.read_bytes() == b"older"

    with pytest.raises(PermanentError) as caught:
        await react(http, "copy_file", {**params, "if_exists": "fail"})
    assert str(caught.value) == (
        f"{target} already exists: choose another destination, or set "
        "'If the file exists' to rename, overwrite or skip"
    )

    assert await react(http, "copy_file", {**params, "if_exists": "overwrite"}) == {
        "path": str(target),
        "skipped": False,
    }
    assert target.read_bytes() == b"%PDF-1.7 report"


async def test_copy_onto_itself(http: HttpClient, report: Path) -> None:
    params = {"source": str(report), "destination": str(report.parent)}
    with pytest.raises(PermanentError, match="cannot be copied onto itself"):
        await react(http, "copy_file", {**params, "if_exists": "overwrite"})
    duplicate = await react(http, "copy_file", params)
    assert duplicate["path"] == str(report.with_name("report (1).pdf"))


async def test_move_takes_the_file_away(http: HttpClient, tmp_path: Path, report: Path) -> None:
    out = await react(
        http, "move_file", {"source": str(report), "destination": f"{tmp_path}/done/"}
    )
    moved = tmp_path / "done" / "report.pdf"
    assert out == {"path": str(moved), "skipped": False}
    assert moved.read_bytes() == b"%PDF-1.7 report"
    assert not report.exists()


async def test_move_with_rename_and_onto_itself(
    http: HttpClient, tmp_path: Path, report: Path
) -> None:
    (tmp_path / "report.pdf").write_bytes(b"older")
    out = await react(http, "move_file", {"source": str(report), "destination": str(tmp_path)})
    assert out["path"] == str(tmp_path / "report (1).pdf")
    moved = Path(out["path"])
    again = await react(http, "move_file", {"source": str(moved), "destination": str(tmp_path)})
    assert again == {"path": str(moved), "skipped": True}
    assert moved.read_bytes() == b"%PDF-1.7 report"


async def test_move_to_another_disk(http: HttpClient, report: Path) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == report.stat().st_dev:
        pytest.skip("needs a second file system (/dev/shm)")
    target = other / f"hookline-test-{uuid.uuid4().hex}.pdf"
    try:
        out = await react(http, "move_file", {"source": str(report), "destination": str(target)})
        assert out == {"path": str(target), "skipped": False}
        assert target.read_bytes() == b"%PDF-1.7 report"
        assert target.stat().st_mtime == 1_700_000_000
        assert not report.exists()
    finally:
        target.unlink(missing_ok=True)


async def test_a_missing_source_is_named(http: HttpClient, tmp_path: Path) -> None:
    source = tmp_path / "gone.pdf"
    for reaction in ("copy_file", "move_file"):
        with pytest.raises(PermanentError) as caught:
            await react(http, reaction, {"source": str(source), "destination": str(tmp_path)})
        assert str(caught.value) == (f"The file {source} does not exist (was it moved or deleted?)")


async def test_a_copy_error_names_source_destination_and_reason(
    http: HttpClient, tmp_path: Path, report: Path
) -> None:
    too_long = tmp_path / ("n" * 300 + ".pdf")
    with pytest.raises(PermanentError) as caught:
        await react(http, "copy_file", {"source": str(report), "destination": str(too_long)})
    assert str(caught.value) == f"Could not copy {report} to {too_long}: File name too long"


async def test_a_folder_as_source_is_refused(http: HttpClient, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="is a folder: choose a file"):
        await react(
            http, "move_file", {"source": str(tmp_path), "destination": str(tmp_path / "x")}
        )


async def test_a_file_in_the_way_of_a_folder_is_named(
    http: HttpClient, tmp_path: Path, report: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(PermanentError) as caught:
        await react(http, "copy_file", {"source": str(report), "destination": f"{blocker}/sub/"})
    assert str(caught.value) == (
        f"Could not create the folder {blocker}/sub: {blocker} is a file, not a folder"
    )
