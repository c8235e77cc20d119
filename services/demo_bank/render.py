"""Plaid JSON shapes for the demo bank's objects (field names from the 2020-09-14 API)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from services.demo_bank.catalog import INSTITUTIONS, RECURRING
from services.demo_bank.items import Item, stable_id
from services.demo_bank.ledger import Txn
from services.demo_bank.problems import login_required

PRODUCTS = ["transactions"]
_NULL_LOCATION = dict.fromkeys(("address", "city", "region", "postal_code", "country", "lat", "lon", "store_number"))
_NULL_PAYMENT_META = dict.fromkeys(
    ("reference_number", "ppd_id", "payee", "by_order_of", "payer", "payment_method", "payment_processor", "reason")
)


def iso(ts: datetime | None) -> str | None:
    """Format an aware datetime as Plaid does (UTC, `Z`)."""
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def error_json(item: Item, *, webhook: bool = False) -> dict[str, Any] | None:
    """The item's current error as a PlaidError object (as an ITEM ERROR webhook carries it), or null."""
    if item.error_code is None:
        return None
    err = login_required()
    return err.webhook_body() if webhook else err.fields()


def item_json(item: Item) -> dict[str, Any]:
    """The `item` object of /accounts/get and /item/get."""
    inst = INSTITUTIONS[item.institution_id]
    return {
        "item_id": item.item_id,
        "institution_id": inst.institution_id,
        "institution_name": inst.name,
        "webhook": item.webhook,
        "error": error_json(item),
        "available_products": ["balance"],
        "billed_products": PRODUCTS,
        "products": PRODUCTS,
        "consented_products": PRODUCTS,
        "consent_expiration_time": None,
        "update_type": "background",
        "auth_method": None,
        "created_at": iso(item.created_at),
    }


def item_status_json(item: Item) -> dict[str, Any]:
    """The `status` object of /item/get."""
    last = item.last_webhook
    return {
        "transactions": {"last_successful_update": iso(item.last_successful_update), "last_failed_update": None},
        "last_webhook": {"sent_at": iso(last[0]), "code_sent": last[1]} if last else None,
    }


def accounts_json(item: Item) -> list[dict[str, Any]]:
    """AccountBase objects with balances derived from the ledger."""
    masks = item.masks()
    out = []
    for t in item.templates():
        aid = item.accounts[t.key]
        posted, pending = item.ledger.balance(aid)
        if t.type == "credit":
            current = t.opening_cents + posted
            available = (t.limit_cents or 0) - current - pending
        else:
            current = t.opening_cents - posted
            available = current - pending
        balances = {
            "available": available / 100,
            "current": current / 100,
            "limit": None if t.limit_cents is None else t.limit_cents / 100,
            "iso_currency_code": "USD",
            "unofficial_currency_code": None,
        }
        out.append(
            {
                "account_id": aid,
                "balances": balances,
                "mask": masks[aid],
                "name": t.name,
                "official_name": t.official_name,
                "type": t.type,
                "subtype": t.subtype,
                "persistent_account_id": stable_id(item.institution_id, aid, size=48),
            }
        )
    return out


def txn_json(t: Txn) -> dict[str, Any]:
    """A Transaction object; `amount` keeps Plaid's sign (positive = money out)."""
    return {
        "account_id": t.account_id,
        "account_owner": None,
        "amount": t.cents / 100,
        "iso_currency_code": "USD",
        "unofficial_currency_code": None,
        "check_number": None,
        "counterparties": [],
        "date": t.date.isoformat(),
        "datetime": None,
        "authorized_date": t.authorized_date.isoformat(),
        "authorized_datetime": None,
        "location": _NULL_LOCATION,
        "merchant_name": t.merchant_name,
        "merchant_entity_id": None,
        "logo_url": None,
        "website": t.website,
        "name": t.name,
        "payment_channel": t.channel,
        "payment_meta": _NULL_PAYMENT_META,
        "pending": t.pending,
        "pending_transaction_id": t.pending_transaction_id,
        "personal_finance_category": {"primary": t.primary, "detailed": t.detailed, "confidence_level": t.confidence},
        "transaction_code": None,
        "transaction_id": t.transaction_id,
    }


def streams_json(item: Item, account_ids: list[str] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inflow and outflow TransactionStream objects built from the recurring transactions in the ledger."""
    groups: dict[str, list[Txn]] = defaultdict(list)
    for t in item.ledger.txns.values():
        if t.stream and not t.pending and item.shows(t.date) and (account_ids is None or t.account_id in account_ids):
            groups[t.stream].append(t)
    specs = {r.key: r for r in RECURRING}
    inflow: list[dict[str, Any]] = []
    outflow: list[dict[str, Any]] = []
    for key in sorted(groups):
        txns = sorted(groups[key], key=lambda t: (t.date, t.transaction_id))
        rec, last = specs[key], txns[-1]
        avg = round(sum(t.cents for t in txns) / len(txns)) / 100
        step = timedelta(days=rec.every_days) if rec.every_days else timedelta(days=30)
        stream = {
            "account_id": last.account_id,
            "stream_id": stable_id(item.item_id, "stream", key),
            "category": None,
            "category_id": None,
            "description": last.name,
            "merchant_name": last.merchant_name,
            "first_date": txns[0].date.isoformat(),
            "last_date": last.date.isoformat(),
            "predicted_next_date": (last.date + step).isoformat(),
            "frequency": rec.frequency,
            "transaction_ids": [t.transaction_id for t in txns],
            "average_amount": {"amount": avg, "iso_currency_code": "USD", "unofficial_currency_code": None},
            "last_amount": {"amount": last.cents / 100, "iso_currency_code": "USD", "unofficial_currency_code": None},
            "is_active": (item.today - last.date).days <= 2 * step.days,
            "status": "MATURE" if len(txns) >= 3 else "EARLY_DETECTION",
            "personal_finance_category": {
                "primary": last.primary,
                "detailed": last.detailed,
                "confidence_level": "HIGH",
            },
            "is_user_modified": False,
        }
        (inflow if last.cents < 0 else outflow).append(stream)
    return inflow, outflow


def institution_json(institution_id: str) -> dict[str, Any]:
    """An Institution object."""
    inst = INSTITUTIONS[institution_id]
    return {
        "institution_id": inst.institution_id,
        "name": inst.name,
        "products": ["transactions", "balance"],
        "country_codes": ["US"],
        "routing_numbers": [inst.routing_number],
        "oauth": False,
        "connection_availability": "SUPPORTED",
        "url": inst.url,
        "primary_color": inst.primary_color,
        "logo": None,
    }
