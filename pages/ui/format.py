"""Formatting money and dates for display (money arrives as integer minor units)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from services import audit
from services.audit import AuditView
from services.banking import ItemView
from services.money import decimal_text

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "JPY": "¥"}


def money(minor: int | None, currency: str | None) -> str:
    """``-1234, "USD"`` -> ``-$12.34``; unknown amounts show as an em dash."""
    if minor is None:
        return "—"
    code = (currency or "USD").upper()
    value = decimal_text(abs(minor), code, grouped=True)  # the currency's own decimals: 1,200 yen, 1.500 dinar
    sign = "-" if minor < 0 else ""
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{value}" if symbol else f"{sign}{value} {code}"


def sortable_money(frame: pd.DataFrame, column: str, amounts: list[tuple[int, str | None]]) -> Styler:
    """``frame`` for ``st.dataframe`` with ``column`` as numbers (row i holding ``amounts[i]``: minor units and
    currency) shown as ``money`` shows them: a click on its header sorts by amount, not by the text (which put -$9.25
    after -$85.00, -$1,850 after -$1,088).

    Each cell shows its own minor units, never a number read back from the float: one holds 15 to 17 digits, and an
    8-decimal currency keeps up to 18 (-999,999,999.99999999 BTC came back as -1,000,000,000.00000000 BTC)."""
    texts: dict[str | None, dict[float, str]] = {}  # per currency, each number's text
    rows: dict[str | None, list[int]] = {}
    alone: list[tuple[int, str]] = []  # rows whose number an amount one unit apart shares: each shows its own
    for row, (minor, code) in enumerate(amounts):
        text, number = money(minor, code), frame[column].iat[row]
        rows.setdefault(code, []).append(row)
        if texts.setdefault(code, {}).setdefault(number, text) != text:
            alone.append((row, text))
    shown = frame.style
    for code, at in rows.items():
        shown = shown.format(lambda v, known=texts[code]: known.get(v, "—"), subset=pd.IndexSlice[at, [column]])
    for row, text in alone:
        shown = shown.format(lambda _v, text=text: text, subset=pd.IndexSlice[[row], [column]])
    return shown


def masks(item: ItemView) -> str:
    """The last digits of a connection's accounts, as the page shows them: ``••0760, ••8779``."""
    return ", ".join(f"••{a.mask}" for a in item.accounts if a.mask)


def bank_labels(items: list[ItemView]) -> dict[uuid.UUID, str]:
    """Each linked bank's name; where two connections share it, with its accounts' last digits, to tell them apart
    (``First Demo Bank (••0760, ••8779)``)."""
    names = Counter(i.institution_name for i in items)
    labels = {}
    for i in items:
        digits = masks(i)
        labels[i.id] = (
            f"{i.institution_name} ({digits})" if names[i.institution_name] > 1 and digits else i.institution_name
        )
    return labels


def viewer_zone() -> tzinfo:
    """The time zone of the person's browser (``st.context.timezone``); UTC when unknown or not a real zone."""
    try:
        name = st.context.timezone
    except Exception:  # no browser behind this run
        return UTC
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        return UTC
    try:
        return ZoneInfo(name)  # refuses paths and unknown names; caches the zones it loaded
    except (ValueError, ZoneInfoNotFoundError, OSError):
        return UTC


def when(stamp: datetime | None, empty: str = "never", zone: tzinfo | None = None) -> str:
    """A stored UTC time in the viewer's zone, ``2026-11-27 00:58 EST`` (``2026-11-27 05:58 UTC`` if unknown)."""
    if not stamp:
        return empty
    local = _local(stamp, zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or 'UTC'}"


def day(stamp: datetime, zone: tzinfo | None = None) -> str:
    """The viewer's calendar day of a stored UTC time, ``2026-11-27``."""
    return _local(stamp, zone).date().isoformat()


def _local(stamp: datetime, zone: tzinfo | None) -> datetime:
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(zone or viewer_zone())


# Plaid's personal_finance_category primaries; a detailed code starts with its primary.
_PRIMARIES = (
    "INCOME", "TRANSFER_IN", "TRANSFER_OUT", "LOAN_PAYMENTS", "BANK_FEES", "ENTERTAINMENT", "FOOD_AND_DRINK",
    "GENERAL_MERCHANDISE", "HOME_IMPROVEMENT", "MEDICAL", "PERSONAL_CARE", "GENERAL_SERVICES",
    "GOVERNMENT_AND_NON_PROFIT", "TRANSPORTATION", "TRAVEL", "RENT_AND_UTILITIES",
)  # fmt: skip


_ACRONYMS = {"tv": "TV", "atm": "ATM"}  # in Plaid's codes: ENTERTAINMENT_TV_AND_MOVIES, BANK_FEES_ATM_FEES


def _words(code: str) -> str:
    words = code.replace("_", " ").lower().capitalize().split(" ")
    return " ".join(_ACRONYMS.get(w.lower(), w) for w in words)


def category(value: str | None) -> str:
    """A bank's category code in words (``FOOD_AND_DRINK_COFFEE`` -> ``Food and drink · Coffee``); a user's as typed."""
    if not value or not value.isupper() or " " in value:
        return value or ""
    for primary in _PRIMARIES:
        if value == primary:
            return _words(primary)
        if value.startswith(primary + "_"):
            return f"{_words(primary)} · {_words(value[len(primary) + 1 :])}"
    return _words(value)


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))  # fmt: skip


def device(user_agent: str) -> str:
    """``Firefox on Linux`` from a User-Agent header (order matters: Edge also says Chrome and Safari)."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (user_agent[:40] or "unknown browser")


def count(n: int, word: str, plural: str | None = None) -> str:
    """``1 account``, ``3 accounts``."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


# What each audit event means to the person it is about (Settings → Activity); others read as their words.
ACTIVITY = {
    "registered": "Account created", "email_verified": "Email address verified",
    "sign_in_ok": "Signed in", "sign_in_failed": "Sign-in refused", "sign_out": "Signed out",
    "account_locked": "Sign-in paused after failed attempts", "ip_throttled": "Address paused after too many tries",
    "session_revoked": "Session ended", "password_changed": "Password changed",
    "password_change_failed": "Password change refused (wrong password)",
    "reauth_failed": "Password check failed for a protected action",
    "password_reset_requested": "Password reset requested", "password_reset_done": "Password reset",
    "email_change_requested": "Email change requested", "email_changed": "Email address changed",
    "email_change_cancelled": "Email change cancelled",
    "totp_enabled": "Two-factor sign-in turned on", "totp_disabled": "Two-factor sign-in turned off",
    "totp_failed": "Two-factor code refused", "totp_replay": "Two-factor code refused (already used)",
    "recovery_code_used": "Recovery code used", "recovery_codes_regenerated": "New recovery codes made",
    "bank_linked": "Bank linked", "bank_link_failed": "Bank linking failed", "bank_repaired": "Bank connection renewed",
    "bank_removed": "Bank removed", "kept_history_deleted": "Kept history of a removed bank deleted",
    "transactions_exported": "Transactions downloaded",
    "access_denied": "Refused: not yours", "admin_unlock": "Unlocked by an administrator",
    "admin_sign_out": "Signed out by an administrator", "admin_disable": "Disabled by an administrator",
    "admin_enable": "Enabled by an administrator", "account_deleted": "Account deleted",
    "registration_email_taken": "Someone tried to register with your email address",
    "email_change_email_taken": "Another account tried to move onto your email address",
    "bank_revocation_done": "Bank access withdrawn at Plaid",
    "bank_revocation_given_up": "Withdrawing bank access at Plaid failed",
    "mail_given_up": "An email to you could not be delivered",
}  # fmt: skip


def activity_words(event: str) -> str:
    """An audit event as a sentence fragment (``sign_in_ok`` -> ``Signed in``)."""
    return ACTIVITY.get(event) or event.replace("_", " ").capitalize()


_SIGN_IN_WAYS = {"password": "with the password", "password+totp": "with the password and an authenticator code",
                 "password+recovery": "with the password and a recovery code"}  # fmt: skip


def activity_from(event: AuditView, unknown: str = "unknown") -> str:
    """Where an audit event came from: the client's address, or the server's command line (an operator's export)."""
    if audit.from_command_line(event):
        return "the server's command line"
    return event.ip or unknown


def activity_detail(event: str, detail: str) -> str:
    """An audit event's detail in words where it is a code (how a sign-in was proved)."""
    return _SIGN_IN_WAYS.get(detail, detail) if event == "sign_in_ok" else detail
