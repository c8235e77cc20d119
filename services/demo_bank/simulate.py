"""Deterministic synthetic banking life: each simulated day is seeded by (item seed, date)."""

from __future__ import annotations

import calendar
import random
from datetime import date, timedelta

from services.demo_bank.catalog import RECURRING, SPENDING, TIPPED, Merchant, Recurring
from services.demo_bank.ledger import Ledger, Txn

_CONFIDENCE = ("VERY_HIGH", "VERY_HIGH", "HIGH", "MEDIUM")


def _txn(
    ledger: Ledger,
    account_id: str,
    m: Merchant,
    cents: int,
    day: date,
    rng: random.Random,
    pending: bool = False,
    stream: str | None = None,
) -> Txn:
    return Txn(
        transaction_id=ledger.new_id(),
        account_id=account_id,
        cents=cents,
        date=day,
        authorized_date=day,
        name=m.name,
        merchant_name=m.merchant,
        primary=m.primary,
        detailed=m.detailed,
        confidence=rng.choice(_CONFIDENCE),
        channel=m.channel,
        website=m.website,
        pending=pending,
        stream=stream,
    )


def _recurs_on(rec: Recurring, day: date, anchor: date) -> bool:
    if rec.every_days is not None:
        return (day - anchor).days % rec.every_days == 0
    assert rec.day_of_month is not None
    last = calendar.monthrange(day.year, day.month)[1]
    return day.day == min(rec.day_of_month, last)


def simulate_day(ledger: Ledger, accounts: dict[str, str], seed: str, day: date, anchor: date) -> None:
    """Post yesterday's holds, book today's bills and pay, add pending card spending, and tidy history."""
    rng = random.Random(f"{seed}:{day.isoformat()}")
    # In booking order, not id order: ids differ per link, and the same login linked again must live the same life.
    for txn in sorted((t for t in ledger.txns.values() if t.pending and t.date < day), key=lambda t: t.created_pos):
        if rng.random() < 0.06:
            ledger.remove(txn.transaction_id)  # an authorization hold that never posts
            continue
        tip = rng.randint(100, 900) if txn.detailed in TIPPED else 0
        ledger.post(txn.transaction_id, cents=txn.cents + tip, posted_on=day)
    for rec in RECURRING:
        if rec.cents and _recurs_on(rec, day, anchor):
            cents = rec.cents if rec.key != "power" else rec.cents + rng.randint(-1500, 2500)
            ledger.add(_txn(ledger, accounts[rec.account], rec.merchant, cents, day, rng, stream=rec.key))
    if day.day == 25:
        _pay_card(ledger, accounts, day, rng)
    for _ in range(rng.randint(0, 4)):
        m = rng.choice(SPENDING)
        acct = accounts["credit"] if rng.random() < 0.7 else accounts["checking"]
        ledger.add(_txn(ledger, acct, m, rng.randint(m.low_cents, m.high_cents), day, rng, pending=True))
    if rng.random() < 0.15:
        recent = [t for t in ledger.txns.values() if not t.pending and t.stream is None and (day - t.date).days < 10]
        if recent:
            victim = min(recent, key=lambda t: t.created_pos)
            ledger.modify(victim.transaction_id, confidence="VERY_HIGH", name=victim.name.title())


_CARD_PAYMENT_OUT = Merchant(
    "REWARDS CARD AUTOPAY", None, "LOAN_PAYMENTS", "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT", 0, 0, "other"
)
_CARD_PAYMENT_IN = Merchant(
    "AUTOPAY PAYMENT - THANK YOU", None, "LOAN_PAYMENTS", "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT", 0, 0, "other"
)


def _pay_card(ledger: Ledger, accounts: dict[str, str], day: date, rng: random.Random) -> None:
    """Pay the card's posted balance in full from checking: two legs of one transfer."""
    owed, _ = ledger.balance(accounts["credit"])
    if owed > 0:
        ledger.add(_txn(ledger, accounts["checking"], _CARD_PAYMENT_OUT, owed, day, rng, stream="card_payment"))
        ledger.add(_txn(ledger, accounts["credit"], _CARD_PAYMENT_IN, -owed, day, rng))


def simulate_range(ledger: Ledger, accounts: dict[str, str], seed: str, first: date, last: date) -> None:
    """Run `simulate_day` for every day from `first` to `last` inclusive."""
    day = first
    while day <= last:
        simulate_day(ledger, accounts, seed, day, anchor=first)
        day += timedelta(days=1)


def bulk_history(ledger: Ledger, accounts: dict[str, str], seed: str, count: int, end: date) -> None:
    """Append `count` posted transactions spread over the years before `end`, fast, for benchmarks."""
    rng = random.Random(f"{seed}:bulk:{count}")
    ids = list(accounts.values())
    per_day = 25
    for n in range(count):
        m = SPENDING[rng.randrange(len(SPENDING))]
        day = end - timedelta(days=1 + n // per_day)
        ledger.add(
            Txn(
                transaction_id=ledger.new_id(),
                account_id=ids[n % len(ids)],
                cents=rng.randint(m.low_cents, m.high_cents),
                date=day,
                authorized_date=day,
                name=m.name,
                merchant_name=m.merchant,
                primary=m.primary,
                detailed=m.detailed,
                confidence="HIGH",
                channel=m.channel,
                website=m.website,
                pending=False,
            )
        )
