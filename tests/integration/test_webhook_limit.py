"""The webhook route under a flood (security bar L7): 429 before the body is read; forged key ids cannot flood Plaid."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from models import PlaidItem, WebhookDelivery
from services import banking, webhook_verify, webhooks
from services.client_address import sender
from services.container import Container
from services.db import unit_of_work
from services.plaid_types import CallEvent
from services.ratelimit import KeyedBuckets, TokenBucket
from services.web import (
    MAX_WEBHOOK_BYTES,
    REJECTED_RECORD_BURST,
    REJECTED_RECORD_RATE,
    WEBHOOK_ALL_BURST,
    WEBHOOK_ALL_RATE,
    WEBHOOK_BURST,
    WEBHOOK_RATE,
    webhook_route,
)
from tests.factories import Ticker
from tests.integration.conftest_bank import Bank
from tests.integration.webhook_support import sync_update

URL = "/webhooks/plaid"


def route_app(c: Container, ticker: Ticker) -> Starlette:
    buckets = KeyedBuckets(WEBHOOK_RATE, WEBHOOK_BURST, clock=ticker)
    everyone = TokenBucket(WEBHOOK_ALL_RATE, WEBHOOK_ALL_BURST, clock=ticker)
    records = TokenBucket(REJECTED_RECORD_RATE, REJECTED_RECORD_BURST, clock=ticker)
    return Starlette(routes=[webhook_route(lambda: c, limiter=buckets, ceiling=everyone, recorder=records)])


def client(c: Container, ticker: Ticker, address: str = "198.51.100.1") -> TestClient:
    return TestClient(route_app(c, ticker), client=(address, 40000))


def stored(c: Container) -> int:
    with unit_of_work(c.engine) as session:
        return int(session.execute(select(func.count()).select_from(WebhookDelivery)).scalar_one())


def test_a_flood_gets_429_with_retry_after_and_writes_nothing_until_the_bucket_refills(container: Container) -> None:
    ticker = Ticker(1000.0)
    app = route_app(container, ticker)
    http = TestClient(app, client=("198.51.100.1", 40000))
    answers = [http.post(URL, content=b'{"webhook_type": "TRANSACTIONS"}') for _ in range(150)]
    assert [r.status_code for r in answers] == [401] * 100 + [429] * 50  # unsigned: answered, refused
    assert all(r.headers["retry-after"] == "1" and r.json() == {"error": "too many requests"} for r in answers[100:])
    # The 50 refused never reached the database; of the 100 rejected, a budget's worth is stored (all are logged)
    assert stored(container) == REJECTED_RECORD_BURST

    plaid = TestClient(app, client=("52.21.26.131", 40000))  # another sender (Plaid) is not held up by the flood
    assert plaid.post(URL, content=b"{}").status_code == 401  # answered (this one is unsigned), not 429

    ticker.now += 1.0  # 20 tokens a second come back, and one stored rejection
    again = [http.post(URL, content=b"{}").status_code for _ in range(21)]
    assert again == [401] * 20 + [429] and stored(container) == REJECTED_RECORD_BURST + 1
    ticker.now += 60.0  # a quiet minute refills the bucket to its burst, no further
    burst = [http.post(URL, content=b"{}").status_code for _ in range(WEBHOOK_BURST + 1)]
    assert burst == [401] * WEBHOOK_BURST + [429]


def test_one_ipv6_host_is_one_sender_and_all_senders_together_meet_a_ceiling(container: Container) -> None:
    """A host owns its whole /64: new addresses from it do not buy new budgets. And however many senders, the
    process verifies no more than the ceiling allows (the work of checking forgeries is bounded too)."""
    assert sender("2001:db8:1:2::1") == sender("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert sender("::ffff:198.51.100.7") == "198.51.100.7" and sender("") == ""
    app = route_app(container, Ticker(1000.0))
    rotating = [
        TestClient(app, client=(f"2001:db8:1:2::{n:x}", 40000)).post(URL, content=b"{}").status_code
        for n in range(WEBHOOK_BURST + 5)
    ]
    assert rotating == [401] * WEBHOOK_BURST + [429] * 5

    app = route_app(container, Ticker(1000.0))
    many = [
        TestClient(app, client=(f"198.51.{n // 250}.{n % 250 + 1}", 40000)).post(URL, content=b"{}").status_code
        for n in range(WEBHOOK_ALL_BURST + 5)
    ]
    assert many == [401] * WEBHOOK_ALL_BURST + [429] * 5


def sync_requested_at(bank: Bank, item_id: uuid.UUID) -> datetime | None:
    with unit_of_work(bank.c.engine) as session:
        item = session.get(PlaidItem, item_id)
        assert item is not None
        return item.sync_requested_at


def test_a_rejected_delivery_tells_its_sender_nothing_and_the_record_says_why(bank: Bank) -> None:
    """A forger probing the route learns only "unverified" (not which check failed); the stored record says which."""
    bank.user()
    body = sync_update(bank.plaid_item_id(banking.link_sandbox(bank.c, email="alice@example.com")))
    http = client(bank.c, Ticker(1000.0))
    signed = bank.demo.sign_webhook(body)
    for token in ("not-a-jwt", signed.rsplit(".", 1)[0] + ".AAAA", signed):
        answer = http.post(URL, content=body + b" " if token == signed else body, headers={"Plaid-Verification": token})
        assert (answer.status_code, answer.json()) == (401, {"error": "unverified"})
    with unit_of_work(bank.c.engine) as session:
        why = [d.outcome for d in session.execute(select(WebhookDelivery)).scalars()]
    assert len(why) == 3 and all(w.startswith("rejected: ") for w in why) and len(set(why)) == 3
    # Signed by Plaid but no JSON object: verified, so not "unverified" (Plaid's own delivery, refused as unreadable)
    odd = b"[1, 2, 3]"
    answer = http.post(URL, content=odd, headers={"Plaid-Verification": bank.demo.sign_webhook(odd)})
    assert (answer.status_code, answer.json()) == (400, {"outcome": "unreadable body"})
    # Nested thousands deep, unsigned or signed: an answer like any other unreadable body, not a crash (a 500
    # with a traceback per hit), and a record of the probe
    deep = b"[" * 5000 + b"]" * 5000
    answer = http.post(URL, content=deep, headers={"Plaid-Verification": "x"})
    assert (answer.status_code, answer.json()) == (401, {"error": "unverified"})
    answer = http.post(URL, content=deep, headers={"Plaid-Verification": bank.demo.sign_webhook(deep)})
    assert (answer.status_code, answer.json()) == (400, {"outcome": "unreadable body"})
    with unit_of_work(bank.c.engine) as session:
        assert session.execute(select(func.count()).select_from(WebhookDelivery)).scalar_one() == 6


def test_a_signed_webhook_refused_in_a_flood_is_applied_once_the_bucket_refills(bank: Bank) -> None:
    bank.user()
    item_id = banking.link_sandbox(bank.c, email="alice@example.com")
    body = sync_update(bank.plaid_item_id(item_id))
    headers = {"Content-Type": "application/json", "Plaid-Verification": bank.demo.sign_webhook(body)}
    bank.clock.advance(minutes=1)  # so "requested now" differs from anything linking wrote
    before = sync_requested_at(bank, item_id)
    ticker = Ticker(1000.0)
    http = client(bank.c, ticker)
    assert {http.post(URL, content=b"{}").status_code for _ in range(WEBHOOK_BURST)} == {401}  # forged
    refused = http.post(URL, content=body, headers=headers)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert sync_requested_at(bank, item_id) == before and stored(bank.c) == REJECTED_RECORD_BURST  # nothing read

    ticker.now += 0.1  # two tokens back (20 a second); Plaid retries the very same delivery
    accepted = http.post(URL, content=body, headers=headers)
    assert (accepted.status_code, accepted.json()) == (200, {"outcome": "sync requested"})
    assert sync_requested_at(bank, item_id) == bank.clock.now != before


def test_an_oversized_body_declared_or_chunked_gets_413_and_is_not_stored(container: Container) -> None:
    http = client(container, Ticker(1000.0))
    limit = MAX_WEBHOOK_BYTES
    assert http.post(URL, content=b"x" * (limit + 1)).status_code == 413  # declared Content-Length

    def chunks():  # chunked, no Content-Length: the route counts while streaming
        for _ in range(1000):
            yield b"x" * 4096

    assert http.post(URL, content=chunks()).status_code == 413
    assert stored(container) == 0
    assert http.post(URL, content=b"{}").status_code == 401  # an ordinary body is still read and verified
    assert stored(container) == 1


def _forged_kid(bank: Bank, body: bytes, kid: str | None = None) -> str:
    claims = {"iat": int(bank.clock.now.timestamp()), "request_body_sha256": hashlib.sha256(body).hexdigest()}
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid or str(uuid.uuid4())})


def _key_fetches(plaid_events: list[CallEvent]) -> int:
    return sum(e.endpoint == "/webhook_verification_key/get" for e in plaid_events)


def test_forged_key_ids_spend_a_small_budget_then_get_401_without_asking_plaid(
    bank: Bank, plaid_events: list[CallEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    bank.user()
    body = sync_update(bank.plaid_item_id(banking.link_sandbox(bank.c, email="alice@example.com")))
    assert webhooks.handle_webhook(bank.c, body=body, headers=_signed(bank.demo.sign_webhook(body))).status_code == 200
    assert _key_fetches(plaid_events) == 1  # Plaid's own key, cached
    ticker = Ticker(1000.0)  # a full budget from here, on a clock the test moves
    monkeypatch.setattr(
        webhook_verify,
        "_new_kids",
        KeyedBuckets(webhook_verify.NEW_KID_RATE, webhook_verify.NEW_KID_BURST, clock=ticker),
    )

    answers = [webhooks.handle_webhook(bank.c, body=body, headers=_signed(_forged_kid(bank, body))) for _ in range(30)]
    assert {a.status_code for a in answers} == {401}
    assert _key_fetches(plaid_events) == 1 + webhook_verify.NEW_KID_BURST  # not 30: the rest never reached Plaid
    assert all("too many new key ids" in a.outcome for a in answers[webhook_verify.NEW_KID_BURST :])

    genuine = body.replace(b"sandbox", b"sandbox-again")
    signed = webhooks.handle_webhook(bank.c, body=genuine, headers=_signed(bank.demo.sign_webhook(genuine)))
    assert signed.status_code == 200  # a cached key needs no budget: Plaid's webhooks still get through
    ticker.now += 1.0 / webhook_verify.NEW_KID_RATE
    webhooks.handle_webhook(bank.c, body=body, headers=_signed(_forged_kid(bank, body)))
    assert _key_fetches(plaid_events) == 2 + webhook_verify.NEW_KID_BURST  # the budget refills


def test_forged_key_ids_from_one_sender_do_not_spend_another_senders_budget(
    bank: Bank, plaid_events: list[CallEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a key rotation Plaid signs with a kid finsync has not seen: a flood of forged kids from elsewhere must
    not have spent the budget that lets finsync ask Plaid for it."""
    body = sync_update("no-such-item")
    ticker = Ticker(1000.0)
    monkeypatch.setattr(
        webhook_verify,
        "_new_kids",
        KeyedBuckets(webhook_verify.NEW_KID_RATE, webhook_verify.NEW_KID_BURST, clock=ticker),
    )
    for _ in range(30):
        webhooks.handle_webhook(bank.c, body=body, headers=_signed(_forged_kid(bank, body)), source="203.0.113.9")
    assert _key_fetches(plaid_events) == webhook_verify.NEW_KID_BURST
    other = webhooks.handle_webhook(bank.c, body=body, headers=_signed(_forged_kid(bank, body)), source="52.21.26.131")
    assert "too many new key ids" not in other.outcome  # this sender's unseen kid was asked about
    assert _key_fetches(plaid_events) == webhook_verify.NEW_KID_BURST + 1


def test_the_unknown_key_id_cache_forgets_the_oldest_instead_of_growing(
    bank: Bank, plaid_events: list[CallEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_verify, "MAX_MISSES", 5)
    body = sync_update("no-such-item")
    kids = [f"forged-{i}" for i in range(6)]
    for kid in kids:
        assert (
            webhooks.handle_webhook(bank.c, body=body, headers=_signed(_forged_kid(bank, body, kid))).status_code == 401
        )
    assert _key_fetches(plaid_events) == 6 and len(webhook_verify._misses) == 5
    webhooks.handle_webhook(bank.c, body=body, headers=_signed(_forged_kid(bank, body, kids[-1])))
    assert _key_fetches(plaid_events) == 6  # remembered: no second fetch within the minute
    webhooks.handle_webhook(bank.c, body=body, headers=_signed(_forged_kid(bank, body, kids[0])))
    assert _key_fetches(plaid_events) == 7 and len(webhook_verify._misses) == 5  # forgotten as the oldest, asked again


def _signed(token: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Plaid-Verification": token}
