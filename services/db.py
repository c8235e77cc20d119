"""Engine factory and the unit of work: commit on success, roll back on any exception."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session

from services.errors import ConfigError, DatabaseUnavailable
from services.text_fold import fold

SQLITE_BUSY_TIMEOUT_MS = 15_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 opens transactions lazily; we issue BEGIN ourselves (see _sqlite_begin)
    # so that `BEGIN IMMEDIATE` can be used for the per-item sync lock.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    dbapi_connection.create_function("finsync_fold", 1, fold, deterministic=True)  # services/text_fold.py


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get("finsync_begin", "")
    connection.exec_driver_sql(f"BEGIN {mode}".strip())


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds bank data); SQLite gives -wal and -shm its mode.

    An existing file is never opened here: closing any descriptor of it would drop every POSIX lock this
    process holds on it, SQLite's too (the app and its pages each build an engine on the same file).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # new: no connection can hold it yet
    except FileExistsError:
        pass
    except OSError:
        pass  # not ours to create (a file in the way, read-only mount, another owner): SQLite says what it cannot open


def _tighten(path: Path) -> None:
    """A database file made before the 0600 rule (or under a umask) is made private too, once SQLite has read it as
    a database: a folder or another file that DATABASE_URL names by mistake keeps its mode. chmod opens nothing."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISREG(mode) and mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for our two databases.

    Its errors never quote a statement's values (emails, token hashes, ciphertexts): a logged traceback says
    "[SQL parameters hidden ...]" instead.
    """
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 15})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    # TCP keepalives: a pooled connection whose server or network went silent fails within about a minute
    # instead of waiting forever (libpq's parameters, https://www.postgresql.org/docs/current/libpq-connect.html).
    kwargs.setdefault(
        "connect_args",
        {
            "connect_timeout": 5,
            "application_name": "finsync",
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
    )
    return create_engine(url, **kwargs)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


# SQLite reports a wrong statement or schema as OperationalError too: those are bugs, not outages.
_SQLITE_NOT_OUTAGE = ("no such table", "no such column", "syntax error", "has no column named")


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be used right now (down, restarting, connection cut, locked too
    long, no free connection in the pool), rather than that a statement or the data is wrong."""
    if isinstance(exc, OperationalError) and any(m in str(exc.orig).lower() for m in _SQLITE_NOT_OUTAGE):
        return False
    if isinstance(exc, DatabaseUnavailable | OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def outage_reason(exc: BaseException) -> str:
    """The driver's own first line about an outage, for the log: never SQLAlchemy's text, which quotes the
    statement and its parameters (emails, token hashes)."""
    if isinstance(exc, DBAPIError):
        return str(exc.orig).strip().splitlines()[0] if exc.orig and str(exc.orig).strip() else "connection failed"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def describe(engine: Engine) -> str:
    """The database's URL for a message: no password, neither the usual one nor one given as ``?password=``."""
    url = engine.url
    return url.difference_update_query([k for k in url.query if k.lower() == "password"]).render_as_string(
        hide_password=True
    )


def check_database(engine: Engine, *, encoding: bool = False) -> None:
    """Raise ``DatabaseUnavailable`` with a message naming the database (never its password).

    With ``encoding`` (at start-up), also ``ConfigError`` when a PostgreSQL database does not store text as
    UTF8. Banks name merchants in any alphabet, and the search folds accents with ``normalize``, which
    PostgreSQL allows on UTF8 databases only: on another encoding a sync would fail at the first "Café" and
    every search with it. Said at start-up, before anything is written, rather than on some later day."""
    where = describe(engine)
    ask_encoding = encoding and not is_sqlite(engine)  # SQLite's text is UTF-8
    probe = "SELECT 1"
    if ask_encoding:
        probe = "SHOW server_encoding"
    elif is_sqlite(engine):  # SQLite opens a file lazily: reading its schema tells a database from a text file
        probe = "SELECT count(*) FROM sqlite_master"
    try:
        with engine.connect() as conn:
            found = str(conn.execute(text(probe)).scalar())
    except DBAPIError as exc:  # cannot connect; also "file is not a database", a malformed connection option
        reason = outage_reason(exc)
        if is_sqlite(engine):  # no server to check: the file, or the folder it should be made in
            raise DatabaseUnavailable(
                f"cannot open the database file {engine.url.database}: {reason}. Check that it is a finsync database "
                "in a folder finsync may write (FINSYNC_DATA_DIR, or the path in DATABASE_URL when that is set)."
            ) from None
        raise DatabaseUnavailable(
            f"cannot reach the database at {where}: {reason}. Check DATABASE_URL and that the server is running."
        ) from None
    if is_sqlite(engine) and engine.url.database:
        _tighten(Path(engine.url.database))
    if ask_encoding and found.upper().replace("-", "") != "UTF8":
        raise ConfigError(
            "DATABASE_URL",
            f"the database at {where} stores text as {found[:40]}, not UTF8, and bank data comes in "
            f"every alphabet. Create it as UTF8 (createdb -E UTF8 -T template0 NAME) and point DATABASE_URL at it.",
        )


# Called with the engine and the exception after a unit of work rolled back (services.audit records denials).
AFTER_ROLLBACK: list[Callable[[Engine, BaseException], None]] = []


@contextmanager
def unit_of_work(engine: Engine, *, immediate: bool = False) -> Iterator[Session]:
    """A session whose transaction commits when the block succeeds and rolls back otherwise.

    ``immediate=True`` takes SQLite's write lock at BEGIN (no-op on PostgreSQL).
    """
    bind = engine.execution_options(finsync_begin="IMMEDIATE") if immediate and is_sqlite(engine) else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            for hook in AFTER_ROLLBACK:
                hook(engine, exc)
            raise
