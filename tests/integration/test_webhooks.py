"""Webhooks as Plaid (the demo bank) signs them: what each one changes, once, in the order they were signed."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from models import PlaidItem
from services import banking, wakeup, webhooks
from services.db import make_engine, unit_of_work
from services.mailer import MemoryMailer
from services.sync import sync_item
from services.web import webhook_route
from tests.integration.conftest_bank import Bank
from tests.integration.webhook_support import body_of, deliveries, linked, send, state, sync_update


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
    ("code", "words"),
    [
        ("ACCESS_NOT_GRANTED", "Use “Repair connection” and allow access to your accounts and transactions."),
        ("NO_ACCOUNTS", "Use “Repair connection” and choose at least one account."),
        ("ITEM_LOCKED", "Unlock it at your bank, then use “Repair connection”."),
        ("USER_SETUP_REQUIRED", "(such as accepting new terms). Do that, then use “Repair connection”."),
    ],
)
def test_an_item_error_that_update_mode_fixes_asks_for_a_repair_in_its_own_words(
    bank: Bank, mailer: MemoryMailer, code: str, words: str
) -> None:
    """Plaid: an ITEM ERROR "can be resolved by having the user go through Link's update mode". Not only a login:
    access not granted, no accounts shared, a locked login; each gets Repair and an email, not "try again later"."""
    _, plaid_item_id = linked(bank)
    mailer.sent.clear()
    error = {"error_type": "ITEM_ERROR", "error_code": code, "error_message": "x", "display_message": None}
    body = body_of({"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": plaid_item_id, "error": error,
                    "environment": "production"})  # fmt: skip
    assert send(bank, body, bank.demo.sign_webhook(body)).status_code == 200
    (view,) = banking.list_items(bank.c, bank_user(bank))
    assert (view.status, view.status_code, view.needs_repair) == ("login_required", code, True)
    assert view.status_message.endswith(words)
    (mail,) = mailer.sent
    assert "needs your attention" in str(mail["Subject"]) and view.status_message in mail.get_content()


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
    assert [str(m["Subject"]) for m in mailer.sent] == ["finsync: a connection needs your attention: " + _name(bank)]


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


def test_a_webhook_for_an_unknown_item_is_recorded_and_changes_nothing(bank: Bank) -> None:
    item_id, _ = linked(bank)
    before = state(bank, item_id)
    body = sync_update("no-such-item")
    result = send(bank, body, bank.demo.sign_webhook(body))
    assert (result.status_code, result.outcome) == (200, "unknown item")
    assert state(bank, item_id) == before
    assert deliveries(bank)[0].plaid_item_id == "no-such-item"


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


def test_a_webhook_that_lands_while_a_sync_commits_is_not_overwritten_by_it(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Access revoked at the bank, announced while a sync that began before is committing: the sync's "it works"
    must not write back over it (on PostgreSQL the commit wrote the status it had read, and the revocation was lost:
    the bank showed as connected)."""
    from services import sync_commit

    item_id, plaid_item_id = linked(bank)
    with unit_of_work(bank.c.engine) as session:
        item = session.get(PlaidItem, item_id)
        assert item is not None
        item.status, item.status_code, user_id = "error", "INTERNAL_SERVER_ERROR", item.user_id
    revoked = _item_webhook(plaid_item_id, "USER_PERMISSION_REVOKED")
    signature = bank.demo.sign_webhook(revoked)
    answers: list[str] = []
    delivery = threading.Thread(target=lambda: answers.append(send(bank, revoked, signature).outcome))
    real = sync_commit._finish

    def finish_then_webhook(*args: Any) -> None:
        real(*args)  # the status read and set to ok, not committed yet
        delivery.start()
        delivery.join(timeout=2.0)  # it lands now if nothing holds it back

    monkeypatch.setattr(sync_commit, "_finish", finish_then_webhook)
    assert sync_item(bank.c, user_id, item_id, explicit=True).status == "ok"
    delivery.join(timeout=30)
    assert answers == ["status permission_revoked"]
    assert state(bank, item_id)[0] == "permission_revoked"


def test_deliveries_that_arrive_together_are_each_applied_and_recorded(bank: Bank) -> None:
    """Plaid announces news for several banks in the same instant: every delivery is handled (none refused
    with "database is locked" on SQLite, where each now waits for the write lock its turn)."""
    item_id, plaid_item_id = linked(bank)
    news = json.loads(sync_update(plaid_item_id))
    bodies = [json.dumps(news, indent=n).encode() for n in range(1, 9)]  # eight deliveries, eight signatures
    signed = [(body, bank.demo.sign_webhook(body)) for body in bodies]
    start = threading.Barrier(len(signed))
    answers: list[Any] = []

    def deliver(body: bytes, token: str) -> None:
        start.wait()
        try:
            answers.append(send(bank, body, token).status_code)
        except Exception as exc:  # what the route would turn into an error answer
            answers.append(type(exc).__name__)

    threads = [threading.Thread(target=deliver, args=pair) for pair in signed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [200] * len(signed)
    assert len(deliveries(bank)) == len(signed) and state(bank, item_id)[2] == bank.clock.now


def test_a_delivery_the_database_cannot_take_is_answered_503_and_applied_when_sent_again(
    bank: Bank, caplog: pytest.LogCaptureFixture
) -> None:
    """Faults catalogue, "database gone": the route answers 503 with Retry-After (Plaid delivers again) and
    one log line, not a traceback and a bare 500; the same delivery sent again once the database is back applies."""
    item_id, plaid_item_id = linked(bank)
    body = sync_update(plaid_item_id)
    token = bank.demo.sign_webhook(body)
    before = state(bank, item_id)
    gone = dataclasses.replace(bank.c, engine=make_engine("postgresql+psycopg2://finsync:x@127.0.0.1:1/finsync"))
    route = "/webhooks/plaid"
    with caplog.at_level(logging.ERROR, logger="finsync.webhooks"):
        down = TestClient(Starlette(routes=[webhook_route(lambda: gone)])).post(
            route, content=body, headers={"Plaid-Verification": token}
        )
    assert (down.status_code, down.headers["retry-after"], down.json()) == (503, "60", {"error": "try again later"})
    (said,) = [r.getMessage() for r in caplog.records if r.name == "finsync.webhooks"]
    assert said.startswith("webhook not handled, the database is unavailable: connection to server at")
    assert state(bank, item_id) == before and deliveries(bank) == []

    back = TestClient(Starlette(routes=[webhook_route(lambda: bank.c)]))
    again = back.post(route, content=body, headers={"Plaid-Verification": token})
    assert (again.status_code, again.json()) == (200, {"outcome": "sync requested"})
    assert state(bank, item_id)[2] == bank.clock.now
