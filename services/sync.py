"""The sync bot's public API for pages and the CLI (implementation in sync_engine, sync_status, jobs, ledger, notify)."""

from __future__ import annotations

import uuid

from sqlmodel import col, select

from models import PlaidItem, User
from services.container import Container
from services.db import unit_of_work
from services.errors import NotFound
from services.jobs import enqueue_sync, request_sync_on_sign_in, run_due_jobs
from services.ledger import edit_transaction, get_transaction, transaction_history
from services.notify import NotificationSettings, get_notification_prefs, set_notification_prefs
from services.scheduler import Scheduler, start_scheduler
from services.sync_aside import SetAsideView, list_set_aside
from services.sync_engine import sync_item
from services.sync_status import item_sync_status, last_change, list_runs
from services.sync_types import ChangeView, ItemSyncStatus, RetryPolicy, RunView, SyncProgress, SyncResult
from services.users import fold

__all__ = [
    "ChangeView",
    "ItemSyncStatus",
    "NotificationSettings",
    "RetryPolicy",
    "RunView",
    "Scheduler",
    "SetAsideView",
    "SyncProgress",
    "SyncResult",
    "edit_transaction",
    "enqueue_sync",
    "get_notification_prefs",
    "get_transaction",
    "item_sync_status",
    "last_change",
    "list_runs",
    "list_set_aside",
    "request_sync_on_sign_in",
    "resolve_user",
    "run_due_jobs",
    "set_notification_prefs",
    "start_scheduler",
    "sync_item",
    "sync_user",
    "transaction_history",
]


def resolve_user(c: Container, email_or_user_id: str | uuid.UUID) -> uuid.UUID:
    """A user id from an id or an email address."""
    if isinstance(email_or_user_id, uuid.UUID):
        return email_or_user_id
    with unit_of_work(c.engine) as session:
        user_id = session.exec(select(User.id).where(User.email_norm == fold(email_or_user_id.strip()))).first()
    if user_id is None:
        raise NotFound(f"No user with the email address {email_or_user_id!r}.")
    return user_id


def sync_user(c: Container, email_or_user_id: str | uuid.UUID, **kwargs: object) -> list[SyncResult]:
    """Sync every connection of one user, explicitly (a login-required item is tried too)."""
    user_id = resolve_user(c, email_or_user_id)
    with unit_of_work(c.engine) as session:
        items = session.exec(
            select(PlaidItem.id).where(PlaidItem.user_id == user_id).order_by(col(PlaidItem.created_at))
        ).all()
    return [sync_item(c, user_id, item_id, explicit=True, **kwargs) for item_id in items]  # type: ignore[arg-type]
