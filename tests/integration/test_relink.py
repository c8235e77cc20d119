"""Removing a bank "keeping history" and linking the same login again continues the history, never doubles it."""

from __future__ import annotations

import uuid
from collections import Counter

from sqlalchemy import select
from sqlmodel import col

from models import AuditEvent, BankAccount, LedgerTransaction
from services import banking
from services.db import unit_of_work
from services.sync import edit_transaction, sync_item
from tests.integration.conftest_bank import Bank
from tests.integration.sync_helpers import truth


def _rows(bank: Bank, user_id: uuid.UUID) -> list[LedgerTransaction]:
    with unit_of_work(bank.c.engine) as session:
        rows = session.execute(select(LedgerTransaction).where(col(LedgerTransaction.user_id) == user_id)).scalars()
        return list(rows)


def _content(rows: list[LedgerTransaction]) -> Counter[tuple[object, ...]]:
    return Counter((r.date, r.amount_minor, r.name, r.pending) for r in rows)


def _accounts(bank: Bank, user_id: uuid.UUID) -> list[BankAccount]:
    with unit_of_work(bank.c.engine) as session:
        return list(session.execute(select(BankAccount).where(col(BankAccount.user_id) == user_id)).scalars())


def test_relinking_a_removed_bank_continues_its_kept_history_with_the_edits(bank: Bank) -> None:
    alice = bank.user()
    first = bank.link(alice)
    assert sync_item(bank.c, alice, first.id, explicit=True).status == "ok"
    before = _rows(bank, alice)
    posted = next(r for r in before if not r.pending)
    held = next((r for r in before if r.pending), None)
    edit_transaction(bank.c, alice, posted.plaid_transaction_id, category="Trips", note="kept note", excluded=True)
    if held is not None:
        edit_transaction(bank.c, alice, held.plaid_transaction_id, note="hold")

    banking.remove_item(bank.c, alice, first.id, keep_history=True)
    assert _content(_rows(bank, alice)) == _content(before)  # history kept, accounts detached

    second = bank.link(alice)  # the same login again: Plaid gives new account and transaction ids
    accounts = _accounts(bank, alice)
    assert len(accounts) == len(first.accounts)  # the kept accounts were taken back, not doubled
    assert {a.item_id for a in accounts} == {second.id}
    with unit_of_work(bank.c.engine) as session:
        linked = session.execute(select(AuditEvent.detail).where(col(AuditEvent.event) == "bank_linked")).scalars()
        assert f"continues the kept history of {len(accounts)} account(s)" in list(linked)[-1]

    result = sync_item(bank.c, alice, second.id, explicit=True)
    assert result.status == "ok"
    after = _rows(bank, alice)
    bank_now = truth(bank.demo, bank.plaid_item_id(second.id))
    assert {r.plaid_transaction_id for r in after} == set(bank_now)  # every kept row continued by a new one
    assert _content(after) == _content(before)  # nothing doubled, nothing lost
    assert result.added == 0  # nothing new to the user: no digest of old transactions
    same = [r for r in after if (r.date, r.amount_minor, r.name) == (posted.date, posted.amount_minor, posted.name)]
    assert [(r.category_override, r.note, r.excluded) for r in same] == [("Trips", "kept note", True)]
    assert same[0].plaid_transaction_id != posted.plaid_transaction_id
    if held is not None:
        assert [r.note for r in after if r.note == "hold"] == ["hold"]
    with unit_of_work(bank.c.engine) as session:  # done matching: later syncs skip the search
        assert all(a.relinked_at is None for a in session.execute(select(BankAccount)).scalars())


def test_another_login_at_the_same_bank_does_not_take_kept_history(bank: Bank) -> None:
    alice = bank.user()
    first = bank.link(alice)
    assert sync_item(bank.c, alice, first.id, explicit=True).status == "ok"
    kept = _rows(bank, alice)
    banking.remove_item(bank.c, alice, first.id, keep_history=True)

    other = bank.link(alice, username="user_not_ready")  # another login at the same bank: its own accounts
    accounts = _accounts(bank, alice)
    assert len([a for a in accounts if a.item_id is None]) == len(first.accounts)  # still kept, detached
    assert len([a for a in accounts if a.item_id == other.id]) == len(other.accounts)
    assert Counter(r.plaid_transaction_id for r in _rows(bank, alice)) == Counter(r.plaid_transaction_id for r in kept)
