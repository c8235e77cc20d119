"""finsync on PostgreSQL as a role that owns nothing (security bar F10): ``db grant`` gives it what every flow
needs, and a compromised app holding it still cannot touch the audit log's rows, the schema or the migrations.

The role is made and dropped here, so the test role needs CREATEROLE (``.ci/run`` gives it).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from services import auth, banking, jobs, ledger, ledger_listing, migrations, retention, sessions, sync, webhook_verify
from services.account import delete_account
from services.audit import list_events
from services.container import build_container
from services.db import make_engine
from services.demo_bank import DemoBankHandle
from services.errors import InvalidCredentials
from services.mailer import MemoryMailer
from services.plaid_client import PlaidGateway
from services.sync_types import SyncResult
from tests.factories import FakeClock, drop_pg_database, make_settings
from tests.integration.auth_support import (
    IP,
    PASSWORD,
    code_at,
    enable_totp,
    fast_hashing,  # noqa: F401 - the fixture the flow test names
    link_token,
    registered,
    sign_in,
)
from tests.integration.conftest_bank import Bank, WebhookSink
from tests.integration.test_cli import cli

PG_URL = os.environ.get("TEST_POSTGRES_URL", "")


@dataclass(frozen=True)
class Roles:
    owner_url: str  # the test role: owns the database and ran the migrations
    app_url: str  # a role of its own, granted by `db grant`
    app_role: str


def _admin(sql: str) -> None:
    engine = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, env={"DATABASE_URL": url})


@pytest.fixture
def roles() -> Iterator[Roles]:
    if not PG_URL:
        pytest.skip("PostgreSQL case: TEST_POSTGRES_URL is not set")
    tag = uuid.uuid4().hex[:10]
    database, role, password = f"finsync_lp_{tag}", f"finsync_ci_app_{tag}", secrets.token_hex(12)
    _admin(f'CREATE DATABASE "{database}"')
    try:
        _admin(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
        _admin(f'GRANT "{role}" TO CURRENT_USER')  # so the clean-up may end the role's connections a failure left
    except ProgrammingError as exc:
        drop_pg_database(PG_URL, database)
        pytest.fail(f"the TEST_POSTGRES_URL role needs CREATEROLE for this test (.ci/run grants it): {exc.orig}")
    base = make_url(PG_URL).set(database=database)
    owner_url = base.render_as_string(hide_password=False)
    app_url = base.set(username=role, password=password).render_as_string(hide_password=False)
    try:
        yield Roles(owner_url, app_url, role)
    finally:
        drop_pg_database(PG_URL, database)
        _admin(f'DROP ROLE IF EXISTS "{role}"')


def _refused(url: str, sql: str) -> str:
    """The database's answer to ``sql`` run as the role of ``url``: it must refuse."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    except ProgrammingError as exc:
        return str(exc.orig).splitlines()[0]
    finally:
        engine.dispose()
    raise AssertionError(f"the app's role was allowed: {sql}")


@pytest.mark.postgres
@pytest.mark.usefixtures("fast_hashing")
def test_the_app_runs_every_flow_as_a_role_that_owns_nothing_and_cannot_touch_the_audit_log(
    roles: Roles,
    tmp_path: Path,
    mailer: MemoryMailer,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    webhook_sink: WebhookSink,
) -> None:
    owner = make_engine(roles.owner_url)
    migrations.upgrade(owner)
    owner.dispose()
    granted = _cli("db", "grant", roles.app_role, url=roles.owner_url)
    assert granted.returncode == 0, granted.stderr
    assert f"{roles.app_role} may read and write the rows of finsync's" in granted.stdout
    assert granted.stderr == ""  # PostgreSQL 15 grants no CREATE on public to everyone: nothing to warn about

    # The app, as that role: start-up checks, sign-up and its email, a wrong password, sign-in, two-factor,
    # sessions, linking, syncs and a worker's job (a change the bank makes to a transaction numbers a history row from a sequence), an
    # edit, the retention purge, removing a bank and deleting the account (which blanks the audit rows' addresses).
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    app = make_engine(roles.app_url)
    base = webhook_sink.url.removesuffix("/plaid/webhook")
    settings = make_settings(tmp_path / "data", roles.app_url, FINSYNC_BASE_URL=base)
    c = build_container(settings, engine=app, mailer=mailer, clock=clock, plaid=gateway)
    webhook_verify.clear_key_cache()
    bank = Bank(c, demo_bank, webhook_sink, clock)
    auth.register(c, email="lea@example.com", username="lea", password=PASSWORD, ip=IP)
    auth.verify_email(c, link_token(mailer, "verify"))
    with pytest.raises(InvalidCredentials):  # counted towards a pause
        auth.begin_sign_in(c, login="lea", password="not her password at all", ip=IP)
    token = sign_in(c, "lea", PASSWORD)
    user = registered(c, "lea@example.com").id
    secret = enable_totp(c, user, current_token=token)
    assert sessions.current_user(c, token) is not None and len(sessions.list_sessions(c, user, token)) == 1
    sessions.revoke_other_sessions(c, user, token)
    item = bank.link(user)
    assert sync.sync_item(c, user, item.id, explicit=True).status == "ok"
    rows = ledger_listing.list_transactions(c, user)
    posted = next(t for t in rows if not t.pending)
    demo_bank.mutate(bank.plaid_item_id(item.id), "modify", transaction_id=posted.transaction_id, name="RENAMED")
    again = sync.sync_item(c, user, item.id, explicit=True)
    assert (again.status, again.modified) == ("ok", 1)
    assert [h.field_name for h in ledger.transaction_history(c, user, posted.transaction_id)] == ["name"]
    ledger.edit_transaction(c, user, posted.transaction_id, note="dinner with Sam")
    other = bank.link(user, institution_id="ins_demo_2")  # its first sync is due: a worker claims and runs it
    results: list[SyncResult] = []
    assert jobs.run_due_jobs(c, worker_id="worker-lp", limit=5, on_result=results.append) == 1
    assert [r.status for r in results] == ["ok"]
    clock.advance(days=500)
    assert retention.purge(c)["sync_jobs"] == 1  # the worker's finished job, long past its keep
    banking.remove_item(c, user, other.id, keep_history=False)
    delete_account(c, user, password=PASSWORD, code=code_at(secret, clock(), steps=1))
    assert "account_deleted" in [e.event for e in list_events(c, user)]
    app.dispose()

    # What a compromised app would try next.
    for sql, answer in (
        ("DELETE FROM audit_events", "permission denied for table audit_events"),
        ("TRUNCATE audit_events", "permission denied for table audit_events"),
        ("DROP TRIGGER audit_events_append_only ON audit_events", "must be owner of"),
        ("ALTER TABLE users ADD COLUMN backdoor text", "must be owner of"),
        ("CREATE TABLE stash (x text)", "permission denied for schema public"),
        ("UPDATE alembic_version SET version_num = 'x'", "permission denied for table alembic_version"),
    ):
        assert answer in _refused(roles.app_url, sql), sql

    # Tables a later migration adds come with the same rights, without running db grant again.
    owner = make_engine(roles.owner_url)
    with owner.begin() as conn:
        conn.execute(text("CREATE TABLE later_table (id serial PRIMARY KEY, note text)"))
    owner.dispose()
    app = make_engine(roles.app_url)
    with app.begin() as conn:
        conn.execute(text("INSERT INTO later_table (note) VALUES ('works')"))
    app.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("who", "fragment"),
    [
        ("nobody_by_this_name", "no PostgreSQL role named 'nobody_by_this_name'"),
        ("postgres", "is a superuser, which no grant limits"),
        (None, "runs this command and owns the tables"),  # the owner itself
    ],
)
def test_db_grant_refuses_a_role_it_cannot_limit_in_one_line(roles: Roles, who: str | None, fragment: str) -> None:
    owner = make_engine(roles.owner_url)
    migrations.upgrade(owner)
    owner.dispose()
    role = who or str(make_url(roles.owner_url).username)
    result = _cli("db", "grant", role, url=roles.owner_url)
    assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_db_grant_on_sqlite_says_it_has_no_roles(tmp_path: Path) -> None:
    result = _cli("db", "grant", "finsync_app", url=f"sqlite:///{tmp_path / 'finsync.db'}")
    assert result.returncode == 2 and "SQLite file has no roles" in result.stderr


@pytest.mark.postgres
def test_db_upgrade_as_the_apps_role_says_which_role_to_use_and_changes_nothing(roles: Roles) -> None:
    owner = make_engine(roles.owner_url)
    migrations.upgrade(owner)
    migrations.downgrade(owner, "-1")  # a release with a new migration: the schema is one behind
    behind = migrations.current_revision(owner)
    assert _cli("db", "grant", roles.app_role, url=roles.owner_url).returncode == 0
    result = _cli("db", "upgrade", url=roles.app_url)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{roles.app_role} may not change the schema" in result.stderr
    assert "run db upgrade as the role that owns finsync's tables" in result.stderr
    assert migrations.current_revision(owner) == behind
    assert _cli("db", "upgrade", url=roles.owner_url).returncode == 0  # the owner can, and the app role then works
    assert migrations.current_revision(owner) == migrations.head_revision(owner)
    owner.dispose()
