"""The demo bank for a data dir: one per machine, shared by the app, workers and the CLI; state kept on disk."""

from __future__ import annotations

import json
import os
import random
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from services.settings import Settings

if TYPE_CHECKING:
    from services.demo_bank import DemoBankHandle
    from services.demo_bank.bank import Bank

STATE_FILE = "demo_bank.json"
URL_FILE = "demo_bank.url"
_lock = threading.Lock()
_running: dict[Path, DemoBankHandle] = {}
_shopping: dict[Path, threading.Event] = {}  # set by ``stop_demo_banks``: that bank's shopper ends too


def _answers(url: str) -> bool:
    """True when ``url`` is a live demo bank (it answers a Plaid-shaped error with a request id)."""
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{url}/item/get", data=b"{}", headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - our own loopback URL
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (OSError, ValueError):
        return False
    try:
        return "request_id" in json.loads(body)
    except ValueError:
        return False


def ensure_demo_bank(settings: Settings) -> str:
    """The URL of this data dir's demo bank, starting it here if no process runs one yet.

    Several processes (the app, `services.cli worker`, `plaid link-sandbox`) must talk to the same
    bank, or each would keep its own copy of the items and overwrite the other's state file.
    """
    state = (settings.data_dir / STATE_FILE).resolve()
    url_file = state.with_name(URL_FILE)
    with _lock:
        handle = _running.get(state)
        if handle is not None:
            return handle.url
        if url_file.exists():
            url = url_file.read_text(encoding="utf-8").strip()
            if url.startswith("http://127.0.0.1:") and _answers(url):
                return url
        from services.demo_bank import start_demo_bank  # starlette and uvicorn only when demo mode runs

        state.parent.mkdir(parents=True, exist_ok=True)
        handle = _running[state] = start_demo_bank(state_file=state)
        if settings.demo_activity_seconds > 0:
            _shopping[state] = _start_activity(handle, settings.demo_activity_seconds)
        tmp = url_file.with_suffix(".tmp")
        tmp.write_text(handle.url, encoding="utf-8")
        os.replace(tmp, url_file)
        return handle.url


OPEN_HOLDS = 3  # demo shoppers' card holds left pending; older ones post, as a bank settles them within days


def shop_once(bank: Bank, rng: random.Random) -> None:
    """Every live demo item: a new card purchase (pending), and the card's oldest hold beyond ``OPEN_HOLDS`` posts
    (under a new id naming the hold, a tip on a restaurant bill), so balances move and holds do not pile up."""
    from services.demo_bank.catalog import SPENDING, TIPPED

    with bank.lock:
        live = [i.item_id for i in bank.items.values() if not i.removed and not i.error_code]
    for item_id in live:
        m = rng.choice(SPENDING)
        cents = rng.randint(max(m.low_cents, 100), max(m.high_cents, m.low_cents + 100))
        try:
            with bank.one_update(item_id) as item:  # the purchase and the posting: one webhook, as Plaid sends
                bank.mutate(item_id, "add", account="credit", cents=cents, name=m.name.upper(),
                            merchant_name=m.merchant, primary=m.primary, detailed=m.detailed, pending=True)  # fmt: skip
                card = item.accounts.get("credit")
                holds = sorted(
                    (t for t in item.ledger.txns.values() if t.pending and t.account_id == card),
                    key=lambda t: t.created_pos,
                )
                for hold in holds[: max(0, len(holds) - OPEN_HOLDS)]:
                    tip = rng.randint(100, 900) if hold.detailed in TIPPED else 0
                    bank.mutate(item_id, "post", transaction_id=hold.transaction_id, cents=hold.cents + tip)
        except (KeyError, ValueError):  # removed meanwhile
            continue
    bank.save()


def _start_activity(handle: DemoBankHandle, every: float) -> threading.Event:
    """Make the demo bank's customers shop: a new card purchase per item every ``every`` seconds (``shop_once``).

    The bank then sends SYNC_UPDATES_AVAILABLE to finsync's webhook route, so a running app shows
    new transactions without anyone clicking (the point of the sync bot).
    """
    rng = random.Random(0)  # noqa: S311 - a demo, not a secret
    stop = threading.Event()

    def shop() -> None:
        while not stop.wait(every):
            shop_once(handle.bank, rng)

    threading.Thread(target=shop, name="demo-bank-activity", daemon=True).start()
    return stop


def stop_demo_banks() -> int:
    """Stop every demo bank this process started, and its shopper; return how many. For tests and shutdown:
    each is a server thread polling on its own, and a test run that starts hundreds pays for all of them."""
    with _lock:
        handles = list(_running.values())
        for stop in _shopping.values():
            stop.set()
        _running.clear()
        _shopping.clear()
    for handle in handles:
        handle.stop()
    return len(handles)
