"""Pure mapping at the Plaid edge: the sign flip, exact minor units, dates, column limits and error decoding."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.money import threshold_minor, to_minor
from services.plaid_errors import (
    InstitutionDown,
    InvalidRequest,
    LoginRequired,
    MutationDuringPagination,
    PlaidError,
    RateLimited,
    Transient,
    error_from_body,
)
from services.plaid_mapping import (
    ACCOUNT_TEXT_MAX,
    CURRENCY_MAX,
    ID_MAX,
    TEXT_MAX,
    UnreadableRecord,
    as_date,
    as_datetime,
    map_account,
    map_sync_page,
    map_transaction,
    statement_minor,
)

RAW_TXN = {
    "transaction_id": "t1",
    "account_id": "a1",
    "amount": 19.99,
    "iso_currency_code": "USD",
    "unofficial_currency_code": None,
    "date": "2025-03-14",
    "authorized_date": "2025-03-13",
    "name": "STARBUCKS",
    "merchant_name": "Starbucks",
    "pending": False,
    "pending_transaction_id": "p1",
    "payment_channel": "in store",
    "personal_finance_category": {
        "primary": "FOOD_AND_DRINK",
        "detailed": "FOOD_AND_DRINK_COFFEE",
        "confidence_level": "HIGH",
    },
}


@pytest.mark.parametrize(
    ("plaid_amount", "currency", "expected"),
    [
        (19.99, "USD", -1999),  # a purchase: money out is negative on the statement
        (-2850.0, "USD", 285000),  # a paycheck: money in is positive
        (0.29, "USD", -29),  # 0.29 * 100 == 28.999999999999996 in float math
        (1.005, "USD", -100),  # half-even at the sub-cent boundary, never float truncation
        (1500, "JPY", -1500),  # zero-decimal currency
        (1.234, "KWD", -1234),  # three-decimal currency
        (12, None, -1200),  # integers and a missing currency (2 decimals)
        ("0.10", "usd", -10),
    ],
)
def test_statement_minor_flips_sign_and_is_exact(
    plaid_amount: float | int | str, currency: str | None, expected: int
) -> None:
    assert statement_minor(plaid_amount, currency) == expected


@pytest.mark.parametrize(
    ("hundredths", "currency", "expected"),
    [
        (50_000, "USD", 50_000),  # 500.00 dollars
        (50_000, "JPY", 500),  # 500 yen, not 50,000
        (50_000, "KWD", 500_000),  # 500.000 dinar
        (50_000, None, 50_000),
        (50_000, "BTC", 50_000_000_000),  # an unofficial code: 8 decimals
        (1, "JPY", 1),  # 0.01 yen: any yen at all is at or above it
        (150, "JPY", 2),  # 1.50 yen: 1 yen is below, 2 is above
    ],
)
def test_a_threshold_in_each_currency_s_minor_units(hundredths: int, currency: str | None, expected: int) -> None:
    assert threshold_minor(hundredths, currency) == expected


def test_to_minor_accepts_decimal_and_keeps_sign() -> None:
    assert to_minor(Decimal("-0.01"), "USD") == -1
    assert sum(to_minor(0.1, "USD") for _ in range(3)) == to_minor(0.3, "USD") == 30


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.floats(-1e12, 1e12), st.integers(-(10**12), 10**12).map(lambda c: c / 100)))
def test_to_minor_fast_path_equals_exact_decimal_rounding(amount: float) -> None:
    """The float fast path (digits read from repr) gives what Decimal(str(x)) half-even rounding gives."""
    exact = int(Decimal(str(amount)).scaleb(2).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    assert to_minor(amount, "USD") == exact
    assert statement_minor(amount, None) == -exact


@pytest.mark.parametrize(
    "garbage", [float("nan"), float("inf"), -float("inf"), 1e308, 1e13, None, "", "12,50", "abc", True]
)
def test_an_amount_that_is_not_money_is_refused_not_mangled(garbage: object) -> None:
    """Hostile input 61: never a crash of another kind, never a wrapped or rounded number."""
    with pytest.raises(ValueError, match="not an amount"):
        to_minor(garbage, "USD")  # type: ignore[arg-type]


def test_dates_from_strings_and_sdk_objects() -> None:
    assert as_date("2025-03-14") == as_date(date(2025, 3, 14)) == date(2025, 3, 14)
    assert as_date(datetime(2025, 3, 14, 23, 0)) == date(2025, 3, 14)
    assert as_date(None) is None and as_date("") is None
    assert as_datetime("2025-03-14T10:00:00Z") == datetime(2025, 3, 14, 10, tzinfo=UTC)


def test_transaction_maps_once_with_category_and_pending_link() -> None:
    t = map_transaction(RAW_TXN)
    assert (t.amount_minor, t.date, t.authorized_date) == (-1999, date(2025, 3, 14), date(2025, 3, 13))
    assert (t.category_primary, t.category_detailed, t.category_confidence) == (
        "FOOD_AND_DRINK",
        "FOOD_AND_DRINK_COFFEE",
        "HIGH",
    )
    assert t.pending_transaction_id == "p1" and not t.pending
    same = map_transaction(
        {**RAW_TXN, "date": date(2025, 3, 14), "authorized_date": None, "personal_finance_category": None}
    )
    assert same.date == t.date and same.authorized_date is None and same.category_primary is None


def test_credit_balance_keeps_plaids_meaning() -> None:
    a = map_account(
        {
            "account_id": "c",
            "name": "Card",
            "official_name": None,
            "mask": "0001",
            "type": "credit",
            "subtype": "credit card",
            "balances": {"current": 410.5, "available": 3589.5, "limit": 4000, "iso_currency_code": "USD"},
        }
    )
    assert (a.current_minor, a.available_minor, a.limit_minor) == (41050, 358950, 400000)


def test_sync_page_removed_are_ids() -> None:
    page = map_sync_page(
        {
            "added": [RAW_TXN],
            "modified": [],
            "removed": [{"transaction_id": "p1", "account_id": "a1"}],
            "accounts": [],
            "next_cursor": "abc",
            "has_more": False,
            "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
            "request_id": "r1",
        }
    )
    assert page.removed == ("p1",) and page.added[0].transaction_id == "t1" and "abc" not in repr(page)


def _body(code: str, etype: str, **extra: object) -> str:
    return json.dumps(
        {
            "error_code": code,
            "error_type": etype,
            "error_message": "m",
            "display_message": None,
            "request_id": "rq",
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (400, _body("ITEM_LOGIN_REQUIRED", "ITEM_ERROR"), LoginRequired, "ITEM_LOGIN_REQUIRED"),
        (429, _body("TRANSACTIONS_SYNC_LIMIT", "RATE_LIMIT_EXCEEDED"), RateLimited, "TRANSACTIONS_SYNC_LIMIT"),
        # Rate limiting is told by error_type (the code is per endpoint), whatever the HTTP status says.
        (400, _body("ACCOUNTS_BALANCE_GET_LIMIT", "RATE_LIMIT_EXCEEDED"), RateLimited, "ACCOUNTS_BALANCE_GET_LIMIT"),
        (500, _body("TRANSACTIONS_REFRESH_LIMIT", "RATE_LIMIT_EXCEEDED"), RateLimited, "TRANSACTIONS_REFRESH_LIMIT"),
        (400, _body("INSTITUTION_NOT_RESPONDING", "INSTITUTION_ERROR"), InstitutionDown, "INSTITUTION_NOT_RESPONDING"),
        (400, _body("INVALID_API_KEYS", "INVALID_INPUT"), InvalidRequest, "INVALID_API_KEYS"),
        (
            400,
            _body("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION", "TRANSACTIONS_ERROR"),
            MutationDuringPagination,
            "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
        ),
        (500, _body("INTERNAL_SERVER_ERROR", "API_ERROR"), Transient, "INTERNAL_SERVER_ERROR"),
        (502, "<html>bad gateway</html>", Transient, "HTTP_502"),
        (429, "", RateLimited, "HTTP_429"),
        (400, _body("PRODUCTS_NOT_SUPPORTED", "ITEM_ERROR"), PlaidError, "PRODUCTS_NOT_SUPPORTED"),
        # Item errors only the user clears (at the bank, then Link's update mode): a repair, not a retry.
        (400, _body("ACCESS_NOT_GRANTED", "ITEM_ERROR"), LoginRequired, "ACCESS_NOT_GRANTED"),
        (400, _body("NO_ACCOUNTS", "ITEM_ERROR"), LoginRequired, "NO_ACCOUNTS"),
        (400, _body("ITEM_LOCKED", "ITEM_ERROR"), LoginRequired, "ITEM_LOCKED"),
        (400, _body("USER_SETUP_REQUIRED", "ITEM_ERROR"), LoginRequired, "USER_SETUP_REQUIRED"),
    ],
)
def test_error_bodies_decode_into_our_tree(status: int, body: str, cls: type[PlaidError], code: str) -> None:
    err = error_from_body(status, body)
    assert type(err) is cls and err.code == code and err.http_status == status


def test_error_message_uses_display_message_and_request_id() -> None:
    err = error_from_body(400, _body("INSTITUTION_DOWN", "INSTITUTION_ERROR", display_message="Bank is down."))
    assert str(err).startswith("Bank is down.") and "rq" in str(err) and err.display_message == "Bank is down."


def test_a_hostile_error_code_is_cut_to_what_the_run_record_can_store() -> None:
    """A 10,000-character code with markup would not fit sync_runs.error_code (64): the failure could not be recorded."""
    err = error_from_body(400, json.dumps({"error_code": "<b>" + "X" * 10_000, "error_type": "ITEM_ERROR\n\x00"}))
    assert err.code == "bX" + "X" * 62 and err.error_type == "ITEM_ERROR"
    assert error_from_body(503, json.dumps({"error_code": 12})).code == "HTTP_503"


def _page(*txns: dict, removed: tuple[str, ...] = ()) -> dict:
    return {"added": list(txns), "modified": [], "removed": [{"transaction_id": r} for r in removed], "accounts": [],
            "next_cursor": "c", "has_more": False}  # fmt: skip


def test_display_text_longer_than_its_column_is_cut_to_fit() -> None:
    pfc = {"primary": "P" * 100, "detailed": "D" * 200, "confidence_level": "HIGH"}
    long = {**RAW_TXN, "name": "X" * 600, "merchant_name": "M" * 300, "personal_finance_category": pfc,
            "payment_channel": "C" * 40}  # fmt: skip
    t = map_transaction(long)
    assert (len(t.name), len(t.merchant_name or ""), len(t.category_primary or "")) == (512, 256, 64)
    assert (len(t.category_detailed or ""), len(t.payment_channel or "")) == (128, 32)
    a = map_account({"account_id": "a", "name": "N" * 200, "official_name": "O" * 300, "mask": "1" * 20,
                     "type": "depository", "subtype": "S" * 100, "balances": {}})  # fmt: skip
    assert (len(a.name), len(a.official_name or ""), len(a.mask or ""), len(a.subtype or "")) == (128, 256, 8, 64)


@pytest.mark.parametrize(
    "field",
    [
        {"transaction_id": "t" * 129},
        {"account_id": "a" * 129},
        {"pending_transaction_id": "p" * 129},
        {"iso_currency_code": "USDX"},
        {"unofficial_currency_code": "U" * 17},
    ],
)
def test_an_id_or_currency_too_long_to_store_makes_the_transaction_unreadable(field: dict) -> None:
    page = map_sync_page(_page({**RAW_TXN, **field}, {**RAW_TXN, "transaction_id": "ok"}))
    assert [t.transaction_id for t in page.added] == ["ok"]
    (bad,) = page.unreadable
    assert bad.kind == "added" and len(bad.transaction_id) <= 128 and "longer than" in bad.reason


def test_an_unreadable_posted_transaction_still_names_its_pending_twin() -> None:
    page = map_sync_page(_page({**RAW_TXN, "date": "2025-13-45"}))
    (bad,) = page.unreadable
    assert isinstance(bad, UnreadableRecord) and bad.pending_transaction_id == "p1"


def test_a_removal_of_an_id_too_long_to_store_names_nothing() -> None:
    assert map_sync_page(_page(removed=("x" * 129, "ok"))).removed == ("ok",)


def test_column_limits_match_the_tables() -> None:
    from models import BankAccount, LedgerTransaction, SyncStaged

    for model in (LedgerTransaction, SyncStaged):
        columns = model.__table__.columns  # type: ignore[attr-defined]
        for name, limit in {**TEXT_MAX, **CURRENCY_MAX}.items():
            assert columns[name].type.length == limit, (model, name)
        assert columns["plaid_transaction_id"].type.length == ID_MAX
        assert columns["pending_transaction_id"].type.length == ID_MAX
    for name, limit in ACCOUNT_TEXT_MAX.items():
        assert BankAccount.__table__.columns[name].type.length == limit, name  # type: ignore[attr-defined]


def test_a_crypto_account_keeps_its_code_and_eight_decimal_balances() -> None:
    from services.plaid_mapping import map_account

    a = map_account(
        {"account_id": "a1", "name": "Wallet", "type": "other", "subtype": None, "mask": None,
         "balances": {"current": 0.1234, "available": None, "limit": None, "iso_currency_code": None,
                      "unofficial_currency_code": "BTC"}}
    )  # fmt: skip
    assert (a.iso_currency_code, a.unofficial_currency_code, a.current_minor) == (None, "BTC", 12_340_000)
