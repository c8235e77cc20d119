"""The webhook delivery record: the body read as untrusted JSON, its fields cut to fit, and the row of a delivery
that changed nothing."""

from __future__ import annotations

import json
from typing import Any

from models import WebhookDelivery
from services import safe_text
from services.container import Container
from services.db import unit_of_work


def parse_body(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is anything else."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested thousands deep: not a webhook either
        return None
    return data if isinstance(data, dict) else None


def body_text(value: object, limit: int) -> str | None:
    """A string field of the body, storable as is (unsafe characters escaped: PostgreSQL refuses NUL), cut to fit."""
    return safe_text.escaped(value)[:limit] if isinstance(value, str) and value else None


def record_delivery(c: Container, body: bytes, *, verified: bool, outcome: str) -> None:
    """A delivery that changed nothing (rejected, unreadable, replayed): what its body claims, as untrusted text.

    The claimed item_id is kept as sent (cut to its column) to trace probes, never resolved to one of our items.
    """
    data = parse_body(body) or {}
    with unit_of_work(c.engine, immediate=True) as session:
        session.add(
            WebhookDelivery(
                received_at=c.clock(),
                webhook_type=body_text(data.get("webhook_type"), 64),
                webhook_code=body_text(data.get("webhook_code"), 64),
                plaid_item_id=body_text(data.get("item_id"), 128),
                verified=verified,
                outcome=outcome[:255],
            )
        )
