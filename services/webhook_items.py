"""What a verified webhook does to its Plaid item: request a sync, or move its status (never to a milder one)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from models import PlaidItem
from services.banking_views import NEEDS_REPAIR, healthy
from services.plaid_errors import UPDATE_MODE_FIXES
from services.plaid_mapping import as_datetime
from services.webhook_deliveries import body_text

# Never lower a serious status to a milder one because a later, milder webhook arrived.
_SEVERITY = {"ok": 0, "new_accounts_available": 1, "pending_expiration": 2, "pending_disconnect": 3,
             "error": 4, "login_required": 5, "permission_revoked": 6}  # fmt: skip
ATTENTION = NEEDS_REPAIR | {"permission_revoked"}  # the user must act: repair in Link, or relink
_ITEM_STATUS = {
    "PENDING_EXPIRATION": "pending_expiration",
    "PENDING_DISCONNECT": "pending_disconnect",
    "USER_PERMISSION_REVOKED": "permission_revoked",
    "NEW_ACCOUNTS_AVAILABLE": "new_accounts_available",
}


def _set(item: PlaidItem, status: str, code: str | None, now: datetime, signed_at: datetime) -> None:
    item.status, item.status_code, item.updated_at, item.status_since = status, code, now, signed_at


def _raise_status(item: PlaidItem, status: str, code: str | None, now: datetime, signed_at: datetime) -> str:
    if _SEVERITY[status] < _SEVERITY.get(item.status, 0):
        return f"kept {item.status} (not lowered to {status})"
    _set(item, status, code, now, signed_at)
    return f"status {status}"


def _stops_at(data: Mapping[str, Any], field: str) -> datetime | None:
    try:
        return as_datetime(body_text(data.get(field), 64))
    except ValueError:
        return None  # no date beats a wrong one left over from an earlier warning


def _item_event(item: PlaidItem, code: object, data: Mapping[str, Any], now: datetime, signed_at: datetime) -> str:
    """ITEM webhooks: error, repaired, expiring consent, disconnect, revoked, new accounts."""
    if code == "LOGIN_REPAIRED":
        if item.status == "permission_revoked":
            return "kept permission_revoked"
        _set(item, *healthy(item.new_accounts_since), now, signed_at)  # a new-accounts question outlives the login
        item.sync_requested_at = now  # repaired elsewhere: sync now rather than at the daily probe
        return f"status {item.status}"
    if code == "ERROR":
        raw = data.get("error")
        err_code = (body_text(raw.get("error_code"), 64) if isinstance(raw, dict) else None) or "UNKNOWN"
        bad = "login_required" if err_code in UPDATE_MODE_FIXES else "error"
        return _raise_status(item, bad, err_code, now, signed_at)
    status = _ITEM_STATUS.get(str(code))
    if status is None:
        return "ignored"
    # consent_expires_at is the day this connection stops working, whichever warning said so.
    if status == "pending_expiration":
        item.consent_expires_at = _stops_at(data, "consent_expiration_time")
    elif status == "pending_disconnect":
        item.consent_expires_at = _stops_at(data, "disconnect_time")
    elif status == "new_accounts_available":  # sent once: remembered even when worse news holds the status, so
        item.new_accounts_since = now  # the next repair offers the picker
    return _raise_status(item, status, str(code), now, signed_at)


def apply_to_item(item: PlaidItem, data: Mapping[str, Any], now: datetime, signed_at: datetime) -> str:
    """Change the item as the webhook says; return what was done."""
    kind, code = data.get("webhook_type"), data.get("webhook_code")
    if kind == "TRANSACTIONS" and code == "SYNC_UPDATES_AVAILABLE":
        item.sync_requested_at = now
        return "sync requested"
    if kind != "ITEM":
        return "ignored"
    # Deliveries can arrive out of order: news signed before the item's status was last decided (by a newer
    # webhook, or by the user repairing it in Link) must not overwrite it. iat has whole seconds, so a
    # webhook signed in that same second still counts; no status_since (older rows) means no constraint.
    since = item.status_since
    if since is not None and signed_at < since.replace(microsecond=0):
        return "stale: the status was set after this was sent"
    return _item_event(item, code, data, now, signed_at)


def needs_user(item: PlaidItem | None, before: str | None) -> tuple[Any, ...] | None:
    """What to tell the owner when this webhook just put the connection in a state only they can fix, else None."""
    if item is None or item.status == before or item.status not in ATTENTION:
        return None
    return item.user_id, item.institution_name, item.status, item.status_code, item.consent_expires_at
