"""Transactions set aside as unreadable (``sync_quarantine``): shown to their owner, and retried every sync.

Plaid sends a transaction once; when finsync cannot read it, its JSON is kept with the reason. Each sync
maps the kept JSON again first: when this finsync can read it (a fix shipped since), it comes in like any
added transaction, and the apply forgets it (``sync_commit.set_aside``). Changes Plaid sends later in the
same run win, since they are staged after it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlmodel import col, select

from models import PlaidItem, SyncQuarantine
from services import plaid_mapping, safe_text
from services.container import Container
from services.db import unit_of_work
from services.sync_apply import ADDED, staged_values
from services.sync_store import Sql


def readable_again(sql: Sql, item_id: uuid.UUID) -> list[tuple[int, str, tuple[Any, ...]]]:
    """The item's set-aside transactions this finsync can read now, as staged additions."""
    rows = sql.run(
        "SELECT plaid_transaction_id, excerpt FROM sync_quarantine WHERE item_id = ? ORDER BY first_seen_at",
        (sql.uid(item_id),),
    ).fetchall()
    out: list[tuple[int, str, tuple[Any, ...]]] = []
    for tid, excerpt in rows:
        try:
            t = plaid_mapping.map_transaction(json.loads(excerpt))
        except (TypeError, ValueError, KeyError, AttributeError):
            continue  # still unreadable (or cut short): it stays set aside
        if t.transaction_id == tid:
            out.append((ADDED, t.transaction_id, staged_values(t)))
    return out


@dataclass(frozen=True)
class SetAsideView:
    """One set-aside transaction as the Sync history page lists it."""

    institution_name: str
    first_seen_at: datetime
    reason: str
    day: date | None
    name: str
    amount: str


def list_set_aside(c: Container, user_id: uuid.UUID) -> list[SetAsideView]:
    """The user's transactions that could not be read, with what could be made out of them."""
    with unit_of_work(c.engine) as session:
        rows = session.execute(
            select(SyncQuarantine, PlaidItem.institution_name)
            .join(PlaidItem, col(PlaidItem.id) == col(SyncQuarantine.item_id))
            .where(col(SyncQuarantine.user_id) == user_id)
            .order_by(col(SyncQuarantine.first_seen_at).desc())
        ).all()
        return [_view(q, name) for q, name in rows]


def _view(q: SyncQuarantine, institution: str) -> SetAsideView:
    try:
        raw = json.loads(q.excerpt)
    except ValueError:
        raw = {}
    raw = raw if isinstance(raw, dict) else {}
    try:
        day = plaid_mapping.as_date(raw.get("date"))
    except (TypeError, ValueError):
        day = None
    name = safe_text.clean(str(raw.get("merchant_name") or raw.get("name") or ""))[:120]
    return SetAsideView(institution, q.first_seen_at, q.reason, day, name, _amount(raw)[:40])


def _amount(raw: dict[str, object]) -> str:
    """The amount with the statement sign (money out negative) when it is a number, else as the bank sent it."""
    amount, currency = raw.get("amount"), raw.get("iso_currency_code") or raw.get("unofficial_currency_code") or ""
    if amount is None:
        return ""
    try:
        value = (
            -Decimal(str(amount)) + 0
        )  # (+ 0: never "-0") Plaid's sign is reversed once, as the mapper does for readable ones
    except InvalidOperation:
        return safe_text.clean(f"{amount} {currency}").strip()
    return safe_text.clean(f"{value if value.is_finite() else amount} {currency}").strip()
