"""Helpers for the banking tests: row counts, audit details, the demo bank's item behind a public token."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import SQLModel, col

from models import AuditEvent
from services.db import unit_of_work
from tests.integration.conftest_bank import Bank


def count(bank: Bank, model: type[SQLModel]) -> int:
    with unit_of_work(bank.c.engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def audit_events(bank: Bank, event: str) -> list[str]:
    with unit_of_work(bank.c.engine) as session:
        rows = session.execute(select(AuditEvent).where(col(AuditEvent.event) == event)).scalars()
        return [r.detail for r in rows]


def pending_item(bank: Bank, public_token: str) -> str:
    """The demo bank's item behind a public token that was not exchanged yet."""
    return bank.demo.bank.public_tokens[public_token][0]
