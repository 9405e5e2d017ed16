"""Opening the database: URL, SQLite pragmas, migrations at start."""

from __future__ import annotations

import asyncio
import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from engine.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
DB_FILE = "hookline.db"


def database_url(data_dir: Path, configured: str = "") -> str:
    """The async URL: the configured one, else the SQLite file in the data folder."""
    return configured or f"sqlite+aiosqlite:///{data_dir / DB_FILE}"


def sync_url(url: str) -> str:
    """The same database through a blocking driver (for the writer thread and Alembic)."""
    parsed = make_url(url)
    drivers = {"sqlite+aiosqlite": "sqlite+pysqlite", "postgresql+asyncpg": "postgresql+psycopg"}
    name = drivers.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=name).render_as_string(hide_password=False)


class RawJSON(str):
    """A value already serialised to JSON: a JSON column stores it as it is (the hot
    path serialises a run's steps once, for the run ledger and the database alike)."""

    __slots__ = ()


def to_json(value: Any) -> RawJSON:
    return RawJSON(json.dumps(value, separators=(",", ":"), default=str))


def _json_serializer(value: Any) -> str:
    return value if isinstance(value, RawJSON) else json.dumps(value)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_sync(url: str) -> Engine:
    engine = create_engine(sync_url(url), json_serializer=_json_serializer)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_async(url: str) -> AsyncEngine:
    engine = create_async_engine(url, json_serializer=_json_serializer)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


@cache
def revisions() -> dict[str, str | None]:
    """Each migration's revision and the one it follows, read from the files: knowing
    the head needs no Alembic (slow to import, and needed only to migrate)."""
    found: dict[str, str | None] = {}
    pattern = re.compile(r"^(down_revision|revision)\s*=\s*(?:['\"]([^'\"]+)['\"]|None)",
                         re.MULTILINE)
    for path in (MIGRATIONS / "versions").glob("*.py"):
        values = {m[1]: m[2] for m in pattern.finditer(path.read_text(encoding="utf-8"))}
        if values.get("revision"):
            found[values["revision"]] = values.get("down_revision")
    return found


def head_revision() -> str:
    """The newest schema revision this Hookline knows."""
    known = revisions()
    followed = {down for down in known.values() if down}
    heads = [rev for rev in known if rev not in followed]
    if len(heads) != 1:
        raise ConfigError(f"the migrations have {len(heads)} heads: {heads}")
    return heads[0]


def current_revision(conn: Any) -> str | None:
    """The revision a database is at (None: a new, empty database)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()  # type: ignore[no-any-return]


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


#: What SQLite says of a file that is no database, or one whose pages are broken.
_DAMAGED = ("file is not a database", "database disk image is malformed")


def migrate_sync(url: str) -> None:
    """Bring the schema to the newest revision (creates the database if needed)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = open_sync(url)
    try:
        with engine.begin() as conn:
            if current_revision(conn) == head_revision():
                return
            from alembic import command

            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc)  # without SQLAlchemy's link
        if any(sign in reason for sign in _DAMAGED):
            raise ConfigError(
                f"The database {parsed.database} is damaged ({reason}). Hookline keeps a "
                "copy from each day: see them with `hookline backup list` and put one back "
                "with `hookline backup restore NAME`; or move the file away to start with "
                "an empty database."
            ) from exc
        raise ConfigError(f"Cannot prepare the database at {parsed.render_as_string()}: "
                          f"{reason}") from exc
    finally:
        engine.dispose()


async def migrate(url: str) -> None:
    await asyncio.to_thread(migrate_sync, url)
