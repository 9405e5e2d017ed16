"""Tests for the "Run a program" service, with real programs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from engine import HttpClient, PermanentError, Settings
from engine.testing import reaction_context
from integrations import shell
from integrations.shell import service

SPEC = service.reactions["run"]
ALLOWED = Settings(allow_shell=True)
ECHO_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


async def run(http: HttpClient, params: Mapping[str, Any], settings: Settings = ALLOWED) -> Any:
    return await SPEC.run(reaction_context(SPEC, params, http, settings=settings))


def python(code: str, *arguments: str) -> dict[str, Any]:
    """Parameters that run one line of Python with ``arguments``."""
    assert "\n" not in code, "one line only: each line is an argument; use script()"
    return {"program": sys.executable, "arguments": "\n".join(["-c", code, *arguments])}


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str], dict[str, Any]]:
    """Parameters that run a Python script written to a file."""

    def make(code: str) -> dict[str, Any]:
        path = tmp_path / "script.py"
        path.write_text(code)
        return {"program": sys.executable, "arguments": str(path)}

    return make


async def test_runs_a_program_and_returns_what_it_printed(http: HttpClient) -> None:
    out = await run(http, {"program": "/bin/echo", "arguments": "hello\nworld"})
    assert out["exit_code"] == 0
    assert out["stdout"] == "hello world\n"
    assert out["stderr"] == ""
    assert 0 <= out["duration"] < 5


async def test_a_program_name_is_looked_up_on_path(http: HttpClient) -> None:
    out = await run(http, {"program": "echo", "arguments": "found"})
    assert out["stdout"] == "found\n"


async def test_shell_metacharacters_arrive_verbatim_and_do_nothing(
    http: HttpClient, tmp_path: Path
) -> None:
    marker = tmp_path / "x"
    tricky = [
        f"; touch {marker}",
        "$(touch $HOME/y)",
        "`id`",
        "a | b",
        "&& rm -rf ~",
        "'quoted' \"twice\"",
        "  spaced  ",
        "*",
        "",
    ]
    out = await run(http, python(ECHO_ARGV, *tricky, "last"))
    assert json.loads(out["stdout"]) == [*tricky, "last"]
    assert not marker.exists()
    assert list(tmp_path.iterdir()) == []

    echoed = await run(http, {"program": "/bin/echo", "arguments": f"; touch {marker}"})
    assert echoed["stdout"] == f"; touch {marker}\n"
    assert not marker.exists()


async def test_one_argument_per_line_and_final_line_breaks_are_ignored(
    http: HttpClient,
) -> None:
    out = await run(
        http, {"program": sys.executable, "arguments": f"-c\r\n{ECHO_ARGV}\r\nfirst\n\nthird\n\n"}
    )
    assert json.loads(out["stdout"]) == ["first", "", "third"]


async def test_input_working_folder_and_output_fields(http: HttpClient, tmp_path: Path) -> None:
    code = "import os, sys; print(os.getcwd()); print(sys.stdin.read().upper(), end='')"
    out = await run(
        http, {**python(code), "stdin": "line one\nline two", "working_directory": str(tmp_path)}
    )
    assert out["stdout"] == f"{tmp_path}\nLINE ONE\nLINE TWO"


async def test_without_a_working_folder_it_starts_in_the_home_folder(
    http: HttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    out = await run(http, python("import os; print(os.getcwd())"))
    assert out["stdout"] == f"{tmp_path}\n"


async def test_a_failing_program_fails_the_run_with_its_last_error_lines(
    http: HttpClient, script: Callable[[str], dict[str, Any]]
) -> None:
    code = (
        "import sys\nfor i in range(8):\n    print(f'problem {i}', file=sys.stderr)\nsys.exit(3)\n"
    )
    with pytest.raises(PermanentError) as caught:
        await run(http, script(code))
    assert str(caught.value) == (
        f"{sys.executable} exited with code 3:\n"
        "problem 3\nproblem 4\nproblem 5\nproblem 6\nproblem 7"
    )


async def test_input_the_program_does_not_read_is_no_error(http: HttpClient) -> None:
    out = await run(http, {"program": "/bin/echo", "arguments": "ok", "stdin": "x" * 1_000_000})
    assert out["stdout"] == "ok\n"


async def test_a_failing_program_may_be_allowed(http: HttpClient) -> None:
    code = "import sys; print('partial'); sys.exit(2)"
    out = await run(http, {**python(code), "fail_on_error": False})
    assert (out["exit_code"], out["stdout"]) == (2, "partial\n")


async def test_a_program_that_runs_too_long_is_stopped(
    http: HttpClient, tmp_path: Path, script: Callable[[str], dict[str, Any]]
) -> None:
    pid_file = tmp_path / "pid"
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)"
    )
    with pytest.raises(PermanentError) as caught:
        await run(http, {**script(code), "timeout": 4})
    assert str(caught.value) == f"{sys.executable} did not finish within 4s; it was stopped"
    program, grandchild = (int(p) for p in pid_file.read_text().split())
    assert not _alive(program)
    await _gone(grandchild)


async def test_a_program_that_ignores_the_stop_request_is_killed(
    http: HttpClient,
    tmp_path: Path,
    script: Callable[[str], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shell, "_TERMINATE_GRACE", 0.2)
    pid_file = tmp_path / "pid"
    code = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(600)"  # only SIGKILL ends it before the test's own time-out
    )
    with pytest.raises(PermanentError, match="did not finish within 4s; it was stopped"):
        await run(http, {**script(code), "timeout": 4})
    assert not _alive(int(pid_file.read_text()))


async def _gone(pid: int, within: float = 10.0) -> None:
    """Wait (bounded) until the kernel has ended ``pid``: a kill is delivered, not instant."""
    deadline = asyncio.get_running_loop().time() + within
    while _alive(pid):
        assert asyncio.get_running_loop().time() < deadline, f"process {pid} still runs"
        await asyncio.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has finished, it only waits to be reaped


async def test_a_program_that_leaves_a_background_child_is_not_waited_for(
    http: HttpClient,
    tmp_path: Path,
    script: Callable[[str], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shell, "_DRAIN_SECONDS", 0.2)
    pid_file = tmp_path / "pid"
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('started')"
    )
    try:
        out = await run(http, script(code))
        assert out["stdout"] == "started\n"
        assert out["duration"] < 2
        assert _alive(int(pid_file.read_text()))  # it keeps running: only a time-out stops it
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_output_is_cut_at_64_kib_with_a_note(http: HttpClient) -> None:
    code = (
        "import sys; sys.stdout.write('a' * 100_000 + 'END');"
        "sys.stderr.write('START' + 'b' * 70_000 + 'z')"
    )
    out = await run(http, python(code))
    assert out["stdout"].startswith(
        "a" * 65536 + "\n[output cut: 34,467 bytes left out, showing the first 64 KiB]"
    )
    assert "END" not in out["stdout"]
    assert out["stderr"].startswith("[output cut: 4,470 bytes left out, showing the last 64 KiB]\n")
    assert out["stderr"].endswith("b" * 65535 + "z")


async def test_a_program_not_on_path_is_named(http: HttpClient) -> None:
    with pytest.raises(PermanentError) as caught:
        await run(http, {"program": "no-such-program-hookline"})
    assert str(caught.value) == (
        "No program named 'no-such-program-hookline' was found on PATH: install it, or "
        "give its full path"
    )


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("/nonexistent/tool", "The program /nonexistent/tool does not exist: check the path"),
        ("bin/tool", "Program: 'bin/tool' is not a full path"),
        ("/", "/ is a folder, not a program"),
    ],
)
async def test_bad_program_paths_are_explained(
    http: HttpClient, program: str, message: str
) -> None:
    with pytest.raises(PermanentError, match="^" + message.replace(".", r"\.")):
        await run(http, {"program": program})


async def test_a_file_that_is_not_executable_is_explained(http: HttpClient, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    with pytest.raises(PermanentError, match="is not executable: make it executable"):
        await run(http, {"program": str(script)})


async def test_a_program_that_cannot_start_gets_the_os_reason(
    http: HttpClient, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01\x02 not a program")
    garbage.chmod(0o755)
    with pytest.raises(PermanentError) as caught:
        await run(http, {"program": str(garbage)})
    assert str(caught.value) == f"Could not start {garbage}: Exec format error"


async def test_a_batch_file_with_arguments_is_refused(http: HttpClient, tmp_path: Path) -> None:
    batch = tmp_path / "tool.CMD"
    batch.write_text("@echo %1\n")
    batch.chmod(0o755)
    with pytest.raises(PermanentError, match=r"cmd\.exe would read its arguments as commands"):
        await run(http, {"program": str(batch), "arguments": "x & del *"})


async def test_a_missing_working_folder_is_named(http: HttpClient, tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as caught:
        await run(http, {"program": "echo", "working_directory": str(tmp_path / "gone")})
    assert str(caught.value) == (
        f"The working folder {tmp_path / 'gone'} does not exist: create it or choose another"
    )


async def test_nothing_runs_while_the_setting_is_off(http: HttpClient, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(PermanentError, match="turn on 'Run shell commands' in Settings"):
        await run(http, python(f"open({str(marker)!r}, 'w')"), settings=Settings())
    assert not marker.exists()


def test_declared_as_a_guarded_reaction_that_is_not_repeated() -> None:
    assert SPEC.requires_setting == "allow_shell"
    assert SPEC.retry is False
    assert SPEC.timeout > shell.MAX_TIMEOUT
    program = SPEC.param("program")
    assert program is not None
    assert not program.may_template(in_reaction=True)
    arguments = SPEC.param("arguments")
    assert arguments is not None
    assert arguments.may_template(in_reaction=True)


def test_a_timeout_over_an_hour_is_refused(http: HttpClient) -> None:
    from engine import ValidationError

    with pytest.raises(ValidationError, match="at most 1h"):
        reaction_context(SPEC, {"program": "echo", "timeout": "2h"}, http, settings=ALLOWED)


def test_preview_shows_the_exact_arguments() -> None:
    assert SPEC.preview is not None
    shown = SPEC.preview({"program": "convert", "arguments": "a b\n; c\n", "timeout": 60})
    assert shown["arguments"] == ["a b", "; c"]
