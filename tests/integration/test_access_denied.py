"""Ids from the client are never trusted (bar F2): someone else's reads as missing, and is audited as access_denied."""

from __future__ import annotations

import uuid

import pytest

from services import admin, audit, sessions, sync
from services.errors import NotFound, PermissionDenied
from services.ledger import edit_transaction, get_transaction
from services.ledger_listing import list_transactions
from tests.integration.auth_support import fast_hashing, make_user, sign_in  # noqa: F401
from tests.integration.conftest_bank import Bank

pytestmark = pytest.mark.usefixtures("fast_hashing")


def denials(bank: Bank, user_id: uuid.UUID) -> list[str]:
    return [e.detail for e in audit.list_events(bank.c, user_id) if e.event == "access_denied"]


def test_another_users_transaction_session_and_sync_read_as_missing_and_are_audited(bank: Bank) -> None:
    c = bank.c
    alice, bob = make_user(c).id, make_user(c, "bob").id
    item = bank.link(alice)
    assert sync.sync_item(c, alice, item.id, explicit=True).status == "ok"
    tid = list_transactions(c, alice)[0].transaction_id
    token = sign_in(c, "alice")
    (mine,) = sessions.list_sessions(c, alice, token)

    refusals = {
        "edit": lambda: edit_transaction(c, bob, tid, note="mine now"),
        "revoke": lambda: sessions.revoke_session(c, bob, mine.id),
        "sync": lambda: sync.sync_item(c, bob, item.id, explicit=True),
    }
    missing = {
        "edit": lambda: edit_transaction(c, bob, "no-such-transaction", note="x"),
        "revoke": lambda: sessions.revoke_session(c, bob, uuid.uuid4()),
        "sync": lambda: sync.sync_item(c, bob, uuid.uuid4(), explicit=True),
    }
    for name, attempt in refusals.items():
        with pytest.raises(NotFound) as theirs:
            attempt()
        with pytest.raises(NotFound) as nobodys:
            missing[name]()
        assert str(theirs.value) == str(nobodys.value), name  # the same words: nothing to enumerate
    assert sorted(denials(bank, bob)) == sorted([f"transaction {tid}", f"session {mine.id}",
                                                 f"sync of bank connection {item.id}"])  # fmt: skip
    assert get_transaction(c, alice, tid).note is None and sessions.current_user(c, token) is not None
    assert denials(bank, alice) == []


def test_a_non_admin_asking_for_an_admin_function_is_refused_and_audited(bank: Bank) -> None:
    bob = make_user(bank.c, "bob").id
    with pytest.raises(PermissionDenied, match="Only an administrator"):
        admin.list_users(bank.c, bob)
    assert denials(bank, bob) == ["an admin function"]
