"""Pytest plugin: a session-wide demo bank on loopback, a gateway bound to it, fresh items, a webhook sink."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from models import PlaidItem
from services import banking, webhook_verify, webhooks
from services.banking import ItemView
from services.container import Container, build_container
from services.db import unit_of_work
from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET, PASSWORD, DemoBankHandle, start_demo_bank
from services.mailer import MemoryMailer
from services.plaid_client import PlaidGateway
from services.plaid_types import CallEvent
from services.users import create_user
from services.webhooks import WebhookResult
from tests.factories import STRONG_PASSWORD, FakeClock, make_settings

BANK_TODAY = date(2025, 3, 15)


@pytest.fixture(scope="session")
def demo_bank() -> Iterator[DemoBankHandle]:
    """One demo bank per test session with a fixed clock, so data is deterministic."""
    handle = start_demo_bank(today=BANK_TODAY)
    yield handle
    handle.stop()


@pytest.fixture
def fresh_demo_bank() -> Iterator[DemoBankHandle]:
    """A demo bank of its own, for tests whose data must not depend on what other tests did to the clock."""
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


# --- the banking service over the demo bank -------------------------------------------------
@dataclass(frozen=True)
class Bank:
    """A container wired to the demo bank (webhooks go to `sink`), plus helpers to act like Link."""

    c: Container
    demo: DemoBankHandle
    sink: WebhookSink
    clock: FakeClock

    def user(self, name: str = "alice", *, verified: bool = True) -> uuid.UUID:
        """Create a user and return their id."""
        with unit_of_work(self.c.engine) as session:
            user = create_user(session, email=f"{name}@example.com", username=name, password=STRONG_PASSWORD,
                               pepper=self.c.pepper, email_verified=verified)  # fmt: skip
            return user.id

    def link_login(
        self,
        link_token: str,
        institution_id: str = "ins_demo_1",
        username: str = "user_good",
        account_keys: list[str] | None = None,
    ) -> dict[str, Any]:
        """Sign in through the demo bank's Link stand-in, as the browser does (ticking ``account_keys`` in its
        account picker; None: no picker); return onSuccess data."""
        fields = {"link_token": link_token, "institution_id": institution_id, "username": username,
                  "password": PASSWORD} | ({"account_keys": account_keys} if account_keys is not None else {})  # fmt: skip
        body = json.dumps(fields).encode()
        req = urllib.request.Request(f"{self.demo.url}/link/demo/login", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def link(self, user_id: uuid.UUID, institution_id: str = "ins_demo_1", username: str = "user_good") -> ItemView:
        """The whole Link flow: start, sign in at the bank, complete."""
        start = banking.start_link(self.c, user_id)
        success = self.link_login(start.link_token, institution_id, username)
        return banking.complete_link(self.c, user_id, public_token=success["public_token"], metadata=success,
                                     link_session_id=start.link_session_id)  # fmt: skip

    def plaid_item_id(self, item_id: uuid.UUID) -> str:
        """The demo bank's id of one of our items."""
        with unit_of_work(self.c.engine) as session:
            item = session.get(PlaidItem, item_id)
            assert item is not None
            return item.plaid_item_id

    def deliver(self, n: int) -> list[WebhookResult]:
        """Hand the first `n` webhooks the bank sent (headers and raw body as received) to our handler."""
        received = self.sink.wait(n)[:n]
        return [webhooks.handle_webhook(self.c, body=body, headers=headers) for headers, body in received]


@pytest.fixture
def bank(
    engine: Engine, db_url: str, tmp_path: Path, clock: FakeClock, mailer: MemoryMailer,
    gateway: PlaidGateway, demo_bank: DemoBankHandle, webhook_sink: WebhookSink,
) -> Bank:  # fmt: skip
    """Banking over the demo bank; the clock starts at the real time because the bank signs with real iat."""
    clock.now = datetime.now(UTC).replace(microsecond=0)
    base = webhook_sink.url.removesuffix("/plaid/webhook")
    settings = make_settings(tmp_path / "data", db_url, FINSYNC_BASE_URL=base)
    c = build_container(settings, engine=engine, mailer=mailer, clock=clock, plaid=gateway)
    webhook_verify.clear_key_cache()
    return Bank(c, demo_bank, webhook_sink, clock)
