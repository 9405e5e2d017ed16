"""Files: notice new or changed files in a folder; write, append, copy and move files."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import hashlib
import os
import queue
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import (
    Field,
    Item,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    ReactionContext,
    Service,
    next_run_may_start,
)

service = Service(
    "files",
    "Files",
    "Notice new or changed files in a folder on this computer; write, append to, copy "
    "and move files.",
    icon="files.svg",
)

#: A poll that finds more matching files than this fails with a clear error.
MAX_FILES = 10_000
#: How far "rename" counts before giving up ("report (9999).pdf").
_MAX_RENAMES = 9_999


#: Paths already checked that expand to themselves (no ``~``, no variables): a busy
#: area's path is checked once, not once a run.
_PLAIN_PATHS: dict[str, Path] = {}
_PLAIN_PATHS_MAX = 1024


def full_path(raw: str, label: str) -> Path:
    """``raw`` with ``~`` and environment variables expanded; relative paths are refused."""
    known = _PLAIN_PATHS.get(raw) if type(raw) is str else None
    if known is not None:
        return known
    path = _full_path(raw, label)
    if type(raw) is str and not any(c in raw for c in "~$%"):
        if len(_PLAIN_PATHS) >= _PLAIN_PATHS_MAX:
            _PLAIN_PATHS.clear()
        _PLAIN_PATHS[raw] = path
    return path


def _full_path(raw: str, label: str) -> Path:
    text = os.path.expanduser(os.path.expandvars(str(raw).strip()))
    if not text:
        raise PermanentError(f"{label}: no path given: use a full path like ~/notes.txt")
    if "\0" in text:
        raise PermanentError(f"{label}: {raw!r} contains a NUL character, which no path may hold")
    path = Path(text)
    if not path.is_absolute():
        raise PermanentError(
            f"{label}: {raw!r} is not a full path: use a full path like ~/notes.txt"
        )
    if ".." in path.parts:
        raise PermanentError(
            f"{label}: {raw!r} contains '..': write the path without going up a folder"
        )
    return path


def _failed(exc: OSError, what: str) -> PermanentError:
    """An OS error (disk full, permission denied...) as a PermanentError with its reason."""
    return PermanentError(f"Could not {what}: {exc.strerror or exc}")


# --- triggers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FoundFile:
    """One file a scan found."""

    relative: str  # from the watched folder, with "/" between parts
    path: Path
    stat: os.stat_result
    inode: int


def _is_hidden(name: str, st: os.stat_result, show_dotted: bool) -> bool:
    """Hidden files and editors' temporary files: ``.x``, ``~$x.docx``, ``x~``."""
    if name.startswith(".") and not show_dotted:
        return True
    if name.startswith("~$") or name.endswith("~"):
        return True
    return bool(getattr(st, "st_file_attributes", 0) & stat.FILE_ATTRIBUTE_HIDDEN)


def scan(folder: Path, pattern: str, recursive: bool) -> list[FoundFile]:
    """The files in ``folder`` whose names match ``pattern`` (blocking: run in a thread)."""
    patterns = [p.strip().lower() for p in pattern.split(";") if p.strip()] or ["*"]
    show_dotted = any(p.startswith(".") for p in patterns)
    found: list[FoundFile] = []
    pending: list[tuple[Path, str]] = [(folder, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            if directory == folder:
                raise PermanentError(
                    f"The folder {folder} does not exist: create it or choose another folder"
                ) from None
            continue  # a subfolder removed while we looked
        except NotADirectoryError:
            if directory == folder:
                raise PermanentError(
                    f"{folder} is a file, not a folder: choose the folder to watch"
                ) from None
            continue
        except OSError as exc:
            if directory == folder:
                raise _failed(exc, f"read the folder {folder}") from None
            continue  # an unreadable subfolder (lost+found, another user's) is skipped
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive and not entry.name.startswith("."):
                        pending.append((Path(entry.path), f"{prefix}{entry.name}/"))
                    continue
                if not entry.is_file():
                    continue
                st = entry.stat()
                inode = entry.inode()
            except OSError:
                continue  # removed or a broken link between listing and looking
            if _is_hidden(entry.name, st, show_dotted):
                continue
            lowered = entry.name.lower()  # IMG_0001.JPG is a *.jpg too
            if not any(fnmatch.fnmatchcase(lowered, p) for p in patterns):
                continue
            found.append(FoundFile(prefix + entry.name, Path(entry.path), st, inode))
            if len(found) > MAX_FILES:
                raise PermanentError(
                    f"{folder} holds more than {MAX_FILES:,} matching files, more than "
                    "Hookline watches: choose a smaller folder, a narrower pattern"
                    + (", or turn off 'Include subfolders'" if recursive else "")
                )
    found.sort(key=lambda f: f.relative)
    return found


def _creation_stamp(st: os.stat_result) -> str:
    """When the file was created, where the OS says; empty where it does not (Linux)."""
    birth = getattr(st, "st_birthtime_ns", None) or getattr(st, "st_birthtime", None)
    if birth:
        return str(birth)
    if os.name == "nt":  # st_ctime is the creation time on Windows
        return str(st.st_ctime_ns)
    return ""


def created_key(found: FoundFile) -> str:
    """Same file, same key; a file deleted and created again gets a new one."""
    return f"{found.relative}|{found.inode}|{_creation_stamp(found.stat)}"


def modified_key(found: FoundFile) -> str:
    """Changes whenever the file's content or size changes."""
    return f"{found.relative}|{found.stat.st_mtime_ns}|{found.stat.st_size}"


def _data(found: FoundFile) -> dict[str, Any]:
    modified = datetime.fromtimestamp(found.stat.st_mtime, UTC).astimezone()
    return {
        "path": str(found.path),
        "name": found.path.name,
        "folder": str(found.path.parent),
        "size": found.stat.st_size,
        "modified": modified.isoformat(timespec="seconds"),
        "extension": found.path.suffix[1:].lower(),
    }


WATCH_PARAMS = (
    Param(
        "folder",
        ParamType.PATH,
        "Folder",
        help="The folder to watch, as a full path; ~ is your home folder.",
        example="~/Downloads",
    ),
    Param(
        "pattern",
        ParamType.TEXT,
        "File names",
        help="Which file names count, e.g. *.pdf (capitals or not); separate several "
        "with ';' (*.jpg; *.png). Hidden files (.name) and editors' temporary files are "
        "left out unless the pattern starts with a dot.",
        required=False,
        default="*",
        example="*.pdf",
    ),
    Param(
        "recursive",
        ParamType.BOOL,
        "Include subfolders",
        help="Also watch the folders inside it (hidden folders are left out).",
        required=False,
        default=False,
        example=False,
    ),
)

FILE_FIELDS = (
    Field("path", "Full path of the file", "/home/ana/Downloads/invoice.pdf"),
    Field("name", "File name", "invoice.pdf"),
    Field("folder", "Folder the file is in", "/home/ana/Downloads"),
    Field("size", "Size in bytes", 48213),
    Field("modified", "Last changed (ISO 8601)", "2024-05-06T09:12:44+02:00"),
    Field("extension", "Extension, lower case, without the dot", "pdf"),
)


async def _poll(ctx: PollContext, key: Callable[[FoundFile], str]) -> PollResult:
    folder = full_path(ctx.params["folder"], "Folder")
    found = await asyncio.to_thread(
        scan, folder, ctx.params["pattern"] or "*", bool(ctx.params["recursive"])
    )
    # Newest first, each with its time, and by name backwards among files of the same
    # time (a folder lists them in no particular order): new files fire oldest first,
    # and by name among files of the same time (engine.poller.oldest_first).
    found.sort(key=lambda f: (f.stat.st_mtime, f.relative), reverse=True)
    return PollResult([Item(key(f), _data(f), at=datetime.fromtimestamp(f.stat.st_mtime, UTC))
                       for f in found])


@service.poll_trigger(
    "file_created",
    "New file in a folder",
    "Fires for each file that appears in the folder (also one deleted and created again).",
    params=WATCH_PARAMS,
    fields=FILE_FIELDS,
    default_interval=10,
    min_interval=2,
)
async def file_created(ctx: PollContext) -> PollResult:
    return await _poll(ctx, created_key)


@service.poll_trigger(
    "file_modified",
    "File created or changed",
    "Fires for each file that appears in the folder or whose content changes.",
    params=WATCH_PARAMS,
    fields=FILE_FIELDS,
    default_interval=10,
    min_interval=2,
)
async def file_modified(ctx: PollContext) -> PollResult:
    return await _poll(ctx, modified_key)


# --- reactions ---------------------------------------------------------------------------


def _temporary_beside(path: Path) -> Path:
    # short enough that a long file name still leaves room for it
    return path.parent / f".{path.name[:40]}.{secrets.token_hex(4)}.tmp"


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next(p for p in (folder, *folder.parents) if p.exists())
        raise PermanentError(
            f"Could not create the folder {folder}: {blocker} is a file, not a folder"
        ) from None


def _prepare_folder(folder: Path, create: bool, setting: str) -> None:
    if create:
        _make_folder(folder)
    elif not folder.is_dir():
        raise PermanentError(
            f"The folder {folder} does not exist: create it, or turn on '{setting}'"
        )


def _write_atomically(path: Path, data: bytes, create_folders: bool) -> int:
    target = Path(os.path.realpath(path))  # write through a link, do not replace it
    _prepare_folder(target.parent, create_folders, "Create missing folders")
    if target.is_dir():
        raise PermanentError(
            f"{path} is a folder: give the path of a file, like {path / 'notes.txt'}"
        )
    temporary = _temporary_beside(target)
    # O_EXCL with 0o666 lets the umask decide, as for any new file.
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
    )
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return len(data)


_APPEND_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
                 | getattr(os, "O_CLOEXEC", 0))
#: A file's writer thread ends after this long without lines to write.
APPEND_IDLE = 5.0


def _folder_refused(path: Path) -> PermanentError:
    return PermanentError(f"{path} is a folder: give the path of a file, like {path / 'log.txt'}")


def _open_for_append(path: Path, create_folders: bool) -> int:
    """The file opened for appending (created if missing); its folder is looked at only
    when the file cannot be opened."""
    for attempt in (1, 2):
        try:
            return os.open(path, _APPEND_FLAGS, 0o666)
        except IsADirectoryError:
            raise _folder_refused(path) from None
        except PermissionError:
            if path.is_dir():  # Windows says "permission denied" for a folder
                raise _folder_refused(path) from None
            raise
        except (FileNotFoundError, NotADirectoryError):
            if attempt == 2:
                raise
            _prepare_folder(path.parent, create_folders, "Create missing folders")
    raise AssertionError("unreachable")  # pragma: no cover


def _write_all(fd: int, data: bytes) -> int:
    """Write ``data`` at the end of the file; returns the file's size after it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    try:
        return os.lseek(fd, 0, os.SEEK_CUR)  # O_APPEND: the end, just after our bytes
    except OSError:  # a pipe or a device has no size
        return len(data)


@dataclass(eq=False)
class _Line:
    """One run's text for a file, and where its outcome goes."""

    data: bytes
    create_folders: bool
    future: asyncio.Future[int]
    appender: _Appender
    #: the run's ``ctx.note``: where the line will be is saved before it is written
    note: Callable[..., None] | None = None
    taken: bool = False


#: ``[(line, receipt)] -> {id(line): why it must not be written}`` (the loop notes them)
_Confirm = Callable[[list[tuple[_Line, dict[str, Any]]]], dict[int, Exception]]


def _append_lines(path: Path, batch: list[_Line], confirm: _Confirm) -> list[int | Exception]:
    """Append each line in order, opening the file once (blocking: the file's thread).
    Each line gets its own outcome: its file's size after it, or its error. Where each
    line will be is noted with its run before anything is written (:func:`_receipts`)."""
    outcomes: list[int | Exception] = []
    fd: int | None = None
    refused: dict[int, Exception] = {}
    try:
        for index, line in enumerate(batch):
            try:
                if fd is None:
                    fd = _open_for_append(path, line.create_folders)
                    refused = confirm(_receipts(fd, path, batch[index:]))
                problem = refused.get(id(line))
                if problem is not None:
                    outcomes.append(problem)
                    continue
                outcomes.append(_write_all(fd, line.data))
            except PermanentError as exc:
                outcomes.append(exc)
            except OSError as exc:
                outcomes.append(_failed(exc, f"add to {path}"))
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    return outcomes


def _receipts(fd: int, path: Path, lines: list[_Line]) -> list[tuple[_Line, dict[str, Any]]]:
    """Where each line that a run waits for will land: after the file's current end and
    the lines before it (O_APPEND; another program writing meanwhile moves it, and a
    resumed run then writes its line again rather than lose it)."""
    offset = os.fstat(fd).st_size
    out = []
    for line in lines:
        if line.note is not None:
            out.append((line, {"path": str(path), "offset": offset, "length": len(line.data),
                               "sha256": hashlib.sha256(line.data).hexdigest()}))
        offset += len(line.data)
    return out


def _already_written(path: Path, receipt: Mapping[str, Any]) -> int | None:
    """The file's size just after the line ``receipt`` describes when that line is in
    place (a run killed after writing it); None when it is not, or cannot be read."""
    try:
        offset, length = int(receipt["offset"]), int(receipt["length"])
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size < offset + length:
                return None
            f.seek(offset)
            written = f.read(length)
    except (OSError, KeyError, TypeError, ValueError):
        return None
    if hashlib.sha256(written).hexdigest() != receipt.get("sha256"):
        return None
    return offset + length


class _Appender:
    """Appends to one file in the order they were asked for, on a thread of its own.

    Lines that arrive while the thread writes go together in its next batch (one
    thread hop for many runs); each waiter still gets its own line's outcome. A file
    on a hung share holds only its own thread and the runs waiting for that file.
    The thread ends after :data:`APPEND_IDLE` seconds without work.
    """

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self.loop = loop
        self._pending: list[_Line] = []
        self._busy = False  # a batch is with the thread
        self._sending = False  # a send is scheduled for the end of this turn
        self._batches: queue.SimpleQueue[list[_Line]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def idle(self) -> bool:
        return not self._busy and not self._pending and not self._sending

    def add(self, data: bytes, create_folders: bool,
            note: Callable[..., None] | None = None) -> _Line:
        line = _Line(data, create_folders, self.loop.create_future(), self, note)
        self._pending.append(line)
        if not self._busy and not self._sending:
            self._sending = True  # at the end of this turn: its other lines join
            self.loop.call_soon(self._send)
        return line

    def drop(self, line: _Line) -> None:
        """Forget a line its run no longer waits for, unless it is being written."""
        if not line.taken:
            with contextlib.suppress(ValueError):
                self._pending.remove(line)

    def _send(self) -> None:
        self._sending = False
        if self._busy or not self._pending:
            return
        batch, self._pending = self._pending, []
        for line in batch:
            line.taken = True
        self._busy = True
        with self._lock:
            self._batches.put(batch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="hookline-append", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            try:
                batch = self._batches.get(timeout=APPEND_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._batches.empty():
                        self._thread = None
                        break
                continue
            outcomes = _append_lines(self.path, batch, self._confirm)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(self._done, batch, outcomes)
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._forget)

    def _confirm(self, receipts: list[tuple[_Line, dict[str, Any]]]) -> dict[int, Exception]:
        """Have the loop note each receipt with its run, and wait until it has (the
        file's thread). A note refused (Hookline's disk is full) holds back its line and
        every line after it, so the area's order is kept."""
        refused: dict[int, Exception] = {}
        if not receipts:
            return refused
        noted = threading.Event()

        def note_all() -> None:
            # noted together, one write for the batch (the last note flushes); a failed
            # write leaves none of them safe: the batch's lines wait, in order
            waiting = [(line, receipt) for line, receipt in receipts
                       if line.note is not None and not line.future.done()]
            try:
                for index, (line, receipt) in enumerate(waiting):
                    assert line.note is not None
                    line.note(receipt, flush=index == len(waiting) - 1)
            except Exception as exc:
                refused.update((id(line), exc) for line, _ in receipts)
            finally:
                noted.set()

        try:
            self.loop.call_soon_threadsafe(note_all)
        except RuntimeError:  # the loop closed: nobody waits for these lines
            return {id(line): _stopping() for line, _ in receipts}
        while not noted.wait(1.0):
            if self.loop.is_closed() or not self.loop.is_running():
                return {id(line): _stopping() for line, _ in receipts}
        return refused

    def _done(self, batch: list[_Line], outcomes: list[int | Exception]) -> None:
        self._busy = False
        for line, outcome in zip(batch, outcomes, strict=True):
            if line.future.done():  # its run stopped waiting (a timeout)
                continue
            if isinstance(outcome, Exception):
                line.future.set_exception(outcome)
            else:
                line.future.set_result(outcome)
        if self._pending:
            self._send()

    def _forget(self) -> None:
        key = str(self.path)
        if _appenders.get(key) is self and self.idle and self._thread is None:
            del _appenders[key]


#: The writer of each file being appended to, by path.
_appenders: dict[str, _Appender] = {}
#: Each area's last line still being written: its next line, for another file, waits
#: for it (an area's lines are written in the order of its runs).
_last_line: dict[str, _Line] = {}


def _appender(path: Path) -> _Appender:
    loop = asyncio.get_running_loop()
    key = str(path)  # a str hashes at once; a Path builds its text to hash it
    appender = _appenders.get(key)
    if appender is None or appender.loop is not loop:
        appender = _appenders[key] = _Appender(path, loop)
    return appender


def _stopping() -> PermanentError:
    return PermanentError("Hookline stopped before the line was written")


async def _append(area_id: str, path: Path, data: bytes, create_folders: bool,
                  note: Callable[..., None] | None = None) -> int:
    """Append ``data`` to ``path`` after every line this area asked for before."""
    appender = _appender(path)
    last = _last_line.get(area_id)
    if last is not None and last.appender is not appender and not last.future.done():
        await asyncio.wait([last.future])  # its outcome is its own run's
    line = appender.add(data, create_folders, note)
    _last_line[area_id] = line
    next_run_may_start()  # the line is queued in order: the area's next run may begin
    try:
        return await line.future
    except asyncio.CancelledError:
        appender.drop(line)
        raise
    finally:
        if _last_line.get(area_id) is line:
            del _last_line[area_id]


PATH_OUTPUT = Field("path", "Full path of the file", "/home/ana/notes/today.txt")
SIZE_OUTPUT = Field("size", "Size of the file in bytes", 1024)
CREATE_FOLDERS = Param(
    "create_folders",
    ParamType.BOOL,
    "Create missing folders",
    help="Create the folders on the way to the file if they do not exist yet.",
    required=False,
    default=True,
    example=True,
)


def _utf8(text: str) -> bytes:
    """UTF-8, with a file name that is not UTF-8 (read by the OS with surrogateescape,
    as in {{ trigger.name }}) written as its own bytes."""
    return text.encode("utf-8", "surrogateescape")


@service.reaction(
    "write_text",
    "Write a text file",
    "Writes the text to a file (UTF-8), replacing what it held. The file is written "
    "whole or not at all.",
    params=[
        Param(
            "path",
            ParamType.PATH,
            "File",
            help="Full path of the file to write; ~ is your home folder.",
            example="~/notes/{{ trigger.name }}.txt",
        ),
        Param(
            "text",
            ParamType.MULTILINE,
            "Text",
            help="What the file will hold.",
            required=False,
            default="",
            example="Received {{ trigger.title }}",
        ),
        CREATE_FOLDERS,
    ],
    fields=[PATH_OUTPUT, SIZE_OUTPUT],
)
async def write_text(ctx: ReactionContext) -> Mapping[str, Any]:
    path = full_path(ctx.params["path"], "File")
    data = _utf8(ctx.params["text"] or "")
    try:
        size = await asyncio.to_thread(
            _write_atomically, path, data, bool(ctx.params["create_folders"])
        )
    except OSError as exc:
        raise _failed(exc, f"write {path}") from None
    return {"path": str(path), "size": size}


@service.reaction(
    "append_text",
    "Add text to a file",
    "Adds the text at the end of a file (UTF-8), creating the file if needed. If "
    "Hookline is stopped or killed while adding it, the run looks whether its text is "
    "already there before adding it again.",
    params=[
        Param(
            "path",
            ParamType.PATH,
            "File",
            help="Full path of the file to add to; ~ is your home folder.",
            example="~/notes/log.txt",
        ),
        Param(
            "text",
            ParamType.MULTILINE,
            "Text",
            help="What to add at the end.",
            example="{{ trigger.fired_at }} backup started",
        ),
        Param(
            "add_newline",
            ParamType.BOOL,
            "End with a line break",
            help="Add a line break after the text if it does not end with one, so each "
            "run adds its own line.",
            required=False,
            default=True,
            example=True,
        ),
        CREATE_FOLDERS,
    ],
    fields=[PATH_OUTPUT, SIZE_OUTPUT],
    retry=False,  # a repeat would add the text twice
)
async def append_text(ctx: ReactionContext) -> Mapping[str, Any]:
    path = full_path(ctx.params["path"], "File")
    text = ctx.params["text"] or ""
    if ctx.params["add_newline"] and not text.endswith("\n"):
        text += "\n"
    if ctx.receipt is not None and ctx.receipt.get("path") == str(path):
        # Run again after Hookline was killed while adding it: once is enough.
        size = await asyncio.to_thread(_already_written, path, ctx.receipt)
        if size is not None:
            ctx.log.info("%s already had this run's text (added before a restart)", path)
            return {"path": str(path), "size": size}
    size = await _append(ctx.area_id, path, _utf8(text), bool(ctx.params["create_folders"]),
                         ctx.note if ctx.noter is not None else None)
    return {"path": str(path), "size": size}


IF_EXISTS = Param(
    "if_exists",
    ParamType.CHOICE,
    "If the file exists",
    help="What to do when the destination already holds a file of that name.",
    required=False,
    default="rename",
    choices=(
        ("rename", "Keep both: add a number, like 'report (1).pdf'"),
        ("overwrite", "Replace it"),
        ("skip", "Leave it and do nothing"),
        ("fail", "Stop with an error"),
    ),
    example="rename",
)
TRANSFER_FIELDS = [
    Field("path", "Where the file is now", "/home/ana/Archive/invoice.pdf"),
    Field("skipped", "Whether nothing was done because the file existed", False),
]


def _transfer_params(verb: str) -> list[Param]:
    return [
        Param(
            "source",
            ParamType.PATH,
            "File",
            help=f"Full path of the file to {verb}.",
            example="{{ trigger.path }}",
        ),
        Param(
            "destination",
            ParamType.PATH,
            "To",
            help="A folder (the file keeps its name) or a full file path. A path ending "
            "in / is always a folder; missing folders are created.",
            example="~/Archive/",
        ),
        IF_EXISTS,
    ]


def _free_name(path: Path) -> Path:
    """``name (1).ext``, ``name (2).ext``... the first that does not exist."""
    for number in range(1, _MAX_RENAMES + 1):
        candidate = path.with_name(f"{path.stem} ({number}){path.suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise PermanentError(f"{path.parent} already holds {_MAX_RENAMES:,} copies of {path.name}")


def _copy_into_place(source: Path, target: Path) -> None:
    """Copy via a temporary file beside ``target``, so it appears whole or not at all."""
    temporary = _temporary_beside(target)
    try:
        shutil.copy2(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _transfer(
    source: Path, destination: Path, as_folder: bool, if_exists: str, move: bool
) -> dict[str, Any]:
    """Copy or move ``source``; blocking, run in a thread."""
    if not source.exists():
        raise PermanentError(f"The file {source} does not exist (was it moved or deleted?)")
    if source.is_dir():
        raise PermanentError(f"{source} is a folder: choose a file")
    target = destination / source.name if as_folder or destination.is_dir() else destination
    _make_folder(target.parent)
    if target.is_dir():
        raise PermanentError(
            f"{target} is a folder: give another file name or a folder to put the file in"
        )
    if os.path.lexists(target):
        if move and target.exists() and os.path.samefile(source, target):
            return {"path": str(target), "skipped": True}  # already where it should be
        if if_exists == "skip":
            return {"path": str(target), "skipped": True}
        if if_exists == "fail":
            raise PermanentError(
                f"{target} already exists: choose another destination, or set "
                "'If the file exists' to rename, overwrite or skip"
            )
        if if_exists == "rename":
            target = _free_name(target)
        elif target.exists() and os.path.samefile(source, target):
            raise PermanentError(
                f"{source} cannot be copied onto itself: choose another destination"
            )
    if not move:
        _copy_into_place(source, target)
        return {"path": str(target), "skipped": False}
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_into_place(source, target)  # another disk: copy, then remove the original
        os.unlink(source)
    return {"path": str(target), "skipped": False}


async def _run_transfer(ctx: ReactionContext, move: bool) -> Mapping[str, Any]:
    source = full_path(ctx.params["source"], "File")
    raw_destination = str(ctx.params["destination"]).strip()
    destination = full_path(raw_destination, "To")
    as_folder = raw_destination.endswith(("/", os.sep))
    try:
        return await asyncio.to_thread(
            _transfer, source, destination, as_folder, ctx.params["if_exists"], move
        )
    except OSError as exc:
        verb = "move" if move else "copy"
        raise _failed(exc, f"{verb} {source} to {destination}") from None


@service.reaction(
    "copy_file",
    "Copy a file",
    "Copies a file to a folder or to a new path, keeping its dates.",
    params=_transfer_params("copy"),
    fields=TRANSFER_FIELDS,
    timeout=600,
    retry=False,  # with "rename", a repeat would make a second copy
)
async def copy_file(ctx: ReactionContext) -> Mapping[str, Any]:
    return await _run_transfer(ctx, move=False)


@service.reaction(
    "move_file",
    "Move a file",
    "Moves a file to a folder or to a new path (also to another disk).",
    params=_transfer_params("move"),
    fields=TRANSFER_FIELDS,
    timeout=600,
    retry=False,
)
async def move_file(ctx: ReactionContext) -> Mapping[str, Any]:
    return await _run_transfer(ctx, move=True)
