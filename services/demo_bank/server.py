"""Run the demo bank on a loopback port in a background thread and drive it from Python."""

from __future__ import annotations

import socket
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import uvicorn

from services.demo_bank.app import DEMO_CLIENT_ID, DEMO_SECRET, create_app
from services.demo_bank.bank import Bank
from services.demo_bank.faults import FaultKind
from services.demo_bank.persist import load
from services.demo_bank.webhooks import Delivery


class Clock:
    """The bank's idea of today: the real date, or a fixed date that tests move by hand."""

    def __init__(self, today: date | None = None) -> None:
        self.fixed = today

    def __call__(self) -> date:
        return self.fixed or date.today()

    def advance(self, days: int) -> None:
        """Move a fixed clock forward (pins a real clock at today first)."""
        self.fixed = self() + timedelta(days=days)


class DemoBankHandle:
    """A running demo bank: its `url`, `stop()`, and the test API over its in-memory truth."""

    def __init__(self, bank: Bank, clock: Clock, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.bank = bank
        self.clock = clock
        self.url = url
        self._server = server
        self._thread = thread

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def link_item(
        self, institution_id: str = "ins_demo_1", username: str = "user_good", webhook: str | None = None
    ) -> tuple[str, str]:
        """Create an item directly (no HTTP) and return (item_id, access_token)."""
        item = self.bank.create_item(institution_id, username, webhook)
        return item.item_id, item.access_token

    def truth(self, item_id: str) -> list[dict[str, Any]]:
        """Every current transaction of an item, as Plaid JSON."""
        return self.bank.truth(item_id)

    def advance(self, item_id: str, days: int = 1) -> int:
        """Let days pass for one item; return the number of changes it produced."""
        return self.bank.advance(item_id, days)

    def advance_clock(self, days: int = 1) -> None:
        """Move the bank's clock; every item catches up on its next API call."""
        self.clock.advance(days)

    def mutate(self, item_id: str, action: str, **fields: Any) -> dict[str, Any] | None:
        """add (account, cents, name, pending, date...), modify (transaction_id, fields), remove, post (transaction_id, cents)."""
        return self.bank.mutate(item_id, action, **fields)

    def set_fault(
        self,
        item_id: str,
        kind: FaultKind,
        *,
        times: int = 1,
        endpoint: str | None = None,
        page: int = 2,
        seconds: float = 0.0,
    ) -> None:
        """Inject a fault; see `Bank.set_fault`."""
        self.bank.set_fault(item_id, kind, times=times, endpoint=endpoint, page=page, seconds=seconds)

    def clear_faults(self, item_id: str) -> None:
        """Remove injected faults (not the login state) and mark the item ready."""
        self.bank.clear_faults(item_id)

    def repair(self, item_id: str) -> None:
        """Clear ITEM_LOGIN_REQUIRED as a sign-in outside our app does (Plaid sends LOGIN_REPAIRED)."""
        self.bank.repair(item_id)

    def hold_history(self, item_id: str, days: int = 30) -> None:
        """Play Plaid's initial pull: only the last `days` days until `finish_history`; see `Bank.hold_history`."""
        self.bank.hold_history(item_id, days)

    def finish_history(self, item_id: str) -> None:
        """Plaid's historical pull completes: the older history arrives as added, with a webhook."""
        self.bank.finish_history(item_id)

    def set_ready(self, item_id: str, ready: bool) -> None:
        """Make /transactions/sync answer NOT_READY with an empty cursor (False) or serve data (True)."""
        with self.bank.lock:
            self.bank.item(item_id).ready = ready

    def set_webhook(self, item_id: str, url: str | None) -> None:
        """Point an item's webhooks at a URL."""
        with self.bank.lock:
            self.bank.item(item_id).webhook = url

    def generate_history(self, item_id: str, count: int) -> None:
        """Append a large posted history to an item (200,000 takes about a second)."""
        self.bank.generate_history(item_id, count)

    def fire_webhook(self, item_id: str, webhook_type: str, code: str, **extra: Any) -> Delivery | None:
        """Send a signed webhook now (synchronously) and return the delivery, or None without a URL."""
        with self.bank.lock:
            item = self.bank.item(item_id)
        return self.bank.notify(item, webhook_type, code, now=True, **extra)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook sent so far."""
        with self.bank.webhooks.lock:
            return list(self.bank.webhooks.deliveries)

    def sign_webhook(self, body: bytes, iat: int | None = None) -> str:
        """Sign an arbitrary body with the current webhook key (for receiver tests)."""
        return self.bank.webhooks.sign(body, iat)

    def rotate_webhook_key(self) -> str:
        """Expire the current signing key and return the new key id."""
        return self.bank.webhooks.rotate()


def start_demo_bank(
    port: int = 0,
    *,
    today: date | None = None,
    history_days: int = 90,
    client_id: str = DEMO_CLIENT_ID,
    secret: str = DEMO_SECRET,
    host: str = "127.0.0.1",
    state_file: Path | None = None,
) -> DemoBankHandle:
    """Start the demo bank on `host:port` (0 = any free port) in a daemon thread; return its handle.

    With `state_file`, items are loaded from it and saved after every change, so they survive a restart.
    """
    clock = Clock(today)
    bank = Bank(clock, history_days=history_days)
    if state_file is not None:
        load(bank, state_file)
        bank.state_file = state_file
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(create_app(bank, client_id, secret), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"demo-bank-{bound}")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("demo bank failed to start")
        time.sleep(0.01)
    return DemoBankHandle(bank, clock, server, thread, f"http://{host}:{bound}")
