"""Formatting money and dates for display (money arrives as integer minor units)."""

from __future__ import annotations

from decimal import Decimal

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$"}


def money(minor: int | None, currency: str | None) -> str:
    """``-1234, "USD"`` -> ``-$12.34``; unknown amounts show as an em dash."""
    if minor is None:
        return "—"
    code = (currency or "USD").upper()
    value = Decimal(abs(minor)) / 100
    sign = "-" if minor < 0 else ""
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{value:,.2f}" if symbol else f"{sign}{value:,.2f} {code}"
