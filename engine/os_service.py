"""``hookline serve`` as the user's service: a systemd user unit (Linux), a launchd agent
(macOS) or a Task Scheduler task (Windows), and the commands that start, stop and ask
about it (``hookline service install|uninstall|status``).

Each OS's file is made by a function taking explicit places (home, user id, user name),
so tests check all three on any OS; :func:`service_for` picks the running system's. A
few helpers here are shared with the desktop app's start at login (desktop/autostart.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import plistlib
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

UNIT_NAME = "hookline.service"
#: macOS: ~/Library/LaunchAgents/<AGENT_LABEL>.plist (the desktop app's start at login
#: is org.hookline.app: the two never overwrite each other).
AGENT_LABEL = "org.hookline.serve"
TASK_NAME = "Hookline"
TASK_FILE = "hookline-task.xml"
#: The Task Scheduler's schema (https://learn.microsoft.com/windows/win32/taskschd/task-scheduler-schema).
TASK_NS = "http://schemas.microsoft.com/windows/2004/02/mit/task"
DESCRIPTION = "Hookline automation engine (hookline serve)"

# ------------------------------------------------------------ shared with autostart.py


def program(module: str) -> list[str]:
    """How to start ``module``'s ``main``: the frozen executable, or ``module`` run by this
    Python (a source checkout or a pip install; the venv's own python keeps its venv)."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", module]


def config_home(home: Path | None = None) -> Path:
    """``$XDG_CONFIG_HOME`` when it is absolute, else ``~/.config`` (freedesktop)."""
    config = os.environ.get("XDG_CONFIG_HOME") or ""
    return Path(config) if os.path.isabs(config) else (home or Path.home()) / ".config"


def launch_agents_dir(home: Path | None = None) -> Path:
    return (home or Path.home()) / "Library" / "LaunchAgents"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------------ the files


class Step(NamedTuple):
    """A service-manager command; ``optional``: its failure changes nothing (e.g. stopping
    what may not run)."""

    argv: list[str]
    optional: bool = False


@dataclasses.dataclass(frozen=True)
class ServiceFile:
    """What one OS's service manager is given, and the commands around it.

    Attributes:
        manager: its name, as users know it.
        path: where the file goes.
        content: the file's bytes.
        start: run after writing a new file; ``replace``: after overwriting an older one.
        stop: run before removing the file; ``after_removal``: after it.
        query: asks whether the service runs (read by :func:`ask_manager`).
        note: said after an install (what else the OS needs for it to run unattended).
        stop_by_hand: what to run when ``stop`` could not be, once the file is removed
            (``stop`` itself when empty).
    """

    manager: str
    path: Path
    content: bytes
    start: list[Step]
    replace: list[Step]
    stop: list[Step]
    after_removal: list[Step]
    query: list[str]
    note: str = ""
    stop_by_hand: list[Step] = dataclasses.field(default_factory=list)


_SYSTEMD_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                           "/._-+=:,@")
#: systemd refuses these in ExecStart's executable ("contains special characters").
_NOT_IN_EXECUTABLE = frozenset("'\"\\")


def systemd_quote(word: str, *, dollar: bool = True) -> str:
    """One word of ``ExecStart=`` or one ``Environment=`` assignment, as systemd splits
    it: ``%`` starts a specifier (doubled), ``$`` a variable in ExecStart's arguments
    (doubled there: ``dollar``; the executable and Environment= take it as it is),
    quotes and backslashes are escaped inside double quotes, control characters written
    ``\\xNN``. Other characters (non-ASCII too) stay: a unit file is UTF-8."""
    text = word.replace("%", "%%")
    if dollar:
        text = text.replace("$", "$$")
    if word and word != ";" and all(c in _SYSTEMD_PLAIN or ord(c) > 0x7F for c in word):
        return text
    escaped = "".join(
        "\\" + c if c in '"\\' else f"\\x{ord(c):02x}" if ord(c) < 0x20 or c == "\x7f"
        else c for c in text)
    return f'"{escaped}"'


def systemd_exec(command: Sequence[str]) -> str:
    """``ExecStart=``'s value for ``command``. An executable whose path has a quote or a
    backslash (which systemd refuses there) is started through ``/usr/bin/env``."""
    if any(c in _NOT_IN_EXECUTABLE for c in command[0]):
        command = ["/usr/bin/env", *command]
    return " ".join([systemd_quote(command[0], dollar=False),
                     *(systemd_quote(a) for a in command[1:])])


def systemd_unit(command: Sequence[str], data_dir: Path | None) -> str:
    """The user unit; ``data_dir`` only when it is not the default one."""
    env = ("Environment=" + systemd_quote(f"HOOKLINE_DATA_DIR={data_dir}", dollar=False)
           + "\n") if data_dir is not None else ""
    return (
        "[Unit]\n"
        f"Description={DESCRIPTION}\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={systemd_exec(command)}\n"
        f"{env}"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def systemd_service(command: Sequence[str], data_dir: Path | None, *, home: Path,
                    user: str) -> ServiceFile:
    path = config_home(home) / "systemd" / "user" / UNIT_NAME
    ctl = ["systemctl", "--user"]
    linger = Path("/var/lib/systemd/linger") / user
    note = "" if linger.exists() else (
        "To keep it running while you are not logged in (a home server) and start it at "
        f"boot, run once: loginctl enable-linger {user}")
    return ServiceFile(
        manager="systemd", path=path, content=systemd_unit(command, data_dir).encode(),
        start=[Step([*ctl, "daemon-reload"]), Step([*ctl, "enable", "--now", "hookline"])],
        replace=[Step([*ctl, "daemon-reload"]), Step([*ctl, "enable", "hookline"]),
                 Step([*ctl, "restart", "hookline"])],
        stop=[Step([*ctl, "disable", "--now", "hookline"])],
        after_removal=[Step([*ctl, "daemon-reload"])],
        # once the file is gone (and its link, which uninstall removes), disable has
        # nothing to act on: stopping and forgetting it is what is left
        stop_by_hand=[Step([*ctl, "stop", "hookline"]), Step([*ctl, "daemon-reload"])],
        query=[*ctl, "is-active", "hookline"], note=note)


def launchd_agent(command: Sequence[str], data_dir: Path, *, custom_data_dir: bool,
                  ) -> dict[str, Any]:
    """The LaunchAgent's property list: started at load, started again when it exits
    with a failure, its output in the data folder's logs."""
    logs = data_dir / "logs"
    agent: dict[str, Any] = {
        "Label": AGENT_LABEL,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ProcessType": "Background",
        "StandardOutPath": str(logs / "service-stdout.log"),
        "StandardErrorPath": str(logs / "service-stderr.log"),
    }
    if custom_data_dir:
        agent["EnvironmentVariables"] = {"HOOKLINE_DATA_DIR": str(data_dir)}
    return agent


def launchd_service(command: Sequence[str], data_dir: Path, *, custom_data_dir: bool,
                    home: Path, uid: int) -> ServiceFile:
    path = launch_agents_dir(home) / f"{AGENT_LABEL}.plist"
    domain = f"gui/{uid}"
    content = plistlib.dumps(launchd_agent(command, data_dir, custom_data_dir=custom_data_dir))
    # fails when the agent is not loaded: then there is nothing to stop
    bootout = Step(["launchctl", "bootout", f"{domain}/{AGENT_LABEL}"], optional=True)
    return ServiceFile(
        manager="launchd", path=path, content=content,
        start=[Step(["launchctl", "bootstrap", domain, str(path)])],
        replace=[bootout, Step(["launchctl", "bootstrap", domain, str(path)])],
        stop=[bootout], after_removal=[],
        query=["launchctl", "print", f"{domain}/{AGENT_LABEL}"])


def task_xml(command: Sequence[str], *, user: str | None) -> bytes:
    """The Task Scheduler task: at the user's logon, restarted (every minute, up to 999
    times) when it fails, never stopped for running long; UTF-16 as schtasks reads it."""
    ET.register_namespace("", TASK_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{TASK_NS}}}{tag}")
        element.text = text
        return element

    task = ET.Element(f"{{{TASK_NS}}}Task", version="1.2")
    info = sub(task, "RegistrationInfo")
    sub(info, "Description", DESCRIPTION)
    sub(info, "URI", "\\" + TASK_NAME)
    logon = sub(sub(task, "Triggers"), "LogonTrigger")
    sub(logon, "Enabled", "true")
    if user:
        sub(logon, "UserId", user)
    principal = sub(sub(task, "Principals"), "Principal")
    principal.set("id", "Author")
    if user:
        sub(principal, "UserId", user)
    sub(principal, "LogonType", "InteractiveToken")
    sub(principal, "RunLevel", "LeastPrivilege")
    settings = sub(task, "Settings")
    for tag, text in (("MultipleInstancesPolicy", "IgnoreNew"),
                      ("DisallowStartIfOnBatteries", "false"),
                      ("StopIfGoingOnBatteries", "false"),
                      ("AllowHardTerminate", "true"),
                      ("StartWhenAvailable", "true"),
                      ("AllowStartOnDemand", "true"),
                      ("Enabled", "true"),
                      ("Hidden", "false"),
                      ("ExecutionTimeLimit", "PT0S")):
        sub(settings, tag, text)
    restart = sub(settings, "RestartOnFailure")
    sub(restart, "Interval", "PT1M")
    sub(restart, "Count", "999")
    actions = sub(task, "Actions")
    actions.set("Context", "Author")
    exec_ = sub(actions, "Exec")
    sub(exec_, "Command", command[0])
    if len(command) > 1:
        # Python (and every MSVC-built program) splits its command line this way.
        sub(exec_, "Arguments", subprocess.list2cmdline(list(command[1:])))
    ET.indent(task)
    return bytes(ET.tostring(task, encoding="utf-16", xml_declaration=True))


def task_service(command: Sequence[str], *, home: Path, user: str | None,
                 appdata: str | None) -> ServiceFile:
    base = Path(appdata) if appdata else home / "AppData" / "Roaming"
    path = base / "Hookline" / TASK_FILE
    create = Step(["schtasks", "/Create", "/XML", str(path), "/TN", TASK_NAME, "/F"])
    run = Step(["schtasks", "/Run", "/TN", TASK_NAME])
    end = Step(["schtasks", "/End", "/TN", TASK_NAME], optional=True)
    return ServiceFile(
        manager="Task Scheduler", path=path, content=task_xml(command, user=user),
        start=[create, run], replace=[end, create, run],
        stop=[end, Step(["schtasks", "/Delete", "/TN", TASK_NAME, "/F"])], after_removal=[],
        query=["schtasks", "/Query", "/TN", TASK_NAME, "/FO", "CSV", "/NH"])


def default_data_dir() -> Path:
    """The data folder when neither ``--data-dir`` nor ``$HOOKLINE_DATA_DIR`` names one."""
    import platformdirs

    return Path(platformdirs.user_data_dir("Hookline", appauthor=False))


def service_for(system: str, serve_args: Sequence[str], data_dir: Path, *,
                home: Path | None = None, uid: int | None = None,
                user: str | None = None) -> ServiceFile:
    """The service running ``hookline serve SERVE_ARGS`` on ``data_dir`` for ``system``
    (``sys.platform``'s values); the places default to this user's."""
    appdata = os.environ.get("APPDATA") if home is None else None  # this user's
    home = home or Path.home()
    custom = data_dir != default_data_dir()
    base = program("engine.cli")
    if system == "win32":  # a task has no environment of its own: the folder is an option
        folder = ["--data-dir", str(data_dir)] if custom else []
        if user is None and os.environ.get("USERNAME"):
            domain = os.environ.get("USERDOMAIN")
            user = (f"{domain}\\" if domain else "") + os.environ["USERNAME"]
        return task_service([*base, *folder, "serve", *serve_args], home=home, user=user,
                            appdata=appdata)
    command = [*base, "serve", *serve_args]
    if system == "darwin":
        return launchd_service(command, data_dir, custom_data_dir=custom, home=home,
                               uid=os.getuid() if uid is None else uid)
    return systemd_service(command, data_dir if custom else None, home=home,
                           user=user or _user_name())


def _user_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "$USER"


def installed_command(service: ServiceFile, content: bytes) -> str:
    """What an installed file runs, as its own format writes it (to show, not to run)."""
    try:
        if service.manager == "launchd":
            agent = plistlib.loads(content)
            env = "".join(f"{k}={shlex.quote(v)} "
                          for k, v in agent.get("EnvironmentVariables", {}).items())
            return env + shlex.join(agent["ProgramArguments"])
        if service.manager == "Task Scheduler":
            text = content.decode("utf-16") if content[:2] in (b"\xff\xfe", b"\xfe\xff") \
                else content.decode("utf-8")
            # the user's own file, in the user's folder; expat >= 2.4 bounds entity expansion
            root = ET.fromstring(text)  # noqa: S314
            ns = {"t": TASK_NS}
            cmd = root.findtext("t:Actions/t:Exec/t:Command", "", ns)
            args = root.findtext("t:Actions/t:Exec/t:Arguments", "", ns)
            return subprocess.list2cmdline([cmd]) + (f" {args}" if args else "")
        lines = content.decode("utf-8", "replace").splitlines()
        wanted = [line for line in lines if line.startswith(("ExecStart=", "Environment="))]
        return "; ".join(wanted) or "(no ExecStart)"
    except (ValueError, KeyError, TypeError, ET.ParseError):
        return "(a file Hookline cannot read)"


# ------------------------------------------------------------------------ running


class Outcome(NamedTuple):
    """Whether a command succeeded, and what it said (or why it could not run)."""

    ok: bool
    said: str


def _call(argv: Sequence[str]) -> subprocess.CompletedProcess[str] | str:
    """Run a service-manager command: what it did, or why it could not run."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                              check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return f"{argv[0]} is not installed here"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)


def run_step(argv: Sequence[str]) -> Outcome:
    done = _call(argv)
    if isinstance(done, str):
        return Outcome(False, done)
    said = " ".join((done.stderr.strip() or done.stdout.strip()).split())
    return Outcome(done.returncode == 0, said or f"exit status {done.returncode}")


def _shown(steps: Sequence[Step]) -> str:
    if sys.platform == "win32":
        return " && ".join(subprocess.list2cmdline(s.argv) for s in steps)
    return " && ".join(shlex.join(s.argv) for s in steps)


def run_steps(steps: Sequence[Step], say: Callable[[str], None],
              by_hand: Sequence[Step] = ()) -> bool:
    """Run ``steps`` in order until one that matters fails; then say what to run by hand
    (``by_hand``, else the steps from the one that failed)."""
    for i, step in enumerate(steps):
        outcome = run_step(step.argv)
        if outcome.ok or step.optional:
            continue
        rest = list(by_hand) or [s for s in steps[i:] if not s.optional]
        say(f"`{shlex.join(step.argv)}` failed: {outcome.said}")
        say(f"Run this where the service manager can be reached (your login session):\n"
            f"  {_shown(rest)}")
        return False
    return True


_SYSTEMD_STATES = {"active", "inactive", "failed", "activating", "deactivating",
                   "reloading", "maintenance", "refreshing"}


def ask_manager(service: ServiceFile) -> str:
    """Whether the service manager says it runs, in its words, or why it cannot be asked."""
    done = _call(service.query)
    if isinstance(done, str):
        return f"cannot be asked: {done}"
    out, err = done.stdout.strip(), " ".join(done.stderr.split())
    if service.manager == "systemd":
        word = out.splitlines()[-1].strip() if out else ""
        if word in _SYSTEMD_STATES:
            return {"active": "running (active)", "failed": "not running (failed)",
                    "inactive": "not running (inactive)"}.get(word, word)
    elif service.manager == "launchd":
        if done.returncode == 0:
            return ("running" if "state = running" in out
                    else "loaded, not running")
        if "could not find" in (out + err).lower():
            return "not loaded"
    elif done.returncode == 0 and out:
        fields = next(iter(_csv_rows(out)), [])
        return fields[2] if len(fields) > 2 else out
    return f"cannot be asked: `{shlex.join(service.query)}`: {err or out or done.returncode}"


def _csv_rows(text: str) -> list[list[str]]:
    import csv
    import io

    return list(csv.reader(io.StringIO(text)))


def engine_answers(data_dir: Path) -> str:
    """Whether an engine answers on ``data_dir``'s control channel, and in which role
    (active, or standing by for another on the same PostgreSQL database)."""
    import asyncio

    from engine.control import ControlClient
    from engine.errors import HooklineError
    from engine.lock import DataDirLock

    lock = DataDirLock(data_dir)
    if not lock.held_elsewhere():
        return f"no engine runs on {data_dir}"
    if not ControlClient.available(data_dir):
        return (f"an engine holds {data_dir} (pid {lock.holder()}) but has no control "
                "channel (yet)")

    async def ask() -> str:
        try:
            async with asyncio.timeout(10):
                answer = await ControlClient(data_dir).call("GET", "/role")
        except HooklineError as exc:
            return f"an engine answers on {data_dir} but refuses: {exc}"
        except (OSError, TimeoutError, ValueError) as exc:
            return (f"an engine holds {data_dir} (pid {lock.holder()}) but does not answer "
                    f"on its control channel ({exc or type(exc).__name__})")
        return (f"an engine answers on {data_dir}'s control channel (pid "
                f"{answer.get('pid', lock.holder())}, {answer.get('role', 'active')})")

    return asyncio.run(ask())


# ------------------------------------------------------------------------ the command


class _ServiceParser(argparse.ArgumentParser):
    """``service``'s actions; with ``serve_args`` (``install``) the options it does not
    know itself are kept for ``hookline serve`` as ``serve_args``."""

    def __init__(self, *args: Any, serve_args: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._serve_args = serve_args

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: Any = None) -> tuple[Any, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        if not self._serve_args:
            return parsed, rest
        parsed.serve_args = rest
        return parsed, []


def add_parser(sub: Any) -> None:
    """``hookline service install|uninstall|status`` on the command line's subparsers."""
    service = sub.add_parser("service", help="run `hookline serve` as your service "
                                             "(systemd, launchd, Task Scheduler)")
    ssub = service.add_subparsers(dest="action", required=True, metavar="ACTION",
                                  parser_class=_ServiceParser)
    p = ssub.add_parser(
        "install", serve_args=True,
        help="write the service and start it; other options go to `hookline serve` "
             "(e.g. --remote, --port N)",
        usage="hookline service install [--force] [SERVE OPTIONS ...]",
        description="Write a service that runs `hookline serve SERVE OPTIONS` (e.g. "
                    "--remote, --port N) on this data folder, and start it: a systemd "
                    "user unit, a launchd agent or a Task Scheduler task. See "
                    "docs/server.md.")
    p.add_argument("--force", action="store_true",
                   help="replace a service that runs another command")
    ssub.add_parser("uninstall", help="stop the service, disable it and remove its file")
    ssub.add_parser("status", help="installed or not (exit status 3), its file, whether "
                                   "it runs, whether an engine answers")


def cmd_service(args: argparse.Namespace, data_dir: Path,
                check_serve_args: Callable[[list[str]], object]) -> int:
    """``hookline service ...``; ``check_serve_args`` parses ``serve``'s options (exits
    with argparse's message when it refuses them)."""
    if args.action == "install":
        try:
            check_serve_args(list(args.serve_args))
        except SystemExit:
            print("(options after `hookline service install` other than --force are "
                  "`hookline serve`'s: see `hookline serve --help`)", file=sys.stderr)
            raise
    service = service_for(_system(), list(getattr(args, "serve_args", [])), data_dir)
    return {"install": _install, "uninstall": _uninstall, "status": _status}[args.action](
        service, args, data_dir)


def _system() -> str:
    """The OS whose service manager is used (``sys.platform``; tests choose another)."""
    return sys.platform


def _install(service: ServiceFile, args: argparse.Namespace, data_dir: Path) -> int:
    new = installed_command(service, service.content)
    try:
        old: bytes | None = service.path.read_bytes()
    except FileNotFoundError:
        old = None
    if old is not None and old != service.content and not args.force:
        print(f"A Hookline service is already installed in {service.path}, running:\n"
              f"  {installed_command(service, old)}\n"
              f"This install would run:\n  {new}\n"
              "Add --force to replace it, or `hookline service uninstall` first.",
              file=sys.stderr)
        return 1
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)  # launchd's output goes there
    write_atomic(service.path, service.content)
    print(f"{'Wrote' if old is None else 'Rewrote' if old != service.content else 'Kept'} "
          f"the {service.manager} service file {service.path}, running:\n  {new}")
    steps = service.start if old is None else service.replace
    started = run_steps(steps, print)
    if started:
        print(f"{service.manager} has started it; `hookline service status` tells how it "
              "does.")
    else:
        print("The file is in place: once that has run, Hookline starts as your service.")
    if service.note:
        print(service.note)
    return 0 if started else 1


def _uninstall(service: ServiceFile, _args: argparse.Namespace, _data_dir: Path) -> int:
    if not service.path.exists():
        print(f"No Hookline service is installed ({service.path} does not exist).")
        return 0
    stopped = run_steps(service.stop, print, service.stop_by_hand)
    service.path.unlink(missing_ok=True)
    if service.manager == "systemd":  # what `disable` does, if systemd could not do it
        wants = service.path.parent / "default.target.wants" / UNIT_NAME
        if wants.is_symlink():
            wants.unlink()
    reloaded = run_steps(service.after_removal, print) if stopped else False
    print(f"Removed {service.path}."
          + ("" if stopped else " If the service still runs, stop it as said above."))
    return 0 if stopped and (reloaded or not service.after_removal) else 1


def _status(service: ServiceFile, _args: argparse.Namespace, data_dir: Path) -> int:
    try:
        content = service.path.read_bytes()
    except FileNotFoundError:
        print(f"service:  not installed (no {service.path}); `hookline service install` "
              "writes it")
        print(f"engine:   {engine_answers(data_dir)}")
        return 3
    print(f"service:  installed: {service.path} ({service.manager})")
    print(f"command:  {installed_command(service, content)}")
    print(f"{service.manager}: {ask_manager(service)}")
    print(f"engine:   {engine_answers(data_dir)}")
    return 0
