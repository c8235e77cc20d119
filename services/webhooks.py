"""Plaid webhooks: verified before anything else (ES256 JWT, known key, fresh iat, body hash), then applied.

Steps from plaid.com/docs/api/webhooks/webhook-verification/; for finsync verification is mandatory.
Answers fast: the only Plaid call is the (cached) verification-key fetch; syncing happens elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from models import PlaidItem, WebhookDelivery
from services.container import Container
from services.db import unit_of_work
from services.plaid_mapping import as_datetime
from services.plaid_types import PlaidError, WebhookKey

MAX_AGE_SECONDS = 300  # Plaid: reject a webhook whose iat is more than 5 minutes old
FUTURE_LEEWAY_SECONDS = 60  # clocks drift; an iat a little in the future is still fine
KEY_TTL_SECONDS = 3600  # refetch a cached key hourly so an expiry Plaid announced is noticed
MISS_TTL_SECONDS = 60  # an unknown kid is asked for at most once a minute (no fetch storm from forgeries)
# Never lower a serious status to a milder one because a later, milder webhook arrived.
_SEVERITY = {"ok": 0, "new_accounts_available": 1, "pending_expiration": 2, "pending_disconnect": 3,
             "error": 4, "login_required": 5, "permission_revoked": 6}  # fmt: skip
_ITEM_STATUS = {
    "PENDING_EXPIRATION": "pending_expiration",
    "PENDING_DISCONNECT": "pending_disconnect",
    "USER_PERMISSION_REVOKED": "permission_revoked",
    "NEW_ACCOUNTS_AVAILABLE": "new_accounts_available",
}


@dataclass(frozen=True)
class WebhookResult:
    """What to answer Plaid, and what happened (also stored with the delivery)."""

    status_code: int
    outcome: str


class _Rejected(Exception):
    """The delivery did not verify; the message is the reason."""


_lock = threading.Lock()
_keys: dict[str, tuple[WebhookKey, float]] = {}
_misses: dict[str, float] = {}


def clear_key_cache() -> None:
    """Forget every cached verification key (tests; key rotation drills)."""
    with _lock:
        _keys.clear()
        _misses.clear()


def _key(c: Container, kid: str) -> WebhookKey:
    now = time.monotonic()
    with _lock:
        cached = _keys.get(kid)
        if cached is not None and now - cached[1] < KEY_TTL_SECONDS:
            return cached[0]
        if now - _misses.get(kid, -MISS_TTL_SECONDS) < MISS_TTL_SECONDS:
            raise _Rejected("unknown key id")
    if c.plaid is None:
        raise _Rejected("bank linking is not configured")
    try:
        key = c.plaid.webhook_verification_key_get(kid)
    except PlaidError as exc:
        with _lock:
            _misses[kid] = now
        raise _Rejected(f"unknown key id ({exc.code})") from None
    with _lock:
        _keys[kid] = (key, now)
    return key


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _verify(c: Container, body: bytes, headers: Mapping[str, str], now: datetime) -> tuple[str, datetime]:
    """Return the JWT and when it was signed when every check passes; raise ``_Rejected`` otherwise."""
    token = _header(headers, "Plaid-Verification")
    if not token:
        raise _Rejected("missing Plaid-Verification header")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _Rejected("malformed JWT") from None
    if header.get("alg") != "ES256":
        raise _Rejected(f"algorithm {str(header.get('alg'))[:16]!r} is not ES256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 128:
        raise _Rejected("no key id")
    key = _key(c, kid)
    if key.expired_at is not None:
        raise _Rejected("key has expired")
    try:
        claims = jwt.decode(
            token,
            key=jwt.PyJWK(key.jwk()).key,
            algorithms=["ES256"],
            options={"verify_iat": False, "verify_exp": False, "verify_nbf": False, "require": ["iat"]},
        )  # the age is checked below against our clock, not PyJWT's
    except jwt.PyJWTError:
        raise _Rejected("bad signature") from None
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise _Rejected("bad iat")
    age = now.timestamp() - float(iat)
    if age > MAX_AGE_SECONDS or age < -FUTURE_LEEWAY_SECONDS:
        raise _Rejected("stale or future iat")
    claimed = claims.get("request_body_sha256")
    actual = hashlib.sha256(body).hexdigest()
    if not isinstance(claimed, str) or not hmac.compare_digest(actual.encode(), claimed.encode()):
        raise _Rejected("body does not match its signature")
    return token, datetime.fromtimestamp(float(iat), tz=UTC)


def _parse(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _record(c: Container, body: bytes, *, verified: bool, outcome: str) -> None:
    data = _parse(body) or {}
    with unit_of_work(c.engine) as session:
        session.add(
            WebhookDelivery(
                received_at=c.clock(),
                webhook_type=_text(data.get("webhook_type"), 64),
                webhook_code=_text(data.get("webhook_code"), 64),
                verified=verified,
                outcome=outcome[:255],
            )
        )


def _raise_status(item: PlaidItem, status: str, code: str | None, now: datetime) -> str:
    if _SEVERITY[status] < _SEVERITY.get(item.status, 0):
        return f"kept {item.status} (not lowered to {status})"
    item.status, item.status_code, item.updated_at = status, code, now
    return f"status {status}"


def _item_event(item: PlaidItem, code: object, data: Mapping[str, Any], now: datetime) -> str:
    """ITEM webhooks: error, repaired, expiring consent, disconnect, revoked, new accounts."""
    if code == "LOGIN_REPAIRED":
        if item.status == "permission_revoked":
            return "kept permission_revoked"
        item.status, item.status_code, item.updated_at = "ok", None, now
        item.sync_requested_at = now  # repaired elsewhere: sync now rather than at the daily probe
        return "status ok"
    if code == "ERROR":
        raw = data.get("error")
        err_code = (_text(raw.get("error_code"), 64) if isinstance(raw, dict) else None) or "UNKNOWN"
        return _raise_status(item, "login_required" if err_code == "ITEM_LOGIN_REQUIRED" else "error", err_code, now)
    status = _ITEM_STATUS.get(str(code))
    if status is None:
        return "ignored"
    if status == "pending_expiration":
        with contextlib.suppress(ValueError):
            item.consent_expires_at = as_datetime(_text(data.get("consent_expiration_time"), 64))
    return _raise_status(item, status, str(code), now)


def _apply(item: PlaidItem, data: Mapping[str, Any], now: datetime) -> str:
    """Change the item as the webhook says; return what was done."""
    kind, code = data.get("webhook_type"), data.get("webhook_code")
    if kind == "TRANSACTIONS" and code == "SYNC_UPDATES_AVAILABLE":
        item.sync_requested_at = now
        return "sync requested"
    return _item_event(item, code, data, now) if kind == "ITEM" else "ignored"


def handle_webhook(c: Container, *, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
    """Verify one delivery, then apply it once; 401 for anything unverified or replayed."""
    now = c.clock()
    try:
        token, signed_at = _verify(c, body, headers, now)
    except _Rejected as exc:
        outcome = f"rejected: {exc}"
        _record(c, body, verified=False, outcome=outcome)
        return WebhookResult(401, outcome)
    data = _parse(body)
    if data is None:
        _record(c, body, verified=True, outcome="verified but not a JSON object")
        return WebhookResult(400, "unreadable body")
    signature = hashlib.sha256(token.encode()).hexdigest()
    plaid_item_id = _text(data.get("item_id"), 128)
    try:
        with unit_of_work(c.engine) as session:
            seen = select(col(WebhookDelivery.id)).where(col(WebhookDelivery.signature_sha256) == signature)
            if session.execute(seen).first() is not None:
                raise _Rejected("replay")
            item = session.execute(
                select(PlaidItem).where(col(PlaidItem.plaid_item_id) == plaid_item_id)
            ).scalar_one_or_none()
            if item is None:
                outcome = "unknown item"
            elif data.get("webhook_type") == "ITEM" and item.updated_at > signed_at + timedelta(seconds=1):
                # Deliveries can arrive out of order: news older than the item's last change is stale.
                outcome = "stale: the item changed after this was sent"
            else:
                outcome = _apply(item, data, now)
            session.add(WebhookDelivery(received_at=now, webhook_type=_text(data.get("webhook_type"), 64),
                                        webhook_code=_text(data.get("webhook_code"), 64), plaid_item_id=plaid_item_id,
                                        item_id=item.id if item else None, verified=True, outcome=outcome[:255],
                                        signature_sha256=signature))  # fmt: skip
    except (_Rejected, IntegrityError):  # a concurrent twin may win the unique signature: same answer
        _record(c, body, verified=True, outcome="replay: ignored")
        return WebhookResult(401, "rejected: replay")
    return WebhookResult(200, outcome)
