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
from services import banking, wakeup, webhooks
from services.db import unit_of_work
from services.mailer import MemoryMailer
from services.plaid_types import CallEvent
from services.sync import sync_item
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
    wakeup.wait(0)  # forget the nudge of linking
    result = send(bank, body, bank.demo.sign_webhook(body), header="plaid-verification")
    assert (result.status_code, result.outcome) == (200, "sync requested")
    assert wakeup.wait(0)  # the app's scheduler is woken to sync it now, not at its next tick
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


@pytest.mark.parametrize(
    "payload",
    [
        {"webhook_code": "ERROR", "error": {"error_code": "ITEM_LOGIN_REQUIRED", "error_type": "ITEM_ERROR"}},
        {"webhook_code": "PENDING_EXPIRATION", "consent_expiration_time": "2027-01-05T00:00:00Z"},
        {"webhook_code": "PENDING_DISCONNECT", "reason": "INSTITUTION_MIGRATION"},
        {"webhook_code": "USER_PERMISSION_REVOKED"},
        {"webhook_code": "NEW_ACCOUNTS_AVAILABLE"},
    ],
)
def test_a_webhook_that_needs_the_user_emails_them_once_in_the_accounts_page_words(
    bank: Bank, mailer: MemoryMailer, payload: dict[str, Any]
) -> None:
    _, plaid_item_id = linked(bank)
    mailer.sent.clear()  # the verification mail of signing up
    for n in range(2):  # Plaid may say it again (a new delivery, not a replay): one email per change
        body = body_of({"webhook_type": "ITEM", "item_id": plaid_item_id, "environment": "sandbox", "n": n} | payload)
        assert send(bank, body, bank.demo.sign_webhook(body)).status_code == 200
    (view,) = banking.list_items(bank.c, bank_user(bank))
    (mail,) = mailer.sent
    assert mail["To"] == "alice@example.com" and "needs your attention" in str(mail["Subject"])
    assert view.status_message in mail.get_content() and "Accounts" in mail.get_content()


def test_a_sync_that_meets_the_login_the_webhook_announced_sends_no_second_email(
    bank: Bank, mailer: MemoryMailer
) -> None:
    item_id, plaid_item_id = linked(bank)
    bank.demo.set_fault(plaid_item_id, "login_required")  # the bank's ITEM ERROR goes to the sink: we deliver it
    (_, body), *_ = bank.sink.wait(1)
    mailer.sent.clear()
    assert send(bank, body, bank.demo.sign_webhook(body)).outcome == "status login_required"
    assert sync_item(bank.c, bank_user(bank), item_id, explicit=True).status == "login_required"
    assert [str(m["Subject"]) for m in mailer.sent] == ["finsync: A connection needs your attention: " + _name(bank)]


def _name(bank: Bank) -> str:
    (view,) = banking.list_items(bank.c, bank_user(bank))
    return view.institution_name


def test_news_that_needs_nothing_from_the_user_sends_no_email(bank: Bank, mailer: MemoryMailer) -> None:
    _, plaid_item_id = linked(bank)
    mailer.sent.clear()
    body = sync_update(plaid_item_id)
    assert send(bank, body, bank.demo.sign_webhook(body)).status_code == 200
    body = _item_webhook(plaid_item_id, "LOGIN_REPAIRED", environment="sandbox")
    assert send(bank, body, bank.demo.sign_webhook(body)).status_code == 200
    assert mailer.sent == []


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
    replayed = deliveries(bank)[1]
    assert replayed.plaid_item_id == plaid_item_id and replayed.item_id is None  # the claim, not resolved again


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
    bank.clock.advance(minutes=webhooks.KEY_TTL_SECONDS / 60 + 1)
    later = body.replace(b"sandbox", b"sandbox-later")
    result = send(bank, later, _signed_with(old, later, int(bank.clock.now.timestamp())))
    assert result.status_code == 401 and "expired" in result.outcome


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
    with unit_of_work(bank.c.engine) as session:
        item = session.get(PlaidItem, item_id)
        assert item is not None
        item.status, user_id = "login_required", item.user_id
    assert banking.complete_repair(bank.c, user_id, item_id).status == "ok"  # the repair the user just finished
    result = send(bank, body, signed_before_repair)
    assert result.status_code == 200 and result.outcome.startswith("stale")
    assert state(bank, item_id)[0] == "ok"
    fresh = bank.demo.sign_webhook(body, iat=int(bank.clock.now.timestamp()) + 5)
    assert send(bank, body, fresh).outcome == "status login_required"
    assert state(bank, item_id)[0] == "login_required"


def _item_webhook(plaid_item_id: str, code: str, **extra: Any) -> bytes:
    return body_of({"webhook_type": "ITEM", "webhook_code": code, "item_id": plaid_item_id} | extra)


LOGIN_REQUIRED = {"error": {"error_code": "ITEM_LOGIN_REQUIRED", "error_type": "ITEM_ERROR"}}


def test_a_newer_item_webhook_applies_however_recently_the_item_changed(bank: Bank) -> None:
    """Our processing time is not Plaid's: an ERROR signed after the last applied webhook is news."""
    item_id, plaid_item_id = linked(bank)
    bank.clock.advance(minutes=2)
    now = int(bank.clock.now.timestamp())
    new_accounts = _item_webhook(plaid_item_id, "NEW_ACCOUNTS_AVAILABLE")
    error = _item_webhook(plaid_item_id, "ERROR", **LOGIN_REQUIRED)
    assert send(bank, new_accounts, bank.demo.sign_webhook(new_accounts, iat=now - 3)).outcome == (
        "status new_accounts_available"
    )
    result = send(bank, error, bank.demo.sign_webhook(error, iat=now - 2))
    assert (result.status_code, result.outcome) == (200, "status login_required")
    assert state(bank, item_id)[:2] == ("login_required", "ITEM_LOGIN_REQUIRED")


def test_an_item_webhook_signed_before_the_one_that_set_the_status_is_stale(bank: Bank) -> None:
    """A LOGIN_REPAIRED that Plaid sent before a newer ERROR, delivered after it, must not clear the error."""
    item_id, plaid_item_id = linked(bank)
    now = int(bank.clock.now.timestamp())
    error = _item_webhook(plaid_item_id, "ERROR", **LOGIN_REQUIRED)
    repaired = _item_webhook(plaid_item_id, "LOGIN_REPAIRED")
    assert send(bank, error, bank.demo.sign_webhook(error, iat=now - 5)).outcome == "status login_required"
    bank.clock.advance(seconds=30)
    late = send(bank, repaired, bank.demo.sign_webhook(repaired, iat=now - 20))
    assert (late.status_code, late.outcome[:5]) == (200, "stale")
    assert state(bank, item_id)[0] == "login_required"
    in_order = send(bank, repaired, bank.demo.sign_webhook(repaired, iat=now - 4))
    assert in_order.outcome == "status ok" and state(bank, item_id)[0] == "ok"


N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # the P-256 group order


def _high_s_twin(token: str) -> str:
    """The same signature as (r, n - s): it verifies too, but the JWT's text differs."""
    header, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    return f"{header}.{payload}.{b64(r.to_bytes(32, 'big') + (N_P256 - s).to_bytes(32, 'big'))}"


def test_a_re_encoded_signature_of_a_delivered_webhook_is_refused_as_a_replay(bank: Bank) -> None:
    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    token = bank.demo.sign_webhook(body)
    assert send(bank, body, token).status_code == 200
    first = state(bank, item_id)
    bank.clock.advance(seconds=30)
    twin = _high_s_twin(token)
    assert twin != token
    replay = send(bank, body, twin)
    assert (replay.status_code, replay.outcome) == (401, "rejected: replay")
    assert state(bank, item_id) == first


def test_pending_disconnect_says_the_day_the_connection_stops_working(bank: Bank) -> None:
    _, plaid_item_id = linked(bank)
    body = _item_webhook(plaid_item_id, "PENDING_DISCONNECT", reason="INSTITUTION_MIGRATION",
                         disconnect_time="2027-02-01T00:00:00Z", environment="sandbox")  # fmt: skip
    assert send(bank, body, bank.demo.sign_webhook(body)).outcome == "status pending_disconnect"
    (view,) = banking.list_items(bank.c, bank_user(bank))
    assert view.status == "pending_disconnect" and view.needs_repair
    assert "stop working on 01 Feb 2027" in view.status_message


def test_an_error_webhook_signed_before_a_successful_sync_does_not_break_the_item_after_it(bank: Bank) -> None:
    """A sync that worked at t1 is newer news than an ITEM ERROR Plaid signed at t0 < t1 and delivered late."""
    from services.sync import sync_item

    item_id, plaid_item_id = linked(bank)
    error = _item_webhook(plaid_item_id, "ERROR", **LOGIN_REQUIRED)
    signed_before = bank.demo.sign_webhook(error, iat=int(bank.clock.now.timestamp()) - 10)
    with unit_of_work(bank.c.engine) as session:
        item = session.get(PlaidItem, item_id)
        assert item is not None
        item.status, item.status_code, user_id = "error", "INTERNAL_SERVER_ERROR", item.user_id
    assert sync_item(bank.c, user_id, item_id, explicit=True).status == "ok"  # the bank answered: it works
    assert state(bank, item_id)[0] == "ok"
    late = send(bank, error, signed_before)
    assert (late.status_code, late.outcome[:5]) == (200, "stale")
    assert state(bank, item_id)[0] == "ok"
    bank.clock.advance(seconds=5)
    news = send(bank, error, bank.demo.sign_webhook(error, iat=int(bank.clock.now.timestamp())))
    assert news.outcome == "status login_required"  # signed after the sync: the bank broke since


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
