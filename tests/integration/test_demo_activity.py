"""The demo bank's live shoppers (``make run``): new card holds, and older holds posting, so a running demo shows
what a real bank does within a day: balances that move, holds that post with the user's edits carried over."""

from __future__ import annotations

import random
import threading

from services.demo_bank_runtime import OPEN_HOLDS, shop_once
from services.sync import edit_transaction, get_transaction
from tests.integration.sync_helpers import ledger, truth
from tests.integration.sync_helpers import sync_fast as _sync


def test_shoppers_add_holds_and_post_the_older_ones_and_the_ledger_follows_with_edits(
    container, gateway, demo_bank, linked
) -> None:
    user_id, item_id, pid = linked
    rng = random.Random(7)
    item = demo_bank.bank.item(pid)
    card = item.accounts["credit"]

    def card_holds() -> list[str]:
        held = [t for t in item.ledger.txns.values() if t.pending and t.account_id == card]
        return [t.transaction_id for t in sorted(held, key=lambda t: t.created_pos)]

    assert _sync(container, gateway, user_id, item_id).status == "ok"
    shop_once(demo_bank.bank, rng)
    newest = card_holds()[-1]
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    edit_transaction(container, user_id, newest, note="team lunch")
    for _ in range(OPEN_HOLDS):  # each visit adds a hold; the hold noted above becomes one of the older ones
        shop_once(demo_bank.bank, rng)
        assert len(card_holds()) == OPEN_HOLDS
    assert newest not in card_holds() and newest in item.ledger.gone  # posted under a new id
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    mine = ledger(container, user_id)
    assert mine == truth(demo_bank, pid) and newest not in mine
    (posted,) = [t.transaction_id for t in item.ledger.txns.values() if t.pending_transaction_id == newest]
    assert get_transaction(container, user_id, posted).note == "team lunch"  # the edit came along


def test_each_round_of_shopping_is_announced_by_one_webhook(container, gateway, demo_bank, linked) -> None:
    """Plaid sends one SYNC_UPDATES_AVAILABLE per update it finds, not one per transaction: a purchase and a hold
    posting in the same round are one webhook (two in one second would read as a duplicate of the first)."""
    user_id, item_id, pid = linked
    rng = random.Random(11)
    item = demo_bank.bank.item(pid)
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    item.webhook = "http://127.0.0.1:9/webhooks/plaid"  # nobody listens: the delivery is still recorded

    def said() -> list[str]:
        for t in [t for t in threading.enumerate() if t.name == "demo-bank-webhook"]:
            t.join(timeout=10)
        return [d.payload["webhook_code"] for d in demo_bank.bank.webhooks.deliveries if d.payload["item_id"] == pid]

    for _ in range(OPEN_HOLDS + 2):  # past OPEN_HOLDS, each round also posts the oldest hold
        before, log = len(said()), len(item.ledger.log)
        shop_once(demo_bank.bank, rng)
        assert len(item.ledger.log) > log  # something happened ...
        assert said()[before:] == ["SYNC_UPDATES_AVAILABLE"]  # ... and it was said once
    assert any(t.pending_transaction_id for t in item.ledger.txns.values())  # holds did post along the way
