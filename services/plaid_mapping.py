"""Pure mapping from Plaid JSON (raw or the SDK's ``to_dict()``) to our dataclasses.

Money leaves here as integer minor units with the statement sign (money out is negative);
balances keep Plaid's meaning (for credit accounts `current` is the amount owed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from services.plaid_types import Account, Institution, ItemInfo, RecurringStream, SyncPage, Transaction, Unreadable

Json = Mapping[str, Any]
_EMPTY: Json = {}
# ISO 4217 minor-unit exponents that are not 2; https://www.six-group.com/en/products-services/financial-information/data-standards.html
MAX_MINOR = 10**15  # ten trillion in a two-decimal currency: larger is garbage, and BIGINT stays far away
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}

# -- money and dates ---------------------------------------------------------------------------------


def to_minor(amount: float | int | str | Decimal, currency: str | None) -> int:
    """Convert a decimal amount to integer minor units of its currency, exactly (via `str`, never float math)."""
    exp = _EXPONENTS.get(currency.upper(), 2) if currency else 2
    if exp == 2 and type(amount) is float:  # the common case, on a sync's hot path: read the digits directly
        text = repr(amount)  # the shortest string that reads back as this float, as str() gives
        whole, _, frac = text.partition(".")
        if len(frac) <= 2 and whole.lstrip("-").isdigit() and frac.isdigit():
            cents = int(whole) * 100 + int(frac.ljust(2, "0")) * (-1 if text[0] == "-" else 1)
            if abs(cents) < MAX_MINOR:
                return cents
    try:
        value = int(Decimal(str(amount)).scaleb(exp).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    except (ArithmeticError, ValueError):  # NaN, infinity, null, text, or more digits than Decimal holds
        value = MAX_MINOR
    if abs(value) >= MAX_MINOR or isinstance(amount, bool):
        raise ValueError(f"not an amount: {str(amount)[:40]!r}")  # the gateway reports MALFORMED_RESPONSE
    return value


def statement_minor(plaid_amount: float | int | str | Decimal, currency: str | None) -> int:
    """Plaid's amount (positive = money out) to statement-signed minor units (money out negative)."""
    return -to_minor(plaid_amount, currency)


def as_date(value: date | str | None) -> date | None:
    """Accept a `date` (SDK models) or an ISO string (raw JSON)."""
    if type(value) is str and len(value) == 10:
        return date.fromisoformat(value)  # raw JSON's "YYYY-MM-DD", the hot path
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def as_datetime(value: datetime | str | None) -> datetime | None:
    """Accept a `datetime` or an ISO-8601 string (with `Z`)."""
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed


def _opt_minor(value: Any, currency: str | None) -> int | None:
    return None if value is None else to_minor(value, currency)


def _s(value: Any) -> str | None:
    return value if value is None or type(value) is str else str(value)


# -- mapping (pure; takes dicts from raw JSON or the SDK's to_dict()) -------------------------------


def map_transaction(t: Json) -> Transaction:
    """Map one Plaid transaction; the amount sign is reversed here and nowhere else."""
    get = t.get
    iso, unofficial = get("iso_currency_code"), get("unofficial_currency_code")
    pfc = get("personal_finance_category") or _EMPTY
    day = as_date(t["date"])
    if day is None:
        raise ValueError("a transaction without a date")
    merchant = get("merchant_name")
    return Transaction(
        str(t["transaction_id"]),
        str(t["account_id"]),
        statement_minor(t["amount"], iso or unofficial),
        _s(iso),
        _s(unofficial),
        day,
        as_date(get("authorized_date")),
        str(get("name") or merchant or ""),
        _s(merchant),
        bool(t["pending"]),
        _s(get("pending_transaction_id")),
        _s(pfc.get("primary")),
        _s(pfc.get("detailed")),
        _s(pfc.get("confidence_level")),
        _s(get("payment_channel")),
        _s(get("website")),
    )


def map_account(a: Json) -> Account:
    """Map one AccountBase."""
    b = a.get("balances") or {}
    currency = b.get("iso_currency_code") or b.get("unofficial_currency_code")
    return Account(
        account_id=str(a["account_id"]),
        name=str(a.get("name") or ""),
        official_name=_s(a.get("official_name")),
        mask=_s(a.get("mask")),
        type=str(a.get("type")),
        subtype=_s(a.get("subtype")),
        current_minor=_opt_minor(b.get("current"), currency),
        available_minor=_opt_minor(b.get("available"), currency),
        limit_minor=_opt_minor(b.get("limit"), currency),
        iso_currency_code=_s(b.get("iso_currency_code")),
    )


def map_item(i: Json, status: Json | None = None) -> ItemInfo:
    """Map an Item (and the optional /item/get status)."""
    tx = (status or {}).get("transactions") or {}
    err = i.get("error") or {}
    return ItemInfo(
        item_id=str(i["item_id"]),
        institution_id=_s(i.get("institution_id")),
        institution_name=_s(i.get("institution_name")),
        webhook=_s(i.get("webhook")),
        error_code=_s(err.get("error_code")),
        update_type=_s(i.get("update_type")),
        last_successful_update=as_datetime(tx.get("last_successful_update")),
        last_failed_update=as_datetime(tx.get("last_failed_update")),
    )


def map_sync_page(r: Json) -> SyncPage:
    """Map a /transactions/sync body (raw JSON); a transaction that cannot be mapped is set aside, not fatal."""
    unreadable: list[Unreadable] = []
    return SyncPage(
        added=_map_each(r["added"], "added", unreadable),
        modified=_map_each(r["modified"], "modified", unreadable),
        removed=tuple(str(x["transaction_id"]) for x in r["removed"]),
        accounts=tuple(map_account(a) for a in r["accounts"]),
        next_cursor=str(r["next_cursor"]),
        has_more=bool(r["has_more"]),
        update_status=str(r.get("transactions_update_status") or ""),
        request_id=str(r.get("request_id") or ""),
        unreadable=tuple(unreadable),
    )


def _map_each(raw: Any, kind: str, unreadable: list[Unreadable]) -> tuple[Transaction, ...]:
    out = []
    for t in raw:
        try:
            out.append(map_transaction(t))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            tid = t.get("transaction_id") if isinstance(t, Mapping) else None
            reason = f"{type(exc).__name__}: {exc}"[:200]
            excerpt = json.dumps(t, default=str, ensure_ascii=False)[:1000]
            unreadable.append(Unreadable(str(tid)[:128] if tid else "", kind, reason, excerpt))
    return tuple(out)


def map_stream(s: Json) -> RecurringStream:
    """Map a TransactionStream."""
    avg, last = s.get("average_amount") or {}, s.get("last_amount") or {}
    currency = avg.get("iso_currency_code") or avg.get("unofficial_currency_code")
    pfc = s.get("personal_finance_category") or {}
    return RecurringStream(
        stream_id=str(s["stream_id"]),
        account_id=str(s["account_id"]),
        description=str(s.get("description") or ""),
        merchant_name=_s(s.get("merchant_name")),
        frequency=str(s.get("frequency")),
        status=str(s.get("status")),
        is_active=bool(s.get("is_active")),
        first_date=as_date(s.get("first_date")),
        last_date=as_date(s.get("last_date")),
        predicted_next_date=as_date(s.get("predicted_next_date")),
        average_amount_minor=None if avg.get("amount") is None else statement_minor(avg["amount"], currency),
        last_amount_minor=None if last.get("amount") is None else statement_minor(last["amount"], currency),
        iso_currency_code=_s(avg.get("iso_currency_code")),
        category_primary=_s(pfc.get("primary")),
        category_detailed=_s(pfc.get("detailed")),
        transaction_ids=tuple(str(x) for x in s.get("transaction_ids") or ()),
    )


def map_institution(i: Json) -> Institution:
    """Map an Institution."""
    return Institution(
        institution_id=str(i["institution_id"]),
        name=str(i["name"]),
        url=_s(i.get("url")),
        primary_color=_s(i.get("primary_color")),
        logo=_s(i.get("logo")),
        country_codes=tuple(str(c) for c in i.get("country_codes") or ()),
        products=tuple(str(p) for p in i.get("products") or ()),
        oauth=bool(i.get("oauth")),
    )
