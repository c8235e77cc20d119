"""Plaid webhook verification: an ES256 JWT signed by a known, unexpired key, a fresh iat, and the body's hash.

Steps from plaid.com/docs/api/webhooks/webhook-verification/; for finsync verification is mandatory.
The only Plaid call is the verification-key fetch, cached here and budgeted so forged key ids cannot stall it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime

import jwt

from services.container import Container
from services.plaid_errors import PlaidError
from services.plaid_types import WebhookKey
from services.ratelimit import KeyedBuckets, TokenBucket

MAX_AGE_SECONDS = 300  # Plaid: reject a webhook whose iat is more than 5 minutes old
FUTURE_LEEWAY_SECONDS = 60  # clocks drift; an iat a little in the future is still fine
KEY_TTL_SECONDS = 600  # a live key is refetched after 10 minutes, so an expiry is noticed even without a rotation
MISS_TTL_SECONDS = 60  # an unknown kid is asked for at most once a minute (no fetch storm from one forgery)
MAX_MISSES = 1000  # the unknown-kid cache forgets the oldest beyond this, so forged kids cannot fill memory
NEW_KID_RATE, NEW_KID_BURST = 1.0, 10  # Plaid is asked about unseen kids at most this often per sender
NEW_KID_ALL_RATE, NEW_KID_ALL_BURST = 5.0, 50  # and at most this often in all


class Rejected(Exception):
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
        raise Rejected("unknown key id")
    if _new_kids.take(source) > 0 or _all_new_kids.take() > 0:
        raise Rejected("unknown key id (too many new key ids just now; try again later)")
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
        raise Rejected("bank linking is not configured")
    try:
        key = c.plaid.webhook_verification_key_get(kid)
    except PlaidError as exc:
        with _lock:
            _misses[kid] = now
            _misses.move_to_end(kid)
            while len(_misses) > MAX_MISSES:
                _misses.popitem(last=False)
        raise Rejected(f"unknown key id ({exc.code})") from None
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


def _kid(token: str) -> str:
    """The key id of an ES256 JWT, read from its (not yet verified) header."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Rejected("malformed JWT") from None
    if header.get("alg") != "ES256":
        raise Rejected(f"algorithm {str(header.get('alg'))[:16]!r} is not ES256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 128:
        raise Rejected("no key id")
    return kid


def verify(c: Container, body: bytes, headers: Mapping[str, str], now: datetime, source: str) -> tuple[str, datetime]:
    """Return the delivery's replay key and when it was signed when every check passes; else raise ``Rejected``."""
    token = _header(headers, "Plaid-Verification")
    if not token:
        raise Rejected("missing Plaid-Verification header")
    kid = _kid(token)
    key = _key(c, kid, source)
    if key.expired_at is not None:
        raise Rejected("key has expired")
    try:
        claims = jwt.decode(
            token,
            key=jwt.PyJWK(key.jwk()).key,
            algorithms=["ES256"],
            options={"verify_iat": False, "verify_exp": False, "verify_nbf": False, "require": ["iat"]},
        )  # the age is checked below against our clock, not PyJWT's
    except jwt.PyJWTError:
        raise Rejected("bad signature") from None
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise Rejected("bad iat")
    age = now.timestamp() - float(iat)
    if age > MAX_AGE_SECONDS or age < -FUTURE_LEEWAY_SECONDS:
        raise Rejected("stale or future iat")
    claimed = claims.get("request_body_sha256")
    actual = hashlib.sha256(body).hexdigest()
    if not isinstance(claimed, str) or not hmac.compare_digest(actual.encode(), claimed.encode()):
        raise Rejected("body does not match its signature")
    # The replay key is what Plaid signed, not the JWT's text: an ECDSA signature (r, s) also verifies as
    # (r, n - s) (signature malleability), so one delivery has more than one valid encoding.
    replay_key = hashlib.sha256(json.dumps([kid, iat, actual]).encode()).hexdigest()
    return replay_key, datetime.fromtimestamp(float(iat), tz=UTC)
