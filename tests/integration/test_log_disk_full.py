"""Faults catalogue, "Disk full (logs)": a log that cannot be written never blocks sign-in or a sync."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from services import auth, sync
from services.logs import configure_logging
from tests.integration.auth_support import PASSWORD, fast_hashing, make_user  # noqa: F401
from tests.integration.conftest_bank import Bank


class FullDisk(io.TextIOBase):
    """stderr on a full disk: every write fails as the kernel says ENOSPC."""

    def __init__(self) -> None:
        self.attempts = 0

    def write(self, text: str) -> int:
        self.attempts += 1
        raise OSError(28, "No space left on device")


@pytest.mark.usefixtures("fast_hashing")
def test_sign_in_and_sync_work_while_every_log_line_fails_to_write(bank: Bank, monkeypatch: pytest.MonkeyPatch) -> None:
    full = FullDisk()
    monkeypatch.setattr(sys, "stderr", full)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # the handler added here goes away afterwards
    configure_logging("INFO")
    finsync = logging.getLogger("finsync")
    monkeypatch.setattr(finsync, "level", logging.INFO)

    alice = make_user(bank.c)
    step = auth.begin_sign_in(bank.c, login="alice", password=PASSWORD, ip="198.51.100.7")
    assert step.kind == "ticket" and step.ticket
    token = auth.redeem_ticket(bank.c, ticket=step.ticket, ip="198.51.100.7", user_agent="pytest")
    assert token
    item = bank.link(alice.id)
    result = sync.sync_item(bank.c, alice.id, item.id, explicit=True)
    assert result.status == "ok" and result.added > 0
    assert full.attempts > 0  # the log lines were tried, and failed, on the way
