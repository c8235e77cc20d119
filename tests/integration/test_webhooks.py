"""Webhooks as Plaid (the demo bank) signs them, and as an attacker forges them: verify first, apply once."""

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
from sqlalchemy import select
from sqlmodel import col

from models import PlaidItem, WebhookDelivery
from services import banking, webhooks
from services.db import unit_of_work
from services.plaid_types import CallEvent
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


def test_a_signed_sync_webhook_marks_the_item_for_sync_and_is_recorded(bank: Bank) -> None:
    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    result = send(bank, body, bank.demo.sign_webhook(body), header="plaid-verification")
    assert (result.status_code, result.outcome) == (200, "sync requested")
    assert state(bank, item_id)[2] == bank.clock.now
    (row,) = deliveries(bank)
    assert row.verified and row.item_id == item_id and row.webhook_code == "SYNC_UPDATES_AVAILABLE"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {
                "webhook_type": "ITEM",
                "webhook_code": "ERROR",
                "error": {"error_code": "ITEM_LOGIN_REQUIRED", "error_type": "ITEM_ERROR"},
            },
            ("login_required", True),
        ),
        (
            {
                "webhook_type": "ITEM",
                "webhook_code": "PENDING_EXPIRATION",
                "consent_expiration_time": "2027-01-05T00:00:00Z",
            },
            ("pending_expiration", True),
        ),
        (
            {"webhook_type": "ITEM", "webhook_code": "PENDING_DISCONNECT", "reason": "INSTITUTION_MIGRATION"},
            ("pending_disconnect", True),
        ),
        ({"webhook_type": "ITEM", "webhook_code": "USER_PERMISSION_REVOKED"}, ("permission_revoked", False)),
        ({"webhook_type": "ITEM", "webhook_code": "NEW_ACCOUNTS_AVAILABLE"}, ("new_accounts_available", True)),
    ],
)
def test_item_webhooks_set_the_status_the_user_sees(
    bank: Bank, payload: dict[str, Any], expected: tuple[str, bool]
) -> None:
    _, plaid_item_id = linked(bank)
    body = body_of(payload | {"item_id": plaid_item_id, "environment": "sandbox"})
    assert send(bank, body, bank.demo.sign_webhook(body)).status_code == 200
    (view,) = banking.list_items(bank.c, bank_user(bank))
    assert (view.status, view.needs_repair) == expected
    if view.status == "pending_expiration":
        assert view.consent_expires_at is not None and "05 Jan 2027" in view.status_message


def bank_user(bank: Bank) -> uuid.UUID:
    with unit_of_work(bank.c.engine) as session:
        item = session.execute(select(PlaidItem)).scalars().one()
        user_id: uuid.UUID = item.user_id
        return user_id


def test_login_repaired_clears_the_repair_state(bank: Bank) -> None:
    item_id, plaid_item_id = linked(bank)
    bank.demo.set_fault(plaid_item_id, "login_required")
    bank.demo.repair(plaid_item_id)  # the bank sends ITEM/ERROR then ITEM/LOGIN_REPAIRED to our URL
    received = bank.sink.wait(2)
    codes = [json.loads(b)["webhook_code"] for _, b in received[:2]]
    order = sorted(range(2), key=lambda i: ["ERROR", "LOGIN_REPAIRED"].index(codes[i]))
    for i in order:
        headers, body = received[i]
        assert webhooks.handle_webhook(bank.c, body=body, headers=headers).status_code == 200
    assert state(bank, item_id)[:2] == ("ok", None)


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
    result = send(bank, body, forge(bank, body))
    assert result.status_code == 401 and reason in result.outcome
    assert state(bank, item_id) == before
    (row,) = deliveries(bank)
    assert not row.verified and reason in row.outcome and row.item_id is None


def test_a_replayed_delivery_gets_401_and_has_no_second_effect(bank: Bank) -> None:
    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    token = bank.demo.sign_webhook(body)
    assert send(bank, body, token).status_code == 200
    first = state(bank, item_id)
    bank.clock.advance(minutes=2)
    replay = send(bank, body, token)
    assert (replay.status_code, replay.outcome) == (401, "rejected: replay")
    assert state(bank, item_id) == first
    assert [r.outcome for r in deliveries(bank)] == ["sync requested", "replay: ignored"]


def test_a_webhook_for_an_unknown_item_is_recorded_and_changes_nothing(bank: Bank) -> None:
    item_id, _ = linked(bank)
    before = state(bank, item_id)
    body = sync_update("no-such-item")
    result = send(bank, body, bank.demo.sign_webhook(body))
    assert (result.status_code, result.outcome) == (200, "unknown item")
    assert state(bank, item_id) == before
    assert deliveries(bank)[0].plaid_item_id == "no-such-item"


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
    bank.demo.rotate_webhook_key()
    webhooks.clear_key_cache()
    result = send(bank, body, old)
    assert result.status_code == 401 and "expired" in result.outcome
    fresh = bank.demo.sign_webhook(body)
    assert send(bank, body, fresh).status_code == 200


def test_an_error_webhook_older_than_a_repair_does_not_undo_it(bank: Bank) -> None:
    """Deliveries can arrive out of order: an ITEM ERROR signed before the repair is stale news."""
    item_id, plaid_item_id = linked(bank)
    body = body_of(
        {
            "webhook_type": "ITEM",
            "webhook_code": "ERROR",
            "item_id": plaid_item_id,
            "error": {"error_code": "ITEM_LOGIN_REQUIRED", "error_type": "ITEM_ERROR"},
            "environment": "sandbox",
        }
    )
    signed_before_repair = bank.demo.sign_webhook(body, iat=int(bank.clock.now.timestamp()) - 30)
    with unit_of_work(bank.c.engine) as session:  # the repair the user just finished
        item = session.get(PlaidItem, item_id)
        assert item is not None
        item.status, item.updated_at = "ok", bank.clock.now
    result = send(bank, body, signed_before_repair)
    assert result.status_code == 200 and result.outcome.startswith("stale")
    assert state(bank, item_id)[0] == "ok"
    fresh = bank.demo.sign_webhook(body, iat=int(bank.clock.now.timestamp()) + 5)
    assert send(bank, body, fresh).outcome == "status login_required"
    assert state(bank, item_id)[0] == "login_required"
