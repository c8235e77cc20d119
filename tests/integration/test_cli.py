"""The command line as an operator uses it: real processes, real exit codes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from models import AuditEvent, User
from services import audit
from services.audit import AuditView
from services.container import command_container
from services.db import make_engine, unit_of_work
from services.migrations import current_revision, head_revision
from services.passwords import verify_password

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
    assert f"generated local secrets in {tmp_path / 'data' / 'secrets.env'}" in made.stderr
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


def test_an_account_made_on_the_command_line_shows_in_the_audit_log(db_url: str) -> None:
    """ASVS 16.3: an admin made with `users create --admin` (by the operator, or by whoever got a shell) left no audit
    row at all, so neither the admin page's audit log nor the account's Activity said how or when it came to be."""
    env = {"DATABASE_URL": db_url}
    assert cli("db", "upgrade", env=env).returncode == 0
    made = cli(
        "users", "create", "--email", "root@example.com", "--username", "root", "--admin",
        stdin="quiet lantern meadow 1987 vessel\n", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    engine = make_engine(db_url)
    try:
        with unit_of_work(engine) as session:
            (user,) = session.execute(select(User)).scalars()
            rows = [AuditView(at=r.at, event=r.event, ip=r.ip, detail=r.detail) for r in session.execute(
                select(AuditEvent).where(AuditEvent.user_id == user.id)).scalars()]  # fmt: skip
    finally:
        engine.dispose()
    assert [(r.event, r.detail) for r in rows] == [("registered", f"admin account, {audit.COMMAND_LINE}")]
    assert audit.from_command_line(rows[0])  # Activity says "the server's command line", not "unknown"


def test_db_upgrade_from_a_laptop_leaves_the_hosted_database_to_the_key_ring_of_the_deployed_app(
    db_url: str, tmp_path: Path
) -> None:
    """README, Streamlit Community Cloud: `keys generate` for the Secrets, then `DATABASE_URL=... db upgrade` from
    your machine. That upgrade made a key ring under ./data and recorded its canary in the hosted database, so the
    app, started with the ring of its Secrets, refused: "key version 1 is not the key this database was encrypted
    with", with no way out but deleting a row by hand."""
    from tests.factories import key_entry

    laptop = tmp_path / "laptop-data"
    up = cli("db", "upgrade", env={"DATABASE_URL": db_url, "FINSYNC_DATA_DIR": str(laptop)})
    assert up.returncode == 0 and "generated local secrets" not in up.stderr, up.stderr
    assert not laptop.exists()  # no ring was made up for a database it does not live beside
    deployed = {
        "DATABASE_URL": db_url,
        "FINSYNC_SECRET_KEY": "s" * 48,
        "FINSYNC_ENCRYPTION_KEYS": key_entry(1),
        "FINSYNC_DATA_DIR": str(tmp_path / "cloud-data"),
    }
    started = cli("keys", "status", env=deployed)  # the app's own check of its ring against the database
    assert started.returncode == 0, started.stderr
    assert "key 1: encrypts" in started.stdout
    other = cli("keys", "status", env={**deployed, "FINSYNC_ENCRYPTION_KEYS": key_entry(1)})
    assert other.returncode == 2 and "key version 1 is not the key" in other.stderr  # bound now: a wrong ring fails


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DATABASE_URL": "::nonsense::"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql+psycopg2://u:hunter2hunter2@127.0.0.1:1/x"}, "cannot reach the database"),
        (
            {"DATABASE_URL": "postgresql://u@127.0.0.1:1/x?password=hunter2hunter2"},
            "database at postgresql+psycopg2://u@",
        ),
        ({"DATABASE_URL": "postgresql://u@127.0.0.1:1/x?nonsense=1"}, "cannot reach the database"),
        ({"DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1/x"}, "driver 'asyncpg' is not installed"),
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


def test_a_database_url_naming_a_folder_a_file_or_a_path_under_a_file_changes_none_of_them(tmp_path: Path) -> None:
    """An existing path was chmod-ed to 0600 (a folder too: /tmp once), and the others ended in a traceback."""
    folder = tmp_path / "folder"
    folder.mkdir(mode=0o755)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    notes.chmod(0o644)
    data = tmp_path / "data"
    for path in (folder, notes, notes / "finsync.db"):
        for args in (("db", "upgrade"), ("keys", "status")):
            result = cli(*args, env={"DATABASE_URL": f"sqlite:///{path}", "FINSYNC_DATA_DIR": str(data)})
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755 and list(folder.iterdir()) == []
    assert stat.S_IMODE(notes.stat().st_mode) == 0o644 and notes.read_text() == "not a database\n"
    assert not data.exists()


def test_a_sqlite_file_that_cannot_be_opened_names_the_data_dir_not_a_server(tmp_path: Path) -> None:
    """With DATABASE_URL unset the database is FINSYNC_DATA_DIR/finsync.db: the message told the operator to check
    a DATABASE_URL they never set and that "the server is running" (SQLite has none)."""
    data = tmp_path / "data"
    (data / "finsync.db").mkdir(parents=True)  # a folder where the database file belongs
    result = cli("db", "upgrade", env={"DATABASE_URL": "", "FINSYNC_DATA_DIR": str(data)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"finsync: cannot open the database file {data / 'finsync.db'}: ")
    assert "FINSYNC_DATA_DIR" in line and "server" not in line
    assert sorted(p.name for p in data.iterdir()) == ["finsync.db"]


def test_a_database_a_newer_finsync_migrated_is_named_not_a_traceback(db_url: str) -> None:
    from sqlalchemy import text

    env = {"DATABASE_URL": db_url}
    assert cli("db", "upgrade", env=env).returncode == 0
    engine = make_engine(db_url)
    head = head_revision(engine)  # put back at the end: later tests share this database
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    for args in (("db", "upgrade"), ("keys", "status"), ("status",)):
        result = cli(*args, env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "the database is at revision 0099, which this finsync does not know" in result.stderr
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    wrong = cli("db", "upgrade", "--revision", "nonsense", env=env)
    assert wrong.returncode == 2 and "finsync: --revision: there is no revision 'nonsense'" in wrong.stderr
    assert "Traceback" not in wrong.stderr and current_revision(engine) == head


@pytest.mark.parametrize("size", ["0", "-5", "many"])
def test_keys_rotate_takes_a_positive_batch_size(db_url: str, size: str) -> None:
    """0 rotated nothing and said so as success; -5 was a traceback on PostgreSQL and no limit at all on SQLite."""
    result = cli("keys", "rotate", "--batch-size", size, env={"DATABASE_URL": db_url})
    assert result.returncode == 2 and "is not a number of rows from 1 to 100000" in result.stderr


def test_a_command_with_a_new_data_dir_on_a_database_it_cannot_read_leaves_no_key_ring(
    db_url: str, tmp_path: Path
) -> None:
    """A key ring made for the run is not the one the database's data is under: the failed command takes it back."""
    assert cli("keys", "status", env={"DATABASE_URL": db_url}).returncode == 0  # binds this data dir's ring
    elsewhere = tmp_path / "other-data"
    result = cli("keys", "status", env={"DATABASE_URL": db_url, "FINSYNC_DATA_DIR": str(elsewhere)})
    assert result.returncode == 2 and "generated local secrets" not in result.stderr, result.stderr
    assert not (elsewhere / "secrets.env").exists()


def test_keys_status_and_rotate_name_a_key_dropped_while_values_still_need_it(db_url: str) -> None:
    """An operator drops key 1 before `keys rotate` moved its values: status and rotate say which values cannot be
    read and which key to put back (exit 1, for a cron check), instead of counting them nowhere."""
    from services.crypto import FieldCipher
    from services.key_ring import parse_key_ring
    from tests.factories import key_entry
    from tests.integration.test_key_rotation import seed

    one, two = key_entry(1), key_entry(2)
    assert cli("db", "upgrade", env={"DATABASE_URL": db_url, "FINSYNC_ENCRYPTION_KEYS": one}).returncode == 0
    seed(make_engine(db_url), FieldCipher(parse_key_ring(one)), 3)
    dropped = {"DATABASE_URL": db_url, "FINSYNC_ENCRYPTION_KEYS": two}
    status = cli("keys", "status", env=dropped)
    assert status.returncode == 1, status.stderr
    assert "key 2: encrypts, protects 0 value(s)" in status.stdout
    assert "key 1: NOT IN THE RING, 3 value(s) cannot be read" in status.stdout
    assert "put key version(s) 1 back in FINSYNC_ENCRYPTION_KEYS" in status.stdout
    rotated = cli("keys", "rotate", env=dropped)
    assert rotated.returncode == 1 and "3 value(s) could not be read and were left as they were" in rotated.stdout
    both = {"DATABASE_URL": db_url, "FINSYNC_ENCRYPTION_KEYS": f"{two},{one}"}
    finished = cli("keys", "rotate", env=both)
    assert finished.returncode == 0 and "re-encrypted 3 value(s)" in finished.stdout, finished.stdout
    assert "key version(s) 1 protect nothing now and can be removed" in finished.stdout


_OUTAGE_MID_COMMAND = """
import sys
from sqlalchemy.exc import OperationalError
from services import cli, keys_cli

def rotate_keys(*_args, **_kwargs):
    if sys.argv[1] == "outage":  # what psycopg2 says when the server goes away mid-command
        raise OperationalError("UPDATE ...", {}, Exception("server closed the connection unexpectedly\\nmore"))
    raise ZeroDivisionError("a bug of ours")

keys_cli.rotate_keys = rotate_keys
sys.exit(cli.main(["keys", "rotate"]))
"""


def test_a_database_going_away_mid_command_is_one_line_and_a_bug_still_shows_its_traceback(db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
    run = [sys.executable, "-c", _OUTAGE_MID_COMMAND]
    outage = subprocess.run([*run, "outage"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)  # noqa: PLW1510
    assert outage.returncode == 2 and "Traceback" not in outage.stderr, outage.stderr
    assert outage.stderr.strip().splitlines()[-1] == (
        "finsync: the database stopped answering (server closed the connection unexpectedly): check that it is "
        "running and run the command again"
    )
    bug = subprocess.run([*run, "bug"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)  # noqa: PLW1510
    assert bug.returncode == 1 and "ZeroDivisionError: a bug of ours" in bug.stderr


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (("db", "upgrade", "--revision", ""), {}, "argument --revision: give a revision: head (the default) or a"),
        (("status",), {"DATABASE_URL": "postgresql://u:hunter2%00@127.0.0.1:1/x"}, "DATABASE_URL: contains a NUL"),
        (("status",), {"DATABASE_URL": "sqlite:///fin%00sync.db"}, "DATABASE_URL: contains a NUL character"),
    ],
)
def test_an_empty_revision_or_a_nul_in_database_url_is_one_line_not_a_traceback(
    args: tuple[str, ...], env: dict[str, str], said: str, tmp_path: Path
) -> None:
    result = cli(*args, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "hunter2" not in result.stderr
    assert said in result.stderr.strip().splitlines()[-1], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_keys_generate_write_puts_the_key_in_the_file_or_says_why_it_cannot(tmp_path: Path) -> None:
    """A fresh data dir was a FileNotFoundError traceback; "NAME = value" (which the reader takes) was reported as
    written while the file stayed as it was."""
    from tests.factories import key_entry

    data = tmp_path / "data"
    fresh = cli("keys", "generate", "--write", env={"FINSYNC_DATA_DIR": str(data)})
    assert fresh.returncode == 2 and "Traceback" not in fresh.stderr
    assert fresh.stderr.strip().splitlines() == [
        f"finsync: {data / 'secrets.env'}: does not exist yet: finsync creates it on its first start (`make run`); "
        "run this again then"
    ]
    assert not data.exists()
    data.mkdir()
    secrets_env = data / "secrets.env"
    one = key_entry(1)
    secrets_env.write_text(f"FINSYNC_SECRET_KEY = {'s' * 48}\nFINSYNC_ENCRYPTION_KEYS = {one}\n")
    spaced = cli("keys", "generate", "--write", env={"FINSYNC_DATA_DIR": str(data)})
    assert spaced.returncode == 0 and "added key version 2" in spaced.stdout, spaced.stderr
    assert "FINSYNC_ENCRYPTION_KEYS = 2:" in secrets_env.read_text() and f",{one}\n" in secrets_env.read_text()


def test_keys_generate_write_names_the_file_the_ring_comes_from(tmp_path: Path) -> None:
    """A ring kept in .env was said to "come from the environment": the operator looked there and found nothing."""
    from tests.factories import key_entry

    folder = tmp_path / "app"
    folder.mkdir()
    one = key_entry(1)
    (folder / ".env").write_text(f"FINSYNC_ENCRYPTION_KEYS={one}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "FINSYNC_ENCRYPTION_KEYS"}
    run = [sys.executable, "-m", "services.cli", "keys", "generate", "--write"]
    kw = {"capture_output": True, "text": True, "timeout": 120, "cwd": folder}
    in_file = subprocess.run(run, env={**env, "PYTHONPATH": str(ROOT)}, **kw)  # noqa: PLW1510
    assert in_file.returncode == 2 and in_file.stdout == "", in_file.stderr
    assert in_file.stderr.strip().splitlines() == [
        f"finsync: FINSYNC_ENCRYPTION_KEYS is set in {folder / '.env'}: update it there, not with --write."
    ]
    exported = {**env, "PYTHONPATH": str(ROOT), "FINSYNC_ENCRYPTION_KEYS": key_entry(1)}
    in_env = subprocess.run(run, env=exported, **kw)  # noqa: PLW1510
    assert in_env.returncode == 2 and "is set in the environment: update it there" in in_env.stderr
    assert (folder / ".env").read_text(encoding="utf-8") == f"FINSYNC_ENCRYPTION_KEYS={one}\n"
    assert not (tmp_path / "data").exists()


def _create_user(password: bytes, username: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: PLW1510
        [
            sys.executable,
            "-m",
            "services.cli",
            "users",
            "create",
            "--email",
            f"{username}@x.example",
            "--username",
            username,
        ],
        input=password,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
    )


def _signs_in_with(db_url: str, monkeypatch: pytest.MonkeyPatch, username: str, password: str) -> bool:
    """Whether the password the browser would send is the one ``users create`` stored for ``username``."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    c = command_container()
    with unit_of_work(c.engine) as session:
        user = session.exec(select(User).where(User.username == username)).one()
        return verify_password(password, user.password_hash, c.pepper)


def test_users_create_reads_the_password_as_utf8_and_refuses_other_bytes_in_one_line(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password piped in another encoding (a Latin-1 file, a stray byte) passed every check and then ended the
    command with a UnicodeEncodeError traceback; a UTF-8 one must be the password the browser later sends."""
    env = {"DATABASE_URL": db_url, "LC_ALL": "C.UTF-8"}
    assert cli("db", "upgrade", env=env).returncode == 0
    latin1 = "quiet lantern meadow vessel grün".encode("latin-1") + b"\n"
    refused = _create_user(latin1, "latin", env)
    assert refused.returncode == 2, refused.stderr.decode(errors="replace")[-2000:]
    assert refused.stderr.decode().strip() == (
        "finsync: The password is not UTF-8 text, which is what a browser sends at sign-in: give it as UTF-8."
    )
    assert refused.stdout == b""
    made = _create_user("quiet lantern meadow vessel grün\n".encode(), "latin", env)  # nothing was half-made
    assert made.returncode == 0, made.stderr.decode()[-2000:]
    assert _signs_in_with(db_url, monkeypatch, "latin", "quiet lantern meadow vessel grün")


def test_users_create_does_not_take_a_byte_order_mark_for_part_of_the_password(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password file saved by an editor that writes UTF-8 with a byte-order mark: the mark was kept as the
    password's first character, which no one can type at sign-in, so the account could not be signed in to."""
    env = {"DATABASE_URL": db_url, "LC_ALL": "C.UTF-8"}
    assert cli("db", "upgrade", env=env).returncode == 0
    made = _create_user(b"\xef\xbb\xbf" + "quiet lantern meadow vessel grün\r\n".encode(), "marked", env)
    assert made.returncode == 0, made.stderr.decode()[-2000:]
    assert _signs_in_with(db_url, monkeypatch, "marked", "quiet lantern meadow vessel grün")
