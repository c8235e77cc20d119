"""Plaid webhooks: verified before anything else (ES256 JWT, known key, fresh iat, body hash), then applied.

Steps from plaid.com/docs/api/webhooks/webhook-verification/; for finsync verification is mandatory.
Answers fast: the only Plaid call is the (cached) verification-key fetch; syncing happens elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from models import PlaidItem, WebhookDelivery
from services import mail_queue, safe_text, wakeup
from services.banking_views import NEEDS_REPAIR, healthy
from services.container import Container
from services.db import unit_of_work
from services.notify import queue_connection_alert
from services.plaid_errors import UPDATE_MODE_FIXES, PlaidError
from services.plaid_mapping import as_datetime
from services.plaid_types import WebhookKey
from services.ratelimit import KeyedBuckets, TokenBucket

log = logging.getLogger("finsync.webhooks")
MAX_AGE_SECONDS = 300  # Plaid: reject a webhook whose iat is more than 5 minutes old
FUTURE_LEEWAY_SECONDS = 60  # clocks drift; an iat a little in the future is still fine
DUPLICATE = "duplicate: already applied"  # a verified delivery whose signed content was applied before
KEY_TTL_SECONDS = 600  # a live key is refetched after 10 minutes, so an expiry is noticed even without a rotation
MISS_TTL_SECONDS = 60  # an unknown kid is asked for at most once a minute (no fetch storm from one forgery)
MAX_MISSES = 1000  # the unknown-kid cache forgets the oldest beyond this, so forged kids cannot fill memory
NEW_KID_RATE, NEW_KID_BURST = 1.0, 10  # Plaid is asked about unseen kids at most this often per sender
NEW_KID_ALL_RATE, NEW_KID_ALL_BURST = 5.0, 50  # and at most this often in all
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


@dataclass(frozen=True)
class WebhookResult:
    """What to answer Plaid, and what happened (also stored with the delivery)."""

    status_code: int
    outcome: str


class _Rejected(Exception):
    """The delivery did not verify; the message is the reason."""


_lock = threading.Lock()
_keys: dict[str, tuple[WebhookKey, float]] = {}  # kid -> (key, when fetched by the container's clock)
_misses: OrderedDict[str, float] = OrderedDict()  # kid -> when Plaid said no; least recently seen first
_new_kids = KeyedBuckets(NEW_KID_RATE, NEW_KID_BURST)  # per sender: a flood of forged kids cannot stall Plaid's
_all_new_kids = TokenBucket(NEW_KID_ALL_RATE, NEW_KID_ALL_BURST)  # and all senders together, within Plaid's limits


def clear_key_cache() -> None:
    """Forget every cached verification key and refill the unseen-kid budget (tests; key rotation drills)."""
    global _new_kids, _all_new_kids  # noqa: PLW0603 - a fresh budget, not a drained one, after a drill
    with _lock:
        _keys.clear()
        _misses.clear()
        _new_kids = KeyedBuckets(NEW_KID_RATE, NEW_KID_BURST)
        _all_new_kids = TokenBucket(NEW_KID_ALL_RATE, NEW_KID_ALL_BURST)


def _fresh(at: float, now: float, ttl: float) -> bool:
    return 0 <= now - at < ttl  # a clock that went back counts as stale, not as fresh for ever


def _plan(kid: str, now: float, source: str) -> WebhookKey | list[str]:
    """The cached key if it will do, else the kids to fetch (this one first); the caller holds ``_lock``."""
    cached = _keys.get(kid)
    if cached is not None:
        key, at = cached
        # Plaid never un-expires a key, so an expired one is kept (and refused) without asking again.
        return key if key.expired_at is not None or _fresh(at, now, KEY_TTL_SECONDS) else [kid]
    if kid in _misses and _fresh(_misses[kid], now, MISS_TTL_SECONDS):
        _misses.move_to_end(kid)
        raise _Rejected("unknown key id")
    if _new_kids.take(source) > 0 or _all_new_kids.take() > 0:
        raise _Rejected("unknown key id (too many new key ids just now; try again later)")
    # A new kid usually means Plaid rotated: refetch the live keys too so their expired_at is learned now,
    # as Plaid's sample does (plaid.com/docs/api/webhooks/webhook-verification/).
    return [kid, *(k for k, (key, _) in _keys.items() if key.expired_at is None)]


def _key(c: Container, kid: str, source: str) -> WebhookKey:
    now = c.clock().timestamp()
    with _lock:
        plan = _plan(kid, now, source)
    if isinstance(plan, WebhookKey):
        return plan
    if c.plaid is None:
        raise _Rejected("bank linking is not configured")
    try:
        key = c.plaid.webhook_verification_key_get(kid)
    except PlaidError as exc:
        with _lock:
            _misses[kid] = now
            _misses.move_to_end(kid)
            while len(_misses) > MAX_MISSES:
                _misses.popitem(last=False)
        raise _Rejected(f"unknown key id ({exc.code})") from None
    fetched = {kid: key}
    for other in plan[1:]:
        with contextlib.suppress(PlaidError):  # keep the cached copy; its TTL brings it back soon enough
            fetched[other] = c.plaid.webhook_verification_key_get(other)
    with _lock:
        _keys.update((k, (v, now)) for k, v in fetched.items())
        _misses.pop(kid, None)
    return key


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _verify(c: Container, body: bytes, headers: Mapping[str, str], now: datetime, source: str) -> tuple[str, datetime]:
    """Return the delivery's replay key and when it was signed when every check passes; else raise ``_Rejected``."""
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
    key = _key(c, kid, source)
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
    # The replay key is what Plaid signed, not the JWT's text: an ECDSA signature (r, s) also verifies as
    # (r, n - s) (signature malleability), so one delivery has more than one valid encoding.
    replay_key = hashlib.sha256(json.dumps([kid, iat, actual]).encode()).hexdigest()
    return replay_key, datetime.fromtimestamp(float(iat), tz=UTC)


def _parse(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested thousands deep: not a webhook either
        return None
    return data if isinstance(data, dict) else None


def _text(value: object, limit: int) -> str | None:
    """A string field of the body, storable as is (unsafe characters escaped: PostgreSQL refuses NUL), cut to fit."""
    return safe_text.escaped(value)[:limit] if isinstance(value, str) and value else None


def _record(c: Container, body: bytes, *, verified: bool, outcome: str) -> None:
    """A delivery that changed nothing (rejected, unreadable, replayed): what its body claims, as untrusted text.

    The claimed item_id is kept as sent (cut to its column) to trace probes, never resolved to one of our items.
    """
    data = _parse(body) or {}
    with unit_of_work(c.engine, immediate=True) as session:
        session.add(
            WebhookDelivery(
                received_at=c.clock(),
                webhook_type=_text(data.get("webhook_type"), 64),
                webhook_code=_text(data.get("webhook_code"), 64),
                plaid_item_id=_text(data.get("item_id"), 128),
                verified=verified,
                outcome=outcome[:255],
            )
        )


def _set(item: PlaidItem, status: str, code: str | None, now: datetime, signed_at: datetime) -> None:
    item.status, item.status_code, item.updated_at, item.status_since = status, code, now, signed_at


def _raise_status(item: PlaidItem, status: str, code: str | None, now: datetime, signed_at: datetime) -> str:
    if _SEVERITY[status] < _SEVERITY.get(item.status, 0):
        return f"kept {item.status} (not lowered to {status})"
    _set(item, status, code, now, signed_at)
    return f"status {status}"


def _stops_at(data: Mapping[str, Any], field: str) -> datetime | None:
    try:
        return as_datetime(_text(data.get(field), 64))
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
        err_code = (_text(raw.get("error_code"), 64) if isinstance(raw, dict) else None) or "UNKNOWN"
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


def _apply(item: PlaidItem, data: Mapping[str, Any], now: datetime, signed_at: datetime) -> str:
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
        replay_key, signed_at = _verify(c, body, headers, now, source)
    except _Rejected as exc:
        outcome = f"rejected: {exc}"
        if may_record is None or may_record():  # the route's budget bounds these rows and lines
            _record(c, body, verified=False, outcome=outcome)
            log.warning("webhook %s", outcome)
        return WebhookResult(401, outcome)
    data = _parse(body)
    if data is None:
        _record(c, body, verified=True, outcome="verified but not a JSON object")
        log.warning("webhook verified but not a JSON object")
        return WebhookResult(400, "unreadable body")
    plaid_item_id = _text(data.get("item_id"), 128)
    try:
        # SQLite: the write lock from the start. A deferred transaction that read first is refused at once
        # ("database is locked") when another delivery or a sync wrote meanwhile; this one waits its turn.
        with unit_of_work(c.engine, immediate=True) as session:
            seen = select(col(WebhookDelivery.id)).where(col(WebhookDelivery.signature_sha256) == replay_key)
            if session.execute(seen).first() is not None:
                raise _Rejected(DUPLICATE)
            item = session.execute(  # locked: a sync committing its own view of the status waits, or is waited for
                select(PlaidItem).where(col(PlaidItem.plaid_item_id) == plaid_item_id).with_for_update()
            ).scalar_one_or_none()
            before = item.status if item is not None else None
            outcome = "unknown item" if item is None else _apply(item, data, now, signed_at)
            item_id = item.id if item is not None else None
            wake = item is not None and item.sync_requested_at is not None
            alert = _needs_user(item, before)
            mail = [] if alert is None else queue_connection_alert(session, c, *alert)  # commits with the status
            session.add(WebhookDelivery(received_at=now, webhook_type=_text(data.get("webhook_type"), 64),
                                        webhook_code=_text(data.get("webhook_code"), 64), plaid_item_id=plaid_item_id,
                                        item_id=item.id if item else None, verified=True, outcome=outcome[:255],
                                        signature_sha256=replay_key))  # fmt: skip
    except (_Rejected, IntegrityError):  # a concurrent twin may win the unique replay key: same answer
        # What was signed has been applied already: Plaid's retry of a delivery it thinks we missed, two deliveries
        # of the same news in one second (indistinguishable), or a replay. None changes anything a second time, and
        # none gets an error: Plaid retries a non-200 answer for 24 hours, and stops retrying for a receiver that
        # rejects most of what it sends (plaid.com/docs/api/webhooks/#webhook-retries).
        _record(c, body, verified=True, outcome=DUPLICATE)
        log.info("webhook %s", DUPLICATE)
        return WebhookResult(200, DUPLICATE)
    log.info("webhook %s/%s item=%s: %s", *(_text(data.get(k), 64) for k in ("webhook_type", "webhook_code")),
             item_id, outcome)  # fmt: skip
    if wake:
        wakeup.nudge()  # committed: this process's scheduler syncs it now rather than at its next tick
    mail_queue.after_commit(c, mail)  # sent on the mail thread in the app: the answer does not wait for SMTP
    return WebhookResult(200, outcome)


def _needs_user(item: PlaidItem | None, before: str | None) -> tuple[Any, ...] | None:
    """What to tell the owner when this webhook just put the connection in a state only they can fix, else None."""
    if item is None or item.status == before or item.status not in ATTENTION:
        return None
    return item.user_id, item.institution_name, item.status, item.status_code, item.consent_expires_at
