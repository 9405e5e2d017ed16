"""``hookline service``: the file each OS's service manager reads, written where it looks,
and the commands that install, remove and ask about it (recorded by stand-ins on PATH)."""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine import os_service
from engine.app import Engine
from engine.cli import main, parse_args

ROOT = Path(__file__).resolve().parents[2]
NS = {"t": os_service.TASK_NS}
#: A folder name no quoting can take for granted: spaces, quotes, a backslash, non-ASCII,
#: systemd's specifier and variable signs.
ODD = "Zoë's \"100%\" $HOME\\x"
ENGINE = [sys.executable, "-m", "engine.cli"]
pytestmark = pytest.mark.skipif(sys.platform == "win32",
                                reason="the stand-in service managers are POSIX scripts")


# ------------------------------------------------------------------ reading them back


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(path, encoding="utf-8")
    return unit


def systemd_words(value: str) -> list[str]:
    """ExecStart= split as systemd does for what the writer uses: shell-like quotes,
    then ``%%`` and (in the arguments) ``$$`` undone."""
    words = shlex.split(value)
    return [w.replace("%%", "%") if i == 0 else w.replace("%%", "%").replace("$$", "$")
            for i, w in enumerate(words)]


def windows_argv(line: str) -> list[str]:
    """A command line split as the Microsoft C runtime (and so Python) splits it."""
    args: list[str] = []
    word: list[str] = []
    quoted = have = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            i += n
            if i < len(line) and line[i] == '"':
                word.append("\\" * (n // 2))
                if n % 2:
                    word.append('"')
                    i += 1
            else:
                word.append("\\" * n)
            have = True
        elif c == '"':
            quoted, have = not quoted, True
            i += 1
        elif c in " \t" and not quoted:
            if have:
                args.append("".join(word))
                word, have = [], False
            i += 1
        else:
            word.append(c)
            have = True
            i += 1
    if have:
        args.append("".join(word))
    return args


# ------------------------------------------------------------------ the files


def test_systemd_unit_runs_serve_with_its_args_and_data_folder(tmp_path: Path) -> None:
    data = tmp_path / ODD / "data"
    service = os_service.service_for("linux", ["--port", "8788", "--host", "0.0.0.0"], data,
                                     home=tmp_path / "home", user="zoë")
    assert service.path == tmp_path / "home/.config/systemd/user/hookline.service"
    os_service.write_atomic(service.path, service.content)
    unit = read_unit(service.path)
    assert systemd_words(unit["Service"]["ExecStart"]) == [
        *ENGINE, "serve", "--port", "8788", "--host", "0.0.0.0"]
    assert systemd_words(unit["Service"]["Environment"]) == [f"HOOKLINE_DATA_DIR={data}"]
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "default.target"
    assert "loginctl enable-linger zoë" in service.note


def test_systemd_unit_leaves_the_default_data_folder_unsaid(tmp_path: Path) -> None:
    service = os_service.service_for("linux", [], os_service.default_data_dir(),
                                     home=tmp_path, user="me")
    unit = read_unit_text(service.content.decode())
    assert "Environment" not in unit["Service"]
    assert systemd_words(unit["Service"]["ExecStart"]) == [*ENGINE, "serve"]


def read_unit_text(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    return unit


@pytest.mark.parametrize("executable", ["/opt/Hook Line/bïn/python3", f"/opt/{ODD}/python3"])
def test_systemd_quoting_takes_any_path_and_argument(executable: str) -> None:
    args = ["serve", f"--name={ODD}", "a;b", ";", "", "tab\there"]
    unit = read_unit_text(os_service.systemd_unit([executable, *args], Path(f"/srv/{ODD}")))
    words = systemd_words(unit["Service"]["ExecStart"].replace("\\x09", "\t"))
    # systemd refuses a quote or backslash in the executable: such a path goes through env
    prefix = ["/usr/bin/env"] if any(c in executable for c in "'\"\\") else []
    assert words == [*prefix, executable, *args]
    assert systemd_words(unit["Service"]["Environment"]) == [f"HOOKLINE_DATA_DIR=/srv/{ODD}"]


def test_systemd_itself_accepts_the_unit(tmp_path: Path) -> None:
    """systemd-analyze reads the unit as systemd will: quoting, and that the executable
    (in a folder named with every awkward character) exists and can be run."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: the systemd package)")
    for folder in ("Hook Line bïn 100% $x", ODD):
        executable = tmp_path / folder / "python3"
        executable.parent.mkdir()
        executable.symlink_to(sys.executable)
        unit = tmp_path / "hookline.service"
        unit.write_text(os_service.systemd_unit(
            [str(executable), "-m", "engine.cli", "serve", f"--host={ODD}"],
            tmp_path / folder), encoding="utf-8")
        runtime = tmp_path / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        done = subprocess.run([analyze, "verify", "--user", str(unit)], capture_output=True,
                              text=True, timeout=60, check=False,
                              env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
        if "Failed to initialize manager" in done.stderr:
            pytest.skip(f"systemd-analyze cannot start its user manager here: {done.stderr}")
        assert done.returncode == 0 and done.stderr == "", (folder, done.stderr)
    # and it does notice a bad unit: a program that is not there
    unit.write_text(os_service.systemd_unit([str(tmp_path / "nothing here")], None))
    done = subprocess.run([analyze, "verify", "--user", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert done.returncode != 0 and "nothing here" in done.stderr


def test_launchd_agent_runs_serve_and_logs_to_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / ODD
    service = os_service.service_for("darwin", ["--port", "8788"], data,
                                     home=tmp_path / "home", uid=501)
    assert service.path == tmp_path / "home/Library/LaunchAgents/org.hookline.serve.plist"
    os_service.write_atomic(service.path, service.content)
    with service.path.open("rb") as file:
        agent = plistlib.load(file)
    assert agent["Label"] == "org.hookline.serve"
    assert agent["ProgramArguments"] == [*ENGINE, "serve", "--port", "8788"]
    assert agent["EnvironmentVariables"] == {"HOOKLINE_DATA_DIR": str(data)}
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}  # again only after a failure
    assert agent["StandardOutPath"] == str(data / "logs" / "service-stdout.log")
    assert agent["StandardErrorPath"] == str(data / "logs" / "service-stderr.log")
    assert service.start[0].argv == ["launchctl", "bootstrap", "gui/501", str(service.path)]
    default = os_service.service_for("darwin", [], os_service.default_data_dir(),
                                     home=tmp_path, uid=501)
    assert "EnvironmentVariables" not in plistlib.loads(default.content)


def test_windows_task_runs_serve_at_logon_and_restarts_on_failure(tmp_path: Path) -> None:
    data = tmp_path / ODD
    service = os_service.service_for("win32", ["--port", "8788", "--host", ODD], data,
                                     home=tmp_path / "Zoë", user="PC\\Zoë")
    assert service.path == tmp_path / "Zoë/AppData/Roaming/Hookline/hookline-task.xml"
    os_service.write_atomic(service.path, service.content)
    assert service.content.startswith(b"\xff\xfe")  # UTF-16, as schtasks /XML reads it
    task = ET.parse(service.path).getroot()  # noqa: S314 - written by this test
    assert task.tag == f"{{{os_service.TASK_NS}}}Task"
    assert task.findtext("t:Triggers/t:LogonTrigger/t:UserId", None, NS) == "PC\\Zoë"
    assert task.findtext("t:Principals/t:Principal/t:UserId", None, NS) == "PC\\Zoë"
    assert task.findtext("t:Settings/t:RestartOnFailure/t:Interval", None, NS) == "PT1M"
    assert task.findtext("t:Settings/t:RestartOnFailure/t:Count", None, NS) == "999"
    assert task.findtext("t:Settings/t:ExecutionTimeLimit", None, NS) == "PT0S"
    assert task.findtext("t:Actions/t:Exec/t:Command", None, NS) == sys.executable
    arguments = task.findtext("t:Actions/t:Exec/t:Arguments", "", NS)
    # a task has no environment of its own: the data folder is given as an option
    assert windows_argv(arguments) == ["-m", "engine.cli", "--data-dir", str(data), "serve",
                                       "--port", "8788", "--host", ODD]
    assert [s.argv for s in service.start] == [
        ["schtasks", "/Create", "/XML", str(service.path), "/TN", "Hookline", "/F"],
        ["schtasks", "/Run", "/TN", "Hookline"]]


@pytest.mark.parametrize("arg", ["plain", "two words", 'say "hi"', "ends\\", "a\\\\\"b",
                                 "", "tab\tx", "Zoë"])
def test_windows_arguments_come_back_as_given(arg: str) -> None:
    xml = os_service.task_xml(["C:\\Program Files\\Hookline\\hookline.exe", arg, "x"],
                              user=None)
    task = ET.fromstring(xml.decode("utf-16"))  # noqa: S314 - made just now
    assert windows_argv(task.findtext("t:Actions/t:Exec/t:Arguments", "", NS)) == [arg, "x"]
    assert task.find("t:Triggers/t:LogonTrigger/t:UserId", NS) is None


# ------------------------------------------------------------------ through the CLI


class Manager:
    """Stand-ins for a service manager's commands: real executables on PATH that log
    their arguments and answer as told."""

    def __init__(self, folder: Path) -> None:
        self.bin = folder / "bin"
        self.bin.mkdir()
        self.log = folder / "calls.log"
        self.answers: dict[str, list[object]] = {}

    def add(self, name: str) -> None:
        script = self.bin / name
        script.write_text(
            f"#!{sys.executable} -S\n"
            "import json, os, sys\n"
            "here = os.path.dirname(os.path.abspath(__file__))\n"
            "argv = [os.path.basename(sys.argv[0]), *sys.argv[1:]]\n"
            f"with open({str(self.log)!r}, 'a', encoding='utf-8') as log:\n"
            "    log.write(json.dumps(argv) + '\\n')\n"
            "with open(os.path.join(here, 'answers.json'), encoding='utf-8') as f:\n"
            "    answers = json.load(f)\n"
            "out, err, code = answers.get(' '.join(argv), answers.get('*', ['', '', 0]))\n"
            "sys.stdout.write(out)\n"
            "sys.stderr.write(err)\n"
            "sys.exit(code)\n", encoding="utf-8")
        script.chmod(0o755)
        self.answer("*", "", "", 0)

    def answer(self, command: str, out: str, err: str = "", code: int = 0) -> None:
        self.answers[command] = [out, err, code]
        (self.bin / "answers.json").write_text(json.dumps(self.answers), encoding="utf-8")

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        self.log.unlink()
        return [json.loads(line) for line in lines]


@pytest.fixture
def manager(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Manager:
    manager = Manager(tmp_path)
    monkeypatch.setenv("PATH", str(manager.bin))  # the real ones are out of reach
    return manager


def hookline(*args: str) -> subprocess.CompletedProcess[str]:
    """The command, as a user runs it, in this test's HOME, PATH and data folder."""
    return subprocess.run([*ENGINE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_install_status_uninstall_with_systemd(manager: Manager, home: Path,
                                               data_dir: Path) -> None:
    manager.add("systemctl")
    manager.answer("systemctl --user is-active hookline", "active\n")
    unit_path = home / ".config/systemd/user/hookline.service"

    done = hookline("service", "install", "--remote", "--port", "8788")
    assert done.returncode == 0, done.stderr
    assert manager.calls() == [["systemctl", "--user", "daemon-reload"],
                               ["systemctl", "--user", "enable", "--now", "hookline"]]
    unit = read_unit(unit_path)
    assert systemd_words(unit["Service"]["ExecStart"]) == [
        *ENGINE, "serve", "--remote", "--port", "8788"]
    assert systemd_words(unit["Service"]["Environment"]) == [f"HOOKLINE_DATA_DIR={data_dir}"]
    assert f"Wrote the systemd service file {unit_path}" in done.stdout
    assert "systemd has started it" in done.stdout

    done = hookline("service", "status")
    assert done.returncode == 0, done.stderr
    assert f"installed: {unit_path}" in done.stdout
    assert "systemd: running (active)" in done.stdout
    assert f"no engine runs on {data_dir}" in done.stdout
    assert manager.calls() == [["systemctl", "--user", "is-active", "hookline"]]

    done = hookline("service", "uninstall")
    assert done.returncode == 0, done.stdout + done.stderr
    assert manager.calls() == [["systemctl", "--user", "disable", "--now", "hookline"],
                               ["systemctl", "--user", "daemon-reload"]]
    assert not unit_path.exists()
    assert "not installed" in hookline("service", "status").stdout


def test_a_second_install_over_another_command_needs_force(manager: Manager,
                                                           home: Path) -> None:
    manager.add("systemctl")
    unit_path = home / ".config/systemd/user/hookline.service"
    assert hookline("service", "install", "--port", "8788").returncode == 0
    first = unit_path.read_bytes()
    manager.calls()

    again = hookline("service", "install", "--port", "9999")
    assert again.returncode == 1
    assert "already installed" in again.stderr and "--port 8788" in again.stderr
    assert "--port 9999" in again.stderr and "--force" in again.stderr
    assert unit_path.read_bytes() == first and manager.calls() == []

    same = hookline("service", "install", "--port", "8788")  # the same: kept, started
    assert same.returncode == 0 and "Kept the systemd service file" in same.stdout

    manager.calls()
    forced = hookline("service", "install", "--force", "--port", "9999")
    assert forced.returncode == 0, forced.stderr
    assert "--port 9999" in read_unit(unit_path)["Service"]["ExecStart"]
    assert manager.calls() == [["systemctl", "--user", "daemon-reload"],
                               ["systemctl", "--user", "enable", "hookline"],
                               ["systemctl", "--user", "restart", "hookline"]]


def test_install_without_a_systemd_session_writes_the_file_and_says_what_to_run(
        manager: Manager, home: Path) -> None:
    manager.add("systemctl")
    manager.answer("*", "", "Failed to connect to bus: No medium found\n", 1)
    done = hookline("service", "install")
    assert done.returncode == 1
    assert (home / ".config/systemd/user/hookline.service").exists()
    assert "Failed to connect to bus" in done.stdout
    assert ("systemctl --user daemon-reload && systemctl --user enable --now hookline"
            in done.stdout)
    assert "loginctl enable-linger" in done.stdout
    status = hookline("service", "status")
    assert "systemd: cannot be asked" in status.stdout and "Failed to connect" in status.stdout


def test_install_where_systemctl_is_missing(manager: Manager, home: Path) -> None:
    done = hookline("service", "install")
    assert done.returncode == 1
    assert "systemctl is not installed here" in done.stdout
    assert (home / ".config/systemd/user/hookline.service").exists()
    assert "cannot be asked: systemctl is not installed" in hookline("service", "status").stdout
    done = hookline("service", "uninstall")
    assert done.returncode == 1
    assert "systemctl --user stop hookline && systemctl --user daemon-reload" in done.stdout
    assert not (home / ".config/systemd/user/hookline.service").exists()


def test_install_refuses_what_serve_would_refuse(manager: Manager, home: Path) -> None:
    manager.add("systemctl")
    done = hookline("service", "install", "--no-such-option")
    assert done.returncode == 2
    assert "--no-such-option" in done.stderr and "hookline serve --help" in done.stderr
    assert not (home / ".config").exists() and manager.calls() == []


def test_status_when_not_installed(manager: Manager, home: Path, data_dir: Path) -> None:
    done = hookline("service", "status")
    assert done.returncode == 3
    assert f"not installed (no {home}/.config/systemd/user/hookline.service)" in done.stdout
    assert f"no engine runs on {data_dir}" in done.stdout


async def test_status_says_an_engine_answers_on_the_control_channel(
        manager: Manager, engine: Engine, data_dir: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *ENGINE, "service", "status", cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert (f"an engine answers on {data_dir}'s control channel (pid {os.getpid()}, active)"
            in out.decode())


def test_install_and_uninstall_with_launchd(manager: Manager, home: Path, data_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os_service, "_system", lambda: "darwin")
    manager.add("launchctl")
    plist = home / "Library/LaunchAgents/org.hookline.serve.plist"
    label = f"gui/{os.getuid()}/org.hookline.serve"
    assert main(["service", "install", "--port", "8788"]) == 0
    assert manager.calls() == [["launchctl", "bootstrap", f"gui/{os.getuid()}", str(plist)]]
    agent = plistlib.loads(plist.read_bytes())
    assert agent["ProgramArguments"] == [*ENGINE, "serve", "--port", "8788"]
    assert (data_dir / "logs").is_dir()  # launchd writes the output there, it must exist

    manager.answer(f"launchctl print {label}", "\tstate = running\n\tpid = 4242\n")
    assert main(["service", "status"]) == 0
    assert "launchd: running" in capsys.readouterr().out

    manager.calls()
    assert main(["service", "install", "--force", "--port", "9999"]) == 0
    assert manager.calls() == [["launchctl", "bootout", label],
                               ["launchctl", "bootstrap", f"gui/{os.getuid()}", str(plist)]]

    assert main(["service", "uninstall"]) == 0
    assert manager.calls() == [["launchctl", "bootout", label]]
    assert not plist.exists()

    # not loaded (launchctl says so and fails): installing and removing still work
    manager.answer(f"launchctl bootout {label}", "", "Boot-out failed: 3: No such process\n", 3)
    assert main(["service", "install"]) == 0
    assert main(["service", "uninstall"]) == 0 and not plist.exists()


def test_install_and_uninstall_with_task_scheduler(manager: Manager, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os_service, "_system", lambda: "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("USERNAME", "Zoë")
    monkeypatch.setenv("USERDOMAIN", "PC")
    manager.add("schtasks")
    xml = tmp_path / "Roaming/Hookline/hookline-task.xml"
    assert main(["service", "install"]) == 0
    assert manager.calls() == [
        ["schtasks", "/Create", "/XML", str(xml), "/TN", "Hookline", "/F"],
        ["schtasks", "/Run", "/TN", "Hookline"]]
    task = ET.parse(xml).getroot()  # noqa: S314 - written by this test
    assert task.findtext("t:Triggers/t:LogonTrigger/t:UserId", None, NS) == "PC\\Zoë"

    manager.answer("schtasks /Query /TN Hookline /FO CSV /NH",
                   '"\\Hookline","N/A","Running"\r\n')
    assert main(["service", "status"]) == 0
    assert "Task Scheduler: Running" in capsys.readouterr().out

    manager.calls()
    assert main(["service", "uninstall"]) == 0
    assert manager.calls() == [["schtasks", "/End", "/TN", "Hookline"],
                               ["schtasks", "/Delete", "/TN", "Hookline", "/F"]]
    assert not xml.exists()



def test_install_keeps_what_it_does_not_know_for_serve() -> None:
    args = parse_args(["service", "install", "--remote", "--force", "--port", "1"])
    assert args.serve_args == ["--remote", "--port", "1"] and args.force
    assert parse_args(["service", "install"]).serve_args == []


def what_it_runs(service: os_service.ServiceFile) -> tuple[list[str], dict[str, str]]:
    """The command and environment a service manager would start, read back from the
    file as each format is read."""
    if service.manager == "systemd":
        unit = read_unit_text(service.content.decode())
        env = dict(w.split("=", 1) for w in systemd_words(unit["Service"].get("Environment", "")))
        return systemd_words(unit["Service"]["ExecStart"]), env
    if service.manager == "launchd":
        agent = plistlib.loads(service.content)
        return agent["ProgramArguments"], agent.get("EnvironmentVariables", {})
    task = ET.fromstring(service.content.decode("utf-16"))  # noqa: S314 - made just now
    exec_ = "t:Actions/t:Exec/t:"
    return [task.findtext(exec_ + "Command", "", NS),
            *windows_argv(task.findtext(exec_ + "Arguments", "", NS))], {}


@pytest.mark.parametrize("system", ["linux", "darwin", "win32"])
async def test_what_each_file_starts_is_a_working_engine_on_its_data_folder(
        system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started as its service manager would start it, the command serves the data
    folder (named with every awkward character), and SIGTERM stops it cleanly (exit 0:
    no restart on failure)."""
    data = tmp_path / ODD / "data"
    monkeypatch.delenv("HOOKLINE_DATA_DIR")  # only what the file says
    service = os_service.service_for(system, ["--port", "0"], data, home=tmp_path, uid=1,
                                     user="me")
    argv, env = what_it_runs(service)
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=tmp_path, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    said: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not said or "Ctrl+C stops." not in said[-1]:
                line = (await process.stdout.readline()).decode()
                assert line, "".join(said)
                said.append(line)
        assert f"is running on {data}" in "".join(said)
        answer = await asyncio.to_thread(os_service.engine_answers, data)
        assert answer.startswith(f"an engine answers on {data}'s control channel"), answer
    finally:
        if process.returncode is None:
            process.terminate()
    assert await asyncio.wait_for(process.wait(), 60) == 0, "".join(said)
