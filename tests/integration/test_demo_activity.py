"""The demo bank's live shoppers (``make run``): new card holds, and older holds posting, so a running demo shows
what a real bank does within a day: balances that move, holds that post with the user's edits carried over."""

from __future__ import annotations

import random

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
