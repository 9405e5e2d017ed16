"""Opening the database: URL, SQLite pragmas, migrations at start.

Two kinds: SQLite (a file in the data folder, the default) and PostgreSQL (a server
install; its URL is the ``database_url`` setting). PostgreSQL goes through one driver,
psycopg 3, for the async engine, the writer thread and Alembic alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from engine.errors import ConfigError, HooklineError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
DB_FILE = "hookline.db"


#: The keyring entry holding the database password, for a URL given without one.
PASSWORD_REF = "settings/database/password"  # noqa: S105 - a keyring name
#: The one PostgreSQL driver (psycopg 3: sync and async in one package).
PG_DRIVER = "postgresql+psycopg"
#: What people write for PostgreSQL: an administrator's ``postgresql://``, Heroku's
#: ``postgres://``, and the driver-qualified forms SQLAlchemy documents.
_PG_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2",
               "postgresql+asyncpg", "postgres+psycopg", "postgres+asyncpg"}
_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}
INSTALL_POSTGRES = "pip install 'hookline[postgres]'"


def database_url(data_dir: Path, configured: str = "") -> str:
    """The async URL: the configured one, else the SQLite file in the data folder.

    A PostgreSQL URL is given Hookline's driver whatever its scheme said. One without a
    password gets the keyring's (:data:`PASSWORD_REF`) when the server asks for one.
    """
    configured = configured.strip()
    if not configured:
        return f"sqlite+aiosqlite:///{data_dir / DB_FILE}"
    try:
        parsed = make_url(configured)
    except Exception:  # SQLAlchemy's ArgumentError, or a port that is not a number
        raise ConfigError("The database_url setting is not a database address (it should "
                          "look like postgresql://user@host/database); fix it with "
                          "`hookline settings set database_url ...`") from None
    scheme = parsed.drivername.lower()
    if scheme in _SQLITE_SCHEMES:
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if scheme not in _PG_SCHEMES:
        raise ConfigError(f"Hookline keeps its data in SQLite or PostgreSQL; the database_url "
                          f"setting names {parsed.drivername}. Use postgresql://... or leave "
                          "it empty for the file in the data folder")
    return parsed.set(drivername=PG_DRIVER).render_as_string(hide_password=False)


#: Passwords read from the keyring, by the address they are for (read once a process).
_keyring_passwords: dict[str, str] = {}


def keyring_password() -> str | None:
    """The database password kept in the keyring (:data:`PASSWORD_REF`), if any: for a
    connection made without SQLAlchemy (the standby's lease) when the server asks."""
    from engine.secrets import SecretStore

    try:
        return SecretStore().get(PASSWORD_REF)
    except HooklineError:  # no keyring: then there is no password to give
        return None


def asked_for_password(exc: BaseException) -> bool:
    """Whether libpq's connection failed because the server wants a password the
    connection did not give (then the keyring's is tried)."""
    return "no password supplied" in str(exc)


def _password_when_asked(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]
                         ) -> Any:
    """A URL without a password connects as it is (trust, peer, a ``.pgpass`` of the
    user's); when the server asks for a password, the keyring's is given (the keyring
    is not touched otherwise: on a server without a desktop session it may prompt)."""
    if cparams.get("password"):
        return None
    where = f"{cparams.get('user')}@{cparams.get('host')}:{cparams.get('port')}/" \
            f"{cparams.get('dbname')}"
    if where in _keyring_passwords:
        cparams["password"] = _keyring_passwords[where]
        return None
    try:
        return dialect.connect(*cargs, **cparams)
    except dialect.loaded_dbapi.OperationalError as exc:
        if not asked_for_password(exc):
            raise
        password = keyring_password()
        if not password:
            raise ConfigError(
                "the database server asks for a password: give it in the database_url "
                "setting (`hookline settings set database_url postgresql://USER:PASSWORD@"
                "HOST/DATABASE` keeps it in the keyring, not in the settings file)"
            ) from None
    _keyring_passwords[where] = cparams["password"] = password
    return None


def keep_password_in_keyring(configured: str) -> str:
    """The ``database_url`` setting to save: its password, if any, goes to the keyring
    (:data:`PASSWORD_REF`), the settings file keeps the address without it."""
    try:
        parsed = make_url(configured.strip())
    except Exception:  # not a URL: database_url() says what is wrong with it
        return configured
    if not parsed.password:
        return configured
    from engine.secrets import SecretStore

    SecretStore().set(PASSWORD_REF, str(parsed.password))
    return parsed._replace(password=None).render_as_string(hide_password=False)


def shown_setting(configured: str) -> str:
    """The ``database_url`` setting as people may see it (its password as ``***``)."""
    try:
        return make_url(configured).render_as_string(hide_password=True)
    except Exception:
        return configured


def shown_url(url: str) -> str:
    """``url`` as people may see it: the file of a SQLite database, a PostgreSQL
    address with its password as ``***``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.set(drivername="postgresql").render_as_string(hide_password=True)


def _without_secret(text: str, url: str) -> str:
    """``text`` (a driver's message) with the URL's password taken out, should the
    driver have quoted it."""
    password = make_url(url).password
    return text.replace(str(password), "***") if password else text


def sync_url(url: str) -> str:
    """The same database through a blocking driver (for the writer thread and Alembic)."""
    parsed = make_url(url)
    drivers = {"sqlite+aiosqlite": "sqlite+pysqlite", "postgresql+asyncpg": PG_DRIVER}
    name = drivers.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=name).render_as_string(hide_password=False)


def _check_driver(url: str) -> None:
    if make_url(url).get_backend_name() != "postgresql" or \
            importlib.util.find_spec("psycopg") is not None:
        return
    if getattr(sys, "frozen", False):  # an installer built without the extra
        raise ConfigError("The database is PostgreSQL, whose driver (psycopg) this "
                          "installation of Hookline lacks: install Hookline with pip "
                          f"instead ({INSTALL_POSTGRES})")
    raise ConfigError("The database is PostgreSQL, whose driver (psycopg) is not "
                      f"installed: {INSTALL_POSTGRES}")


def fitting(text: str, column: Any) -> str:
    """``text`` within ``column``'s length (PostgreSQL enforces VARCHAR(n), SQLite does
    not): one longer keeps its start and ends with its SHA-256, so it stays the same at
    every call and distinct from every other."""
    limit = column.type.length
    if limit is None or len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[:limit - len(digest) - 1]}#{digest}"


def storable_text(text: str | None) -> str | None:
    """An error as text either database takes: a lone surrogate (a file name that is not
    UTF-8, in a reaction's or a trigger's error) is spelled as escaped bytes; neither
    driver can encode it, and the whole write would be lost."""
    if text is None or text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:  # the file name's own bytes, as Python read them
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a UTF-16 half from elsewhere
            raw = text.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")
    return text


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


def _postgres_text(dbapi_conn: Any, _record: Any) -> None:
    """PostgreSQL refuses a NUL character in text, where SQLite keeps it: a key, a name
    or an error holding one (a webhook's id header, an item's guid, a far side's error
    text) would fail the whole write. Each text parameter's NUL becomes U+FFFD, the
    character that stands for one that cannot be shown; JSON columns keep theirs (JSON
    writes it as ``\\u0000``)."""
    from psycopg.adapt import PyFormat

    adapters = getattr(dbapi_conn, "driver_connection", dbapi_conn).adapters
    for kind in (PyFormat.TEXT, PyFormat.BINARY):
        adapters.register_dumper(str, _nul_free(adapters.get_dumper(str, kind).__name__))


@cache
def _nul_free(name: str) -> Any:
    """The pure-Python twin of psycopg's dumper ``name`` (its C one cannot be
    subclassed), replacing NUL."""
    from psycopg.types import string

    base: Any = getattr(string, name)

    class NulFree(base):  # type: ignore[misc]
        def dump(self, obj: str) -> Any:
            return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)

    return NulFree


def open_sync(url: str) -> Engine:
    _check_driver(url)
    engine = create_engine(sync_url(url), json_serializer=_json_serializer)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine, "connect", _postgres_text)
        event.listen(engine, "do_connect", _password_when_asked)
    return engine


def open_async(url: str) -> AsyncEngine:
    _check_driver(url)
    engine = create_async_engine(url, json_serializer=_json_serializer)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.sync_engine, "connect", _postgres_text)
        event.listen(engine.sync_engine, "do_connect", _password_when_asked)
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
        raise ConfigError(f"Cannot prepare the database at {shown_url(url)}: "
                          f"{_without_secret(reason, url)}") from exc
    finally:
        engine.dispose()


async def migrate(url: str) -> None:
    await asyncio.to_thread(migrate_sync, url)
