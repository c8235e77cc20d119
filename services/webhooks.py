"""Plaid webhooks: verified before anything else (services/webhook_verify.py), then applied once.

Answers fast: the only Plaid call is the (cached) verification-key fetch; syncing happens elsewhere.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from models import PlaidItem, WebhookDelivery
from services import mail_queue, wakeup
from services.container import Container
from services.db import unit_of_work
from services.notify import queue_connection_alert
from services.webhook_deliveries import body_text, parse_body, record_delivery
from services.webhook_items import apply_to_item, needs_user
from services.webhook_verify import Rejected, verify

log = logging.getLogger("finsync.webhooks")
DUPLICATE = "duplicate: already applied"  # a verified delivery whose signed content was applied before


@dataclass(frozen=True)
class WebhookResult:
    """What to answer Plaid, and what happened (also stored with the delivery)."""

    status_code: int
    outcome: str


@dataclass(frozen=True)
class _Applied:
    """What applying a delivery did, for after its commit: the log line, the scheduler's nudge and the mail."""

    outcome: str
    item_id: uuid.UUID | None
    wake: bool
    mail: list[uuid.UUID]


def handle_webhook(
    c: Container,
    *,
    body: bytes,
    headers: Mapping[str, str],
    source: str = "",
    may_record: Callable[[], bool] | None = None,
) -> WebhookResult:
    """Verify one delivery, then apply it once; 401 for anything unverified, 200 and no effect for a duplicate.

    ``source``: the sender (its own budget of unseen key ids). ``may_record``: asked before a rejected delivery
    is stored and logged, so a flood of forgeries fills neither the database nor the log (None: always).
    """
    now = c.clock()
    try:
        replay_key, signed_at = verify(c, body, headers, now, source)
    except Rejected as exc:
        outcome = f"rejected: {exc}"
        if may_record is None or may_record():  # the route's budget bounds these rows and lines
            record_delivery(c, body, verified=False, outcome=outcome)
            log.warning("webhook %s", outcome)
        return WebhookResult(401, outcome)
    data = parse_body(body)
    if data is None:
        record_delivery(c, body, verified=True, outcome="verified but not a JSON object")
        log.warning("webhook verified but not a JSON object")
        return WebhookResult(400, "unreadable body")
    try:
        done = _apply_once(c, data, replay_key, now, signed_at)
    except (Rejected, IntegrityError):  # a concurrent twin may win the unique replay key: same answer
        # What was signed has been applied already: Plaid's retry of a delivery it thinks we missed, two deliveries
        # of the same news in one second (indistinguishable), or a replay. None changes anything a second time, and
        # none gets an error: Plaid retries a non-200 answer for 24 hours, and stops retrying for a receiver that
        # rejects most of what it sends (plaid.com/docs/api/webhooks/#webhook-retries).
        record_delivery(c, body, verified=True, outcome=DUPLICATE)
        log.info("webhook %s", DUPLICATE)
        return WebhookResult(200, DUPLICATE)
    log.info("webhook %s/%s item=%s: %s", *(body_text(data.get(k), 64) for k in ("webhook_type", "webhook_code")),
             done.item_id, done.outcome)  # fmt: skip
    if done.wake:
        wakeup.nudge()  # committed: this process's scheduler syncs it now rather than at its next tick
    mail_queue.after_commit(c, done.mail)  # sent on the mail thread in the app: the answer does not wait for SMTP
    return WebhookResult(200, done.outcome)


def _apply_once(c: Container, data: Mapping[str, Any], replay_key: str, now: datetime, signed_at: datetime) -> _Applied:
    """Apply a verified delivery and store it, in one unit of work; ``Rejected(DUPLICATE)`` when it was seen before."""
    plaid_item_id = body_text(data.get("item_id"), 128)
    # SQLite: the write lock from the start. A deferred transaction that read first is refused at once
    # ("database is locked") when another delivery or a sync wrote meanwhile; this one waits its turn.
    with unit_of_work(c.engine, immediate=True) as session:
        seen = select(col(WebhookDelivery.id)).where(col(WebhookDelivery.signature_sha256) == replay_key)
        if session.execute(seen).first() is not None:
            raise Rejected(DUPLICATE)
        item = session.execute(  # locked: a sync committing its own view of the status waits, or is waited for
            select(PlaidItem).where(col(PlaidItem.plaid_item_id) == plaid_item_id).with_for_update()
        ).scalar_one_or_none()
        before = item.status if item is not None else None
        outcome = "unknown item" if item is None else apply_to_item(item, data, now, signed_at)
        item_id = item.id if item is not None else None
        wake = item is not None and item.sync_requested_at is not None
        alert = needs_user(item, before)
        mail = [] if alert is None else queue_connection_alert(session, c, *alert)  # commits with the status
        session.add(WebhookDelivery(received_at=now, webhook_type=body_text(data.get("webhook_type"), 64),
                                    webhook_code=body_text(data.get("webhook_code"), 64), plaid_item_id=plaid_item_id,
                                    item_id=item.id if item else None, verified=True, outcome=outcome[:255],
                                    signature_sha256=replay_key))  # fmt: skip
    return _Applied(outcome, item_id, wake, mail)
