"""Hostile text from the bank (security bar, hostile inputs 45 and 61; G3): stored and shown clean, sync goes on.

PostgreSQL refuses NUL in text, so before this one such merchant name failed every later sync of its bank.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from models import BankAccount
from services import plaid_mapping
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import endpoints, render, syncing
from services.ledger_listing import list_transactions
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


LONG_ACCOUNT_ID = "acct-" + "9" * 200  # longer than any stored id


def test_odd_account_fields_from_the_bank_are_stored_clean_and_syncs_go_on(
    container: Container, gateway: PlaidGateway, demo_bank, linked, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A four-letter "ISO" currency, control characters in an account's type, subtype and name, and an account whose
    id no column holds (its transactions are set aside: see the unit tests of map_transaction): every sync of the
    bank still succeeds and brings what is new."""
    user_id, item_id, pid = linked
    assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
    real = render.accounts_json

    def odd(item: Any) -> list[dict[str, Any]]:
        first, *rest = real(item)
        first = {**first, "balances": {**first["balances"], "iso_currency_code": "USDC"}, "type": "dep\x00ository",
                 "subtype": "check\x07ing", "name": "Every\x00day"}  # fmt: skip
        return [first, *rest, {**first, "account_id": LONG_ACCOUNT_ID, "mask": "7777"}]

    monkeypatch.setattr(render, "accounts_json", odd)
    monkeypatch.setattr(syncing, "accounts_json", odd)
    monkeypatch.setattr(endpoints, "accounts_json", odd)
    demo_bank.mutate(pid, "add", cents=100, name="COFFEE")
    for _ in range(2):
        result = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
        assert result.status == "ok", result.message
    assert "COFFEE" in [t.name for t in list_transactions(container, user_id)]
    with unit_of_work(container.engine) as session:
        accounts = session.exec(select(BankAccount).where(BankAccount.user_id == user_id)).all()
    assert len(accounts) == 3 and all(len(a.plaid_account_id) <= 128 for a in accounts)
    odd_one = next(a for a in accounts if a.iso_currency_code is None)
    assert (odd_one.type, odd_one.subtype, odd_one.name) == ("depository", "checking", "Everyday")
