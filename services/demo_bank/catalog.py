"""Static reference data for the demo bank: institutions, account templates and merchants."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Institution:
    """A demo institution as `/institutions/get_by_id` describes it."""

    institution_id: str
    name: str
    url: str
    primary_color: str
    routing_number: str
    listed: bool = True  # offered in the Link stand-in's picker; unlisted ones answer scripts that name them by id


INSTITUTIONS: dict[str, Institution] = {
    i.institution_id: i
    for i in (
        Institution("ins_demo_1", "First Demo Bank", "https://first.demo.invalid", "#1f6feb", "011000015"),
        Institution("ins_demo_2", "Maple Credit Union", "https://maple.demo.invalid", "#b5442c", "021000021"),
        Institution("ins_demo_3", "Harbor National", "https://harbor.demo.invalid", "#0b7a75", "031000053"),
        # Plaid's own Sandbox-only test institutions (non-OAuth), so a script written for Plaid's sandbox runs here
        # unchanged: `link-sandbox --institution ins_109508` is what Plaid's docs and quickstarts use.
        *(
            Institution(iid, name, f"https://{iid}.demo.invalid", "#5a5a5a", routing, listed=False)
            for iid, name, routing in (
                ("ins_109508", "First Platypus Bank", "011401533"),
                ("ins_109509", "First Gingham Credit Union", "021200339"),
                ("ins_109510", "Tattersall Federal Credit Union", "031101169"),
                ("ins_109511", "Tartan Bank", "041000124"),
            )
        ),
    )
}


@dataclass(frozen=True)
class AccountTemplate:
    """The shape of one account every demo item gets."""

    key: str
    name: str
    official_name: str
    type: str
    subtype: str
    opening_cents: int
    limit_cents: int | None


ACCOUNT_TEMPLATES: tuple[AccountTemplate, ...] = (
    AccountTemplate(
        "checking", "Everyday Checking", "Everyday Checking Account", "depository", "checking", 420_000, None
    ),
    AccountTemplate("savings", "Rainy Day Savings", "High Yield Savings", "depository", "savings", 1_250_000, None),
    AccountTemplate("credit", "Rewards Card", "Rewards Visa Signature", "credit", "credit card", 0, 800_000),
)
# An account the bank opens later (fault "new_accounts"): Plaid then sends NEW_ACCOUNTS_AVAILABLE, and it is
# shared only when the user picks it in update mode with account selection on.
OPENED_LATER = AccountTemplate("goal", "Holiday Savings", "Holiday Club Savings", "depository", "savings", 50_000, None)
ALL_TEMPLATES: tuple[AccountTemplate, ...] = (*ACCOUNT_TEMPLATES, OPENED_LATER)


@dataclass(frozen=True)
class Merchant:
    """A counterparty with its Plaid category and a typical amount range in cents (money out positive)."""

    name: str
    merchant: str | None
    primary: str
    detailed: str
    low_cents: int
    high_cents: int
    channel: str = "in store"
    website: str | None = None


# Everyday spending drawn at random; amounts are Plaid-signed (positive = money out).
SPENDING: tuple[Merchant, ...] = (
    Merchant("WHOLE FOODS MKT #10293", "Whole Foods", "FOOD_AND_DRINK", "FOOD_AND_DRINK_GROCERIES", 2_500, 14_000),
    Merchant("TRADER JOE'S #552", "Trader Joe's", "FOOD_AND_DRINK", "FOOD_AND_DRINK_GROCERIES", 1_800, 9_000),
    Merchant("STARBUCKS STORE 0411", "Starbucks", "FOOD_AND_DRINK", "FOOD_AND_DRINK_COFFEE", 350, 1_200),
    Merchant("CHIPOTLE 1187", "Chipotle Mexican Grill", "FOOD_AND_DRINK", "FOOD_AND_DRINK_FAST_FOOD", 900, 2_400),
    Merchant("SQ *BLUE DOOR BISTRO", "Blue Door Bistro", "FOOD_AND_DRINK", "FOOD_AND_DRINK_RESTAURANT", 2_800, 11_000),
    Merchant(
        "AMAZON.COM*2K4LM1",
        "Amazon",
        "GENERAL_MERCHANDISE",
        "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES",
        1_200,
        16_000,
        "online",
        "amazon.com",
    ),
    Merchant("TARGET 00012345", "Target", "GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_SUPERSTORES", 1_500, 12_000),
    Merchant("SHELL OIL 5744", "Shell", "TRANSPORTATION", "TRANSPORTATION_GAS", 3_000, 7_500),
    Merchant("UBER *TRIP", "Uber", "TRANSPORTATION", "TRANSPORTATION_TAXIS_AND_RIDE_SHARES", 1_100, 4_800, "online"),
    Merchant("CVS/PHARMACY #0891", "CVS", "MEDICAL", "MEDICAL_PHARMACIES_AND_SUPPLEMENTS", 600, 5_500),
    Merchant("AMC THEATRES 1021", "AMC Theatres", "ENTERTAINMENT", "ENTERTAINMENT_TV_AND_MOVIES", 1_400, 4_200),
    Merchant("HOME DEPOT #6612", "The Home Depot", "HOME_IMPROVEMENT", "HOME_IMPROVEMENT_HARDWARE", 1_500, 22_000),
)


@dataclass(frozen=True)
class Recurring:
    """A recurring stream: who, which account, how often (days or monthly day), and the amount."""

    key: str
    merchant: Merchant
    account: str
    every_days: int | None
    day_of_month: int | None
    cents: int
    frequency: str


_PAYROLL = Merchant("ACME CORP PAYROLL PPD ID: 1234567890", "Acme Corp", "INCOME", "INCOME_WAGES", 0, 0, "other")
_RENT = Merchant(
    "GREENLEAF PROPERTY MGMT RENT", "Greenleaf Property", "RENT_AND_UTILITIES", "RENT_AND_UTILITIES_RENT", 0, 0
)
_NETFLIX = Merchant(
    "NETFLIX.COM", "Netflix", "ENTERTAINMENT", "ENTERTAINMENT_TV_AND_MOVIES", 0, 0, "online", "netflix.com"
)
_SPOTIFY = Merchant(
    "SPOTIFY USA", "Spotify", "ENTERTAINMENT", "ENTERTAINMENT_MUSIC_AND_AUDIO", 0, 0, "online", "spotify.com"
)
_GYM = Merchant(
    "PLANET FITNESS CLUB FEES", "Planet Fitness", "PERSONAL_CARE", "PERSONAL_CARE_GYMS_AND_FITNESS_CENTERS", 0, 0
)
_POWER = Merchant(
    "CITY POWER & LIGHT AUTOPAY",
    "City Power & Light",
    "RENT_AND_UTILITIES",
    "RENT_AND_UTILITIES_GAS_AND_ELECTRICITY",
    0,
    0,
)
_SAVE = Merchant("ONLINE TRANSFER TO SAVINGS", None, "TRANSFER_OUT", "TRANSFER_OUT_SAVINGS", 0, 0, "other")
_SAVE_IN = Merchant("ONLINE TRANSFER FROM CHECKING", None, "TRANSFER_IN", "TRANSFER_IN_SAVINGS", 0, 0, "other")
_INTEREST = Merchant("INTEREST PAYMENT", None, "INCOME", "INCOME_INTEREST_EARNED", 0, 0, "other")

RECURRING: tuple[Recurring, ...] = (
    Recurring("payroll", _PAYROLL, "checking", 14, None, -285_000, "BIWEEKLY"),
    Recurring("rent", _RENT, "checking", None, 1, 185_000, "MONTHLY"),
    Recurring("netflix", _NETFLIX, "credit", None, 7, 1_549, "MONTHLY"),
    Recurring("spotify", _SPOTIFY, "credit", None, 12, 1_199, "MONTHLY"),
    Recurring("gym", _GYM, "credit", None, 17, 2_499, "MONTHLY"),
    Recurring("power", _POWER, "checking", None, 21, 9_800, "MONTHLY"),
    Recurring("save_out", _SAVE, "checking", None, 2, 50_000, "MONTHLY"),
    Recurring("save_in", _SAVE_IN, "savings", None, 2, -50_000, "MONTHLY"),
    Recurring("card_payment", _SAVE, "checking", None, 25, 0, "MONTHLY"),
    Recurring("interest", _INTEREST, "savings", None, 28, -1_042, "MONTHLY"),
)

# Which spending merchants get a tip added when the pending charge posts.
TIPPED = frozenset({"FOOD_AND_DRINK_RESTAURANT"})
