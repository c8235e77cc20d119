"""The isolation recipes: how to call each user-scoped service function as alice with bob's ids, and what passing means."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlmodel import Session

from services import (
    account,
    admin,
    audit,
    banking,
    banking_store,
    credentials,
    export,
    jobs,
    kept_history,
    ledger,
    ledger_listing,
    mail_queue,
    notify,
    otp,
    registration,
    sessions,
    sync,
    sync_aside,
    sync_status,
    sync_store,
    sync_verify,
    throttle,
    tokens,
    totp,
)
from services.errors import FinsyncError, InputError
from services.notices import Mail
from services.plaid_types import ItemAccess
from services.sync_store import Sql
from tests.integration.auth_support import OTHER_PASSWORD
from tests.integration.isolation_world import BOB_THRESHOLD, World


# --- recipes ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """How to call one function as alice, and what passing means.

    ``refused``: must raise NotFound or PermissionDenied (bob's id reads as missing, or alice is no admin).
    ``audited``: the refusal must also leave an ``access_denied`` row for alice (and none when False).
    ``session``: the recipe takes ``(world, session)``; its unit of work is rolled back after bob is compared.
    ``expect``: a check of the result returning a problem, or None. ``allowed``: a FinsyncError it may raise.
    """

    call: Callable[..., Any]
    refused: bool = False
    audited: bool = False
    session: bool = False
    expect: Callable[[World, Any], str | None] | None = None
    allowed: type[FinsyncError] | None = None


def denied(call: Callable[..., Any], *, audited: bool = True, session: bool = False) -> Case:
    return Case(call, refused=True, audited=audited, session=session)


def own(call: Callable[..., Any], *, session: bool = False, **kw: Any) -> Case:
    return Case(call, session=session, **kw)


def is_none(_w: World, result: Any) -> str | None:
    return None if result is None else f"expected None, got {result!r}"


def bobs_move_kept(w: World, _result: Any) -> str | None:
    """Bob's pending email change is still his and still waiting (alice's own may come and go)."""
    waiting = account.pending_email_change(w.c, w.bob)
    return None if waiting is not None and waiting.new_email == "bob.moving@example.com" else f"bob's: {waiting!r}"


def empty(_w: World, result: Any) -> str | None:
    return None if not result else f"expected nothing, got {result!r}"


def alice_mail(w: World) -> Mail:
    return Mail("alice@example.com", "isolation", "a test message", "notification")


def sql(s: Session) -> Sql:
    return Sql(s.connection())


def export_file(w: World) -> tuple[int, str]:
    out = w.tmp / "alice.csv"
    return export.export_csv(w.c, w.alice, out), out.read_text()


def change_password(w: World) -> None:
    account.change_password(w.c, w.alice, current_password=w.password, new_password=OTHER_PASSWORD,
                            current_token=w.bob_token)  # fmt: skip
    w.password = OTHER_PASSWORD


def confirm_totp(w: World) -> list[str]:
    enrolment = totp.pending_enrolment(w.c, w.alice)
    assert enrolment is not None
    w.secret = enrolment.secret
    return totp.confirm_totp(w.c, w.alice, code=w.code() or "", password=w.password, current_token=w.bob_token)


def disable_totp(w: World) -> None:
    totp.disable_totp(w.c, w.alice, password=w.password, code=w.code() or "")
    w.secret = None


def store_like_bobs(w: World, s: Session) -> Any:
    access = ItemAccess("isolation-item", "access-isolation", "req-isolation")
    return banking_store.store_item(s, w.c.cipher, row_id=uuid.uuid4(), user_id=w.alice, access=access,
                                    institution=("ins_demo_3", "Harbor National"), accounts=w.bob_accounts,
                                    now=w.c.clock())  # fmt: skip


def new_link_at_bobs_session(w: World) -> Any:
    public = w.c.plaid.sandbox_public_token_create("ins_demo_3", username="user_good")
    return banking.link_public_token(w.c, w.alice, public, {}, link_session_id=w.bob_link)


NEWS = [notify.NewTransaction(date(2025, 3, 1), "Coffee", -450, "USD")]


def alices_last_change(w: World, result: Any) -> str | None:
    runs = sync_status.list_runs(w.c, w.alice, limit=1000)
    mine = max(r.finished_at for r in runs if r.status == "ok" and r.added + r.modified + r.removed)
    return None if result == mine else f"last change {result}, alice's own is {mine}"


# Run in this order: reads, then refusals, then alice's own writes, and last what ends alice's data.
CASES: dict[str, Case] = {
    # reads of alice's own data: nothing of bob's may come back
    "ledger_listing.list_transactions": own(lambda w: ledger_listing.list_transactions(w.c, w.alice, limit=10_000)),
    "ledger.account_names": own(lambda w: ledger.account_names(w.c, w.alice)),
    "sync_status.item_sync_status": own(lambda w: sync_status.item_sync_status(w.c, w.alice)),
    "sync_status.list_runs": own(lambda w: sync_status.list_runs(w.c, w.alice, limit=1000)),
    "sync_status.last_change": own(lambda w: sync_status.last_change(w.c, w.alice), expect=alices_last_change),
    "banking.list_items": own(lambda w: banking.list_items(w.c, w.alice)),
    "kept_history.kept_accounts": own(lambda w: kept_history.kept_accounts(w.c, w.alice)),
    "banking_link.resume_link": own(lambda w: banking.resume_link(w.c, w.alice), expect=is_none),
    "sync_aside.list_set_aside": own(lambda w: sync_aside.list_set_aside(w.c, w.alice)),
    "audit.list_events": own(lambda w: audit.list_events(w.c, w.alice, limit=1000)),
    "audit.last_at": own(
        lambda w, s: audit.last_at(s, user_id=w.alice, event="bank_linked", detail="Maple Credit Union"),
        session=True,
        expect=is_none,
    ),
    "export.rows": own(lambda w: list(export.rows(w.c, w.alice))),
    "export.export_csv": own(export_file),
    "export.export_bytes": own(lambda w: export.export_bytes(w.c, w.alice, password=w.password, code=w.code())),
    "notify.get_notification_prefs": own(
        lambda w: notify.get_notification_prefs(w.c, w.alice),
        expect=lambda w, r: "bob's preferences" if r.large_transaction_minor == BOB_THRESHOLD else None,
    ),
    "sessions.list_sessions": own(
        lambda w: sessions.list_sessions(w.c, w.alice, w.bob_token),
        expect=lambda w, r: "bob's token marks a session current" if any(x.current for x in r) else None,
    ),
    "sessions.find_id": own(lambda w, s: sessions.find_id(s, w.bob_token, w.alice), session=True, expect=is_none),
    "credentials.load_user": own(lambda w, s: credentials.load_user(s, w.alice), session=True),
    "banking_store.require_verified": own(lambda w, s: banking_store.require_verified(s, w.alice), session=True),
    "banking_store.find_duplicate": own(
        lambda w, s: banking_store.find_duplicate(s, w.alice, "ins_demo_2", w.bob_accounts),
        session=True,
        expect=is_none,
    ),
    "registration.require_verified": own(lambda w: registration.require_verified(w.c, w.alice)),
    "tokens.latest_live": own(
        lambda w, s: tokens.latest_live(s, w.alice, tokens.RESET, w.c.clock()), session=True, expect=is_none
    ),
    "tokens.latest_created": own(
        lambda w, s: tokens.latest_created(s, w.alice, tokens.RESET), session=True, expect=is_none
    ),
    "sync_store.load_existing": own(
        lambda w, s: sync_store.load_existing(sql(s), w.alice, [w.bob_tid]), session=True, expect=empty
    ),
    "ledger.forget_transactions": own(
        lambda w, s: ledger.forget_transactions(s, w.alice, [w.bob_tid]),
        session=True,
        expect=lambda w, r: None if r == 0 else f"deleted {r} of bob's transactions",
    ),
    "sync_store.load_tombstones": own(
        lambda w, s: sync_store.load_tombstones(sql(s), w.alice, [w.bob_tid]), session=True, expect=empty
    ),
    "sync_verify.compare": own(
        lambda w, s: sync_verify.compare(sql(s), w.alice, w.bob_item, uuid.uuid4()), session=True
    ),
    "throttle.account_key": own(lambda w: throttle.account_key(w.alice)),
    # bob's object ids: each must read as missing
    "ledger.get_transaction": denied(lambda w: ledger.get_transaction(w.c, w.alice, w.bob_tid)),
    "ledger.transaction_history": denied(lambda w: ledger.transaction_history(w.c, w.alice, w.bob_tid)),
    "ledger.edit_transaction": denied(
        lambda w: ledger.edit_transaction(w.c, w.alice, w.bob_tid, note="alice was here", excluded=True)
    ),
    "sessions.revoke_session": denied(lambda w: sessions.revoke_session(w.c, w.alice, w.bob_session)),
    "sync_engine.sync_item": denied(lambda w: sync.sync_item(w.c, w.alice, w.bob_item, explicit=True)),
    "sync_verify.verify_item": denied(lambda w: sync_verify.verify_item(w.c, w.alice, w.bob_item)),
    "banking_access.get_access_token": denied(lambda w: banking.get_access_token(w.c, w.alice, w.bob_item)),
    "banking_store.owned_item": denied(lambda w, s: banking_store.owned_item(s, w.alice, w.bob_item), session=True),
    "banking_store.owned_link": denied(
        lambda w, s: banking_store.owned_link(s, w.alice, w.bob_link, "unknown"), session=True
    ),
    "banking_link.start_link": denied(lambda w: banking.start_link(w.c, w.alice, item_id=w.bob_item)),
    "banking_link.complete_repair": denied(lambda w: banking.complete_repair(w.c, w.alice, w.bob_item)),
    "banking_link.complete_link": denied(
        lambda w: banking.complete_link(w.c, w.alice, public_token="public-x", metadata={}, link_session_id=w.bob_link)
    ),
    "banking_link.link_exit": denied(
        lambda w: banking.link_exit(w.c, w.alice, link_session_id=w.bob_link, error={"error_code": "X"})
    ),
    "banking_exchange.link_public_token": denied(new_link_at_bobs_session),
    "kept_history.delete_kept": denied(
        lambda w: kept_history.delete_kept(w.c, w.alice, [w.bob_kept_account], password=w.password, code=w.code())
    ),
    "banking.remove_item": denied(lambda w: banking.remove_item(w.c, w.alice, w.bob_item, keep_history=False)),
    "banking.remove_bank": denied(
        lambda w: banking.remove_bank(w.c, w.alice, w.bob_item, keep_history=False, password=w.password, code=w.code())
    ),
    # admin functions: alice is no admin
    "admin.list_users": denied(lambda w: admin.list_users(w.c, w.alice)),
    "admin.audit_log": denied(lambda w: admin.audit_log(w.c, w.alice)),
    "admin.outbox": denied(lambda w: admin.outbox(w.c, w.alice)),
    "admin.pending_revocations": denied(lambda w: admin.pending_revocations(w.c, w.alice)),
    "admin.waiting_mail": denied(lambda w: admin.waiting_mail(w.c, w.alice)),
    "admin.bot_health": denied(lambda w: admin.bot_health(w.c, w.alice)),
    "admin.unlock_user": denied(lambda w: admin.unlock_user(w.c, w.alice, w.bob)),
    "admin.force_sign_out": denied(lambda w: admin.force_sign_out(w.c, w.alice, w.bob)),
    "admin.set_disabled": denied(lambda w: admin.set_disabled(w.c, w.alice, w.bob, True)),
    # alice's own writes: bob's rows must not move
    "audit.record": own(lambda w, s: audit.record(s, event="bank_linked", user_id=w.alice), session=True),
    "banking_store.record": own(
        lambda w, s: banking_store.record(s, event="bank_linked", user_id=w.alice), session=True
    ),
    "banking_store.store_item": own(
        store_like_bobs, session=True, expect=lambda w, r: f"took {r[1]} of bob's kept accounts" if r[1] else None
    ),
    "mail_queue.enqueue": own(lambda w, s: mail_queue.enqueue(s, w.c, alice_mail(w), user_id=w.alice), session=True),
    "tokens.issue": own(lambda w, s: tokens.issue(s, w.alice, tokens.RESET, w.c.clock()), session=True),
    "tokens.revoke": own(
        lambda w, s: tokens.revoke(s, w.alice, (tokens.RESET, tokens.VERIFY), w.c.clock()), session=True
    ),
    "otp.new_recovery_codes": own(lambda w, s: otp.new_recovery_codes(s, w.alice), session=True),
    "otp.drop_recovery_codes": own(lambda w, s: otp.drop_recovery_codes(s, w.alice), session=True),
    "otp.codes_left": own(lambda w, s: otp.codes_left(s, w.alice), session=True),
    "sessions.revoke_all": own(lambda w, s: sessions.revoke_all(s, w.alice, w.c.clock()), session=True),
    "sync_store.forget_unedited_tombstones": own(
        lambda w, s: sync_store.forget_unedited_tombstones(sql(s), w.alice, w.c.clock() + timedelta(days=400)),
        session=True,
    ),
    "notify.set_notification_prefs": own(
        lambda w: notify.set_notification_prefs(w.c, w.alice, notify.NotificationSettings())
    ),
    "notify.queue_after_sync": own(
        lambda w, s: notify.queue_after_sync(
            s, w.c, w.alice, "First Demo Bank", (NEWS, 1, []), notify.NotificationSettings()
        ),
        session=True,
    ),
    "notify.read_prefs": own(
        lambda w, s: notify.read_prefs(s, w.alice, lock=True),
        session=True,
        expect=lambda w, r: "bob's preferences" if r.large_transaction_minor == BOB_THRESHOLD else None,
    ),
    "notify.queue_connection_alert": own(
        lambda w, s: notify.queue_connection_alert(s, w.c, w.alice, "First Demo Bank"), session=True
    ),
    "jobs.request_sync_on_sign_in": own(
        lambda w: (w.bank.clock.advance(hours=2), jobs.request_sync_on_sign_in(w.c, w.alice))[1]
    ),
    "registration.resend_verification": own(
        lambda w: registration.resend_verification(w.c, w.alice), allowed=InputError
    ),
    "credentials.confirm_identity": own(
        lambda w: credentials.confirm_identity(w.c, w.alice, action="export", password=w.password, code=w.code())
    ),
    "account.request_email_change": own(
        lambda w: account.request_email_change(w.c, w.alice, password=w.password, new_email="alice.new@example.com")
    ),
    "account.pending_email_change": own(lambda w: account.pending_email_change(w.c, w.alice), expect=bobs_move_kept),
    "account.cancel_email_change": own(lambda w: account.cancel_email_change(w.c, w.alice), expect=bobs_move_kept),
    "account.change_password": own(change_password),
    "sessions.revoke_other_sessions": own(lambda w: sessions.revoke_other_sessions(w.c, w.alice, w.bob_token)),
    "totp.start_totp_enrolment": own(lambda w: totp.start_totp_enrolment(w.c, w.alice)),
    "totp.pending_enrolment": own(lambda w: totp.pending_enrolment(w.c, w.alice)),
    "totp.recovery_codes_left": own(lambda w: totp.recovery_codes_left(w.c, w.alice)),
    "totp.confirm_totp": own(confirm_totp),
    "totp.regenerate_recovery_codes": own(
        lambda w: totp.regenerate_recovery_codes(w.c, w.alice, password=w.password, code=w.code() or "")
    ),
    "totp.disable_totp": own(disable_totp),
    "banking.remove_all_items": own(lambda w: banking.remove_all_items(w.c, w.alice)),
    "account.delete_account": own(lambda w: account.delete_account(w.c, w.alice, password=w.password, code=w.code())),
}
