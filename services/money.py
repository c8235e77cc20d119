"""Money as integer minor units of its currency: each currency's decimal places, exact conversion, and display."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

MAX_MINOR = 10**15  # ten trillion in a two-decimal currency: larger is garbage, and BIGINT stays far away
MAX_MINOR_WIDE = 10**18  # ten billion units of an 8-decimal currency; BIGINT ends at 9.2e18
# ISO 4217 minor-unit exponents that are not 2; https://www.six-group.com/en/products-services/financial-information/data-standards.html
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
                     "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip
# Every active ISO 4217 code. Anything else is one of Plaid's unofficial_currency_code values (crypto such as BTC),
# kept to 8 decimals so that 0.00050000 BTC is not rounded to nothing.
_ISO_CODES = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD "
    "CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP "
    "GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK "
    "LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB "
    "PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB "
    "TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR "
    "ZMW ZWG ZWL"
)
ISO_4217 = frozenset(_ISO_CODES.split())
UNOFFICIAL_EXPONENT = 8


def exponent(currency: str | None) -> int:
    """Decimal places of a currency's minor unit (2 when unknown; 8 for a non-ISO code such as BTC)."""
    if not currency:
        return 2
    code = currency.upper()
    return _EXPONENTS.get(code, 2) if code in ISO_4217 else UNOFFICIAL_EXPONENT


def decimal_text(amount_minor: int, currency: str | None, *, grouped: bool = False) -> str:
    """Minor units as a decimal in the currency's own places (``-12.50``; ``-1200`` JPY; ``-0.00050000`` BTC)."""
    places = exponent(currency)
    value = Decimal(amount_minor).scaleb(-places)
    return f"{value:,.{places}f}" if grouped else f"{value:.{places}f}"


def in_units(amount_minor: int, currency: str | None) -> Decimal:
    """Minor units as an exact amount of the currency (1200 JPY -> 1200; 1250 USD -> 12.50)."""
    return Decimal(amount_minor).scaleb(-exponent(currency))


def threshold_units(hundredths: int) -> Decimal:
    """A notification threshold (stored in hundredths of a plain amount) as an amount to compare with ``in_units``."""
    return Decimal(hundredths).scaleb(-2)


def threshold_minor(hundredths: int, currency: str | None) -> int:
    """The least amount in ``currency``'s minor units at or above a threshold (500.00 is 500 JPY, 500.000 KWD)."""
    return int(threshold_units(hundredths).scaleb(exponent(currency)).to_integral_value(rounding=ROUND_CEILING))


def to_minor(amount: float | int | str | Decimal, currency: str | None) -> int:
    """Convert a decimal amount to integer minor units of its currency, exactly (via `str`, never float math)."""
    exp = exponent(currency)
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
    if abs(value) >= (MAX_MINOR_WIDE if exp > 4 else MAX_MINOR) or isinstance(amount, bool):
        raise ValueError(f"not an amount: {str(amount)[:40]!r}")  # the gateway reports MALFORMED_RESPONSE
    return value
