"""Admin actions, the streamlit-authenticator import (service and CLI), and the secret-free logs (D6, F4, I1)."""

from __future__ import annotations

import logging
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
from sqlalchemy import text

from services import admin, audit, auth, sessions, totp
from services.authenticator_import import import_authenticator
from services.container import Container
from services.db import make_engine, unit_of_work
from services.errors import InputError, InvalidCredentials, PermissionDenied, TokenInvalid
from services.mailer import MemoryMailer, OutboxMailer
from services.users import UserPublic
from tests.factories import FakeClock
from tests.integration.auth_support import (  # noqa: F401
    OTHER_PASSWORD,
    PASSWORD,
    code_at,
    enable_totp,
    fast_hashing,
    link_token,
    make_admin,
    make_user,
    registered,
    sign_in,
    user_row,
)
from tests.integration.test_cli import ROOT, cli

pytestmark = pytest.mark.usefixtures("fast_hashing")


def test_admin_lists_metadata_unlocks_signs_out_and_disables(container: Container, clock: FakeClock) -> None:
    root = make_admin(container)
    alice = make_user(container)
    token = sign_in(container)
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            auth.begin_sign_in(container, login="alice", password="guess guess guess guess")
    rows = {r.username: r for r in admin.list_users(container, root.id)}
    assert rows["alice"].locked_until is not None and rows["root"].locked_until is None
    assert "password_hash" not in repr(rows) and "$2b$" not in repr(rows)
    admin.unlock_user(container, root.id, alice.id)
    assert admin.list_users(container, root.id)[0].locked_until is None
    second = sign_in(container)
    assert admin.force_sign_out(container, root.id, alice.id) == 2
    assert sessions.current_user(container, token) is None and sessions.current_user(container, second) is None
    admin.set_disabled(container, root.id, alice.id, True)
    with pytest.raises(InvalidCredentials):
        auth.begin_sign_in(container, login="alice", password=PASSWORD)
    with pytest.raises(InputError):
        admin.set_disabled(container, root.id, root.id, True)
    with pytest.raises(InputError, match="That is you"):  # one slip must not sign the admin out
        admin.force_sign_out(container, root.id, root.id)
    log = admin.audit_log(container, root.id)
    assert {"admin_unlock", "admin_sign_out", "admin_disable"} <= {e.event for e in log}
    assert all(e.actor_id == root.id for e in log if e.event.startswith("admin_"))


def test_disabling_an_account_kills_the_links_mailed_for_it_so_enabling_it_does_not_revive_them(
    container: Container, mailer: MemoryMailer
) -> None:
    """An intruder with alice's password asks to move her account to their address; the admin disables the account,
    the owner gets it back: the intruder's link must be dead then, not waiting for the account to be enabled."""
    root = make_admin(container)
    alice = make_user(container)
    auth.request_email_change(container, alice.id, password=PASSWORD, new_email="intruder@example.com")
    intruders = link_token(mailer, "verify", index=-2)
    auth.request_password_reset(container, email="alice@example.com")
    reset = link_token(mailer, "reset")
    admin.set_disabled(container, root.id, alice.id, True)
    admin.set_disabled(container, root.id, alice.id, False)
    with pytest.raises(TokenInvalid):
        auth.verify_email(container, intruders)
    with pytest.raises(TokenInvalid):
        auth.reset_password(container, token=reset, new_password=OTHER_PASSWORD)
    assert user_row(container, alice.id).email == "alice@example.com"
    assert sign_in(container, "alice@example.com", PASSWORD)


def test_two_admins_disabling_each_other_at_once_leave_one_admin(container: Container) -> None:
    """Each admin's action checks the other is still an admin under a lock: one goes through, the other finds it
    was disabled meanwhile (both went through, leaving no admin but the command line)."""
    import threading

    for round_ in range(6):
        one, two = make_admin(container, f"one{round_}"), make_admin(container, f"two{round_}")
        start, outcomes = threading.Barrier(2), []

        def disable(actor: UserPublic, target: UserPublic, start: threading.Barrier, outcomes: list[str]) -> None:
            start.wait()
            try:
                admin.set_disabled(container, actor.id, target.id, True)
                outcomes.append("done")
            except PermissionDenied:
                outcomes.append("refused")

        threads = [threading.Thread(target=disable, args=(*pair, start, outcomes)) for pair in ((one, two), (two, one))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(outcomes) == ["done", "refused"], outcomes
        active = [user_row(container, u.id).status for u in (one, two)]
        assert active.count("active") == 1, active


def test_admin_functions_need_two_factor_on(container: Container) -> None:
    root = make_user(container, "root", role="admin")  # as `users create --admin` makes it: no two-factor yet
    alice = make_user(container)
    calls = [
        lambda: admin.list_users(container, root.id),
        lambda: admin.unlock_user(container, root.id, alice.id),
        lambda: admin.force_sign_out(container, root.id, alice.id),
        lambda: admin.set_disabled(container, root.id, alice.id, True),
        lambda: admin.audit_log(container, root.id),
        lambda: admin.outbox(container, root.id),
        lambda: admin.bot_health(container, root.id),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied, match="need two-factor sign-in"):
            call()
    assert user_row(container, alice.id).status == "active"
    assert not [e for e in audit.list_events(container, alice.id) if e.event.startswith("admin_")]
    enable_totp(container, alice.id)  # two-factor does not make a user an admin
    with pytest.raises(PermissionDenied, match="Only an administrator"):
        admin.list_users(container, alice.id)
    enable_totp(container, root.id)
    assert {r.username for r in admin.list_users(container, root.id)} == {"alice", "root"}
    admin.set_disabled(container, root.id, alice.id, True)
    assert user_row(container, alice.id).status == "disabled"


def test_outbox_lists_headers_of_written_mail(container: Container) -> None:
    root = make_admin(container)
    OutboxMailer(container.settings.outbox_dir, "finsync <x@finsync.local>").send("a@example.com", "Hello", "body")
    folder, messages = admin.outbox(container, root.id)
    assert folder == container.settings.outbox_dir
    assert [(m.to, m.subject) for m in messages] == [("a@example.com", "Hello")] and messages[0].date is not None


def _authenticator_yaml(tmp_path: Path) -> Path:
    hashed = bcrypt.hashpw(b"legacy password 1", bcrypt.gensalt(4)).decode()
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
credentials:
  usernames:
    jsmith:
      email: jsmith@example.com
      first_name: John
      password: '{hashed}'
      roles: [admin]
    plain:
      email: plain@example.com
      password: abc
    bad_mail:
      email: 'a@b.c\\r\\nBcc: x@y.z'
      password: '{hashed}'
    alice:
      email: other@example.com
      password: '{hashed}'
cookie: {{expiry_days: 30, key: some_key, name: some_cookie}}
""",
        encoding="utf-8",
    )
    return path


def test_import_keeps_hashes_skips_plain_text_and_upgrades_at_first_sign_in(
    container: Container, tmp_path: Path
) -> None:
    make_user(container)
    report = import_authenticator(container, _authenticator_yaml(tmp_path))
    assert report.imported == ["jsmith"]
    reasons = dict(report.skipped)
    assert set(reasons) == {"plain", "bad_mail", "alice"} and "plain-text" in reasons["plain"]
    with container.engine.connect() as conn:
        assert "abc" not in repr(conn.execute(text("SELECT password_hash FROM users")).fetchall())
    step = auth.begin_sign_in(container, login="jsmith", password="legacy password 1")
    assert step.ticket
    users = {u.username: u for u in admin.list_users(container, make_admin(container).id)}
    assert users["jsmith"].role == "user" and not users["jsmith"].email_verified
    (made,) = [e for e in audit.list_events(container, users["jsmith"].id) if e.event == "registered"]
    assert audit.from_command_line(made)  # not "From: unknown" in its Activity
    row = user_row(container, users["jsmith"].id)
    assert row.password_scheme == "pbcrypt" and row.password_hash.startswith("$2b$04$")
    sign_in(container, "jsmith", "legacy password 1")


def test_import_refuses_a_bad_file(container: Container, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: [a, list", encoding="utf-8")
    with pytest.raises(InputError, match="not a YAML file"):
        import_authenticator(container, bad)
    for body in ("other: 1\n", "credentials:\n", "credentials: [1, 2]\n", "credentials: 5\n"):
        bad.write_text(body, encoding="utf-8")
        with pytest.raises(InputError, match=r"^bad\.yaml has no credentials\.usernames section"):
            import_authenticator(container, bad)
    with pytest.raises(InputError, match="Cannot read"):
        import_authenticator(container, tmp_path / "missing.yaml")


def test_cli_import_prints_what_happened(db_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url}
    assert cli("db", "upgrade", env=env).returncode == 0
    done = cli("users", "import-authenticator", str(_authenticator_yaml(tmp_path)), env=env)
    assert done.returncode == 0, done.stderr
    assert "imported jsmith" in done.stdout and "skipped plain" in done.stdout and "$2b$" not in done.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("[", encoding="utf-8")
    failed = cli("users", "import-authenticator", str(broken), env=env)
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr


def test_cli_import_refuses_what_is_not_a_regular_file_without_reading_it(db_url: str, tmp_path: Path) -> None:
    """/dev/zero, a pipe or a process substitution report size 0: the 5 MB check let them be read without end."""
    env = {"DATABASE_URL": db_url}
    pipe = tmp_path / "users.yaml"
    os.mkfifo(pipe)
    # 6 MB of YAML comments down the pipe: read to the end, it was "no credentials.usernames section".
    writer = subprocess.Popen(["sh", "-c", f"head -c 6000000 /dev/zero | tr '\\0' '#' > '{pipe}'"])
    try:
        for source in ("/dev/zero", str(pipe)):
            result = cli("users", "import-authenticator", source, env=env)
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
            # (the first run also says it generated the data dir's local secrets)
            assert result.stderr.strip().splitlines()[-1] == (
                f"finsync: {source} is not a regular file: give the path of the YAML file itself."
            )
    finally:
        writer.kill()
        writer.wait()
    with make_engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 0


def test_import_refuses_a_user_listed_twice_instead_of_keeping_one_silently(
    container: Container, db_url: str, tmp_path: Path
) -> None:
    """YAML loaders keep the last of two equal keys: the first "bob" would vanish from the report unseen."""
    hashed = bcrypt.hashpw(b"legacy password 1", bcrypt.gensalt(4)).decode()
    path = tmp_path / "config.yaml"
    bob = f"    bob:\n      email: bob@example.com\n      password: '{hashed}'\n"
    path.write_text(f"credentials:\n  usernames:\n{bob}{bob.replace('bob@', 'bob2@')}", encoding="utf-8")
    with pytest.raises(InputError, match=r"^config\.yaml lists 'bob' twice \(lines 3 and 6\); nothing was imported\.$"):
        import_authenticator(container, path)
    entry = f"    jsmith:\n      email: j@example.com\n      email: k@example.com\n      password: '{hashed}'\n"
    path.write_text(f"credentials:\n  usernames:\n{entry}", encoding="utf-8")  # one user, two addresses
    with pytest.raises(InputError, match=r"^config\.yaml lists 'email' twice \(lines 4 and 5\)"):
        import_authenticator(container, path)
    assert _user_count(db_url) == 0


def _bomb(levels: int) -> str:
    """The pen test's "billion laughs": each anchor lists the one before nine times, the email names the last."""
    lines = [
        "credentials:",
        "  usernames:",
        "    jsmith:",
        "      password: x",
        "      a0: &a0 [" + ",".join(["lol"] * 9) + "]",
    ]
    lines += [f"      a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join([*lines, f"      email: *a{levels - 1}", ""])


_USER = "credentials:\n  usernames:\n    jsmith:\n      password: x\n"
HOSTILE_YAML = {
    "alias bomb": (_bomb(4), "uses YAML anchors or aliases"),  # 9**4 copies: small enough to expand unguarded
    "one alias": (
        _USER + "      email: &e j@example.com\n    other:\n      email: *e\n",
        "uses YAML anchors or aliases",
    ),
    "deep flow nesting": ("[" * 50_000 + "]" * 50_000, "is nested more than 32 levels deep"),
    "deep block nesting": ("".join(" " * i + f"k{i}:\n" for i in range(40)), "is nested more than 32 levels deep"),
    "sexagesimal int": (_USER + "      email: 1" + ":1" * 20_000 + "\n", "has a number longer than 32 characters"),
    "5000-digit int": (_USER + "      email: " + "9" * 5_000 + "\n", "has a number longer than 32 characters"),
}


def _user_count(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM users")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("case", HOSTILE_YAML)
def test_import_refuses_hostile_yaml_at_once_and_imports_nothing(
    container: Container, db_url: str, tmp_path: Path, case: str
) -> None:
    """Bar, hostile inputs: aliases, deep nesting and huge ints are refused by name, before any work is done."""
    body, message = HOSTILE_YAML[case]
    path = tmp_path / "config.yaml"
    path.write_text(body, encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(InputError, match=rf"^config\.yaml {message}\b.*; nothing was imported\.$"):
        import_authenticator(container, path)
    assert time.perf_counter() - started < 1.0
    assert _user_count(db_url) == 0


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system", "!Ref"])
def test_import_refuses_a_yaml_tag_that_names_code_and_runs_nothing(
    container: Container, db_url: str, tmp_path: Path, tag: str
) -> None:
    """Bar, hostile inputs: a tag the safe loader has no constructor for is refused by name (it said "not a YAML
    file" of a file that is one), and the command it names never runs."""
    marker = tmp_path / "ran"
    path = tmp_path / "config.yaml"
    path.write_text(_USER + f'      email: {tag} ["touch {marker}"]\n', encoding="utf-8")
    with pytest.raises(
        InputError, match=rf"^config\.yaml uses the YAML tag '{re.escape(tag)}'.*; nothing was imported"
    ):
        import_authenticator(container, path)
    assert not marker.exists() and _user_count(db_url) == 0


def _capped_cli(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    """The CLI in 1 GiB of address space and 30 s, so an unguarded bomb fails fast instead of eating the machine."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": db_url},
        timeout=30,
        preexec_fn=cap,  # safe here: the test process starts no threads
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_bomb(9), "bomb.yaml uses YAML anchors or aliases (& and *), which credential files never need"),
        ("[" * 50_000 + "]" * 50_000, "bomb.yaml is nested more than 32 levels deep, which credential files never are"),
    ],
    ids=["9-level alias bomb", "50,000 levels deep"],
)
def test_cli_refuses_the_pen_test_files_in_one_line(db_url: str, tmp_path: Path, body: str, message: str) -> None:
    """The pen test's files: 42 s and 3.2 GB, and a 3,000-line RecursionError, before the guard."""
    path = tmp_path / "bomb.yaml"
    path.write_text(body, encoding="utf-8")
    failed = _capped_cli("users", "import-authenticator", str(path), db_url=db_url)
    assert failed.returncode == 2, failed.stderr[-2000:]
    lines = [line for line in failed.stderr.splitlines() if "generated local secrets" not in line]
    assert lines == [f"finsync: {message}; nothing was imported."] and failed.stdout == ""
    assert _user_count(db_url) == 0


def _fake_hash(cost: str) -> str:
    return f"$2b${cost}$" + "a" * 53  # never checked by the import, so it need not be a real hash


def test_cli_import_skips_bcrypt_costs_outside_4_to_14(db_url: str, tmp_path: Path) -> None:
    """A cost-31 hash would make each sign-in attempt for that user run for days: skipped with the reason."""
    path = tmp_path / "config.yaml"
    entries = {
        "cheap": bcrypt.hashpw(b"legacy password 1", bcrypt.gensalt(4)).decode(),
        "fourteen": _fake_hash("14"),
        "fifteen": _fake_hash("15"),
        "slow": _fake_hash("31"),
        "broken": _fake_hash("03"),
    }
    path.write_text(
        "credentials:\n  usernames:\n"
        + "".join(
            f"    {name}:\n      email: {name}@example.com\n      password: '{h}'\n" for name, h in entries.items()
        ),
        encoding="utf-8",
    )
    done = cli("users", "import-authenticator", str(path), env={"DATABASE_URL": db_url})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "skipped fifteen: the bcrypt cost 15 is above 14: every sign-in attempt would tie up the server" in lines
    assert "skipped slow: the bcrypt cost 31 is above 14: every sign-in attempt would tie up the server" in lines
    assert "skipped broken: the password is not a bcrypt hash (plain-text passwords are never imported)" in lines
    assert lines[-1] == "2 imported, 3 skipped" and "$2b$" not in done.stdout
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT username, password_hash FROM users ORDER BY username")).fetchall()
    engine.dispose()
    assert [(r[0], r[1]) for r in rows] == [("cheap", entries["cheap"]), ("fourteen", entries["fourteen"])]


def test_a_costly_hash_imported_before_the_guard_is_never_checked(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A $2b$31$ row from an older import: sign-in is refused at once instead of holding the server for days."""
    slow = make_user(container, "slow")
    with unit_of_work(container.engine) as session:
        session.execute(
            text("UPDATE users SET password_hash = :h, password_scheme = 'legacy' WHERE username = 'slow'"),
            {"h": bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode().replace("$04$", "$31$", 1)},
        )
    real_checkpw = bcrypt.checkpw

    def checkpw(password: bytes, hashed: bytes) -> bool:
        assert int(hashed.split(b"$")[2]) <= 14, "a cost-31 hash was checked: this sign-in would take days"
        return bool(real_checkpw(password, hashed))

    monkeypatch.setattr(bcrypt, "checkpw", checkpw)
    with pytest.raises(InvalidCredentials):
        auth.begin_sign_in(container, login="slow", password="x")
    assert user_row(container, slow.id).password_hash.startswith("$2b$31$")


def _everything(c: Container, clock: FakeClock, mailer: MemoryMailer) -> list[str]:
    """Run every flow once; return every secret that was used on the way."""
    secrets = [PASSWORD, OTHER_PASSWORD]
    auth.register(c, email="sam@example.com", username="sam", password=PASSWORD, ip="10.0.0.1")
    user = registered(c, "sam@example.com")
    secrets.append(link_token(mailer, "verify"))
    auth.verify_email(c, secrets[-1])
    step = auth.begin_sign_in(c, login="sam", password=PASSWORD)
    secrets += [step.ticket or "", auth.redeem_ticket(c, ticket=step.ticket or "")]
    enrolment = totp.start_totp_enrolment(c, user.id)
    secrets += [enrolment.secret, code_at(enrolment.secret, clock())]
    codes = totp.confirm_totp(c, user.id, code=secrets[-1], password=PASSWORD)
    secrets += codes
    with pytest.raises(InvalidCredentials):  # a replay, logged as such, without the code
        auth.complete_totp(
            c, challenge=auth.begin_sign_in(c, login="sam", password=PASSWORD).challenge or "", code=secrets[-11]
        )
    step = auth.begin_sign_in(c, login="sam", password=PASSWORD)
    secrets.append(step.challenge or "")
    ticket = auth.complete_totp(c, challenge=step.challenge or "", code=codes[0])
    secrets += [ticket, auth.redeem_ticket(c, ticket=ticket)]
    auth.request_password_reset(c, email="sam@example.com")
    secrets.append(link_token(mailer, "reset"))
    auth.reset_password(c, token=secrets[-1], new_password=OTHER_PASSWORD)
    clock.advance(seconds=30)
    auth.change_password(c, user.id, current_password=OTHER_PASSWORD, new_password="quartz meadow falcon 1999")
    secrets.append("quartz meadow falcon 1999")
    return secrets


# What every record carries (times, thread and process ids): a 6-digit code can turn up in those digits by chance.
_BOOKKEEPING = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _said(record: logging.LogRecord) -> str:
    """A log record as a reader sees it: its message, its extra fields and its traceback."""
    extra = {k: v for k, v in record.__dict__.items() if k not in _BOOKKEEPING}
    trace = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
    return f"{record.getMessage()} {extra} {trace}"


def test_no_secret_reaches_a_log_record_or_an_audit_row(
    container: Container, clock: FakeClock, mailer: MemoryMailer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="finsync")  # whatever level an earlier test's configure_logging left it at
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # SQL and its parameters too
    try:
        used = _everything(container, clock, mailer)
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    assert len(used) > 20 and all(used)
    logs = "\n".join(_said(r) for r in caplog.records)
    assert "sign_in_ok" in logs and "totp_replay" in logs
    with unit_of_work(container.engine) as session:
        rows = repr(session.execute(text("SELECT * FROM audit_events")).fetchall())
    for secret in used:
        variants = {secret, secret.replace("-", "")}
        leaks = [v for v in variants if v in logs or v in rows]
        assert not leaks, f"a secret of length {len(secret)} leaked"


def test_user_view_has_no_hash(container: Container) -> None:
    alice = make_user(container)
    assert isinstance(alice, UserPublic)
    assert "hash" not in repr(alice) and "totp_secret" not in repr(alice)
    assert [e.event for e in audit.list_events(container, alice.id)] == []
