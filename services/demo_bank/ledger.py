"""One item's truth: its current transactions plus an append-only change log that cursors point into."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, replace
from typing import Literal

ADD, MODIFY, REMOVE = 0, 1, 2
ChangeKind = Literal["added", "modified", "removed"]


@dataclass(frozen=True, slots=True)
class Txn:
    """A transaction as the bank knows it; `cents` uses Plaid's sign (positive = money out)."""

    transaction_id: str
    account_id: str
    cents: int
    date: dt.date
    authorized_date: dt.date
    name: str
    merchant_name: str | None
    primary: str
    detailed: str
    confidence: str
    channel: str
    website: str | None
    pending: bool
    pending_transaction_id: str | None = None
    stream: str | None = None
    created_pos: int = 0


class Ledger:
    """Current transactions, balances and the change log of one item."""

    def __init__(self, item_id: str, opening: dict[str, int]) -> None:
        self.item_id = item_id
        self.txns: dict[str, Txn] = {}
        self.gone: dict[str, Txn] = {}
        self.restored: set[str] = set()  # ids removed and sent again: whether a cursor knew one is read from the log
        self.log: list[tuple[int, str]] = []
        self.posted: dict[str, int] = dict.fromkeys(opening, 0)
        self.pending: dict[str, int] = dict.fromkeys(opening, 0)
        self.opening = dict(opening)
        self._serial = 0
        self._cache: tuple[int, int, list[tuple[ChangeKind, str]]] | None = None

    def new_id(self) -> str:
        """Return the next deterministic, Plaid-looking transaction id."""
        self._serial += 1
        digest = hashlib.blake2b(f"{self.item_id}:{self._serial}".encode(), digest_size=24).hexdigest()
        return digest[:37]

    def _book(self, txn: Txn, sign: int) -> None:
        bucket = self.pending if txn.pending else self.posted
        bucket[txn.account_id] += sign * txn.cents

    def add(self, txn: Txn) -> Txn:
        """Append a new transaction (its id must be fresh) and log it."""
        txn = replace(txn, created_pos=len(self.log))
        self.txns[txn.transaction_id] = txn
        self._book(txn, 1)
        self.log.append((ADD, txn.transaction_id))
        return txn

    def modify(self, transaction_id: str, **changes: object) -> Txn:
        """Change fields of an existing transaction and log the modification."""
        old = self.txns[transaction_id]
        new = replace(old, **changes)  # type: ignore[arg-type]
        self._book(old, -1)
        self._book(new, 1)
        self.txns[transaction_id] = new
        self.log.append((MODIFY, transaction_id))
        return new

    def remove(self, transaction_id: str) -> Txn:
        """Delete a transaction and log the removal."""
        old = self.txns.pop(transaction_id)
        self._book(old, -1)
        self.gone[transaction_id] = old
        self.log.append((REMOVE, transaction_id))
        return old

    def restore(self, transaction_id: str) -> Txn:
        """Send a removed transaction again under its own id (a bank that dropped a posted charge and put it back)."""
        old = self.gone.pop(transaction_id)
        self.restored.add(transaction_id)
        return self.add(old)

    def post(self, pending_id: str, cents: int | None = None, posted_on: dt.date | None = None) -> Txn:
        """Replace a pending transaction with its posted twin under a new id, as Plaid does."""
        old = self.remove(pending_id)
        posted = replace(
            old,
            transaction_id=self.new_id(),
            pending=False,
            pending_transaction_id=pending_id,
            cents=old.cents if cents is None else cents,
            date=posted_on or old.date,
        )
        return self.add(posted)

    def resend(self, account_id: str) -> None:
        """An account shared again: send its current transactions as added, and the removals it missed."""
        self.add_again([tid for tid, txn in self.txns.items() if txn.account_id == account_id])
        for tid, txn in self.gone.items():
            if txn.account_id == account_id:
                self.log.append((REMOVE, tid))  # an id the app never had is nothing to it

    def add_again(self, transaction_ids: list[str]) -> None:
        """Log current transactions as added again, in this order (ones held back until now)."""
        for tid in transaction_ids:
            self.txns[tid] = replace(self.txns[tid], created_pos=len(self.log))
            self.log.append((ADD, tid))

    def known(self, transaction_id: str) -> Txn:
        """Return a current transaction, or a removed one as it was last."""
        return self.txns.get(transaction_id) or self.gone[transaction_id]

    def changes(self, start: int, end: int) -> list[tuple[ChangeKind, str]]:
        """Net changes between two log positions, ordered by ascending last modification."""
        if self._cache is not None and self._cache[:2] == (start, end):
            return self._cache[2]
        seen: set[str] = set()
        order: list[str] = []
        log = self.log
        for i in range(end - 1, start - 1, -1):
            tid = log[i][1]
            if tid not in seen:
                seen.add(tid)
                order.append(tid)
        order.reverse()
        out: list[tuple[ChangeKind, str]] = []
        for tid in order:
            current = self.txns.get(tid)
            if tid in self.restored:  # its birth says nothing of whether the cursor's client had it: the log does
                had = self._existed(tid, start)
                if current is not None:
                    out.append(("modified" if had else "added", tid))
                elif had:
                    out.append(("removed", tid))
            elif current is not None:
                out.append(("added" if current.created_pos >= start else "modified", tid))
            elif self.gone[tid].created_pos < start:
                out.append(("removed", tid))
        self._cache = (start, end, out)
        return out

    def _existed(self, transaction_id: str, position: int) -> bool:
        """Whether a transaction was current at a log position (its last entry before it was not a removal)."""
        for kind, tid in reversed(self.log[:position]):
            if tid == transaction_id:
                return kind != REMOVE
        return False

    def balance(self, account_id: str) -> tuple[int, int]:
        """Return (posted, pending) Plaid-signed totals for one account."""
        return self.posted[account_id], self.pending[account_id]
