"""The command line as a user types it."""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import engine
from engine.cli import build_parser, main, parse_args

ROOT = Path(__file__).resolve().parents[2]

AREA = {
    "name": "Notes from a hook",
    "trigger": {"service": "webhook", "trigger": "incoming",
                "params": {"secret": "hush-5b1e"}},
    "condition": "{{ trigger.body.kind == 'note' }}",
    "reactions": [{"service": "files", "reaction": "append_text",
                   "params": {"path": "/tmp/hookline-notes.txt",
                              "text": "{{ trigger.body.text }}"}}],
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_import_list_export_round_trip_without_secrets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "area.yaml"
    source.write_text(yaml.safe_dump(AREA))
    code, out, _ = run(capsys, "areas", "import", str(source))
    assert code == 0 and "imported" in out and AREA["name"] in out

    code, out, _ = run(capsys, "areas", "list", "--json")
    [listed] = json.loads(out)
    assert listed["name"] == AREA["name"] and listed["state"] == "on"
    assert listed["trigger"] == "webhook.incoming"

    code, out, _ = run(capsys, "areas", "export", AREA["name"])
    exported = yaml.safe_load(out)
    assert exported["trigger"]["params"] == {"body": "auto"}  # the secret is left out
    params = exported["reactions"][0]["params"]
    assert params.items() >= AREA["reactions"][0]["params"].items()
    assert exported["condition"] == AREA["condition"]
    assert "hush-5b1e" not in out


def test_import_error_names_the_area_and_the_place(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = dict(AREA, reactions=[{"service": "files", "reaction": "append_txt",
                                 "params": {}}])
    source = tmp_path / "bad.yaml"
    source.write_text(yaml.safe_dump([bad]))
    code, out, err = run(capsys, "areas", "import", str(source))
    assert code == 2
    assert "“Notes from a hook”: reactions[0]" in err
    assert "Did you mean 'append_text'?" in err
    code, out, _ = run(capsys, "areas", "list", "--json")
    assert json.loads(out) == []


def test_unreadable_file_and_unknown_area_say_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "areas", "import", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml: cannot read it" in err
    (tmp_path / "x.yaml").write_text("name: [unclosed")
    code, _, err = run(capsys, "areas", "import", str(tmp_path / "x.yaml"))
    assert code == 2 and "not valid YAML" in err
    code, _, err = run(capsys, "areas", "disable", "Nothing like this")
    assert code == 2 and "Unknown area" in err


def test_enable_disable_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "area.yaml"
    source.write_text(yaml.safe_dump(AREA))
    run(capsys, "areas", "import", str(source))
    assert run(capsys, "areas", "disable", AREA["name"])[0] == 0
    listed = json.loads(run(capsys, "areas", "list", "--json")[1])
    assert listed[0]["state"] == "off"
    assert run(capsys, "areas", "remove", AREA["name"])[0] == 0
    assert json.loads(run(capsys, "areas", "list", "--json")[1]) == []


def test_run_now_offline_records_a_run(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "ticks.txt"
    area = {"name": "Tick", "trigger": {"service": "timer", "trigger": "every",
                                        "params": {"interval": "1h"}},
            "reactions": [{"service": "files", "reaction": "append_text",
                           "params": {"path": str(out_file), "text": "tick {{ trigger.missed }}"}}]}
    source = tmp_path / "tick.yaml"
    source.write_text(yaml.safe_dump(area))
    run(capsys, "areas", "import", str(source))
    code, out, _ = run(capsys, "areas", "run", "Tick")
    assert code == 0 and "fired event" in out
    assert out_file.read_text().startswith("tick 0")
    runs = json.loads(run(capsys, "runs", "--json")[1])
    assert [r["status"] for r in runs] == ["succeeded"]


def test_dry_run_from_a_file_sends_nothing(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "never.txt"
    area = dict(AREA, reactions=[{"service": "files", "reaction": "append_text",
                                  "params": {"path": str(target), "text": "{{ trigger.body }}"}}],
                condition=None)
    source = tmp_path / "area.json"
    source.write_text(json.dumps(area))
    code, out, _ = run(capsys, "areas", "test", str(source), "--payload",
                       json.dumps({"body": "hello"}))
    assert code == 0
    assert json.loads(out)["reactions"][0]["would_send"]["text"] == "hello"
    assert not target.exists()


def test_services_lists_every_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "services", "--json")
    assert code == 0
    ids = {s["id"] for s in json.loads(out)}
    assert ids >= {"timer", "webhook", "http", "rss", "files", "notify", "email", "shell"}


def test_settings_validate_and_persist(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "settings", "set", "listener_port", "9001")[0] == 0
    code, out, _ = run(capsys, "settings", "list", "--json")
    assert json.loads(out)["listener_port"] == 9001
    code, _, err = run(capsys, "settings", "set", "listener_port", "99999")
    assert code == 2 and "at most 65535" in err
    code, _, err = run(capsys, "settings", "set", "listner_port", "1")
    assert code == 2 and "Did you mean 'listener_port'" in err


def test_doctor_reports_each_part(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "settings", "set", "listener_port", "0")
    code, out, _ = run(capsys, "doctor")
    for part in ("data folder", "database", "keyring", "engine", "services"):
        assert part in out
    assert code == 0, out


# ---------------------------------------------------------------- start-up stays light

#: Runs the ``hookline`` command in a fresh interpreter, then reports on stderr which of
#: the libraries that make a start slow it loaded.
_LOADED = """
import json, sys
from desktop.launcher import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = ("aiohttp", "sqlalchemy", "alembic", "PySide6", "qasync", "apscheduler", "jinja2",
         "keyring", "cryptography", "engine.app", "engine.storage", "integrations")
print("LOADED " + json.dumps({"code": code,
                              "loaded": [m for m in heavy if m in sys.modules]}),
      file=sys.stderr)
"""


def loaded_by(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _LOADED, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("LOADED "), done.stderr
    report = json.loads(last.removeprefix("LOADED "))
    assert report["code"] in (0, None), done.stderr
    return list(report["loaded"])


def test_version_loads_no_engine_machinery() -> None:
    assert loaded_by("--version") == []


@pytest.mark.parametrize("args", [("services",), ("services", "--json"),
                                  ("services", "github")])
def test_services_loads_the_catalog_only(args: tuple[str, ...]) -> None:
    # the integrations and the timer's scheduler triggers are the catalog; the rest is not
    assert set(loaded_by(*args)) <= {"integrations", "apscheduler"}


@pytest.mark.parametrize("argv", [
    [], ["--version"], ["-v", "--data-dir", "/tmp/x", "services", "rss", "--json"],
    ["serve", "--port", "0", "--demo"], ["areas", "export", "--folder", "f"],
    ["runs", "12"], ["runs", "--status", "failed", "--limit", "5"], ["doctor"],
    ["settings"], ["settings", "set", "log_level", "DEBUG"], ["accounts", "list", "--json"],
    ["backup", "create", "--keep", "3"], ["--help"], ["services", "-h"], ["areas"],
    ["nope"], ["runs", "--limit", "many"], ["--ver"],
    ["service"], ["service", "install", "--remote", "--force"], ["service", "install", "-h"],
    ["service", "status", "extra"],
])
def test_the_quick_parser_answers_as_the_full_one(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    def outcome(parse: Callable[[], argparse.Namespace]) -> tuple[object, str, str]:
        try:
            result: object = parse()
        except SystemExit as exc:
            result = exc.code
        out = capsys.readouterr()
        return result, out.out, out.err

    assert outcome(lambda: parse_args(argv)) == outcome(lambda: build_parser().parse_args(argv))


def test_help_and_errors_name_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    with pytest.raises(SystemExit):
        main(["acounts"])
    out = capsys.readouterr()
    assert "accounts" in out.out and "backup" in out.out
    assert "'accounts'" in out.err and "'backup'" in out.err


def test_every_public_name_of_the_engine_resolves() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
    assert set(engine.__all__) <= set(dir(engine))
    with pytest.raises(ImportError):
        exec("from engine import HttpKlient", {})  # noqa: S102


def test_deferred_names_match_the_type_checking_imports() -> None:
    """``engine._DEFERRED`` lists, by module, what mypy sees imported under TYPE_CHECKING."""
    tree = ast.parse(Path(engine.__file__).read_text(encoding="utf-8"))
    typed = {alias.name: node.module
             for block in tree.body
             if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
             for node in block.body if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    assert typed == engine._DEFERRED


def test_checks_show_each_check_of_an_area_newest_first_with_its_reason(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.app import Engine
    from engine.areas import AreaSpec
    from engine.catalog.service import Item
    from engine.errors import PermanentError
    from engine.settings import Settings
    from tests.engine import probe
    from tests.engine.conftest import FAST, registry

    async def check_twice() -> None:
        engine = Engine(data_dir, settings=Settings.from_mapping(FAST), registry=registry())
        await engine.start()
        try:
            area = await engine.create_area(AreaSpec.from_dict({
                "name": "Python blog", "trigger": {"service": "probe", "trigger": "items"},
                "reactions": [{"service": "probe", "reaction": "record",
                               "params": {"text": "x"}}]}))
            engine.scheduler.delay_poll(area.id, 3600)  # only the checks made here
            spec = engine.registry.trigger("probe", "items")
            probe.controls.poll_error = PermanentError(
                "the feed at https://feed.example/rss?key=s3cret answered 404 Not Found")
            await engine.poller.poll(area, spec, {}, 900)
            probe.controls.poll_error = None
            probe.controls.items = [Item("a", {"title": "a"}), Item("b", {"title": "b"})]
            await engine.poller.poll(area, spec, {}, 900)
        finally:
            await engine.aclose()

    asyncio.run(check_twice())
    code, out, _ = run(capsys, "areas", "checks", "Python blog")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Checks of “Python blog”, newest first (times are local):"
    assert lines[1].split() == ["WHEN", "TOOK", "RESULT", "ITEMS", "NEW", "NEXT", "CHECK"]
    assert lines[2].split()[3:6] == ["primed", "2", "0"]
    assert lines[3].split()[3:6] == ["failed", "—", "—"]
    assert lines[3].endswith("(on schedule)")
    assert lines[4].strip() == ("the feed at https://feed.example/rss?… answered 404 Not "
                                "Found")
    assert "s3cret" not in out
    code, out, _ = run(capsys, "areas", "checks", "Python blog", "--json", "--limit", "1")
    [latest] = json.loads(out)
    assert (latest["outcome"], latest["items"], latest["new"], latest["error"]) == (
        "primed", 2, 0, None)


def test_checks_of_an_area_never_checked_say_which_are(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "area.yaml"
    source.write_text(yaml.safe_dump(AREA))
    run(capsys, "areas", "import", str(source))
    code, out, _ = run(capsys, "areas", "checks", "Notes from a hook")
    assert code == 0
    assert out.startswith("“Notes from a hook” has not been checked yet. Only automations "
                          "whose trigger looks for new items")
