"""Pure mapping from Plaid JSON (raw or the SDK's ``to_dict()``) to our dataclasses.

Money leaves here as integer minor units (services/money.py) with the statement sign (money out is negative);
balances keep Plaid's meaning (for credit accounts `current` is the amount owed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from services import safe_text
from services.money import to_minor
from services.plaid_types import Account, Institution, ItemInfo, RecurringStream, SyncPage, Transaction, Unreadable

Json = Mapping[str, Any]
_EMPTY: Json = {}
# Column lengths of the ledger and staging tables (models/ledger.py, models/banking.py). PostgreSQL refuses
# a longer value and the whole sync with it, so display text is cut to fit here; an id or a currency code
# cannot be cut without naming something else, so a record with a longer one is set aside as unreadable.
ID_MAX = 128
TEXT_MAX = {"name": 512, "merchant_name": 256, "category_primary": 64, "category_detailed": 128, "payment_channel": 32}
CURRENCY_MAX = {"iso_currency_code": 3, "unofficial_currency_code": 16}
_NAME, _MERCHANT, _PRIMARY, _DETAILED, _CHANNEL = TEXT_MAX.values()
EXCERPT_MAX = 16_000  # the JSON kept of a transaction set aside as unreadable (a whole one is about 1 KB)
ACCOUNT_TEXT_MAX = {"name": 128, "official_name": 256, "mask": 8, "type": 32, "subtype": 64}

# -- money and dates ---------------------------------------------------------------------------------


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


def _cut(value: Any, limit: int) -> str | None:
    """Display text, made safe (services/safe_text.py), that fits its column."""
    return None if value is None else safe_text.clean(str(value))[:limit]


@dataclass(frozen=True)
class UnreadableRecord(Unreadable):
    """An unreadable transaction plus the pending transaction it replaces, when that much could be read."""

    pending_transaction_id: str | None = None


# -- mapping (pure; takes dicts from raw JSON or the SDK's to_dict()) -------------------------------


def map_transaction(t: Json) -> Transaction:
    """Map one Plaid transaction; the amount sign is reversed here and nowhere else."""
    get = t.get
    iso, unofficial = _s(get("iso_currency_code")), _s(get("unofficial_currency_code"))
    tid, account, twin = str(t["transaction_id"]), str(t["account_id"]), _s(get("pending_transaction_id"))
    # One test for the common case on a sync's hot path (about 2 µs a row for per-field calls).
    if len(tid) > ID_MAX or len(account) > ID_MAX or (twin and len(twin) > ID_MAX) or (iso and len(iso) > 3):
        raise ValueError(f"an id longer than {ID_MAX} characters or a currency code longer than 3")
    if unofficial and len(unofficial) > CURRENCY_MAX["unofficial_currency_code"]:
        raise ValueError("a currency code longer than 16 characters")
    pfc = get("personal_finance_category") or _EMPTY
    day = as_date(t["date"])
    if day is None:
        raise ValueError("a transaction without a date")
    merchant, primary, detailed, channel = (
        _s(get("merchant_name")), _s(pfc.get("primary")), _s(pfc.get("detailed")), _s(get("payment_channel"))
    )  # fmt: skip
    name, confidence, website = str(get("name") or merchant or ""), _s(pfc.get("confidence_level")), _s(get("website"))
    ids = f"{tid}{account}{twin or ''}{iso or ''}{unofficial or ''}"
    # One C-speed test per row; only a row that fails it pays for the character-by-character cleaning.
    texts = f"{name}{merchant or ''}{primary or ''}{detailed or ''}{confidence or ''}{channel or ''}{website or ''}"
    if not f"{ids}{texts}".isprintable():
        if safe_text.escaped(ids) != ids:
            raise ValueError("an id or a currency code with control or format characters")
        name = safe_text.clean(name)
        merchant, primary, detailed, confidence, channel, website = (
            None if x is None else safe_text.clean(x)
            for x in (merchant, primary, detailed, confidence, channel, website)
        )
    return Transaction(
        tid,
        account,
        statement_minor(t["amount"], iso or unofficial),
        iso,
        unofficial,
        day,
        as_date(get("authorized_date")),
        name[:_NAME],
        merchant and merchant[:_MERCHANT],
        bool(t["pending"]),
        twin,
        primary and primary[:_PRIMARY],
        detailed and detailed[:_DETAILED],
        confidence,
        channel and channel[:_CHANNEL],
        website,
    )


def map_account(a: Json) -> Account:
    """Map one AccountBase; text cleaned and cut to its column, an odd ISO currency code dropped (as None)."""
    b = (a.get("balances") or {}) if isinstance(a, Mapping) else None
    if not isinstance(b, Mapping):  # raw JSON of /transactions/sync: the SDK's models checked the other answers
        raise TypeError("an account or its balances is not a JSON object")
    iso = _s(b.get("iso_currency_code"))
    iso = iso if iso and len(iso) == 3 and iso.isascii() and iso.isalpha() else None
    unofficial = _cut(b.get("unofficial_currency_code"), CURRENCY_MAX["unofficial_currency_code"])
    currency = iso or unofficial
    return Account(
        account_id=safe_text.escaped(str(a["account_id"])),
        name=safe_text.clean(str(a.get("name") or ""))[: ACCOUNT_TEXT_MAX["name"]],
        official_name=_cut(a.get("official_name"), ACCOUNT_TEXT_MAX["official_name"]),
        mask=_cut(a.get("mask"), ACCOUNT_TEXT_MAX["mask"]),
        type=safe_text.clean(str(a.get("type")))[: ACCOUNT_TEXT_MAX["type"]],
        subtype=_cut(a.get("subtype"), ACCOUNT_TEXT_MAX["subtype"]),
        current_minor=_opt_minor(b.get("current"), currency),
        available_minor=_opt_minor(b.get("available"), currency),
        limit_minor=_opt_minor(b.get("limit"), currency),
        iso_currency_code=iso,
        unofficial_currency_code=unofficial,
    )


def map_accounts(raw: Any) -> tuple[Account, ...]:
    """Map a list of accounts, leaving out one whose id the ledger cannot hold: its transactions cannot be stored
    under that id either, so they are set aside as unreadable (``map_transaction``), never filed elsewhere."""
    return tuple(acc for a in raw if len((acc := map_account(a)).account_id) <= ID_MAX)


def map_item(i: Json, status: Json | None = None) -> ItemInfo:
    """Map an Item (and the optional /item/get status)."""
    tx = (status or {}).get("transactions") or {}
    err = i.get("error") or {}
    return ItemInfo(
        item_id=str(i["item_id"]),
        institution_id=_s(i.get("institution_id")),
        institution_name=None if i.get("institution_name") is None else safe_text.clean(str(i["institution_name"])),
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
        # An id longer than the ledger can hold names nothing stored: there is nothing to remove. One with control
        # characters can only name a record set aside, under its escaped id.
        removed=tuple(tid for x in r["removed"] if len(tid := safe_text.escaped(str(x["transaction_id"]))) <= ID_MAX),
        accounts=map_accounts(r["accounts"]),
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
            twin = t.get("pending_transaction_id") if isinstance(t, Mapping) else None
            twin = twin if isinstance(twin, str) and 0 < len(twin) <= ID_MAX and twin.isprintable() else None
            reason = f"{type(exc).__name__}: {exc}"[:200]
            # Whole (up to EXCERPT_MAX), so a later finsync that reads it can bring it in (services/sync_aside.py).
            excerpt = json.dumps(t, default=str, ensure_ascii=False)
            if not excerpt.isprintable():  # JSON escapes controls but not lone surrogates, which no database takes
                excerpt = json.dumps(t, default=str)
            tid = safe_text.escaped(str(tid))[:ID_MAX] if tid else ""
            unreadable.append(UnreadableRecord(tid, kind, safe_text.clean(reason), excerpt[:EXCERPT_MAX], twin))
    return tuple(out)


def map_stream(s: Json) -> RecurringStream:
    """Map a TransactionStream."""
    avg, last = s.get("average_amount") or {}, s.get("last_amount") or {}
    currency = avg.get("iso_currency_code") or avg.get("unofficial_currency_code")
    pfc = s.get("personal_finance_category") or {}
    return RecurringStream(
        stream_id=str(s["stream_id"]),
        account_id=str(s["account_id"]),
        description=safe_text.clean(str(s.get("description") or "")),
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
        name=safe_text.clean(str(i["name"])),
        url=_s(i.get("url")),
        primary_color=_s(i.get("primary_color")),
        logo=_s(i.get("logo")),
        country_codes=tuple(str(c) for c in i.get("country_codes") or ()),
        products=tuple(str(p) for p in i.get("products") or ()),
        oauth=bool(i.get("oauth")),
    )
