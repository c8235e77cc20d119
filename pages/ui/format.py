"""Formatting money and dates for display (money arrives as integer minor units)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.export import decimal_amount

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "JPY": "¥"}


def money(minor: int | None, currency: str | None) -> str:
    """``-1234, "USD"`` -> ``-$12.34``; unknown amounts show as an em dash."""
    if minor is None:
        return "—"
    code = (currency or "USD").upper()
    value = Decimal(decimal_amount(abs(minor), code))  # the currency's own decimals: 1200 yen, 1.500 dinar
    places = -int(value.as_tuple().exponent)
    sign = "-" if minor < 0 else ""
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{value:,.{places}f}" if symbol else f"{sign}{value:,.{places}f} {code}"


def when(stamp: datetime | None, empty: str = "never") -> str:
    """A stored UTC time as ``2026-11-27 05:58 UTC``."""
    return f"{stamp:%Y-%m-%d %H:%M} UTC" if stamp else empty
