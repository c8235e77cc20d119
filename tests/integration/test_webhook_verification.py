"""Webhooks an attacker forges, replays or re-signs, and keys Plaid rotates or cannot serve: verify first."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services import wakeup, webhook_verify, webhooks
from services.plaid_types import CallEvent
from tests.integration.conftest_bank import Bank
from tests.integration.webhook_support import b64, deliveries, linked, send, state, sync_update


def _forged_es256(bank: Bank, body: bytes) -> str:
    kid = jwt.get_unverified_header(bank.demo.sign_webhook(b"{}"))["kid"]
    claims = {"iat": int(bank.clock.now.timestamp()), "request_body_sha256": hashlib.sha256(body).hexdigest()}
    return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid})


def _alg_none(bank: Bank, body: bytes) -> str:
    kid = jwt.get_unverified_header(bank.demo.sign_webhook(b"{}"))["kid"]
    header = b64(json.dumps({"alg": "none", "kid": kid, "typ": "JWT"}).encode())
    claims = b64(
        json.dumps(
            {"iat": int(bank.clock.now.timestamp()), "request_body_sha256": hashlib.sha256(body).hexdigest()}
        ).encode()
    )
    return f"{header}.{claims}."


def _hs256_with_public_key(bank: Bank, body: bytes) -> str:
    kid = jwt.get_unverified_header(bank.demo.sign_webhook(b"{}"))["kid"]
    public = bank.demo.bank.webhooks.keys[kid].private.public_key()
    secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
    claims = b64(
        json.dumps(
            {"iat": int(bank.clock.now.timestamp()), "request_body_sha256": hashlib.sha256(body).hexdigest()}
        ).encode()
    )
    signature = b64(hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest())
    return f"{header}.{claims}.{signature}"


def _wrong_kid(bank: Bank, body: bytes) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = {"iat": int(bank.clock.now.timestamp()), "request_body_sha256": hashlib.sha256(body).hexdigest()}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": str(uuid.uuid4())})


def _stale(bank: Bank, body: bytes) -> str:
    return bank.demo.sign_webhook(body, iat=int(bank.clock.now.timestamp()) - 6 * 60)


def _altered_body(bank: Bank, body: bytes) -> str:
    return bank.demo.sign_webhook(body.replace(b"SYNC_UPDATES_AVAILABLE", b"DEFAULT_UPDATE"))


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_forged_es256, "bad signature"),
        (_alg_none, "is not ES256"),
        (_hs256_with_public_key, "is not ES256"),
        (_wrong_kid, "unknown key id"),
        (_stale, "stale"),
        (_altered_body, "body does not match"),
        (lambda bank, body: None, "missing Plaid-Verification"),
        (lambda bank, body: "not-a-jwt", "malformed"),
    ],
    ids=[
        "forged",
        "alg-none",
        "hs256-public-key",
        "wrong-kid",
        "iat-6-minutes",
        "body-altered",
        "no-header",
        "garbage",
    ],
)
def test_unverified_webhooks_get_401_and_change_nothing(bank: Bank, forge: Any, reason: str) -> None:
    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    before = state(bank, item_id)
    wakeup.wait(0)
    result = send(bank, body, forge(bank, body))
    assert result.status_code == 401 and reason in result.outcome
    assert state(bank, item_id) == before and not wakeup.wait(0)
    (row,) = deliveries(bank)
    assert not row.verified and reason in row.outcome and row.item_id is None
    assert row.plaid_item_id == plaid_item_id  # what the body claims, kept as text, never resolved to our item


@pytest.mark.parametrize(
    ("claimed", "stored"),
    [
        (12345, None),  # not a string: nothing is claimed
        (["a"], None),
        ("x" * 500, "x" * 128),  # cut to the column
        ("item\u0000\u202e", "item\\x00\\u202e"),  # PostgreSQL refuses NUL; a bidi override would hide text
    ],
    ids=["number", "list", "long", "control-characters"],
)
def test_a_forged_webhooks_claimed_item_id_is_recorded_as_untrusted_text(
    bank: Bank, claimed: object, stored: str | None
) -> None:
    item_id, plaid_item_id = linked(bank)
    before = state(bank, item_id)
    raw = sync_update(plaid_item_id).replace(json.dumps(plaid_item_id).encode(), json.dumps(claimed).encode())
    body = raw.replace(b"SYNC_UPDATES_AVAILABLE", b"SYNC_UPDATES_AVAILABLE\\u0000")
    result = send(bank, body, _forged_es256(bank, body))
    assert result.status_code == 401 and state(bank, item_id) == before
    (row,) = deliveries(bank)
    assert (row.verified, row.item_id, row.plaid_item_id) == (False, None, stored)
    assert row.webhook_code == "SYNC_UPDATES_AVAILABLE\\x00"


def test_a_webhook_signed_ten_minutes_in_the_future_gets_401_and_changes_nothing(bank: Bank) -> None:
    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    before = state(bank, item_id)
    wakeup.wait(0)
    result = send(bank, body, bank.demo.sign_webhook(body, iat=int(bank.clock.now.timestamp()) + 10 * 60))
    assert (result.status_code, result.outcome) == (401, "rejected: stale or future iat")
    assert state(bank, item_id) == before and not wakeup.wait(0)
    (row,) = deliveries(bank)
    assert not row.verified and row.item_id is None and row.signature_sha256 is None


@pytest.mark.parametrize(("age", "accepted"), [(299, True), (301, False), (-59, True), (-61, False)])
def test_iat_may_be_up_to_five_minutes_old_and_a_minute_ahead(bank: Bank, age: int, accepted: bool) -> None:
    """Plaid: reject an iat more than 5 minutes old; a clock running up to a minute fast is tolerated."""
    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    before = state(bank, item_id)
    result = send(bank, body, bank.demo.sign_webhook(body, iat=int(bank.clock.now.timestamp()) - age))
    if accepted:
        assert (result.status_code, result.outcome) == (200, "sync requested")
        assert state(bank, item_id)[2] == bank.clock.now
    else:
        assert (result.status_code, result.outcome) == (401, "rejected: stale or future iat")
        assert state(bank, item_id) == before
    assert [r.verified for r in deliveries(bank)] == [accepted]


def test_a_replayed_delivery_has_no_second_effect_and_is_not_retried(bank: Bank) -> None:
    """Plaid resends a delivery it thinks was missed, and may send the same news twice in one second (the same
    signed content): applied once, and answered 200, since Plaid retries any other answer for a day."""
    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    token = bank.demo.sign_webhook(body)
    assert send(bank, body, token).status_code == 200
    first = state(bank, item_id)
    bank.clock.advance(minutes=2)
    replay = send(bank, body, token)
    assert (replay.status_code, replay.outcome) == (200, "duplicate: already applied")
    signed_at = jwt.decode(token, options={"verify_signature": False})["iat"]
    same_second = send(bank, body, bank.demo.sign_webhook(body, iat=signed_at))
    assert (same_second.status_code, same_second.outcome) == (200, "duplicate: already applied")  # a new signature
    assert state(bank, item_id) == first
    outcomes = [r.outcome for r in deliveries(bank)]
    assert outcomes == ["sync requested", "duplicate: already applied", "duplicate: already applied"]
    replayed = deliveries(bank)[1]
    assert replayed.plaid_item_id == plaid_item_id and replayed.item_id is None  # the claim, not resolved again
    bank.clock.advance(minutes=4)  # past 5 minutes, the same token is stale, not a duplicate: 401
    assert send(bank, body, token).outcome == "rejected: stale or future iat"


def test_keys_are_cached_and_an_expired_key_is_refused(bank: Bank, plaid_events: list[CallEvent]) -> None:
    _, plaid_item_id = linked(bank)

    def fetches() -> int:
        return sum(e.endpoint == "/webhook_verification_key/get" for e in plaid_events)

    for minute in range(3):
        body = sync_update(plaid_item_id).replace(b"sandbox", f"sandbox{minute}".encode())
        assert send(bank, body, bank.demo.sign_webhook(body)).status_code == 200
    assert fetches() == 1
    body = sync_update(plaid_item_id)
    old = bank.demo.sign_webhook(body)
    bank.demo.rotate_webhook_key()  # Plaid expires the cached key; nothing here is told
    fresh = bank.demo.sign_webhook(body)
    assert send(bank, body, fresh).status_code == 200  # the new kid makes us refetch the cached one too
    result = send(bank, body, old)
    assert result.status_code == 401 and "expired" in result.outcome


def _signed_with(key: Any, body: bytes, iat: int) -> str:
    claims = {"iat": iat, "request_body_sha256": hashlib.sha256(body).hexdigest()}
    return jwt.encode(claims, key.private, algorithm="ES256", headers={"kid": key.kid})


def test_an_expired_key_is_refused_once_its_cache_entry_is_ten_minutes_old(bank: Bank) -> None:
    """Without any webhook under the new key, the expiry is still learned within the short TTL."""
    _, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    assert send(bank, body, bank.demo.sign_webhook(body)).status_code == 200  # the key is cached now
    old = bank.demo.bank.webhooks.current
    bank.demo.rotate_webhook_key()
    bank.clock.advance(minutes=webhook_verify.KEY_TTL_SECONDS / 60 + 1)
    later = body.replace(b"sandbox", b"sandbox-later")
    result = send(bank, later, _signed_with(old, later, int(bank.clock.now.timestamp())))
    assert result.status_code == 401 and "expired" in result.outcome


N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # the P-256 group order


def _high_s_twin(token: str) -> str:
    """The same signature as (r, n - s): it verifies too, but the JWT's text differs."""
    header, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    return f"{header}.{payload}.{b64(r.to_bytes(32, 'big') + (N_P256 - s).to_bytes(32, 'big'))}"


def test_a_re_encoded_signature_of_a_delivered_webhook_is_known_as_a_duplicate(bank: Bank) -> None:
    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    token = bank.demo.sign_webhook(body)
    assert send(bank, body, token).status_code == 200
    first = state(bank, item_id)
    bank.clock.advance(seconds=30)
    twin = _high_s_twin(token)
    assert twin != token
    replay = send(bank, body, twin)
    assert (replay.status_code, replay.outcome) == (200, "duplicate: already applied")
    assert state(bank, item_id) == first


def test_with_plaids_key_endpoint_unreachable_a_cached_key_still_verifies_and_a_new_one_fails_closed(
    bank: Bank,
) -> None:
    """Faults catalogue: "webhook verification key endpoint down" (the periodic sync still covers what is refused)."""
    import dataclasses
    import socket

    from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET
    from services.plaid_client import PlaidGateway

    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    assert send(bank, body, bank.demo.sign_webhook(body)).status_code == 200  # its key is cached now
    with socket.socket() as probe:  # a port nothing listens on: Plaid unreachable
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = dataclasses.replace(
        bank.c, plaid=PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, dead, timeout=(1.0, 1.0))
    )

    def send_while_down(body: bytes, token: str) -> webhooks.WebhookResult:
        headers = {"Content-Type": "application/json", "Plaid-Verification": token}
        return webhooks.handle_webhook(unreachable, body=body, headers=headers)

    later = body.replace(b"sandbox", b"sandbox-later")
    assert send_while_down(later, bank.demo.sign_webhook(later)).status_code == 200  # the cached key needs no call
    before = state(bank, item_id)
    bank.demo.rotate_webhook_key()  # a key this process has never fetched
    rotated = body.replace(b"sandbox", b"sandbox-rotated")
    refused = send_while_down(rotated, bank.demo.sign_webhook(rotated))
    assert refused.status_code == 401 and "unknown key id" in refused.outcome  # fails closed, never trusts unverified
    assert state(bank, item_id) == before
    assert deliveries(bank)[-1].verified is False
