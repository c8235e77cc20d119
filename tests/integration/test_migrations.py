"""Migrations: upgrade an empty database, autogenerate finds no drift, downgrade to base."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel, select

from models import BankAccount, LedgerTransaction, PlaidItem, SyncQuarantine, SyncRun, ThrottleCounter, User
from models.types import UTCDateTime
from services import migrations, throttle
from services.db import make_engine, unit_of_work
from tests.conftest import PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    if not PG_URL:
        pytest.skip("PostgreSQL case: TEST_POSTGRES_URL is not set")
    url: str = request.getfixturevalue("pg_database")
    engine = make_engine(url)
    migrations.downgrade(engine, "base")
    engine.dispose()
    request.addfinalizer(lambda: _restore(url))
    return url


def _restore(url: str) -> None:
    engine = make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()


def test_upgrade_autogenerate_clean_and_downgrade(empty_url: str) -> None:
    engine = make_engine(empty_url)
    assert not set(inspect(engine).get_table_names()) & set(SQLModel.metadata.tables)
    migrations.upgrade(engine)
    assert migrations.current_revision(engine) == migrations.head_revision(engine)
    assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == []
    migrations.downgrade(engine, "base")
    assert not set(inspect(engine).get_table_names()) & set(SQLModel.metadata.tables)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 0
    engine.dispose()


OLD_COUNTERS = sa.table(  # throttle_counters up to 0011: fixed windows
    "throttle_counters",
    sa.column("key", sa.String()),
    sa.column("window_start", UTCDateTime()),
    sa.column("failures", sa.Integer()),
    sa.column("consecutive", sa.Integer()),
    sa.column("lock_level", sa.Integer()),
    sa.column("locked_until", UTCDateTime()),
)


def test_0012_keeps_counts_in_progress_both_ways(empty_url: str) -> None:
    """A count in progress at the upgrade ends when its fixed window would have; the downgrade restores it."""
    engine = make_engine(empty_url)
    migrations.upgrade(engine, "0011")
    start, until = datetime(2026, 11, 27, 12, 0, tzinfo=UTC), datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    counting = {"key": "acct:counting", "failures": 3, "consecutive": 3, "lock_level": 0, "locked_until": None}
    locked = {"key": "acct:locked", "failures": 0, "consecutive": 5, "lock_level": 1, "locked_until": until}
    with engine.begin() as conn:
        conn.execute(OLD_COUNTERS.insert(), [{**counting, "window_start": start}, {**locked, "window_start": start}])
    migrations.upgrade(engine)
    with unit_of_work(engine) as session:
        row = session.get(ThrottleCounter, "acct:counting")
        assert row is not None and row.last_at == start
        assert (
            row.recent == '["2026-11-27T12:00:00.000000Z","2026-11-27T12:00:00.000000Z","2026-11-27T12:00:00.000000Z"]'
        )
        window = throttle.ACCOUNT_WINDOW
        assert throttle.count_in_window(session, "acct:counting", start + window - timedelta(seconds=1), window) == 3
        assert throttle.count_in_window(session, "acct:counting", start + window, window) == 0
        assert throttle.locked_until(session, "acct:locked", start) == until
        kept = session.get(ThrottleCounter, "acct:locked")
        assert kept is not None and (kept.recent, kept.consecutive, kept.lock_level) == ("[]", 5, 1)
    migrations.downgrade(engine, "0011")
    with engine.connect() as conn:
        rows = {r.key: r._asdict() for r in conn.execute(sa.select(OLD_COUNTERS))}
    assert rows == {
        "acct:counting": {**counting, "window_start": start},
        "acct:locked": {**locked, "window_start": start},
    }
    engine.dispose()


OLD_SET_ASIDE = sa.table(  # sync_quarantine up to 0012: the pending twin only inside the kept JSON
    "sync_quarantine",
    *(sa.column(name, sa.String()) for name in ("plaid_transaction_id", "kind", "reason", "excerpt")),
    *(sa.column(name, sa.Uuid()) for name in ("id", "item_id", "user_id")),
    *(sa.column(name, UTCDateTime()) for name in ("first_seen_at", "last_seen_at")),
)


def _insert_as_then(conn: sa.Connection, *rows: SQLModel) -> None:
    """Insert model rows into the schema of an older revision: only the columns its tables had then."""
    for row in rows:
        then = sa.Table(row.__tablename__, sa.MetaData(), autoload_with=conn)
        conn.execute(type(row).__table__.insert(), [{k: v for k, v in row.model_dump().items() if k in then.c}])


def test_0013_names_the_pending_twin_of_transactions_set_aside_before_it(empty_url: str) -> None:
    """A posted transaction set aside before 0013 still releases its pending twin when the bank removes it:
    the upgrade reads the twin's id from the kept JSON (a cut-short excerpt has none to give)."""
    engine = make_engine(empty_url)
    migrations.upgrade(engine, "0012")
    at = datetime(2026, 12, 1, tzinfo=UTC)
    user = User(email="a@example.com", email_norm="a@example.com", username="a", username_norm="a",
                password_hash="x", created_at=at, password_changed_at=at)  # fmt: skip
    item = PlaidItem(user_id=user.id, plaid_item_id="item-1", access_token_enc=b"x", institution_id="ins_1",
                     institution_name="Bank", created_at=at, updated_at=at)  # fmt: skip
    with engine.begin() as conn:  # the users and plaid_items tables as they were at 0012 (later revisions add columns)
        _insert_as_then(conn, user, item)
    posted = json.dumps({"transaction_id": "posted-1", "amount": "abc", "pending_transaction_id": "hold-1"})
    nul = json.dumps({"transaction_id": "posted-3", "pending_transaction_id": "hold\u0000"})  # no id PostgreSQL takes
    kept = {"item_id": item.id, "user_id": user.id, "kind": "added", "reason": "not an amount",
            "first_seen_at": at, "last_seen_at": at}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            OLD_SET_ASIDE.insert(),
            [
                {**kept, "id": uuid.uuid4(), "plaid_transaction_id": "posted-1", "excerpt": posted},
                {**kept, "id": uuid.uuid4(), "plaid_transaction_id": "posted-2", "excerpt": posted[:30]},
                {**kept, "id": uuid.uuid4(), "plaid_transaction_id": "posted-3", "excerpt": nul},
            ],
        )
    migrations.upgrade(engine)
    with unit_of_work(engine) as session:
        twins = {q.plaid_transaction_id: q.pending_transaction_id for q in session.exec(select(SyncQuarantine))}
    assert twins == {"posted-1": "hold-1", "posted-2": None, "posted-3": None}
    migrations.downgrade(engine, "0012")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(OLD_SET_ASIDE)).scalar_one() == 3
    engine.dispose()


OLD_RUNS = sa.table(  # sync_runs up to 0015: a run always had its bank
    "sync_runs",
    *(sa.column(name, sa.Uuid()) for name in ("id", "item_id", "user_id")),
    *(sa.column(name, sa.String()) for name in ("trigger", "worker", "status", "message", "request_ids")),
    *(sa.column(name, sa.Integer()) for name in ("pages", "restarts", "retries", "added", "modified", "removed")),
    sa.column("started_at", UTCDateTime()),
)


def test_0016_keeps_a_run_when_its_bank_goes_and_going_down_drops_only_those(empty_url: str) -> None:
    """Runs from before 0016 stay; after it a removed bank's runs stay (unlinked) rather than go by cascade; going
    down again drops only those, which the old schema cannot hold."""
    engine = make_engine(empty_url)
    migrations.upgrade(engine, "0015")
    at = datetime(2026, 12, 1, tzinfo=UTC)
    user = User(email="a@example.com", email_norm="a@example.com", username="a", username_norm="a",
                password_hash="x", created_at=at, password_changed_at=at)  # fmt: skip
    items = [PlaidItem(user_id=user.id, plaid_item_id=f"item-{n}", access_token_enc=b"x", institution_id="ins_1",
                       institution_name=f"Bank {n}", created_at=at, updated_at=at) for n in (1, 2)]  # fmt: skip
    with engine.begin() as conn:  # the tables as they were at 0015 (later revisions add columns)
        _insert_as_then(conn, user, *items)
    counts = dict.fromkeys(("pages", "restarts", "retries", "added", "modified", "removed"), 0)
    with engine.begin() as conn:
        conn.execute(OLD_RUNS.insert(), [
            {"id": uuid.uuid4(), "item_id": i.id, "user_id": user.id, "trigger": "cli", "worker": "w", "status": "ok",
             "message": "", "request_ids": "", "started_at": at, **counts} for i in items
        ])  # fmt: skip
    migrations.upgrade(engine)
    with unit_of_work(engine) as session:
        session.delete(session.get(PlaidItem, items[0].id))
    with unit_of_work(engine) as session:  # the database itself unlinks the run, whoever deletes the bank
        assert sorted(str(r.item_id) for r in session.exec(select(SyncRun))) == sorted(["None", str(items[1].id)])
    migrations.downgrade(engine, "0015")
    with engine.connect() as conn:
        assert conn.execute(sa.select(OLD_RUNS.c.item_id)).scalars().all() == [items[1].id]
    migrations.upgrade(engine)
    engine.dispose()


def test_an_upgrade_that_dies_partway_leaves_the_database_as_it_was(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faults catalogue, "migration fails halfway": every step runs in one transaction (SQLite's DDL is
    transactional too), so a failure after some migrations applied keeps none of them, and the app then
    refuses to start on the old schema with the command that fixes it."""
    from alembic import command

    from services.container import check_schema
    from services.errors import FinsyncError

    engine = make_engine(empty_url)
    migrations.upgrade(engine, "0009")
    tables_before = set(inspect(engine).get_table_names())
    real = command.upgrade

    def dies_after_the_steps(config: object, target: str) -> None:
        real(config, target)  # type: ignore[arg-type]  # 0010 to 0013 all ran ...
        raise OSError("power cut")  # ... and then the process lost its footing before the commit

    monkeypatch.setattr(command, "upgrade", dies_after_the_steps)
    with pytest.raises(OSError, match="power cut"):
        migrations.upgrade(engine)
    monkeypatch.undo()
    assert migrations.current_revision(engine) == "0009"
    assert set(inspect(engine).get_table_names()) == tables_before
    with pytest.raises(FinsyncError, match=r"run `python -m services\.cli db upgrade`"):
        check_schema(engine)
    migrations.upgrade(engine)  # the rerun completes the work
    assert migrations.current_revision(engine) == migrations.head_revision(engine)
    check_schema(engine)
    engine.dispose()


def test_a_downgrade_that_rebuilds_a_table_keeps_every_row_that_refers_to_it(empty_url: str) -> None:
    """On SQLite, dropping a column rebuilds the table; with foreign keys on, dropping the old table would delete
    the user's banks, accounts and transactions by cascade. Down past such steps and up again, all is still there."""
    engine = make_engine(empty_url)
    migrations.upgrade(engine)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    user = User(email="a@example.com", email_norm="a@example.com", username="a", username_norm="a",
                password_hash="x", created_at=at, password_changed_at=at)  # fmt: skip
    item = PlaidItem(user_id=user.id, plaid_item_id="item-1", access_token_enc=b"x", institution_id="ins_1",
                     institution_name="Bank", created_at=at, updated_at=at)  # fmt: skip
    account = BankAccount(user_id=user.id, item_id=item.id, plaid_account_id="acc-1", name="Everyday",
                          type="depository")  # fmt: skip
    with unit_of_work(engine) as session:
        session.add(user)
        session.flush()
        session.add(item)
        session.flush()
        session.add(account)
        session.flush()
        session.add(LedgerTransaction(plaid_transaction_id="t-1", user_id=user.id, account_id=account.id,
                                      amount_minor=-100, date=at.date(), name="COFFEE"))  # fmt: skip
    tables = ("users", "plaid_items", "bank_accounts", "transactions")

    def rows() -> dict[str, int]:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}

    migrations.downgrade(engine, "0006")  # past 0015 (users), 0009 and 0008 (bank_accounts), 0007 (plaid_items)
    assert rows() == dict.fromkeys(tables, 1)
    migrations.upgrade(engine)
    assert rows() == dict.fromkeys(tables, 1)
    if engine.dialect.name == "sqlite":  # and the connection the migration used has its foreign keys on again
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    engine.dispose()
