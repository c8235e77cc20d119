"""Engine settings and the unit of work on both databases."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from models import User
from services.db import check_database, is_outage, make_engine, outage_reason, unit_of_work
from services.errors import DatabaseUnavailable
from services.logs import JsonFormatter


def _user(name: str) -> User:
    return User(
        email=f"{name}@example.com",
        email_norm=f"{name}@example.com",
        username=name,
        username_norm=name,
        password_hash="x",
    )


def count(engine: Engine) -> int:
    with unit_of_work(engine) as session:
        return int(session.execute(select(func.count()).select_from(User)).scalar_one())


def test_commit_on_success(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        session.add(_user("ann"))
    assert count(engine) == 1


def test_rollback_on_any_exception(engine: Engine) -> None:
    with pytest.raises(KeyboardInterrupt), unit_of_work(engine) as session:
        session.add(_user("bob"))
        session.flush()
        raise KeyboardInterrupt
    assert count(engine) == 0


def test_unique_identity_enforced_by_database(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        session.add(_user("cat"))
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), unit_of_work(engine) as session:
        session.add(_user("cat"))
    assert count(engine) == 1


def test_a_database_error_never_quotes_the_statements_values(engine: Engine) -> None:
    """What a logged traceback would carry: the statement, but not the email or hash it was run with."""
    values = {"email": "ann.private@example.com", "token_sha256": "9f2c" * 16}
    with pytest.raises(Exception, match=r"(?i)no such table|does not exist") as raised, engine.connect() as conn:
        conn.execute(text("SELECT 1 FROM no_such_table WHERE email = :email AND token = :token_sha256"), values)
    said = str(raised.value)
    assert "no_such_table" in said and "parameters hidden" in said
    assert not any(v in said for v in values.values())


def _logged(exc: BaseException) -> str:
    """The JSON line our log handler writes for ``log.exception(...)`` while ``exc`` is handled."""
    record = logging.LogRecord("finsync.test", logging.ERROR, __file__, 1, "refused: %s", (exc,), None)
    record.exc_info = (type(exc), exc, exc.__traceback__)
    return JsonFormatter().format(record)


def test_a_logged_refusal_names_the_constraint_not_the_rows_values(engine: Engine) -> None:
    """PostgreSQL's DETAIL quotes the refused row (the email of a duplicate, every column of a row missing one)
    and psycopg2 shows a failing statement with its values bound in: the log keeps the names, never the values."""
    secret = "private"  # in every value below, and in no line of source a traceback quotes
    cat = _user(f"cat.{secret}")
    with unit_of_work(engine) as session:
        session.add(cat)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate") as duplicate, unit_of_work(engine) as session:
        session.add(_user(cat.username))
    row = {"id": uuid.uuid4().hex, "email": f"dora.{secret}@example.com", "name": f"dora-{secret}"}
    insert = (
        "INSERT INTO users (id, email, email_norm, username, username_norm) VALUES (:id, :email, :email, :name, :name)"
    )
    with pytest.raises(Exception, match=r"(?i)not.null") as incomplete, engine.begin() as conn:
        conn.execute(text(insert), row)
    with pytest.raises(Exception, match=r"(?i)syntax") as wrong, engine.connect() as conn:
        conn.execute(text("SELECT :email FROM WHERE"), row)
    if engine.dialect.name == "postgresql":  # what the drivers say (SQLite names the column, and no value)
        assert all(secret in str(e.value) for e in (duplicate, incomplete, wrong))
    lines = [_logged(e.value) for e in (duplicate, incomplete, wrong)]
    for line in lines:
        assert secret not in line, line
    assert "email_norm" in lines[0] and "password_hash" in lines[1] and "syntax" in lines[2]
    assert all(json.loads(line)["exc"].startswith("Traceback") for line in lines)


def test_an_outage_is_told_apart_from_a_wrong_statement(engine: Engine) -> None:
    """What the pages call "cannot reach its database right now": not a statement or schema that is wrong."""
    from sqlalchemy.exc import OperationalError, ProgrammingError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    with pytest.raises((OperationalError, ProgrammingError)) as wrong, engine.connect() as conn:
        conn.execute(text("SELECT nothing FROM no_such_table"))
    assert not is_outage(wrong.value)
    gone = make_engine("postgresql+psycopg2://u:p@127.0.0.1:1/x")
    with pytest.raises(OperationalError) as down, gone.connect():
        pass
    assert is_outage(down.value) and "127.0.0.1" in outage_reason(down.value)
    assert is_outage(PoolTimeout("QueuePool limit of size 5 overflow 10 reached"))
    assert is_outage(DatabaseUnavailable("cannot reach the database"))
    assert not is_outage(ValueError("not a database error"))


def test_sqlite_pragmas(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/p.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 15000


def test_immediate_unit_of_work_takes_the_write_lock(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/lock.db")
    with unit_of_work(engine) as session:
        session.execute(text("SELECT 1"))
    other = sqlite3.connect(f"{tmp_path}/lock.db", timeout=0.1, isolation_level=None)
    with unit_of_work(engine, immediate=True) as session:
        session.execute(text("SELECT 1"))
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # free again once the unit of work ended
    other.execute("ROLLBACK")
    other.close()


def test_a_second_engine_on_the_same_file_keeps_the_first_ones_locks(tmp_path: object) -> None:
    """POSIX drops every lock a process holds on a file when it closes any descriptor of that file, SQLite's
    included. The app and its pages each build an engine on one file; if building the second opened and closed
    the database file, the next process to use it (the CLI, a worker) would find no other connection, treat
    the WAL as its own and remove it on close, and the server's next statement would fail (disk I/O error)."""
    path = f"{tmp_path}/twice.db"
    first = make_engine(f"sqlite:///{path}")
    with unit_of_work(first) as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    with first.connect() as held:  # the scheduler's pooled connection, open while the pages build theirs
        held.execute(text("SELECT count(*) FROM t")).scalar_one()
        held.commit()  # idle, but open
        make_engine(f"sqlite:///{path}")
        cli = (  # the CLI in another process: opens, writes, closes
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], timeout=5, isolation_level=None)\n"
            "c.execute('INSERT INTO t VALUES (2)')\n"
            "c.close()\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", cli, path], check=False, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert held.execute(text("SELECT count(*) FROM t")).scalar_one() == 2  # the server still reads and sees it
    with unit_of_work(first) as session:
        session.execute(text("INSERT INTO t VALUES (3)"))
    assert Path(f"{path}-wal").exists()  # the server's WAL was left alone
    first.dispose()


def test_unreachable_postgres_is_one_clear_message() -> None:
    engine = make_engine("postgresql+psycopg2://u:topsecret@127.0.0.1:1/db")
    with pytest.raises(DatabaseUnavailable) as info:
        check_database(engine)
    assert "127.0.0.1" in str(info.value) and "topsecret" not in str(info.value)
    assert "DATABASE_URL" in str(info.value)


def test_sqlite_file_is_private_to_its_owner(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The ledger holds bank data: other local users must not read the database or its WAL."""
    import stat

    path = tmp_path / "data" / "finsync.db"
    engine = make_engine(f"sqlite:///{path}")
    with unit_of_work(engine) as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    files = [p for p in path.parent.iterdir() if p.name.startswith("finsync.db")]
    assert any(p.name.endswith("-wal") for p in files)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == dict.fromkeys((p.name for p in files), 0o600)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # a data dir it creates is its owner's alone
    engine.dispose()
    path.chmod(0o644)  # a file left by an older version is tightened at the next start, once read as a database
    again = make_engine(f"sqlite:///{path}")
    check_database(again)
    again.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
