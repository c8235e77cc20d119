"""The database fails under a sync: SQLite's disk fills up, PostgreSQL's connection drops while the ledger is written.

Security bar, faults catalogue ("DB down mid-sync", "Disk full"): the run fails with a reason in words, the ledger,
cursor and staging are as before, no lease is left held, and the next run completes the work exactly once.
("DB commit outcome unknown": a commit that landed although its answer was lost is the success it was.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlmodel import select

from models import ItemSyncState, QueuedMail, SyncRun, SyncStaged
from services import sync_commit, sync_engine
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.mailer import MemoryMailer
from services.plaid_client import PlaidGateway
from services.sync import sync_item
from tests.integration.sync_helpers import FAST, assert_exact, cursor_of, ledger, link_item, make_user, truth


@contextmanager
def _disk_full(c: Container) -> Iterator[None]:
    """SQLite: the database file may grow by a few pages only (``max_page_count``), as on a nearly full disk."""
    with c.engine.connect() as conn:
        pages = int(conn.execute(text("PRAGMA page_count")).scalar_one())

    def cap(dbapi_conn: Any, _record: object) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 30}")

    c.engine.dispose()  # every connection from here on is capped
    event.listen(c.engine, "connect", cap)
    try:
        yield
    finally:
        event.remove(c.engine, "connect", cap)
        c.engine.dispose()  # space freed: new connections are not capped


@contextmanager
def _connection_dropped(c: Container, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """PostgreSQL: the server ends the sync's connection just as it starts writing the ledger (a restart, a
    failover, an operator's pg_terminate_backend)."""
    import psycopg2

    url = c.engine.url
    cut: list[str] = []

    def dropping(real: Callable[..., Any]) -> Callable[..., Any]:
        def write(sql: Any, *args: Any, **kwargs: Any) -> Any:
            if not cut:
                cut.append(real.__name__)
                backend = sql.conn.connection.dbapi_connection.get_backend_pid()
                side = psycopg2.connect(
                    host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
                )
                side.autocommit = True
                side.cursor().execute("SELECT pg_terminate_backend(%s)", (backend,))
                side.close()
            return real(sql, *args, **kwargs)

        return write

    with monkeypatch.context() as patch:
        patch.setattr(sync_commit, "insert_new", dropping(sync_commit.insert_new))
        patch.setattr(sync_commit, "write_plan", dropping(sync_commit.write_plan))
        yield
    assert cut, "the fault never fired: the ledger was not written"


def test_a_database_failure_while_syncing_keeps_nothing_and_the_next_run_completes_the_work(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
    demo_bank.generate_history(pid, 3000)  # six pages to stage and apply
    before, cursor = ledger(container, user_id), cursor_of(container, item_id)

    fault = _disk_full(container) if db_url.startswith("sqlite") else _connection_dropped(container, monkeypatch)
    with fault:
        failed = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert (failed.status, failed.error_code) == ("failed", "DATABASE_ERROR")
    assert "could not save the new transactions" in failed.message
    assert ledger(container, user_id) == before and cursor_of(container, item_id) == cursor
    with unit_of_work(container.engine) as s:
        runs = [(r.status, r.error_code) for r in s.exec(select(SyncRun).order_by(SyncRun.started_at)).all()]  # type: ignore[arg-type]
        state = s.get(ItemSyncState, item_id)
        assert state is not None and state.lease_owner is None  # the bank is free for the next run at once
        if db_url.startswith("sqlite"):
            assert s.exec(text("PRAGMA integrity_check")).scalar_one() == "ok"  # type: ignore[call-overload]
    assert runs == [("ok", None), ("failed", "DATABASE_ERROR")]  # recorded, not left "running"

    again = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert (again.status, again.added) == ("ok", 3000)
    assert_exact(container, demo_bank, user_id, pid)
    with unit_of_work(container.engine) as s:
        assert s.exec(select(SyncStaged)).first() is None  # the failed run's staged pages are gone too


@contextmanager
def _ledger_commit_fails(monkeypatch: pytest.MonkeyPatch, when: str, why: str) -> Iterator[None]:
    """The commit of the transaction that writes the ledger raises ``why``: ``before_commit`` (refused, nothing
    lands) or ``after_commit`` (it landed, then the connection dropped before the answer arrived)."""
    from sqlalchemy.exc import OperationalError
    from sqlmodel import Session

    writing: list[bool] = []

    def marking(real: Callable[..., Any]) -> Callable[..., Any]:
        def write(*args: Any, **kwargs: Any) -> Any:
            writing.append(True)  # the session that commits next is the one writing the ledger
            return real(*args, **kwargs)

        return write

    def fail(_session: Session) -> None:
        if writing:
            writing.clear()
            raise OperationalError("COMMIT", {}, Exception(why))

    with monkeypatch.context() as patch:
        patch.setattr(sync_commit, "insert_new", marking(sync_commit.insert_new))
        patch.setattr(sync_commit, "write_plan", marking(sync_commit.write_plan))
        event.listen(Session, when, fail)
        try:
            yield
        finally:
            event.remove(Session, when, fail)


def _new_purchases(bank: DemoBankHandle, plaid_item_id: str, n: int) -> None:
    """``n`` transactions of today: news (older ones arriving are the bank's history, not news)."""
    for i in range(n):
        bank.mutate(plaid_item_id, "add", cents=1_000 + i, name=f"NEW PURCHASE {i}")


def test_a_commit_whose_answer_is_lost_is_recorded_as_the_success_it_was_and_its_news_is_sent(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    mailer: MemoryMailer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faults catalogue, "DB commit outcome unknown": the ledger's transaction commits, then the connection drops
    before the answer arrives. The run asks the database what really happened: the commit landed, so the run is
    the success it was (not a failure that sends the user to look for a problem) and the digest goes out once."""
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
    _new_purchases(demo_bank, pid, 3000)
    mailer.sent.clear()
    with _ledger_commit_fails(monkeypatch, "after_commit", "server closed the connection unexpectedly"):
        landed = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert (landed.status, landed.added, landed.error_code) == ("ok", 3000, None)
    assert ledger(container, user_id) == truth(demo_bank, pid)
    with unit_of_work(container.engine) as s:
        run = s.get(SyncRun, landed.run_id)
        assert run is not None and (run.status, run.added) == ("ok", 3000)  # not overwritten as failed
        state = s.get(ItemSyncState, item_id)
        assert state is not None and (state.state, state.consecutive_failures, state.lease_owner) == ("ok", 0, None)
    assert [str(m["Subject"]) for m in mailer.sent] == [
        "finsync: 3000 new transactions from " + landed.institution_name
    ]

    mailer.sent.clear()
    demo_bank.advance(pid, 2)  # more news: the next run goes on from the committed cursor
    again = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert again.status == "ok"
    assert_exact(container, demo_bank, user_id, pid)
    assert not any("3000" in str(m["Subject"]) for m in mailer.sent)  # the landed news is not told twice


def test_a_commit_that_fails_outright_is_a_failure_and_tells_nothing(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    mailer: MemoryMailer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The other side of the unknown outcome: the commit itself is refused. Nothing landed, nothing is announced,
    and the next run brings the same transactions, told once."""
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
    _new_purchases(demo_bank, pid, 40)
    before = ledger(container, user_id)
    mailer.sent.clear()
    with _ledger_commit_fails(monkeypatch, "before_commit", "could not write to file: No space left on device"):
        failed = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert (failed.status, failed.error_code) == ("failed", "DATABASE_ERROR")
    assert ledger(container, user_id) == before and mailer.sent == []
    with unit_of_work(container.engine) as s:
        assert s.exec(select(QueuedMail)).first() is None  # its notification went with the rolled-back transaction

    again = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert (again.status, again.added) == ("ok", 40)
    assert ledger(container, user_id) == truth(demo_bank, pid)
    assert [str(m["Subject"]) for m in mailer.sent] == ["finsync: 40 new transactions from " + again.institution_name]


def test_a_landed_commit_is_never_recorded_failed_even_when_the_first_look_cannot_tell(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    mailer: MemoryMailer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The commit landed, its answer was lost, and the first look at the run cannot reach the database either. The
    run's close then finds the run "ok" and leaves it so: still the success it was, with its digest, told once."""
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
    _new_purchases(demo_bank, pid, 25)
    mailer.sent.clear()
    real, looks = sync_engine._landed, []

    def first_look_fails(*args: Any) -> Any:
        looks.append(1)
        return None if len(looks) == 1 else real(*args)

    monkeypatch.setattr(sync_engine, "_landed", first_look_fails)
    with _ledger_commit_fails(monkeypatch, "after_commit", "server closed the connection unexpectedly"):
        result = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert len(looks) == 2
    assert (result.status, result.added) == ("ok", 25)
    with unit_of_work(container.engine) as s:
        run = s.get(SyncRun, result.run_id)
        state = s.get(ItemSyncState, item_id)
        assert run is not None and (run.status, run.error_code) == ("ok", None)
        assert state is not None and (state.state, state.consecutive_failures) == ("ok", 0)
    assert [str(m["Subject"]) for m in mailer.sent] == ["finsync: 25 new transactions from " + result.institution_name]
    assert ledger(container, user_id) == truth(demo_bank, pid)
