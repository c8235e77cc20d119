"""Sensitive actions ask who you are again (security bar D7): email change, bank removal, CSV export.

Account deletion and turning two-factor off already do (test_auth_account_changes, test_auth_totp).
"""

from __future__ import annotations

import pytest

from services import audit, auth, banking, export
from services.errors import InputError, PermissionDenied
from services.mailer import MemoryMailer
from tests.integration.auth_support import IP, PASSWORD, code_at, enable_totp, fast_hashing, make_user  # noqa: F401
from tests.integration.conftest_bank import Bank

pytestmark = pytest.mark.usefixtures("fast_hashing")
NOT_IT = "not my password at all, sorry"


def test_with_two_factor_an_email_change_needs_a_code_too(bank: Bank, mailer: MemoryMailer) -> None:
    c = bank.c
    alice = make_user(c)
    secret = enable_totp(c, alice.id)
    sent = len(mailer.sent)
    with pytest.raises(InputError, match="6-digit code"):
        auth.request_email_change(c, alice.id, password=PASSWORD, new_email="thief@example.com")
    with pytest.raises(InputError, match="code is not right"):
        auth.request_email_change(c, alice.id, password=PASSWORD, new_email="thief@example.com", code="000000")
    assert len(mailer.sent) == sent  # no link went to the new address
    bank.clock.advance(seconds=30)
    auth.request_email_change(c, alice.id, password=PASSWORD, new_email="new@example.com",
                              code=code_at(secret, c.clock()))  # fmt: skip
    assert [m["To"] for m in mailer.sent[sent:]] == ["new@example.com", "alice@example.com"]


def test_removing_a_bank_needs_the_password_and_a_wrong_one_counts(bank: Bank) -> None:
    c = bank.c
    alice = make_user(c)
    item = bank.link(alice.id)
    for _ in range(5):
        with pytest.raises(InputError, match="password is not right"):
            banking.remove_bank(c, alice.id, item.id, keep_history=False, password=NOT_IT)
    with pytest.raises(PermissionDenied, match="paused"):  # guessing here pauses the account like sign-in does
        banking.remove_bank(c, alice.id, item.id, keep_history=False, password=PASSWORD)
    assert [i.id for i in banking.list_items(c, alice.id)] == [item.id]  # still linked, still at Plaid
    bank.clock.advance(minutes=15)
    banking.remove_bank(c, alice.id, item.id, keep_history=False, password=PASSWORD)
    assert banking.list_items(c, alice.id) == []


def test_a_csv_export_needs_the_password_and_a_code_with_two_factor(bank: Bank) -> None:
    c = bank.c
    alice = make_user(c)
    secret = enable_totp(c, alice.id)
    with pytest.raises(InputError, match="password is not right"):
        export.export_bytes(c, alice.id, password=NOT_IT, code="123456")
    with pytest.raises(InputError, match="6-digit code"):
        export.export_bytes(c, alice.id, password=PASSWORD)
    assert "transactions_exported" not in [e.event for e in audit.list_events(c, alice.id)]
    bank.clock.advance(seconds=30)
    data, count = export.export_bytes(c, alice.id, password=PASSWORD, code=code_at(secret, c.clock()))
    assert data.startswith(b"transaction_id,date,") and count == 0
    assert "transactions_exported" in [e.event for e in audit.list_events(c, alice.id)]


def test_a_wrong_password_for_a_protected_action_is_in_the_activity_log_with_where_it_came_from(bank: Bank) -> None:
    """Bar I2 (ASVS 16.3.1): a failed proof of identity is an authentication event, whatever the action."""
    c = bank.c
    alice = make_user(c)
    item = bank.link(alice.id)
    attempts = {
        "email change": lambda: auth.request_email_change(
            c, alice.id, password=NOT_IT, new_email="thief@example.com", ip=IP
        ),
        "bank removal": lambda: banking.remove_bank(c, alice.id, item.id, keep_history=False, password=NOT_IT, ip=IP),
        "export": lambda: export.export_bytes(c, alice.id, password=NOT_IT, ip=IP),
        "account deletion": lambda: auth.delete_account(c, alice.id, password=NOT_IT, ip=IP),
    }
    for attempt in attempts.values():
        with pytest.raises(InputError, match="password is not right"):
            attempt()
    failed = [(e.detail, e.ip) for e in audit.list_events(c, alice.id) if e.event == "reauth_failed"]
    assert sorted(failed) == sorted((f"{action}: wrong password", IP) for action in attempts)
    assert NOT_IT not in repr(audit.list_events(c, alice.id))
    assert [i.id for i in banking.list_items(c, alice.id)] == [item.id]  # nothing was done
