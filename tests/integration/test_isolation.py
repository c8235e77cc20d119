"""Tenant isolation (security bar F1): every service function that takes a ``user_id`` is called as alice with bob's ids.

Functions are found by introspection (every public function of every ``services`` module with a ``user_id``
or ``actor_id`` parameter), so a new one fails ``test_every_user_scoped_function_is_covered`` until it gets a
recipe in ``CASES`` or a reason in ``EXEMPT``. One setup per database (two users, each with a synced demo
bank, sessions, a Link session, edits, preferences, two-factor) serves every recipe in turn; bob's rows are
snapshotted before and after each call, and the result (and any error message) is searched for bob's ids.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select
from sqlmodel import Session, SQLModel

import services
from models import AuditEvent, BankAccount, ThrottleCounter
from services import (
    account,
    admin,
    audit,
    banking,
    banking_store,
    credentials,
    export,
    jobs,
    ledger,
    mail_queue,
    notify,
    otp,
    registration,
    sessions,
    sync,
    sync_aside,
    sync_store,
    sync_verify,
    throttle,
    tokens,
    totp,
)
from services.db import unit_of_work
from services.errors import FinsyncError, InputError, NotFound, PermissionDenied
from services.mailer import MemoryMailer
from services.notices import Mail
from services.plaid_types import Account, ItemAccess
from services.sync_store import Sql
from tests.integration.auth_support import OTHER_PASSWORD, PASSWORD, code_at, fast_hashing, make_user, sign_in  # noqa: F401
from tests.integration.conftest_bank import Bank

pytestmark = pytest.mark.usefixtures("fast_hashing")
BOB_NOTE = "bob-private-note-7f3a"
BOB_THRESHOLD = 987_651


# --- discovery --------------------------------------------------------------------------------------------
def discovered() -> dict[str, Callable[..., Any]]:
    """Every public function defined (not imported) in a services module that takes ``user_id`` or ``actor_id``."""
    found: dict[str, Callable[..., Any]] = {}
    for info in pkgutil.walk_packages(services.__path__, "services."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            fn = inspect.unwrap(obj) if callable(obj) else None
            if name.startswith("_") or not inspect.isfunction(fn) or getattr(obj, "__module__", "") != module.__name__:
                continue
            if {"user_id", "actor_id"} & set(inspect.signature(fn).parameters):
                found[f"{info.name.removeprefix('services.')}.{name}"] = obj
    return found


# --- the two-user world -----------------------------------------------------------------------------------
@dataclass
class World:
    """Alice (the caller), bob (the victim) and bob's object ids."""

    bank: Bank
    tmp: Path
    alice: uuid.UUID
    bob: uuid.UUID
    alice_item: uuid.UUID
    bob_item: uuid.UUID
    bob_tid: str
    bob_token: str
    bob_session: uuid.UUID
    bob_link: uuid.UUID
    bob_accounts: list[Account]  # shaped like bob's accounts (active and kept), with fresh Plaid ids
    bob_items: list[uuid.UUID] = field(default_factory=list)
    bob_account_ids: list[uuid.UUID] = field(default_factory=list)
    markers: set[str] = field(default_factory=set)  # strings only bob's data contains
    password: str = PASSWORD
    secret: str | None = None  # alice's TOTP secret once enrolled

    @property
    def c(self) -> Any:
        return self.bank.c

    def code(self) -> str | None:
        """A fresh TOTP code for alice (the clock moves a step so it is never a replay), None without 2FA."""
        if self.secret is None:
            return None
        self.bank.clock.advance(seconds=30)
        return code_at(self.secret, self.bank.clock())


def build_world(bank: Bank, tmp: Path) -> World:
    c = bank.c
    alice, bob = make_user(c, "alice").id, make_user(c, "bob").id
    alice_item = bank.link(alice, "ins_demo_1").id
    bob_item = bank.link(bob, "ins_demo_2").id
    bob_kept = bank.link(bob, "ins_demo_3").id
    for user, item in ((alice, alice_item), (bob, bob_item), (bob, bob_kept)):
        assert sync.sync_item(c, user, item, explicit=True).status == "ok"
    banking.remove_item(c, bob, bob_kept, keep_history=True)  # bob now also has detached accounts and history
    bob_txns = ledger.list_transactions(c, bob, limit=10_000)
    alice_names = {t.name for t in ledger.list_transactions(c, alice, limit=10_000)}
    ledger.edit_transaction(c, bob, bob_txns[0].transaction_id, note=BOB_NOTE, tags=["bobtag"], category="BobCategory")
    notify.set_notification_prefs(c, bob, notify.NotificationSettings(False, BOB_THRESHOLD, 5, False))
    account.request_password_reset(c, email="bob@example.com")  # an open one-time token of bob's
    sign_in(c, "alice")
    bob_token = sign_in(c, "bob")
    (bob_session,) = sessions.list_sessions(c, bob, bob_token)
    bob_link = banking.start_link(c, bob)
    with unit_of_work(c.engine) as s:
        rows = list(s.execute(select(BankAccount).where(BankAccount.user_id == bob)).scalars())  # type: ignore[arg-type]
    # bob's accounts, active and kept, as a new link of alice's would bring them (fresh Plaid ids)
    bob_accounts = [Account(f"iso-{uuid.uuid4().hex}", a.name, None, a.mask, a.type, a.subtype,
                            None, None, None, a.iso_currency_code) for a in rows]  # fmt: skip
    assert any(a.item_id is None for a in rows) and bob_txns
    w = World(bank, tmp, alice, bob, alice_item, bob_item, bob_txns[0].transaction_id, bob_token, bob_session.id,
              bob_link.link_session_id, bob_accounts)  # fmt: skip
    w.bob_items, w.bob_account_ids = [bob_item, bob_kept], [a.id for a in rows]
    ids: list[Any] = [bob, bob_item, bob_kept, bob_session.id, bob_link.link_session_id, *w.bob_account_ids]
    ids += [a.plaid_account_id for a in rows]
    w.markers |= {str(i) for i in ids} | {i.hex for i in ids if isinstance(i, uuid.UUID)}
    w.markers |= {t.transaction_id for t in bob_txns} | {t.name for t in bob_txns if t.name not in alice_names}
    w.markers |= {BOB_NOTE, "bobtag", "BobCategory", "bob@example.com", "Maple Credit Union", bob_link.link_token}
    return w


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

# Run in this order: reads, then refusals, then alice's own writes, and last what ends alice's data.
CASES: dict[str, Case] = {
    # reads of alice's own data: nothing of bob's may come back
    "ledger.list_transactions": own(lambda w: ledger.list_transactions(w.c, w.alice, limit=10_000)),
    "ledger.account_names": own(lambda w: ledger.account_names(w.c, w.alice)),
    "ledger.item_sync_status": own(lambda w: ledger.item_sync_status(w.c, w.alice)),
    "ledger.list_runs": own(lambda w: ledger.list_runs(w.c, w.alice, limit=1000)),
    "ledger.last_success": own(lambda w: ledger.last_success(w.c, w.alice)),
    "banking.list_items": own(lambda w: banking.list_items(w.c, w.alice)),
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
    "tokens.latest_created": own(
        lambda w, s: tokens.latest_created(s, w.alice, tokens.RESET), session=True, expect=is_none
    ),
    "sync_store.load_existing": own(
        lambda w, s: sync_store.load_existing(sql(s), w.alice, [w.bob_tid]), session=True, expect=empty
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
    "sessions.revoke_all": own(lambda w, s: sessions.revoke_all(s, w.alice, w.c.clock()), session=True),
    "sync_store.forget_unedited_tombstones": own(
        lambda w, s: sync_store.forget_unedited_tombstones(sql(s), w.alice, w.c.clock() + timedelta(days=400)),
        session=True,
    ),
    "notify.set_notification_prefs": own(
        lambda w: notify.set_notification_prefs(w.c, w.alice, notify.NotificationSettings())
    ),
    "notify.after_sync": own(lambda w: notify.after_sync(w.c, w.alice, "First Demo Bank", NEWS, 1, [])),
    "notify.connection_needs_attention": own(
        lambda w: notify.connection_needs_attention(w.c, w.alice, "First Demo Bank")
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
    "account.change_password": own(change_password),
    "sessions.revoke_other_sessions": own(lambda w: sessions.revoke_other_sessions(w.c, w.alice, w.bob_token)),
    "totp.start_totp_enrolment": own(lambda w: totp.start_totp_enrolment(w.c, w.alice)),
    "totp.pending_enrolment": own(lambda w: totp.pending_enrolment(w.c, w.alice)),
    "totp.confirm_totp": own(confirm_totp),
    "totp.regenerate_recovery_codes": own(
        lambda w: totp.regenerate_recovery_codes(w.c, w.alice, password=w.password, code=w.code() or "")
    ),
    "totp.disable_totp": own(disable_totp),
    "banking.remove_all_items": own(lambda w: banking.remove_all_items(w.c, w.alice)),
    "account.delete_account": own(lambda w: account.delete_account(w.c, w.alice, password=w.password, code=w.code())),
}

EXEMPT: dict[str, str] = {
    "banking_store.encrypt_token": "pure: seals a token to the item and owner it is given; reads and writes no row",
    "plaid_events.calls_for": "context manager tagging Plaid call-log rows with ids its caller already checked; reads nothing",
    "sync_bulk.insert_new": "sync internals: user_id and item_id come from the PlaidItem row sync_item locked, never a caller",
    "sync_store.write_plan": "sync internals: user_id and item_id come from the PlaidItem row sync_item locked, never a caller",
}


# --- checks -----------------------------------------------------------------------------------------------
def bobs_rows(conn: Connection, w: World) -> dict[str, list[str]]:
    """Every row of bob's in every table that names a user, one of his items or accounts, or his throttle key."""
    out: dict[str, list[str]] = {}
    for table in SQLModel.metadata.sorted_tables:
        cols = table.c
        if table.name == "users":
            where = cols.id == w.bob
        elif "user_id" in cols:
            where = cols.user_id == w.bob
        elif "item_id" in cols:
            where = cols.item_id.in_(w.bob_items)
        elif "account_id" in cols:
            where = cols.account_id.in_(w.bob_account_ids)
        elif table.name == ThrottleCounter.__tablename__:
            where = cols.key == throttle.account_key(w.bob)
        else:
            continue
        out[table.name] = sorted(repr(tuple(r)) for r in conn.execute(select(table).where(where)))
    return out


def snapshot(w: World) -> dict[str, list[str]]:
    with w.c.engine.connect() as conn:
        return bobs_rows(conn, w)


def alice_denials(w: World) -> int:
    query = select(func.count()).where(AuditEvent.user_id == w.alice, AuditEvent.event == "access_denied")  # type: ignore[arg-type]
    with w.c.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def text_of(value: Any) -> str:
    """Everything a result says, bytes decoded (a CSV download), containers opened."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(text_of(k) + " " + text_of(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(text_of(v) for v in value)
    return repr(value)


class _Undo(Exception):
    """Rolls a session recipe back once bob's rows were read inside its transaction."""


def run(w: World, case: Case) -> tuple[Any, BaseException | None, dict[str, list[str]]]:
    """Call the recipe: (result, exception, bob's rows as the call left them)."""
    if not case.session:
        try:
            return case.call(w), None, snapshot(w)
        except Exception as exc:
            return None, exc, snapshot(w)
    try:
        with unit_of_work(w.c.engine) as s:
            result = case.call(w, s)
            after = bobs_rows(s.connection(), w)  # before the rollback: what the call wrote, uncommitted
            raise _Undo
    except _Undo:
        return result, None, after
    except Exception as exc:
        return None, exc, snapshot(w)


def problems_of(w: World, case: Case, mailer: MemoryMailer) -> list[str]:
    before, denials, to_bob = snapshot(w), alice_denials(w), len([m for m in mailer.sent if "bob" in str(m["To"])])
    result, exc, after = run(w, case)
    found = []
    if exc is not None and not isinstance(exc, FinsyncError):
        found.append(f"raised {type(exc).__name__}: {exc} (fix the recipe?)")
    elif case.refused and not isinstance(exc, NotFound | PermissionDenied):
        found.append(f"not refused: {'raised ' + type(exc).__name__ if exc else 'returned'} {exc or result!r:.300}")
    elif not case.refused and exc is not None and not (case.allowed and isinstance(exc, case.allowed)):
        found.append(f"failed for alice's own data: {type(exc).__name__}: {exc}")
    said = text_of(result) + " " + (str(exc) if exc else "")
    if leaked := sorted(m for m in w.markers if m and m in said):
        found.append(f"returned bob's data: {leaked[:5]}")
    if case.expect is not None and exc is None and (problem := case.expect(w, result)):
        found.append(problem)
    if changed := [t for t in before if before[t] != after.get(t)]:
        found.append(f"changed bob's rows in {changed}")
    if len([m for m in mailer.sent if "bob" in str(m["To"])]) != to_bob:
        found.append("mailed bob")
    audited = alice_denials(w) > denials
    if case.audited and not audited:
        found.append("refused without an access_denied audit row for alice")
    if audited and not case.audited:
        found.append("recorded access_denied: mark the case audited=True")
    return found


# --- tests ------------------------------------------------------------------------------------------------
def test_every_user_scoped_function_is_covered() -> None:
    names = set(discovered())
    assert len(names) > 50, sorted(names)  # discovery itself works
    missing = sorted(names - CASES.keys() - EXEMPT.keys())
    assert not missing, (
        f"new user-scoped service functions without an isolation case in CASES (or a reason in EXEMPT): {missing}"
    )
    assert not CASES.keys() & EXEMPT.keys(), sorted(CASES.keys() & EXEMPT.keys())
    stale = sorted((CASES.keys() | EXEMPT.keys()) - names)
    assert not stale, f"cases for functions that no longer exist or take no user_id: {stale}"


def test_alice_with_bobs_ids_gets_and_changes_nothing_of_bobs(bank: Bank, mailer: MemoryMailer, tmp_path: Path) -> None:
    w = build_world(bank, tmp_path)
    failures = [f"{name}: {p}" for name, case in CASES.items() for p in problems_of(w, case, mailer)]
    assert not failures, "alice reached bob's data or a case is wrong:\n" + "\n".join(failures)
