"""The database failing right after a good public-token exchange: retried if transient, else the item is removed at Plaid."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from models import BankAccount, PlaidItem
from services import banking, banking_exchange, banking_store
from services.errors import DatabaseUnavailable
from tests.integration.banking_support import audit_events, count, pending_item
from tests.integration.conftest_bank import Bank


def _locked() -> OperationalError:
    return OperationalError("INSERT INTO bank_accounts ...", {}, sqlite3.OperationalError("database is locked"))


def _failing_store(monkeypatch: pytest.MonkeyPatch, failures: int, error: Callable[[], Exception]) -> list[int]:
    """``store_item`` writes its rows, then fails the first ``failures`` times; returns the list of tries."""
    real = banking_store.store_item
    tries: list[int] = []

    def store_item(*args: Any, **kwargs: Any) -> Any:
        tries.append(1)
        stored = real(*args, **kwargs)  # half-written rows the rollback must take back
        if len(tries) <= failures:
            raise error()
        return stored

    monkeypatch.setattr(banking_store, "store_item", store_item)
    monkeypatch.setattr(banking_exchange, "STORE_PAUSE", 0.0)
    return tries


def _link(bank: Bank) -> tuple[Any, str, Callable[[], Any]]:
    alice = bank.user()
    start = banking.start_link(bank.c, alice)
    success = bank.link_login(start.link_token, "ins_demo_2")
    at_bank = pending_item(bank, success["public_token"])

    def complete() -> Any:
        return banking.complete_link(bank.c, alice, public_token=success["public_token"], metadata=success,
                                     link_session_id=start.link_session_id)  # fmt: skip

    return alice, at_bank, complete


def test_a_locked_database_once_after_the_exchange_is_retried_and_the_bank_stored(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, at_bank, complete = _link(bank)
    tries = _failing_store(monkeypatch, 1, _locked)
    view = complete()
    assert len(tries) == 2 and len(view.accounts) == 3
    assert [i.id for i in banking.list_items(bank.c, alice)] == [view.id]
    assert count(bank, PlaidItem) == 1 and count(bank, BankAccount) == 3  # the first try's rows were rolled back
    assert not bank.demo.bank.items[at_bank].removed
    assert audit_events(bank, "bank_linked") == ["Maple Credit Union"] and not audit_events(bank, "bank_link_failed")
    assert banking.resume_link(bank.c, alice) is None  # the Link session is completed with the stored item


def test_a_database_that_stays_locked_stores_nothing_and_removes_the_item_at_plaid(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, at_bank, complete = _link(bank)
    tries = _failing_store(monkeypatch, 99, _locked)
    with pytest.raises(DatabaseUnavailable, match=r"Linking Maple Credit Union did not finish and nothing was saved"):
        complete()
    assert len(tries) == banking_exchange.STORE_TRIES
    assert count(bank, PlaidItem) == 0 and count(bank, BankAccount) == 0
    assert bank.demo.bank.items[at_bank].removed
    assert audit_events(bank, "bank_link_failed") == ["storing failed; removed at Plaid"]
    assert banking.list_items(bank.c, alice) == []


def test_a_programming_error_while_storing_is_not_retried(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    _, at_bank, complete = _link(bank)
    tries = _failing_store(monkeypatch, 99, lambda: ProgrammingError("SELECT nope", {}, Exception("no such column")))
    with pytest.raises(ProgrammingError):
        complete()
    assert len(tries) == 1 and count(bank, PlaidItem) == 0
    assert bank.demo.bank.items[at_bank].removed
    assert audit_events(bank, "bank_link_failed") == ["storing failed; removed at Plaid"]


def test_a_try_that_committed_but_lost_its_answer_is_not_stored_twice_nor_removed(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection lost during COMMIT: the retry finds its own row instead of calling it a duplicate."""
    alice, at_bank, complete = _link(bank)
    real = banking_exchange._store
    tries: list[int] = []

    def store(*args: Any) -> Any:
        tries.append(1)
        done = real(*args)
        if len(tries) == 1:
            raise _locked()  # committed, but the caller never heard so
        return done

    monkeypatch.setattr(banking_exchange, "_store", store)
    monkeypatch.setattr(banking_exchange, "STORE_PAUSE", 0.0)
    view = complete()
    assert len(tries) == 2 and [i.id for i in banking.list_items(bank.c, alice)] == [view.id]
    assert not bank.demo.bank.items[at_bank].removed and not audit_events(bank, "bank_link_failed")
