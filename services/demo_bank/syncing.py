"""`/transactions/sync` over an item's change log: replayable cursors, paging and mutation detection."""

from __future__ import annotations

from typing import Any

from services.demo_bank import cursor as cursors
from services.demo_bank import problems
from services.demo_bank.items import Item
from services.demo_bank.render import accounts_json, txn_json


def _mutate_for_fault(item: Item) -> None:
    """Really change the ledger, so a restarted pagination sees the change the error announced."""
    ledger = item.ledger
    victim = max(ledger.txns.values(), key=lambda t: (t.created_pos, t.transaction_id))
    ledger.modify(victim.transaction_id, name=victim.name + " *")


def sync_page(item: Item, token: str, count: int, key: bytes) -> dict[str, Any]:
    """Answer one /transactions/sync call for an item."""
    if not 1 <= count <= 500:
        raise problems.invalid_field("count must be between 1 and 500")
    ledger = item.ledger
    if not item.ready:
        return _body(item, [], [], [], "", False, "NOT_READY")
    if token == "":
        cur = cursors.Cursor(item.item_id, 0)
    elif token == "now":
        cur = cursors.Cursor(item.item_id, len(ledger.log))
    else:
        cur = cursors.decode(token, key, item.item_id)
        if cur.start > len(ledger.log):
            raise problems.invalid_field("cursor is invalid or belongs to another item")
    item.synced_once = True
    if item.faults.mutation_page == cur.page and cur.paging:
        item.faults.mutation_page = None
        _mutate_for_fault(item)
    if cur.paging and cur.end != len(ledger.log):
        raise problems.mutation_during_pagination()
    end = cur.end if cur.paging else len(ledger.log)
    changes = ledger.changes(cur.start, end)
    hidden = item.hidden_ids()
    if hidden or item.since is not None or item.pulled_from is not None:  # unshared accounts, days not asked for or
        # not pulled yet: not sent (nor removed)
        changes = [(kind, tid) for kind, tid in changes if item.sends(ledger.known(tid), hidden)]
    window = changes[cur.offset : cur.offset + count]
    has_more = cur.offset + count < len(changes)
    if has_more:
        nxt = cursors.Cursor(item.item_id, cur.start, end, cur.offset + count, cur.page + 1)
    else:
        nxt = cursors.Cursor(item.item_id, end)
    added = [txn_json(ledger.txns[tid]) for kind, tid in window if kind == "added"]
    modified = [txn_json(ledger.txns[tid]) for kind, tid in window if kind == "modified"]
    removed = [
        {"transaction_id": tid, "account_id": ledger.known(tid).account_id} for kind, tid in window if kind == "removed"
    ]
    return _body(item, added, modified, removed, cursors.encode(nxt, key), has_more, item.update_status)


def _body(
    item: Item,
    added: list[dict[str, Any]],
    modified: list[dict[str, Any]],
    removed: list[dict[str, Any]],
    next_cursor: str,
    has_more: bool,
    status: str,
) -> dict[str, Any]:
    return {
        "transactions_update_status": status,
        "accounts": accounts_json(item) if item.ready else [],
        "added": added,
        "modified": modified,
        "removed": removed,
        "next_cursor": next_cursor,
        "has_more": has_more,
    }
