"""No bank secret reaches a log record or a stored row (bar I1): link, sync, webhook-free repair state, removal.

The sign-in flows have the same sentinel test in test_auth_admin; this one covers the Plaid side: the
link token, the public token, the access token, Plaid's secret, and our own key ring and secret key.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from services import banking, sync
from services.db import unit_of_work
from tests.integration.conftest_bank import Bank

TABLES = ("audit_events", "plaid_api_events", "sync_runs", "webhook_deliveries", "link_sessions", "mail_queue")


def test_no_bank_secret_reaches_a_log_record_or_a_stored_row(bank: Bank, caplog: pytest.LogCaptureFixture) -> None:
    c = bank.c
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # SQL and its parameters too
    try:
        alice = bank.user()
        start = banking.start_link(c, alice)
        success = bank.link_login(start.link_token, "ins_demo_2")
        item = banking.complete_link(c, alice, public_token=success["public_token"], metadata=success,
                                     link_session_id=start.link_session_id)  # fmt: skip
        access = banking.get_access_token(c, alice, item.id)
        assert sync.sync_item(c, alice, item.id, explicit=True).status == "ok"
        bank.demo.set_fault(bank.plaid_item_id(item.id), "login_required")
        assert sync.sync_item(c, alice, item.id, explicit=True).status == "login_required"
        with unit_of_work(c.engine) as session:
            rows = {t: repr(session.execute(text(f"SELECT * FROM {t}")).fetchall()) for t in TABLES}
        banking.remove_item(c, alice, item.id, keep_history=False)
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    assert c.settings.encryption_keys is not None and c.settings.secret_key is not None
    secrets = {
        "link token": start.link_token,
        "public token": success["public_token"],
        "access token": access,
        "Plaid secret": c.plaid._credentials[1],  # type: ignore[union-attr]
        "key ring": c.settings.encryption_keys.get_secret_value().split(":", 1)[1].split(",")[0],
        "secret key": c.settings.secret_key.get_secret_value(),
    }
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "/transactions/sync" in logs or "plaid_api_events" in logs  # the run was logged at all
    stored = "\n".join(rows.values())
    assert "ITEM_LOGIN_REQUIRED" in stored  # and recorded: the scan looks at real rows
    for name, secret in secrets.items():
        assert len(secret) >= 8, name
        assert secret not in logs, f"the {name} reached a log record"
        assert secret not in stored, f"the {name} reached a stored row"
