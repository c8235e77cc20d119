"""The bot's scheduled self-check: every ``SYNC_VERIFY_DAYS`` each bank's ledger is compared with a full replay.

The scheduler checks at most one bank per pass, the one waiting longest, and only a bank whose last sync
succeeded (a bank that is down or needs its user is left to the ordinary sync and its back-off). A check
that ended with a verdict (verified, or differences confirmed twice) counts for ``SYNC_VERIFY_DAYS``; one
cut short (Plaid failed during the replay) is tried again after ``RETRY_AFTER``. Differences are recorded
as a failed run (LEDGER_DIFFERS: Sync history explains it) and logged for the operator; nothing is repaired.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_
from sqlmodel import col, select

from models import ItemSyncState, PlaidItem, SyncRun
from services.container import Container
from services.db import unit_of_work
from services.plaid_client import PlaidGateway
from services.sync_types import RetryPolicy
from services.sync_verify import VerifyResult, verify_item

log = logging.getLogger("finsync.selfcheck")
RETRY_AFTER = timedelta(days=1)  # a check Plaid cut short: again tomorrow, not at every tick


def due_check(c: Container, now: datetime) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(user id, item id) of the bank whose self-check is most overdue, or None (none due, or checks are off)."""
    days = c.settings.sync_verify_days
    if days <= 0:
        return None
    cutoff = now - timedelta(days=days)
    verdict = or_(col(SyncRun.status) == "ok", col(SyncRun.error_code) == "LEDGER_DIFFERS")
    with unit_of_work(c.engine) as session:
        last = session.exec(  # per item: the last check with a verdict, and the last one tried at all
            select(SyncRun.item_id, func.max(case((verdict, SyncRun.started_at))), func.max(SyncRun.started_at))
            .where(col(SyncRun.trigger) == "verify")
            .group_by(col(SyncRun.item_id))
        ).all()
        checked = {item_id: at for item_id, at, _ in last if at is not None}
        tried = {item_id: at for item_id, _, at in last}
        healthy = session.exec(
            select(PlaidItem.id, PlaidItem.user_id, PlaidItem.created_at)
            .join(ItemSyncState, col(ItemSyncState.item_id) == col(PlaidItem.id))
            .where(
                col(PlaidItem.status) == "ok",
                col(ItemSyncState.state) == "ok",
                col(ItemSyncState.last_success_at).is_not(None),
                col(PlaidItem.created_at) < cutoff,  # a new bank's first check comes a period after linking
            )
        ).all()
    due = [
        (checked.get(item_id) or created, user_id, item_id)
        for item_id, user_id, created in healthy
        if (checked.get(item_id) or created) < cutoff and (tried.get(item_id) or created) < now - RETRY_AFTER
    ]
    if not due:
        return None
    _, user_id, item_id = min(due)
    return user_id, item_id


def check_due(
    c: Container, *, gateway: PlaidGateway | None = None, policy: RetryPolicy | None = None
) -> VerifyResult | None:
    """Self-check the most overdue bank, if any; never raises (the scheduler's pass must go on)."""
    try:
        picked = due_check(c, c.clock())
        if picked is None:
            return None
        result = verify_item(c, *picked, gateway=gateway, policy=policy, trigger="check")
    except Exception:
        log.exception("scheduled self-check failed")
        return None
    if result.status == "differs":
        log.warning("self-check: %s", result.summary())
    else:
        log.info("self-check: %s", result.summary())
    return result
