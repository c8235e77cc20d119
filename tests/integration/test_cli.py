"""The command line as an operator uses it: real processes, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.db import make_engine
from services.migrations import current_revision

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "services.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=120,
    )


def test_help_lists_commands_and_every_command_has_help() -> None:
    out = cli("--help").stdout
    for name in ("db", "keys", "users"):
        assert name in out
    for args in (["db", "upgrade"], ["keys", "generate"], ["keys", "rotate"], ["users", "create"]):
        result = cli(*args, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout


def test_fresh_start_upgrade_create_admin_and_rotate(db_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url}
    up = cli("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    assert current_revision(make_engine(db_url)) is not None
    assert (tmp_path / "data" / "secrets.env").exists()
    password = "quiet lantern meadow 1987 vessel"
    made = cli(
        "users",
        "create",
        "--email",
        "Root@Example.com",
        "--username",
        "root",
        "--admin",
        stdin=password + "\n",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    assert "created admin root" in made.stdout and password not in made.stdout + made.stderr
    again = cli("users", "create", "--email", "root@example.com", "--username", "other", stdin=password + "\n", env=env)
    assert again.returncode == 2 and "already registered" in again.stderr
    weak = cli("users", "create", "--email", "w@example.com", "--username", "weak", stdin="password\n", env=env)
    assert weak.returncode == 2 and "at least 15 characters" in weak.stderr
    gen = cli("keys", "generate", env=env)
    assert gen.returncode == 0 and "FINSYNC_ENCRYPTION_KEYS=2:" in gen.stdout
    # Rotate the local ring end to end: new key first, re-encrypt, old key no longer needed.
    assert cli("keys", "generate", "--write", env=env).returncode == 0
    rotated = cli("keys", "rotate", "--batch-size", "2", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "with key version 2" in rotated.stdout
    status = cli("keys", "status", env=env).stdout
    assert "key 2: encrypts" in status and "key 1: decrypts, protects 0 value(s)" in status


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DATABASE_URL": "::nonsense::"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql+psycopg2://u:hunter2hunter2@127.0.0.1:1/x"}, "cannot reach the database"),
        ({"FINSYNC_ENCRYPTION_KEYS": "1:short"}, "FINSYNC_ENCRYPTION_KEYS"),
    ],
)
def test_bad_configuration_exits_2_with_one_line_and_no_trace(
    env: dict[str, str], fragment: str, tmp_path: Path
) -> None:
    result = cli("db", "upgrade", env=env)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", [("status",), ("sync", "--all"), ("worker", "--once"), ("db", "purge")])
def test_a_command_on_a_missing_sqlite_database_says_so_and_creates_no_file(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    missing = tmp_path / "typo" / "finsync.db"  # a mistyped DATABASE_URL: only `db upgrade` creates the database
    result = cli(*command, env={"DATABASE_URL": f"sqlite:///{missing}", "FINSYNC_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"finsync: there is no database at {missing}: run `python -m services.cli db upgrade` to create it, "
        "or check DATABASE_URL"
    )
    assert list(tmp_path.iterdir()) == []  # neither the database file, its folder, nor the data dir


def test_password_is_never_an_argument() -> None:
    result = cli("users", "create", "--email", "a@b.example", "--username", "abc", "--password", "x")
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


@pytest.mark.postgres
def test_a_postgresql_database_not_in_utf8_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Bank names come in every alphabet and the search folds accents with ``normalize`` (UTF8 only): a database
    made as SQL_ASCII would fail the first sync that met "Café". Said at once, in one line, with the fix."""
    from sqlalchemy import inspect, text
    from sqlalchemy.engine import make_url

    from tests.factories import drop_pg_database

    pg_url = os.environ.get("TEST_POSTGRES_URL", "")
    if not pg_url:
        pytest.skip("PostgreSQL case: TEST_POSTGRES_URL is not set")
    name = f"finsync_ascii_{os.getpid()}"
    admin = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        )
    try:
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        for args in (("db", "upgrade"), ("sync", "--all")):
            result = cli(*args, env={"DATABASE_URL": url})
            assert result.returncode == 2, result.stderr
            [line] = result.stderr.strip().splitlines()
            assert "stores text as SQL_ASCII, not UTF8" in line and "createdb -E UTF8" in line
            assert ":***@" in line and f":{make_url(pg_url).password}@" not in line  # the password withheld
        engine = make_engine(url)
        assert inspect(engine).get_table_names() == []  # nothing migrated
        engine.dispose()
        assert not (tmp_path / "data").exists()
    finally:
        admin.dispose()
        drop_pg_database(pg_url, name)
