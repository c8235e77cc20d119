"""Helpers for sync tests: a user, a demo item linked through the gateway and stored, ledger vs bank truth."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from models import BankAccount, ItemSyncState, LedgerTransaction, PlaidItem, SyncRun, User
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.plaid_client import PlaidGateway
from services.plaid_mapping import map_transaction
from services.sync import sync_item
from services.sync_types import RetryPolicy, SyncResult

REPO = Path(__file__).resolve().parents[2]

FAST = RetryPolicy(retries=4, base_seconds=0.001, cap_seconds=0.005, sleep=lambda _s: None)  # waits are not slept


def make_user(c: Container, email: str = "ada@example.com") -> uuid.UUID:
    """A user row (no password work: these tests never sign in)."""
    name = email.split("@", maxsplit=1)[0]
    with unit_of_work(c.engine) as s:
        user = User(
            email=email, email_norm=email, username=name, username_norm=name, password_hash="x", email_verified=True
        )
        s.add(user)
        s.flush()
        return user.id


def link_item(
    c: Container,
    gateway: PlaidGateway,
    user_id: uuid.UUID,
    *,
    username: str = "user_good",
    institution: str = "ins_demo_1",
) -> tuple[uuid.UUID, str]:
    """Link a demo item through the real SDK and store it as banking.complete_link would: (our id, Plaid item id)."""
    public = gateway.sandbox_public_token_create(institution, username=username)
    access = gateway.exchange_public_token(public)
    row_id = uuid.uuid4()
    blob = c.cipher.encrypt(
        access.access_token, table="plaid_items", column="access_token_enc", row_id=row_id, owner=user_id
    )
    with unit_of_work(c.engine) as s:
        s.add(
            PlaidItem(
                id=row_id,
                user_id=user_id,
                plaid_item_id=access.item_id,
                access_token_enc=blob,
                institution_id=institution,
                institution_name=f"Demo {institution}",
                created_at=c.clock(),  # the container's clock, as banking.complete_link stamps it
                updated_at=c.clock(),
            )
        )
    return row_id, access.item_id


def sync_fast(c: Container, gw: PlaidGateway, user_id: uuid.UUID, item_id: uuid.UUID, **kw: Any) -> SyncResult:
    """``sync_item`` through ``gw`` with the FAST policy: retries without real waits."""
    return sync_item(c, user_id, item_id, gateway=gw, policy=FAST, **kw)


def ledger(c: Container, user_id: uuid.UUID) -> dict[str, tuple[Any, ...]]:
    """The user's ledger keyed by Plaid id: Plaid's fields as the comparison needs them."""
    with unit_of_work(c.engine) as s:
        rows = s.exec(
            select(LedgerTransaction, BankAccount.plaid_account_id)
            .join(BankAccount, BankAccount.id == LedgerTransaction.account_id)  # type: ignore[arg-type]
            .where(LedgerTransaction.user_id == user_id)
        ).all()
        return {
            t.plaid_transaction_id: (
                acct, t.amount_minor, t.date, t.name, t.merchant_name, t.pending, t.category_detailed
            )
            for t, acct in rows
        }  # fmt: skip


def truth(bank: DemoBankHandle, plaid_item_id: str) -> dict[str, tuple[Any, ...]]:
    """The demo bank's own current transactions in the same shape."""
    out = {}
    for raw in bank.truth(plaid_item_id):
        t = map_transaction(raw)
        out[t.transaction_id] = (
            t.account_id,
            t.amount_minor,
            t.date,
            t.name,
            t.merchant_name,
            t.pending,
            t.category_detailed,
        )
    return out


def sync_runs(c: Container) -> list[SyncRun]:
    """Every sync run row, detached (a test polls them while a child process syncs)."""
    with unit_of_work(c.engine) as s:
        runs = list(s.exec(select(SyncRun)).all())
        s.expunge_all()
    return runs


def slow_items(c: Container, gw: PlaidGateway, bank: DemoBankHandle, user_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """Two linked banks whose every call takes half a second: a sync of either lasts long enough to be cut short."""
    items = [link_item(c, gw, user_id, institution=ins) for ins in ("ins_demo_1", "ins_demo_2")]
    for _, pid in items:
        bank.set_fault(pid, "delay", seconds=0.5)
    return items


def signal_mid_sync(
    c: Container, bank: DemoBankHandle, args: list[str], signum: int, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m services.cli ARGS`` and send it ``signum`` once a sync of its is under way."""
    child = subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args],
        cwd=cwd, env=process_env(c, bank), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not any(r.status == "running" for r in sync_runs(c)):
            assert child.poll() is None and time.monotonic() < deadline, f"{args} never started a sync"
            time.sleep(0.05)
        child.send_signal(signum)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    return subprocess.CompletedProcess(args, child.returncode, out, err)


def cursor_of(c: Container, item_id: uuid.UUID) -> str:
    with unit_of_work(c.engine) as s:
        state = s.get(ItemSyncState, item_id)
        return state.cursor if state else ""


def user_row(c: Container, user_id: uuid.UUID, tid: str) -> LedgerTransaction | None:
    with unit_of_work(c.engine) as s:
        return s.get(LedgerTransaction, tid)


def corrupt_token(c: Container, item_id: uuid.UUID) -> None:
    """Flip one bit of an item's stored access token, as a disk error or a tampered row would."""
    with unit_of_work(c.engine) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None
        blob = bytearray(item.access_token_enc)
        blob[-1] ^= 1
        item.access_token_enc = bytes(blob)
        s.add(item)


@pytest.fixture
def linked(container: Container, gateway: PlaidGateway) -> tuple[uuid.UUID, uuid.UUID, str]:
    """A user with one linked demo item: (user id, our item id, the demo bank's item id)."""
    user_id = make_user(container)
    item_id, plaid_id = link_item(container, gateway, user_id)
    return user_id, item_id, plaid_id


def process_env(c: Container, bank: DemoBankHandle) -> dict[str, str]:
    """The environment of a `python -m services.cli` child process: this test's database, keys and demo bank."""
    s = c.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINSYNC_", "PLAID_", "DATABASE_URL", "SMTP_"))}
    env.update(
        DATABASE_URL=s.effective_database_url,
        FINSYNC_SECRET_KEY=s.secret_key.get_secret_value(),  # type: ignore[union-attr]
        FINSYNC_ENCRYPTION_KEYS=s.encryption_keys.get_secret_value(),  # type: ignore[union-attr]
        FINSYNC_DATA_DIR=str(s.data_dir),
        PLAID_ENV="demo",
        PLAID_API_URL=bank.url,
        PYTHONPATH=str(REPO),
    )
    return env


def assert_exact(c: Container, demo_bank: DemoBankHandle, user_id: uuid.UUID, plaid_item_id: str) -> list[Any]:
    """The user's ledger is the bank's truth, each transaction once (no duplicate rows behind it); returns it."""
    rows = ledger(c, user_id)
    assert rows == truth(demo_bank, plaid_item_id)
    with unit_of_work(c.engine) as s:
        assert s.exec(select(func.count()).select_from(LedgerTransaction)).one() == len(rows)  # no duplicates
    return rows


def garble(monkeypatch: pytest.MonkeyPatch, transaction_id: str, **broken: object) -> None:
    """From now on the demo bank sends ``transaction_id`` with ``broken`` fields (an unreadable record: set aside)."""
    import services.demo_bank.syncing as bank_sync

    real = bank_sync.txn_json

    def sent(txn: Any) -> dict[str, Any]:
        body = real(txn)
        return {**body, **broken} if body["transaction_id"] == transaction_id else body

    monkeypatch.setattr(bank_sync, "txn_json", sent)
