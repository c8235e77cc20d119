"""Pytest plugin: a session-wide demo bank on loopback, a gateway bound to it, fresh items, a webhook sink."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import pytest

from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET, DemoBankHandle, start_demo_bank
from services.plaid_client import CallEvent, PlaidGateway

BANK_TODAY = date(2025, 3, 15)


@pytest.fixture(scope="session")
def demo_bank() -> Iterator[DemoBankHandle]:
    """One demo bank per test session with a fixed clock, so data is deterministic."""
    handle = start_demo_bank(today=BANK_TODAY)
    yield handle
    handle.stop()


@pytest.fixture
def plaid_events() -> list[CallEvent]:
    """Every call the `gateway` fixture made, as the recorder saw it."""
    return []


@pytest.fixture
def gateway(demo_bank: DemoBankHandle, plaid_events: list[CallEvent]) -> PlaidGateway:
    """A real plaid-python gateway pointed at the demo bank."""
    return PlaidGateway(
        "demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url, timeout=(2.0, 5.0), recorder=plaid_events.append
    )


@dataclass(frozen=True)
class LinkedItem:
    """A freshly linked demo item."""

    item_id: str
    access_token: str = field(repr=False)


@pytest.fixture
def item(demo_bank: DemoBankHandle) -> LinkedItem:
    """A fresh `user_good` item at the first demo institution."""
    item_id, token = demo_bank.link_item("ins_demo_1")
    return LinkedItem(item_id, token)


@dataclass
class WebhookSink:
    """A loopback HTTP server that records every POST it receives."""

    url: str
    received: list[tuple[dict[str, str], bytes]]
    arrived: threading.Event

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[tuple[dict[str, str], bytes]]:
        """Block until at least `n` webhooks arrived."""
        deadline = threading.Event()
        for _ in range(int(timeout * 100)):
            if len(self.received) >= n:
                break
            deadline.wait(0.01)
        assert len(self.received) >= n, f"expected {n} webhooks, got {len(self.received)}"
        return self.received


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    """Receive the demo bank's webhooks on a loopback port."""
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            arrived.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield WebhookSink(f"http://127.0.0.1:{server.server_address[1]}/plaid/webhook", received, arrived)
    server.shutdown()
    server.server_close()
