"""Linking banks end to end: the real plaid-python SDK over HTTP against the demo bank, on both databases."""

from __future__ import annotations

import dataclasses
import threading
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlmodel import SQLModel, col

from models import AuditEvent, BankAccount, LinkSession, PlaidApiEvent, PlaidItem, PlaidRevocation
from services import audit, banking
from services.container import build_container
from services.db import unit_of_work
from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET, INSTITUTIONS
from services.demo_bank.links import PASSWORD as BANK_PASSWORD
from services.demo_bank.links import link_accounts
from services.errors import (
    DecryptionError,
    DuplicateConnection,
    FinsyncError,
    InputError,
    NotFound,
    PermissionDenied,
)
from services.plaid_client import PlaidGateway
from services.plaid_errors import PlaidError
from services.plaid_events import calls_for
from tests.integration.conftest_bank import Bank


def count(bank: Bank, model: type[SQLModel]) -> int:
    with unit_of_work(bank.c.engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def audit_events(bank: Bank, event: str) -> list[str]:
    with unit_of_work(bank.c.engine) as session:
        rows = session.execute(select(AuditEvent).where(col(AuditEvent.event) == event)).scalars()
        return [r.detail for r in rows]


def dump(bank: Bank) -> str:
    """Every value of every table, as text (bytes both raw and hex), to search for secrets."""
    parts: list[str] = []
    with bank.c.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        raw = bytes(value)
                        parts += [raw.decode("latin-1"), raw.hex()]
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def pending_item(bank: Bank, public_token: str) -> str:
    """The demo bank's item behind a public token that was not exchanged yet."""
    return bank.demo.bank.public_tokens[public_token][0]


def test_link_two_institutions_with_accounts_and_balances(bank: Bank) -> None:
    alice = bank.user()
    start = banking.start_link(bank.c, alice)
    assert start.script_url == f"{bank.demo.url}/link/link-initialize.js"
    at_bank = bank.demo.bank.link_sessions[start.link_token]
    assert at_bank.client_user_id == str(alice)  # an opaque id, never the email
    assert at_bank.webhook == f"{bank.c.settings.base_url}/webhooks/plaid"
    assert start.link_token not in repr(start)
    success = bank.link_login(start.link_token, "ins_demo_1")
    first = banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
    )
    second = bank.link(alice, "ins_demo_2")
    items = banking.list_items(bank.c, alice)
    assert [i.id for i in items] == [first.id, second.id]
    assert [i.institution_name for i in items] == [INSTITUTIONS["ins_demo_1"].name, INSTITUTIONS["ins_demo_2"].name]
    for item in items:
        assert item.status == "ok" and not item.needs_repair and item.status_message == "Connected."
        assert len(item.accounts) == 3
        assert all(isinstance(a.current_minor, int) and a.mask and a.currency == "USD" for a in item.accounts)
    assert banking.resume_link(bank.c, alice) is None  # the finished session is not offered again
    assert audit_events(bank, "bank_linked") == [items[0].institution_name, items[1].institution_name]


def test_resume_link_returns_the_newest_open_session_of_this_user_for_four_hours(bank: Bank) -> None:
    alice, bob = bank.user("alice"), bank.user("bob")
    banking.start_link(bank.c, alice)
    bank.clock.advance(minutes=1)
    newest = banking.start_link(bank.c, alice)
    resumed = banking.resume_link(bank.c, alice)
    assert resumed is not None and resumed.link_session_id == newest.link_session_id
    assert resumed.link_token == newest.link_token
    assert banking.resume_link(bank.c, bob) is None
    bank.clock.advance(hours=4, minutes=1)
    assert banking.resume_link(bank.c, alice) is None


def test_same_bank_linked_twice_is_refused_and_the_extra_connection_removed_at_plaid(bank: Bank) -> None:
    alice = bank.user()
    bank.link(alice, "ins_demo_1")
    start = banking.start_link(bank.c, alice)
    success = bank.link_login(start.link_token, "ins_demo_1")
    extra = pending_item(bank, success["public_token"])
    with pytest.raises(DuplicateConnection, match=r"You already linked First Demo Bank with these accounts") as dup:
        banking.complete_link(
            bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
        )
    assert dup.value.item_id == banking.list_items(bank.c, alice)[0].id  # the one "Repair connection" is offered for
    assert bank.demo.bank.items[extra].removed
    assert count(bank, PlaidItem) == 1 and count(bank, BankAccount) == 3
    # A different login at the same bank (other accounts) is not a duplicate.
    bank.link(alice, "ins_demo_1", username="user_not_ready")
    assert count(bank, PlaidItem) == 2


def test_an_unverified_email_cannot_link(bank: Bank) -> None:
    carol = bank.user("carol", verified=False)
    with pytest.raises(PermissionDenied, match=r"Verify your email address before linking a bank."):
        banking.start_link(bank.c, carol)
    assert count(bank, LinkSession) == 0


@pytest.mark.parametrize("fault", ["server_error", "rate_limit"])
def test_plaid_failing_during_the_exchange_stores_nothing_and_a_retry_works(bank: Bank, fault: str) -> None:
    alice = bank.user()
    start = banking.start_link(bank.c, alice)
    success = bank.link_login(start.link_token)
    bank.demo.set_fault(
        pending_item(bank, success["public_token"]), fault, endpoint="/item/public_token/exchange", times=3
    )  # type: ignore[arg-type]
    with pytest.raises(FinsyncError, match="nothing was saved"):  # three tries, all refused
        banking.complete_link(
            bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
        )
    assert count(bank, PlaidItem) == 0 and count(bank, BankAccount) == 0
    assert audit_events(bank, "bank_link_failed")
    view = banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
    )
    assert len(view.accounts) == 3


@pytest.mark.parametrize("fault", ["server_error", "rate_limit"])
def test_one_refusal_during_the_exchange_is_retried_and_the_bank_is_linked(bank: Bank, fault: str) -> None:
    alice = bank.user()
    start = banking.start_link(bank.c, alice)
    success = bank.link_login(start.link_token)
    bank.demo.set_fault(pending_item(bank, success["public_token"]), fault, endpoint="/item/public_token/exchange")  # type: ignore[arg-type]
    view = banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
    )
    assert len(view.accounts) == 3 and not audit_events(bank, "bank_link_failed")


def test_linking_a_subset_of_a_linked_login_again_is_a_duplicate(bank: Bank) -> None:
    """Link's account select can share fewer accounts: one shared account is enough to be the same login."""
    alice = bank.user()
    bank.link(alice, "ins_demo_1")
    fewer = [a for a in banking.list_items(bank.c, alice)[0].accounts][:1]
    start = banking.start_link(bank.c, alice)
    success = bank.link_login(start.link_token, "ins_demo_1")
    accounts = [{"id": "x", "name": a.name, "mask": a.mask} for a in fewer]
    original = bank.c.plaid.accounts_get  # type: ignore[union-attr]

    def only_some(token: str):  # type: ignore[no-untyped-def]
        result = original(token)
        keep = {(a["mask"], a["name"]) for a in accounts}
        return dataclasses.replace(result, accounts=[a for a in result.accounts if (a.mask, a.name) in keep])

    bank.c.plaid.accounts_get = only_some  # type: ignore[union-attr,method-assign]
    with pytest.raises(DuplicateConnection):
        banking.complete_link(
            bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
        )
    assert count(bank, PlaidItem) == 1


def test_two_completions_of_the_same_login_at_once_store_one_item(bank: Bank) -> None:
    alice = bank.user()
    starts = [banking.start_link(bank.c, alice) for _ in range(2)]
    logins = [bank.link_login(s.link_token, "ins_demo_1") for s in starts]
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def complete(start: object, success: dict) -> None:  # type: ignore[type-arg]
        barrier.wait()
        try:
            outcomes.append(banking.complete_link(bank.c, alice, public_token=success["public_token"],
                                                  metadata=success, link_session_id=start.link_session_id))  # type: ignore[attr-defined]  # fmt: skip
        except FinsyncError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=complete, args=pair) for pair in zip(starts, logins, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(type(o).__name__ for o in outcomes) == ["DuplicateConnection", "ItemView"]
    assert count(bank, PlaidItem) == 1 and count(bank, BankAccount) == 3


def test_a_timeout_during_the_exchange_stores_nothing(bank: Bank, engine, db_url, tmp_path, mailer) -> None:  # type: ignore[no-untyped-def]
    slow = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, bank.demo.url, timeout=(1.0, 0.3))
    c = build_container(bank.c.settings, engine=engine, mailer=mailer, clock=bank.clock, plaid=slow)
    alice = bank.user()
    start = banking.start_link(c, alice)
    success = bank.link_login(start.link_token)
    bank.demo.set_fault(pending_item(bank, success["public_token"]), "delay", seconds=0.6)
    with pytest.raises(FinsyncError, match=r"nothing was saved.*NETWORK_ERROR"):
        banking.complete_link(
            c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
        )
    assert count(bank, PlaidItem) == 0 and count(bank, BankAccount) == 0


def test_accounts_failing_after_the_exchange_stores_nothing_and_removes_the_item_at_plaid(bank: Bank) -> None:
    alice = bank.user()
    start = banking.start_link(bank.c, alice)
    success = bank.link_login(start.link_token)
    at_bank = pending_item(bank, success["public_token"])
    bank.demo.set_fault(at_bank, "server_error", endpoint="/accounts/get")
    with pytest.raises(FinsyncError, match="nothing was saved"):
        banking.complete_link(
            bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
        )
    assert count(bank, PlaidItem) == 0 and count(bank, BankAccount) == 0
    assert bank.demo.bank.items[at_bank].removed


def test_a_public_token_used_twice_is_refused_clearly(bank: Bank) -> None:
    alice = bank.user()
    start = banking.start_link(bank.c, alice)
    success = bank.link_login(start.link_token)
    banking.complete_link(
        bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
    )
    with pytest.raises(InputError, match="already completed"):
        banking.complete_link(
            bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
        )
    again = banking.start_link(bank.c, alice)
    with pytest.raises(InputError, match="already used or has expired"):
        banking.complete_link(
            bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=again.link_session_id
        )
    assert count(bank, PlaidItem) == 1 and count(bank, BankAccount) == 3


def test_link_exit_with_an_error_is_recorded_and_explained(bank: Bank) -> None:
    alice, bob = bank.user("alice"), bank.user("bob")
    start = banking.start_link(bank.c, alice)
    with pytest.raises(NotFound):
        banking.link_exit(bank.c, bob, link_session_id=start.link_session_id, error=None)
    error = {"error_code": "INVALID_CREDENTIALS", "display_message": "<script>alert(1)</script>"}
    message = banking.link_exit(bank.c, alice, link_session_id=start.link_session_id, error=error)
    assert message == "Your bank did not accept that username or password. Try again."
    assert audit_events(bank, "bank_link_failed") == ["Link exit: INVALID_CREDENTIALS"]
    assert banking.resume_link(bank.c, alice) is None
    cancelled = banking.start_link(bank.c, alice)
    assert "cancelled" in banking.link_exit(bank.c, alice, link_session_id=cancelled.link_session_id, error=None)


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
    assert audit_events(bank, "bank_repaired") == ["First Demo Bank"]
    assert count(bank, PlaidItem) == 1
    with unit_of_work(bank.c.engine) as session:  # the bot syncs it next, past its login-required pause
        repaired = session.get(PlaidItem, item.id)
        assert repaired is not None and repaired.sync_requested_at is not None


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


def test_each_plaid_call_of_a_sync_is_logged_once_and_tagged_with_its_item(bank: Bank) -> None:
    from services.sync import sync_item

    alice = bank.user()
    item = bank.link(alice)
    result = sync_item(bank.c, alice, item.id)
    assert result.status == "ok" and result.pages >= 1
    with unit_of_work(bank.c.engine) as session:
        rows = (
            session.execute(select(PlaidApiEvent).where(col(PlaidApiEvent.endpoint) == "/transactions/sync"))
            .scalars()
            .all()
        )
        assert len(rows) == result.pages
        assert {(r.user_id, r.item_id) for r in rows} == {(alice, item.id)}
        assert all(r.request_id for r in rows)


def test_complete_repair_keeps_the_item_flagged_while_the_bank_still_wants_a_login(bank: Bank) -> None:
    alice = bank.user()
    item = bank.link(alice)
    bank.demo.set_fault(bank.plaid_item_id(item.id), "login_required")
    still = banking.complete_repair(bank.c, alice, item.id)
    assert still.status == "login_required" and still.needs_repair
    bank.demo.repair(bank.plaid_item_id(item.id))
    assert not banking.complete_repair(bank.c, alice, item.id).needs_repair


@pytest.mark.parametrize("keep_history", [True, False])
def test_remove_revokes_at_plaid_then_deletes_keeping_history_on_request(bank: Bank, keep_history: bool) -> None:
    alice = bank.user()
    item = bank.link(alice)
    at_bank = bank.plaid_item_id(item.id)
    banking.remove_item(bank.c, alice, item.id, keep_history=keep_history)
    assert banking.list_items(bank.c, alice) == []
    assert bank.demo.bank.items[at_bank].removed
    with unit_of_work(bank.c.engine) as session:
        accounts = list(session.execute(select(BankAccount)).scalars())
    if keep_history:
        assert len(accounts) == 3
        assert all(a.item_id is None and a.disconnected_at == bank.clock.now for a in accounts)
    else:
        assert accounts == []
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


def test_access_token_is_stored_encrypted_and_bound_to_its_row(bank: Bank) -> None:
    alice = bank.user()
    first, second = bank.link(alice, "ins_demo_1"), bank.link(alice, "ins_demo_2")
    token = banking.get_access_token(bank.c, alice, first.id)
    assert token.startswith("access-")
    link_token = banking.start_link(bank.c, alice).link_token
    everything = dump(bank)
    assert token not in everything and link_token not in everything
    with unit_of_work(bank.c.engine) as session:
        a, b = session.get(PlaidItem, first.id), session.get(PlaidItem, second.id)
        assert a is not None and b is not None
        b.access_token_enc = a.access_token_enc  # a ciphertext moved to another row
    with pytest.raises(DecryptionError, match="Remove it and link the bank again"):
        banking.get_access_token(bank.c, alice, second.id)
    broken = next(i for i in banking.list_items(bank.c, alice) if i.id == second.id)
    assert broken.status == "error" and "cannot be read" in broken.status_message


def test_an_item_handed_to_another_user_in_the_database_cannot_reach_the_bank(bank: Bank) -> None:
    """Bar H1/H2: the token is bound to its owner, so rewriting ``plaid_items.user_id`` (a write to the database,
    or a bug) gives the new owner an unreadable connection, never a working one to someone else's bank."""
    from services.sync import sync_item

    alice, mallory = bank.user("alice"), bank.user("mallory")
    item = bank.link(alice)
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    with unit_of_work(bank.c.engine) as session:
        calls_before = session.execute(select(func.count()).select_from(PlaidApiEvent)).scalar_one()
        row = session.get(PlaidItem, item.id)
        assert row is not None
        row.user_id = mallory
    with pytest.raises(DecryptionError, match="cannot be read"):
        banking.get_access_token(bank.c, mallory, item.id)
    result = sync_item(bank.c, mallory, item.id, explicit=True)
    assert (result.status, result.error_code) == ("failed", "TOKEN_UNREADABLE")
    with unit_of_work(bank.c.engine) as session:  # not one call reached the bank with alice's token
        assert session.execute(select(func.count()).select_from(PlaidApiEvent)).scalar_one() == calls_before
        row = session.get(PlaidItem, item.id)
        assert row is not None
        row.user_id = alice  # put back where it belongs, it opens again
    assert banking.get_access_token(bank.c, alice, item.id).startswith("access-")


def test_every_plaid_call_is_recorded_with_its_request_id_and_never_a_token(bank: Bank) -> None:
    alice = bank.user()
    item = bank.link(alice)
    token = banking.get_access_token(bank.c, alice, item.id)
    with unit_of_work(bank.c.engine) as session:
        events = list(session.execute(select(PlaidApiEvent).order_by(col(PlaidApiEvent.at))).scalars())
    by_endpoint = {e.endpoint: e for e in events}
    assert {"/link/token/create", "/item/public_token/exchange", "/accounts/get"} <= by_endpoint.keys()
    assert all(e.request_id and e.http_status == 200 and e.user_id == alice for e in events)
    assert by_endpoint["/accounts/get"].item_id == item.id
    assert by_endpoint["/item/public_token/exchange"].item_id == item.id
    assert token not in dump(bank)


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("rate_limit", "ACCOUNTS_BALANCE_GET_LIMIT", 429),
        ("institution_down", "INSTITUTION_DOWN", 400),
        ("server_error", "INTERNAL_SERVER_ERROR", 500),
    ],
)
def test_a_failed_plaid_call_is_recorded_with_its_error_code_status_and_duration_and_never_a_token(
    bank: Bank, fault: str, code: str, status: int
) -> None:
    alice = bank.user()
    item = bank.link(alice)
    token = banking.get_access_token(bank.c, alice, item.id)
    at_bank = bank.plaid_item_id(item.id)
    bank.demo.set_fault(at_bank, "delay", seconds=0.2)  # the bank answers, with an error, after 200 ms
    bank.demo.set_fault(at_bank, fault, endpoint="/accounts/balance/get")  # type: ignore[arg-type]
    with calls_for(alice, item.id), pytest.raises(PlaidError) as failed:
        bank.c.plaid.accounts_balance_get(token)  # type: ignore[union-attr]
    assert (failed.value.code, failed.value.http_status) == (code, status)
    with unit_of_work(bank.c.engine) as session:
        (event,) = session.execute(
            select(PlaidApiEvent).where(col(PlaidApiEvent.endpoint) == "/accounts/balance/get")
        ).scalars()
    assert (event.error_code, event.http_status, event.user_id, event.item_id) == (code, status, alice, item.id)
    assert event.request_id and event.request_id == failed.value.request_id
    assert event.duration_ms is not None and 200 <= event.duration_ms < 10_000
    assert token not in dump(bank)


def test_link_sessions_expire_after_four_hours(bank: Bank) -> None:
    alice = bank.user()
    start = banking.start_link(bank.c, alice)
    success = bank.link_login(start.link_token)
    bank.clock.advance(hours=4, seconds=1)
    with pytest.raises(InputError, match="expired"):
        banking.complete_link(
            bank.c, alice, public_token=success["public_token"], metadata=success, link_session_id=start.link_session_id
        )
    assert count(bank, PlaidItem) == 0
