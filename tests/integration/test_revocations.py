"""The revocation queue (security bar J1): no bank connection deleted here is forgotten, and billed, at Plaid.

The real plaid-python SDK over HTTP against the demo bank and its fault injection, on both databases;
time moves with the fake clock.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlmodel import SQLModel, col

from models import AuditEvent, BankAccount, PlaidApiEvent, PlaidItem, PlaidRevocation, User
from services import account, admin, banking, cli, revocations
from services.crypto import FieldCipher, rotate_keys
from services.db import unit_of_work
from services.errors import DecryptionError, FinsyncError, InputError, PermissionDenied
from services.key_ring import parse_key_ring
from services.plaid_types import CallEvent
from services.scheduler import Scheduler
from tests.factories import key_entry
from tests.integration.auth_support import PASSWORD, fast_hashing, make_user  # noqa: F401
from tests.integration.conftest_bank import Bank

pytestmark = pytest.mark.usefixtures("fast_hashing")
ALWAYS = 100_000  # a counted fault that outlasts the test


def queued(bank: Bank) -> list[PlaidRevocation]:
    with unit_of_work(bank.c.engine) as session:
        return list(session.execute(select(PlaidRevocation).order_by(col(PlaidRevocation.institution_name))).scalars())


def count(bank: Bank, model: type[SQLModel]) -> int:
    with unit_of_work(bank.c.engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def audited(bank: Bank, event: str) -> list[AuditEvent]:
    with unit_of_work(bank.c.engine) as session:
        return list(session.execute(select(AuditEvent).where(col(AuditEvent.event) == event)).scalars())


def removals(events: list[CallEvent]) -> int:
    return sum(e.endpoint == "/item/remove" for e in events)


def token_of(bank: Bank, plaid_item_id: str) -> str:
    return bank.demo.bank.items[plaid_item_id].access_token


def assert_nowhere_in_plain_text(bank: Bank, secret: str) -> None:
    """Not in any column of any table (bytes read raw), nor, on SQLite, anywhere in the database files."""
    with bank.c.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                    assert secret.encode() not in raw, table.name
    if bank.c.engine.dialect.name == "sqlite":
        db = Path(str(bank.c.engine.url.database))
        for path in (db, db.with_name(db.name + "-wal")):
            assert not path.exists() or secret.encode() not in path.read_bytes(), path


def link_three(bank: Bank, user_id: uuid.UUID) -> list[str]:
    """Link the three demo institutions; return their Plaid item ids."""
    items = [bank.link(user_id, inst) for inst in ("ins_demo_1", "ins_demo_2", "ins_demo_3")]
    return [bank.plaid_item_id(i.id) for i in items]


def test_backoff_doubles_from_five_minutes_up_to_six_hours() -> None:
    minutes = [revocations.backoff(n) / timedelta(minutes=1) for n in range(1, 10)]
    assert minutes == [5, 10, 20, 40, 80, 160, 320, 360, 360]
    assert revocations.backoff(10_000) == timedelta(hours=6)


def test_account_deletion_queues_what_plaid_refused_and_a_later_retry_revokes_it(
    bank: Bank, plaid_events: list[CallEvent]
) -> None:
    alice = bank.user()
    first, stuck, third = link_three(bank, alice)
    token = token_of(bank, stuck)
    bank.demo.set_fault(stuck, "institution_down", endpoint="/item/remove", times=ALWAYS)
    account.delete_account(bank.c, alice, password=PASSWORD)

    assert count(bank, User) == count(bank, PlaidItem) == count(bank, BankAccount) == 0
    with unit_of_work(bank.c.engine) as session:  # the call log named her: it goes with her data
        assert session.execute(select(PlaidApiEvent).where(col(PlaidApiEvent.user_id) == alice)).first() is None
    assert [bank.demo.bank.items[p].removed for p in (first, stuck, third)] == [True, False, True]
    (row,) = queued(bank)
    assert (row.plaid_item_id, row.institution_name, row.reason, row.outcome, row.attempts, row.last_error) == (
        stuck, "Maple Credit Union", "account_deletion", "pending", 1, "INSTITUTION_DOWN"
    )  # fmt: skip
    assert row.next_attempt_at == bank.clock.now + timedelta(minutes=5) and row.finished_at is None
    assert revocations.decrypt(bank.c.cipher, row) == token  # the real token, sealed to this row
    assert_nowhere_in_plain_text(bank, token)

    calls = removals(plaid_events)
    assert revocations.retry_revocations(bank.c) == 0 and removals(plaid_events) == calls  # not due yet
    bank.demo.clear_faults(stuck)
    bank.clock.advance(minutes=5)
    assert revocations.retry_revocations(bank.c) == 1
    assert bank.demo.bank.items[stuck].removed  # the demo bank's own state: the connection is gone
    (row,) = queued(bank)
    assert (row.outcome, row.attempts, row.finished_at, row.access_token_enc) == ("revoked", 2, bank.clock.now, None)
    (done,) = audited(bank, "bank_revocation_done")
    assert done.user_id is None and stuck in done.detail and token not in done.detail
    bank.clock.advance(days=1)
    assert revocations.retry_revocations(bank.c) == 0 and removals(plaid_events) == calls + 1


def test_retries_back_off_and_give_up_after_seven_days_with_an_audit_event(
    bank: Bank, plaid_events: list[CallEvent]
) -> None:
    alice = bank.user()
    stuck = bank.plaid_item_id(bank.link(alice, "ins_demo_3").id)
    bank.demo.set_fault(stuck, "server_error", endpoint="/item/remove", times=ALWAYS)
    banking.remove_all_items(bank.c, alice)
    (row,) = queued(bank)
    start, tried_at = row.created_at, [row.created_at]
    while row.outcome == "pending":
        assert row.next_attempt_at - tried_at[-1] == revocations.backoff(row.attempts)
        bank.clock.now = row.next_attempt_at - timedelta(seconds=1)
        assert revocations.retry_revocations(bank.c) == 0 and queued(bank)[0].attempts == row.attempts  # not yet
        bank.clock.now = row.next_attempt_at
        tried_at.append(bank.clock.now)
        assert revocations.retry_revocations(bank.c) == 0
        (row,) = queued(bank)
    assert row.outcome == "given_up" and row.last_error == "INTERNAL_SERVER_ERROR" and row.access_token_enc is None
    assert tried_at[-2] - start < timedelta(days=7) <= tried_at[-1] - start == row.finished_at - start
    assert row.attempts == len(tried_at) == removals(plaid_events)
    assert not bank.demo.bank.items[stuck].removed
    (event,) = audited(bank, "bank_revocation_given_up")
    assert event.user_id is None and event.at == row.finished_at
    assert "Harbor National" in event.detail and stuck in event.detail and "INTERNAL_SERVER_ERROR" in event.detail
    assert token_of(bank, stuck) not in event.detail
    bank.clock.advance(days=30)
    assert revocations.retry_revocations(bank.c) == 0 and removals(plaid_events) == row.attempts


def test_a_ciphertext_moved_to_another_row_does_not_decrypt_and_the_pass_gives_that_row_up(
    bank: Bank, plaid_events: list[CallEvent]
) -> None:
    alice = bank.user()
    first, second = (bank.plaid_item_id(bank.link(alice, inst).id) for inst in ("ins_demo_1", "ins_demo_2"))
    for plaid_item_id in (first, second):
        bank.demo.set_fault(plaid_item_id, "server_error", endpoint="/item/remove", times=1)
    banking.remove_all_items(bank.c, alice)
    with unit_of_work(bank.c.engine) as session:
        good, moved = (session.execute(select(PlaidRevocation).where(col(PlaidRevocation.plaid_item_id) == p))
                       .scalar_one() for p in (first, second))  # fmt: skip
        moved.access_token_enc = good.access_token_enc  # the first row's token, pasted into the second
        moved.next_attempt_at = good.next_attempt_at - timedelta(seconds=1)  # and taken first in the pass
    assert revocations.decrypt(bank.c.cipher, good) == token_of(bank, first)
    with pytest.raises(DecryptionError):
        revocations.decrypt(bank.c.cipher, moved)

    calls = removals(plaid_events)
    bank.clock.advance(minutes=5)
    assert revocations.retry_revocations(bank.c) == 1  # the pass went on past the unreadable row
    assert removals(plaid_events) == calls + 1  # the moved token was never sent anywhere
    rows = {r.plaid_item_id: r for r in queued(bank)}
    assert (rows[first].outcome, rows[second].outcome, rows[second].last_error) == (
        "revoked", "given_up", "TOKEN_UNREADABLE"
    )  # fmt: skip
    assert bank.demo.bank.items[first].removed and not bank.demo.bank.items[second].removed
    (event,) = audited(bank, "bank_revocation_given_up")
    assert second in event.detail and "TOKEN_UNREADABLE" in event.detail


def test_an_item_whose_token_cannot_be_read_is_deleted_and_listed_as_given_up(bank: Bank) -> None:
    alice = bank.user()
    readable, unreadable = (bank.plaid_item_id(bank.link(alice, inst).id) for inst in ("ins_demo_1", "ins_demo_2"))
    with unit_of_work(bank.c.engine) as session:
        rows = {i.plaid_item_id: i for i in session.execute(select(PlaidItem)).scalars()}
        rows[unreadable].access_token_enc = rows[readable].access_token_enc
    account.delete_account(bank.c, alice, password=PASSWORD)
    assert count(bank, User) == count(bank, PlaidItem) == 0
    (row,) = queued(bank)
    assert (row.plaid_item_id, row.outcome, row.last_error, row.access_token_enc) == (
        unreadable, "given_up", "TOKEN_UNREADABLE", None
    )  # fmt: skip
    assert [e.detail.split(";")[0] for e in audited(bank, "bank_revocation_given_up")] == ["Maple Credit Union"]


def test_key_rotation_re_encrypts_queued_tokens_and_the_retry_reads_them_with_the_new_key(bank: Bank) -> None:
    alice = bank.user()
    stuck = bank.plaid_item_id(bank.link(alice).id)
    bank.demo.set_fault(stuck, "server_error", endpoint="/item/remove", times=1)
    banking.remove_all_items(bank.c, alice)
    old, new = bank.c.settings.encryption_keys.get_secret_value(), key_entry(2)  # type: ignore[union-attr]
    assert rotate_keys(bank.c.engine, FieldCipher(parse_key_ring(f"{new},{old}"))).rewritten >= 1
    only_new = dataclasses.replace(bank.c, cipher=FieldCipher(parse_key_ring(new)))
    bank.clock.advance(minutes=5)
    assert revocations.retry_revocations(only_new) == 1 and bank.demo.bank.items[stuck].removed


@pytest.mark.parametrize("failure", ["duplicate", "accounts_failed"])
def test_a_discarded_link_plaid_would_not_remove_is_queued_and_revoked_later(bank: Bank, failure: str) -> None:
    alice = bank.user()
    bank.link(alice)
    start = banking.start_link(bank.c, alice)
    success = bank.link_login(start.link_token)
    fresh = bank.demo.bank.public_tokens[success["public_token"]][0]  # the demo bank's item, not exchanged yet
    bank.demo.set_fault(fresh, "institution_down", endpoint="/item/remove", times=1)
    if failure == "accounts_failed":
        bank.demo.set_fault(fresh, "server_error", endpoint="/accounts/get", times=1)
    with pytest.raises(InputError if failure == "duplicate" else FinsyncError):
        banking.complete_link(bank.c, alice, public_token=success["public_token"], metadata=success,
                              link_session_id=start.link_session_id)  # fmt: skip
    assert len(banking.list_items(bank.c, alice)) == 1 and not bank.demo.bank.items[fresh].removed
    (row,) = queued(bank)
    assert (row.plaid_item_id, row.reason, row.last_error) == (fresh, "link_discard", "INSTITUTION_DOWN")
    assert row.institution_name == ("First Demo Bank" if failure == "duplicate" else "")
    (failed,) = [e.detail for e in audited(bank, "bank_link_failed")]
    assert "queued for retry" in failed and success["public_token"] not in failed
    assert_nowhere_in_plain_text(bank, token_of(bank, fresh))
    bank.clock.advance(minutes=5)
    assert revocations.retry_revocations(bank.c) == 1 and bank.demo.bank.items[fresh].removed


class _BrokenGateway:
    """A gateway whose /item/remove fails in a way nobody planned for."""

    env = "demo"

    def item_remove(self, access_token: str) -> str:
        raise RuntimeError("unexpected")


def test_the_scheduler_pass_retries_revocations_and_a_broken_retry_never_breaks_it(bank: Bank) -> None:
    alice = bank.user()
    stuck = bank.plaid_item_id(bank.link(alice).id)
    bank.demo.set_fault(stuck, "server_error", endpoint="/item/remove", times=1)
    banking.remove_all_items(bank.c, alice)
    bank.clock.advance(minutes=5)
    broken = Scheduler(dataclasses.replace(bank.c, plaid=_BrokenGateway()))  # type: ignore[arg-type]
    assert broken.run_once() == 0 and broken.passes == 1  # the failure was logged, not raised
    (row,) = queued(bank)
    assert row.outcome == "pending" and row.attempts == 2  # still queued, for the next pass after its backoff
    bank.clock.advance(minutes=10)
    Scheduler(bank.c).run_once()
    assert queued(bank)[0].outcome == "revoked" and bank.demo.bank.items[stuck].removed


def test_the_cli_worker_retries_due_revocations(
    bank: Bank, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = bank.c.settings
    for name, value in {
        "DATABASE_URL": s.effective_database_url,
        "FINSYNC_SECRET_KEY": s.secret_key.get_secret_value(),  # type: ignore[union-attr]
        "FINSYNC_ENCRYPTION_KEYS": s.encryption_keys.get_secret_value(),  # type: ignore[union-attr]
        "FINSYNC_DATA_DIR": str(s.data_dir),
        "PLAID_ENV": "demo",
        "PLAID_API_URL": bank.demo.url,
    }.items():
        monkeypatch.setenv(name, value)
    alice = bank.user()
    stuck = bank.plaid_item_id(bank.link(alice).id)
    bank.demo.set_fault(stuck, "server_error", endpoint="/item/remove", times=1)
    bank.clock.advance(hours=-1)  # queued an hour ago by the fake clock: due for the worker's real one
    banking.remove_all_items(bank.c, alice)
    assert cli.main(["worker", "--once"]) == 0
    assert "revoked 1 bank connection(s) at Plaid" in capsys.readouterr().out
    assert queued(bank)[0].outcome == "revoked" and bank.demo.bank.items[stuck].removed


def _admin(bank: Bank) -> uuid.UUID:
    """An active admin with two-factor on (admin services require it)."""
    root = make_user(bank.c, "root", role="admin")
    with unit_of_work(bank.c.engine) as session:
        row = session.get(User, root.id)
        assert row is not None
        row.totp_enabled = True
    return root.id


def test_admins_see_unfinished_revocations_without_tokens_and_nobody_else_does(bank: Bank) -> None:
    alice = bank.user()
    _, stuck, third = link_three(bank, alice)
    bank.demo.set_fault(stuck, "institution_down", endpoint="/item/remove", times=ALWAYS)
    bank.demo.set_fault(third, "server_error", endpoint="/item/remove", times=1)
    banking.remove_all_items(bank.c, alice)
    bank.clock.advance(minutes=5)
    assert revocations.retry_revocations(bank.c) == 1  # the third is revoked now, so no longer listed
    (view,) = admin.pending_revocations(bank.c, _admin(bank))
    assert (view.plaid_item_id, view.institution_name, view.outcome, view.attempts, view.last_error) == (
        stuck, "Maple Credit Union", "pending", 2, "INSTITUTION_DOWN"
    )  # fmt: skip
    assert not any("token" in f.name for f in dataclasses.fields(view))
    assert token_of(bank, stuck) not in repr(view)
    for outsider in (bank.user("mallory"), uuid.uuid4()):
        with pytest.raises(PermissionDenied):
            admin.pending_revocations(bank.c, outsider)
