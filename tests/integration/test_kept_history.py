"""The history kept from a removed bank: listed with its last balance, and deleted (with proof) when unwanted."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from sqlalchemy import select
from sqlmodel import col

from models import AuditEvent, LedgerTransaction
from services import banking, kept_history
from services.db import unit_of_work
from services.errors import InputError, NotFound
from services.sync import list_runs, sync_item
from tests.factories import STRONG_PASSWORD
from tests.integration.conftest_bank import Bank


def _per_account(bank: Bank, user_id: uuid.UUID) -> Counter[uuid.UUID]:
    with unit_of_work(bank.c.engine) as session:
        rows = session.execute(
            select(LedgerTransaction.account_id).where(col(LedgerTransaction.user_id) == user_id)
        ).scalars()
        return Counter(rows)


def _runs(bank: Bank, user_id: uuid.UUID) -> dict[str, list[uuid.UUID | None]]:
    """The user's sync runs as Sync history lists them: per bank name, the item of each (None: a removed bank)."""
    out: dict[str, list[uuid.UUID | None]] = {}
    for run in list_runs(bank.c, user_id):
        out.setdefault(run.institution_name, []).append(run.item_id)
    return out


def test_a_removed_banks_kept_accounts_are_listed_and_one_can_be_deleted(bank: Bank) -> None:
    alice = bank.user()
    item = bank.link(alice)
    other = bank.link(alice, "ins_demo_2")
    for linked in (item, other):
        assert sync_item(bank.c, alice, linked.id, explicit=True).status == "ok"
    assert kept_history.kept_accounts(bank.c, alice) == []  # nothing removed yet
    banking.remove_item(bank.c, alice, item.id, keep_history=True, ip="203.0.113.5")

    kept = kept_history.kept_accounts(bank.c, alice)
    counts = _per_account(bank, alice)
    assert sorted(k.name for k in kept) == sorted(a.name for a in item.accounts)
    assert {k.institution_name for k in kept} == {item.institution_name}
    assert all(k.removed_at == bank.c.clock() and k.transactions == counts[k.id] for k in kept)
    assert {k.current_minor for k in kept} == {a.current_minor for a in item.accounts}  # the last balances
    assert all(k.first is not None and k.last is not None and k.first <= k.last for k in kept if k.transactions)

    doomed = max(kept, key=lambda k: k.transactions)
    with pytest.raises(InputError):
        kept_history.delete_kept(bank.c, alice, [doomed.id], password="not the password at all")
    assert _per_account(bank, alice) == counts  # a wrong password changes nothing
    with pytest.raises(NotFound):  # a linked account's history goes with its bank, not from here
        kept_history.delete_kept(bank.c, alice, [other.accounts[0].id], password=STRONG_PASSWORD)
    with pytest.raises(NotFound):  # nor along with a kept one: all or nothing, so the kept one stays too
        kept_history.delete_kept(bank.c, alice, [doomed.id, other.accounts[0].id], password=STRONG_PASSWORD)
    with pytest.raises(InputError, match="Choose the accounts"):
        kept_history.delete_kept(bank.c, alice, [], password=STRONG_PASSWORD)
    assert _per_account(bank, alice) == counts

    runs = _runs(bank, alice)
    assert runs == {item.institution_name: [None], other.institution_name: [other.id]}  # Sync history keeps both
    gone = kept_history.delete_kept(bank.c, alice, [doomed.id], password=STRONG_PASSWORD, ip="203.0.113.5")
    assert gone == counts[doomed.id] > 0
    assert _runs(bank, alice) == runs  # some of the bank's history is still kept: so are its syncs
    assert _per_account(bank, alice) == Counter({k: n for k, n in counts.items() if k != doomed.id})
    assert [k.id for k in kept_history.kept_accounts(bank.c, alice)] == [k.id for k in kept if k != doomed]
    with unit_of_work(bank.c.engine) as session:
        row = session.execute(select(AuditEvent).where(col(AuditEvent.event) == "kept_history_deleted")).scalar_one()
    assert row.user_id == alice and row.ip == "203.0.113.5" and f"{gone} transaction(s)" in row.detail
    with pytest.raises(NotFound):  # once is all
        kept_history.delete_kept(bank.c, alice, [doomed.id], password=STRONG_PASSWORD)


def test_a_removed_banks_whole_history_goes_in_one_deletion_and_never_with_someone_elses(bank: Bank) -> None:
    alice, bob = bank.user(), bank.user("bob")
    mine, theirs = bank.link(alice), bank.link(bob, "ins_demo_2")
    for owner, linked in ((alice, mine), (bob, theirs)):
        assert sync_item(bank.c, owner, linked.id, explicit=True).status == "ok"
        banking.remove_item(bank.c, owner, linked.id, keep_history=True)
    kept, bobs = kept_history.kept_accounts(bank.c, alice), kept_history.kept_accounts(bank.c, bob)
    before = _per_account(bank, alice), _per_account(bank, bob)
    assert len(kept) == len(mine.accounts) > 1 and bobs

    with pytest.raises(NotFound):  # one of bob's among alice's: refused as if it did not exist, and nothing goes
        kept_history.delete_kept(bank.c, alice, [kept[0].id, bobs[0].id], password=STRONG_PASSWORD)
    assert (_per_account(bank, alice), _per_account(bank, bob)) == before

    bobs_runs = _runs(bank, bob)
    assert _runs(bank, alice) == {mine.institution_name: [None]} and bobs_runs == {theirs.institution_name: [None]}
    gone = kept_history.delete_kept(bank.c, alice, [k.id for k in kept], password=STRONG_PASSWORD)
    assert gone == sum(before[0].values()) > 0
    assert _runs(bank, alice) == {} and _runs(bank, bob) == bobs_runs  # the bank's last kept account took its syncs
    assert kept_history.kept_accounts(bank.c, alice) == [] and _per_account(bank, alice) == Counter()
    assert _per_account(bank, bob) == before[1] and kept_history.kept_accounts(bank.c, bob) == bobs
    with unit_of_work(bank.c.engine) as session:
        rows = session.execute(select(AuditEvent).where(col(AuditEvent.event) == "kept_history_deleted")).scalars()
        assert sorted(r.detail.split(";")[0] for r in rows if r.user_id == alice) == sorted(k.label for k in kept)
