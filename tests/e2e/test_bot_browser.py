"""The sync bot with nobody clicking: the demo bank's customers shop, the bank sends a signed webhook,
the app's own scheduler syncs, and the new transaction is in the ledger and in the export."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, shot, sign_in, start_server

pytestmark = pytest.mark.e2e
PASSWORD = "saffron beacon tundra 7812 oriole"


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory, FINSYNC_DEMO_ACTIVITY_SECONDS="3", SYNC_TICK_SECONDS="1")


def exported(server: Server, path: str) -> list[dict[str, str]]:
    result = server.cli("export", "transactions", "--email", "bot@example.com", "--format", "csv", "--out", path)
    assert result.returncode == 0, result.stderr
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_new_demo_transactions_arrive_without_a_click(busy_server: Server, browser: object, tmp_path: object) -> None:
    server = busy_server
    made = server.cli("users", "create", "--email", "bot@example.com", "--username", "bot", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    linked = server.cli("plaid", "link-sandbox", "--email", "bot@example.com", "--institution", "ins_demo_2")
    assert linked.returncode == 0, linked.stderr

    out = f"{tmp_path}/ledger.csv"
    deadline = time.monotonic() + 90
    first: list[dict[str, str]] = []
    while time.monotonic() < deadline and not first:  # the scheduler's first sync of the new item
        time.sleep(1)
        first = exported(server, out)
    assert first, "the scheduler never synced the new bank"
    while time.monotonic() < deadline:  # then the bank's new purchases, announced by webhook
        time.sleep(2)
        later = exported(server, out)
        if len(later) > len(first):
            break
    else:
        pytest.fail("no new transaction arrived by itself")
    new_ids = {r["transaction_id"] for r in later} - {r["transaction_id"] for r in first}
    assert new_ids and len({r["transaction_id"] for r in later}) == len(later)  # no duplicate

    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(page, server, "bot", PASSWORD)
    page.get_by_role("link", name="Sync history").click()
    page.get_by_role("heading", name="Sync history").wait_for(timeout=20_000)
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=20_000)
    shot(page, "sync-history")
    page.get_by_role("link", name="Transactions").click()
    page.get_by_text("newest first").wait_for(timeout=20_000)
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=20_000)  # the ledger grid, drawn after the caption
    page.wait_for_timeout(500)  # its canvas paints a moment later
    shot(page, "transactions")
    page.get_by_test_id("stDataFrame").first.hover()  # the table's own toolbar shows on hover ...
    toolbar = page.get_by_test_id("stElementToolbar").first
    toolbar.get_by_role("button", name="Show/hide columns").wait_for(timeout=10_000)
    assert toolbar.get_by_role("button", name="Download as CSV").count() == 0  # ... without a download of the rows
    page.context.close()
