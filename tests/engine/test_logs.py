"""The log file of the long-running entry points, at the level the settings ask for."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_records_at_the_chosen_level_go_to_the_file_in_the_data_folder(tmp_path: Path) -> None:
    path = logs.configure(tmp_path, "WARNING", console=False)
    assert path == tmp_path / "logs" / "hookline.log"
    log = logging.getLogger("engine.poller")
    log.info("polled fine")
    log.warning("the feed answered 503; retrying in 60 s")
    text = path.read_text(encoding="utf-8")
    assert "the feed answered 503" in text and "WARNING" in text and "engine.poller" in text
    assert "polled fine" not in text


def test_a_file_name_that_is_not_utf8_is_logged_not_dropped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = logs.configure(tmp_path, "INFO", console=False)
    assert path is not None
    logging.getLogger("integrations.files").warning("could not copy %s", "/in/caf\udce9.txt")
    assert "could not copy /in/caf\\udce9.txt" in path.read_text(encoding="utf-8")
    assert "Logging error" not in capsys.readouterr().err


def test_changing_the_setting_changes_what_is_written(tmp_path: Path) -> None:
    path = logs.configure(tmp_path, "ERROR", console=False)
    assert path is not None
    logs.set_level("DEBUG")
    logging.getLogger("engine").debug("every detail")
    assert "every detail" in path.read_text(encoding="utf-8")


def test_configuring_again_does_not_write_each_line_twice(tmp_path: Path) -> None:
    logs.configure(tmp_path, "INFO", console=False)
    path = logs.configure(tmp_path, "INFO", console=False)
    assert path is not None
    logging.getLogger("engine").info("once")
    assert path.read_text(encoding="utf-8").count("once") == 1


def test_an_unwritable_folder_falls_back_to_the_console(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    assert logs.configure(blocked, "INFO", console=False) is None
    assert "cannot write the log file" in capsys.readouterr().err
    assert any(type(h) is logging.StreamHandler for h in logging.getLogger().handlers)


def test_the_file_is_rotated_at_its_size_and_lines_read_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    path = logs.configure(tmp_path, "INFO", console=False)
    assert path is not None
    log = logging.getLogger("engine.cli")
    for n in range(200):
        log.info("run #%d of area %s: succeeded", n, "abcdef01")
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["hookline.log", *(f"hookline.log.{n}" for n in range(1, logs.BACKUPS + 1))]
    assert all(p.stat().st_size < 2000 for p in path.parent.iterdir())
    last = path.read_text().splitlines()[-1]
    record = logging.LogRecord("engine.cli", logging.INFO, "", 0,
                               "run #%d of area %s: succeeded", (199, "abcdef01"), None)
    stock = logging.Formatter(logs._FILE_FORMAT).format(record)
    assert last.split(" ", 2)[2] == stock.split(" ", 2)[2]  # after the date and time
    assert len(last) == len(stock)  # same shape of date and time, milliseconds included


def test_the_time_of_day_is_written_as_the_standard_formatter_does() -> None:
    for fmt, datefmt in ((logs._FILE_FORMAT, None), (logs._CONSOLE_FORMAT, "%H:%M:%S")):
        ours = logs._Formatter(fmt, datefmt)
        for created in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.5):
            record = logging.LogRecord("x", logging.INFO, "", 0, "m", None, None)
            record.created, record.msecs = created, (created % 1) * 1000
            assert ours.format(record) == logging.Formatter(fmt, datefmt).format(record)


async def test_verbose_logging_keeps_the_database_layer_quiet(tmp_path: Path) -> None:
    """`hookline serve --verbose` logs Hookline's own debug lines, not every SQL statement
    (they filled the 1 MiB log in a minute)."""
    from engine.app import Engine
    from engine.areas import AreaSpec
    from engine.settings import Settings

    path = logs.configure(tmp_path, "DEBUG", console=False)
    assert path is not None
    engine = Engine(tmp_path, settings=Settings.from_mapping({"listener_enabled": False}))
    await engine.start()
    try:
        await engine.create_area(AreaSpec.from_dict({
            "name": "Tick", "trigger": {"service": "timer", "trigger": "every",
                                        "params": {"interval": "1h"}},
            "reactions": [{"service": "notify", "reaction": "notify",
                           "params": {"title": "tick"}}]}))
        logging.getLogger("engine.poller").debug("one of ours")
    finally:
        await engine.aclose()
    text = path.read_text(encoding="utf-8")
    assert "one of ours" in text
    assert " sqlalchemy." not in text and " aiosqlite" not in text


@pytest.mark.parametrize("argv", [["serve", "--verbose"], ["serve", "-v"], ["-v", "serve"],
                                  ["--verbose", "serve", "--demo"]])
def test_serve_takes_verbose_before_or_after_the_command(argv: list[str]) -> None:
    from engine.cli import parse_args

    assert parse_args(argv).verbose is True
    assert parse_args(["serve"]).verbose is False


async def test_a_stream_of_runs_is_counted_not_logged_line_by_line(
        caplog: pytest.LogCaptureFixture) -> None:
    """500 runs in a second: the first 20 get their line, the rest one line that counts
    them once the second is over; every failure keeps its own line."""
    runs = logs.RunLog(logging.getLogger("hookline.test"), per_second=20)
    done = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="hookline.test"):
        for n in range(500):
            status = "failed" if n % 100 == 99 else "succeeded"
            runs.finished({"run_id": n, "area_id": "abcdef0123", "status": status,
                           "error": "boom" if status == "failed" else None})
        asyncio.get_running_loop().call_later(1.05, done.set)
        await done.wait()
    lines = [r.getMessage() for r in caplog.records]
    each = [line for line in lines if line.startswith("run #")]
    counted = [line for line in lines if line.startswith("…")]
    failed = [line for line in each if "failed" in line]
    assert len(failed) == 5 and all("— boom" in line for line in failed)
    said = len(each) - len(failed)
    assert said <= 40 and counted  # 20 a second (the loop may straddle two seconds)
    total = sum(int(line.split()[2]) for line in counted)
    assert said + total == 495  # every success said or counted
    assert all("more run(s)" in line and "succeeded" in line for line in counted)
