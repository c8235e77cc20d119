"""Hostile text from the bank (security bar, hostile inputs 45 and 61; G3): stored and shown clean, sync goes on.

PostgreSQL refuses NUL in text, so before this one such merchant name failed every later sync of its bank.
"""

from __future__ import annotations

import json

from services import plaid_mapping
from services.container import Container
from services.ledger import list_transactions
from services.plaid_client import PlaidGateway
from services.sync import edit_transaction, get_transaction, sync_item
from tests.integration.sync_helpers import FAST, ledger

HOSTILE_NAME = "ACME\x00\x07\tSTORE \u202egnp.exe\u2066"
HOSTILE_MERCHANT = "Caf\u00e9\x00 \U000e0041Paris\u200b 👩\u200d💻"


def test_a_merchant_name_with_nul_and_bidi_controls_is_stored_clean_and_syncs_go_on(
    container: Container, gateway: PlaidGateway, demo_bank, linked
) -> None:
    user_id, item_id, pid = linked
    row = demo_bank.mutate(pid, "add", cents=1250, name=HOSTILE_NAME, merchant_name=HOSTILE_MERCHANT)
    first = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert first.status == "ok", first.message
    stored = get_transaction(container, user_id, row["transaction_id"])
    assert stored.name == "ACME STORE gnp.exe"  # NUL, BEL, the bidi override and isolate gone; the tab a space
    assert stored.merchant_name == "Caf\u00e9 Paris 👩\u200d💻"  # the zero-width joiner of the emoji stays

    demo_bank.mutate(pid, "modify", transaction_id=row["transaction_id"], name="ACME\x00 STORE 2")
    demo_bank.mutate(pid, "add", cents=300, name="PLAIN")
    again = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert again.status == "ok" and again.modified == 1 and again.added == 1, again.message
    assert get_transaction(container, user_id, row["transaction_id"]).name == "ACME STORE 2"
    assert len(ledger(container, user_id)) == len(list_transactions(container, user_id))


def test_a_note_keeps_its_lines_but_loses_control_characters(container: Container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    row = demo_bank.mutate(pid, "add", cents=990, name="BOOKS")
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    saved = edit_transaction(container, user_id, row["transaction_id"], note="line one\x00\nline\u202e two",
                             tags=["tr\x00ip", "\u2066work"], category="TRAVEL\x07")  # fmt: skip
    assert (saved.note, saved.tags, saved.category) == ("line one\nline two", ("trip", "work"), "TRAVEL")


def test_an_id_with_control_characters_is_set_aside_under_an_escaped_id() -> None:
    page = {
        "added": [
            {"transaction_id": "tx\x00evil", "account_id": "acc", "amount": 1, "date": "2026-11-01", "pending": False,
             "name": "lone \ud800 surrogate"},
            {"transaction_id": "tx-ok", "account_id": "acc", "amount": 2, "date": "2026-11-01", "pending": False,
             "name": "lone \ud800 surrogate"},
        ],
        "modified": [],
        "removed": [{"transaction_id": "tx\x00evil"}],
        "accounts": [],
        "next_cursor": "c1",
        "has_more": False,
    }  # fmt: skip
    mapped = plaid_mapping.map_sync_page(page)
    (ok,) = mapped.added
    assert ok.transaction_id == "tx-ok" and ok.name == "lone  surrogate"
    (aside,) = mapped.unreadable
    assert aside.transaction_id == "tx\\x00evil" and mapped.removed == ("tx\\x00evil",)
    assert aside.excerpt.isprintable() and json.loads(aside.excerpt)["transaction_id"] == "tx\x00evil"
    aside.excerpt.encode("utf-8")  # storable: no lone surrogate left in it
