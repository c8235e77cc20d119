"""Retention (security bar J6): rows past their period are purged in batches; nothing live or kept-for-good is.

Each table gets a row one second inside its retention (kept) and one a second past it (deleted), on
both databases, with time moved by the fake clock.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, func, select
from sqlmodel import Session, SQLModel

from models import (
    AuditEvent,
    AuthSession,
    BankAccount,
    LedgerTransaction,
    LinkSession,
    OneTimeToken,
    PendingEdit,
    PlaidApiEvent,
    PlaidItem,
    PlaidRevocation,
    SyncJob,
    SyncRun,
    SyncStaged,
    ThrottleCounter,
    TransactionChange,
    WebhookDelivery,
)
from services import cli, retention, tokens
from services.container import Container
from services.db import unit_of_work
from services.retention import (
    JOB_KEEP,
    LINK_KEEP,
    LOCK_MEMORY,
    LONGEST_WINDOW,
    OUTBOX_KEEP,
    PLAID_CALL_KEEP,
    REVOCATION_KEEP,
    SESSION_KEEP,
    SYNC_RUN_KEEP,
    THROTTLE_KEEP,
    TOKEN_KEEP,
    WEBHOOK_KEEP,
    DailyPurge,
)
from services.scheduler import Scheduler
from tests.factories import FakeClock
from tests.integration.auth_support import fast_hashing, make_user  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")
S = timedelta(seconds=1)
PURGED = (
    "auth_sessions",
    "one_time_tokens",
    "throttle_counters",
    "webhook_deliveries",
    "plaid_api_events",
    "link_sessions",
    "sync_runs",
    "sync_staging",
    "sync_jobs",
    "plaid_revocations",
    "outbox",
)
KEPT_FOR_GOOD = (AuditEvent, LedgerTransaction, TransactionChange, PendingEdit)


def ids(c: Container, model: type[SQLModel]) -> set[object]:
    """The primary keys of every row of ``model`` (a tuple for a composite key)."""
    keys = model.__table__.primary_key.columns  # type: ignore[attr-defined]
    with unit_of_work(c.engine) as session:
        rows = session.execute(select(*keys)).all()
    return {r[0] if len(r) == 1 else tuple(r) for r in rows}


def count(c: Container, model: type[SQLModel]) -> int:
    with unit_of_work(c.engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


@dataclass
class Seeded:
    """What was inserted: per model, the keys expected to survive and to be purged."""

    kept: dict[type[SQLModel], set[object]] = field(default_factory=dict)
    gone: dict[type[SQLModel], set[object]] = field(default_factory=dict)


@dataclass
class Seeder:
    """Inserts rows one second either side of each boundary at ``now`` (and rows that must never go)."""

    session: Session
    user: uuid.UUID
    now: datetime
    idle: timedelta
    out: Seeded = field(default_factory=Seeded)

    @property
    def ancient(self) -> datetime:
        return self.now - timedelta(days=3000)

    def add(self, row: SQLModel, *, keep: bool) -> None:
        self.session.add(row)
        key = (row.run_id, row.seq) if isinstance(row, SyncStaged) else getattr(row, "key", None) or row.id  # type: ignore[attr-defined]
        (self.out.kept if keep else self.out.gone).setdefault(type(row), set()).add(key)

    def auth_session(self, keep: bool, *, last_seen: datetime, expires: datetime, revoked: datetime | None) -> None:
        self.add(AuthSession(user_id=self.user, token_hash=uuid.uuid4().hex, created_at=last_seen - timedelta(hours=1),
                             last_seen_at=last_seen, expires_at=expires, revoked_at=revoked), keep=keep)  # fmt: skip

    def sessions(self) -> None:
        ended = self.now - SESSION_KEEP
        for keep, at in ((True, ended + S), (False, ended - S)):
            self.auth_session(keep, last_seen=at, expires=at + timedelta(hours=11), revoked=at)  # revoked
            self.auth_session(keep, last_seen=at - timedelta(minutes=1), expires=at, revoked=None)  # absolute expiry
            self.auth_session(keep, last_seen=at - self.idle, expires=at + timedelta(hours=5), revoked=None)  # idle
        live = self.now - timedelta(minutes=1)
        self.auth_session(True, last_seen=live, expires=self.now + timedelta(hours=11), revoked=None)

    def token(self, keep: bool, purpose: str, *, expires: datetime, used: datetime | None = None) -> None:
        self.add(OneTimeToken(user_id=self.user, purpose=purpose, token_hash=uuid.uuid4().hex,
                              created_at=expires - tokens.TTL[purpose], expires_at=expires, used_at=used), keep=keep)  # fmt: skip

    def one_time_tokens(self) -> None:
        used = self.now - TOKEN_KEEP
        self.token(True, tokens.RESET, expires=used + S)
        self.token(False, tokens.RESET, expires=used - S)
        self.token(True, tokens.VERIFY, expires=used + timedelta(hours=40), used=used + S)
        self.token(False, tokens.EMAIL_CHANGE, expires=used + timedelta(hours=40), used=used - S)
        self.token(False, tokens.CHALLENGE, expires=used - S)
        self.token(False, tokens.TICKET, expires=used - S)
        self.token(True, tokens.VERIFY, expires=self.now + timedelta(hours=47))  # live

    def counter(
        self, keep: bool, key: str, last_at: datetime, locked_until: datetime | None = None, level: int = 2
    ) -> None:
        recent = f'["{last_at:%Y-%m-%dT%H:%M:%S.%fZ}"]'
        self.add(ThrottleCounter(key=key, last_at=last_at, recent=recent, lock_level=level,
                                 locked_until=locked_until), keep=keep)  # fmt: skip

    def counters(self) -> None:
        quiet, remembered = self.now - THROTTLE_KEEP, self.now - LOCK_MEMORY
        self.counter(True, "ip:auth:quiet-inside", quiet - LONGEST_WINDOW + S, level=0)
        self.counter(False, "ip:auth:quiet-past", quiet - LONGEST_WINDOW - S, level=0)
        self.counter(True, "acct:lock-level-kept", quiet - LONGEST_WINDOW - S, quiet - S)  # its doubling is kept
        self.counter(True, "acct:lock-inside", self.ancient, remembered + S)
        self.counter(False, "acct:lock-past", self.ancient, remembered - S)
        self.counter(False, "acct:locked-window-past", remembered - LONGEST_WINDOW - S)
        self.counter(True, "acct:still-locking", self.ancient, self.now + timedelta(hours=20))
        self.counter(True, "ip:auth:still-counting", self.now - timedelta(minutes=5))

    def logs(self) -> None:
        for keep, delta in ((True, -S), (False, S)):
            self.add(WebhookDelivery(received_at=self.now - WEBHOOK_KEEP - delta, outcome="x"), keep=keep)
            self.add(PlaidApiEvent(at=self.now - PLAID_CALL_KEEP - delta, endpoint="/item/get"), keep=keep)

    def link(self, keep: bool, *, expires: datetime, completed: datetime | None = None) -> None:
        self.add(LinkSession(user_id=self.user, link_token_enc=b"x", created_at=expires - timedelta(hours=4),
                             expires_at=expires, completed_at=completed), keep=keep)  # fmt: skip

    def links(self) -> None:
        finished = self.now - LINK_KEEP
        self.link(True, expires=finished + S)
        self.link(False, expires=finished - S)
        self.link(True, expires=finished + timedelta(hours=3), completed=finished + S)
        self.link(False, expires=finished + timedelta(hours=3), completed=finished - S)
        self.link(True, expires=self.now + timedelta(hours=3))  # open

    def item(self, name: str) -> uuid.UUID:
        row = PlaidItem(user_id=self.user, plaid_item_id=f"item-{name}", access_token_enc=b"x", institution_id="ins",
                        institution_name=name)  # fmt: skip
        self.session.add(row)
        self.session.flush()
        return row.id

    def run(self, keep: bool, item_id: uuid.UUID | None, started: datetime, status: str = "ok") -> uuid.UUID:
        row = SyncRun(item_id=item_id, user_id=self.user, started_at=started, status=status)
        self.add(row, keep=keep)
        return row.id

    def runs(self) -> uuid.UUID:
        """Sync runs and staged rows; returns the item that has transactions."""
        busy, quiet = self.item("busy"), self.item("quiet")
        old = self.now - SYNC_RUN_KEEP
        self.run(True, busy, old + S)
        finished = self.run(False, busy, old - S)
        running = self.run(True, busy, self.now - timedelta(minutes=2), status="running")  # the latest
        self.run(True, quiet, self.now - timedelta(days=900))  # its only run: the latest stays however old
        self.run(True, None, old + S)  # a removed bank's, its history kept: its runs go in time, the last one too
        self.run(False, None, old - S)
        self.session.flush()
        for run_id, keep in ((running, True), (finished, False), (uuid.uuid4(), False)):
            for seq in range(3):
                self.add(SyncStaged(run_id=run_id, seq=seq, plaid_transaction_id=f"t{seq}"), keep=keep)
        done = self.now - JOB_KEEP
        for keep, at, status in ((True, done + S, "done"), (False, done - S, "failed")):
            self.add(SyncJob(item_id=busy, user_id=self.user, status=status, due_at=at, created_at=at, finished_at=at),
                     keep=keep)  # fmt: skip
        self.add(SyncJob(item_id=quiet, user_id=self.user, status="queued", open_key=str(quiet), due_at=self.ancient,
                         created_at=self.ancient), keep=True)  # fmt: skip  # waiting, however long: never purged
        return busy

    def kept_for_good(self, item_id: uuid.UUID) -> None:
        """One row in each table retention never touches, all from long ago."""
        at, user = self.ancient, self.user
        account = BankAccount(user_id=user, item_id=item_id, plaid_account_id="acc", name="Checking", type="depository")
        self.session.add(account)
        self.session.flush()
        self.session.add(AuditEvent(at=at, user_id=user, event="sign_in_ok"))
        self.session.add(LedgerTransaction(plaid_transaction_id="tx", user_id=user, account_id=account.id,
                                           item_id=item_id, amount_minor=-100, date=date(2018, 1, 2), name="Old",
                                           synced_at=at))  # fmt: skip
        self.session.add(TransactionChange(user_id=user, plaid_transaction_id="tx", changed_at=at, field_name="name"))
        self.session.add(PendingEdit(plaid_transaction_id="gone-pending", user_id=user, removed_at=at))

    def revocation(self, keep: bool, outcome: str, finished: datetime | None) -> None:
        self.add(PlaidRevocation(plaid_item_id=f"item-{uuid.uuid4()}", reason="bank_removal", outcome=outcome,
                                 access_token_enc=b"x" if finished is None else None, created_at=self.ancient,
                                 next_attempt_at=self.ancient, finished_at=finished), keep=keep)  # fmt: skip

    def revocations(self) -> None:
        """Confirmed revocations go after their period; pending and given-up ones (an admin must act) never."""
        done = self.now - REVOCATION_KEEP
        self.revocation(True, "revoked", done + S)
        self.revocation(False, "revoked", done - S)
        self.revocation(True, "pending", None)
        self.revocation(True, "given_up", self.ancient)


def seed(c: Container, now: datetime) -> Seeded:
    """Rows around every table's boundary at ``now``, plus rows that must never go."""
    user = make_user(c).id
    with unit_of_work(c.engine) as session:
        seeder = Seeder(session, user, now, timedelta(minutes=c.settings.session_idle_minutes))
        seeder.sessions()
        seeder.one_time_tokens()
        seeder.counters()
        seeder.logs()
        seeder.links()
        seeder.revocations()
        seeder.kept_for_good(seeder.runs())
    return seeder.out


def outbox_mail(c: Container, now: datetime) -> tuple[set[str], set[str]]:
    """Mail files either side of ``OUTBOX_KEEP`` (and a file that is not mail): the names kept, and those purged.

    A ``.part`` is a mail whose write was cut short (a process killed mid-write; the retry writes its own): as old
    as a purged mail, it goes too, with what it held of the message."""
    folder = c.settings.outbox_dir
    folder.mkdir(parents=True, exist_ok=True)
    new, old = now - OUTBOX_KEEP + S, now - OUTBOX_KEEP - S
    names = {"new.eml": new, "old.eml": old, "new.part": new, "old.part": old, "notes.txt": now - OUTBOX_KEEP * 9}
    for name, at in names.items():
        (folder / name).write_text("x", encoding="utf-8")
        os.utime(folder / name, (at.timestamp(), at.timestamp()))
    return {"new.eml", "new.part", "notes.txt"}, {"old.eml", "old.part"}


def test_each_table_keeps_rows_inside_retention_and_loses_rows_past_it(container: Container) -> None:
    now = container.clock()
    seeded = seed(container, now)
    mail_kept, mail_gone = outbox_mail(container, now)
    before = {m: count(container, m) for m in KEPT_FOR_GOOD}
    counts = retention.purge(container)
    expected = {m.__tablename__: len(seeded.gone.get(m, ())) for m in seeded.kept}  # type: ignore[attr-defined]
    assert counts == expected | {"outbox": len(mail_gone)} and list(counts) == list(PURGED)
    assert {p.name for p in container.settings.outbox_dir.iterdir()} == mail_kept
    for model, kept in seeded.kept.items():
        assert ids(container, model) == kept, model.__tablename__  # type: ignore[attr-defined]
    assert {m: count(container, m) for m in KEPT_FOR_GOOD} == before == dict.fromkeys(KEPT_FOR_GOOD, 1)
    assert retention.purge(container) == dict.fromkeys(PURGED, 0)  # a second purge finds nothing


def test_years_later_only_each_items_latest_run_and_the_kept_tables_remain(
    container: Container, clock: FakeClock
) -> None:
    """Sessions and counters end by themselves; the newest run of an item and what is kept for good never do."""
    seeded = seed(container, clock.now)
    clock.advance(days=2000)
    retention.purge(container)
    assert count(container, AuthSession) == 0 and count(container, ThrottleCounter) == 0  # ended by now, so gone
    latest = ids(container, SyncRun)
    assert len(latest) == 2 and latest < seeded.kept[SyncRun]  # per item: the running run, the quiet item's only one
    assert ids(container, SyncStaged) == seeded.kept[SyncStaged]  # its run is still running
    assert all(count(container, m) == 1 for m in KEPT_FOR_GOOD)
    with unit_of_work(container.engine) as session:
        outcomes = session.execute(select(PlaidRevocation.outcome)).scalars().all()
    assert sorted(outcomes) == ["given_up", "pending"]  # never confirmed: kept however old


def test_purges_in_batches_of_a_few_rows(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    now = container.clock()
    transactions: list[int] = []
    deletes: list[int] = []
    with unit_of_work(container.engine) as session:
        for i in range(5):
            session.add(WebhookDelivery(received_at=now - WEBHOOK_KEEP - timedelta(days=i + 1)))
            session.add(SyncStaged(run_id=uuid.UUID(int=1), seq=i, plaid_transaction_id=f"t{i}"))

    def began(_conn: object) -> None:
        transactions.append(len(transactions))

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(len(transactions))

    event.listen(container.engine, "begin", began)
    event.listen(container.engine, "before_cursor_execute", seen)
    try:
        counts = retention.purge(container)
    finally:
        event.remove(container.engine, "begin", began)
        event.remove(container.engine, "before_cursor_execute", seen)
    assert counts["webhook_deliveries"] == 5 and counts["sync_staging"] == 5
    assert len(deletes) == len(set(deletes)) == 6  # 2 + 2 + 1 rows per table, each DELETE in its own transaction


def test_the_scheduler_purges_once_a_day_and_a_failure_never_breaks_its_pass(
    container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[datetime] = []
    real = retention.purge

    def counted(c: Container) -> dict[str, int]:
        calls.append(c.clock())
        return real(c)

    monkeypatch.setattr(retention, "purge", counted)
    scheduler = Scheduler(container)
    scheduler.run_once()
    clock.advance(hours=23, minutes=59)
    scheduler.run_once()
    assert len(calls) == 1
    clock.advance(minutes=1)
    scheduler.run_once()
    assert len(calls) == 2

    def broken(c: Container) -> dict[str, int]:
        calls.append(c.clock())
        raise RuntimeError("database went away")

    monkeypatch.setattr(retention, "purge", broken)
    clock.advance(days=1)
    with caplog.at_level(logging.ERROR, logger="finsync.retention"):
        assert scheduler.run_once() == 0 and scheduler.passes == 4  # logged, not raised
    assert "retention purge failed" in caplog.text
    clock.advance(minutes=59)
    scheduler.run_once()
    assert len(calls) == 3  # a failed purge is retried after an hour, not every pass
    clock.advance(minutes=1)
    scheduler.run_once()
    assert len(calls) == 4


def test_daily_purge_is_per_object(container: Container) -> None:
    first, second = DailyPurge(), DailyPurge()
    assert first(container) is not None and first(container) is None
    assert second(container) == dict.fromkeys(PURGED, 0)  # another process keeps its own day


# --- the command line, with the settings the operator's environment gives it --------------------
@pytest.fixture
def cli_env(container: Container, monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> Container:
    """The CLI builds its own container with the real clock, so the fake one is set to the real time."""
    s = container.settings
    for name, value in {
        "DATABASE_URL": s.effective_database_url,
        "FINSYNC_SECRET_KEY": s.secret_key.get_secret_value(),  # type: ignore[union-attr]
        "FINSYNC_ENCRYPTION_KEYS": s.encryption_keys.get_secret_value(),  # type: ignore[union-attr]
        "FINSYNC_DATA_DIR": str(s.data_dir),
    }.items():
        monkeypatch.setenv(name, value)
    clock.now = datetime.now(UTC)
    return container


def unit(table: str) -> str:
    return "mail file(s)" if table == "outbox" else "row(s)"


def old_webhooks(c: Container, n: int) -> None:
    with unit_of_work(c.engine) as session:
        for _ in range(n):
            session.add(WebhookDelivery(received_at=c.clock() - WEBHOOK_KEEP - timedelta(days=1)))
        session.add(WebhookDelivery(received_at=c.clock() - WEBHOOK_KEEP + timedelta(days=1)))


def test_cli_db_purge_prints_each_table_and_a_second_run_deletes_nothing(
    cli_env: Container, capsys: pytest.CaptureFixture[str]
) -> None:
    old_webhooks(cli_env, 3)
    assert cli.main(["db", "purge"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{t}: {3 if t == 'webhook_deliveries' else 0} {unit(t)} deleted" for t in PURGED]
    assert count(cli_env, WebhookDelivery) == 1
    assert cli.main(["db", "purge"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{t}: 0 {unit(t)} deleted" for t in PURGED]


def test_the_cli_worker_purges(cli_env: Container, capsys: pytest.CaptureFixture[str]) -> None:
    old_webhooks(cli_env, 2)
    assert cli.main(["worker", "--once"]) == 0
    assert "purged 2 row(s) past retention" in capsys.readouterr().out
    assert count(cli_env, WebhookDelivery) == 1
