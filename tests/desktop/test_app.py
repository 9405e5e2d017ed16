"""Starting the app: a start that fails says why in a window, not only on a console."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from desktop import app as desktop_app
from integrations import machine


async def test_a_damaged_database_is_explained_with_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qapp: QApplication) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "hookline.db").write_bytes(b"this is no SQLite file" * 50)
    said: list[str] = []
    monkeypatch.setattr(desktop_app, "cannot_start", said.append)
    # run() gives the engine Qt's clipboard reader: keep that out of later tests.
    monkeypatch.setattr(machine, "readers", dict(machine.readers))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert await desktop_app.run(qapp, data_dir) == 1
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
    [message] = said
    assert message.startswith(f"The database {data_dir / 'hookline.db'} is damaged (file is "
                              "not a database). Hookline keeps a copy from each day: see them "
                              "with `hookline backup list`")
    assert "sqlalche.me" not in message
