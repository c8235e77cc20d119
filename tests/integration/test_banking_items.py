"""A linked bank (a Plaid item) end to end against the demo bank: repair and new accounts through Link's update
mode, removal (revoked at Plaid first), and no other user seeing, repairing or removing it.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import pytest
from sqlalchemy import select

from models import (
    BankAccount,
    LedgerTransaction,
    PendingEdit,
    PlaidItem,
    PlaidRevocation,
    SyncJob,
    SyncStaged,
    TransactionChange,
)
from services import audit, banking, webhooks
from services.db import unit_of_work
from services.demo_bank.links import PASSWORD as BANK_PASSWORD
from services.demo_bank.links import link_accounts
from services.errors import FinsyncError, NotFound
from services.sync import edit_transaction, list_runs, sync_item
from services.sync_state import start_run
from tests.integration.banking_support import audit_events, count
from tests.integration.conftest_bank import Bank
from tests.integration.webhook_support import body_of, send


def test_repair_after_login_required_webhook_through_update_mode(bank: Bank) -> None:
    alice = bank.user()
    item = bank.link(alice)
    bank.demo.set_fault(bank.plaid_item_id(item.id), "login_required")  # the bank sends ITEM/ERROR to our URL
    assert [r.status_code for r in bank.deliver(1)] == [200]
    broken = banking.list_items(bank.c, alice)[0]
    assert broken.status == "login_required" and broken.needs_repair
    assert "sign in again" in broken.status_message
    update = banking.start_link(bank.c, alice, item_id=item.id)
    assert bank.demo.bank.link_sessions[update.link_token].item_id == bank.plaid_item_id(item.id)
    success = bank.link_login(update.link_token)
    fixed = banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=update.link_session_id
    )
    assert fixed.status == "ok" and not fixed.needs_repair
    # Plaid sends LOGIN_REPAIRED only for a repair made outside the app: this one the app learnt from Link itself.
    time.sleep(1.0)  # a webhook goes out on a thread of its own: time for one that should not
    assert [json.loads(body)["webhook_code"] for _, body in bank.sink.received] == ["ERROR"]
    assert audit_events(bank, "bank_repaired") == ["First Demo Bank"]
    assert count(bank, PlaidItem) == 1
    with unit_of_work(bank.c.engine) as session:  # the bot syncs it next, at once, past its login-required pause
        [job] = (
            session.execute(select(SyncJob).where(SyncJob.item_id == item.id, SyncJob.status == "queued"))
            .scalars()
            .all()
        )
        assert job.reason == "repair" and job.due_at <= bank.clock()


def test_repair_for_new_accounts_opens_link_with_account_selection(bank: Bank) -> None:
    """NEW_ACCOUNTS_AVAILABLE: update mode must let the user pick the new accounts; a login repair need not."""
    alice = bank.user()
    item = bank.link(alice)
    plain = banking.start_link(bank.c, alice, item_id=item.id)
    assert bank.demo.bank.link_sessions[plain.link_token].account_selection is False
    with unit_of_work(bank.c.engine) as session:
        row = session.get(PlaidItem, item.id)
        assert row is not None
        row.status, row.status_code = "new_accounts_available", "NEW_ACCOUNTS_AVAILABLE"
        session.add(row)
    assert "new accounts" in banking.list_items(bank.c, alice)[0].status_message
    update = banking.start_link(bank.c, alice, item_id=item.id)
    session_at_bank = bank.demo.bank.link_sessions[update.link_token]
    assert session_at_bank.account_selection is True
    assert session_at_bank.item_id == bank.plaid_item_id(item.id)


def test_a_new_account_at_the_bank_is_added_through_update_mode_with_account_selection(bank: Bank) -> None:
    """NEW_ACCOUNTS_AVAILABLE end to end: webhook, the card asks, update mode lets the user pick it, sync adds it."""
    from services.sync import sync_item

    alice = bank.user()
    item = bank.link(alice)
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    bank.demo.set_fault(bank.plaid_item_id(item.id), "new_accounts")  # the bank opened a savings goal account
    assert [r.outcome for r in bank.deliver(1)] == ["status new_accounts_available"]
    flagged = banking.list_items(bank.c, alice)[0]
    assert flagged.needs_repair and "new accounts" in flagged.status_message
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"  # not shared yet: syncing adds nothing
    assert len(banking.list_items(bank.c, alice)[0].accounts) == 3

    update = banking.start_link(bank.c, alice, item_id=item.id)
    success = bank.link_login(update.link_token)
    assert "Holiday Savings" in [a["name"] for a in success["accounts"]]
    fixed = banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=update.link_session_id
    )
    assert fixed.status == "ok" and not fixed.needs_repair
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    names = sorted(a.name for a in banking.list_items(bank.c, alice)[0].accounts)
    assert names == ["Everyday Checking", "Holiday Savings", "Rainy Day Savings", "Rewards Card"]


def test_a_new_account_the_user_leaves_unticked_is_not_shared_and_not_asked_about_again(bank: Bank) -> None:
    from services.sync import sync_item

    alice = bank.user()
    item = bank.link(alice)
    pid = bank.plaid_item_id(item.id)
    bank.demo.set_fault(pid, "new_accounts")
    assert [r.outcome for r in bank.deliver(1)] == ["status new_accounts_available"]
    update = banking.start_link(bank.c, alice, item_id=item.id)
    picker = link_accounts(bank.demo.bank, update.link_token, "ins_demo_1", "user_good", BANK_PASSWORD)
    assert [a["name"] for a in picker["accounts"]] == ["Holiday Savings"]  # only the account opened since
    success = bank.link_login(update.link_token, account_keys=[])  # unticked: declined
    fixed = banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=update.link_session_id
    )
    assert fixed.status == "ok" and not fixed.needs_repair
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    assert "Holiday Savings" not in [a.name for a in banking.list_items(bank.c, alice)[0].accounts]
    assert bank.demo.bank.items[pid].offered == []  # answered: the bank does not ask again


def test_complete_repair_keeps_the_item_flagged_while_the_bank_still_wants_a_login(bank: Bank) -> None:
    alice = bank.user()
    item = bank.link(alice)
    bank.demo.set_fault(bank.plaid_item_id(item.id), "login_required")
    still = banking.complete_repair(bank.c, alice, item.id)
    assert still.status == "login_required" and still.needs_repair
    bank.demo.repair(bank.plaid_item_id(item.id))
    assert not banking.complete_repair(bank.c, alice, item.id).needs_repair


@pytest.mark.parametrize(
    ("code", "told"), [("ITEM_LOCKED", "locked"), ("PASSWORD_RESET_REQUIRED", "reset your password")]
)
def test_complete_repair_keeps_the_item_to_repair_when_the_bank_still_wants_something_else_of_its_owner(
    bank: Bank, monkeypatch: pytest.MonkeyPatch, code: str, told: str
) -> None:
    """Update mode finished but the bank still reports a locked login (or a password to reset there): the card must
    keep saying what to do and keep its "Repair connection", not turn into an "error" that the Accounts page greets
    with "is connected again" and that offers no repair."""
    alice = bank.user()
    item = bank.link(alice)
    gw = bank.c.plaid
    assert gw is not None
    real = gw.item_get
    monkeypatch.setattr(gw, "item_get", lambda token: dataclasses.replace(real(token), error_code=code))
    still = banking.complete_repair(bank.c, alice, item.id)
    assert (still.status, still.status_code) == ("login_required", code) and still.needs_repair
    assert told in still.status_message and "Repair connection" in still.status_message, still.status_message


@pytest.mark.parametrize("keep_history", [True, False])
def test_remove_revokes_at_plaid_then_deletes_keeping_history_on_request(bank: Bank, keep_history: bool) -> None:
    alice = bank.user()
    item = bank.link(alice)
    at_bank = bank.plaid_item_id(item.id)
    synced = sync_item(bank.c, alice, item.id, explicit=True)
    with unit_of_work(bank.c.engine) as session:  # and one under way (a process that died mid-sync, say) ...
        row = session.get(PlaidItem, item.id)
        assert row is not None
        dying = start_run(session, row, "worker-1", "schedule", bank.clock.now)
        # ... with a page it fetched staged: the staging table has no user id for a cascade to follow
        session.add(SyncStaged(run_id=dying.id, seq=1, kind=0, plaid_transaction_id="t-1", name="PHARMACY #42"))
    banking.remove_item(bank.c, alice, item.id, keep_history=keep_history)
    assert banking.list_items(bank.c, alice) == []
    assert bank.demo.bank.items[at_bank].removed
    with unit_of_work(bank.c.engine) as session:
        accounts = list(session.execute(select(BankAccount)).scalars())
        assert list(session.execute(select(SyncStaged)).scalars()) == []  # its data went with the bank
    runs = [(r.run_id, r.item_id, r.institution_name, r.status) for r in list_runs(bank.c, alice)]
    if keep_history:
        assert len(accounts) == 3
        assert all(a.item_id is None and a.disconnected_at == bank.clock.now for a in accounts)
        assert runs == [(synced.run_id, None, "First Demo Bank", "ok")]  # the finished run stays in Sync history
    else:
        assert accounts == [] and runs == []
    assert len(audit_events(bank, "bank_removed")) == 1


def test_plaid_refusing_removal_is_reported_and_the_item_kept(bank: Bank) -> None:
    alice = bank.user()
    item = bank.link(alice)
    at_bank = bank.plaid_item_id(item.id)
    bank.demo.set_fault(at_bank, "server_error", endpoint="/item/remove")
    with pytest.raises(FinsyncError, match=r"did not confirm disconnecting First Demo Bank.*still linked"):
        banking.remove_item(bank.c, alice, item.id, keep_history=False)
    assert [i.id for i in banking.list_items(bank.c, alice)] == [item.id]
    assert not bank.demo.bank.items[at_bank].removed
    banking.remove_item(bank.c, alice, item.id, keep_history=False)
    assert banking.list_items(bank.c, alice) == []


def test_removing_a_bank_whose_access_was_withdrawn_succeeds_without_a_retry_queued(bank: Bank) -> None:
    """Plaid answers /item/remove with ITEM_NOT_FOUND once the user withdrew access: nothing is left to revoke, so the
    connection goes at once instead of being reported as refused or queued for retries that can never succeed."""
    alice = bank.user()
    item = bank.link(alice)
    bank.demo.set_fault(bank.plaid_item_id(item.id), "permission_revoked")
    banking.remove_item(bank.c, alice, item.id, keep_history=False)
    assert banking.list_items(bank.c, alice) == [] and count(bank, BankAccount) == 0
    assert count(bank, PlaidRevocation) == 0
    assert len(audit_events(bank, "bank_removed")) == 1


def test_remove_all_items_deletes_everything_and_queues_what_plaid_did_not_confirm(bank: Bank) -> None:
    alice = bank.user()
    ok, stuck = bank.link(alice, "ins_demo_1"), bank.link(alice, "ins_demo_2")
    bank.demo.set_fault(bank.plaid_item_id(stuck.id), "server_error", endpoint="/item/remove")
    banking.remove_all_items(bank.c, alice)
    assert banking.list_items(bank.c, alice) == [] and count(bank, BankAccount) == 0
    details = audit_events(bank, "bank_removed")
    assert len(details) == 2 and sum("(INTERNAL_SERVER_ERROR), queued for retry" in d for d in details) == 1
    assert count(bank, PlaidRevocation) == 1 and ok.id != stuck.id  # retried by tests/integration/test_revocations.py


def test_another_user_cannot_see_remove_repair_or_use_an_item(bank: Bank) -> None:
    alice, bob = bank.user("alice"), bank.user("bob")
    item = bank.link(alice)
    start = banking.start_link(bank.c, alice)
    assert banking.list_items(bank.c, bob) == []
    said: list[str] = []
    for attempt in (
        lambda: banking.remove_item(bank.c, bob, item.id, keep_history=False),
        lambda: banking.start_link(bank.c, bob, item_id=item.id),
        lambda: banking.complete_repair(bank.c, bob, item.id),
        lambda: banking.get_access_token(bank.c, bob, item.id),
        lambda: banking.complete_link(
            bank.c, bob, public_token="public-x", metadata={}, link_session_id=start.link_session_id
        ),
        lambda: banking.remove_item(bank.c, alice, uuid.uuid4(), keep_history=False),
    ):
        with pytest.raises(NotFound) as refused:
            attempt()
        said.append(str(refused.value))
    assert [i.id for i in banking.list_items(bank.c, alice)] == [item.id]
    assert said[0] == said[-1]  # someone else's item is said to be missing, in the same words as a missing one
    # ...but unlike a missing one, it is an authorisation failure in the audit log (bar F2, ASVS 16.3.2)
    denied = [e.detail for e in audit.list_events(bank.c, bob) if e.event == "access_denied"]
    assert sorted(denied) == sorted(
        [f"bank connection {item.id}"] * 4 + [f"bank linking session {start.link_session_id}"]
    )
    assert "access_denied" not in [e.event for e in audit.list_events(bank.c, alice)]


def test_an_account_the_user_stops_sharing_keeps_its_history_and_can_be_shared_again(bank: Bank) -> None:
    """Unticked in Link (at an OAuth bank every repair asks again): the bank stops listing the account. Its history
    stays, the card says its balance is from then, and update mode with account selection shares it again, after
    which the ledger is the bank's again, removals made meanwhile included."""
    from services.sync import sync_item
    from tests.integration.sync_helpers import ledger, truth

    alice = bank.user()
    item = bank.link(alice)
    pid = bank.plaid_item_id(item.id)
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    demo = bank.demo.bank.items[pid]
    savings = demo.accounts["savings"]
    kept = {tid: row for tid, row in truth(bank.demo, pid).items() if row[0] == savings}
    assert kept
    with bank.demo.bank.lock:
        demo.hidden.append("savings")  # the user unticked it
    bank.clock.advance(hours=1)
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    card = banking.list_items(bank.c, alice)[0]
    unshared = [a for a in card.accounts if a.unshared_since is not None]
    assert [a.name for a in unshared] == ["Rainy Day Savings"] and unshared[0].unshared_since == bank.clock()
    assert unshared[0].balance_updated_at is not None and unshared[0].balance_updated_at < bank.clock()
    assert ledger(bank.c, alice) == truth(bank.demo, pid) | kept  # its history is kept, nothing else changed

    gone = sorted(kept)[0]
    bank.demo.mutate(pid, "remove", transaction_id=gone)  # the bank drops one of its transactions meanwhile
    bank.demo.mutate(pid, "add", account="savings", cents=-2500, name="INTEREST PAID")
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    assert gone in ledger(bank.c, alice)  # not shared: the bank tells nothing about it

    update = banking.start_link(bank.c, alice, item_id=item.id)
    assert bank.demo.bank.link_sessions[update.link_token].account_selection is True  # the picker, to tick it again
    picker = link_accounts(bank.demo.bank, update.link_token, "ins_demo_1", "user_good", BANK_PASSWORD)
    assert [a["name"] for a in picker["accounts"]] == ["Rainy Day Savings"]
    success = bank.link_login(update.link_token, account_keys=["savings"])
    fixed = banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=update.link_session_id
    )
    assert fixed.status == "ok" and all(a.unshared_since is None for a in fixed.accounts)
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    mine = ledger(bank.c, alice)
    assert mine == truth(bank.demo, pid) and gone not in mine  # shared again: exactly the bank's, once each
    assert "INTEREST PAID" in [row[3] for row in mine.values()]
    assert not bank.demo.bank.link_sessions[
        banking.start_link(bank.c, alice, item_id=item.id).link_token
    ].account_selection


def test_with_two_banks_each_account_says_which_bank_it_is_at(bank: Bank) -> None:
    """Every bank has its "Rewards Card": the ledger's account names tell them apart once there are two banks."""
    from services import ledger

    alice = bank.user()
    first = bank.link(alice)
    assert set(ledger.account_names(bank.c, alice).values()) == {
        f"{a.name} ••{a.mask}" for a in first.accounts
    }  # one bank: no need to say which
    second = bank.link(alice, "ins_demo_2")
    names = ledger.account_names(bank.c, alice)
    cards = sorted(n for n in names.values() if n.startswith("Rewards Card"))
    assert len(cards) == 2 and {c[c.index("(") :] for c in cards} == {"(First Demo Bank)", "(Maple Credit Union)"}
    assert names[second.accounts[0].id].endswith("(Maple Credit Union)")


def test_a_repair_whose_account_list_does_not_come_leaves_every_account_shared(bank: Bank) -> None:
    """Plaid busy at the moment of the repair: no list of accounts is not a list of no accounts."""
    alice = bank.user()
    item = bank.link(alice)
    pid = bank.plaid_item_id(item.id)
    bank.demo.set_fault(pid, "login_required")
    update = banking.start_link(bank.c, alice, item_id=item.id)
    success = bank.link_login(update.link_token)
    bank.demo.set_fault(pid, "rate_limit", times=5, endpoint="/accounts/get")
    fixed = banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=update.link_session_id
    )
    assert fixed.status == "ok" and len(fixed.accounts) == 3
    assert all(a.unshared_since is None for a in fixed.accounts)


def test_an_account_only_transactions_name_is_not_said_to_be_unshared(bank: Bank) -> None:
    """The bank names an account in transactions but never lists it: it is shared (its transactions come)."""
    from services.sync import sync_item

    alice = bank.user()
    item = bank.link(alice)
    pid = bank.plaid_item_id(item.id)
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    demo = bank.demo.bank.items[pid]
    unlisted = "acct-not-listed-000000000000000000000"
    with bank.demo.bank.lock:
        for book in (demo.ledger.posted, demo.ledger.pending, demo.ledger.opening):
            book[unlisted] = 0
    bank.demo.mutate(pid, "add", account=unlisted, cents=1200, name="MYSTERY")
    for _ in range(2):  # the sync that meets it, and the one after
        bank.clock.advance(hours=1)
        assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    card = banking.list_items(bank.c, alice)[0]
    assert len(card.accounts) == 4 and all(a.unshared_since is None for a in card.accounts)


def _dropped_hold_with_a_note(bank: Bank, user_id: uuid.UUID, item_id: uuid.UUID, note: str) -> str:
    """A charge the bank renamed and a hold it dropped after the user wrote a note on it; returns the charge's id."""
    pid = bank.plaid_item_id(item_id)
    posted = bank.demo.mutate(pid, "add", cents=4200, name="PHARMACY")["transaction_id"]
    hold = bank.demo.mutate(pid, "add", cents=9900, name="HOTEL HOLD", pending=True)["transaction_id"]
    assert sync_item(bank.c, user_id, item_id, explicit=True).status == "ok"
    edit_transaction(bank.c, user_id, hold, note=note)
    bank.demo.mutate(pid, "modify", transaction_id=posted, name="PHARMACY #22 (CLINIC)")
    bank.demo.mutate(pid, "remove", transaction_id=hold)
    assert sync_item(bank.c, user_id, item_id, explicit=True).status == "ok"
    return posted


@pytest.mark.parametrize("keep_history", [True, False])
def test_removing_a_bank_deletes_its_notes_on_dropped_holds_and_the_changes_of_what_it_deletes(
    bank: Bank, keep_history: bool
) -> None:
    """The user's note on a hold the bank dropped (kept in case it posts) and Plaid's old names of the transactions
    deleted with the bank go with it; the kept history keeps its changes, and the other bank keeps its own note."""
    alice = bank.user()
    first, other = bank.link(alice, "ins_demo_1"), bank.link(alice, "ins_demo_2")
    renamed = _dropped_hold_with_a_note(bank, alice, first.id, "medical trip")
    _dropped_hold_with_a_note(bank, alice, other.id, "the other bank's hold")

    banking.remove_item(bank.c, alice, first.id, keep_history=keep_history)
    with unit_of_work(bank.c.engine) as session:
        notes = list(session.execute(select(PendingEdit.note)).scalars())
        names = list(session.execute(select(TransactionChange.new_value)).scalars())
        shown = session.get(LedgerTransaction, renamed)
    assert notes == ["the other bank's hold"]
    if keep_history:
        assert shown is not None and names.count("PHARMACY #22 (CLINIC)") == 2  # a kept row still shows its change
    else:
        assert shown is None and names == ["PHARMACY #22 (CLINIC)"]  # only the other bank's


def test_new_accounts_announced_before_the_login_broke_are_offered_by_the_repair(bank: Bank) -> None:
    """NEW_ACCOUNTS_AVAILABLE, then the login breaks before the user acts: the card asks to sign in again (the worse
    news), and that repair must still let them pick the new account. Plaid sends NEW_ACCOUNTS_AVAILABLE once, so a
    repair without the picker would leave the account out for good, with no button left to add it."""
    alice = bank.user()
    item = bank.link(alice)
    pid = bank.plaid_item_id(item.id)
    bank.demo.set_fault(pid, "new_accounts")  # the bank opened a savings account
    assert [r.outcome for r in bank.deliver(1)] == ["status new_accounts_available"]
    bank.demo.set_fault(pid, "login_required")
    headers, body = bank.sink.wait(2)[1]
    assert webhooks.handle_webhook(bank.c, body=body, headers=headers).outcome == "status login_required"
    assert "sign in again" in banking.list_items(bank.c, alice)[0].status_message

    update = banking.start_link(bank.c, alice, item_id=item.id)
    picker = link_accounts(bank.demo.bank, update.link_token, "ins_demo_1", "user_good", BANK_PASSWORD)
    assert [a["name"] for a in picker["accounts"]] == ["Holiday Savings"]
    success = bank.link_login(update.link_token)
    fixed = banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=update.link_session_id
    )
    assert fixed.status == "ok" and not fixed.needs_repair
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    assert "Holiday Savings" in [a.name for a in banking.list_items(bank.c, alice)[0].accounts]
    # Answered: the next plain repair shows no picker again.
    plain = banking.start_link(bank.c, alice, item_id=item.id)
    assert bank.demo.bank.link_sessions[plain.link_token].account_selection is False


def test_a_login_repaired_elsewhere_still_leaves_the_new_accounts_question_open(bank: Bank) -> None:
    """The same, repaired outside finsync (LOGIN_REPAIRED) or found working by a sync: the card goes back to asking
    about the new accounts, with its Repair button, instead of "Connected" and no way to add them."""
    alice = bank.user()
    item = bank.link(alice)
    pid = bank.plaid_item_id(item.id)
    bank.demo.set_fault(pid, "new_accounts")
    assert [r.outcome for r in bank.deliver(1)] == ["status new_accounts_available"]
    bank.demo.set_fault(pid, "login_required")
    bank.demo.repair(pid)  # signed in again at another app on the same login: Plaid sends LOGIN_REPAIRED
    sent = {json.loads(body)["webhook_code"]: (headers, body) for headers, body in bank.sink.wait(3)[1:3]}
    for code in ("ERROR", "LOGIN_REPAIRED"):  # in the order the bank sent them (each on a thread of its own)
        headers, body = sent[code]
        assert webhooks.handle_webhook(bank.c, body=body, headers=headers).status_code == 200
    card = banking.list_items(bank.c, alice)[0]
    assert card.status == "new_accounts_available" and card.needs_repair
    assert "new accounts" in card.status_message
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    assert banking.list_items(bank.c, alice)[0].status == "new_accounts_available"
    update = banking.start_link(bank.c, alice, item_id=item.id)
    assert bank.demo.bank.link_sessions[update.link_token].account_selection is True


def test_access_revoked_at_the_bank_is_not_taken_for_new_accounts_to_pick(bank: Bank) -> None:
    """USER_PERMISSION_REVOKED says nothing of new accounts: a Link opened on that connection afterwards (to restore
    it in update mode) must not put an account picker in front of the person as if the bank had announced some."""
    alice = bank.user()
    item = bank.link(alice)
    revoked = body_of({"webhook_type": "ITEM", "webhook_code": "USER_PERMISSION_REVOKED",
                       "item_id": bank.plaid_item_id(item.id)})  # fmt: skip
    answer = send(bank, revoked, bank.demo.sign_webhook(revoked))
    assert answer.outcome == "status permission_revoked"
    update = banking.start_link(bank.c, alice, item_id=item.id)
    assert bank.demo.bank.link_sessions[update.link_token].account_selection is False
