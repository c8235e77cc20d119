"""The isolation tests' two-user world: alice (the caller), bob (the victim) with a synced bank, and bob's ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import BankAccount
from services import account, banking, ledger, ledger_listing, notify, sessions, sync
from services.db import unit_of_work
from services.plaid_types import Account
from tests.integration.auth_support import PASSWORD, code_at, make_user, sign_in
from tests.integration.conftest_bank import Bank

BOB_NOTE = "bob-private-note-7f3a"
BOB_THRESHOLD = 987_651


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
    bob_kept_account: uuid.UUID = field(default_factory=uuid.uuid4)  # one of bob's kept (detached) accounts
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
    bob_txns = ledger_listing.list_transactions(c, bob, limit=10_000)
    alice_names = {t.name for t in ledger_listing.list_transactions(c, alice, limit=10_000)}
    ledger.edit_transaction(c, bob, bob_txns[0].transaction_id, note=BOB_NOTE, tags=["bobtag"], category="BobCategory")
    notify.set_notification_prefs(c, bob, notify.NotificationSettings(False, BOB_THRESHOLD, 5, False))
    account.request_password_reset(c, email="bob@example.com")  # an open one-time token of bob's
    account.request_email_change(c, bob, password=PASSWORD, new_email="bob.moving@example.com")  # and a pending move
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
    w.bob_kept_account = next(a.id for a in rows if a.item_id is None)
    ids: list[Any] = [bob, bob_item, bob_kept, bob_session.id, bob_link.link_session_id, *w.bob_account_ids]
    ids += [a.plaid_account_id for a in rows]
    w.markers |= {str(i) for i in ids} | {i.hex for i in ids if isinstance(i, uuid.UUID)}
    w.markers |= {t.transaction_id for t in bob_txns} | {t.name for t in bob_txns if t.name not in alice_names}
    w.markers |= {BOB_NOTE, "bobtag", "BobCategory", "bob@example.com", "bob.moving@example.com"}
    w.markers |= {"Maple Credit Union", bob_link.link_token}
    return w
