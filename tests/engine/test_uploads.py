"""The file a service uploads: checked before, read a chunk at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import PermanentError, local_file, read_chunk


async def test_a_file_is_found_with_its_size_and_a_missing_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.7")
    assert await local_file(tmp_path / "scan.pdf") == (tmp_path / "scan.pdf", 8)
    with pytest.raises(PermanentError, match=r"scan2\.pdf is not a file on this computer"):
        await local_file(tmp_path / "scan2.pdf")


async def test_a_chunk_the_file_no_longer_has_stops_the_upload(tmp_path: Path) -> None:
    path = tmp_path / "growing.log"
    path.write_bytes(b"0123456789")
    with path.open("rb") as file:
        assert await read_chunk(file, 4, 3, "the upload of growing.log") == b"456"
        with pytest.raises(PermanentError, match=r"the file changed while the upload of "
                                                  r"growing\.log was under way: try again"):
            await read_chunk(file, 8, 4, "the upload of growing.log")
