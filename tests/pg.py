"""A real PostgreSQL server for the tests: a throwaway cluster in a temporary folder,
started once per test session from Debian's `postgresql` package (``scripts/dev``
installs it), one fresh database per test that asks for one.

Where the server's programs are missing the tests that need it are skipped, saying so;
``HOOKLINE_REQUIRE_POSTGRES=1`` (set by ``scripts/dev test``, which installs them) makes
that a failure instead, so CI cannot pass without having run them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Where Debian puts the server's programs (not on PATH: postgresql-common wraps them).
_DEBIAN_BINS = "/usr/lib/postgresql"


def server_bin() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (newest version)."""
    root = Path(_DEBIAN_BINS)
    if root.is_dir():
        versions = sorted((p for p in root.iterdir() if (p / "bin" / "initdb").exists()),
                          key=lambda p: int(p.name) if p.name.isdigit() else 0)
        if versions:
            return versions[-1] / "bin"
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as ``postgres``."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PostgresServer:
    """One running throwaway cluster: ``url(db)`` gives Hookline's URL for a database."""

    folder: Path
    port: int
    bin: Path
    user: str = "hookline"
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run ``sql`` outside a transaction on the ``postgres`` database."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.encode())

    def new_database(self) -> str:
        name = f"hookline_test_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def tool(self, name: str) -> Path:
        """A client program of the same version (``pg_dump``, ``psql``)."""
        return self.bin / name


def _missing(reason: str) -> None:
    if os.environ.get("HOOKLINE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here (HOOKLINE_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"no PostgreSQL server here ({reason}): install Debian's `postgresql` "
                "package (scripts/dev does) to run these tests")


def start_server() -> Iterator[PostgresServer]:
    """Initialise and start a cluster; stop it and remove its folder afterwards."""
    binaries = server_bin()
    if binaries is None:
        _missing("initdb and pg_ctl not found")
    assert binaries is not None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("the psycopg driver is not installed (pip extra `postgres`)")
    prefix = _as_server_user()
    if prefix and shutil.which("runuser") is None:
        _missing("running as root without `runuser` to start the server as postgres")
    folder = Path(tempfile.mkdtemp(prefix="hookline-pg-"))
    if prefix:
        shutil.chown(folder, "postgres", "postgres")
    data, log = folder / "data", folder / "server.log"
    port = _free_port()
    subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "hookline",
                    "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                   check=True, capture_output=True)
    options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c full_page_writes=off -c max_connections=200")
    started = subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data),
                              "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
                             capture_output=True, text=True)
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr or started.stdout}")
    try:
        yield PostgresServer(folder, port, binaries)
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "-w", "stop"], capture_output=True)
        pid_file = data / "postmaster.pid"
        if pid_file.exists():  # pg_ctl could not stop it: the OS can
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
