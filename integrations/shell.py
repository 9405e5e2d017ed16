"""Run a program: start a program on this computer with arguments, never through a shell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import (
    Field,
    Param,
    ParamType,
    PermanentError,
    ReactionContext,
    Service,
    format_duration,
)

service = Service(
    "shell",
    "Run a program",
    "Start a program on this computer. Arguments are handed to it exactly as written, "
    "one per line; no shell ever reads them.",
    icon="shell.svg",
)

#: Bytes of output kept from each of stdout and stderr.
MAX_OUTPUT = 64 * 1024
#: Longest run a user may allow.
MAX_TIMEOUT = 3600.0
#: After the program exits, how long to wait for the rest of its output (a program it
#: started in the background may hold the pipes open).
_DRAIN_SECONDS = 2.0
#: After asking a timed-out program to stop, how long before it is killed.
_TERMINATE_GRACE = 3.0
#: Lines of error output quoted in the error of a failed run.
_ERROR_LINES = 5


def split_arguments(text: str) -> list[str]:
    """One argument per line, verbatim; line breaks at the end are ignored."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def _expand(raw: str) -> str:
    return os.path.expanduser(os.path.expandvars(raw.strip()))


def find_program(raw: str) -> str:
    """The full path of the program: as given, or looked up on PATH."""
    text = _expand(raw)
    if not text:
        raise PermanentError("Program: no program given: write its name (convert) or full path")
    if "/" in text or os.sep in text or (os.altsep and os.altsep in text):
        path = Path(text)
        if not path.is_absolute():
            raise PermanentError(
                f"Program: {raw!r} is not a full path: give a full path like "
                "/usr/local/bin/backup, or a program name that is on PATH"
            )
        if not path.exists():
            raise PermanentError(f"The program {path} does not exist: check the path")
        if path.is_dir():
            raise PermanentError(f"{path} is a folder, not a program")
        if not os.access(path, os.X_OK):
            raise PermanentError(
                f"{path} is not executable: make it executable (chmod +x), or run its "
                "interpreter (python3, bash...) with the script as the first argument"
            )
        return str(path)
    found = shutil.which(text)
    if found is None:
        raise PermanentError(
            f"No program named {text!r} was found on PATH: install it, or give its full path"
        )
    return found


def _working_directory(raw: str | None) -> str | None:
    if not raw or not raw.strip():
        return None
    path = Path(_expand(raw))
    if not path.is_absolute():
        raise PermanentError(
            f"Working folder: {raw!r} is not a full path: use a full path like ~/projects"
        )
    if not path.is_dir():
        raise PermanentError(
            f"The working folder {path} does not exist: create it or choose another"
        )
    return str(path)


class _Capture:
    """Keeps up to ``limit`` bytes of a stream: its beginning, or with ``keep_end`` its end."""

    def __init__(self, limit: int, keep_end: bool) -> None:
        self.limit = limit
        self.keep_end = keep_end
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.keep_end:
            self.data += chunk
            del self.data[: -self.limit]
        elif len(self.data) < self.limit:
            self.data += chunk[: self.limit - len(self.data)]

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        cut = self.total - len(self.data)
        if not cut:
            return text
        kept = "last" if self.keep_end else "first"
        note = f"[output cut: {cut:,} bytes left out, showing the {kept} {self.limit // 1024} KiB]"
        return f"{note}\n{text}" if self.keep_end else f"{text}\n{note}"


class _Program(asyncio.SubprocessProtocol):
    """Collects a running program's output and says when it has exited.

    The exit is awaited on its own: ``Process.wait()`` would also wait until every
    process holding the output pipes (a server the program started) had closed them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.stdout = _Capture(MAX_OUTPUT, keep_end=False)
        self.stderr = _Capture(MAX_OUTPUT, keep_end=True)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self._open_pipes = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else data
        (self.stdout if fd == 1 else self.stderr).add(chunk)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes and not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def _signal(transport: asyncio.SubprocessTransport, number: int) -> None:
    """Send ``number`` to the program and everything it started (its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.name == "nt":
            transport.kill()  # Windows has no process groups to signal
        else:
            os.killpg(transport.get_pid(), number)


async def _stop(transport: asyncio.SubprocessTransport, program: _Program) -> None:
    """Ask the program (and what it started) to stop, then kill it; returns once it is gone."""
    _signal(transport, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(program.exited), _TERMINATE_GRACE)
    except TimeoutError:
        _signal(transport, getattr(signal, "SIGKILL", signal.SIGTERM))
        await program.exited
    # What it started and left behind (ignoring or still handling SIGTERM) goes too.
    _signal(transport, getattr(signal, "SIGKILL", signal.SIGTERM))


def _how_it_ended(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was stopped by signal {signal.Signals(-code).name}"
        return f"was stopped by signal {-code}"
    return f"exited with code {code}"


def _last_lines(*texts: str) -> str:
    for text in texts:
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        if lines:
            return "\n".join(line[:300] for line in lines[-_ERROR_LINES:])
    return ""


def _preview(params: Mapping[str, Any]) -> Mapping[str, Any]:
    return {
        "program": params.get("program"),
        "arguments": split_arguments(params.get("arguments") or ""),
        "working_directory": params.get("working_directory") or None,
        "timeout": params.get("timeout"),
    }


@service.reaction(
    "run",
    "Run a program",
    "Starts a program with the arguments you give, waits for it, and keeps what it printed.",
    params=[
        Param(
            "program",
            ParamType.TEXT,
            "Program",
            help="The program's name, looked up on PATH, or its full path. It cannot "
            "come from a template: the automation always runs this program.",
            example="ffmpeg",
            templated=False,
        ),
        Param(
            "arguments",
            ParamType.MULTILINE,
            "Arguments",
            help="One argument per line, passed exactly as written: quotes, spaces, "
            "$, ; and | are not special. A value with line breaks becomes several "
            "arguments; send long text as Input instead.",
            required=False,
            default="",
            example="-i\n{{ trigger.path }}\n{{ trigger.folder }}/small.mp4",
        ),
        Param(
            "working_directory",
            ParamType.PATH,
            "Working folder",
            help="The folder the program starts in; empty for your home folder.",
            required=False,
            example="~/Videos",
        ),
        Param(
            "timeout",
            ParamType.DURATION,
            "Time limit",
            help="The program is stopped if it runs longer than this.",
            required=False,
            default=60,
            minimum=1,
            maximum=MAX_TIMEOUT,
            example="5m",
        ),
        Param(
            "stdin",
            ParamType.MULTILINE,
            "Input",
            help="Text sent to the program's standard input; empty sends nothing.",
            required=False,
            default="",
            example="{{ trigger.body }}",
        ),
        Param(
            "fail_on_error",
            ParamType.BOOL,
            "Fail when the program fails",
            help="Treat a non-zero exit code as a failed run (later reactions do not run).",
            required=False,
            default=True,
            example=True,
        ),
    ],
    fields=[
        Field("exit_code", "Exit code (0 means success)", 0),
        Field("stdout", "What it printed (first 64 KiB)", "done: 3 files\n"),
        Field("stderr", "What it printed as errors (last 64 KiB)", ""),
        Field("duration", "How long it ran, in seconds", 1.25),
    ],
    preview=_preview,
    requires_setting="allow_shell",
    timeout=MAX_TIMEOUT + _TERMINATE_GRACE + _DRAIN_SECONDS + 10,
    retry=False,  # a program may have done its work before failing
)
async def run(ctx: ReactionContext) -> Mapping[str, Any]:
    if not ctx.settings.allow_shell:
        raise PermanentError(
            "Running programs is turned off: turn on 'Run shell commands' in Settings"
        )
    program = find_program(ctx.params["program"])
    arguments = split_arguments(ctx.params["arguments"] or "")
    if Path(program).suffix.lower() in (".bat", ".cmd") and arguments:
        raise PermanentError(
            f"{program} is a batch file, and cmd.exe would read its arguments as commands: "
            "run it without arguments, or run the program it calls directly"
        )
    cwd = _working_directory(ctx.params["working_directory"]) or str(Path.home())
    limit = float(ctx.params["timeout"])
    stdin = (ctx.params["stdin"] or "").encode("utf-8")

    loop = asyncio.get_running_loop()
    started = time.monotonic()
    try:
        transport, program_run = await loop.subprocess_exec(
            lambda: _Program(loop),
            program,
            *arguments,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            start_new_session=os.name != "nt",
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
    except OSError as exc:
        raise PermanentError(f"Could not start {program}: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. a NUL character in an argument
        raise PermanentError(f"Could not start {program}: {exc}") from None

    try:
        if stdin:
            pipe = transport.get_pipe_transport(0)
            assert isinstance(pipe, asyncio.WriteTransport)
            pipe.write(stdin)  # a program that stops reading just loses the rest
            pipe.close()
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(program_run.exited)
        except TimeoutError:
            raise PermanentError(
                f"{program} did not finish within {format_duration(limit)}; it was stopped"
            ) from None
        # The rest of the output, unless something the program started keeps the pipes.
        await asyncio.wait([program_run.drained], timeout=_DRAIN_SECONDS)
    finally:
        if transport.get_returncode() is None:
            await _stop(transport, program_run)
        transport.close()
    duration = round(time.monotonic() - started, 3)
    code = transport.get_returncode()
    assert code is not None

    out, err = program_run.stdout.text(), program_run.stderr.text()
    if code != 0 and ctx.params["fail_on_error"]:
        quoted = _last_lines(err, out)
        raise PermanentError(
            f"{program} {_how_it_ended(code)}"
            + (f":\n{quoted}" if quoted else " (it printed no error)")
        )
    return {"exit_code": code, "stdout": out, "stderr": err, "duration": duration}
