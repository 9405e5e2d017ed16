"""A local file that a service uploads: checked once, then read one chunk at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO

from engine.errors import PermanentError


async def local_file(path: Path) -> tuple[Path, int]:
    """The file's full path (``~`` expanded) and size; a PermanentError if it is none."""

    def check() -> tuple[Path, int]:
        local = path.expanduser()
        if not local.is_file():
            raise PermanentError(f"{local} is not a file on this computer: check the path")
        return local, local.stat().st_size

    return await asyncio.to_thread(check)


async def read_chunk(file: BinaryIO, offset: int, length: int, what: str) -> bytes:
    """``length`` bytes of ``file`` from ``offset`` (in a thread); a PermanentError if
    the file no longer has them (it changed while ``what`` was under way)."""

    def read() -> bytes:
        file.seek(offset)
        return file.read(length)

    chunk = await asyncio.to_thread(read)
    if len(chunk) != length:
        raise PermanentError(f"the file changed while {what} was under way: try again")
    return chunk
