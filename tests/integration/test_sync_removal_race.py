"""A bank removed while its sync runs (another tab, an admin deleting the account): nothing comes back.

Faults catalogue, "Account deleted while sync runs": whether the removal lands while pages are being fetched
(Plaid revokes the token, the next page is refused) or just before the ledger is written (the item's lease row
is gone with it), the sync keeps nothing, and no item, account, transaction or sync state is resurrected.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
from sqlmodel import func, select

from models import BankAccount, ItemSyncState, LedgerTransaction, PlaidItem, SyncRun
from services import banking
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.plaid_client import PlaidGateway
from services.sync import SyncProgress, sync_item
from tests.integration.sync_helpers import FAST, link_item, make_user


def _left(c: Container) -> dict[str, int]:
    with unit_of_work(c.engine) as s:
        return {
            model.__name__: int(s.exec(select(func.count()).select_from(model)).one())
            for model in (PlaidItem, BankAccount, LedgerTransaction, ItemSyncState, SyncRun)
        }


@pytest.mark.parametrize("when", ["fetching", "applying"])
@pytest.mark.parametrize("keep_history", [False, True])
def test_a_bank_removed_while_it_syncs_stays_removed(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, when: str, keep_history: bool
) -> None:
    c = dataclasses.replace(container, plaid=gateway)
    user_id = make_user(c)
    item_id, pid = link_item(c, gateway, user_id)
    demo_bank.generate_history(pid, 3000)  # six pages
    removed: list[Any] = []

    def remove() -> None:
        banking.remove_item(c, user_id, item_id, keep_history=keep_history)
        removed.append(True)

    def progress(p: SyncProgress) -> None:
        if removed or p.stage != when or (when == "fetching" and p.pages < 2):
            return
        remover = threading.Thread(target=remove)  # the other tab's click, on its own connection
        remover.start()
        remover.join(30)
        assert removed, "the removal did not finish"

    result = sync_item(c, user_id, item_id, gateway=gateway, policy=FAST, progress=progress)
    assert removed and result.status != "ok" and result.added == 0
    if when == "applying":
        assert "removed while it synced; nothing from this sync was kept" in result.message
    assert _left(c) == {"PlaidItem": 0, "BankAccount": 0, "LedgerTransaction": 0, "ItemSyncState": 0, "SyncRun": 0}
    assert banking.list_items(c, user_id) == []
    assert demo_bank.bank.items.get(pid) is None or demo_bank.bank.items[pid].removed  # revoked at the bank too


@pytest.mark.parametrize("keep_history", [False, True])
def test_a_bank_removed_while_its_sync_writes_takes_what_the_sync_wrote_with_it(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    monkeypatch: pytest.MonkeyPatch,
    keep_history: bool,
) -> None:
    """The removal lands while the sync's one write transaction is open, and that sync brings an account never seen
    before: the removal waits for the write, then removes (or, keeping history, detaches) that account too. Before,
    on PostgreSQL, the new account and its transaction stayed behind, looking shared and linked to nothing."""
    from services import sync_commit

    c = dataclasses.replace(container, plaid=gateway)
    user_id = make_user(c)
    item_id, pid = link_item(c, gateway, user_id)
    assert sync_item(c, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
    demo = demo_bank.bank.item(pid)
    unlisted = "acct-unlisted-0000000000000000000000000"  # transactions on an account /accounts/get does not list
    with demo_bank.bank.lock:
        for book in (demo.ledger.posted, demo.ledger.pending, demo.ledger.opening):
            book[unlisted] = 0
    demo_bank.mutate(pid, "add", account=unlisted, cents=1200, name="ON A NEW ACCOUNT")
    demo_bank.mutate(pid, "add", account="checking", cents=700, name="ON AN OLD ACCOUNT")
    removed: list[Any] = []

    def remove() -> None:
        try:
            banking.remove_item(c, user_id, item_id, keep_history=keep_history)
            removed.append("removed")
        except Exception as exc:  # reported by the assertion below
            removed.append(repr(exc))

    remover = threading.Thread(target=remove)
    real = sync_commit.insert_new

    def write_then_remove(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        if not remover.is_alive() and not removed:
            remover.start()  # the other tab's click, while this transaction is still open
            remover.join(1.5)
        return out

    monkeypatch.setattr(sync_commit, "insert_new", write_then_remove)
    result = sync_item(c, user_id, item_id, gateway=gateway, policy=FAST)
    remover.join(60)
    assert result.status == "ok" and removed == ["removed"], (result, removed)  # the write came first, then this
    with unit_of_work(c.engine) as s:
        accounts = {a.name: (a.item_id, a.disconnected_at) for a in s.exec(select(BankAccount)).all()}
        names = set(s.exec(select(LedgerTransaction.name)).all())
    left = _left(c)
    assert left["PlaidItem"] == left["ItemSyncState"] == 0
    if keep_history:  # every account kept, the new one too, each detached and marked as no longer shared
        assert len(accounts) == 4 and all(i is None and gone is not None for i, gone in accounts.values()), accounts
        assert {"ON A NEW ACCOUNT", "ON AN OLD ACCOUNT"} <= names
    else:
        assert accounts == {} and left["LedgerTransaction"] == 0
