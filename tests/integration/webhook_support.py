"""Building, signing and sending webhooks as Plaid (the demo bank) does, and reading what they left."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from models import PlaidItem, WebhookDelivery
from services import banking, webhooks
from services.db import unit_of_work
from tests.integration.conftest_bank import Bank


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, indent=2).encode()  # Plaid's layout; the hash is over these exact bytes


def linked(bank: Bank) -> tuple[uuid.UUID, str]:
    bank.user()
    item_id = banking.link_sandbox(bank.c, email="alice@example.com")
    return item_id, bank.plaid_item_id(item_id)


def state(bank: Bank, item_id: uuid.UUID) -> tuple[object, ...]:
    with unit_of_work(bank.c.engine) as session:
        item = session.get(PlaidItem, item_id)
        assert item is not None
        return item.status, item.status_code, item.sync_requested_at, item.consent_expires_at


def deliveries(bank: Bank) -> list[WebhookDelivery]:
    with unit_of_work(bank.c.engine) as session:
        return list(session.execute(select(WebhookDelivery).order_by(col(WebhookDelivery.received_at))).scalars())


def send(bank: Bank, body: bytes, token: str | None, header: str = "Plaid-Verification") -> webhooks.WebhookResult:
    headers = {"Content-Type": "application/json"} | ({header: token} if token is not None else {})
    return webhooks.handle_webhook(bank.c, body=body, headers=headers)


def sync_update(plaid_item_id: str) -> bytes:
    return body_of(
        {
            "webhook_type": "TRANSACTIONS",
            "webhook_code": "SYNC_UPDATES_AVAILABLE",
            "item_id": plaid_item_id,
            "initial_update_complete": True,
            "historical_update_complete": True,
            "environment": "sandbox",
        }
    )
