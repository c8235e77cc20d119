"""Settings: contract names, defaults, and one clear line for every bad value."""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from services.config import load_settings
from services.errors import ConfigError
from services.key_ring import parse_key_ring
from services.local_secrets import ensure_local_secrets
from services.mailer import build_message
from tests.factories import key_entry


def test_defaults_work_with_nothing_configured(tmp_path: Path) -> None:
    settings = load_settings(announce=False)
    assert settings.effective_plaid_env == "demo"
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("/data/finsync.db")
    secrets_file = tmp_path / "data" / "secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert len(settings.key_ring) == 1 and len(settings.key_ring[0].key) == 32


def test_generated_secrets_are_reused_on_next_start() -> None:
    first = load_settings(announce=False)
    second = load_settings(announce=False)
    assert first.secret_bytes == second.secret_bytes
    assert first.key_ring == second.key_ring


def _first_start(data_dir: str, barrier: Any, results: Any) -> None:
    """One process starting on ``data_dir`` at the same moment as the others (see the test below)."""
    os.environ["FINSYNC_DATA_DIR"] = data_dir
    barrier.wait()
    try:
        settings = load_settings(announce=False)
        results.put(("started", settings.secret_bytes, settings.key_ring))
    except BaseException as exc:  # reported to the test, whatever it is
        results.put(("failed", type(exc).__name__, str(exc)))


def test_processes_starting_together_on_an_empty_data_dir_all_start_with_the_same_secrets(tmp_path: Path) -> None:
    """The app and a worker started at once on first boot both create the secrets file: one got "File exists" or read
    it half-written ("is missing FINSYNC_SECRET_KEY") and did not start. Every one starts, on the one set of keys."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(12):  # the race is at most a few microseconds wide: several goes at it
        data_dir = str(tmp_path / f"boot{attempt}" / "data")
        barrier, results = ctx.Barrier(6), ctx.Queue()
        starting = [ctx.Process(target=_first_start, args=(data_dir, barrier, results)) for _ in range(6)]
        for process in starting:
            process.start()
        outcomes = [results.get(timeout=120) for _ in starting]
        for process in starting:
            process.join()
        assert [o for o in outcomes if o[0] != "started"] == []
        assert len({o[1:] for o in outcomes}) == 1  # the same secret and key ring in every process
        assert sorted(p.name for p in Path(data_dir).iterdir()) == ["secrets.env"]  # nothing left aside
        stored = (Path(data_dir) / "secrets.env").read_text(encoding="utf-8")
        assert outcomes[0][2][0].version == 1 and "FINSYNC_ENCRYPTION_KEYS=1:" in stored


def test_plaid_credentials_switch_to_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAID_CLIENT_ID", "client")
    monkeypatch.setenv("PLAID_SECRET", "secret-value")
    assert load_settings(announce=False).effective_plaid_env == "sandbox"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("DATABASE_URL", "not a url", "is not a database URL"),
        ("DATABASE_URL", "mysql://u:p@h/db", "not supported"),
        ("FINSYNC_ENCRYPTION_KEYS", "1:notbase64!!", "not standard base64"),
        ("FINSYNC_ENCRYPTION_KEYS", "0:" + "A" * 44, "a whole number from 1 to 4294967295"),
        ("FINSYNC_ENCRYPTION_KEYS", "4294967296:" + "A" * 43 + "=", "a whole number from 1 to 4294967295"),
        ("FINSYNC_ENCRYPTION_KEYS", "\u00b2:" + "A" * 43 + "=", "a whole number from 1 to 4294967295"),
        ("DATABASE_URL", "postgresql+pg8000://u:p@h/db", "driver 'pg8000' is not installed"),
        ("DATABASE_URL", "postgresql+psycopg://u:p@h/db", "driver 'psycopg' is not installed"),
        ("DATABASE_URL", "sqlite://", "an in-memory database keeps nothing: give the path of a file"),
        ("DATABASE_URL", "sqlite:///:memory:", "an in-memory database keeps nothing: give the path of a file"),
        ("DATABASE_URL", "postgresql://u:p@h:abc/db", "is not a database URL"),
        ("FINSYNC_SECRET_KEY", " " * 40, "at least 32"),
        ("SMTP_URL", "smtp://u:p@mail.example:notaport", "port that is not a number"),
        ("SMTP_URL", "smtps://mail.example:99999", "port that is not a number"),
        ("FINSYNC_ENCRYPTION_KEYS", "1:AAAA", "32 bytes"),
        ("FINSYNC_SECRET_KEY", "changeme", "placeholder"),
        ("FINSYNC_SECRET_KEY", "short", "at least 32"),
        ("PLAID_ENV", "staging", "PLAID_ENV"),
        ("PLAID_API_URL", "ftp://x", "http(s)"),
        ("SMTP_URL", "mailto:x", "smtp://"),
        ("SESSION_IDLE_MINUTES", "0", "SESSION_IDLE_MINUTES"),
    ],
)
def test_bad_setting_names_itself_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(announce=False)
    message = str(info.value)
    assert message.startswith(name) and fragment in message
    assert "\n" not in message
    if len(value) > 6:
        assert value not in message  # never echo what was given (it may be a secret)
    assert not (tmp_path / "data").exists()


def test_duplicate_key_versions_are_refused() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        parse_key_ring(f"{key_entry(1)},{key_entry(1)}")


def test_sandbox_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAID_ENV", "production")
    with pytest.raises(ConfigError, match="PLAID_CLIENT_ID"):
        load_settings(announce=False)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("FINSYNC_BASE_URL", "http://money.example.com", "https://"),
        ("PLAID_API_URL", "http://plaid.internal.example", "https://"),  # http only to this machine
        ("DATABASE_URL", "postgresql+psycopg2://finsync:pw@db.example.com:5432/finsync", "sslmode=verify-full"),
        ("DATABASE_URL", "postgresql+psycopg2://finsync:pw@db.example.com/finsync?sslmode=prefer", "sslmode"),
        # libpq connects to ?host= / ?hostaddr= whatever the URL's own host says
        ("DATABASE_URL", "postgresql+psycopg2://finsync:pw@localhost/finsync?host=192.0.2.1", "sslmode"),
        ("DATABASE_URL", "postgresql+psycopg2://finsync:pw@localhost/finsync?hostaddr=192.0.2.1", "sslmode"),
        ("DATABASE_URL", "postgresql+psycopg2://finsync:pw@/finsync?host=/run/postgresql,db.example.com", "sslmode"),
    ],
)
def test_production_refuses_anything_but_tls_for_bank_data(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    """Bar K1/K4: with real banks, no plain-HTTP app (its cookies would not be Secure) and no plain-text database link."""
    for key, setting in {"PLAID_ENV": "production", "PLAID_CLIENT_ID": "client", "PLAID_SECRET": "s" * 30,
                         "FINSYNC_BASE_URL": "https://money.example.com", name: value}.items():  # fmt: skip
        monkeypatch.setenv(key, setting)
    with pytest.raises(ConfigError) as info:
        load_settings(announce=False)
    assert str(info.value).startswith(name) and fragment in str(info.value) and "pw@" not in str(info.value)


def test_production_accepts_https_and_a_local_or_tls_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAID_ENV", "production")
    monkeypatch.setenv("PLAID_CLIENT_ID", "client")
    monkeypatch.setenv("PLAID_SECRET", "s" * 30)
    monkeypatch.setenv("FINSYNC_BASE_URL", "https://money.example.com")
    monkeypatch.setenv("PLAID_API_URL", "http://127.0.0.1:9000")  # a proxy on this machine may speak plain http
    for url in ("postgresql+psycopg2://finsync:pw@127.0.0.1/finsync",
                "postgresql+psycopg2://finsync:pw@localhost/finsync?host=/run/postgresql,127.0.0.1&hostaddr=::1",
                "postgresql+psycopg2://finsync:pw@db.example.com/finsync?sslmode=verify-full"):  # fmt: skip
        monkeypatch.setenv("DATABASE_URL", url)
        assert load_settings(announce=False, create_secrets=False).effective_plaid_env == "production"


def test_an_https_address_in_capitals_is_https(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheme is case-insensitive: ``HTTPS://`` is accepted as HTTPS, so it must also get Secure cookies (and the
    ``__Host-`` name) and HSTS, not quietly plain ones."""
    monkeypatch.setenv("FINSYNC_BASE_URL", "HTTPS://Money.example.com/")
    settings = load_settings(announce=False, create_secrets=False)
    assert settings.base_url == "https://Money.example.com" and settings.secure_cookies


def test_data_dir_that_is_a_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("FINSYNC_DATA_DIR", str(blocker / "data"))
    with pytest.raises(ConfigError, match="FINSYNC_DATA_DIR"):
        load_settings(announce=False)


def test_corrupt_local_secrets_file_is_named(tmp_path: Path) -> None:
    settings = load_settings(create_secrets=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secrets.env").write_text("FINSYNC_SECRET_KEY=x\nFINSYNC_ENCRYPTION_KEYS=1:zz\n")
    with pytest.raises(ConfigError, match=r"secrets\.env"):
        ensure_local_secrets(settings, announce=False)


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        ("FINSYNC_SECRET_KEY=hunter2\nFINSYNC_ENCRYPTION_KEYS={ring}\n", "FINSYNC_SECRET_KEY: must be at least 32"),
        ('FINSYNC_SECRET_KEY={secret}\nFINSYNC_ENCRYPTION_KEYS="v{ring}"\n', "FINSYNC_ENCRYPTION_KEYS: entry 1 must"),
        ("FINSYNC_SECRET_KEY={secret}\n", "has no FINSYNC_ENCRYPTION_KEYS=... line"),
        ("FINSYNC_ENCRYPTION_KEYS={ring}\n", "has no FINSYNC_SECRET_KEY=... line"),
    ],
)
def test_a_bad_line_in_the_local_secrets_file_is_named_by_its_setting(tmp_path: Path, lines: str, said: str) -> None:
    """The file holds two settings: "secrets.env: must be at least 32 characters" and "is missing FINSYNC_SECRET_KEY
    or FINSYNC_ENCRYPTION_KEYS" left the operator to guess which line to fix."""
    from tests.factories import key_entry

    settings = load_settings(create_secrets=False)
    path = tmp_path / "data" / "secrets.env"
    path.parent.mkdir()
    path.write_text(lines.format(secret="s" * 48, ring=key_entry(1)), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        ensure_local_secrets(settings, announce=False)
    assert str(raised.value).startswith(f"{path}: {said}") and "hunter2" not in str(raised.value)


SECRET = "s" * 40 + "#x"  # a "#" with no space before it is part of an unquoted value, as in .env


@pytest.mark.parametrize(
    "lines",
    [
        "FINSYNC_SECRET_KEY={secret}\nFINSYNC_ENCRYPTION_KEYS={ring}\n",
        'FINSYNC_SECRET_KEY="{secret}"\nFINSYNC_ENCRYPTION_KEYS="{ring}"\n',
        "FINSYNC_SECRET_KEY='{secret}'\nFINSYNC_ENCRYPTION_KEYS='{ring}'\n",
        "export FINSYNC_SECRET_KEY={secret}\nexport  FINSYNC_ENCRYPTION_KEYS = {ring}\n",
        "FINSYNC_SECRET_KEY={secret}   # the pepper\nFINSYNC_ENCRYPTION_KEYS={ring} # newest first\n",
        "# kept with the backup\nexport FINSYNC_SECRET_KEY=\"{secret}\" # pepper\r\n\nfinsync_encryption_keys='{ring}'#\n",
    ],
    ids=["plain", "double-quoted", "single-quoted", "export", "comments", "all-at-once"],
)
def test_the_local_secrets_file_is_read_as_a_dotenv_file_is(tmp_path: Path, lines: str) -> None:
    """A secrets.env edited as .env files are written (quotes, `export `, a comment after the value) stopped start-up
    ("has no FINSYNC_SECRET_KEY=... line") or, quoted, failed on "entry 1 must look like 'VERSION:BASE64KEY'"."""
    ring = f"{key_entry(2)},{key_entry(1)}"
    path = tmp_path / "data" / "secrets.env"
    path.parent.mkdir()
    path.write_text(lines.format(secret=SECRET, ring=ring), encoding="utf-8")
    settings = load_settings(announce=False)
    assert settings.secret_bytes == SECRET.encode()
    assert settings.key_ring == parse_key_ring(ring)
    assert sorted(p.name for p in path.parent.iterdir()) == ["secrets.env"]


def test_an_unclosed_quote_in_the_local_secrets_file_names_its_line(tmp_path: Path) -> None:
    """Read as .env is, a line python-dotenv cannot parse would be skipped and reported as missing."""
    path = tmp_path / "data" / "secrets.env"
    path.parent.mkdir()
    path.write_text(f'# keys\nFINSYNC_SECRET_KEY="{SECRET}\nFINSYNC_ENCRYPTION_KEYS={key_entry(1)}\n', "utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(announce=False)
    assert str(raised.value) == f"{path}: line 2 is not NAME=value (an unclosed quote?): fix or remove it"
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("FINSYNC_ENCRYPTION_KEYS={one}", "FINSYNC_ENCRYPTION_KEYS={ring}"),
        (
            'export FINSYNC_ENCRYPTION_KEYS="{one}"  # newest first',
            'export FINSYNC_ENCRYPTION_KEYS="{ring}"  # newest first',
        ),
        ("finsync_encryption_keys = '{one}'", "finsync_encryption_keys = '{ring}'"),
    ],
)
def test_writing_the_key_ring_keeps_the_way_its_line_is_written(tmp_path: Path, line: str, kept: str) -> None:
    """`keys generate --write` found only a bare NAME=value line: on an `export` line it said "has no
    FINSYNC_ENCRYPTION_KEYS line" though start-up read the ring from it."""
    from services.local_secrets import write_local_key_ring

    one, two = key_entry(1), key_entry(2)
    path = tmp_path / "data" / "secrets.env"
    path.parent.mkdir()
    path.write_text(f"# mine\nFINSYNC_SECRET_KEY='{SECRET}'\n\n{line.format(one=one)}\n# end\n", encoding="utf-8")
    write_local_key_ring(path.parent, f"{two},{one}")
    assert path.read_text(encoding="utf-8") == (
        f"# mine\nFINSYNC_SECRET_KEY='{SECRET}'\n\n{kept.format(ring=f'{two},{one}')}\n# end\n"
    )
    assert load_settings(announce=False).key_ring == parse_key_ring(f"{two},{one}")


def test_a_placeholder_or_short_secret_key_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The message said to run `keys generate`, which prints encryption keys only (and stops on this very setting)."""
    import subprocess

    for given in ("changeme", "too-short"):
        monkeypatch.setenv("FINSYNC_SECRET_KEY", given)
        with pytest.raises(ConfigError, match=r"^FINSYNC_SECRET_KEY: .*make one with: python3 -c ") as raised:
            load_settings(announce=False)
        command = str(raised.value).split("make one with: ", 1)[1]
        made = subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout.strip()
        monkeypatch.setenv("FINSYNC_SECRET_KEY", made)
        assert load_settings(announce=False).secret_bytes == made.encode()


@pytest.mark.parametrize("name", ["FINSYNC_BASE_URL", "PLAID_API_URL", "PLAID_REDIRECT_URI", "PLAID_LINK_SCRIPT_URL"])
@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("http://localhost:99999", "has a port that is not a number from 1 to 65535"),
        ("https://finsync.example:port", "has a port that is not a number from 1 to 65535"),
        ("http://localhost:0", "has a port that is not a number from 1 to 65535"),
        ("http://fin sync.example", "must be an http(s) URL"),
        ("http://:8501", "must be an http(s) URL"),
    ],
)
def test_an_http_url_setting_with_a_bad_port_or_host_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, given: str, said: str
) -> None:
    """They were accepted: "http://localhost:99999" started the app, and every emailed link and Plaid webhook, and
    the check of which page may open the app's socket (FINSYNC_BASE_URL), used an address no browser can open."""
    monkeypatch.setenv(name, given)
    with pytest.raises(ConfigError) as raised:
        load_settings(announce=False)
    assert str(raised.value) == f"{name}: {said}"


@pytest.mark.parametrize(
    "name", ["SYNC_INTERVAL_HOURS", "SYNC_TICK_SECONDS", "SYNC_VERIFY_DAYS", "FINSYNC_DEMO_ACTIVITY_SECONDS"]
)
@pytest.mark.parametrize("given", ["nan", "inf", "1e999"])
def test_a_number_setting_that_is_not_a_finite_number_says_so(
    monkeypatch: pytest.MonkeyPatch, name: str, given: str
) -> None:
    """ "nan" was told "Input should be less than or equal to 168", as if it were a number too big."""
    monkeypatch.setenv(name, given)
    with pytest.raises(ConfigError) as raised:
        load_settings(announce=False)
    assert str(raised.value) == f"{name}: Input should be a finite number"


def test_a_libpq_style_database_url_uses_the_driver_finsync_ships(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLAlchemy reads postgresql:// as psycopg 3, which is not installed: the first connection was a traceback."""
    for given in ("postgresql://u:p%40ss@db.example:5432/finsync?sslmode=require", "postgres://u:p%40ss@db.example/f"):
        monkeypatch.setenv("DATABASE_URL", given)
        url = load_settings(announce=False).effective_database_url
        assert url == given.replace("postgresql://", "postgresql+psycopg2://").replace(
            "postgres://", "postgresql+psycopg2://"
        )


def test_an_empty_data_dir_setting_is_the_default_not_the_current_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FINSYNC_DATA_DIR", "")
    settings = load_settings(announce=False)
    assert settings.data_dir == Path("data") and (tmp_path / "data" / "secrets.env").exists()
    assert not (tmp_path / "secrets.env").exists()


def _make_directory(path: Path) -> None:
    path.mkdir()


def _make_latin1(path: Path) -> None:
    path.write_bytes(b"FINSYNC_BASE_URL=http://caf\xe9.example\n")


def _make_dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "gone")


@pytest.mark.parametrize("where", [".env", "data/secrets.env"])
@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_make_directory, "is a directory, not a file of NAME=value lines; move it away"),
        (_make_latin1, "is not UTF-8 text; save it as UTF-8 NAME=value lines"),
        (_make_dangling_link, "is a link to '{gone}', which does not exist; fix or remove the link"),
    ],
)
def test_a_settings_file_that_cannot_be_read_is_named_with_what_is_wrong(
    tmp_path: Path, where: str, make: object, problem: str
) -> None:
    """A .env or secrets.env that is a directory, not UTF-8, or a link to nothing was a traceback (or, for .env,
    silently skipped)."""
    (tmp_path / "data").mkdir()
    path = tmp_path / where
    make(path)  # type: ignore[operator]
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    with pytest.raises(ConfigError) as info:
        load_settings(announce=False)
    assert str(info.value) == f"{path}: {problem.format(gone=path.parent / 'gone')}"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before


@pytest.mark.parametrize("given", ["inf", "1e10", "-1"])
def test_demo_activity_seconds_is_bounded(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    """inf or 1e10 was accepted and the demo activity thread died at its first wait."""
    monkeypatch.setenv("FINSYNC_DEMO_ACTIVITY_SECONDS", given)
    with pytest.raises(ConfigError, match=r"^FINSYNC_DEMO_ACTIVITY_SECONDS: Input should be"):
        load_settings(announce=False, create_secrets=False)


@pytest.mark.parametrize(
    ("name", "field", "default"),
    [
        ("FINSYNC_BASE_URL", "base_url", "http://localhost:8501"),
        ("FINSYNC_MAIL_FROM", "mail_from", "finsync <no-reply@finsync.local>"),
        ("PLAID_ENV", "effective_plaid_env", "demo"),
        ("SYNC_INTERVAL_HOURS", "sync_interval_hours", 6),
        ("SESSION_IDLE_MINUTES", "session_idle_minutes", 30),
        ("FINSYNC_PROXY_HOPS", "proxy_hops", 0),
    ],
)
def test_a_setting_set_empty_is_its_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, field: str, default: object
) -> None:
    """``NAME=`` in .env or the environment (a copied template, a blank Streamlit Cloud secret) means unset, as it
    already did for DATABASE_URL and FINSYNC_DATA_DIR: an empty FINSYNC_BASE_URL put "None/..." into every emailed
    link and the webhook URL sent to Plaid, and an empty PLAID_ENV or number stopped start-up."""
    monkeypatch.setenv(name, "")
    settings = load_settings(announce=False)
    assert getattr(settings, field) == default
    (tmp_path / ".env").write_text(f"{name}=\n", encoding="utf-8")
    monkeypatch.delenv(name)
    settings = load_settings(announce=False)
    assert getattr(settings, field) == default
    assert "base_url" not in settings.model_fields_set  # the app's own port still decides the links


@pytest.mark.parametrize(
    "value",
    [
        "x@",  # the email package raised IndexError at every send: each mail waited and was retried until it expired
        "alerts",  # no domain: SMTP servers refuse the sender
        "finsync alerts@example.org",  # read as the address "finsync alerts@example.org"
        "finsync <alerts@example.org",
        "alerts@example.org, other@example.org",
        "alerts@example.org\nBcc: everyone@example.org",
    ],
)
def test_a_mail_from_that_is_not_one_address_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    """README: a bad value stops start-up in one line naming the setting. FINSYNC_MAIL_FROM was taken as given, and
    the first email (a verification or reset link) failed, or went out from a sender the server refuses."""
    monkeypatch.setenv("FINSYNC_MAIL_FROM", value)
    with pytest.raises(ConfigError) as info:
        load_settings(announce=False)
    message = str(info.value)
    assert message.startswith("FINSYNC_MAIL_FROM: ") and "\n" not in message and value not in message
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "value", ["no-reply@example.com", "finsync <no-reply@example.com>", '"Müller, Bank" <bank@mail.example>']
)
def test_a_mail_from_of_one_address_is_used_as_given(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FINSYNC_MAIL_FROM", value)
    settings = load_settings(announce=False)
    assert settings.mail_from == value
    assert build_message(settings.mail_from, "ada@example.com", "finsync: hello", "body")["From"] == value


def test_a_dotenv_line_that_cannot_be_read_stops_start_up_naming_the_line(tmp_path: Path) -> None:
    """python-dotenv skipped a line with an unclosed quote (a warning in the log) and the setting fell back to its
    default: this DATABASE_URL lost, `db upgrade` made a new SQLite ledger instead of using PostgreSQL."""
    (tmp_path / ".env").write_text(
        'SYNC_TICK_SECONDS=30\n\nDATABASE_URL="postgresql+psycopg2://finsync:hunter2@db.example/finsync\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(announce=False)
    assert str(info.value) == (f"{tmp_path / '.env'}: line 3 is not NAME=value (an unclosed quote?): fix or remove it")
    assert "hunter2" not in str(info.value)
    assert not (tmp_path / "data").exists()


def test_a_dotenv_as_the_template_and_its_usual_forms_is_read(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text(encoding="utf-8")
    extra = (
        'export SYNC_TICK_SECONDS=45   # seconds\nFINSYNC_MAIL_FROM="finsync <bot@example.com>"\nNOTE="two\nlines"\n'
    )
    (tmp_path / ".env").write_text(example + extra, encoding="utf-8")
    settings = load_settings(announce=False)
    assert settings.sync_tick_seconds == 45 and settings.mail_from == "finsync <bot@example.com>"


def test_a_data_dir_under_home_written_with_a_tilde_is_the_home_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In .env (or systemd's EnvironmentFile) nothing expands "~": the ledger and the key ring went into a folder
    literally named "~" in the working directory, one `rm -rf ~` away from the person's home when they tidy up."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / ".env").write_text("FINSYNC_DATA_DIR=~/finsync\n", encoding="utf-8")
    monkeypatch.delenv("FINSYNC_DATA_DIR")
    settings = load_settings(announce=False)
    assert settings.data_dir == home / "finsync"
    assert (home / "finsync" / "secrets.env").exists() and not (tmp_path / "~").exists()
    assert settings.effective_database_url == f"sqlite:///{home / 'finsync' / 'finsync.db'}"


def test_a_sqlite_database_url_under_home_written_with_a_tilde_is_in_the_home_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same for DATABASE_URL=sqlite:///~/...: `db upgrade` made the ledger in a folder named "~" here."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///~/ledger/finsync.db\n", encoding="utf-8")
    settings = load_settings(announce=False)
    assert settings.effective_database_url == f"sqlite:///{home / 'ledger' / 'finsync.db'}"


def test_first_start_on_a_data_dir_whose_filesystem_has_no_hard_links_creates_the_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT and exFAT drives and many SMB shares refuse hard links ("Operation not permitted"): the secrets file,
    written aside and linked into place, then stopped the very first start with a traceback. It is created in place
    there, as before, and every later start reads it."""

    def no_hard_links(src: object, dst: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted", str(src), None, str(dst))

    monkeypatch.setenv("FINSYNC_DATA_DIR", str(tmp_path / "usb" / "data"))
    monkeypatch.setattr(os, "link", no_hard_links)  # the filesystem's answer, not a part of finsync
    first = load_settings(announce=False)
    data_dir = tmp_path / "usb" / "data"
    assert sorted(p.name for p in data_dir.iterdir()) == ["secrets.env"]  # nothing left aside
    assert stat.S_IMODE((data_dir / "secrets.env").stat().st_mode) == 0o600
    assert load_settings(announce=False).key_ring == first.key_ring
