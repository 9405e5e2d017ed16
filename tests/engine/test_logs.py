"""The log file of the long-running entry points, at the level the settings ask for."""

from __future__ import annotations

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
