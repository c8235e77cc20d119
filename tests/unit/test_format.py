"""How pages write money and categories: what a person reads in the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pages.ui.format import ACTIVITY, activity_words, category, day, device, money, viewer_zone, when
from services.audit import EVENTS


def test_money_uses_each_currencys_own_decimals() -> None:
    assert money(-123456, "USD") == "-$1,234.56"
    assert money(1200, "JPY") == "¥1,200"  # yen have no minor unit: 1200 is twelve hundred yen
    assert money(1500, "KWD") == "1.500 KWD"
    assert money(None, "USD") == "—"


def test_bank_category_codes_read_as_words_and_a_users_category_as_typed() -> None:
    assert category("FOOD_AND_DRINK_COFFEE") == "Food and drink · Coffee"
    assert category("TRANSFER_IN_DEPOSIT") == "Transfer in · Deposit"
    assert category("TRAVEL") == "Travel"
    assert category("ENTERTAINMENT_TV_AND_MOVIES") == "Entertainment · TV and movies"
    assert category("BANK_FEES_ATM_FEES") == "Bank fees · ATM fees"
    assert category("Weekend trips") == "Weekend trips"
    assert category(None) == ""


def test_sessions_name_the_browser_and_system_not_the_raw_header() -> None:
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
    edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36 Edg/131.0"
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Version/18.1 Safari/604.1"
    assert device(chrome) == "Chrome on Linux"
    assert device(edge) == "Edge on Windows"
    assert device(iphone) == "Safari on iPhone"
    assert device("") == "unknown browser"


def test_a_crypto_amount_keeps_its_eight_decimals_from_plaid_to_the_page_and_the_csv() -> None:
    """Plaid's unofficial currencies (BTC) are not two-decimal: 0.0005 BTC must not round to nothing."""
    from services.export import decimal_amount
    from services.plaid_mapping import map_transaction

    t = map_transaction(
        {"transaction_id": "t1", "account_id": "a1", "amount": 0.0005, "iso_currency_code": None,
         "unofficial_currency_code": "BTC", "date": "2026-12-01", "name": "Coffee in sats", "pending": False}
    )  # fmt: skip
    assert t.amount_minor == -50_000  # money out, in hundred-millionths
    assert decimal_amount(t.amount_minor, "BTC") == "-0.00050000"
    assert money(t.amount_minor, "BTC") == "-0.00050000 BTC"
    assert money(-1234, "USD") == "-$12.34"  # ISO currencies keep their own exponents


def test_every_audit_event_reads_as_words_in_the_activity_list() -> None:
    assert sorted(EVENTS - ACTIVITY.keys()) == []  # a new event gets its own words, not its code
    assert activity_words("sign_in_ok") == "Signed in"
    assert activity_words("something_new") == "Something new"


def test_times_read_in_the_viewers_zone_and_say_which() -> None:
    stored = datetime(2026, 12, 5, 0, 11)  # the database keeps UTC
    assert when(stored, zone=ZoneInfo("America/New_York")) == "2026-12-04 19:11 EST"
    assert when(stored.replace(tzinfo=UTC), zone=ZoneInfo("Asia/Tokyo")) == "2026-12-05 09:11 JST"
    assert when(stored, zone=UTC) == "2026-12-05 00:11 UTC"
    assert when(None) == "never" and when(None, "") == ""
    assert viewer_zone() == UTC  # no browser behind this call
    assert day(stored, zone=ZoneInfo("America/New_York")) == "2026-12-04"  # the evening before, in New York
    assert day(stored) == "2026-12-05"


def test_the_activity_log_says_how_many_sessions_ended_in_words() -> None:
    from services.audit import sessions_ended

    assert sessions_ended(0) == "no other session was open"  # not "0 other sessions ended"
    assert sessions_ended(1) == "1 other session ended" and sessions_ended(3) == "3 other sessions ended"
    assert sessions_ended(0, others=False) == "no session was open" and sessions_ended(2, others=False) == (
        "2 sessions ended"
    )


def test_md_breaks_the_links_a_browser_would_make_of_bank_or_user_text() -> None:
    """Streamlit's Markdown links www.x.y, http(s)://x and x@y.z in plain text, escaped or not (the Chromium test
    in tests/e2e/test_auth_browser.py sees it): md() puts an invisible word joiner where each pattern needs its
    dot, colon or at sign, so the text reads the same and links nowhere. Amounts keep their plain dots."""
    from pages.ui.text import WORD_JOINER, md

    wj = WORD_JOINER
    assert md("CALL WWW.EVIL.EXAMPLE") == f"CALL WWW{wj}\\.EVIL\\.EXAMPLE"
    assert md("refund at https://evil.example/x") == f"refund at https{wj}\\://evil\\.example/x"
    assert md("help@evil.example") == f"help{wj}@evil\\.example"
    assert md("$65.26 at Amazon.com") == "\\$65\\.26 at Amazon\\.com"  # nothing there a browser links
    assert md("[a](javascript:alert(1))") == "\\[a\\]\\(javascript\\:alert\\(1\\)\\)"
    assert md("**x**").replace("\\", "") == "**x**"


def test_a_time_in_running_text_wraps_around_itself_never_inside() -> None:
    """A browser breaks a line at a space or after a hyphen: ``started 2026-12-`` / ``07 12:46 UTC`` in a narrow
    column (the Chromium test in tests/e2e/test_auth_browser.py measures it). unbroken() leaves neither, and the
    text reads the same."""
    from pages.ui.text import NO_BREAK_SPACE, WORD_JOINER, unbroken

    kept = unbroken("started 2026-12-07 12:46 UTC")
    assert " " not in kept and kept.count("-" + WORD_JOINER) == 2
    assert kept.replace(NO_BREAK_SPACE, " ").replace(WORD_JOINER, "") == "started 2026-12-07 12:46 UTC"
